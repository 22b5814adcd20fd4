#pragma once
// Fully connected stack with ReLU between layers (none after the last), Glorot-uniform
// weights and zero biases (the Keras defaults VaDE's reference code trained with).
#include <torch/torch.h>

#include <string>
#include <vector>

namespace mixvae::models {

class MlpImpl : public torch::nn::Module {
 public:
  // sizes = {in, h1, ..., out}; relu_last: also ReLU after the last layer.
  MlpImpl(const std::vector<int64_t>& sizes, bool relu_last);
  torch::Tensor forward(torch::Tensor x);

 private:
  std::vector<torch::nn::Linear> layers_;
  bool relu_last_;
};
TORCH_MODULE(Mlp);

// Glorot-uniform weights (bound sqrt(6 / (in + fan_out)), fan_out = out unless given:
// k heads stored as one Lin(in, k*h) pass fan_out = h, so each block is initialised as its
// own layer would be), zero biases.
torch::nn::Linear glorot_linear(int64_t in, int64_t out, int64_t fan_out = 0);

// The dtype of the hidden stacks' matrix products (Mlp, StackedMlp; train.precision),
// process-wide, set by the trainer at the start of a run: kFloat32 (default) or kBFloat16.
// In bf16 each product casts its input and the fp32 parameters to bf16 (autograd carries
// the gradients back to the fp32 master weights), and each stack returns fp32, so the
// heads, the losses and the mixture math stay fp32.
void set_matmul_dtype(torch::Dtype dtype);
// The same from a config's train.precision ("fp32" | "bf16").
void set_matmul_precision(const std::string& precision);
torch::Dtype matmul_dtype();
// t in the product dtype (t itself when that is fp32 or t already has it).
torch::Tensor to_matmul(const torch::Tensor& t);
std::vector<int64_t> parse_widths(const std::string& csv);

}  // namespace mixvae::models
