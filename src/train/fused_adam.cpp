#include "train/fused_adam.h"

#include <cmath>
#include <map>
#include <optional>

namespace mixvae::train {

torch::optim::AdamParamState& FusedAdam::state_of(const torch::Tensor& p) {
  const auto key = adam_state_key(p);
  auto it = state_.find(key);
  if (it == state_.end()) {
    auto st = std::make_unique<torch::optim::AdamParamState>();
    st->step(0);
    st->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Contiguous));
    st->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Contiguous));
    it = state_.emplace(key, std::move(st)).first;
  }
  return static_cast<torch::optim::AdamParamState&>(*it->second);
}

torch::Tensor FusedAdam::step(LossClosure closure) {
  // The fused path needs every parameter with a gradient on the CPU, float32, contiguous;
  // the foreach path every one on one other device, float32, dense. Anything else, and
  // amsgrad, goes to torch::optim::Adam as a whole.
  bool cpu = true, other = true;
  std::optional<torch::Device> device;
  for (const auto& group : param_groups_) {
    const auto& o = static_cast<const torch::optim::AdamOptions&>(group.options());
    for (const auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      if (o.amsgrad() || p.scalar_type() != torch::kFloat32 || p.grad().is_sparse()) {
        cpu = other = false;
        continue;
      }
      if (!device) device = p.device();
      if (!p.device().is_cpu() || !p.is_contiguous() || !p.grad().is_contiguous()) cpu = false;
      if (p.device().is_cpu() || p.device() != *device) other = false;
    }
  }
  if (!cpu && !other) return torch::optim::Adam::step(std::move(closure));
  torch::Tensor loss;
  if (closure) {
    torch::AutoGradMode enable_grad(true);
    loss = closure();
  }
  if (!cpu) {
    step_foreach();
    return loss;
  }
  torch::NoGradGuard no_grad;
  for (auto& group : param_groups_) {
    const auto& o = static_cast<const torch::optim::AdamOptions&>(group.options());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto& st = state_of(p);
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

void FusedAdam::step_foreach() {
  // torch::optim::Adam's arithmetic (its adam.cpp), written with _foreach_ operations over
  // the parameters of a group that have the same step count (normally all of them):
  //   g = grad + wd p;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
  //   p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps).
  torch::NoGradGuard no_grad;
  for (auto& group : param_groups_) {
    const auto& o = static_cast<const torch::optim::AdamOptions&>(group.options());
    const double beta1 = std::get<0>(o.betas()), beta2 = std::get<1>(o.betas());
    struct Lists {
      std::vector<torch::Tensor> p, g, m, v;
    };
    std::map<int64_t, Lists> by_step;
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto& st = state_of(p);
      st.step(st.step() + 1);
      Lists& l = by_step[st.step()];
      l.p.push_back(p);
      l.g.push_back(p.grad());
      l.m.push_back(st.exp_avg());
      l.v.push_back(st.exp_avg_sq());
    }
    for (auto& [t, l] : by_step) {
      const double bias1 = 1 - std::pow(beta1, double(t)), bias2 = 1 - std::pow(beta2, double(t));
      std::vector<torch::Tensor> g = o.weight_decay() != 0 ? torch::_foreach_add(l.g, l.p, o.weight_decay()) : l.g;
      torch::_foreach_mul_(l.m, beta1);
      torch::_foreach_add_(l.m, g, 1 - beta1);
      torch::_foreach_mul_(l.v, beta2);
      torch::_foreach_addcmul_(l.v, g, g, 1 - beta2);
      std::vector<torch::Tensor> denom = torch::_foreach_sqrt(l.v);
      torch::_foreach_div_(denom, std::sqrt(bias2));
      torch::_foreach_add_(denom, o.eps());
      torch::_foreach_addcdiv_(l.p, l.m, denom, -o.lr() / bias1);
    }
  }
}

}  // namespace mixvae::train
