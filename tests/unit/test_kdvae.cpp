// k-DVAE / k-DAE: the batched k networks against a per-network loop (values and
// gradients), Eq. 6 and Eq. 8 against direct computations, the KL closed form against
// Monte Carlo, and the warm-up's per-cluster objective.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "core/config.h"
#include "core/errors.h"
#include "models/kdvae.h"
#include "models/registry.h"

using namespace mixvae;

namespace {
RunConfig small_cfg(const std::string& name, int64_t k = 3, int64_t j = 2) {
  models::register_models();
  RunConfig c;
  c.model.name = name;
  c.model.clusters = k;
  c.model.latent = j;
  c.model.hidden = "8,6";
  c.options[name + ".hidden"] = "7,5";
  return c;
}

double bernoulli_logp(const torch::Tensor& logits, const torch::Tensor& x) {
  double s = 0;
  for (int64_t d = 0; d < x.size(0); ++d) {
    double p = 1.0 / (1.0 + std::exp(-logits[d].item<double>()));
    double xv = x[d].item<double>();
    s += xv * std::log(p) + (1 - xv) * std::log(1 - p);
  }
  return s;
}
}  // namespace

TEST(KDvae, BatchedNetworksEqualLoopInValuesAndGradients) {
  for (bool variational : {true, false}) {
    torch::manual_seed(3);
    RunConfig cfg = small_cfg(variational ? "kdvae" : "kdae", 4, 3);
    models::KDvae m(11, cfg, true, variational);
    torch::Tensor x = torch::rand({5, 11});
    torch::Tensor eps = torch::randn({4, 5, 3});
    for (bool sampled : {true, false}) {
      torch::Tensor a = m.scores(x, sampled ? &eps : nullptr);
      torch::Tensor b = m.scores_loop(x, sampled ? &eps : nullptr);
      ASSERT_EQ(a.sizes(), b.sizes());
      EXPECT_LT((a - b).abs().max().item<double>(), 1e-4) << "variational " << variational << " sampled " << sampled;
      // Gradients of the hard-max objective, every stacked parameter.
      m.zero_grad();
      (-std::get<0>(a.max(0)).sum()).backward();
      std::vector<torch::Tensor> ga;
      for (auto& p : m.network_parameters()) ga.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
      m.zero_grad();
      (-std::get<0>(b.max(0)).sum()).backward();
      auto params = m.network_parameters();
      for (size_t i = 0; i < params.size(); ++i) {
        torch::Tensor gb = params[i].grad().defined() ? params[i].grad() : torch::zeros_like(params[i]);
        EXPECT_LT((ga[i] - gb).abs().max().item<double>(), 1e-4) << "parameter " << i;
      }
      m.zero_grad();
    }
  }
}

TEST(KDvae, Eq8ScoreMatchesDirectComputation) {
  torch::manual_seed(4);
  RunConfig cfg = small_cfg("kdvae", 3, 2);
  models::KDvae m(6, cfg, true, true);
  torch::NoGradGuard ng;
  torch::Tensor x = torch::rand({4, 6}).round();
  torch::Tensor s = m.scores(x, nullptr);  // [K, B]
  for (int64_t i = 0; i < 3; ++i) {
    for (int64_t b = 0; b < 4; ++b) {
      torch::Tensor h = m.encoders()->forward_one(i, x[b].unsqueeze(0))[0];
      torch::Tensor mu = h.slice(0, 0, 2), logvar = h.slice(0, 2, 4);
      torch::Tensor logits = m.decoders()->forward_one(i, mu.unsqueeze(0))[0];
      // log p(x | mu_i) - 1/2 ||mu_i||^2 + sum_s log sigma_is  (Eq. 8)
      double direct =
          bernoulli_logp(logits, x[b]) - 0.5 * mu.pow(2).sum().item<double>() + (0.5 * logvar).sum().item<double>();
      EXPECT_NEAR(s[i][b].item<double>(), direct, 1e-4);
    }
  }
  // Once the k networks train, the assignment is Eq. 8's argmax (before that it is the
  // initialiser's).
  m.set_stage(int64_t(m.recipe(cfg).size()) - 1);
  EXPECT_TRUE(torch::equal(m.assign(x), m.scores_loop(x, nullptr).argmax(0)));
}

