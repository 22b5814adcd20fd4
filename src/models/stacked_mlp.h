#pragma once
// k fully connected stacks of the same shape whose parameters are stacked on a leading
// K axis, so each layer of all k networks is one batched matrix product (baddbmm) — the
// k encoders/decoders of k-DVAE and k-DAE. Glorot-uniform weights, zero biases, per
// network (the same initialisation as Mlp).
#include <torch/torch.h>

#include <vector>

namespace mixvae::models {

class StackedMlpImpl : public torch::nn::Module {
 public:
  // k networks, sizes = {in, h1, ..., out}; ReLU between layers (none after the last).
  StackedMlpImpl(int64_t k, const std::vector<int64_t>& sizes);
  // x: [B, in] (the same input for every network) or [K, B, in]; returns [K, B, out].
  // A shared [B, in] input enters the first layer as ONE [B, in] x [in, K*h1] product.
  torch::Tensor forward(const torch::Tensor& x);
  // Network i alone on [B, in] -> [B, out] (sampling, and the loop reference in tests).
  torch::Tensor forward_one(int64_t i, const torch::Tensor& x);
  // Network i on its own rows xs[i] ([B_i, in]; undefined or empty: skipped) -> [B_i, out]
  // each. The stacked parameters are split once per layer (unbind), so the backward pass
  // writes each parameter's gradient once, not once per network.
  std::vector<torch::Tensor> forward_groups(const std::vector<torch::Tensor>& xs);
  int64_t networks() const { return k_; }
  int64_t layers() const { return int64_t(weights_.size()); }
  torch::Tensor& weight(int64_t layer) { return weights_[size_t(layer)]; }  // [K, in, out]
  torch::Tensor& bias(int64_t layer) { return biases_[size_t(layer)]; }     // [K, 1, out]

 private:
  int64_t k_;
  std::vector<torch::Tensor> weights_, biases_;
};
TORCH_MODULE(StackedMlp);

}  // namespace mixvae::models
