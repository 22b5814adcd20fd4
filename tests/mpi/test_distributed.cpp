// Distributed pieces agree with their single-rank results: gradient buckets, the mixture
// fits, evaluation, and whole training runs in global shuffle mode.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/signals.h"
#include "data/schema.h"
#include "data/synthetic.h"
#include "dist/grad_reducer.h"
#include "dist/tensor_ops.h"
#include "mixture/gmm.h"
#include "mixture/kmeans.h"
#include "models/registry.h"
#include "mpi_world.h"
#include "train/checkpoint.h"
#include "train/device.h"
#include "train/trainer.h"

using namespace mixvae;
using test::world;
namespace fs = std::filesystem;

namespace {
// A directory every rank agrees on (rank 0 creates it, the name is broadcast).
std::string shared_tmpdir() {
  std::string dir;
  if (world().rank() == 0) {
    std::string tmpl = (fs::temp_directory_path() / "mixvae-mpi-XXXXXX").string();
    dir = ::mkdtemp(tmpl.data());
  }
  world().broadcast_string(dir, 0);
  return dir;
}

// Rows of a fixed data set that rank r of W holds: [r*N/W, (r+1)*N/W).
torch::Tensor my_rows(const torch::Tensor& all, dist::Communicator& c) {
  auto [b, e] = data::shard_range(all.size(0), c.rank(), c.size());
  return all.slice(0, b, e);
}

torch::Tensor blobs() {
  torch::manual_seed(21);
  std::vector<torch::Tensor> xs;
  for (int c = 0; c < 4; ++c)
    xs.push_back(torch::randn({500 + 100 * c, 3}, torch::kFloat64) * (0.5 + 0.2 * c) + 6.0 * c);
  torch::Tensor x = torch::cat(xs);
  return x.index_select(0, torch::randperm(x.size(0), torch::TensorOptions().dtype(torch::kInt64)));
}

// The same computation on the whole world and on a world of one holding all rows.
template <class Fn>
void on_world_and_alone(Fn&& fn) {
  fn(world(), true);
  auto solo = world().split(world().rank(), 0);
  fn(*solo, false);
}
}  // namespace

TEST(Distributed, GradReducerSumsEveryParameterAcrossBuckets) {
  auto& c = world();
  std::vector<torch::Tensor> params;
  for (int64_t n : {1000, 10, 300000, 7}) {
    auto p = torch::zeros({n}, torch::requires_grad());
    p.mutable_grad() = torch::full({n}, float(c.rank() + 1));
    params.push_back(p);
  }
  params.push_back(torch::zeros({5}, torch::requires_grad()));  // no gradient on any rank
  dist::GradReducer r(c, params, /*bucket_mb=*/0.5);
  EXPECT_GE(r.buckets(), 2u);
  double total = r.all_reduce(/*local_value=*/c.rank() + 0.5);
  EXPECT_DOUBLE_EQ(total, c.size() * c.size() / 2.0);
  const float expected = float(c.size() * (c.size() + 1) / 2);
  for (size_t i = 0; i + 1 < params.size(); ++i)
    EXPECT_TRUE(torch::allclose(params[i].grad(), torch::full_like(params[i], expected))) << i;
  // No gradient anywhere: stays undefined on a world of one, zeros after a real reduce.
  const auto& g = params.back().grad();
  EXPECT_TRUE(!g.defined() || torch::equal(g, torch::zeros({5})));
}

