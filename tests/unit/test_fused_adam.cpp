// FusedAdam (src/train/fused_adam.cpp) against LibTorch's torch::optim::Adam: the same
// algorithm, so after several steps parameters and moments agree to float rounding, with
// two parameter groups of their own learning rates, weight decay, a parameter without a
// gradient, and a float64 parameter (which takes the base class's step).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "train/fused_adam.h"

using namespace mixvae;

namespace {
struct Params {
  std::vector<torch::Tensor> a, b;  // the same starting values, for the two optimisers
};
Params make(torch::Dtype dtype) {
  torch::manual_seed(4);
  Params s;
  for (auto shape : {std::vector<int64_t>{300, 70}, std::vector<int64_t>{70}, std::vector<int64_t>{5, 3}}) {
    torch::Tensor t = torch::randn(shape, dtype);
    s.a.push_back(t.clone().requires_grad_(true));
    s.b.push_back(t.clone().requires_grad_(true));
  }
  return s;
}
template <class Opt>
std::unique_ptr<torch::optim::Adam> build(std::vector<torch::Tensor> p, double wd) {
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(
      std::vector<torch::Tensor>{p[0], p[1]},
      std::make_unique<torch::optim::AdamOptions>(torch::optim::AdamOptions(0.002).eps(1e-4).weight_decay(wd)));
  groups.emplace_back(std::vector<torch::Tensor>{p[2]},
                      std::make_unique<torch::optim::AdamOptions>(torch::optim::AdamOptions(0.05).eps(1e-8)));
  return std::make_unique<Opt>(std::move(groups), torch::optim::AdamOptions(0.002));
}

// Six steps of FusedAdam (step(), or its GPU path step_foreach()) and torch::optim::Adam
// from the same start, with weight decay off and on; parameter 2 gets no gradient in step
// 3, so its step count falls behind the others of its group. Returns the largest
// difference of a parameter or moment, relative to the parameter's size.
double compare(torch::Device device, bool foreach) {
  double worst = 0;
  for (double wd : {0.0, 0.01}) {
    Params s = make(torch::kFloat32);
    for (auto* v : {&s.a, &s.b})
      for (auto& t : *v) t = t.detach().to(device).requires_grad_(true);
    auto fused = build<train::FusedAdam>(s.a, wd);
    auto plain = build<torch::optim::Adam>(s.b, wd);
    for (int step = 0; step < 6; ++step) {
      torch::manual_seed(100 + step);
      for (size_t i = 0; i < s.a.size(); ++i) {
        if (step == 2 && i == 2) continue;  // no gradient this step: skipped by both
        torch::Tensor g = (torch::randn(s.a[i].sizes()) * double(i + 1)).to(device);
        s.a[i].mutable_grad() = g.clone();
        s.b[i].mutable_grad() = g.clone();
      }
      if (foreach)
        static_cast<train::FusedAdam&>(*fused).step_foreach();
      else
        fused->step();
      plain->step();
      for (auto& t : s.a) t.mutable_grad() = torch::Tensor();
      for (auto& t : s.b) t.mutable_grad() = torch::Tensor();
    }
    for (size_t i = 0; i < s.a.size(); ++i) {
      const double scale = 1 + s.b[i].abs().max().item<double>();
      const double moved = (s.b[i].cpu() - make(torch::kFloat32).b[i]).abs().max().item<double>();
      EXPECT_GT(moved, 1e-3) << "parameter " << i;  // the optimisers did move it
      worst = std::max(worst, (s.a[i] - s.b[i]).abs().max().item<double>() / scale);
      auto& fs = static_cast<torch::optim::AdamParamState&>(*fused->state().at(train::adam_state_key(s.a[i])));
      auto& ps = static_cast<torch::optim::AdamParamState&>(*plain->state().at(train::adam_state_key(s.b[i])));
      EXPECT_EQ(fs.step(), ps.step()) << "parameter " << i;
      EXPECT_EQ(fs.step(), i == 2 ? 5 : 6);
      EXPECT_EQ(fs.exp_avg().device().type(), device.type());
      worst = std::max(worst, (fs.exp_avg() - ps.exp_avg()).abs().max().item<double>());
      worst = std::max(worst, (fs.exp_avg_sq() - ps.exp_avg_sq()).abs().max().item<double>());
    }
  }
  return worst;
}
}  // namespace

TEST(FusedAdam, MatchesTorchAdamToRounding) { EXPECT_LT(compare(torch::kCPU, false), 1e-5); }

// The GPU path's operations are torch::optim::Adam's, one per group instead of one per
// parameter; on the CPU they run the same kernels, so the results are identical.
TEST(FusedAdam, ForeachPathIsTorchAdamExactly) { EXPECT_EQ(compare(torch::kCPU, true), 0.0); }

TEST(FusedAdam, GpuParametersTakeTheForeachPath) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device (or a CPU LibTorch): GPU optimiser test skipped";
  // On the GPU, _foreach_ kernels may round a division differently from the per-tensor ones.
  EXPECT_LT(compare(torch::kCUDA, false), 1e-5);
}

TEST(FusedAdam, OtherDtypesTakeTheBaseStepExactly) {
  Params s = make(torch::kFloat64);
  auto fused = build<train::FusedAdam>(s.a, 0.0);
  auto plain = build<torch::optim::Adam>(s.b, 0.0);
  for (int step = 0; step < 3; ++step) {
    for (size_t i = 0; i < s.a.size(); ++i) {
      torch::Tensor g = torch::randn_like(s.a[i]);
      s.a[i].mutable_grad() = g.clone();
      s.b[i].mutable_grad() = g.clone();
    }
    fused->step();
    plain->step();
  }
  for (size_t i = 0; i < s.a.size(); ++i) EXPECT_TRUE(torch::equal(s.a[i], s.b[i])) << "parameter " << i;
}

TEST(FusedAdam, UpdateIsIndependentOfTheThreadCount) {
  const int64_t n = (1 << 18) + 7;  // several parallel chunks and a ragged end
  torch::manual_seed(9);
  torch::Tensor p0 = torch::randn({n}), g = torch::randn({n}), m0 = torch::randn({n}) * 0.1,
                v0 = torch::rand({n}) * 0.1;
  auto run = [&](int threads) {
    const int before = torch::get_num_threads();
    torch::set_num_threads(threads);
    torch::Tensor p = p0.clone(), m = m0.clone(), v = v0.clone();
    train::fused_adam_update(p.data_ptr<float>(), g.data_ptr<float>(), m.data_ptr<float>(), v.data_ptr<float>(), n,
                             0.002, 0.9, 0.999, 1e-4, 0.0, 7);
    torch::set_num_threads(before);
    return std::vector<torch::Tensor>{p, m, v};
  };
  auto one = run(1), two = run(2);
  for (size_t i = 0; i < one.size(); ++i) EXPECT_TRUE(torch::equal(one[i], two[i])) << i;
  EXPECT_FALSE(torch::equal(one[0], p0));
}
