// GamMM-VAE's math (shared/papers/models-math.md §2): the Gamma log-density, entropy and
// closed-form KL against hand computations and Monte Carlo; the two reparameterised
// samplers against the Gamma's moments, CDF and known derivatives; the Marsaglia–Tsang
// pathwise gradients against LibTorch's implicit ones in distribution; the loss against
// the mean-field identity and Monte Carlo; the moment initialisation; a training smoke
// test through the real recipe.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/config.h"
#include "data/synthetic.h"
#include "dist/communicator.h"
#include "mixture/gamma_moments.h"
#include "models/gamma.h"
#include "models/gammmvae.h"
#include "models/registry.h"
#include "test_util.h"
#include "train/trainer.h"

using namespace mixvae;
namespace g = mixvae::models::gamma;

namespace {
constexpr int64_t S = 400000;

torch::Tensor full64(double v) { return torch::full({S}, v, torch::kFloat64); }
double mean_of(const torch::Tensor& t) { return t.mean().item<double>(); }
double se_of(const torch::Tensor& t) { return t.std().item<double>() / std::sqrt(double(t.numel())); }
// Standard error of the sample variance: sqrt((m4 - var^2) / n).
double se_var(const torch::Tensor& t) {
  torch::Tensor c = t - t.mean();
  double v = c.pow(2).mean().item<double>(), m4 = c.pow(4).mean().item<double>();
  return std::sqrt((m4 - v * v) / double(t.numel()));
}
// Kolmogorov–Smirnov distance of Gamma(alpha, beta) draws to their CDF (igamma is the
// regularised lower incomplete gamma function).
double ks_distance(const torch::Tensor& z, double alpha, double beta) {
  torch::Tensor u = std::get<0>(torch::igamma(torch::full_like(z, alpha), beta * z).sort());
  torch::Tensor grid = torch::arange(1, z.numel() + 1, torch::kFloat64) / double(z.numel());
  return torch::maximum((grid - u).abs(), (grid - 1.0 / double(z.numel()) - u).abs()).max().item<double>();
}

RunConfig small_cfg(int64_t k = 3, int64_t j = 4) {
  models::register_models();
  RunConfig c;
  c.model.name = "gammmvae";
  c.model.clusters = k;
  c.model.latent = j;
  c.model.hidden = "16,8";
  return c;
}
void randomise_prior(models::GamMMVae& m) {
  torch::NoGradGuard ng;
  m.pi_logits.copy_(torch::randn_like(m.pi_logits));
  m.set_prior(torch::softmax(m.pi_logits, 0), 0.5 + 3 * torch::rand_like(m.shape_raw),
              0.5 + 3 * torch::rand_like(m.rate_raw));
}
}  // namespace

TEST(GamMM, LogDensityEntropyAndExpectationMatchHandComputation) {
  const double z = 2.0, a = 3.0, b = 1.5;
  // a log b - lgamma(a) + (a-1) log z - b z
  const double hand = a * std::log(b) - std::lgamma(a) + (a - 1) * std::log(z) - b * z;
  EXPECT_NEAR(hand, -1.0904575, 1e-6);  // worked by hand: 1.2163953 - 0.6931472 + 1.3862944 - 3
  torch::Tensor t = g::log_density(torch::tensor(std::log(z), torch::kFloat64), torch::tensor(z, torch::kFloat64),
                                   torch::tensor(a, torch::kFloat64), torch::tensor(b, torch::kFloat64));
  EXPECT_NEAR(t.item<double>(), hand, 1e-12);
  // The density integrates to 1 (trapezoid on a fine grid).
  torch::Tensor grid = torch::linspace(1e-6, 20.0, 200001, torch::kFloat64);
  torch::Tensor dens =
      g::log_density(grid.log(), grid, torch::tensor(a, torch::kFloat64), torch::tensor(b, torch::kFloat64)).exp();
  EXPECT_NEAR(torch::trapz(dens, grid).item<double>(), 1.0, 1e-6);
  // Entropy of Gamma(1, b) (the exponential) is 1 - log b; E_q[log p] against a
  // hand-written closed form with digamma(1) = -Euler's gamma.
  EXPECT_NEAR(g::entropy(torch::tensor(1.0, torch::kFloat64), torch::tensor(b, torch::kFloat64)).item<double>(),
              1 - std::log(b), 1e-12);
  const double euler = 0.5772156649015329;
  double e_log_p = a * std::log(b) - std::lgamma(a) + (a - 1) * (-euler - std::log(2.0)) - b * 1.0 / 2.0;
  EXPECT_NEAR(g::expected_log_density(torch::tensor(1.0, torch::kFloat64), torch::tensor(2.0, torch::kFloat64),
                                      torch::tensor(a, torch::kFloat64), torch::tensor(b, torch::kFloat64))
                  .item<double>(),
              e_log_p, 1e-12);
}

