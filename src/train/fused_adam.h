#pragma once
// Adam whose update of a float32 CPU parameter is one pass over memory. LibTorch 1.13's
// torch::optim::Adam runs about ten tensor operations per parameter and step (each a full
// pass over the parameter, its gradient or a moment), so on CPU, with models whose
// parameters and moments do not fit in cache, the optimiser step costs a large share of a
// training step (k-DVAE: 8.9 M parameters, about 140 MB of parameters, gradients and
// moments streamed ~20 times per step). This class keeps torch::optim::Adam's options,
// parameter groups and state (AdamParamState: step, exp_avg, exp_avg_sq), so checkpoints
// and learning-rate schedules are unchanged; only step() differs. Other tensors (GPU,
// other dtypes) and amsgrad take the base class's step.
//
// The arithmetic is Adam's (Kingma & Ba, Alg. 1, as torch::optim::Adam computes it:
// denominator sqrt(v_t)/sqrt(1-beta2^t) + eps, step size lr/(1-beta1^t)), in float32 with
// the operations fused, so results differ from the unfused class by float rounding only
// (tests/unit/test_fused_adam.cpp).
#include <torch/torch.h>

namespace mixvae::train {

class FusedAdam : public torch::optim::Adam {
 public:
  using torch::optim::Adam::Adam;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

// One fused Adam update of n floats (exposed for the tests and benchmarks).
void fused_adam_update(float* param, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n, double lr,
                       double beta1, double beta2, double eps, double weight_decay, int64_t step);

}  // namespace mixvae::train
