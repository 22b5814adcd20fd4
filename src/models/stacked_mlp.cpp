#include "models/stacked_mlp.h"

#include <cmath>

#include "models/mlp.h"

namespace mixvae::models {

StackedMlpImpl::StackedMlpImpl(int64_t k, const std::vector<int64_t>& sizes) : k_(k) {
  torch::NoGradGuard ng;
  for (size_t l = 0; l + 1 < sizes.size(); ++l) {
    const double bound = std::sqrt(6.0 / double(sizes[l] + sizes[l + 1]));
    weights_.push_back(
        register_parameter("w" + std::to_string(l), torch::empty({k, sizes[l], sizes[l + 1]}).uniform_(-bound, bound)));
    biases_.push_back(register_parameter("b" + std::to_string(l), torch::zeros({k, 1, sizes[l + 1]})));
  }
}

// In bf16 mode (train.precision, models/mlp.h) every product below takes to_matmul() of
// its operands and each function returns x's dtype.
torch::Tensor StackedMlpImpl::forward(const torch::Tensor& x) {
  const auto out_dtype = x.scalar_type();
  torch::Tensor h;
  size_t first = 0;
  if (x.dim() == 2) {
    // Shared input: [B, in] x [in, K*h] in one GEMM (better shaped than K small ones, and
    // its weight gradient is one GEMM too), then viewed as [K, B, h].
    const int64_t in = weights_[0].size(1), out = weights_[0].size(2), b = x.size(0);
    torch::Tensor w = weights_[0].permute({1, 0, 2}).reshape({in, k_ * out});
    torch::Tensor bias = biases_[0].reshape({1, k_ * out});
    h = torch::addmm(to_matmul(bias), to_matmul(x), to_matmul(w)).view({b, k_, out}).transpose(0, 1);
    first = 1;
    if (weights_.size() > 1) h = torch::relu(h);
  } else {
    h = x;
  }
  for (size_t l = first; l < weights_.size(); ++l) {
    h = torch::baddbmm(to_matmul(biases_[l]), to_matmul(h), to_matmul(weights_[l]));
    if (l + 1 < weights_.size()) h = torch::relu(h);
  }
  return h.to(out_dtype);  // itself when nothing changed
}

torch::Tensor StackedMlpImpl::forward_one(int64_t i, const torch::Tensor& x) {
  torch::Tensor h = x;
  for (size_t l = 0; l < weights_.size(); ++l) {
    h = torch::addmm(to_matmul(biases_[l][i]), to_matmul(h), to_matmul(weights_[l][i]));
    if (l + 1 < weights_.size()) h = torch::relu(h);
  }
  return h.to(x.scalar_type());
}

std::vector<torch::Tensor> StackedMlpImpl::forward_groups(const std::vector<torch::Tensor>& xs) {
  std::vector<torch::Tensor> h(xs.begin(), xs.end());
  for (size_t l = 0; l < weights_.size(); ++l) {
    const std::vector<torch::Tensor> w = weights_[l].unbind(0), b = biases_[l].unbind(0);
    for (size_t i = 0; i < h.size(); ++i) {
      if (!h[i].defined() || h[i].size(0) == 0) continue;
      h[i] = torch::addmm(to_matmul(b[i]), to_matmul(h[i]), to_matmul(w[i]));
      if (l + 1 < weights_.size()) h[i] = torch::relu(h[i]);
    }
  }
  for (size_t i = 0; i < h.size(); ++i)
    if (h[i].defined()) h[i] = h[i].to(xs[i].scalar_type());
  return h;
}

}  // namespace mixvae::models
