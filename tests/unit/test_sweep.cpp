// The sweep plan (file, overrides, grid expansion) and the coordinator's hand-out rules,
// with an in-process mailbox standing in for MPI.
#include <gtest/gtest.h>

#include <deque>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/errors.h"
#include "core/signals.h"
#include "dist/mailbox.h"
#include "sweep/plan.h"
#include "sweep/scheduler.h"
#include "test_util.h"

using namespace mixvae;
using namespace mixvae::sweep;
using mixvae::test::TempDir;
using mixvae::test::usage_error_of;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {
void write(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
}

struct SweepFiles {
  TempDir dir;
  std::string sweep;
  SweepFiles(const std::string& extra = "") {
    for (const char* m : {"vade", "kdvae"})
      write(dir / ("exp/toy-" + std::string(m) + ".ini"), "[model]\nname = vade\n");
    sweep = dir / "s.ini";
    write(sweep, "[sweep]\nname = t\nruns_dir = " + (dir / "runs") + "\nexperiments = " + (dir / "exp") +
                     "\ndatasets = toy\nmodels = vade, kdvae\nseeds = 0-2\n" + extra);
  }
};
}  // namespace

TEST(SweepPlan, SeedsListsAndSlices) {
  EXPECT_EQ(parse_seeds("0-3, 7", "s"), (std::vector<uint64_t>{0, 1, 2, 3, 7}));
  EXPECT_EQ(parse_seeds("5", "s"), (std::vector<uint64_t>{5}));
  EXPECT_CONTAINS(usage_error_of([] { parse_seeds("3-1", "s"); }), "backwards");
  EXPECT_CONTAINS(usage_error_of([] { parse_seeds("1,1", "s"); }), "listed twice");
  EXPECT_CONTAINS(usage_error_of([] { parse_seeds("0-2,2", "s"); }), "seed 2 is listed twice");
  EXPECT_CONTAINS(usage_error_of([] { parse_seeds("a", "s"); }), "'a' is not a seed");
  EXPECT_CONTAINS(usage_error_of([] { parse_seeds("-1", "s"); }), "not a seed");
  // Found by fuzz_ini: the largest uint64 looped forever, a longer number threw out_of_range.
  EXPECT_CONTAINS(usage_error_of([] { parse_seeds("18446744073709551615", "s"); }), "too large");
  EXPECT_CONTAINS(usage_error_of([] { parse_seeds("0-99999999999999999999999", "s"); }), "too large");
  EXPECT_CONTAINS(usage_error_of([] { parse_seeds("0-60000,100000-160000", "s"); }), "more than 100000 seeds");
  EXPECT_CONTAINS(usage_error_of([] { parse_list("a,,b", "m"); }), "empty item");
  EXPECT_EQ(parse_slice("1/4"), std::make_pair(int64_t(1), int64_t(4)));
  for (const char* bad : {"4/4", "1", "/2", "a/b", "-1/2", "0/0"})
    EXPECT_CONTAINS(usage_error_of([&] { parse_slice(bad); }), "--slice") << bad;
}

TEST(SweepPlan, ExpandsTheGridInOrderWithOverrides) {
  SweepFiles f("[datasets]\ntoy = data/toy.h5\n[overrides]\ntrain.epochs = 2\npretrain.epochs = 1\n");
  SweepConfig c = SweepConfig::load(f.sweep, {"--overrides.train.epochs=3", "--sweep.seeds=4,6"});
  auto runs = c.expand();
  ASSERT_EQ(runs.size(), 4u);  // dataset, then model, then seed
  EXPECT_EQ(runs[0].label(), "toy/vade/seed-4");
  EXPECT_EQ(runs[1].label(), "toy/vade/seed-6");
  EXPECT_EQ(runs[2].label(), "toy/kdvae/seed-4");
  EXPECT_EQ(runs[3].index, 3u);
  EXPECT_EQ(runs[3].dir, (fs::path(f.dir / "runs") / "toy/kdvae/seed-6").string());
  EXPECT_EQ(runs[3].experiment, f.dir / "exp/toy-kdvae.ini");
  // The data file, the sweep's overrides (the command line replaced train.epochs in place),
  // then the per-run seed and folder.
  EXPECT_EQ(runs[0].overrides,
            (std::vector<std::string>{"--data.path=data/toy.h5", "--train.epochs=3", "--pretrain.epochs=1",
                                      "--train.seed=4", "--output.dir=" + runs[0].dir}));
  EXPECT_EQ(c.artifact_dir(), (fs::path(f.dir / "runs") / "pretrained").string());
}