TEST(Distributed, KMeansAndGmmMatchASingleRank) {
  torch::Tensor all = blobs();
  mixture::KMeansResult km[2];
  mixture::DiagGmm gmm[2];
  on_world_and_alone([&](dist::Communicator& c, bool whole) {
    km[whole] = mixture::kmeans(c, whole ? my_rows(all, c) : all, 4, 3);
    gmm[whole] = mixture::fit_diag_gmm(c, whole ? my_rows(all, c) : all, 4, 3);
  });
  EXPECT_TRUE(torch::allclose(km[0].centers, km[1].centers, 1e-9, 1e-9)) << km[0].centers << km[1].centers;
  EXPECT_NEAR(km[0].inertia, km[1].inertia, 1e-9 * km[0].inertia);
  EXPECT_EQ(gmm[0].iterations, gmm[1].iterations);
  EXPECT_TRUE(torch::allclose(gmm[0].weights, gmm[1].weights, 1e-9, 1e-10));
  EXPECT_TRUE(torch::allclose(gmm[0].means, gmm[1].means, 1e-9, 1e-9));
  EXPECT_TRUE(torch::allclose(gmm[0].variances, gmm[1].variances, 1e-9, 1e-9));
  EXPECT_NEAR(gmm[0].mean_log_likelihood, gmm[1].mean_log_likelihood, 1e-9);
}

// 1 rank vs the world in global shuffle mode: same seed and global batch give the same
// parameters after pretraining, the GMM initialisation and 50 training steps (one epoch
// of 5000 samples at batch 100), up to floating-point summation order.
TEST(Distributed, GlobalShuffleTrainingIsWorldSizeInvariant) {
  const std::string dir = shared_tmpdir();
  if (world().rank() == 0) data::prepare_synthetic(dir + "/d.h5", 5000, 30, 5, 4);
  world().barrier();
  std::vector<torch::Tensor> result[2];
  on_world_and_alone([&](dist::Communicator& c, bool whole) {
    if (!whole && world().rank() != 0) return;  // rank 0 alone repeats the run
    RunConfig cfg = RunConfig::load(
        "",
        {"--data.path=" + dir + "/d.h5", "--data.shuffle=global", "--output.dir=" + dir + (whole ? "/world" : "/alone"),
         "--model.hidden=64,32", "--model.clusters=5", "--model.latent=4", "--pretrain.epochs=1", "--train.epochs=1",
         "--train.batch_size=100", "--train.threads=1", "--output.progress=false", "--train.seed=9"});
    train::Trainer t(c, cfg);
    t.run(false);
    for (auto& p : t.model().parameters()) result[whole].push_back(p.detach().clone());
  });
  if (world().rank() == 0) {
    ASSERT_EQ(result[0].size(), result[1].size());
    double num = 0, den = 0;
    for (size_t i = 0; i < result[0].size(); ++i) {
      num += (result[0][i] - result[1][i]).pow(2).sum().item<double>();
      den += result[0][i].pow(2).sum().item<double>();
      // Each tensor on its own, too.
      double rel = ((result[0][i] - result[1][i]).norm() / (result[0][i].norm() + 1e-12)).item<double>();
      EXPECT_LT(rel, 1e-4) << "parameter " << i;
    }
    double rel = std::sqrt(num / den);
    std::printf("[ world-size invariance ] relative parameter difference after 50 steps: %.3g (W=%d vs 1)\n", rel,
                world().size());
    EXPECT_LT(rel, 1e-4);
    fs::remove_all(dir);
  }
  world().barrier();
}

