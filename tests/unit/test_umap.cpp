// UMAP (src/mixture/umap.h) against closed forms and data whose clusters are not Gaussian
// blobs: what `[model] init = umap` is for.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "dist/communicator.h"
#include "eval/metrics.h"
#include "mixture/gmm.h"
#include "mixture/umap.h"

using namespace mixvae;

namespace {
// Two interleaved half circles ("moons") of radius 1, 0.5 apart, with Gaussian noise: two
// clusters that a mixture of two diagonal Gaussians in the input space cannot separate.
torch::Tensor moons(int64_t n_per, double noise, torch::Tensor* labels) {
  torch::manual_seed(3);
  torch::Tensor t = torch::rand({n_per}, torch::kFloat64) * M_PI;
  torch::Tensor a = torch::stack({t.cos(), t.sin()}, 1);
  torch::Tensor b = torch::stack({1.0 - t.cos(), 0.5 - t.sin()}, 1);
  *labels = torch::cat({torch::zeros({n_per}, torch::kInt64), torch::ones({n_per}, torch::kInt64)});
  return torch::cat({a, b}) + noise * torch::randn({2 * n_per, 2}, torch::kFloat64);
}

double acc(const torch::Tensor& pred, const torch::Tensor& truth, int64_t k) {
  std::vector<int64_t> p(pred.data_ptr<int64_t>(), pred.data_ptr<int64_t>() + pred.numel());
  std::vector<int64_t> y(truth.data_ptr<int64_t>(), truth.data_ptr<int64_t>() + truth.numel());
  return eval::clustering_acc(eval::Contingency::from_labels(p, y, k, k));
}
}  // namespace

TEST(Umap, CurveParametersMatchTheReferenceDefaults) {
  // The reference implementation's find_ab_params(spread = 1, min_dist = 0.1) gives
  // a = 1.577, b = 0.8951 (its documented defaults for those settings).
  auto [a, b] = mixture::umap_curve(0.1, 1.0);
  EXPECT_NEAR(a, 1.577, 0.01);
  EXPECT_NEAR(b, 0.8951, 0.005);
  // min_dist = 0: the fitted curve stays close to exp(-d) on [0, 3].
  auto [a0, b0] = mixture::umap_curve(0.0, 1.0);
  double worst = 0;
  for (int t = 1; t <= 30; ++t) {
    const double d = 0.1 * t;
    worst = std::max(worst, std::fabs(1.0 / (1.0 + a0 * std::pow(d, 2 * b0)) - std::exp(-d)));
  }
  EXPECT_LT(worst, 0.08);
}

TEST(Umap, NearestNeighboursAreTheBruteForceOnes) {
  // 4 dimensions take the k-d tree, 40 the blocked products; both far from 0 (the
  // cancellation case of |a|^2 + |b|^2 - 2 a.b).
  torch::manual_seed(5);
  for (int64_t dims : {4, 40}) {
    torch::Tensor x = torch::randn({300, dims}) * 3 + 50;
    auto [idx, dist] = mixture::nearest_neighbours(x, 6);
    torch::Tensor d = torch::cdist(x.to(torch::kFloat64), x.to(torch::kFloat64));
    d.fill_diagonal_(1e30);
    auto [v, i] = d.topk(6, 1, false, true);
    EXPECT_TRUE(torch::equal(idx, i)) << dims << " dimensions";
    EXPECT_TRUE(torch::allclose(dist.to(torch::kFloat64), v, 1e-5, 1e-5)) << dims << " dimensions";
  }
}

TEST(Umap, NearestNeighboursSkipOnlyTheRowItselfAmongDuplicatesAndIgnoreThreadCount) {
  // Rows 0..4 coincide: each has the other four at distance 0 and never itself; and the
  // search gives the same answer on 1 thread as on 4.
  torch::manual_seed(7);
  torch::Tensor x = torch::randn({400, 10});
  x.slice(0, 1, 5).copy_(x[0].unsqueeze(0).expand({4, 10}));
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  auto [idx1, dist1] = mixture::nearest_neighbours(x, 8);
  at::set_num_threads(4);
  auto [idx4, dist4] = mixture::nearest_neighbours(x, 8);
  at::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(idx1, idx4));
  EXPECT_TRUE(torch::equal(dist1, dist4));
  for (int64_t i = 0; i < 5; ++i) {
    std::set<int64_t> first4;
    for (int64_t t = 0; t < 4; ++t) {
      first4.insert(idx1[i][t].item<int64_t>());
      EXPECT_EQ(dist1[i][t].item<float>(), 0.f);
    }
    EXPECT_EQ(first4.count(i), 0u) << "row " << i << " is its own neighbour";
    EXPECT_EQ(first4.size(), 4u);
    EXPECT_GT(dist1[i][4].item<float>(), 0.f);
  }
}

