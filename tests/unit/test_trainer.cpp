// The trainer end to end on a small generated data set (world of one): outputs, exact
// resume, checkpoint integrity.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/errors.h"
#include "core/files.h"
#include "core/signals.h"
#include "data/schema.h"
#include "data/synthetic.h"
#include "dist/communicator.h"
#include "models/mlp.h"
#include "models/noise.h"
#include "models/registry.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/pretrain_artifact.h"
#include "train/trainer.h"

using namespace mixvae;
namespace fs = std::filesystem;

namespace {
RunConfig small_config(const std::string& data, const std::string& out, int64_t epochs) {
  return RunConfig::load(
      "",
      {"--data.path=" + data, "--output.dir=" + out, "--model.hidden=32,16", "--model.clusters=4", "--model.latent=3",
       "--pretrain.epochs=2", "--train.epochs=" + std::to_string(epochs), "--train.batch_size=50",
       "--output.progress=false", "--train.threads=1", "--train.lr_decay_every=2", "--output.samples_per_cluster=3"});
}
// small_config for another model, with a k-DVAE small enough for a unit test.
RunConfig model_config(const std::string& data, const std::string& out, int64_t epochs, const std::string& model) {
  RunConfig c = small_config(data, out, epochs);
  c.model.name = model;
  c.options["kdvae.epochs"] = "1";
  c.options["kdvae.warmup_epochs"] = "1";
  c.options["kdvae.hidden"] = "8";
  return c;
}
std::vector<nlohmann::json> metrics_of(const std::string& dir);
std::vector<torch::Tensor> params_of(models::ClusteringModel& m) {
  std::vector<torch::Tensor> out;
  for (auto& p : m.parameters()) out.push_back(p.detach().clone());
  return out;
}
}  // namespace

class TrainerTest : public ::testing::Test {
 protected:
  void SetUp() override { data::prepare_synthetic(dir / "data.h5", 600, 20, 4, 1); }
  test::TempDir dir;
};

