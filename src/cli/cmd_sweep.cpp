// mixvae sweep --config SWEEP.ini [--slice I/N] [--section.key=value ...]
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "cli/commands.h"
#include "core/config.h"
#include "core/errors.h"
#include "core/files.h"
#include "core/log.h"
#include "core/signals.h"
#include "dist/mailbox.h"
#include "models/registry.h"
#include "sweep/plan.h"
#include "sweep/scheduler.h"
#include "train/checkpoint.h"
#include "train/ensemble.h"
#include "train/pretrain_artifact.h"
#include "train/trainer.h"

namespace mixvae::cli {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

const char* kUsage =
    "usage: mixvae sweep --config SWEEP.ini [--slice I/N] [--section.key=value ...]\n"
    "\n"
    "Trains every (dataset, model, seed) run of a sweep file. The world (mpirun -np W) is split\n"
    "into W / sweep.ranks_per_run groups; each group trains one run at a time and takes the next\n"
    "when it finishes. Runs go to RUNS/<dataset>/<model>/seed-<s>/ (RUNS = sweep.runs_dir);\n"
    "rerunning the same command skips finished runs and resumes the others from their\n"
    "checkpoints. Pretrained autoencoders are kept in RUNS/pretrained/ and shared by the runs\n"
    "that need the same one. `mixvae report RUNS` prints the results table.\n"
    "With sweep.seeds_per_process = S > 1, a group trains up to S pending seeds of one\n"
    "(dataset, model) together as a batched ensemble (VaDE; other models run one seed at a\n"
    "time); its checkpoint is RUNS/<dataset>/<model>/ensemble-<seeds>/, its log the first\n"
    "seed's train.log, and a diverging ensemble retrains its seeds one by one.\n"
    "\n"
    "  --config FILE   the sweep file (configs/sweeps/*.ini): [sweep] [datasets] [overrides]\n"
    "  --slice I/N     only runs whose index % N == I (a job-array task's share)\n"
    "  --sweep.KEY=V, --datasets.NAME=FILE, --overrides.SECTION.KEY=V   override the file\n"
    "\n"
    "exit codes: 0 all runs finished, 2 bad config, 3 stopped by SIGTERM/SIGUSR1 (checkpoints\n"
    "written; rerun to continue), 5 finished but some runs failed (errors in sweep.json),\n"
    "6 a rank stopped, hung or died inside a collective (dist.timeout_s; rerun to continue).\n";

// A run's error as it goes into status.json, sweep.json and the summary line.
std::string error_line(const std::string& what) {
  std::string s = one_line(what);
  if (s.size() > 1500) s = s.substr(0, 1500) + "...";
  return s;
}

void write_status(const std::string& dir, const std::string& status, const std::string& error) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  json j = {{"status", status}, {"updated", std::time(nullptr)}};
  if (!error.empty()) j["error"] = error;
  try {
    write_file_atomic((fs::path(dir) / "status.json").string(), j.dump(2) + "\n");
  } catch (const DataError&) {
    // Informational only: a full disk shows up in the run itself.
  }
}

// Whether INI text written by an earlier invocation (a run's config.ini, a checkpoint's
// config) describes the planned run. Compared after loading it with this binary's
// defaults, so a mixvae that gained a config key (at its default) still recognises the
// runs an older one finished; a hash of the text would not. Only the keys that change
// training count (changes_training, core/config.h): a resubmission with another
// --cpus-per-task (train.threads) or output settings is the same run.
bool same_config(const std::string& ini_text, const std::string& origin, const RunConfig& planned) {
  try {
    return training_differences(RunConfig::load_text(ini_text, origin), planned).empty();
  } catch (const std::exception&) {
    return false;  // a key this binary no longer knows, a bad value: not the planned run
  }
}

// A run folder's config.ini, or "" when it cannot be read (then it is not the planned run).
std::string config_text(const fs::path& p) {
  try {
    return read_text_file(p.string());
  } catch (const DataError&) {
    return "";
  }
}

