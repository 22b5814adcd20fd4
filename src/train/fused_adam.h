#pragma once
// Adam whose update of a float32 CPU parameter is one pass over memory. LibTorch 1.13's
// torch::optim::Adam runs about ten tensor operations per parameter and step (each a full
// pass over the parameter, its gradient or a moment), so on CPU, with models whose
// parameters and moments do not fit in cache, the optimiser step costs a large share of a
// training step (k-DVAE: 8.9 M parameters, about 140 MB of parameters, gradients and
// moments streamed ~20 times per step). This class keeps torch::optim::Adam's options,
// parameter groups and state (AdamParamState: step, exp_avg, exp_avg_sq), so checkpoints
// and learning-rate schedules are unchanged; only step() differs.
//
// On a GPU the cost is different: a step at batch 100 is bound by the host issuing
// kernels, and torch::optim::Adam issues about seven per parameter and step. There every
// float32 parameter group is updated with LibTorch's multi-tensor _foreach_ operations
// (the same arithmetic, each operation one launch for all parameters of a group that
// share a step count). Other dtypes, mixed devices and amsgrad take the base class's step.
//
// The arithmetic is Adam's (Kingma & Ba, Alg. 1, as torch::optim::Adam computes it:
// denominator sqrt(v_t)/sqrt(1-beta2^t) + eps, step size lr/(1-beta1^t)), in float32 with
// the operations fused, so results differ from the unfused class by float rounding only
// (tests/unit/test_fused_adam.cpp).
#include <torch/torch.h>

#include <sstream>
#include <string>
#include <type_traits>

namespace mixvae::train {

// The key of a parameter in an Adam's state map: its TensorImpl address as text in
// LibTorch 1.x, the address itself in 2.x. Both spellings compile; the map decides.
template <class Key = std::decay_t<decltype(std::declval<torch::optim::Adam&>().state())>::key_type>
Key adam_state_key(const torch::Tensor& p) {
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream os;  // what c10::guts::to_string(void*) wrote
    os << p.unsafeGetTensorImpl();
    return os.str();
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
}

class FusedAdam : public torch::optim::Adam {
 public:
  using torch::optim::Adam::Adam;
  torch::Tensor step(LossClosure closure = nullptr) override;
  // The GPU path, callable on any device (the tests run it on the CPU too).
  void step_foreach();

 private:
  torch::optim::AdamParamState& state_of(const torch::Tensor& p);
};

// One fused Adam update of n floats (exposed for the tests and benchmarks).
void fused_adam_update(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n, double lr,
                       double beta1, double beta2, double eps, double weight_decay, int64_t step);

}  // namespace mixvae::train