TEST(GamMM, ClosedFormKlMatchesMonteCarlo) {
  torch::manual_seed(11);
  struct Case {
    double alpha, beta, a, b;
  };
  for (Case c :
       {Case{0.7, 2.0, 3.0, 1.5}, Case{4.0, 0.5, 1.2, 0.3}, Case{20.0, 10.0, 2.0, 1.0}, Case{0.2, 0.1, 0.5, 5.0}}) {
    torch::Tensor z = at::_standard_gamma(full64(c.alpha)) / c.beta;
    torch::Tensor lz = z.log();
    auto T = [](double v) { return torch::tensor(v, torch::kFloat64); };
    torch::Tensor diff = g::log_density(lz, z, T(c.alpha), T(c.beta)) - g::log_density(lz, z, T(c.a), T(c.b));
    double closed = g::kl(T(c.alpha), T(c.beta), T(c.a), T(c.b)).item<double>();
    EXPECT_NEAR(closed, mean_of(diff), 5 * se_of(diff)) << c.alpha << " " << c.beta << " " << c.a << " " << c.b;
    // KL = -H[q] - E_q[log p] exactly (§2.4's check), and both pieces against Monte Carlo.
    double h = g::entropy(T(c.alpha), T(c.beta)).item<double>();
    double elp = g::expected_log_density(T(c.alpha), T(c.beta), T(c.a), T(c.b)).item<double>();
    EXPECT_NEAR(closed, -h - elp, 1e-10);
    torch::Tensor lq = g::log_density(lz, z, T(c.alpha), T(c.beta));
    EXPECT_NEAR(h, -mean_of(lq), 5 * se_of(lq));
  }
  // Zero exactly when the two Gammas are equal.
  EXPECT_NEAR(g::kl(torch::tensor(2.5), torch::tensor(0.7), torch::tensor(2.5), torch::tensor(0.7)).item<double>(), 0,
              1e-6);
}

TEST(GamMM, MarsagliaTsangSamplesHaveTheGammaMeanAndTheirKnownVariance) {
  torch::manual_seed(12);
  const double beta = 2.0;
  for (double alpha : {0.05, 0.3, 1.0, 3.0, 10.0}) {
    torch::Tensor z =
        g::sample_mt(full64(alpha), full64(beta), torch::randn({S}, torch::kFloat64), torch::rand({S}, torch::kFloat64))
            .z;
    // E[z] = alpha / beta exactly: the cube's mean is d (1 + 3c^2) = alpha + 1, the boost multiplies it by
    // alpha/(alpha+1).
    EXPECT_NEAR(mean_of(z), alpha / beta, 5 * se_of(z)) << "alpha " << alpha;
    // The variance: the Gamma's plus the proposal's known excess (no rejection step).
    const double excess = g::mt_variance_excess(alpha, beta);
    double var = z.var().item<double>();
    EXPECT_NEAR(var, alpha / (beta * beta) + excess, 5 * se_var(z)) << "alpha " << alpha;
    EXPECT_GT(excess, 0);
    EXPECT_LT(excess / (alpha / (beta * beta)), 0.08) << "alpha " << alpha;  // a few per cent
  }
}