// The artifact files a run uses (RUNS/pretrained/): its pretrained autoencoder, then the
// shared stages of its recipe (models::Stage::artifact). The scheduler makes a run wait
// while another run is producing one of them.
std::vector<std::string> artifacts_of(const RunConfig& cfg, int ranks_per_run) {
  // The recipe is the model's; it depends on the config, not on the data, so a model built
  // for a 1-column input tells it. One build per distinct config (seeds share it).
  struct Shape {
    std::vector<models::Stage> recipe;
    int64_t started_through = -1;  // a run that starts from a finished run skips stages 0..this
  };
  static std::map<std::string, Shape> shapes;
  RunConfig key_cfg = cfg;
  key_cfg.train.seed = 0;
  key_cfg.output.dir.clear();
  key_cfg.data.path.clear();
  auto it = shapes.find(key_cfg.to_ini());
  if (it == shapes.end()) {
    const auto model = models::make_model(cfg, 1, true);
    Shape sh;
    sh.recipe = model->recipe(cfg);
    const models::ClusteringModel::StartFrom from = model->start_from();
    if (!from.checkpoint.empty()) sh.started_through = models::last_stage_of(sh.recipe, from.family);
    it = shapes.emplace(key_cfg.to_ini(), std::move(sh)).first;
  }
  const Shape& sh = it->second;
  std::vector<std::string> out;
  // A run that starts from another run's checkpoint (k-DVAE's vade_checkpoint) trains
  // neither the autoencoder nor the stages it skips, so it neither waits for their
  // artifacts nor is counted as producing them.
  const train::PretrainKey key = train::pretrain_key(cfg, ranks_per_run);
  if (!key.family.empty() && cfg.pretrain.epochs > 0 && sh.started_through < 0) out.push_back(key.file_name());
  for (size_t i = 0; i < sh.recipe.size(); ++i) {
    const models::Stage& stage = sh.recipe[i];
    if (int64_t(i) <= sh.started_through) continue;
    if (stage.kind != models::StageKind::Main || stage.artifact.empty() || stage.epochs == 0) continue;
    const train::PretrainKey sk = train::stage_key(cfg, ranks_per_run, stage.artifact, int64_t(i));
    if (!sk.family.empty()) out.push_back(sk.file_name());
  }
  return out;
}

// What an earlier invocation left in a run's folder.
sweep::RunState inspect(const sweep::RunSpec& spec, const RunConfig& cfg, int ranks_per_run) {
  sweep::RunState st;
  st.spec = spec;
  st.artifacts = artifacts_of(cfg, ranks_per_run);
  const fs::path dir(spec.dir);
  if (fs::exists(dir / "result.json")) {
    std::ifstream in(dir / "result.json");
    json r = json::parse(in, nullptr, false);
    if (!r.is_discarded() && same_config(config_text(dir / "config.ini"), (dir / "config.ini").string(), cfg)) {
      st.status = "done";
      st.seconds = r.value("seconds", 0.0);
      if (r.contains("acc") && r["acc"].is_number()) st.acc = r["acc"].get<double>();
      if (r.contains("nmi") && r["nmi"].is_number()) st.nmi = r["nmi"].get<double>();
      if (r.contains("ari") && r["ari"].is_number()) st.ari = r["ari"].get<double>();
      return st;
    }
    st.status = "failed";
    st.error =
        (dir / "result.json").string() + " is a finished run of another config; move the folder away to rerun it";
    return st;
  }
  fs::path ckpt = dir / "checkpoint.h5";
  if (!fs::exists(ckpt)) ckpt = train::previous_checkpoint_path(ckpt.string());
  if (fs::exists(ckpt)) {
    try {
      train::CheckpointMeta m = train::read_checkpoint_meta(ckpt.string());
      if (!same_config(m.config_ini, ckpt.string(), cfg)) {
        st.status = "failed";
        st.error = ckpt.string() + " was written by another config; move the folder away to restart the run";
        return st;
      }
    } catch (const std::exception&) {
      // Unreadable: the run's resume falls back to the previous checkpoint, or fails
      // with the reason.
    }
  }
  return st;
}

}  // namespace

