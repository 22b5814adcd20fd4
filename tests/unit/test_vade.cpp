// VaDE's math against closed forms and Monte-Carlo estimates.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "core/config.h"
#include "models/vade.h"

using namespace mixvae;

namespace {
ModelConfig small(int64_t k = 3, int64_t j = 4) {
  ModelConfig m;
  m.clusters = k;
  m.latent = j;
  m.hidden = "16,8";
  return m;
}
void randomise_mixture(models::Vade& v) {
  torch::NoGradGuard ng;
  v.pi_logits.copy_(torch::randn_like(v.pi_logits));
  v.mu_c.copy_(torch::randn_like(v.mu_c));
  v.log_sigma2_c.copy_(0.5 * torch::randn_like(v.log_sigma2_c));
}
}  // namespace

TEST(Vade, GaussianCrossEntropyMatchesMonteCarlo) {
  torch::manual_seed(1);
  torch::Tensor mu = torch::randn({2, 3}, torch::kFloat64), logvar = 0.3 * torch::randn({2, 3}, torch::kFloat64);
  torch::Tensor mu_c = torch::randn({4, 3}, torch::kFloat64), ls2 = 0.3 * torch::randn({4, 3}, torch::kFloat64);
  torch::Tensor closed = models::Vade::gaussian_cross_entropy(mu, logvar, mu_c, ls2);  // [2, 4]
  const int64_t S = 400000;
  for (int64_t b = 0; b < 2; ++b) {
    torch::Tensor z = mu[b] + torch::exp(0.5 * logvar[b]) * torch::randn({S, 3}, torch::kFloat64);
    for (int64_t c = 0; c < 4; ++c) {
      torch::Tensor lp = -0.5 * (std::log(2 * M_PI) + ls2[c] + (z - mu_c[c]).pow(2) / ls2[c].exp()).sum(1);
      double mc = -lp.mean().item<double>();
      double se = lp.std().item<double>() / std::sqrt(double(S));
      EXPECT_NEAR(closed[b][c].item<double>(), mc, 5 * se + 1e-9) << "b=" << b << " c=" << c;
    }
  }
}

TEST(Vade, LogJointIsLogPiPlusGaussianDensity) {
  torch::manual_seed(2);
  models::Vade v(5, small(), true);
  randomise_mixture(v);
  torch::Tensor z = torch::randn({6, 4});
  torch::Tensor lj = v.log_joint(z);
  torch::Tensor pi = torch::softmax(v.pi_logits, 0);
  for (int64_t b = 0; b < 6; ++b)
    for (int64_t c = 0; c < 3; ++c) {
      double lp = std::log(pi[c].item<double>());
      for (int64_t j = 0; j < 4; ++j) {
        double s2 = std::exp(v.log_sigma2_c[c][j].item<double>());
        double d = z[b][j].item<double>() - v.mu_c[c][j].item<double>();
        lp += -0.5 * std::log(2 * M_PI * s2) - d * d / (2 * s2);
      }
      EXPECT_NEAR(lj[b][c].item<double>(), lp, 1e-4);
    }
  // The posterior is a distribution over clusters.
  torch::Tensor q = v.posterior(torch::rand({6, 5}));
  EXPECT_TRUE(torch::allclose(q.sum(1), torch::ones({6}), 1e-5, 1e-6));
  EXPECT_EQ(v.assign(torch::rand({6, 5})).size(0), 6);
}

