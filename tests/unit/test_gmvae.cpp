// GMVAE's math (shared/papers/models-math.md §1): the Gaussian KL against Monte Carlo, the
// conditional-prior density and q(z|x,w) against hand computations, the four ELBO terms
// against a direct and Monte-Carlo evaluation, the M-sample average, the free-bits
// threshold (values and gradients, both scopes), the likelihoods, and a training smoke
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
#include "models/gmvae.h"
#include "models/registry.h"
#include "test_util.h"
#include "train/trainer.h"

using namespace mixvae;

namespace {
constexpr int64_t S = 400000;

// D = 6 inputs, Dx = 3, Dw = 2, K = 3.
RunConfig small_cfg(double free_bits = 0.5, const std::string& scope = "batch", int64_t m = 1) {
  models::register_models();
  RunConfig c;
  c.model.name = "gmvae";
  c.model.clusters = 3;
  c.model.latent = 3;
  c.model.hidden = "16,8";
  c.options["gmvae.w_dim"] = "2";
  c.options["gmvae.prior_hidden"] = "8";
  c.options["gmvae.free_bits"] = std::to_string(free_bits);
  c.options["gmvae.free_bits_scope"] = scope;
  c.options["gmvae.mc_samples"] = std::to_string(m);
  return c;
}
double mean_of(const torch::Tensor& t) { return t.mean().item<double>(); }
double se_of(const torch::Tensor& t) { return t.std().item<double>() / std::sqrt(double(t.numel())); }
// log N(x; mu, diag e^lv) summed over the last dimension, float64.
torch::Tensor log_normal(const torch::Tensor& x, const torch::Tensor& mu, const torch::Tensor& lv) {
  return -0.5 * (std::log(2 * M_PI) + lv + (x - mu).pow(2) / lv.exp()).sum(-1);
}
torch::Tensor flat_grads(models::Gmvae& m) {
  std::vector<torch::Tensor> g;
  for (auto& p : m.parameters())
    g.push_back(p.grad().defined() ? p.grad().flatten().clone() : torch::zeros({p.numel()}));
  return torch::cat(g);
}
// Gradient of f(model) over all parameters.
template <class F>
torch::Tensor grad_of(models::Gmvae& m, F&& f) {
  m.zero_grad();
  f().backward();
  return flat_grads(m);
}
}  // namespace

TEST(Gmvae, GaussianKlMatchesMonteCarlo) {
  torch::manual_seed(1);
  torch::Tensor mu = torch::randn({3}, torch::kFloat64), lv = 0.5 * torch::randn({3}, torch::kFloat64);
  torch::Tensor mk = torch::randn({3}, torch::kFloat64), lvk = 0.5 * torch::randn({3}, torch::kFloat64);
  double closed = models::Gmvae::gaussian_kl(mu, lv, mk, lvk).item<double>();
  torch::Tensor x = mu + (0.5 * lv).exp() * torch::randn({S, 3}, torch::kFloat64);
  torch::Tensor d = log_normal(x, mu, lv) - log_normal(x, mk, lvk);
  EXPECT_NEAR(closed, mean_of(d), 5 * se_of(d));
  EXPECT_NEAR(models::Gmvae::gaussian_kl(mu, lv, mu, lv).item<double>(), 0.0, 1e-12);
}