TEST(GamMM, ExactSamplerIsGammaDistributedLikeStandardGamma) {
  torch::manual_seed(13);
  const double beta = 2.0;
  const int64_t S = 200000;
  auto full64 = [&](double v) { return torch::full({S}, v, torch::kFloat64); };
  const double ks_crit = 1.95 / std::sqrt(double(S));  // KS at the 0.1% level
  for (double alpha : {0.05, 0.5, 3.0}) {
    const int64_t R = models::GamMMVae::kExactRounds;
    torch::Tensor z = g::sample_exact(full64(alpha), full64(beta), torch::randn({R, S}, torch::kFloat64),
                                      torch::rand({R, S}, torch::kFloat64), torch::rand({S}, torch::kFloat64))
                          .z;
    EXPECT_NEAR(mean_of(z), alpha / beta, 5 * se_of(z)) << "alpha " << alpha;
    EXPECT_NEAR(z.var().item<double>(), alpha / (beta * beta), 5 * se_var(z)) << "alpha " << alpha;
    EXPECT_LT(ks_distance(z, alpha, beta), ks_crit) << "alpha " << alpha;
    // LibTorch's own sampler passes the same test (the reference).
    torch::Tensor ref = at::_standard_gamma(full64(alpha)) / beta;
    EXPECT_LT(ks_distance(ref, alpha, beta), ks_crit) << "alpha " << alpha;
    // The approximate M–T transform does not (at small shapes), but stays close.
    torch::Tensor mt =
        g::sample_mt(full64(alpha), full64(beta), torch::randn({S}, torch::kFloat64), torch::rand({S}, torch::kFloat64))
            .z;
    EXPECT_LT(ks_distance(mt, alpha, beta), 0.03) << "alpha " << alpha;
    if (alpha <= 1.0) EXPECT_GT(ks_distance(mt, alpha, beta), ks_crit) << "alpha " << alpha;
  }
}

TEST(GamMM, ReparameterisedGradientsMatchKnownDerivatives) {
  torch::manual_seed(14);
  const double beta0 = 2.0;
  const int64_t S = 200000;
  auto full64 = [&](double v) { return torch::full({S}, v, torch::kFloat64); };
  for (bool exact : {false, true}) {
    for (double alpha0 : {0.3, 1.0, 10.0}) {
      torch::Tensor alpha = full64(alpha0).requires_grad_(), beta = full64(beta0).requires_grad_();
      const int64_t R = models::GamMMVae::kExactRounds;
      g::Sample s =
          exact ? g::sample_exact(alpha, beta, torch::randn({R, S}, torch::kFloat64),
                                  torch::rand({R, S}, torch::kFloat64), torch::rand({S}, torch::kFloat64))
                : g::sample_mt(alpha, beta, torch::randn({S}, torch::kFloat64), torch::rand({S}, torch::kFloat64));
      auto grads = torch::autograd::grad({s.z.sum()}, {alpha, beta});
      torch::Tensor da = grads[0], db = grads[1], z = s.z.detach();
      const std::string tag = std::string(exact ? "exact" : "mt") + " alpha " + std::to_string(alpha0);
      // d/d alpha E[z] = 1/beta and d/d beta E[z] = -alpha/beta^2: sample means of dz/d.
      EXPECT_NEAR(mean_of(da), 1 / beta0, 5 * se_of(da)) << tag;
      EXPECT_NEAR(mean_of(db), -alpha0 / (beta0 * beta0), 5 * se_of(db)) << tag;
      if (exact) {
        // Second-order facts that hold only for an exact sampler:
        // d/d alpha E[log z] = trigamma(alpha) = E[(dz/d alpha) / z];
        // d/d alpha E[z^2]/2 = (2 alpha + 1) / (2 beta^2) = E[z dz/d alpha].
        torch::Tensor r = da / z;
        EXPECT_NEAR(mean_of(r), torch::polygamma(1, torch::tensor(alpha0, torch::kFloat64)).item<double>(),
                    5 * se_of(r))
            << tag;
        torch::Tensor q = z * da;
        EXPECT_NEAR(mean_of(q), (2 * alpha0 + 1) / (2 * beta0 * beta0), 5 * se_of(q)) << tag;
      }
    }
  }
}

