// mixvae train --config FILE.ini [--section.key=value ...] [--resume]
#include <iostream>

#include "cli/commands.h"
#include "core/config.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/signals.h"
#include "sweep/plan.h"
#include "train/ensemble.h"
#include "train/trainer.h"

namespace mixvae::cli {

int cmd_train(dist::Communicator& comm, const Args& args) {
  std::string config_path, seeds_text;
  bool resume = false, help = false;
  std::vector<std::string> overrides;
  RunConfig cfg;
  std::vector<uint64_t> seeds;
  dist::agree(comm, [&] {
    for (size_t i = 0; i < args.size(); ++i) {
      const std::string& a = args[i];
      if (a == "--help" || a == "-h") {
        help = true;
      } else if (a == "--resume") {
        resume = true;
      } else if (a == "--config") {
        if (i + 1 >= args.size()) throw UsageError("train: --config needs a file");
        config_path = args[++i];
      } else if (a.rfind("--config=", 0) == 0) {
        config_path = a.substr(9);
      } else if (a == "--seeds") {
        if (i + 1 >= args.size()) throw UsageError("train: --seeds needs a list, e.g. 0-3");
        seeds_text = args[++i];
      } else if (a.rfind("--seeds=", 0) == 0) {
        seeds_text = a.substr(8);
      } else if (a.rfind("--", 0) == 0 && a.find('=') == std::string::npos && a.find('.') != std::string::npos &&
                 i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0) {
        overrides.push_back(a + "=" + args[++i]);  // "--train.epochs 5" spelling
      } else {
        overrides.push_back(a);
      }
    }
    if (help) return;
    cfg = RunConfig::load(config_path, overrides);
    if (!seeds_text.empty()) {
      seeds = sweep::parse_seeds(seeds_text, "train --seeds");
      const std::string why = train::ensemble_unsupported(cfg);
      if (!why.empty()) throw UsageError("train --seeds: " + why);
    }
  });
  if (help) {
    if (comm.rank() == 0)
      std::cout
          << "usage: mixvae train --config FILE.ini [--section.key=value ...] [--seeds LIST] [--resume]\n\n"
             "  --config FILE   INI file with sections [data] [model] [train] [pretrain] [dist] [checkpoint] [output]\n"
             "  --resume        continue from output.dir/checkpoint.h5 (same results as an uninterrupted run)\n"
             "  --seeds LIST    train one run per seed (e.g. 0-3,7) side by side in this process as batched\n"
             "                  matrix products (a seed ensemble; model vade): run s goes to\n"
             "                  output.dir/seed-<s>/, the ensemble's checkpoint to output.dir/ensemble/\n\n"
             "SIGTERM or SIGUSR1 stops training at the next step with a checkpoint (exit code 3);\n"
             "--resume continues from there.\n"
             "exit codes: 0 done, 2 bad input (config, flag, file), 3 stopped by a signal (checkpoint\n"
             "written), 4 diverged, 6 a rank stopped, hung or died inside a collective (dist.timeout_s).\n\n"
             "config keys (defaults shown), settable in the file or as --section.key=value:\n"
          << config_help();
    return kExitOk;
  }
  if (!seeds.empty()) {
    std::vector<std::string> dirs;
    for (uint64_t s : seeds) dirs.push_back(cfg.output.dir + "/seed-" + std::to_string(s));
    train::EnsembleTrainer ens(comm, cfg, seeds, dirs, cfg.output.dir + "/ensemble");
    std::vector<train::TrainResult> rs = ens.run(resume);
    if (comm.rank() == 0) {
      for (size_t i = 0; i < rs.size(); ++i) {
        char buf[256];
        std::snprintf(buf, sizeof buf, "final seed %llu: ACC %.4f  NMI %.4f  ARI %.4f -> %s",
                      (unsigned long long)seeds[i], rs[i].eval.scores.acc, rs[i].eval.scores.nmi, rs[i].eval.scores.ari,
                      dirs[i].c_str());
        log::info(rs[i].eval.has_labels ? std::string(buf)
                                        : "final seed " + std::to_string(seeds[i]) + ": no labels -> " + dirs[i]);
      }
      log::info("ensemble of " + std::to_string(rs.size()) + " runs done in " +
                std::to_string(int(rs.empty() ? 0 : rs[0].seconds)) + " s");
    }
    return kExitOk;
  }
  train::Trainer trainer(comm, cfg);
  train::TrainResult r = trainer.run(resume);
  if (comm.rank() == 0) {
    char buf[256];
    if (r.eval.has_labels)
      std::snprintf(buf, sizeof buf, "final: ACC %.4f  NMI %.4f  ARI %.4f  (%d rank(s), %.0f s) -> %s",
                    r.eval.scores.acc, r.eval.scores.nmi, r.eval.scores.ari, comm.size(), r.seconds,
                    cfg.output.dir.c_str());
    else
      std::snprintf(buf, sizeof buf, "final: no labels to score (%d rank(s), %.0f s) -> %s", comm.size(), r.seconds,
                    cfg.output.dir.c_str());
    log::info(buf);
  }
  return kExitOk;
}

}  // namespace mixvae::cli
