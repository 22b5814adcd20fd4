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
std::vector<int64_t> parse_widths(const std::string& csv);

}  // namespace mixvae::models