TEST(SweepPlan, BadFilesAreOneLineUsageErrors) {
  SweepFiles f;
  EXPECT_CONTAINS(usage_error_of([&] { SweepConfig::load(f.sweep, {"--sweep.seed=1"}); }),
                  "unknown key 'sweep.seed'; valid keys of [sweep]: name, runs_dir");
  EXPECT_CONTAINS(usage_error_of([&] { SweepConfig::load(f.sweep, {"--swep.x=1"}); }), "unknown section [swep]");
  EXPECT_CONTAINS(usage_error_of([&] { SweepConfig::load(f.sweep, {"--sweep.ranks_per_run=0"}); }),
                  "ranks_per_run must be a positive integer");
  EXPECT_CONTAINS(usage_error_of([&] { SweepConfig::load(f.sweep, {"--overrides.train.seed=3"}); }),
                  "cannot set train.seed");
  // A [datasets] entry the sweep does not train is unused, not an error.
  EXPECT_EQ(SweepConfig::load(f.sweep, {"--datasets.mnist=x.h5"}).expand().size(), 6u);
  EXPECT_CONTAINS(usage_error_of([&] { SweepConfig::load(f.dir / "missing.ini", {}); }), "cannot open sweep config");
  EXPECT_CONTAINS(usage_error_of([&] { SweepConfig::load(f.sweep, {"--sweep.models=vade,gmvae"}).expand(); }),
                  "no experiment config for 1 (dataset, model) pair(s): " + (f.dir / "exp/toy-gmvae.ini"));
  write(f.dir / "nosection.ini", "datasets = toy\n");
  EXPECT_CONTAINS(usage_error_of([&] { SweepConfig::load(f.dir / "nosection.ini", {}); }), "outside a section");
  write(f.dir / "noseeds.ini", "[sweep]\ndatasets = toy\nmodels = vade\n");
  EXPECT_CONTAINS(usage_error_of([&] { SweepConfig::load(f.dir / "noseeds.ini", {}); }), "needs 'seeds'");
}

namespace {
// Messages between "ranks" of one process: what the coordinator sends is recorded per
// destination; requests from other groups are queued by the test.
class FakeMailbox : public dist::Mailbox {
 public:
  std::map<int, std::deque<std::string>> sent;
  std::deque<std::pair<int, std::string>> inbox;
  void send(int dst, const std::string& msg) override { sent[dst].push_back(msg); }
  bool poll(int src, int* from, std::string* msg) override {
    for (auto it = inbox.begin(); it != inbox.end(); ++it)
      if (src < 0 || it->first == src) {
        if (from) *from = it->first;
        *msg = it->second;
        inbox.erase(it);
        return true;
      }
    return false;
  }
  json take(int dst) {
    if (sent[dst].empty()) return json();
    json j = json::parse(sent[dst].front());
    sent[dst].pop_front();
    return j;
  }
  void request(int rank, int group, const json& prev) {
    json m = {{"t", "next"}, {"g", group}, {"prev", prev}};
    inbox.emplace_back(rank, m.dump());
  }
};

std::vector<RunState> states(const std::vector<std::string>& artifacts) {
  std::vector<RunState> out;
  for (size_t i = 0; i < artifacts.size(); ++i) {
    RunState s;
    s.spec.index = i;
    s.spec.dataset = "toy";
    s.spec.model = "m" + std::to_string(i);
    if (!artifacts[i].empty()) s.artifacts = {artifacts[i]};
    out.push_back(s);
  }
  return out;
}

json done(int64_t i, const std::string& status = "done") {
  Outcome o;
  o.index = i;
  o.status = status;
  o.seconds = 1;
  if (status == "failed") o.error = "bad";
  return o.to_json();
}
}  // namespace

// Two groups: runs 0 and 1 share an artifact, so while run 0 produces it, the other group
// gets run 2; a group with nothing eligible waits until the artifact exists.
TEST(SweepCoordinator, RunsSharingAnArtifactWaitForItsProducer) {
  TempDir dir;
  FakeMailbox mb;
  Coordinator c(&mb, 2, 1, states({"a.h5", "a.h5", "", "a.h5"}), dir / "sweep.json", dir / "pre", {{"name", "t"}});
  EXPECT_EQ(c.next_for_self(nullptr), 0);  // group 0 (this rank): run 0, producer of a.h5
  mb.request(1, 1, nullptr);
  c.serve();
  EXPECT_EQ(mb.take(1), (json{{"t", "run"}, {"i", 2}}));  // not run 1: its artifact is being made
  mb.request(1, 1, done(2));
  c.serve();
  EXPECT_TRUE(mb.take(1).is_null());  // parked: runs 1 and 3 wait for a.h5
  write(dir / "pre/a.h5", "x");       // run 0's pretraining ends
  c.serve();
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  c.serve();
  EXPECT_EQ(mb.take(1), (json{{"t", "run"}, {"i", 1}}));
  Outcome o0 = Outcome::from_json(done(0));
  EXPECT_EQ(c.next_for_self(&o0), 3);
  mb.request(1, 1, done(1, "failed"));
  c.serve();
  EXPECT_EQ(mb.take(1), (json{{"t", "end"}}));
  Outcome o3 = Outcome::from_json(done(3));
  EXPECT_EQ(c.next_for_self(&o3), -1);
  EXPECT_EQ(c.finish(), kExitRunsFailed);  // run 1 failed
  EXPECT_EQ(mb.take(1), (json{{"t", "over"}, {"code", kExitRunsFailed}}));
  std::ifstream in(dir / "sweep.json");
  json j = json::parse(in);
  EXPECT_EQ(j["counts"]["done"], 3);
  EXPECT_EQ(j["counts"]["failed"], 1);
  EXPECT_EQ(j["runs"][1]["error"], "bad");
  EXPECT_EQ(j["status"], "finished with failures");
}

