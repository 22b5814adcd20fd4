// GMM EM and k-means on data with known structure (single rank; the multi-rank
// agreement is in tests/mpi).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "dist/communicator.h"
#include "mixture/gmm.h"
#include "mixture/kmeans.h"

using namespace mixvae;

namespace {
// 3 well separated diagonal Gaussians with unequal weights.
torch::Tensor blobs(torch::Tensor* labels) {
  torch::manual_seed(11);
  std::vector<int64_t> sizes = {3000, 2000, 1000};
  torch::Tensor means = torch::tensor({{0.0, 0.0}, {10.0, 0.0}, {0.0, 10.0}}, torch::kFloat64);
  torch::Tensor sds = torch::tensor({{1.0, 0.5}, {0.5, 2.0}, {1.5, 1.0}}, torch::kFloat64);
  std::vector<torch::Tensor> xs, ys;
  for (int c = 0; c < 3; ++c) {
    xs.push_back(means[c] + sds[c] * torch::randn({sizes[c], 2}, torch::kFloat64));
    ys.push_back(torch::full({sizes[c]}, c, torch::kInt64));
  }
  *labels = torch::cat(ys);
  return torch::cat(xs);
}
}  // namespace

TEST(Mixture, GmmRecoversWeightsMeansVariances) {
  auto comm = dist::make_self_communicator();
  torch::Tensor y;
  torch::Tensor x = blobs(&y);
  auto g = mixture::fit_diag_gmm(*comm, x, 3, 0);
  EXPECT_TRUE(g.converged);
  // Match components by their means.
  torch::Tensor truth_means = torch::tensor({{0.0, 0.0}, {10.0, 0.0}, {0.0, 10.0}}, torch::kFloat64);
  torch::Tensor truth_var = torch::tensor({{1.0, 0.25}, {0.25, 4.0}, {2.25, 1.0}}, torch::kFloat64);
  std::vector<double> w = {0.5, 1.0 / 3, 1.0 / 6};
  for (int c = 0; c < 3; ++c) {
    int64_t k = (g.means - truth_means[c]).pow(2).sum(1).argmin().item<int64_t>();
    EXPECT_NEAR(g.weights[k].item<double>(), w[c], 0.01);
    EXPECT_TRUE(torch::allclose(g.means[k], truth_means[c], 0, 0.1)) << g.means[k];
    EXPECT_TRUE(torch::allclose(g.variances[k], truth_var[c], 0.1, 0.05)) << g.variances[k];
  }
  EXPECT_NEAR(g.weights.sum().item<double>(), 1.0, 1e-12);
  // Responsibilities from log_joint classify the blobs.
  torch::Tensor pred = mixture::log_joint(g, x).argmax(1);
  int64_t agree = 0;
  for (int c = 0; c < 3; ++c) {
    torch::Tensor pc = pred.masked_select(y == c);
    agree += std::get<0>(torch::mode(pc)).eq(pc).sum().item<int64_t>();
  }
  EXPECT_GT(double(agree) / x.size(0), 0.99);
}

// fits = N keeps the most likely of N fits from their own k-means++ starts: exactly the
// fit of the seed gmm_fit_seed(seed, f) with the highest mean log-likelihood. The data:
// 6 blobs fitted with K = 4 components, where the starts end in different local optima.
TEST(Mixture, GmmKeepsTheMostLikelyOfSeveralFits) {
  auto comm = dist::make_self_communicator();
  torch::manual_seed(5);
  std::vector<torch::Tensor> xs;
  for (int c = 0; c < 6; ++c)
    xs.push_back(torch::tensor({{4.0 * c, 3.0 * (c % 2)}}, torch::kFloat64) +
                 torch::randn({400 + 150 * c, 2}, torch::kFloat64));
  torch::Tensor x = torch::cat(xs);
  mixture::GmmOptions one;
  std::vector<double> ll;
  for (int64_t f = 0; f < 6; ++f)
    ll.push_back(mixture::fit_diag_gmm(*comm, x, 4, mixture::gmm_fit_seed(17, f), one).mean_log_likelihood);
  ASSERT_EQ(mixture::gmm_fit_seed(17, 0), 17u);
  const auto best = std::max_element(ll.begin(), ll.end());
  // The starts must matter on this data, or the test shows nothing.
  ASSERT_GT(*best - *std::min_element(ll.begin(), ll.end()), 1e-3);
  mixture::GmmOptions six;
  six.fits = 6;
  auto g = mixture::fit_diag_gmm(*comm, x, 4, 17, six);
  EXPECT_EQ(g.mean_log_likelihood, *best);
  auto g_best = mixture::fit_diag_gmm(*comm, x, 4, mixture::gmm_fit_seed(17, best - ll.begin()), one);
  EXPECT_TRUE(torch::equal(g.means, g_best.means));
  EXPECT_TRUE(torch::equal(g.variances, g_best.variances));
  // fits = 1 is the single fit of the seed itself.
  EXPECT_EQ(mixture::fit_diag_gmm(*comm, x, 4, 17, one).mean_log_likelihood, ll[0]);
  six.fits = 0;
  EXPECT_THROW(mixture::fit_diag_gmm(*comm, x, 4, 17, six), std::invalid_argument);
}

TEST(Mixture, KMeansFindsSeparatedCentresAndIsDeterministic) {
  auto comm = dist::make_self_communicator();
  torch::Tensor y;
  torch::Tensor x = blobs(&y);
  auto a = mixture::kmeans(*comm, x, 3, 5);
  auto b = mixture::kmeans(*comm, x, 3, 5);
  EXPECT_TRUE(torch::equal(a.centers, b.centers));
  EXPECT_DOUBLE_EQ(a.inertia, b.inertia);
  torch::Tensor truth = torch::tensor({{0.0, 0.0}, {10.0, 0.0}, {0.0, 10.0}}, torch::kFloat64);
  for (int c = 0; c < 3; ++c) EXPECT_LT((a.centers - truth[c]).pow(2).sum(1).min().item<double>(), 0.1);
  // Inertia is the sum of squared distances to the nearest centre.
  torch::Tensor d = (x.unsqueeze(1) - a.centers.unsqueeze(0)).pow(2).sum(2);
  EXPECT_NEAR(a.inertia, std::get<0>(d.min(1)).sum().item<double>(), 1e-6 * a.inertia);
  EXPECT_THROW(mixture::kmeans(*comm, x.slice(0, 0, 2), 3, 0), std::invalid_argument);
}
