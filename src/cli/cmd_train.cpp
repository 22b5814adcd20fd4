// mixvae train --config FILE.ini [--section.key=value ...] [--resume]
#include <iostream>

#include "cli/commands.h"
#include "core/config.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/signals.h"
#include "train/trainer.h"

namespace mixvae::cli {

int cmd_train(dist::Communicator& comm, const Args& args) {
  std::string config_path;
  bool resume = false, help = false;
  std::vector<std::string> overrides;
  RunConfig cfg;
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
      } else if (a.rfind("--", 0) == 0 && a.find('=') == std::string::npos && a.find('.') != std::string::npos &&
                 i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0) {
        overrides.push_back(a + "=" + args[++i]);  // "--train.epochs 5" spelling
      } else {
        overrides.push_back(a);
      }
    }
    if (help) return;
    cfg = RunConfig::load(config_path, overrides);
  });
  if (help) {
    if (comm.rank() == 0)
      std::cout << "usage: mixvae train --config FILE.ini [--section.key=value ...] [--resume]\n\n"
                   "  --config FILE   INI file with sections [data] [model] [train] [pretrain] [dist] [checkpoint] [output]\n"
                   "  --resume        continue from output.dir/checkpoint.h5 (same results as an uninterrupted run)\n\n"
                   "SIGTERM or SIGUSR1 stops training at the next step with a checkpoint (exit code 3);\n"
                   "--resume continues from there.\n"
                   "exit codes: 0 done, 2 bad input (config, flag, file), 3 stopped by a signal (checkpoint\n"
                   "written), 4 diverged, 6 a rank stopped, hung or died inside a collective (dist.timeout_s).\n\n"
                   "config keys (defaults shown), settable in the file or as --section.key=value:\n"
                << config_help();
    return kExitOk;
  }
  train::Trainer trainer(comm, cfg);
  train::TrainResult r = trainer.run(resume);
  if (comm.rank() == 0) {
    char buf[256];
    if (r.eval.has_labels)
      std::snprintf(buf, sizeof buf, "final: ACC %.4f  NMI %.4f  ARI %.4f  (%d rank(s), %.0f s) -> %s", r.eval.scores.acc,
                    r.eval.scores.nmi, r.eval.scores.ari, comm.size(), r.seconds, cfg.output.dir.c_str());
    else
      std::snprintf(buf, sizeof buf, "final: no labels to score (%d rank(s), %.0f s) -> %s", comm.size(), r.seconds,
                    cfg.output.dir.c_str());
    log::info(buf);
  }
  return kExitOk;
}

}  // namespace mixvae::cli