int cmd_sweep(dist::Communicator& world, const Args& args) {
  std::string config_path, slice_text;
  bool help = false;
  std::vector<std::string> overrides;
  sweep::SweepConfig sc;
  std::vector<sweep::RunSpec> runs;
  std::vector<RunConfig> cfgs;
  int64_t slice_i = 0, slice_n = 1;
  dist::agree(world, [&] {
    for (size_t i = 0; i < args.size(); ++i) {
      const std::string& a = args[i];
      auto value = [&](const std::string& flag) {
        if (a.rfind(flag + "=", 0) == 0) return a.substr(flag.size() + 1);
        if (i + 1 >= args.size()) throw UsageError("sweep: " + flag + " needs a value");
        return args[++i];
      };
      if (a == "--help" || a == "-h")
        help = true;
      else if (a == "--config" || a.rfind("--config=", 0) == 0)
        config_path = value("--config");
      else if (a == "--slice" || a.rfind("--slice=", 0) == 0)
        slice_text = value("--slice");
      else if (a.rfind("--", 0) == 0 && a.find('.') != std::string::npos && a.find('=') != std::string::npos)
        overrides.push_back(a);
      else
        throw UsageError("sweep: unknown option '" + a +
                         "' (valid: --config, --slice, --section.key=value; see --help)");
    }
    if (help) return;
    sc = sweep::SweepConfig::load(config_path, overrides);
    if (!slice_text.empty()) std::tie(slice_i, slice_n) = sweep::parse_slice(slice_text);
    if (world.size() % sc.ranks_per_run != 0)
      throw UsageError("sweep: " + std::to_string(world.size()) +
                       " rank(s) do not split into groups of sweep.ranks_per_run = " +
                       std::to_string(sc.ranks_per_run) + " (start a multiple of it)");
    for (auto& r : sc.expand())
      if (int64_t(r.index) % slice_n == slice_i) runs.push_back(std::move(r));
    // Every run's config is checked before anything trains: a typo fails in a second,
    // not after the first hundred runs.
    std::set<std::string> checked;
    for (const auto& r : runs) {
      RunConfig c = RunConfig::load(r.experiment, r.overrides);
      c.validate();
      if (checked.insert(c.data.path).second && !fs::is_regular_file(c.data.path))
        throw UsageError("sweep: dataset '" + r.dataset + "': data file '" + c.data.path +
                         "' does not exist (create it with `mixvae prepare`, or set [datasets] " + r.dataset +
                         " = FILE)");
      cfgs.push_back(std::move(c));
    }
  });
  if (help) {
    if (world.rank() == 0) std::cout << kUsage;
    return kExitOk;
  }

  const int rpr = int(sc.ranks_per_run), groups = world.size() / rpr, group = world.rank() / rpr;
  std::unique_ptr<dist::Communicator> comm = world.split(group, world.rank());
  std::unique_ptr<dist::Mailbox> mailbox = dist::make_world_mailbox();
  const bool leader = comm->rank() == 0;

  std::unique_ptr<sweep::Coordinator> coord;
  std::unique_ptr<sweep::Worker> worker;
  if (world.rank() == 0) {
    std::vector<sweep::RunState> states;
    for (size_t i = 0; i < runs.size(); ++i) states.push_back(inspect(runs[i], cfgs[i], rpr));
    // A run's index in `states` is its position in this invocation's list.
    for (size_t i = 0; i < states.size(); ++i) states[i].spec.index = i;
    // Seeds of one (dataset, model) that can train as a batched ensemble share a bundle.
    if (sc.seeds_per_process > 1)
      for (size_t i = 0; i < states.size(); ++i)
        if (train::ensemble_unsupported(cfgs[i]).empty())
          states[i].bundle = states[i].spec.dataset + "/" + states[i].spec.model;
    json header = {
        {"name", sc.name},      {"config", sc.source}, {"runs_dir", sc.runs_dir}, {"world_size", world.size()},
        {"ranks_per_run", rpr}, {"groups", groups},    {"mixvae", MIXVAE_VERSION}};
    if (sc.seeds_per_process > 1) header["seeds_per_process"] = sc.seeds_per_process;
    if (slice_n > 1) header["slice"] = std::to_string(slice_i) + "/" + std::to_string(slice_n);
    const std::string json_name =
        slice_n > 1 ? "sweep.slice-" + std::to_string(slice_i) + "-of-" + std::to_string(slice_n) + ".json"
                    : "sweep.json";
    coord = std::make_unique<sweep::Coordinator>(mailbox.get(), groups, rpr, std::move(states),
                                                 (fs::path(sc.runs_dir) / json_name).string(), sc.artifact_dir(),
                                                 header, int(sc.seeds_per_process));
  } else {
    worker = std::make_unique<sweep::Worker>(mailbox.get(), leader, group);
  }
  auto hook = [&] {
    if (coord)
      coord->serve();
    else
      worker->poll_stop();
  };

  sweep::Outcome prev;
  bool have_prev = false;
  for (;;) {
    const int64_t idx =
        coord ? coord->next_for_self(have_prev ? &prev : nullptr) : worker->next(have_prev ? &prev : nullptr);
    if (idx < 0) break;
    // The run, and the runs handed out with it (other seeds, trained as one ensemble).
    std::vector<int64_t> members{idx};
    for (int64_t c : coord ? coord->companions() : worker->companions()) members.push_back(c);
    const sweep::RunSpec& spec = runs[size_t(idx)];
    const RunConfig& cfg = cfgs[size_t(idx)];
    std::vector<sweep::Outcome> outs(members.size());
    for (size_t m = 0; m < members.size(); ++m) outs[m].index = members[m];
    have_prev = true;
    // An ensemble keeps its checkpoint in RUNS/<dataset>/<model>/ensemble-<seeds>/.
    std::string state_dir;
    if (members.size() > 1) {
      std::string name = "ensemble";
      for (int64_t m : members) name += "-" + std::to_string(runs[size_t(m)].seed);
      state_dir = (fs::path(spec.dir).parent_path() / name).string();
    }
    // The leader decides whether to resume (what it sees on disk), for the whole group.
    const fs::path ck =
        members.size() > 1 ? fs::path(state_dir) / "checkpoint.h5" : fs::path(spec.dir) / "checkpoint.h5";
    std::vector<int64_t> resume{
        leader && (fs::exists(ck) || fs::exists(train::previous_checkpoint_path(ck.string()))) ? 1 : 0};
    comm->broadcast(resume, 0);
    if (leader)
      for (int64_t m : members) write_status(runs[size_t(m)].dir, "running", "");
    const auto t0 = std::chrono::steady_clock::now();
    auto record_all = [&](const std::string& status, const std::string& error) {
      for (auto& o : outs) {
        o.status = status;
        o.error = error;
      }
    };
    auto score = [](sweep::Outcome& o, const train::TrainResult& r) {
      o.status = "done";
      if (r.eval.has_labels) {
        o.acc = r.eval.scores.acc;
        o.nmi = r.eval.scores.nmi;
        o.ari = r.eval.scores.ari;
      }
    };
    // Runs fn; a failure becomes (status, one-line error) for the runs it trained.
    struct Failure {
      std::string status, error;
      bool diverged = false;
    };
    auto guarded = [&](const std::function<void()>& fn) -> Failure {
      try {
        fn();
        return {};
      } catch (const PreemptedError& e) {
        return {"preempted", error_line(e.what())};
      } catch (const UsageError& e) {
        return {"failed", error_line(e.what())};
      } catch (const DataError& e) {
        return {"failed", error_line(e.what())};
      } catch (const DivergedError& e) {
        return {"failed", error_line(std::string("training diverged: ") + e.what()), true};
      } catch (const std::exception& e) {
        // Alone in its group, a rank can record anything and go on; in a larger group the
        // other ranks may be waiting in a collective, so main ends the job instead.
        if (comm->size() > 1) throw;
        return {"failed", error_line(std::string("internal error: ") + e.what())};
      }
    };
    const Failure f = guarded([&] {
      std::error_code ec;
      if (leader) fs::create_directories(spec.dir, ec);
      log::Redirect quiet(leader ? (fs::path(spec.dir) / "train.log").string() : "", leader ? 0 : 1);
      if (members.size() > 1) {
        std::vector<uint64_t> seeds;
        std::vector<std::string> dirs;
        for (int64_t m : members) {
          seeds.push_back(runs[size_t(m)].seed);
          dirs.push_back(runs[size_t(m)].dir);
        }
        log::info("training seeds as one batched ensemble; its log is " + spec.dir + "/train.log");
        train::EnsembleTrainer ens(*comm, cfg, seeds, dirs, state_dir);
        ens.set_pretrain_cache(sc.artifact_dir());
        ens.set_step_hook(hook);
        std::vector<train::TrainResult> rs = ens.run(resume[0] != 0);
        for (size_t m = 0; m < members.size(); ++m) score(outs[m], rs[m]);
      } else {
        train::Trainer trainer(*comm, cfg);
        trainer.set_pretrain_cache(sc.artifact_dir());
        trainer.set_step_hook(hook);
        score(outs[0], trainer.run(resume[0] != 0));
      }
    });
    if (!f.status.empty()) record_all(f.status, f.error);
    if (f.diverged && members.size() > 1) {
      // One member diverged and took the ensemble with it: each seed again on its own,
      // from scratch, where a divergence rolls back and lowers the learning rate.
      for (size_t m = 0; m < members.size(); ++m) {
        const sweep::RunSpec& ms = runs[size_t(members[m])];
        outs[m] = sweep::Outcome{};
        outs[m].index = members[m];
        const Failure g = guarded([&] {
          log::Redirect quiet(leader ? (fs::path(ms.dir) / "train.log").string() : "", leader ? 0 : 1);
          log::warn("the ensemble diverged; training seed " + std::to_string(ms.seed) + " alone");
          train::Trainer trainer(*comm, cfgs[size_t(members[m])]);
          trainer.set_pretrain_cache(sc.artifact_dir());
          trainer.set_step_hook(hook);
          score(outs[m], trainer.run(false));
        });
        if (g.status.empty()) continue;
        // A stop leaves this and the remaining seeds preempted (rerun to continue).
        for (size_t k = m; k < members.size(); ++k)
          if (k == m || g.status == "preempted") {
            outs[k].status = g.status;
            outs[k].error = g.error;
          }
        if (g.status == "preempted") break;
      }
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (size_t m = 0; m < members.size(); ++m) {
      outs[m].seconds = secs;
      if (leader) write_status(runs[size_t(members[m])].dir, outs[m].status, outs[m].error);
      if (m == 0) continue;
      if (coord)
        coord->report(outs[m]);
      else
        worker->report(outs[m]);
    }
    prev = outs[0];
  }
  const int code = coord ? coord->finish() : worker->wait_exit_code();
  return code;
}

}  // namespace mixvae::cli