// A run that uses two artifacts (k-DVAE: the pretrained autoencoder and VaDE's ELBO stage)
// waits until neither is being produced; the VaDE run produces both.
TEST(SweepCoordinator, ARunWaitsForEveryArtifactItUses) {
  TempDir dir;
  FakeMailbox mb;
  auto runs = states({"ae.h5", "ae.h5", ""});
  runs[0].artifacts.push_back("vade.h5");  // VaDE: pretrains, then trains the shared stage
  runs[1].artifacts.push_back("vade.h5");  // k-DVAE of the same seed
  Coordinator c(&mb, 2, 1, runs, dir / "sweep.json", dir / "pre", {{"name", "t"}});
  EXPECT_EQ(c.next_for_self(nullptr), 0);
  mb.request(1, 1, nullptr);
  c.serve();
  EXPECT_EQ(mb.take(1), (json{{"t", "run"}, {"i", 2}}));
  mb.request(1, 1, done(2));
  c.serve();
  write(dir / "pre/ae.h5", "x");  // run 0's pretraining ends; its VaDE stage is still running
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  c.serve();
  EXPECT_TRUE(mb.take(1).is_null());  // run 1 still waits for vade.h5
  write(dir / "pre/vade.h5", "x");
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  c.serve();
  EXPECT_EQ(mb.take(1), (json{{"t", "run"}, {"i", 1}}));
  std::ifstream in(dir / "sweep.json");
  json j = json::parse(in);
  EXPECT_EQ(j["runs"][1]["artifacts"], (json{"ae.h5", "vade.h5"}));
}

// A run that ends preempted stops the sweep: the running groups are told to stop, no new
// run starts, and the exit code says "preempted".
TEST(SweepCoordinator, APreemptedRunStopsTheSweep) {
  TempDir dir;
  FakeMailbox mb;
  signals::clear_stop();
  Coordinator c(&mb, 2, 1, states({"", "", "", ""}), dir / "sweep.json", dir / "pre", {{"name", "t"}});
  EXPECT_EQ(c.next_for_self(nullptr), 0);
  mb.request(1, 1, nullptr);
  c.serve();
  EXPECT_EQ(mb.take(1)["i"], 1);
  Outcome o0 = Outcome::from_json(done(0, "preempted"));
  EXPECT_EQ(c.next_for_self(&o0), -1);
  EXPECT_TRUE(signals::stop_requested());
  EXPECT_EQ(mb.take(1), (json{{"t", "stop"}}));  // group 1 is told to checkpoint and stop
  mb.request(1, 1, done(1, "preempted"));
  EXPECT_EQ(c.finish(), kExitPreempted);
  EXPECT_EQ(mb.take(1), (json{{"t", "end"}}));
  EXPECT_EQ(mb.take(1), (json{{"t", "over"}, {"code", kExitPreempted}}));
  signals::clear_stop();
  std::ifstream in(dir / "sweep.json");
  json j = json::parse(in);
  EXPECT_EQ(j["runs"][0]["status"], "preempted");
  EXPECT_EQ(j["runs"][2]["status"], "pending");
}

// A world of one (no MPI): the coordinator hands its own group every run in order.
TEST(SweepCoordinator, WorldOfOneRunsEverything) {
  TempDir dir;
  signals::clear_stop();
  Coordinator c(nullptr, 1, 1, states({"a.h5", "a.h5", ""}), dir / "sweep.json", dir / "pre", {});
  Outcome o;
  for (int64_t i = 0; i < 3; ++i) {
    EXPECT_EQ(c.next_for_self(i ? &o : nullptr), i);
    if (i == 0) write(dir / "pre/a.h5", "x");
    o = Outcome::from_json(done(i));
  }
  EXPECT_EQ(c.next_for_self(&o), -1);
  EXPECT_EQ(c.finish(), kExitOk);
}
