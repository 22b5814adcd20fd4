// train.precision = bf16 (issue 8): the hidden stacks multiply in bfloat16 and hand back
// fp32; the parameters and their gradients stay fp32 (master weights), and values and
// gradients agree with the fp32 computation to bfloat16's precision (8 bits of mantissa:
// relative error ~2^-8 per rounding, a few such roundings per layer).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "models/mlp.h"
#include "models/stacked_mlp.h"

using namespace mixvae;

namespace {
// Sets the product dtype for one test and restores fp32 however the test ends.
struct MatmulDtype {
  explicit MatmulDtype(torch::Dtype d) { models::set_matmul_dtype(d); }
  ~MatmulDtype() { models::set_matmul_dtype(torch::kFloat32); }
};

// ||a - b|| / ||b||: a scale-aware distance for whole tensors.
double rel(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).norm().item<double>() / b.norm().clamp_min(1e-12).item<double>();
}

// Output and every parameter gradient of f(), once in fp32 and once in bf16.
struct Pass {
  torch::Tensor out;
  std::vector<torch::Tensor> grads;
};
template <class F>
Pass run(torch::nn::Module& m, F&& f) {
  for (auto& p : m.parameters()) p.mutable_grad() = torch::Tensor();
  torch::Tensor y = f();
  (y * y).sum().backward();
  Pass r{y.detach(), {}};
  for (auto& p : m.parameters()) r.grads.push_back(p.grad().clone());
  return r;
}
void expect_close(torch::nn::Module& m, const Pass& f32, const Pass& b16, double tol) {
  EXPECT_EQ(b16.out.scalar_type(), torch::kFloat32);
  EXPECT_LT(rel(b16.out, f32.out), tol);
  EXPECT_GT(rel(b16.out, f32.out), 0.0) << "bf16 mode computed exactly the fp32 result: no bf16 product ran";
  ASSERT_EQ(b16.grads.size(), f32.grads.size());
  for (size_t i = 0; i < b16.grads.size(); ++i) {
    EXPECT_EQ(b16.grads[i].scalar_type(), torch::kFloat32) << i;
    EXPECT_LT(rel(b16.grads[i], f32.grads[i]), tol) << "gradient " << i << " of " << b16.grads[i].sizes();
  }
  for (auto& p : m.parameters()) EXPECT_EQ(p.scalar_type(), torch::kFloat32);
}
}  // namespace

TEST(Precision, MlpInBf16MatchesFp32ToBf16Precision) {
  torch::manual_seed(3);
  models::Mlp net(std::vector<int64_t>{40, 64, 32, 8}, false);
  torch::Tensor x = torch::rand({50, 40});
  Pass f32 = run(*net, [&] { return net->forward(x); });
  Pass b16;
  {
    MatmulDtype bf16(torch::kBFloat16);
    b16 = run(*net, [&] { return net->forward(x); });
  }
  expect_close(*net, f32, b16, 0.05);
}

TEST(Precision, StackedMlpInBf16MatchesFp32ToBf16Precision) {
  torch::manual_seed(4);
  models::StackedMlp net(3, std::vector<int64_t>{20, 32, 6});
  torch::Tensor x = torch::rand({16, 20});
  torch::Tensor xk = torch::rand({3, 16, 20});
  auto all = [&] {
    return torch::cat(
        {net->forward(x).reshape({-1}), net->forward(xk).reshape({-1}), net->forward_one(1, x).reshape({-1})});
  };
  auto groups = [&] {
    auto h = net->forward_groups({x.slice(0, 0, 5), torch::Tensor(), x.slice(0, 5, 16)});
    EXPECT_FALSE(h[1].defined());
    return torch::cat({h[0].reshape({-1}), h[2].reshape({-1})});
  };
  Pass f32 = run(*net, all), g32 = run(*net, groups);
  Pass b16, g16;
  {
    MatmulDtype bf16(torch::kBFloat16);
    b16 = run(*net, all);
    g16 = run(*net, groups);
  }
  expect_close(*net, f32, b16, 0.05);
  expect_close(*net, g32, g16, 0.05);
}

TEST(Precision, Fp32IsTheDefaultAndUntouched) {
  EXPECT_EQ(models::matmul_dtype(), torch::kFloat32);
  torch::Tensor t = torch::rand({3});
  EXPECT_TRUE(models::to_matmul(t).is_same(t));  // no copy in fp32 mode
}
