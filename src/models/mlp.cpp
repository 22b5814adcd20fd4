#include "models/mlp.h"

#include <sstream>

#include "core/errors.h"

namespace mixvae::models {

torch::nn::Linear glorot_linear(int64_t in, int64_t out, int64_t fan_out) {
  torch::nn::Linear l(torch::nn::LinearOptions(in, out));
  torch::NoGradGuard ng;
  double bound = std::sqrt(6.0 / double(in + (fan_out > 0 ? fan_out : out)));
  l->weight.uniform_(-bound, bound);
  l->bias.zero_();
  return l;
}

MlpImpl::MlpImpl(const std::vector<int64_t>& sizes, bool relu_last) : relu_last_(relu_last) {
  for (size_t i = 0; i + 1 < sizes.size(); ++i) {
    layers_.push_back(register_module(std::to_string(i), glorot_linear(sizes[i], sizes[i + 1])));
  }
}

namespace {
torch::Dtype g_matmul_dtype = torch::kFloat32;
}
void set_matmul_dtype(torch::Dtype dtype) { g_matmul_dtype = dtype; }
void set_matmul_precision(const std::string& precision) {
  set_matmul_dtype(precision == "bf16" ? torch::kBFloat16 : torch::kFloat32);
}
torch::Dtype matmul_dtype() { return g_matmul_dtype; }
torch::Tensor to_matmul(const torch::Tensor& t) {
  return g_matmul_dtype == torch::kFloat32 || t.scalar_type() == g_matmul_dtype ? t : t.to(g_matmul_dtype);
}

torch::Tensor MlpImpl::forward(torch::Tensor x) {
  const bool low = matmul_dtype() != torch::kFloat32;
  const auto in_dtype = x.scalar_type();
  for (size_t i = 0; i < layers_.size(); ++i) {
    x = low ? torch::linear(to_matmul(x), to_matmul(layers_[i]->weight), to_matmul(layers_[i]->bias))
            : layers_[i]->forward(x);
    if (i + 1 < layers_.size() || relu_last_) x = torch::relu(x);
  }
  return low ? x.to(in_dtype) : x;
}

std::vector<int64_t> parse_widths(const std::string& csv) {
  std::vector<int64_t> out;
  std::stringstream ss(csv);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    int64_t w = std::stoll(item);
    if (w < 1) throw UsageError("model.hidden: widths must be positive, got '" + csv + "'");
    out.push_back(w);
  }
  if (out.empty()) throw UsageError("model.hidden: at least one width is needed");
  return out;
}

}  // namespace mixvae::models