TEST(KDvae, SampledScoreIsLogLikelihoodMinusClosedFormKl) {
  torch::manual_seed(5);
  RunConfig cfg = small_cfg("kdvae", 2, 3);
  models::KDvae m(5, cfg, false, true);  // Gaussian (squared-error) likelihood
  torch::NoGradGuard ng;
  torch::Tensor x = torch::randn({3, 5});
  torch::Tensor eps = torch::randn({2, 3, 3});
  torch::Tensor s = m.scores(x, &eps);
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t b = 0; b < 3; ++b) {
      torch::Tensor h = m.encoders()->forward_one(i, x[b].unsqueeze(0))[0];
      torch::Tensor mu = h.slice(0, 0, 3), lv = h.slice(0, 3, 6);
      torch::Tensor z = mu + (0.5 * lv).exp() * eps[i][b];
      torch::Tensor out = m.decoders()->forward_one(i, z.unsqueeze(0))[0];
      double kl = 0;
      for (int64_t j = 0; j < 3; ++j) {
        double m_ = mu[j].item<double>(), v = std::exp(lv[j].item<double>());
        kl += 0.5 * (m_ * m_ + v - 1 - std::log(v));
      }
      EXPECT_NEAR(s[i][b].item<double>(), -(out - x[b]).pow(2).sum().item<double>() - kl, 1e-4);
    }
}

TEST(KDvae, GaussianKlClosedFormMatchesMonteCarlo) {
  // KL(N(mu, diag s2) || N(0, I)) = 1/2 sum (mu^2 + s2 - 1 - log s2), the term of Eq. 6.
  torch::manual_seed(6);
  torch::Tensor mu = torch::randn({4}, torch::kFloat64), lv = 0.5 * torch::randn({4}, torch::kFloat64);
  double closed = 0.5 * (mu.pow(2) + lv.exp() - 1 - lv).sum().item<double>();
  const int64_t S = 400000;
  torch::Tensor z = mu + (0.5 * lv).exp() * torch::randn({S, 4}, torch::kFloat64);
  torch::Tensor log_q = -0.5 * (std::log(2 * M_PI) + lv + (z - mu).pow(2) / lv.exp()).sum(1);
  torch::Tensor log_p = -0.5 * (std::log(2 * M_PI) + z.pow(2)).sum(1);
  torch::Tensor d = log_q - log_p;
  double se = d.std().item<double>() / std::sqrt(double(S));
  EXPECT_NEAR(d.mean().item<double>(), closed, 5 * se);
}

TEST(KDvae, LossIsMinusTheMaxOverNetworksAndWarmupUsesTheInitialCluster) {
  torch::manual_seed(7);
  RunConfig cfg = small_cfg("kdvae", 3, 2);
  models::KDvae m(6, cfg, true, true);
  auto recipe = m.recipe(cfg);
  ASSERT_EQ(recipe.size(), 6u);
  EXPECT_EQ(recipe[4].name, "warmup");
  EXPECT_EQ(recipe[5].name, "train");
  torch::Tensor x = torch::rand({4, 6});
  models::Noise n1(42, 4, 0, 4), n2(42, 4, 0, 4);
  torch::Tensor eps = n2.normal(3 * 2).view({4, 3, 2}).permute({1, 0, 2});
  torch::Tensor s = m.scores(x, &eps);

  m.set_stage(5);
  models::LossTerms main = m.loss(x, n1);
  EXPECT_NEAR(main.total.item<double>(), -std::get<0>(s.max(0)).sum().item<double>(), 1e-3);

  m.set_stage(4);
  models::Noise n3(42, 4, 0, 4);
  models::LossTerms warm = m.loss(x, n3);
  torch::Tensor a = m.initial_cluster(x);
  EXPECT_NEAR(warm.total.item<double>(), -s.gather(0, a.unsqueeze(0)).sum().item<double>(), 1e-3);
}

TEST(KDvae, KdaeRecipeStartsFromAnAutoencoderAndScoresReconstruction) {
  torch::manual_seed(8);
  RunConfig cfg = small_cfg("kdae", 2, 2);
  models::KDvae m(4, cfg, false, false);
  EXPECT_EQ(m.name(), "kdae");
  auto recipe = m.recipe(cfg);
  ASSERT_EQ(recipe.size(), 4u);
  EXPECT_EQ(recipe[1].name, "kmeans_init");
  torch::NoGradGuard ng;
  torch::Tensor x = torch::randn({3, 4});
  torch::Tensor s = m.scores(x, nullptr);
  torch::Tensor code = m.encoders()->forward_one(1, x);
  torch::Tensor rec = m.decoders()->forward_one(1, code);
  EXPECT_LT((s[1] + (rec - x).pow(2).sum(1)).abs().max().item<double>(), 1e-4);
}

