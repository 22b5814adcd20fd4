#include "train/fused_adam.h"

namespace mixvae::train {

torch::Tensor FusedAdam::step(LossClosure closure) {
  // The fused path needs every parameter with a gradient on the CPU, float32, contiguous,
  // and no amsgrad; anything else goes to torch::optim::Adam as a whole.
  for (const auto& group : param_groups_) {
    const auto& o = static_cast<const torch::optim::AdamOptions&>(group.options());
    for (const auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      if (o.amsgrad() || !p.device().is_cpu() || p.scalar_type() != torch::kFloat32 || !p.is_contiguous() ||
          !p.grad().is_contiguous() || p.grad().is_sparse())
        return torch::optim::Adam::step(std::move(closure));
    }
  }
  torch::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure) {
    torch::AutoGradMode enable_grad(true);
    loss = closure();
  }
  for (auto& group : param_groups_) {
    const auto& o = static_cast<const torch::optim::AdamOptions&>(group.options());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      const std::string key = c10::guts::to_string(p.unsafeGetTensorImpl());
      auto it = state_.find(key);
      if (it == state_.end()) {
        auto st = std::make_unique<torch::optim::AdamParamState>();
        st->step(0);
        st->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Contiguous));
        st->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Contiguous));
        it = state_.emplace(key, std::move(st)).first;
      }
      auto& st = static_cast<torch::optim::AdamParamState&>(*it->second);
      if (!st.exp_avg().is_contiguous()) st.exp_avg(st.exp_avg().contiguous());
      if (!st.exp_avg_sq().is_contiguous()) st.exp_avg_sq(st.exp_avg_sq().contiguous());
      st.step(st.step() + 1);
      fused_adam_update(p.data_ptr<float>(), p.grad().data_ptr<float>(), st.exp_avg().data_ptr<float>(),
                        st.exp_avg_sq().data_ptr<float>(), p.numel(), o.lr(), std::get<0>(o.betas()),
                        std::get<1>(o.betas()), o.eps(), o.weight_decay(), st.step());
    }
  }
  return loss;
}

}  // namespace mixvae::train
