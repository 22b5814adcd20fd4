// The trainer end to end on a small generated data set (world of one): outputs, exact
// resume, checkpoint integrity.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <hdf5.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "data/synthetic.h"
#include "dist/communicator.h"
#include "train/checkpoint.h"
#include "train/trainer.h"
#include "test_util.h"

using namespace mixvae;
namespace fs = std::filesystem;

namespace {
RunConfig small_config(const std::string& data, const std::string& out, int64_t epochs) {
  return RunConfig::load("", {"--data.path=" + data, "--output.dir=" + out, "--model.hidden=32,16",
                              "--model.clusters=4", "--model.latent=3", "--pretrain.epochs=2",
                              "--train.epochs=" + std::to_string(epochs), "--train.batch_size=50",
                              "--output.progress=false", "--train.threads=1", "--train.lr_decay_every=2",
                              "--output.samples_per_cluster=3"});
}
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
  // metrics.jsonl: 2 pretrain epochs, the mixture init, 2 training epochs.
  std::ifstream m(fs::path(dir / "run") / "metrics.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(m, line)) {
    auto e = nlohmann::json::parse(line);
    EXPECT_TRUE(e.contains("stage"));
    ++lines;
  }
  EXPECT_EQ(lines, 5);
  // The resolved config re-creates the run.
  auto back = RunConfig::load(fs::path(dir / "run") / "config.ini", {});
  EXPECT_EQ(back.hash(), small_config(dir / "data.h5", dir / "run", 2).hash());
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