TEST(Gmvae, LogRhoAndPosteriorAreTheConditionalPriorDensity) {
  torch::manual_seed(2);
  models::Gmvae m(6, small_cfg(), true);
  torch::NoGradGuard ng;
  torch::Tensor x = torch::randn({4, 3}), w = torch::randn({4, 2});
  auto [mu_k, lv_k] = m.prior(w);
  ASSERT_EQ(mu_k.sizes(), (std::vector<int64_t>{4, 3, 3}));
  torch::Tensor lr = m.log_rho(x, mu_k, lv_k);
  for (int64_t b = 0; b < 4; ++b)
    for (int64_t k = 0; k < 3; ++k) {
      double hand = -std::log(3.0);  // log pi_k, uniform
      for (int64_t d = 0; d < 3; ++d) {
        double s2 = std::exp(lv_k[b][k][d].item<double>()),
               diff = x[b][d].item<double>() - mu_k[b][k][d].item<double>();
        hand += -0.5 * std::log(2 * M_PI * s2) - diff * diff / (2 * s2);
      }
      EXPECT_NEAR(lr[b][k].item<double>(), hand, 1e-4);
    }
  // The test-time posterior is q(z | mu_x(y), mu_w(y)) (§1.6).
  torch::Tensor y = torch::rand({4, 6});
  auto q = m.encode(y);
  auto [mk2, lvk2] = m.prior(q.mu_w);
  EXPECT_TRUE(torch::allclose(m.posterior(y), torch::softmax(m.log_rho(q.mu_x, mk2, lvk2), 1), 1e-6, 1e-7));
  EXPECT_TRUE(torch::allclose(m.posterior(y).sum(1), torch::ones({4}), 1e-5, 1e-6));
  EXPECT_TRUE(torch::equal(m.assign(y), m.posterior(y).argmax(1)));
}