TEST(GamMM, MarsagliaTsangPathwiseGradientsMatchImplicitOnesInDistribution) {
  // For any reparameterisation of a 1-D family, E[dz/d alpha | z] is the implicit
  // gradient -dF/d alpha / p(z) (the unique velocity field), which is what
  // at::_standard_gamma_grad computes. Compare the two within deciles of z.
  torch::manual_seed(15);
  const double beta0 = 2.0;
  for (double alpha0 : {0.3, 1.0, 3.0, 10.0}) {
    torch::Tensor alpha = full64(alpha0).requires_grad_();
    g::Sample s =
        g::sample_mt(alpha, full64(beta0), torch::randn({S}, torch::kFloat64), torch::rand({S}, torch::kFloat64));
    torch::Tensor da = torch::autograd::grad({s.z.sum()}, {alpha})[0];
    torch::Tensor z = s.z.detach();
    torch::Tensor implicit = at::_standard_gamma_grad(full64(alpha0), beta0 * z) / beta0;  // z = z~/beta
    torch::Tensor edges = std::get<0>(z.sort()).index({torch::arange(1, 10) * (S / 10)});
    torch::Tensor bin = torch::bucketize(z, edges);
    for (int64_t k = 0; k < 10; ++k) {
      torch::Tensor m = bin == k;
      torch::Tensor a = da.index({m}), b = implicit.index({m});
      double tol = 0.04 * std::abs(mean_of(b)) + 5 * se_of(a) + 1e-9;
      EXPECT_NEAR(mean_of(a), mean_of(b), tol) << "alpha " << alpha0 << " decile " << k;
    }
  }
  // A wrong pathwise gradient (the boost factor's term dropped) fails the same comparison.
  torch::Tensor alpha = full64(0.3).requires_grad_();
  torch::Tensor u = torch::rand({S}, torch::kFloat64);
  g::Sample s = g::sample_mt(alpha, full64(1.0), torch::randn({S}, torch::kFloat64), u);
  torch::Tensor da = torch::autograd::grad({s.z.sum()}, {alpha})[0];
  torch::Tensor without_boost = da + s.z.detach() * u.log() / (0.3 * 0.3);  // remove -z log u / alpha^2
  EXPECT_GT(std::abs(mean_of(without_boost) - 1.0), 20 * se_of(without_boost));
}

