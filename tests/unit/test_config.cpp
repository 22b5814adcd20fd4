#include <gtest/gtest.h>

#include <fstream>

#include "core/config.h"
#include "core/errors.h"
#include "test_util.h"

using mixvae::RunConfig;
using mixvae::UsageError;

namespace {
std::string write(const mixvae::test::TempDir& d, const std::string& text) {
  std::string p = d / "c.ini";
  std::ofstream(p) << text;
  return p;
}
std::string error_of(const std::string& ini, std::vector<std::string> ov = {}) {
  mixvae::test::TempDir d;
  try {
    RunConfig::load(ini.empty() ? "" : write(d, ini), ov);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Config, DefaultsFileThenCommandLine) {
  mixvae::test::TempDir d;
  auto p = write(d, "[train]\nepochs = 7\nlr = 0.01\n[model]\nclusters = 4\n");
  RunConfig c = RunConfig::load(p, {"--train.epochs=3", "--output.dir=/x/y"});
  EXPECT_EQ(c.train.epochs, 3);  // command line wins over the file
  EXPECT_DOUBLE_EQ(c.train.lr, 0.01);
  EXPECT_EQ(c.model.clusters, 4);
  EXPECT_EQ(c.output.dir, "/x/y");
  EXPECT_EQ(c.train.batch_size, 100);  // default kept
}

TEST(Config, ResolvedIniRoundTrips) {
  RunConfig c = RunConfig::load("", {"--train.lr=0.00123", "--data.path=/a b/c.h5", "--output.progress=false"});
  RunConfig back = RunConfig::load_text(c.to_ini(), "resolved");
  EXPECT_EQ(back.to_ini(), c.to_ini());
  EXPECT_EQ(back.hash(), c.hash());
  EXPECT_DOUBLE_EQ(back.train.lr, 0.00123);
  EXPECT_EQ(back.data.path, "/a b/c.h5");
  EXPECT_FALSE(back.output.progress);
}

// One list of the keys that cannot change what a run trains (core/config.h): a sweep
// resubmitted with another --cpus-per-task (train.threads) or other output settings is
// the same sweep, a changed learning rate is not.
TEST(Config, TrainingDifferencesIgnoreOnlySpeedAndOutputKeys) {
  for (const char* k :
       {"train.threads", "train.eval_every", "train.collapse_warn", "dist.bucket_mb", "dist.overlap", "dist.backend",
        "dist.timeout_s", "output.dir", "output.progress", "output.samples_per_cluster"})
    EXPECT_FALSE(mixvae::changes_training(k)) << k;
  for (const char* k : {"train.lr", "train.seed", "train.epochs", "data.path", "data.shuffle", "model.hidden",
                        "dist.device", "pretrain.epochs", "checkpoint.every", "kdvae.epochs", "train.precision"})
    EXPECT_TRUE(mixvae::changes_training(k)) << k;
  const RunConfig a = RunConfig::load("", {"--train.threads=4", "--output.dir=/a", "--dist.timeout_s=60"});
  const RunConfig b = RunConfig::load("", {"--train.threads=8", "--output.dir=/b", "--output.progress=false"});
  EXPECT_TRUE(mixvae::training_differences(a, b).empty());
  const RunConfig c = RunConfig::load("", {"--train.threads=8", "--train.lr=0.001", "--model.clusters=4"});
  EXPECT_EQ(mixvae::training_differences(a, c),
            (std::vector<std::string>{"model.clusters (10 -> 4)", "train.lr (0.002 -> 0.001)"}));
  const auto all = a.values();
  EXPECT_EQ(all.at("train.threads"), "4");
  EXPECT_EQ(all.at("output.dir"), "/a");
}

TEST(Config, UnknownKeysListTheValidOnes) {
  std::string e = error_of("[train]\nepoch = 3\n");
  EXPECT_NE(e.find("unknown key 'train.epoch'"), std::string::npos) << e;
  EXPECT_NE(e.find("valid keys of [train]:"), std::string::npos) << e;
  EXPECT_NE(e.find("epochs"), std::string::npos) << e;
  e = error_of("", {"--trian.lr=1"});
  EXPECT_NE(e.find("unknown option --trian.lr"), std::string::npos) << e;
  EXPECT_NE(e.find("valid sections"), std::string::npos) << e;
}

TEST(Config, BadValuesAreUsageErrors) {
  EXPECT_NE(error_of("[train]\nlr = abc\n").find("train.lr"), std::string::npos);
  EXPECT_NE(error_of("", {"--train.epochs=-1"}).find("train.epochs must be >= 0"), std::string::npos);
  EXPECT_NE(error_of("", {"--model.clusters=1"}).find("model.clusters must be >= 2"), std::string::npos);
  EXPECT_NE(error_of("", {"--pretrain.input_dropout=1"}).find("pretrain.input_dropout must be in [0, 1)"),
            std::string::npos);
  EXPECT_NE(error_of("", {"--pretrain.input_dropout=-0.1"}).find("pretrain.input_dropout must be in [0, 1)"),
            std::string::npos);
  EXPECT_NE(error_of("", {"--data.shuffle=random"}).find("data.shuffle"), std::string::npos);
  EXPECT_NE(error_of("", {"--train.precision=fp16"}).find("train.precision must be 'fp32' or 'bf16'"),
            std::string::npos);
  EXPECT_NE(error_of("", {"--train.lr=0"}).find("train.lr"), std::string::npos);
  EXPECT_NE(error_of("", {"notaflag"}).find("unexpected argument"), std::string::npos);
  EXPECT_THROW(RunConfig::load("/nonexistent/x.ini", {}), UsageError);
}

// Boost 1.74 fills "%value%" in its message with the value until none is left: a value
// containing "%value%" used to hang the parser (fuzz_ini; tests/fuzz/regressions/ini/).
TEST(Config, ValuesWithBoostPlaceholdersGiveAMessage) {
  std::string e = error_of("[model]\nclusters = x%value%y\n");
  EXPECT_NE(e.find("the argument ('x%value%y') for option 'model.clusters' is invalid"), std::string::npos) << e;
  e = error_of("", {"--model.clusters=%value%"});
  EXPECT_NE(e.find("command line: the argument ('%value%') for option '--model.clusters' is invalid"),
            std::string::npos)
      << e;
  e = error_of("[model]\n%invalid_line%\n");
  EXPECT_NE(e.find("invalid line '%invalid_line%'"), std::string::npos) << e;
  // Without a '%' anywhere, Boost's own message.
  e = error_of("[model]\nclusters = abc\n");
  EXPECT_NE(e.find("the argument ('abc') for option 'model.clusters' is invalid"), std::string::npos) << e;
}

TEST(Config, ShippedExperimentConfigsParse) {
  const char* root = std::getenv("MIXVAE_SOURCE_DIR");
  std::string dir = std::string(root ? root : MIXVAE_SOURCE_DIR_DEFAULT) + "/configs/experiments/";
  for (const char* f : {"mnist-vade.ini", "mnist-vade-quick.ini", "synthetic-vade.ini"}) {
    RunConfig c = RunConfig::load(dir + f, {});
    EXPECT_EQ(c.model.name, "vade") << f;
  }
  RunConfig paper = RunConfig::load(dir + "mnist-vade.ini", {});
  EXPECT_EQ(paper.train.epochs, 300);
  EXPECT_DOUBLE_EQ(paper.train.lr, 0.002);
  EXPECT_DOUBLE_EQ(paper.train.lr_decay, 0.9);
  EXPECT_EQ(paper.train.lr_decay_every, 10);
  EXPECT_DOUBLE_EQ(paper.train.lr_floor, 0.0002);
  EXPECT_EQ(paper.train.batch_size, 100);
  RunConfig quick = RunConfig::load(dir + "mnist-vade-quick.ini", {});
  EXPECT_EQ(quick.pretrain.epochs, 10);
  EXPECT_EQ(quick.train.epochs, 20);
}