TEST(Gmvae, FourTermsMatchDirectAndMonteCarloEvaluation) {
  torch::manual_seed(3);
  models::Gmvae m(6, small_cfg(), true);
  torch::NoGradGuard ng;
  torch::Tensor y = torch::rand({1, 6});
  torch::Tensor ex = torch::randn({1, 1, 3}), ew = torch::randn({1, 1, 2});
  models::Gmvae::Terms t = m.terms(y, ex, ew);
  auto q = m.encode(y);
  torch::Tensor x1 = q.mu_x + (0.5 * q.logvar_x).exp() * ex[0], w1 = q.mu_w + (0.5 * q.logvar_w).exp() * ew[0];
  auto [mu_k, lv_k] = m.prior(w1);  // [1, K, Dx]
  // q(z | x1, w1) by hand: softmax of log(1/K) + log N(x1; mu_k, sigma_k^2).
  torch::Tensor mk = mu_k[0].to(torch::kFloat64), lk = lv_k[0].to(torch::kFloat64);
  torch::Tensor lr = log_normal(x1.to(torch::kFloat64), mk, lk) - std::log(3.0);
  torch::Tensor qz = torch::softmax(lr, 0);
  // 1. -T1: Bernoulli log-likelihood of y under sigmoid(decoder(x1)).
  torch::Tensor p = torch::sigmoid(m.decode(x1)).to(torch::kFloat64);
  torch::Tensor y64 = y.to(torch::kFloat64);
  EXPECT_NEAR(t.recon.item<double>(), -(y64 * p.log() + (1 - y64) * (1 - p).log()).sum().item<double>(), 1e-4);
  // 2. T2 against Monte Carlo over x' ~ q(x|y), weights q(z|x1, w1) held fixed.
  torch::Tensor mx = q.mu_x[0].to(torch::kFloat64), lx = q.logvar_x[0].to(torch::kFloat64);
  torch::Tensor xs = mx + (0.5 * lx).exp() * torch::randn({S, 3}, torch::kFloat64);
  torch::Tensor f2 = torch::zeros({S}, torch::kFloat64);
  for (int64_t k = 0; k < 3; ++k) f2 += qz[k] * (log_normal(xs, mx, lx) - log_normal(xs, mk[k], lk[k]));
  EXPECT_NEAR(t.cond_prior.item<double>(), mean_of(f2), 5 * se_of(f2) + 1e-5);
  // 3. T3 against Monte Carlo over w' ~ q(w|y): E[log q(w') - log N(w'; 0, I)].
  torch::Tensor mw = q.mu_w[0].to(torch::kFloat64), lw = q.logvar_w[0].to(torch::kFloat64);
  torch::Tensor ws = mw + (0.5 * lw).exp() * torch::randn({S, 2}, torch::kFloat64);
  torch::Tensor f3 =
      log_normal(ws, mw, lw) - log_normal(ws, torch::zeros({2}, torch::kFloat64), torch::zeros({2}, torch::kFloat64));
  EXPECT_NEAR(t.w_prior.item<double>(), mean_of(f3), 5 * se_of(f3) + 1e-5);
  // 4. T4 = sum_k q_k log(q_k / pi_k) = log K - H(q).
  EXPECT_NEAR(t.z_prior.item<double>(), (qz * (qz.log() + std::log(3.0))).sum().item<double>(), 1e-5);
  EXPECT_GE(t.z_prior.item<double>(), -1e-6);
  EXPECT_LE(t.z_prior.item<double>(), std::log(3.0) + 1e-6);

  // With M samples every term is the average of the M single-sample terms.
  torch::Tensor ex4 = torch::randn({2, 4, 3}), ew4 = torch::randn({2, 4, 2});
  torch::Tensor y2 = torch::rand({2, 6});
  models::Gmvae::Terms t4 = m.terms(y2, ex4, ew4);
  torch::Tensor r = torch::zeros({2}), c = torch::zeros({2}), z = torch::zeros({2});
  for (int64_t i = 0; i < 4; ++i) {
    models::Gmvae::Terms ti = m.terms(y2, ex4.slice(1, i, i + 1), ew4.slice(1, i, i + 1));
    r += ti.recon / 4;
    c += ti.cond_prior / 4;
    z += ti.z_prior / 4;
    EXPECT_TRUE(torch::allclose(ti.w_prior, t4.w_prior));  // analytic, no sample
  }
  EXPECT_TRUE(torch::allclose(t4.recon, r, 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(t4.cond_prior, c, 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(t4.z_prior, z, 1e-5, 1e-6));
}

TEST(Gmvae, LossValueIsTheRawNegativeElbo) {
  torch::manual_seed(4);
  models::Gmvae m(6, small_cfg(100.0), true);  // threshold far above log K: z-prior gradient off
  torch::Tensor y = torch::rand({5, 6});
  models::Noise n1(9, 5, 0, 5), n2(9, 5, 0, 5);
  models::LossTerms l = m.loss(y, n1);
  torch::Tensor ex = n2.normal(3).view({5, 1, 3}), ew = n2.normal(2).view({5, 1, 2});
  models::Gmvae::Terms t = m.terms(y, ex, ew);
  double raw = (t.recon + t.cond_prior + t.w_prior + t.z_prior).sum().item<double>();
  EXPECT_NEAR(l.total.item<double>(), raw, 1e-3);  // the reference reports the raw T4
  double parts = 0;
  for (auto& [name, v] : l.parts) parts += v.item<double>();
  EXPECT_NEAR(parts, raw, 1e-3);
}

TEST(Gmvae, FreeBitsThresholdBehavesAsSpecified) {
  torch::manual_seed(5);
  const int64_t B = 6;
  torch::Tensor y = torch::rand({B, 6});
  // T4 per row at the step's noise, from a model with the same initial weights.
  auto make = [&](double lambda, const std::string& scope, double weight = 1.0) {
    torch::manual_seed(50);
    RunConfig c = small_cfg(lambda, scope);
    c.options["gmvae.zprior_weight"] = std::to_string(weight);
    return std::make_shared<models::Gmvae>(6, c, true);
  };
  auto noise_terms = [&](models::Gmvae& m) {
    models::Noise n(21, B, 0, B);
    torch::Tensor ex = n.normal(3).view({B, 1, 3}), ew = n.normal(2).view({B, 1, 2});
    return m.terms(y, ex, ew);
  };
  auto loss_grad = [&](models::Gmvae& m) {
    return grad_of(m, [&] {
      models::Noise n(21, B, 0, B);
      return m.loss(y, n).total;
    });
  };
  auto ref_grad = [&](models::Gmvae& m, const torch::Tensor& t4_weights, double weight) {
    // Gradient of sum_b (recon + T2 + T3) + weight * sum_b w_b T4_b.
    return grad_of(m, [&] {
      auto t = noise_terms(m);
      return (t.recon + t.cond_prior + t.w_prior).sum() + weight * (t4_weights * t.z_prior).sum();
    });
  };
  torch::Tensor t4;
  {
    auto m = make(0.0, "batch");
    torch::NoGradGuard ng;
    t4 = noise_terms(*m).z_prior;
  }
  const double mean4 = t4.mean().item<double>(), min4 = t4.min().item<double>(), max4 = t4.max().item<double>();
  ASSERT_LT(min4, mean4 - 1e-4);  // rows differ, so the two scopes can be told apart
  torch::Tensor all = torch::ones({B}), none = torch::zeros({B});
  auto close = [](const torch::Tensor& a, const torch::Tensor& b) {
    return (a - b).abs().max().item<double>() <= 1e-5 * (1 + b.abs().max().item<double>());
  };
  // lambda = 0: the plain ELBO gradient, both scopes.
  for (const char* scope : {"batch", "row"}) {
    auto m = make(0.0, scope);
    EXPECT_TRUE(close(loss_grad(*m), ref_grad(*m, all, 1.0))) << scope;
  }
  // lambda above every row's T4: no z-prior gradient at all, both scopes.
  for (const char* scope : {"batch", "row"}) {
    auto m = make(max4 + 0.1, scope);
    EXPECT_TRUE(close(loss_grad(*m), ref_grad(*m, none, 1.0))) << scope;
    EXPECT_FALSE(close(loss_grad(*m), ref_grad(*m, all, 1.0))) << scope;  // the T4 gradient is not zero
  }
  // min < lambda < mean: the batch mean is above lambda, so batch scope keeps every row's
  // gradient; row scope keeps only the rows above lambda.
  {
    const double lambda = 0.5 * (min4 + mean4);
    auto mb = make(lambda, "batch");
    EXPECT_TRUE(close(loss_grad(*mb), ref_grad(*mb, all, 1.0)));
    auto mr = make(lambda, "row");
    EXPECT_TRUE(close(loss_grad(*mr), ref_grad(*mr, (t4 > lambda).to(torch::kFloat32), 1.0)));
    EXPECT_FALSE(close(loss_grad(*mr), ref_grad(*mr, all, 1.0)));
  }
  // mean < lambda < max: batch scope switches the z-prior gradient off, row scope keeps the rows above.
  {
    const double lambda = 0.5 * (mean4 + max4);
    auto mb = make(lambda, "batch");
    EXPECT_TRUE(close(loss_grad(*mb), ref_grad(*mb, none, 1.0)));
    auto mr = make(lambda, "row");
    EXPECT_TRUE(close(loss_grad(*mr), ref_grad(*mr, (t4 > lambda).to(torch::kFloat32), 1.0)));
  }
  // The reference's cvWeight: the active z-prior gradient is scaled, the value is not.
  {
    auto m = make(0.0, "batch", 0.4);
    EXPECT_TRUE(close(loss_grad(*m), ref_grad(*m, all, 0.4)));
  }
  // The value is always the raw negative ELBO, whatever lambda.
  for (double lambda : {0.0, 0.5 * (min4 + mean4), max4 + 0.1}) {
    auto m = make(lambda, "batch");
    models::Noise n(21, B, 0, B);
    auto t = noise_terms(*m);
    EXPECT_NEAR(m->loss(y, n).total.item<double>(),
                (t.recon + t.cond_prior + t.w_prior + t.z_prior).sum().item<double>(), 1e-3);
  }
}

TEST(Gmvae, ReferenceQzGradientReversesTermTwoThroughQWhileTheThresholdIsOn) {
  // gmvae.qz_gradient = reference: Nat-D/GMVAE's main.lua multiplies the q(z) gradient of
  // term 2 by -1 when its free-bits test is on; the KLs' own gradients are unchanged.
  torch::manual_seed(9);
  const int64_t B = 5;
  torch::Tensor y = torch::rand({B, 6});
  auto make = [&](double lambda, const std::string& qzg) {
    torch::manual_seed(90);
    RunConfig c = small_cfg(lambda, "batch");
    c.options["gmvae.qz_gradient"] = qzg;
    return std::make_shared<models::Gmvae>(6, c, true);
  };
  auto terms = [&](models::Gmvae& m) {
    models::Noise n(31, B, 0, B);
    torch::Tensor ex = n.normal(3).view({B, 1, 3}), ew = n.normal(2).view({B, 1, 2});
    return m.terms(y, ex, ew);
  };
  auto loss = [&](models::Gmvae& m) {
    models::Noise n(31, B, 0, B);
    return m.loss(y, n).total;
  };
  auto close = [](const torch::Tensor& a, const torch::Tensor& b) {
    return (a - b).abs().max().item<double>() <= 1e-5 * (1 + b.abs().max().item<double>());
  };
  // On (lambda = 0 < T4): d/dtheta [sum q.detach() KL - sum q KL.detach()] + the other terms.
  {
    auto m = make(0.0, "reference");
    torch::Tensor got = grad_of(*m, [&] { return loss(*m); });
    torch::Tensor want = grad_of(*m, [&] {
      auto t = terms(*m);
      torch::Tensor t2 = (t.qz.detach() * t.kl - t.qz * t.kl.detach()).sum(-1).mean(1).sum();
      return (t.recon + t.w_prior + t.z_prior).sum() + t2;
    });
    EXPECT_TRUE(close(got, want));
    auto e = make(0.0, "elbo");
    EXPECT_FALSE(close(got, grad_of(*e, [&] { return loss(*e); })));  // differs from the ELBO's
    // The value is still the raw negative ELBO.
    auto t = terms(*m);
    EXPECT_NEAR(loss(*m).item<double>(), (t.recon + t.cond_prior + t.w_prior + t.z_prior).sum().item<double>(), 1e-3);
  }
  // Off (lambda above log K): the ELBO's gradient without the z-prior term, as elbo mode.
  {
    auto m = make(10.0, "reference"), e = make(10.0, "elbo");
    EXPECT_TRUE(close(grad_of(*m, [&] { return loss(*m); }), grad_of(*e, [&] { return loss(*e); })));
  }
}

TEST(Gmvae, RowScopeIsInvariantToHowTheBatchIsSplit) {
  // What each of W ranks computes: its rows, with its slice of the global batch's noise.
  // Row scope (and batch scope without an active threshold) adds up to the whole batch.
  torch::manual_seed(6);
  torch::Tensor y = torch::rand({6, 6});
  for (auto [lambda, scope] : {std::pair<double, const char*>{0.3, "row"}, {0.0, "batch"}}) {
    torch::manual_seed(60);
    models::Gmvae m(6, small_cfg(lambda, scope, 2), true);
    models::Noise whole(8, 6, 0, 6), a(8, 6, 0, 2), b(8, 6, 2, 6);
    torch::Tensor g_whole = grad_of(m, [&] { return m.loss(y, whole).total; });
    models::Noise again(8, 6, 0, 6);
    double v_whole = m.loss(y, again).total.item<double>();
    m.zero_grad();
    torch::Tensor la = m.loss(y.slice(0, 0, 2), a).total, lb = m.loss(y.slice(0, 2, 6), b).total;
    (la + lb).backward();
    torch::Tensor g_split = flat_grads(m);
    EXPECT_NEAR((la + lb).item<double>(), v_whole, 1e-3) << scope;
    EXPECT_LT((g_split - g_whole).abs().max().item<double>(), 1e-4 * (1 + g_whole.abs().max().item<double>())) << scope;
  }
}

TEST(Gmvae, LikelihoodsAreHandComputed) {
  torch::manual_seed(7);
  torch::Tensor y = torch::rand({3, 6}), x = torch::randn({3, 3});
  {
    models::Gmvae m(6, small_cfg(), true);
    torch::NoGradGuard ng;
    torch::Tensor p = torch::sigmoid(m.decode(x));
    EXPECT_TRUE(torch::allclose(m.recon_nll(x, y), -(y * p.log() + (1 - y) * (1 - p).log()).sum(1), 1e-4, 1e-5));
  }
  {
    models::Gmvae m(6, small_cfg(), false);  // Gaussian, learned variance (the default)
    torch::NoGradGuard ng;
    torch::Tensor mu = m.decode(x), lv = m.decode_logvar(x);
    torch::Tensor hand = 0.5 * (std::log(2 * M_PI) + lv + (y - mu).pow(2) / lv.exp()).sum(1);
    EXPECT_TRUE(torch::allclose(m.recon_nll(x, y), hand, 1e-4, 1e-5));
  }
  {
    RunConfig c = small_cfg();
    c.options["gmvae.gaussian_variance"] = "fixed";
    models::Gmvae m(6, c, false);
    torch::NoGradGuard ng;
    EXPECT_TRUE(torch::allclose(m.recon_nll(x, y), (m.decode(x) - y).pow(2).sum(1), 1e-5, 1e-6));
    EXPECT_THROW(m.decode_logvar(x), std::logic_error);
  }
}

TEST(Gmvae, RecipeSamplesGradientsAndExtremes) {
  torch::manual_seed(8);
  RunConfig cfg = small_cfg(0.0);
  models::Gmvae m(6, cfg, true);
  auto recipe = m.recipe(cfg);
  ASSERT_EQ(recipe.size(), 1u);  // the paper: no pretraining, no mixture initialisation
  EXPECT_EQ(recipe[0].kind, models::StageKind::Main);
  EXPECT_TRUE(m.mixture_parameters().empty());
  EXPECT_EQ(m.network_parameters().size(), m.parameters().size());
  models::Noise noise(1, 4, 0, 4);
  m.loss(torch::rand({4, 6}), noise).total.backward();
  for (auto& p : m.network_parameters()) {
    ASSERT_TRUE(p.grad().defined());
    EXPECT_GT(p.grad().abs().sum().item<double>(), 0.0);
  }
  auto gen = torch::make_generator<torch::CPUGeneratorImpl>(3);
  torch::Tensor s = m.sample(2, 5, gen);
  ASSERT_EQ(s.sizes(), (std::vector<int64_t>{5, 6}));
  EXPECT_TRUE(((s >= 0) & (s <= 1)).all().item<bool>());
  {
    torch::NoGradGuard ng;
    for (auto& p : m.parameters()) p.mul_(40.0);  // every log-variance head saturates the clamp
  }
  models::Noise n2(2, 4, 0, 4);
  auto l = m.loss(torch::rand({4, 6}), n2);
  EXPECT_TRUE(std::isfinite(l.total.item<double>()));
  EXPECT_TRUE(torch::isfinite(m.posterior(torch::rand({4, 6}))).all().item<bool>());
}

TEST(Gmvae, TrainsThroughTheRealRecipeWithoutNaN) {
  test::TempDir dir;
  data::prepare_synthetic(dir / "data.h5", 300, 12, 3, 4);
  models::register_models();
  for (const char* scope : {"batch", "row"}) {
    const std::string out = dir / (std::string("run-") + scope);
    RunConfig cfg = RunConfig::load(
        "",
        {"--data.path=" + (dir / "data.h5"), "--output.dir=" + out, "--model.name=gmvae", "--model.hidden=32,16",
         "--model.clusters=3", "--model.latent=4", "--gmvae.w_dim=3", "--gmvae.prior_hidden=16", "--gmvae.mc_samples=2",
         "--gmvae.free_bits_scope=" + std::string(scope), "--train.epochs=3", "--train.batch_size=50",
         "--train.lr=0.001", "--output.progress=false", "--train.threads=1", "--output.samples_per_cluster=2"});
    auto comm = dist::make_self_communicator();
    train::Trainer t(*comm, cfg);
    train::TrainResult r = t.run(false);
    EXPECT_TRUE(std::isfinite(r.loss)) << scope;
    EXPECT_EQ(r.eval.samples, 300);
    std::ifstream in(std::filesystem::path(out) / "metrics.jsonl");
    std::string line;
    int lines = 0;
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line);
      EXPECT_EQ(j["stage"], "train");
      EXPECT_TRUE(std::isfinite(j["loss"].get<double>())) << line;
      for (const char* k : {"recon", "kl_x", "kl_w", "kl_z"}) EXPECT_TRUE(j.contains(k)) << k;
      ++lines;
    }
    EXPECT_EQ(lines, 3);  // one main stage
  }
}