// The label-free selection score of the final evaluation: every rank's rows are scored
// with the noise of the fixed-seed blocks of the whole data set and the sums reduced, so
// the score is the same at any world size and shuffle mode (up to summation order), and
// it never reads the labels.
TEST(Distributed, SelectionScoreIsTheSameAtAnyWorldSizeAndWithoutLabels) {
  const std::string dir = shared_tmpdir();
  if (world().rank() == 0) data::prepare_synthetic(dir + "/s.h5", 1001, 8, 3, 4);
  world().barrier();
  for (const char* name : {"vade", "aegmm", "kdae"}) {
    std::vector<double> values;
    on_world_and_alone([&](dist::Communicator& comm, bool) {
      for (const char* mode : {"shard", "global"}) {
        RunConfig cfg = RunConfig::load("", {"--data.path=" + dir + "/s.h5", std::string("--data.shuffle=") + mode,
                                             std::string("--model.name=") + name, "--model.hidden=8",
                                             "--model.clusters=4", "--model.latent=2", "--kdae.hidden=4"});
        auto data = train::load_train_data(comm, cfg);
        torch::manual_seed(5);  // the same parameters on every rank and in every world
        auto model = models::make_model(cfg, data.d, true);
        model->set_stage(int64_t(model->recipe(cfg).size()) - 1);
        model->eval();
        auto r = train::evaluate(comm, *model, data, /*batch=*/64, nullptr, /*selection=*/true);
        ASSERT_TRUE(r.selection) << name;
        EXPECT_TRUE(std::isfinite(r.selection->value)) << name;
        values.push_back(r.selection->value);
        data.y = torch::Tensor();  // no labels: the same score
        data.num_classes = 0;
        auto u = train::evaluate(comm, *model, data, 64, nullptr, true);
        ASSERT_TRUE(u.selection);
        EXPECT_EQ(u.selection->value, r.selection->value) << name << " " << mode;
        EXPECT_EQ(u.selection->criterion, r.selection->criterion);
        EXPECT_FALSE(train::evaluate(comm, *model, data, 64).selection) << "only when asked for";
      }
    });
    // float32 sums of differently cut blocks: equal to rounding.
    for (double v : values) EXPECT_NEAR(v, values[0], 1e-5 * std::abs(values[0])) << name;
  }
  world().barrier();
  if (world().rank() == 0) fs::remove_all(dir);
}

// Sharded evaluation counts every sample once: the contingency total is N at any W.
TEST(Distributed, ShardedEvaluationCountsEverySampleOnce) {
  const std::string dir = shared_tmpdir();
  if (world().rank() == 0) data::prepare_synthetic(dir + "/e.h5", 1001, 8, 3, 2);
  world().barrier();
  for (const char* mode : {"shard", "global"}) {
    RunConfig cfg = RunConfig::load("", {"--data.path=" + dir + "/e.h5", std::string("--data.shuffle=") + mode,
                                         "--model.hidden=8", "--model.clusters=4", "--model.latent=2"});
    auto data = train::load_train_data(world(), cfg);
    auto model = models::make_model(cfg, data.d, true);
    dist::broadcast_parameters(world(), model->parameters(), 0);
    auto r = train::evaluate(world(), *model, data, /*batch=*/64);
    EXPECT_EQ(r.samples, 1001) << mode;
    int64_t occ = 0;
    for (auto o : r.occupancy) occ += o;
    EXPECT_EQ(occ, 1001);
    // The table is global too: its row k sums to cluster k's size, and the matched cells
    // (cluster k -> class cluster_class[k], one cluster per class) give ACC.
    // K = 4 clusters, C = 3 classes.
    ASSERT_EQ(r.contingency.size(), 4u) << mode;
    ASSERT_EQ(r.scores.cluster_class.size(), 4u) << mode;
    int64_t matched = 0;
    std::vector<int> class_used(3, 0);
    for (size_t k = 0; k < 4; ++k) {
      ASSERT_EQ(r.contingency[k].size(), 3u);
      EXPECT_EQ(r.contingency[k][0] + r.contingency[k][1] + r.contingency[k][2], r.occupancy[k])
          << mode << " cluster " << k;
      const int64_t c = r.scores.cluster_class[k];
      ASSERT_GE(c, -1);
      ASSERT_LT(c, 3);
      if (c >= 0) {
        matched += r.contingency[k][c];
        EXPECT_EQ(class_used[c]++, 0) << "class " << c << " matched twice";
      }
    }
    EXPECT_EQ(std::count(r.scores.cluster_class.begin(), r.scores.cluster_class.end(), -1), 1)
        << "K=4 > C=3: one cluster unmatched";
    EXPECT_NEAR(r.scores.acc, double(matched) / 1001.0, 1e-12) << mode;
  }
  world().barrier();
  if (world().rank() == 0) fs::remove_all(dir);
}