TEST_F(TrainerTest, WritesEveryOutput) {
  auto comm = dist::make_self_communicator();
  train::Trainer t(*comm, small_config(dir / "data.h5", dir / "run", 2));
  auto r = t.run(false);
  for (const char* f : {"config.ini", "metrics.jsonl", "result.json", "checkpoint.h5", "samples.png"})
    EXPECT_TRUE(fs::exists(fs::path(dir / "run") / f)) << f;
  std::ifstream in(fs::path(dir / "run") / "result.json");
  auto j = nlohmann::json::parse(in);
  for (const char* k : {"acc", "nmi", "ari", "loss", "epochs", "seconds", "world_size", "seed", "model", "dataset"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_GE(j["acc"].get<double>(), 0.25);
  EXPECT_EQ(r.eval.samples, 600);
  // Peak memory per rank (a world of one: one entry), at least LibTorch's own footprint.
  ASSERT_TRUE(j.contains("peak_rss_mib_per_rank"));
  ASSERT_EQ(j["peak_rss_mib_per_rank"].size(), 1u);
  EXPECT_GT(j["peak_rss_mib_per_rank"][0].get<double>(), 10.0);
  // metrics.jsonl: 2 pretrain epochs, the mixture init, 2 training epochs.
  std::ifstream m(fs::path(dir / "run") / "metrics.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(m, line)) {
    auto e = nlohmann::json::parse(line);
    EXPECT_TRUE(e.contains("stage"));
    if (e.contains("loss")) EXPECT_GT(e.value("peak_rss_mib", 0.0), 10.0) << line;  // every epoch line
    ++lines;
  }
  EXPECT_EQ(lines, 5);
  // The resolved config re-creates the run.
  auto back = RunConfig::load(fs::path(dir / "run") / "config.ini", {});
  EXPECT_EQ(back.hash(), small_config(dir / "data.h5", dir / "run", 2).hash());
}

// The final model's label-free selection score: in result.json and on the last line of
// metrics.jsonl (VaDE: the last training epoch's; AE+GMM, whose recipe ends with the
// mixture fit: that stage's), the mean per row over every row with the fixed noise seed,
// so evaluating the saved checkpoint gives it again; resuming the finished run re-scores
// it on the same line.
TEST_F(TrainerTest, SelectionScoreIsStoredAndReproducible) {
  auto comm = dist::make_self_communicator();
  for (const std::string name : {"vade", "aegmm"}) {
    const std::string out = dir / ("run-" + name);
    const RunConfig cfg = model_config(dir / "data.h5", out, 2, name);
    train::Trainer t(*comm, cfg);
    const auto r = t.run(false);
    ASSERT_TRUE(r.eval.selection) << name;
    std::ifstream in(fs::path(out) / "result.json");
    const auto sel = nlohmann::json::parse(in)["selection"];
    EXPECT_EQ(sel["criterion"], name == "vade" ? "elbo" : "gmm_loglik_minus_recon");
    EXPECT_EQ(sel["higher_is_better"], true);
    EXPECT_EQ(sel["noise_seed"].get<uint64_t>(), train::kSelectionNoiseSeed);
    EXPECT_DOUBLE_EQ(sel["value"].get<double>(), r.eval.selection->value);
    EXPECT_TRUE(std::isfinite(r.eval.selection->value));
    const auto lines = metrics_of(out);
    ASSERT_FALSE(lines.empty());
    EXPECT_EQ(lines.back()["stage"], name == "vade" ? "train" : "mixture_init");
    EXPECT_EQ(lines.back()["selection"], sel);
    for (size_t i = 0; i + 1 < lines.size(); ++i) EXPECT_FALSE(lines[i].contains("selection")) << name << " " << i;

    RunConfig back;
    auto model = train::model_from_checkpoint(fs::path(out) / "checkpoint.h5", &back);
    auto data = train::load_train_data(*comm, back);
    const auto e = train::evaluate(*comm, *model, data, 0, nullptr, /*selection=*/true);
    ASSERT_TRUE(e.selection);
    EXPECT_DOUBLE_EQ(e.selection->value, r.eval.selection->value) << name;

    train::Trainer again(*comm, cfg);
    again.run(true);
    const auto relines = metrics_of(out);
    EXPECT_EQ(relines.size(), lines.size()) << name;
    EXPECT_EQ(relines.back()["selection"], sel) << name;
  }
}

// train.precision = bf16 end to end (VaDE: Mlp; k-DVAE: StackedMlp). Training
// trajectories of a few epochs diverge with any rounding change, so the precision check is
// on one objective: the trained model's loss on the same batch and noise in bf16 and in
// fp32 agree to 2 %. The bf16 run itself finishes with finite fp32 parameters and a loss
// of the fp32 run's size. The product dtype goes back to fp32 afterwards for the tests
// that build models directly in this process.
TEST_F(TrainerTest, Bf16PrecisionTrainsLikeFp32) {
  auto comm = dist::make_self_communicator();
  for (const char* name : {"vade", "kdvae"}) {
    train::TrainResult r[2];
    for (int bf16 = 0; bf16 < 2; ++bf16) {
      RunConfig c = model_config(dir / "data.h5", dir / (std::string(name) + std::to_string(bf16)), 2, name);
      c.train.precision = bf16 ? "bf16" : "fp32";
      train::Trainer t(*comm, c);
      r[bf16] = t.run(false);
      EXPECT_EQ(models::matmul_dtype(), bf16 ? torch::kBFloat16 : torch::kFloat32);
      models::set_matmul_dtype(torch::kFloat32);
      for (auto& p : t.model().parameters()) {
        EXPECT_EQ(p.scalar_type(), torch::kFloat32) << name;
        EXPECT_TRUE(torch::isfinite(p).all().item<bool>()) << name;
      }
      if (bf16) continue;
      // The fp32-trained model's objective on one batch, both ways.
      torch::manual_seed(5);
      const torch::Device device = t.model().parameters().front().device();  // a GPU in a CUDA build
      torch::Tensor x = torch::rand({100, 20}).to(device);
      double loss[2];
      for (int low = 0; low < 2; ++low) {
        models::set_matmul_dtype(low ? torch::kBFloat16 : torch::kFloat32);
        models::Noise noise(7, 100, 0, 100, device);
        torch::NoGradGuard ng;
        loss[low] = t.model().loss(x, noise).total.item<double>();
      }
      models::set_matmul_dtype(torch::kFloat32);
      EXPECT_NEAR(loss[1], loss[0], 0.02 * std::abs(loss[0])) << name;
      EXPECT_NE(loss[1], loss[0]) << name << ": no bf16 product ran";
    }
    EXPECT_TRUE(std::isfinite(r[1].loss)) << name;
    EXPECT_NEAR(r[1].loss, r[0].loss, 0.3 * std::abs(r[0].loss)) << name;
  }
}

TEST_F(TrainerTest, ResumeIsBitIdentical) {
  auto comm = dist::make_self_communicator();
  train::Trainer straight(*comm, small_config(dir / "data.h5", dir / "a", 4));
  straight.run(false);
  auto expected = params_of(straight.model());

  train::Trainer first(*comm, small_config(dir / "data.h5", dir / "b", 4));
  first.set_stop_after_main_epochs(2);
  first.run(false);
  auto meta = train::read_checkpoint_meta(dir / "b/checkpoint.h5");
  EXPECT_EQ(meta.epoch, 2);
  train::Trainer second(*comm, small_config(dir / "data.h5", dir / "b", 4));
  second.run(true);
  auto got = params_of(second.model());
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_TRUE(torch::equal(got[i], expected[i])) << "parameter " << i;
}

TEST_F(TrainerTest, CorruptCheckpointIsRefused) {
  auto comm = dist::make_self_communicator();
  train::Trainer t(*comm, small_config(dir / "data.h5", dir / "c", 1));
  t.run(false);
  const std::string ck = dir / "c/checkpoint.h5";
  // Change one stored parameter value in place (silent corruption of tensor data).
  {
    hid_t f = H5Fopen(ck.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    hid_t ds = H5Dopen2(f, "params/mu_c", H5P_DEFAULT);
    ASSERT_GE(ds, 0);
    std::vector<float> v(12);
    H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
    v[5] += 1.0f;
    H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
    H5Dclose(ds);
    H5Fclose(f);
  }
  RunConfig cfg;
  EXPECT_THROW(train::model_from_checkpoint(ck, &cfg), DataError);
  // Truncated.
  fs::resize_file(ck, 1000);
  EXPECT_THROW(train::model_from_checkpoint(ck, &cfg), DataError);
  EXPECT_THROW(train::model_from_checkpoint(dir / "nope.h5", &cfg), DataError);
}

TEST_F(TrainerTest, ResumeWithoutCheckpointIsUsageError) {
  auto comm = dist::make_self_communicator();
  train::Trainer t(*comm, small_config(dir / "data.h5", dir / "d", 1));
  EXPECT_THROW(t.run(true), UsageError);
}

// --resume with a checkpoint of another model, input dimension or dataset: one clear
// UsageError, nothing trained (issue 6's "a checkpoint from another model or dataset").
TEST_F(TrainerTest, ACheckpointOfAnotherModelOrDatasetIsRefused) {
  auto comm = dist::make_self_communicator();
  train::Trainer t(*comm, small_config(dir / "data.h5", dir / "m", 1));
  t.run(false);
  const auto before = fs::last_write_time(dir / "m/checkpoint.h5");
  {
    train::Trainer other(*comm, model_config(dir / "data.h5", dir / "m", 1, "aegmm"));
    EXPECT_CONTAINS(test::usage_error_of([&] { other.run(true); }),
                    "checkpoint is of model 'vade' with input dimension 20, this run is 'aegmm' with 20");
  }
  data::prepare_synthetic(dir / "wide.h5", 600, 21, 4, 1);
  {
    train::Trainer wide(*comm, small_config(dir / "wide.h5", dir / "m", 1));
    EXPECT_CONTAINS(test::usage_error_of([&] { wide.run(true); }),
                    "with input dimension 20, this run is 'vade' with 21");
  }
  // The same shape under another dataset name.
  std::vector<float> x(600 * 20, 0.25f);
  data::DatasetMeta meta;
  meta.name = "fashion";
  data::write_dataset(dir / "fashion.h5", x.data(), 600, 20, nullptr, meta);
  {
    train::Trainer fashion(*comm, small_config(dir / "fashion.h5", dir / "m", 1));
    EXPECT_CONTAINS(
        test::usage_error_of([&] { fashion.run(true); }),
        "checkpoint was trained on dataset 'synthetic', this run's data (" + (dir / "fashion.h5") + ") is 'fashion'");
  }
  EXPECT_EQ(fs::last_write_time(dir / "m/checkpoint.h5"), before);
}

// Two runs writing one directory would overwrite each other's checkpoints: the second is
// refused while the first holds it, the lock goes with the run, and a temporary file left by
// a write that was killed is removed by the next run.
TEST_F(TrainerTest, OneRunPerOutputDirectory) {
  auto comm = dist::make_self_communicator();
  fs::create_directories(dir / "lk");
  {
    DirLock other = DirLock::acquire(dir / "lk");
    train::Trainer t(*comm, small_config(dir / "data.h5", dir / "lk", 1));
    const std::string msg = test::usage_error_of([&] { t.run(false); });
    EXPECT_CONTAINS(msg, "another mixvae run is writing to this directory");
  }
  std::ofstream(dir / "lk/checkpoint.h5.tmp.999999") << "half a checkpoint";
  train::Trainer t(*comm, small_config(dir / "data.h5", dir / "lk", 1));
  t.run(false);
  EXPECT_FALSE(fs::exists(dir / "lk/checkpoint.h5.tmp.999999"));
  EXPECT_NO_THROW(DirLock::acquire(dir / "lk"));  // released when run() returned
}

// A stop request (what SIGTERM/SIGUSR1 set) in the middle of an epoch: the trainer
// checkpoints at that step boundary and throws PreemptedError; resuming gives the same
// parameters, bit for bit, as a run never stopped. Stops in pretraining and in the main
// objective.
TEST_F(TrainerTest, StopAtAStepThenResumeIsBitIdentical) {
  auto comm = dist::make_self_communicator();
  train::Trainer straight(*comm, small_config(dir / "data.h5", dir / "a", 3));
  straight.run(false);
  auto expected = params_of(straight.model());

  // 600 rows: pretraining (batch 100) 6 steps an epoch, then (batch 50) 12. Steps 9
  // (pretraining epoch 2, step 3) and 33 (main epoch 2, step 9) of the whole run.
  for (int stop_at : {9, 33}) {
    const std::string out = dir / ("s" + std::to_string(stop_at));
    int steps = 0;
    train::Trainer first(*comm, small_config(dir / "data.h5", out, 3));
    first.set_step_hook([&] {
      if (++steps == stop_at) signals::request_stop();
    });
    EXPECT_THROW(first.run(false), PreemptedError);
    signals::clear_stop();
    auto meta = train::read_checkpoint_meta(out + "/checkpoint.h5");
    EXPECT_GT(meta.step, 0) << "stop at " << stop_at;
    train::Trainer second(*comm, small_config(dir / "data.h5", out, 3));
    second.run(true);
    auto got = params_of(second.model());
    ASSERT_EQ(got.size(), expected.size());
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_TRUE(torch::equal(got[i], expected[i])) << "stop at " << stop_at << ", parameter " << i;
    // The stopped epoch is logged once, with the loss of the uninterrupted run.
    std::ifstream a(dir / "a/metrics.jsonl"), b(out + "/metrics.jsonl");
    std::vector<nlohmann::json> la, lb;
    for (std::string l; std::getline(a, l);) la.push_back(nlohmann::json::parse(l));
    for (std::string l; std::getline(b, l);) lb.push_back(nlohmann::json::parse(l));
    ASSERT_EQ(la.size(), lb.size());
    for (size_t i = 0; i < la.size(); ++i)
      if (la[i].contains("loss")) EXPECT_NEAR(la[i]["loss"].get<double>(), lb[i]["loss"].get<double>(), 1e-9) << i;
  }
}

// Exact resume for every model: a run stopped at any step (pretraining, warm-up, main
// objective; mid-epoch and at stage boundaries) and resumed ends with the parameters and
// buffers of the uninterrupted run, bit for bit, and logs every epoch once with its loss.
class ResumeEveryModel : public TrainerTest, public ::testing::WithParamInterface<std::string> {
 protected:
  RunConfig config(const std::string& out) {
    RunConfig c = small_config(dir / "data.h5", out, 2);
    c.model.name = GetParam();
    for (const char* sec : {"kdvae", "kdae"}) {
      c.options[std::string(sec) + ".epochs"] = "2";
      c.options[std::string(sec) + ".warmup_epochs"] = "1";
      c.options[std::string(sec) + ".hidden"] = "8";
    }
    c.options["gmvae.w_dim"] = "3";
    c.options["gmvae.prior_hidden"] = "8";
    return c;
  }
  static std::vector<torch::Tensor> state_of(models::ClusteringModel& m) {
    std::vector<torch::Tensor> out;
    for (auto& p : m.parameters()) out.push_back(p.detach().clone());
    for (auto& b : m.buffers()) out.push_back(b.detach().clone());
    return out;
  }
};

TEST_P(ResumeEveryModel, StopAnywhereThenResumeIsBitIdentical) {
  auto comm = dist::make_self_communicator();
  int total = 0;
  train::Trainer straight(*comm, config(dir / "straight"));
  straight.set_step_hook([&] { ++total; });
  straight.run(false);
  const auto expected = state_of(straight.model());
  const auto expected_log = metrics_of(dir / "straight");
  ASSERT_GT(total, 8);
  for (int stop_at : {2, total / 3, total / 2 + 1, (3 * total) / 4, total - 1}) {
    const std::string out = dir / ("stop-" + std::to_string(stop_at));
    int steps = 0;
    train::Trainer first(*comm, config(out));
    first.set_step_hook([&] {
      if (++steps == stop_at) signals::request_stop();
    });
    EXPECT_THROW(first.run(false), PreemptedError) << "stop at step " << stop_at << " of " << total;
    signals::clear_stop();
    train::Trainer second(*comm, config(out));
    second.run(true);
    const auto got = state_of(second.model());
    ASSERT_EQ(got.size(), expected.size());
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_TRUE(torch::equal(got[i], expected[i]))
          << "stop at step " << stop_at << " of " << total << ", tensor " << i;
    const auto log = metrics_of(out);
    ASSERT_EQ(log.size(), expected_log.size()) << "stop at step " << stop_at;
    for (size_t i = 0; i < log.size(); ++i)
      if (log[i].contains("loss")) EXPECT_EQ(log[i]["loss"].get<double>(), expected_log[i]["loss"].get<double>()) << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Models, ResumeEveryModel,
                         ::testing::Values("vade", "aegmm", "gmvae", "kdvae", "kdae", "gammmvae"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

// Pretraining artifacts: the first run saves its pretrained autoencoder, a run of another
// model of the same family and seed loads it instead of pretraining, and it is exactly the
// autoencoder that model would have pretrained itself (the family shares initial weights).
TEST_F(TrainerTest, PretrainArtifactIsSharedAcrossTheFamily) {
  auto comm = dist::make_self_communicator();
  auto cfg_of = [&](const std::string& model, const std::string& out) {
    return model_config(dir / "data.h5", out, 1, model);
  };
  const auto key = train::pretrain_key(cfg_of("kdvae", dir / "x"), 1);
  ASSERT_EQ(key.family, "vade-ae");
  EXPECT_EQ(key.hash, train::pretrain_key(cfg_of("aegmm", dir / "y"), 1).hash);  // the run dir is not in the key
  EXPECT_NE(key.hash, train::pretrain_key(cfg_of("gammmvae", dir / "y"), 1).hash);
  EXPECT_NE(key.hash, train::pretrain_key(cfg_of("kdvae", dir / "y"), 2).hash);  // world size is
  // GMVAE's autoencoder (gmvae.start = pretrained) is its own family: another network.
  EXPECT_EQ(train::pretrain_key(cfg_of("gmvae", dir / "y"), 1).family, "gmvae-ae");

  // AE+GMM (pretraining + GMM, which leaves the autoencoder as pretrained) saves it ...
  const std::string cache = dir / "pretrained";
  train::Trainer aegmm(*comm, cfg_of("aegmm", dir / "aegmm"));
  aegmm.set_pretrain_cache(cache);
  aegmm.run(false);
  EXPECT_EQ(aegmm.pretrain_artifact(), "saved:" + cache + "/" + key.file_name());
  std::vector<torch::Tensor> pretrained;
  for (auto& p : aegmm.model().pretrain_parameters()) pretrained.push_back(p.detach().clone());

  // ... k-DVAE of the same seed reuses it ...
  train::Trainer kd(*comm, cfg_of("kdvae", dir / "kdvae"));
  kd.set_pretrain_cache(cache);
  kd.run(false);
  EXPECT_EQ(kd.pretrain_artifact(), "reused:" + cache + "/" + key.file_name());

  // ... and k-DVAE pretraining on its own produces exactly those weights.
  const std::string own_cache = dir / "pretrained-own";
  train::Trainer kd_own(*comm, cfg_of("kdvae", dir / "kdvae-own"));
  kd_own.set_pretrain_cache(own_cache);
  kd_own.run(false);
  std::vector<torch::Tensor> loaded;
  for (auto& p : pretrained) loaded.push_back(torch::zeros_like(p));
  train::load_pretrained(own_cache + "/" + key.file_name(), key, loaded);
  for (size_t i = 0; i < loaded.size(); ++i) EXPECT_TRUE(torch::equal(loaded[i], pretrained[i])) << "tensor " << i;

  // A damaged artifact is refused with a one-line error.
  fs::resize_file(cache + "/" + key.file_name(), 500);
  test::data_error_of([&] { train::load_pretrained(cache + "/" + key.file_name(), key, loaded); });
}

// VaDE's ELBO stage is an artifact too: k-DVAE runs exactly a VaDE run's "train" stage
// first (same index, same parameters, same noise), so the k-DVAE run of a seed loads what
// the VaDE run of that seed trained, and ends exactly where it would have on its own.
// [kdvae] initial_clusters = vade: the warm-up starts from VaDE's own clusters, so the
// clustering logged after the initial-cluster stage is exactly the VaDE stage's final one
// (same parameters, arg max q(c|x)); with k-means (the default) it is k-means' partition.
// Denoising pretraining ([pretrain] input_dropout): the corruption zeroes about p of the
// entries and scales the rest by 1/(1-p); it is drawn from (seed, stage, epoch, step), so a
// run is repeatable and a stop in the middle of pretraining resumes bit for bit; it is in
// the pretraining artifact's key (and p = 0 leaves the key as it was).
TEST(InputDropout, ZeroesAboutPAndKeepsTheMean) {
  auto gen = torch::make_generator<torch::CPUGeneratorImpl>(7);
  torch::Tensor x = torch::rand({400, 500}, gen) + 0.5;  // no zeros of its own
  torch::Tensor y = models::input_dropout(x, torch::rand({400, 500}, gen), 0.2);
  const double zeroed = (y == 0).to(torch::kDouble).mean().item<double>();
  EXPECT_NEAR(zeroed, 0.2, 0.005);  // 200,000 Bernoulli(0.2): sd 0.0009
  torch::Tensor kept = y != 0;
  EXPECT_TRUE(torch::allclose(y.masked_select(kept), x.masked_select(kept) / 0.8));
  EXPECT_NEAR(y.mean().item<double>(), x.mean().item<double>(), 0.01);
}

TEST_F(TrainerTest, DenoisingPretrainingIsRepeatableResumableAndKeyed) {
  auto comm = dist::make_self_communicator();
  auto cfg_of = [&](const std::string& out, double p) {
    RunConfig c = model_config(dir / "data.h5", out, 1, "aegmm");
    c.pretrain.input_dropout = p;
    return c;
  };
  const auto plain = train::pretrain_key(cfg_of(dir / "x", 0), 1);
  const auto noisy = train::pretrain_key(cfg_of(dir / "x", 0.2), 1);
  EXPECT_EQ(plain.text.find("input_dropout"), std::string::npos);  // p = 0: the keys of older artifacts
  EXPECT_NE(noisy.text.find("pretrain.input_dropout=0.2"), std::string::npos);
  EXPECT_NE(plain.hash, noisy.hash);

  auto pretrained = [&](train::Trainer& t) {
    std::vector<torch::Tensor> out;
    for (auto& p : t.model().pretrain_parameters()) out.push_back(p.detach().clone());
    return out;
  };
  train::Trainer a(*comm, cfg_of(dir / "a", 0.2)), b(*comm, cfg_of(dir / "b", 0.2)), c(*comm, cfg_of(dir / "c", 0));
  a.run(false);
  b.run(false);
  c.run(false);
  const auto pa = pretrained(a), pb = pretrained(b), pc = pretrained(c);
  ASSERT_EQ(pa.size(), pc.size());
  bool differs = false;
  for (size_t i = 0; i < pa.size(); ++i) {
    EXPECT_TRUE(torch::equal(pa[i], pb[i])) << "tensor " << i;
    differs = differs || !torch::equal(pa[i], pc[i]);
  }
  EXPECT_TRUE(differs) << "input_dropout = 0.2 trained the same autoencoder as 0";

  // Stopped in the middle of the second pretraining epoch (600 rows, batch 100: 6 steps
  // an epoch), then resumed: the same autoencoder bit for bit.
  int steps = 0;
  train::Trainer first(*comm, cfg_of(dir / "stopped", 0.2));
  first.set_step_hook([&] {
    if (++steps == 9) signals::request_stop();
  });
  EXPECT_THROW(first.run(false), PreemptedError);
  signals::clear_stop();
  train::Trainer second(*comm, cfg_of(dir / "stopped", 0.2));
  second.run(true);
  const auto pr = pretrained(second);
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(torch::equal(pa[i], pr[i])) << "tensor " << i;
}

TEST_F(TrainerTest, KdvaeCanStartFromVadesOwnClusters) {
  auto comm = dist::make_self_communicator();
  RunConfig c = model_config(dir / "data.h5", dir / "kd", 2, "kdvae");
  c.options["kdvae.initial_clusters"] = "vade";
  train::Trainer t(*comm, c);
  t.run(false);
  double vade_acc = -1, init_acc = -2, vade_nmi = -1, init_nmi = -2;
  for (const auto& m : metrics_of(dir / "kd")) {
    if (m["stage"] == "vade" && m.contains("acc")) vade_acc = m["acc"], vade_nmi = m["nmi"];  // the last epoch's
    if (m["stage"] == "kmeans_init") {
      init_acc = m["acc"], init_nmi = m["nmi"];
      EXPECT_NE(m["info"].get<std::string>().find("VaDE's assignment"), std::string::npos) << m.dump();
    }
  }
  EXPECT_EQ(init_acc, vade_acc);
  EXPECT_EQ(init_nmi, vade_nmi);
  c.options["kdvae.init"] = "ae";
  EXPECT_THROW(models::make_model(c, 20, true), UsageError);
}

// The artifact keys and a sweep's skip/resume check share one definition of the keys that
// do not change training (changes_training, core/config.h): every "section.key" an
// artifact key names is one that changes training, and none of the others is in it.
TEST_F(TrainerTest, PretrainArtifactKeysNameOnlyKeysThatChangeTraining) {
  RunConfig c = model_config(dir / "data.h5", dir / "x", 2, "kdvae");
  c.pretrain.input_dropout = 0.1;  // the keys written only when not at their default
  c.train.precision = "bf16";
  c.model.init_fits = 2;
  for (const auto& key : {train::pretrain_key(c, 1), train::stage_key(c, 1, "vade", 2)}) {
    ASSERT_FALSE(key.text.empty());
    std::istringstream lines(key.text);
    int named = 0;
    for (std::string line; std::getline(lines, line);) {
      const std::string name = line.substr(0, line.find('='));
      if (name.find('.') == std::string::npos) continue;  // family, data, world_size, stage
      ++named;
      EXPECT_TRUE(changes_training(name)) << name << " is in an artifact key but does not change training";
    }
    EXPECT_GT(named, 10);
  }
  RunConfig other = c;
  other.train.threads = 7;
  other.train.eval_every = 3;
  other.train.collapse_warn = 0.5;
  other.dist.bucket_mb = 1;
  other.dist.timeout_s = 5;
  other.output.samples_per_cluster = 1;
  EXPECT_TRUE(training_differences(c, other).empty());
  EXPECT_EQ(train::stage_key(c, 1, "vade", 2).hash, train::stage_key(other, 1, "vade", 2).hash);
}

TEST_F(TrainerTest, VadeStageIsSharedWithKdvae) {
  auto comm = dist::make_self_communicator();
  auto cfg_of = [&](const std::string& model, const std::string& out) {
    return model_config(dir / "data.h5", out, 2, model);
  };
  // The two recipes put the shared stage at the same position.
  auto vade_recipe = models::make_model(cfg_of("vade", "x"), 1, true)->recipe(cfg_of("vade", "x"));
  auto kd_recipe = models::make_model(cfg_of("kdvae", "x"), 1, true)->recipe(cfg_of("kdvae", "x"));
  ASSERT_EQ(vade_recipe[2].artifact, "vade");
  ASSERT_EQ(kd_recipe[2].artifact, "vade");
  for (size_t i = 0; i < kd_recipe.size(); ++i)
    if (i != 2) EXPECT_TRUE(kd_recipe[i].artifact.empty()) << kd_recipe[i].name;
  const auto key = train::stage_key(cfg_of("kdvae", dir / "x"), 1, "vade", 2);
  EXPECT_EQ(key.hash, train::stage_key(cfg_of("vade", dir / "y"), 1, "vade", 2).hash);
  RunConfig other = cfg_of("kdvae", dir / "x");
  other.train.lr_mixture = 0.0021;
  EXPECT_NE(key.hash, train::stage_key(other, 1, "vade", 2).hash);  // any [train] value that trains
  other = cfg_of("kdvae", dir / "x");
  other.model.init_fits = 3;
  EXPECT_NE(key.hash, train::stage_key(other, 1, "vade", 2).hash);  // and the mixture's start
  other = cfg_of("kdvae", dir / "x");
  other.train.eval_every = 5;
  EXPECT_EQ(key.hash, train::stage_key(other, 1, "vade", 2).hash);  // but not what only logs

  const std::string cache = dir / "pretrained";
  train::Trainer vade(*comm, cfg_of("vade", dir / "vade"));
  vade.set_pretrain_cache(cache);
  vade.run(false);
  EXPECT_EQ(vade.artifact("vade"), "saved:" + cache + "/" + key.file_name());

  train::Trainer kd(*comm, cfg_of("kdvae", dir / "kdvae"));
  kd.set_pretrain_cache(cache);
  kd.run(false);
  EXPECT_EQ(kd.artifact("vade"), "reused:" + cache + "/" + key.file_name());
  EXPECT_EQ(kd.pretrain_artifact(), "reused:" + cache + "/" + train::pretrain_key(cfg_of("kdvae", "x"), 1).file_name());

  train::Trainer kd_own(*comm, cfg_of("kdvae", dir / "kdvae-own"));  // no artifacts: trains both stages
  kd_own.run(false);
  EXPECT_EQ(kd_own.artifact("vade"), "");
  auto a = params_of(kd.model()), b = params_of(kd_own.model());
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "tensor " << i;
  std::ifstream in(dir / "kdvae/result.json");
  EXPECT_EQ(nlohmann::json::parse(in)["artifacts"]["vade"], "reused:" + cache + "/" + key.file_name());
}

// [kdvae] vade_checkpoint: k-DVAE starts from a finished VaDE run instead of pretraining
// and training its own. The VaDE stage of a k-DVAE run is a VaDE run's "train" stage, so
// starting from that run's checkpoint ends exactly where the k-DVAE run that trains
// everything itself ends. Wrong checkpoints are one-line UsageErrors before any training.
TEST_F(TrainerTest, KdvaeStartsFromAFinishedVadeRun) {
  auto comm = dist::make_self_communicator();
  auto cfg_of = [&](const std::string& model, const std::string& out) {
    return model_config(dir / "data.h5", out, 2, model);
  };
  train::Trainer vade(*comm, cfg_of("vade", dir / "vade"));
  const double vade_acc = vade.run(false).eval.scores.acc;
  const std::string ckpt = fs::path(dir / "vade/checkpoint.h5").lexically_normal().string();

  train::Trainer kd_own(*comm, cfg_of("kdvae", dir / "kd-own"));
  kd_own.run(false);
  RunConfig c = cfg_of("kdvae", dir / "kd-from");
  c.options["kdvae.vade_checkpoint"] = ckpt;
  train::Trainer kd(*comm, c);
  kd.run(false);
  auto a = params_of(kd.model()), b = params_of(kd_own.model());
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "tensor " << i;
  EXPECT_EQ(kd.artifact("vade"), "from:" + ckpt);
  EXPECT_EQ(kd.pretrain_artifact(), "");
  // Its log starts at the VaDE stage, with the VaDE run's final clustering; nothing before.
  auto lines = metrics_of(dir / "kd-from");
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines[0]["stage"], "vade");
  EXPECT_EQ(lines[0]["from"], ckpt);
  EXPECT_EQ(lines[0]["acc"].get<double>(), vade_acc);
  for (const auto& m : lines) EXPECT_TRUE(m["stage"] != "pretrain" && m["stage"] != "mixture_init") << m.dump();
  std::ifstream in(dir / "kd-from/result.json");
  EXPECT_EQ(nlohmann::json::parse(in)["artifacts"]["vade"], "from:" + ckpt);

  auto refused = [&](const std::string& from, const std::string& out, const std::string& why) {
    RunConfig r = cfg_of("kdvae", dir / out);
    r.options["kdvae.vade_checkpoint"] = from;
    train::Trainer t(*comm, r);
    try {
      t.run(false);
      ADD_FAILURE() << from << ": accepted";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(dir / out)) << "a refused start left " << out;
  };
  refused(fs::path(dir / "kd-own/checkpoint.h5").string(), "r1", "it is a 'kdvae' run, not a 'vade' run");
  train::Trainer unfinished(*comm, cfg_of("vade", dir / "vade-stopped"));
  unfinished.set_stop_after_main_epochs(1);
  unfinished.run(false);
  refused(fs::path(dir / "vade-stopped/checkpoint.h5").string(), "r2", "that run is not finished");
  RunConfig narrow = cfg_of("vade", dir / "vade-narrow");
  narrow.model.hidden = "16,8";
  train::Trainer(*comm, narrow).run(false);
  refused(fs::path(dir / "vade-narrow/checkpoint.h5").string(), "r3", "its architecture differs");
  test::data_error_of([&] {
    RunConfig r = cfg_of("kdvae", dir / "r4");
    r.options["kdvae.vade_checkpoint"] = dir / "missing.h5";
    train::Trainer(*comm, r).run(false);
  });
  c.options["kdvae.init"] = "ae";
  EXPECT_THROW(models::make_model(c, 20, true), UsageError);
}

namespace {
// Makes the loss NaN at the given training steps (counted over the whole run) by writing
// NaN into a parameter, as a diverging update would.
std::function<void()> poison_at(train::Trainer& t, std::vector<int> steps) {
  auto count = std::make_shared<int>(0);
  return [&t, steps, count] {
    ++*count;
    if (std::find(steps.begin(), steps.end(), *count) == steps.end()) return;
    torch::NoGradGuard ng;
    t.model().parameters()[0].view(-1)[0] = std::numeric_limits<float>::quiet_NaN();
  };
}
std::vector<nlohmann::json> metrics_of(const std::string& dir) {
  std::ifstream in(dir + "/metrics.jsonl");
  std::vector<nlohmann::json> out;
  for (std::string l; std::getline(in, l);) out.push_back(nlohmann::json::parse(l));
  return out;
}
}  // namespace

// A NaN loss rolls back to the last checkpoint and replays from there. With the factor
// at 1 the replay is the uninterrupted run, bit for bit (so the rollback restores
// everything); the log keeps each epoch once plus the rollback event.
TEST_F(TrainerTest, DivergenceRollsBackToTheLastCheckpoint) {
  auto comm = dist::make_self_communicator();
  train::Trainer straight(*comm, small_config(dir / "data.h5", dir / "a", 3));
  straight.run(false);
  auto expected = params_of(straight.model());

  RunConfig c = small_config(dir / "data.h5", dir / "b", 3);
  c.train.divergence_lr_factor = 1.0;
  train::Trainer t(*comm, c);
  t.set_step_hook(poison_at(t, {30}));  // pretraining 2 x 6 steps, then 12 an epoch: main epoch 2, step 6
  t.run(false);
  auto got = params_of(t.model());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_TRUE(torch::equal(got[i], expected[i])) << "parameter " << i;
  auto m = metrics_of(dir / "b");
  ASSERT_EQ(m.size(), metrics_of(dir / "a").size() + 1);
  int events = 0;
  for (const auto& j : m) events += j.value("event", std::string()) == "divergence_rollback";
  EXPECT_EQ(events, 1);
}

// The learning rates are multiplied by the factor at each rollback (and the scale is in
// the checkpoint, so a resumed run keeps it); past train.divergence_retries, or with
// nothing to roll back to, the run stops with one line and no NaN checkpoint.
TEST_F(TrainerTest, DivergenceLowersRatesThenGivesUp) {
  auto comm = dist::make_self_communicator();
  RunConfig c = small_config(dir / "data.h5", dir / "c", 3);
  c.train.lr_decay_every = 0;
  train::Trainer t(*comm, c);
  t.set_step_hook(poison_at(t, {30}));
  t.run(false);
  double last_lr = 0;
  for (const auto& j : metrics_of(dir / "c"))
    if (j.value("stage", std::string()) == "train" && j.contains("lr")) last_lr = j["lr"].get<double>();
  EXPECT_DOUBLE_EQ(last_lr, c.train.lr * 0.5);
  EXPECT_DOUBLE_EQ(train::read_checkpoint_meta(dir / "c/checkpoint.h5").lr_scale, 0.5);

  // Diverging at every attempt: two rollbacks, then the error.
  RunConfig g = small_config(dir / "data.h5", dir / "d", 3);
  train::Trainer bad(*comm, g);
  bad.set_step_hook(poison_at(bad, {30, 31, 32}));
  const std::string msg = test::error_of<DivergedError>([&] { bad.run(false); });
  EXPECT_CONTAINS(msg, "still diverging after 2 rollback(s)");
  RunConfig back;
  auto saved = train::model_from_checkpoint(dir / "d/checkpoint.h5", &back);  // verifies the checksum
  for (const auto& p : saved->parameters()) EXPECT_TRUE(torch::isfinite(p).all().item<bool>()) << "NaN checkpoint";

  // Rollbacks off: the first NaN ends the run.
  RunConfig off = small_config(dir / "data.h5", dir / "e", 3);
  off.train.divergence_retries = 0;
  train::Trainer none(*comm, off);
  none.set_step_hook(poison_at(none, {30}));
  const std::string first = test::error_of<DivergedError>([&] { none.run(false); });
  EXPECT_CONTAINS(first, "loss is ");
  EXPECT_CONTAINS(first, " at train epoch 2 step 6");
}

// Every save keeps the checkpoint it replaces as checkpoint.prev.h5; a resume that finds
// checkpoint.h5 damaged (or missing: a crash between the two renames) warns, moves it
// aside and continues from the previous one, ending where an uninterrupted run ends.
TEST_F(TrainerTest, DamagedCheckpointFallsBackToThePreviousOne) {
  auto comm = dist::make_self_communicator();
  train::Trainer straight(*comm, small_config(dir / "data.h5", dir / "a", 4));
  straight.run(false);
  auto expected = params_of(straight.model());
  for (bool missing : {false, true}) {
    const std::string out = dir / (missing ? "m" : "t");
    train::Trainer first(*comm, small_config(dir / "data.h5", out, 4));
    first.set_stop_after_main_epochs(2);
    first.run(false);
    ASSERT_TRUE(fs::exists(out + "/checkpoint.prev.h5"));
    EXPECT_EQ(train::read_checkpoint_meta(out + "/checkpoint.prev.h5").epoch, 1);
    if (missing)
      fs::remove(out + "/checkpoint.h5");
    else
      fs::resize_file(out + "/checkpoint.h5", fs::file_size(out + "/checkpoint.h5") / 2);
    std::string note;
    EXPECT_EQ(train::usable_checkpoint(out + "/checkpoint.h5", &note), out + "/checkpoint.prev.h5");
    EXPECT_FALSE(note.empty());
    train::Trainer second(*comm, small_config(dir / "data.h5", out, 4));
    second.run(true);
    auto got = params_of(second.model());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_TRUE(torch::equal(got[i], expected[i])) << "parameter " << i;
    EXPECT_EQ(fs::exists(out + "/checkpoint.damaged.h5"), !missing);
  }
}

// A save never takes checkpoint.h5 away, not even for a moment: a `mixvae eval` of a
// running job must always find a whole checkpoint there. The directory's inotify events
// show it: checkpoint.h5 is only ever replaced (moved onto), never moved away or deleted,
// and the replaced file becomes checkpoint.prev.h5.
TEST_F(TrainerTest, SavingNeverLeavesTheCheckpointPathMissing) {
  auto comm = dist::make_self_communicator();
  train::Trainer t(*comm, small_config(dir / "data.h5", dir / "g", 1));
  t.run(false);
  const std::string ck = dir / "g/checkpoint.h5";
  auto meta = train::read_checkpoint_meta(ck);
  const int fd = inotify_init1(IN_NONBLOCK);
  ASSERT_GE(fd, 0);
  ASSERT_GE(inotify_add_watch(fd, (dir / "g").c_str(), IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE), 0);
  const auto before = fs::file_size(ck);
  train::save_checkpoint(ck, t.model(), nullptr, meta);
  std::vector<std::string> moved_to;
  alignas(inotify_event) char buf[1 << 16];
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;)
    for (char* p = buf; p < buf + n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(p);
      const std::string name = ev->len ? ev->name : "";
      EXPECT_FALSE(name == "checkpoint.h5" && (ev->mask & (IN_MOVED_FROM | IN_DELETE)))
          << "checkpoint.h5 was taken away";
      if (ev->mask & IN_MOVED_TO) moved_to.push_back(name);
      p += sizeof(inotify_event) + ev->len;
    }
  close(fd);
  EXPECT_NE(std::find(moved_to.begin(), moved_to.end(), "checkpoint.h5"), moved_to.end());
  EXPECT_NE(std::find(moved_to.begin(), moved_to.end(), "checkpoint.prev.h5"), moved_to.end());
  EXPECT_EQ(fs::file_size(dir / "g/checkpoint.prev.h5"), before);  // the replaced checkpoint
  EXPECT_NO_THROW(train::verify_checkpoint(ck));
  EXPECT_NO_THROW(train::verify_checkpoint(dir / "g/checkpoint.prev.h5"));
  for (const auto& name : test::entries(dir / "g")) EXPECT_EQ(name.find(".tmp"), std::string::npos) << name;
}

// A full disk while writing (the file-size limit stands in for it): the save fails with
// one line, the checkpoint already there still loads, nothing half-written is left.
TEST_F(TrainerTest, FullDiskLeavesThePreviousCheckpointValid) {
  auto comm = dist::make_self_communicator();
  train::Trainer t(*comm, small_config(dir / "data.h5", dir / "f", 1));
  t.run(false);
  const std::string ck = dir / "f/checkpoint.h5";
  const auto before = fs::file_size(ck);
  auto meta = train::read_checkpoint_meta(ck);
  struct rlimit old {};
  getrlimit(RLIMIT_FSIZE, &old);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);  // EFBIG instead of a signal
  struct rlimit small = old;
  small.rlim_cur = 16 * 1024;
  setrlimit(RLIMIT_FSIZE, &small);
  const std::string msg = test::data_error_of([&] { train::save_checkpoint(ck, t.model(), nullptr, meta); });
  setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);
  EXPECT_CONTAINS(msg, "cannot write checkpoint");
  EXPECT_CONTAINS(msg, "File too large");  // the system's reason is in the line
  EXPECT_EQ(fs::file_size(ck), before);
  EXPECT_NO_THROW(train::verify_checkpoint(ck));
  for (const auto& name : test::entries(dir / "f")) EXPECT_EQ(name.find(".tmp"), std::string::npos) << name;
}

TEST(DecayedLr, StepDecayStopsAtTheFloorButNeverLiftsARateAboveItsBase) {
  RunConfig c;
  c.train.lr_decay = 0.5;
  c.train.lr_decay_every = 10;
  c.train.lr_floor = 2e-4;
  EXPECT_DOUBLE_EQ(train::decayed_lr(c, 2e-3, 0), 2e-3);
  EXPECT_DOUBLE_EQ(train::decayed_lr(c, 2e-3, 19), 1e-3);
  EXPECT_DOUBLE_EQ(train::decayed_lr(c, 2e-3, 100), 2e-4);  // 2e-3 / 1024 is below the floor
  // A rate configured below the floor (HHAR's mixture, 2e-5) decays to itself, not up to 2e-4.
  EXPECT_DOUBLE_EQ(train::decayed_lr(c, 2e-5, 0), 2e-5);
  EXPECT_DOUBLE_EQ(train::decayed_lr(c, 2e-5, 50), 2e-5);
}