TEST(Registry, EveryModelIsBuiltByNameAndUnknownNamesAreUsageErrors) {
  models::register_models();
  for (const auto& info : models::model_registry()) {
    RunConfig c = small_cfg(info.name);
    auto m = models::make_model(c, 6, true);
    EXPECT_EQ(m->name(), info.name);
    EXPECT_FALSE(m->recipe(c).empty());
  }
  RunConfig bad = small_cfg("nosuch");
  EXPECT_THROW(models::make_model(bad, 6, true), UsageError);
  // A model's own section is parsed and typed; typos are errors.
  RunConfig ok = RunConfig::load("", {"--model.name=kdvae", "--kdvae.epochs=7"});
  EXPECT_EQ(ok.opt_int("kdvae.epochs"), 7);
  EXPECT_NE(ok.to_ini().find("[kdvae]"), std::string::npos);
  EXPECT_EQ(RunConfig::load("", {}).to_ini().find("[kdvae]"), std::string::npos);  // vade runs omit it
  EXPECT_THROW(RunConfig::load("", {"--model.name=kdvae", "--kdvae.epochs=abc"}), UsageError);
  EXPECT_THROW(RunConfig::load("", {"--model.name=kdvae", "--kdvae.epoch=3"}), UsageError);
  EXPECT_THROW(RunConfig::load("", {"--model.name=vadee"}), UsageError);
}

// The default backward pass runs each row through its own network only (rows grouped per
// network, padded); it must give the loss and every gradient of the dense pass through all
// k networks (kdvae.gradient = dense), in the warm-up and in Eq. 6's stage, for k-DVAE and
// k-DAE, including a batch where one network gets every row.
TEST(KDvae, SelectedGradientEqualsDense) {
  for (bool variational : {true, false}) {
    for (int64_t stage : {4, 5}) {
      for (bool one_network : {false, true}) {
        const std::string name = variational ? "kdvae" : "kdae";
        auto make = [&](const std::string& gradient) {
          RunConfig cfg = small_cfg(name, 4, 3);
          cfg.options[name + ".gradient"] = gradient;
          torch::manual_seed(11);
          auto m = std::make_shared<models::KDvae>(9, cfg, true, variational);
          const int64_t set_stage = variational ? stage : stage - 2;  // k-DAE has no VaDE stages
          m->set_stage(set_stage);
          for (auto& b : m->named_buffers()) {
            if (b.key().find("centers") == std::string::npos || b.key().find("init") == 0) continue;
            torch::NoGradGuard ng;
            torch::manual_seed(5);
            b.value().copy_(one_network ? torch::full_like(b.value(), 50.0).index_fill_(0, torch::tensor({0}), 0.0)
                                        : torch::randn_like(b.value()));
          }
          return m;
        };
        auto dense = make("dense"), selected = make("selected");
        torch::manual_seed(2);
        torch::Tensor x = torch::rand({13, 9});
        models::Noise n1(42, 13, 0, 13), n2(42, 13, 0, 13);
        models::LossTerms a = dense->loss(x, n1), b = selected->loss(x, n2);
        const std::string where = name + " stage " + std::to_string(stage) + (one_network ? " one network" : "");
        EXPECT_NEAR(a.total.item<double>(), b.total.item<double>(), 1e-4 * std::abs(a.total.item<double>())) << where;
        a.total.backward();
        b.total.backward();
        auto pa = dense->network_parameters(), pb = selected->network_parameters();
        ASSERT_EQ(pa.size(), pb.size());
        double largest = 0;
        for (size_t i = 0; i < pa.size(); ++i) {
          ASSERT_TRUE(pa[i].grad().defined() && pb[i].grad().defined()) << where << " parameter " << i;
          largest = std::max(largest, pa[i].grad().abs().max().item<double>());
          EXPECT_LT((pa[i].grad() - pb[i].grad()).abs().max().item<double>(),
                    1e-5 * (1 + pa[i].grad().abs().max().item<double>()))
              << where << " parameter " << i;
        }
        EXPECT_GT(largest, 0) << where;  // the comparison is not between zeros
      }
    }
  }
}