TEST(Umap, FuzzyGraphIsSymmetricWithWeightsInUnitInterval) {
  torch::manual_seed(6);
  torch::Tensor x = torch::randn({200, 3});
  mixture::FuzzyGraph g = mixture::fuzzy_graph(x, 10);
  const int64_t e = g.heads.size(0);
  ASSERT_GT(e, 0);
  std::map<std::pair<int64_t, int64_t>, float> w;
  for (int64_t t = 0; t < e; ++t) {
    auto key = std::make_pair(g.heads[t].item<int64_t>(), g.tails[t].item<int64_t>());
    EXPECT_EQ(w.count(key), 0u) << "edge listed twice";
    w[key] = g.weights[t].item<float>();
  }
  for (const auto& [key, v] : w) {
    EXPECT_GT(v, 0.f);
    EXPECT_LE(v, 1.f);
    auto back = w.find({key.second, key.first});
    ASSERT_NE(back, w.end());
    EXPECT_EQ(back->second, v);
  }
  // Every point's nearest neighbour is at membership 1 (rho_i is its distance).
  EXPECT_FLOAT_EQ(g.weights.max().item<float>(), 1.f);
}

TEST(Umap, SpectralStartSeparatesMoonsThatAGaussianMixtureMerges) {
  torch::Tensor y;
  torch::Tensor x = moons(500, 0.06, &y);
  auto self = dist::make_self_communicator();
  mixture::GmmOptions opt;
  opt.fits = 5;
  // The baseline: a diagonal GMM on the points themselves cuts across both moons.
  mixture::DiagGmm raw = mixture::fit_diag_gmm(*self, x, 2, 0, opt);
  const double acc_raw = acc(mixture::log_joint(raw, x).argmax(1), y, 2);
  // UMAP, then a GMM in the embedding.
  mixture::UmapOptions u;
  u.dims = 2;
  u.init = "spectral";
  torch::Tensor e = mixture::umap_embed(x, u, 0);
  ASSERT_EQ(e.sizes(), (std::vector<int64_t>{1000, 2}));
  ASSERT_TRUE(torch::isfinite(e).all().item<bool>());
  mixture::DiagGmm in_e = mixture::fit_diag_gmm(*self, e, 2, 0, opt);
  const double acc_umap = acc(mixture::log_joint(in_e, e).argmax(1), y, 2);
  EXPECT_LT(acc_raw, 0.9);
  EXPECT_GT(acc_umap, 0.98);
  // Same input and seed: the same embedding, bit for bit.
  EXPECT_TRUE(torch::equal(e, mixture::umap_embed(x, u, 0)));
}

TEST(Umap, SpectralStartIsTheGraphsLeadingNontrivialEigenvectors) {
  // Against a dense eigendecomposition of D^-1/2 W D^-1/2 on a small graph: the subspace
  // the start spans is the one of eigenvectors 2..dims+1.
  torch::manual_seed(8);
  torch::Tensor x = torch::randn({120, 3}, torch::kFloat64);
  mixture::FuzzyGraph g = mixture::fuzzy_graph(x, 8);
  const int64_t n = 120, dims = 2;
  torch::Tensor w = torch::zeros({n, n}, torch::kFloat64);
  w.index_put_({g.heads, g.tails}, g.weights.to(torch::kFloat64));
  torch::Tensor dinv = w.sum(1).rsqrt();
  torch::Tensor a = dinv.unsqueeze(1) * w * dinv.unsqueeze(0);
  auto [vals, vecs] = torch::linalg_eigh(a, "L");
  torch::Tensor truth = vecs.flip(1).slice(1, 1, dims + 1);  // [n, dims]
  torch::Tensor s = mixture::spectral_start(g, n, dims, 0, 2000);
  // Projection of the start onto the true subspace keeps (almost) all of it.
  torch::Tensor q = std::get<0>(torch::linalg_qr(s));
  EXPECT_GT((truth.t().mm(q)).pow(2).sum().item<double>(), dims - 1e-3);
}

TEST(Umap, FitUmapGmmGivesTheMomentsOfTheClustersItFinds) {
  torch::Tensor y;
  torch::Tensor x = moons(300, 0.05, &y);
  auto self = dist::make_self_communicator();
  mixture::GmmOptions opt;
  opt.fits = 3;
  mixture::UmapOptions u;
  u.dims = 2;
  u.init = "spectral";
  std::string summary;
  mixture::DiagGmm g = mixture::fit_umap_gmm(*self, x.to(torch::kFloat32), 2, 0, opt, u, &summary);
  EXPECT_NE(summary.find("UMAP"), std::string::npos);
  EXPECT_NEAR(g.weights.sum().item<double>(), 1.0, 1e-9);
  // The components are the two moons' moments (in some order): compare with the truth's.
  torch::Tensor m0 = x.index({y == 0}).mean(0), m1 = x.index({y == 1}).mean(0);
  const bool straight = (g.means[0] - m0).norm().item<double>() < (g.means[0] - m1).norm().item<double>();
  torch::Tensor a = straight ? m0 : m1, b = straight ? m1 : m0;
  EXPECT_LT((g.means[0] - a).norm().item<double>(), 0.05);
  EXPECT_LT((g.means[1] - b).norm().item<double>(), 0.05);
  torch::Tensor v0 = x.index({y == (straight ? 0 : 1)}).var(0, false);
  EXPECT_TRUE(torch::allclose(g.variances[0], v0, 0.1, 0.01));
}