TEST(GamMM, LossIsTheNegativeElboWithClosedFormKl) {
  torch::manual_seed(16);
  RunConfig cfg = small_cfg();
  models::GamMMVae m(5, cfg, true);
  randomise_prior(m);
  torch::Tensor x = torch::rand({2, 5});
  models::Noise noise(7, 2, 0, 2);
  models::LossTerms terms = m.loss(x, noise);
  double recon = 0, kl_z = 0, kl_c = 0;
  for (auto& [n, t] : terms.parts) {
    if (n == "recon") recon = t.item<double>();
    if (n == "kl_z") kl_z = t.item<double>();
    if (n == "kl_c") kl_c = t.item<double>();
  }
  EXPECT_NEAR(terms.total.item<double>(), recon + kl_z + kl_c, 1e-3);

  torch::NoGradGuard ng;
  auto [alpha, beta] = m.encode(x);
  // Reconstruction at the same M–T draw (normal then uniform, as the model takes them).
  models::Noise again(7, 2, 0, 2);
  torch::Tensor eps = again.normal(4), u = again.uniform(4);
  g::Sample s = g::sample_mt(alpha, beta, eps, u);
  torch::Tensor logits = m.decode_logits(s.z);
  torch::Tensor p = torch::sigmoid(logits);
  EXPECT_NEAR(recon, -(x * p.log() + (1 - x) * (1 - p).log()).sum().item<double>(), 1e-3);
  // Responsibilities (b): with the mean-field optimum gamma, kl_z + kl_c collapses to
  // -sum_b [logsumexp_c (log pi_c + E_q log p(z|c)) + H[q(z|x_b)]].
  torch::Tensor lj = m.log_joint_expected(alpha, beta);
  double identity = -(torch::logsumexp(lj, 1) + g::entropy(alpha, beta).sum(1)).sum().item<double>();
  EXPECT_NEAR(kl_z + kl_c, identity, 1e-3);
  // The latent part against Monte Carlo: E_q[log q(z|x) - sum_c gamma_c log p(z|c)] + KL(gamma || pi),
  // with gamma held fixed, in float64, per row.
  torch::Tensor gamma = torch::softmax(lj, 1).to(torch::kFloat64);
  torch::Tensor a = m.shapes().to(torch::kFloat64), b = m.rates().to(torch::kFloat64);
  torch::Tensor log_pi = m.log_pi().to(torch::kFloat64);
  double mc_total = 0, var_total = 0;
  for (int64_t r = 0; r < 2; ++r) {
    torch::Tensor al = alpha[r].to(torch::kFloat64), be = beta[r].to(torch::kFloat64);
    torch::Tensor z = at::_standard_gamma(al.unsqueeze(0).expand({S, 4}).contiguous()) / be;
    torch::Tensor lz = z.log();
    torch::Tensor f = g::log_density(lz, z, al, be).sum(1);
    for (int64_t c = 0; c < 3; ++c) f = f - gamma[r][c] * g::log_density(lz, z, a[c], b[c]).sum(1);
    mc_total += mean_of(f) + (gamma[r] * (gamma[r].log() - log_pi)).sum().item<double>();
    var_total += std::pow(se_of(f), 2);
  }
  EXPECT_NEAR(kl_z + kl_c, mc_total, 5 * std::sqrt(var_total) + 1e-3);
}

TEST(GamMM, ResponsibilitiesAndPosteriorAreDistributionsAndGradientsFlow) {
  torch::manual_seed(17);
  for (const char* resp : {"expected", "sampled"}) {
    for (const char* sampler : {"mt", "exact"}) {
      RunConfig cfg = small_cfg();
      cfg.options["gammmvae.responsibilities"] = resp;
      cfg.options["gammmvae.sampler"] = sampler;
      models::GamMMVae m(5, cfg, false);
      randomise_prior(m);
      torch::Tensor x = torch::randn({6, 5});
      torch::Tensor q = m.posterior(x);
      EXPECT_TRUE(torch::allclose(q.sum(1), torch::ones({6}), 1e-5, 1e-6));
      models::Noise noise(3, 6, 0, 6);
      models::LossTerms t = m.loss(x, noise);
      ASSERT_TRUE(std::isfinite(t.total.item<double>())) << resp << " " << sampler;
      t.total.backward();
      for (auto& p : m.network_parameters()) {
        ASSERT_TRUE(p.grad().defined());
        EXPECT_TRUE(torch::isfinite(p.grad()).all().item<bool>());
      }
      for (auto& p : m.mixture_parameters()) {
        ASSERT_TRUE(p.grad().defined()) << resp << " " << sampler;
        EXPECT_GT(p.grad().abs().sum().item<double>(), 0.0) << resp << " " << sampler;
      }
    }
  }
}