// dist.device = auto on a node without a visible GPU next to nodes with one: the ranks
// must not go on with different devices (the GPU-only collectives would no longer pair
// up); every rank gets the same one-line UsageError (exit code 2 from main), none hangs.
TEST(Distributed, AMixOfCpuAndGpuRanksIsOneErrorOnEveryRank) {
  train::agree_device_kind(world(), false);  // all on the CPU: fine
  train::agree_device_kind(world(), true);   // all on GPUs: fine
  if (world().size() < 2) GTEST_SKIP() << "needs 2 ranks for a mix";
  std::string message;
  try {
    train::agree_device_kind(world(), world().rank() == 0);  // rank 0 on a GPU, the others on the CPU
  } catch (const UsageError& e) {
    message = e.what();
  }
  EXPECT_TRUE(dist::last_error_was_collective());
  EXPECT_NE(message.find("dist.device"), std::string::npos) << message;
  EXPECT_NE(message.find("GPU on 1 of " + std::to_string(world().size()) + " ranks"), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  // Every rank holds the same message.
  std::string on0 = message;
  world().broadcast_string(on0, 0);
  EXPECT_EQ(message, on0);
}

// A requeue on another number of nodes: a checkpoint written by 2 ranks in the middle of an
// epoch (shard mode) resumes on 1 rank and finishes, the stopped epoch's untrained rows
// re-planned (counted row by row in EpochPlan.ResumedOnAnotherWorldSizeTrainsEveryRowOnce),
// each epoch logged once; another train.threads is the same run, another train.lr is
// refused with one line naming it.
TEST(Distributed, MidEpochCheckpointResumesOnAnotherWorldSize) {
  if (world().size() != 2) GTEST_SKIP() << "needs exactly 2 ranks";
  const std::string dir = shared_tmpdir();
  if (world().rank() == 0) data::prepare_synthetic(dir + "/r.h5", 1000, 8, 3, 4);
  world().barrier();
  const RunConfig cfg = RunConfig::load(
      "", {"--data.path=" + dir + "/r.h5", "--output.dir=" + dir + "/run", "--model.hidden=16", "--model.clusters=3",
           "--model.latent=2", "--pretrain.epochs=1", "--train.epochs=2", "--train.batch_size=50",
           "--pretrain.batch_size=50", "--train.eval_every=0", "--train.threads=1", "--output.progress=false"});
  {
    train::Trainer t(world(), cfg);
    int64_t steps = 0;
    t.set_step_hook([&] {
      if (++steps == 27) signals::request_stop();  // 20 pretraining steps, then step 7 of the first VaDE epoch
    });
    EXPECT_THROW(t.run(false), PreemptedError);
    signals::clear_stop();
  }
  auto solo = world().split(world().rank(), 0);
  if (world().rank() == 0) {
    const auto meta = train::read_checkpoint_meta(dir + "/run/checkpoint.h5");
    EXPECT_EQ(meta.world_size, 2);
    EXPECT_EQ(meta.step, 7);
    RunConfig other = cfg;
    other.train.lr = 0.001;
    try {
      train::Trainer(*solo, other).run(true);
      ADD_FAILURE() << "a checkpoint of another train.lr was resumed";
    } catch (const UsageError& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("train.lr (0.002 -> 0.001)"), std::string::npos) << m;
      EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
    RunConfig again = cfg;
    again.train.threads = 2;  // does not change training
    train::Trainer resumed(*solo, again);
    const auto r = resumed.run(true);
    EXPECT_EQ(r.epochs, 2);
    std::ifstream in(dir + "/run/metrics.jsonl");
    std::map<int64_t, int> epochs;
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line);
      if (j.value("stage", "") == "train" && j.contains("loss")) ++epochs[j["epoch"].get<int64_t>()];
    }
    EXPECT_EQ(epochs, (std::map<int64_t, int>{{1, 1}, {2, 1}}));
  }
  world().barrier();
  if (world().rank() == 0) fs::remove_all(dir);
}