TEST(Vade, LossIsNegativeElboOfTheMeanFieldPosterior) {
  // With the encoder's q(z|x) and gamma fixed, the analytic loss equals
  // E_q[log q(z|x) + log q(c|x) - log p(c) - log p(z|c) - log p(x|z)]; check the latent
  // part (everything but reconstruction) against a Monte-Carlo estimate that uses the
  // same gamma for all z.
  torch::manual_seed(3);
  models::Vade v(5, small(), true);
  randomise_mixture(v);
  torch::Tensor x = torch::rand({1, 5});
  models::Noise noise(7, 1, 0, 1);
  auto terms = v.loss(x, noise);
  double kl_z = 0, kl_c = 0;
  for (auto& [n, t] : terms.parts) {
    if (n == "kl_z") kl_z = t.item<double>();
    if (n == "kl_c") kl_c = t.item<double>();
  }
  // Recompute gamma from the same noise draw.
  torch::NoGradGuard ng;
  auto [mu, logvar] = v.encode(x);
  models::Noise again(7, 1, 0, 1);
  torch::Tensor z0 = mu + torch::exp(0.5 * logvar) * again.normal(4);
  torch::Tensor gamma = torch::softmax(v.log_joint(z0), 1)[0].to(torch::kFloat64);
  torch::Tensor log_pi = torch::log_softmax(v.pi_logits, 0).to(torch::kFloat64);
  const int64_t S = 400000;
  torch::Tensor m = mu[0].to(torch::kFloat64), lv = logvar[0].to(torch::kFloat64);
  torch::Tensor z = m + torch::exp(0.5 * lv) * torch::randn({S, 4}, torch::kFloat64);
  torch::Tensor log_q = -0.5 * (std::log(2 * M_PI) + lv + (z - m).pow(2) / lv.exp()).sum(1);
  torch::Tensor mc = log_q.clone();
  for (int64_t c = 0; c < 3; ++c) {
    torch::Tensor ls2 = v.log_sigma2_c[c].to(torch::kFloat64), mc_c = v.mu_c[c].to(torch::kFloat64);
    torch::Tensor lp = -0.5 * (std::log(2 * M_PI) + ls2 + (z - mc_c).pow(2) / ls2.exp()).sum(1);
    mc = mc - gamma[c] * lp;
  }
  double expected_kl_c = (gamma * (gamma.log() - log_pi)).sum().item<double>();
  EXPECT_NEAR(kl_c, expected_kl_c, 1e-4);
  double se = mc.std().item<double>() / std::sqrt(double(S));
  EXPECT_NEAR(kl_z, mc.mean().item<double>(), 5 * se + 1e-4);
}

TEST(Vade, ReconstructionTermsAreTheLikelihoods) {
  torch::manual_seed(4);
  models::Vade bern(5, small(), true), gauss(5, small(), false);
  torch::Tensor x = torch::rand({3, 5}), out = torch::randn({3, 5});
  torch::Tensor p = torch::sigmoid(out);
  torch::Tensor bce = -(x * p.log() + (1 - x) * (1 - p).log()).sum(1);
  EXPECT_TRUE(torch::allclose(bern.recon_nll(out, x), bce, 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose(gauss.recon_nll(out, x), (out - x).pow(2).sum(1), 1e-5, 1e-6));
}

TEST(Vade, GradientsReachNetworksAndMixture) {
  torch::manual_seed(5);
  models::Vade v(5, small(), true);
  randomise_mixture(v);
  models::Noise noise(1, 4, 0, 4);
  auto terms = v.loss(torch::rand({4, 5}), noise);
  terms.total.backward();
  for (auto& p : v.network_parameters()) ASSERT_TRUE(p.grad().defined());
  for (auto& p : v.mixture_parameters()) {
    ASSERT_TRUE(p.grad().defined());
    EXPECT_GT(p.grad().abs().sum().item<double>(), 0.0);
  }
  EXPECT_TRUE(std::isfinite(terms.total.item<double>()));
}

TEST(Vade, ExtremeLogVariancesStayFinite) {
  torch::manual_seed(6);
  ModelConfig m = small();
  models::Vade v(5, m, true);
  {
    torch::NoGradGuard ng;
    v.log_sigma2_c.fill_(-80.0);  // clamped to -logvar_clamp inside
    v.mu_c.fill_(1e3);
  }
  models::Noise noise(1, 4, 0, 4);
  auto terms = v.loss(torch::rand({4, 5}), noise);
  EXPECT_TRUE(std::isfinite(terms.total.item<double>()));
  EXPECT_TRUE(torch::isfinite(v.posterior(torch::rand({4, 5}))).all().item<bool>());
}

TEST(Vade, NoiseIsTheSameForASampleWhateverTheSplit) {
  models::Noise whole(99, 10, 0, 10), part(99, 10, 4, 7);
  torch::Tensor a = whole.normal(3), b = part.normal(3);
  EXPECT_TRUE(torch::equal(a.slice(0, 4, 7), b));
}