TEST(GamMM, ExtremeParametersStayFinite) {
  torch::manual_seed(18);
  for (const char* sampler : {"mt", "exact"}) {
    RunConfig cfg = small_cfg();
    cfg.options["gammmvae.sampler"] = sampler;
    models::GamMMVae m(5, cfg, true);
    {
      torch::NoGradGuard ng;
      m.shape_raw.fill_(-50.0);                             // a -> a_min
      m.rate_raw.fill_(1e4);                                // b -> clamped at 1e3
      for (auto& p : m.network_parameters()) p.mul_(30.0);  // huge encoder outputs
    }
    models::Noise noise(1, 4, 0, 4);
    models::LossTerms t = m.loss(torch::rand({4, 5}), noise);
    EXPECT_TRUE(std::isfinite(t.total.item<double>())) << sampler;
  }
  // Tiny shapes: the boost U^(1/alpha) underflows z but log z stays finite.
  torch::Tensor alpha = torch::full({1000}, 0.01).requires_grad_();
  g::Sample s = g::sample_mt(alpha, torch::ones({1000}), torch::randn({1000}), torch::rand({1000}));
  EXPECT_TRUE(torch::isfinite(s.log_z).all().item<bool>());
  s.log_z.sum().backward();
  EXPECT_TRUE(torch::isfinite(alpha.grad()).all().item<bool>());
  torch::Tensor a2 = torch::full({1000}, 0.01).requires_grad_();
  g::Sample e =
      g::sample_exact(a2, torch::ones({1000}), torch::randn({4, 1000}), torch::rand({4, 1000}), torch::rand({1000}));
  EXPECT_TRUE(torch::isfinite(e.log_z).all().item<bool>());
  e.log_z.sum().backward();
  EXPECT_TRUE(torch::isfinite(a2.grad()).all().item<bool>());
}

TEST(GamMM, PretrainedCodeIsThePosteriorMeanWhenTheVaeStarts) {
  torch::manual_seed(19);
  RunConfig cfg = small_cfg();
  models::GamMMVae m(5, cfg, true);
  torch::Tensor x = torch::rand({8, 5});
  // Pretrain a few steps (only the pretraining parameters move).
  torch::optim::Adam opt(m.pretrain_parameters(), torch::optim::AdamOptions(1e-2));
  for (int i = 0; i < 5; ++i) {
    opt.zero_grad();
    m.pretrain_loss(x, x).total.backward();
    opt.step();
  }
  torch::NoGradGuard ng;
  auto [alpha, beta] = m.encode(x);
  // q(z|x) is centred on the pretrained code (the mean head) with the initial shape.
  EXPECT_TRUE(torch::allclose(alpha, torch::full_like(alpha, 10.0), 1e-5, 1e-5));
  EXPECT_TRUE((m.embed(x) > 0).all().item<bool>());
  EXPECT_TRUE(torch::allclose(m.embed(x), alpha / beta, 1e-5, 1e-7));
  m.set_initial_shape(37.0);
  auto [alpha2, beta2] = m.encode(x);
  EXPECT_TRUE(torch::allclose(alpha2, torch::full_like(alpha2, 37.0), 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(alpha2 / beta2, m.code(x), 1e-5, 1e-7));
  // The pretraining loss is the reconstruction through that code.
  EXPECT_NEAR(m.pretrain_loss(x, x).total.item<double>(),
              m.recon_nll(m.decode_logits(m.code(x)), x).sum().item<double>(), 1e-3);
}

TEST(GamMM, MomentInitialisationRecoversGammaParametersOnAnySplit) {
  torch::manual_seed(20);
  // Two clusters of 2-D Gamma codes with known parameters, one-hot responsibilities.
  const int64_t n = 200000;
  torch::Tensor a_true = torch::tensor({{2.0, 5.0}, {0.7, 9.0}}, torch::kFloat64);
  torch::Tensor b_true = torch::tensor({{4.0, 1.0}, {0.5, 3.0}}, torch::kFloat64);
  torch::Tensor lab = torch::cat({torch::zeros({n / 4}, torch::kLong), torch::ones({3 * n / 4}, torch::kLong)});
  torch::Tensor z = at::_standard_gamma(a_true.index({lab})) / b_true.index({lab});
  torch::Tensor resp = torch::one_hot(lab, 2).to(torch::kFloat64);
  auto comm = dist::make_self_communicator();
  mixture::GammaMixture gm = mixture::fit_gamma_moments(*comm, z, resp);
  EXPECT_TRUE(torch::allclose(gm.weights, torch::tensor({0.25, 0.75}, torch::kFloat64), 0, 1e-12));
  EXPECT_LT(((gm.shapes - a_true) / a_true).abs().max().item<double>(), 0.03);
  EXPECT_LT(((gm.rates - b_true) / b_true).abs().max().item<double>(), 0.03);
  // Any split of the rows (what the all-reduce of the statistics sees on several ranks)
  // gives the same statistics and so the same mixture.
  torch::Tensor st = mixture::moment_statistics(z.slice(0, 0, 12345), resp.slice(0, 0, 12345)) +
                     mixture::moment_statistics(z.slice(0, 12345), resp.slice(0, 12345));
  mixture::GammaMixture split = mixture::gamma_from_statistics(st, 2, 2);
  EXPECT_TRUE(torch::allclose(split.shapes, gm.shapes, 1e-10, 0));
  EXPECT_TRUE(torch::allclose(split.rates, gm.rates, 1e-10, 0));
  // Out-of-range moments keep the cluster mean a/b; an empty cluster takes all the data's.
  torch::Tensor zt =
      torch::cat({torch::full({10, 1}, 2.0, torch::kFloat64) + 1e-5 * torch::randn({10, 1}, torch::kFloat64),
                  torch::full({10, 1}, 5.0, torch::kFloat64)});
  torch::Tensor rt = torch::zeros({20, 3}, torch::kFloat64);
  rt.slice(0, 0, 10).select(1, 0).fill_(1);
  rt.slice(0, 10, 20).select(1, 1).fill_(1);
  mixture::GammaMixture c = mixture::fit_gamma_moments(*comm, zt, rt);
  EXPECT_LE(c.shapes.max().item<double>(), 1e3);
  EXPECT_LE(c.rates.max().item<double>(), 1e3);
  EXPECT_NEAR((c.shapes[0][0] / c.rates[0][0]).item<double>(), 2.0, 1e-4);
  EXPECT_NEAR((c.shapes[2][0] / c.rates[2][0]).item<double>(), zt.mean().item<double>(), 1e-9);  // all the data's mean
  EXPECT_NEAR(c.weights.sum().item<double>(), 1.0, 1e-12);
  // The model takes them as its prior (softplus inverted exactly).
  RunConfig cfg = small_cfg(2, 2);
  models::GamMMVae m(3, cfg, true);
  m.set_prior(gm.weights, gm.shapes, gm.rates);
  EXPECT_TRUE(torch::allclose(m.shapes().to(torch::kFloat64), gm.shapes, 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(m.rates().to(torch::kFloat64), gm.rates, 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(m.log_pi().exp().to(torch::kFloat64), gm.weights, 1e-6, 1e-6));
}

TEST(GamMM, TrainsThroughTheRealRecipeWithoutNaN) {
  test::TempDir dir;
  data::prepare_synthetic(dir / "data.h5", 300, 12, 3, 5);
  models::register_models();
  for (const char* sampler : {"mt", "exact"}) {
    const std::string out = dir / (std::string("run-") + sampler);
    RunConfig cfg = RunConfig::load(
        "", {"--data.path=" + (dir / "data.h5"), "--output.dir=" + out, "--model.name=gammmvae", "--model.hidden=32,16",
             "--model.clusters=3", "--model.latent=3", "--pretrain.epochs=3", "--train.epochs=3",
             "--train.batch_size=50", "--output.progress=false", "--train.threads=1", "--output.samples_per_cluster=2",
             std::string("--gammmvae.sampler=") + sampler});
    auto comm = dist::make_self_communicator();
    train::Trainer t(*comm, cfg);
    train::TrainResult r = t.run(false);
    EXPECT_TRUE(std::isfinite(r.loss)) << sampler;
    EXPECT_EQ(r.eval.samples, 300);
    std::ifstream in(std::filesystem::path(out) / "metrics.jsonl");
    std::string line;
    int lines = 0;
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line);
      if (j.contains("loss")) EXPECT_TRUE(std::isfinite(j["loss"].get<double>())) << line;
      ++lines;
    }
    EXPECT_EQ(lines, 7);  // 3 pretraining epochs, the mixture init, 3 training epochs
    EXPECT_TRUE(std::filesystem::exists(std::filesystem::path(out) / "samples.png"));
  }
}
