// mixvae: deep-clustering VAEs on MPI ranks. Dispatches to one subcommand; turns errors
// into one line and an exit code (the codes are listed in core/errors.h).
#include <malloc.h>

#include <cstring>
#include <iostream>

#include "cli/commands.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/signals.h"

namespace {
const char* kUsage =
    "mixvae " MIXVAE_VERSION
    " — VAE-based deep clustering with data-parallel MPI ranks\n"
    "\n"
    "usage: mixvae <command> [options]    (under mpirun/srun every command runs on all ranks)\n"
    "\n"
    "commands:\n"
    "  prepare  --dataset mnist|har|reuters|stl10|npy|csv|synthetic --out FILE.h5   convert data to the HDF5 schema\n"
    "  train    --config FILE.ini [--section.key=value ...] [--resume] train a model\n"
    "  eval     --checkpoint RUN/checkpoint.h5 [--data FILE.h5]      ACC/NMI/ARI of a checkpoint\n"
    "  sample   --checkpoint RUN/checkpoint.h5 --out grid.png       samples per cluster as a PNG grid\n"
    "  sweep    --config SWEEP.ini [--slice I/N]                     many (dataset, model, seed) runs side by side\n"
    "  report   RUNS_DIR [--format md|csv|json] [--out DIR] [--paper FILE.csv] [--curves RUN_DIR]\n"
    "                                                                results table of a sweep (mean +- std over "
    "seeds), plots\n"
    "\n"
    "exit codes: 0 done; 1 internal error; 2 bad input (config, flag, file), one line on stderr;\n"
    "  3 stopped by SIGTERM/SIGUSR1 with a checkpoint (rerun with --resume); 4 training diverged;\n"
    "  5 a sweep ended with failed runs; 6 a rank stopped, hung or died in a collective (dist.timeout_s).\n"
    "\n"
    "`mixvae <command> --help` lists a command's options; `mixvae train --help` lists every config key.\n";
}

int main(int argc, char** argv) {
  using namespace mixvae;
  if (argc < 2) {
    std::cerr << kUsage;
    return kExitUsage;
  }
  std::string cmd = argv[1];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::cout << kUsage;
    return kExitOk;
  }
  if (cmd == "--version") {
    std::cout << "mixvae " MIXVAE_VERSION "\n";
    return kExitOk;
  }
  // Training allocates and frees the same multi-megabyte tensors every step. glibc's
  // default serves those with mmap/munmap, so each step page-faults its buffers in again
  // (measured: pretraining 2.5-3x slower on MNIST). Keep them in the heap instead.
  mallopt(M_MMAP_THRESHOLD, 512 * 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024);
  // Preemption signals only set a flag for the commands that checkpoint on it; installed
  // before MPI starts, so a signal during start-up does not kill the process either.
  if (cmd == "train" || cmd == "sweep") signals::install_stop_handlers();
  std::unique_ptr<dist::Communicator> world;
  try {
    world = dist::make_world(&argc, &argv);
  } catch (const std::exception& e) {
    std::cerr << "mixvae: error: cannot start MPI: " << e.what() << "\n";
    return kExitInternal;
  }
  log::set_rank(world->rank());
  if (dist::launched_by_mpi()) log::set_tty(false);
  cli::Args args(argv + 2, argv + argc);
  int code = kExitOk;
  auto fail = [&](int exit_code, const std::string& what) -> int {
    const bool collective = world->size() == 1 || dist::last_error_was_collective();
    if (collective) {
      if (world->rank() == 0) std::cerr << "mixvae: error: " << what << std::endl;
      return exit_code;
    }
    // Only this rank failed: the others may be inside a collective, so end the job.
    std::cerr << "mixvae: error on rank " << world->rank() << ": " << what << std::endl;
    world->abort(exit_code);
    return exit_code;  // not reached (abort ends the job); [[noreturn]] is lost through the virtual call
  };
  try {
    if (cmd == "prepare")
      code = cli::cmd_prepare(*world, args);
    else if (cmd == "train")
      code = cli::cmd_train(*world, args);
    else if (cmd == "eval")
      code = cli::cmd_eval(*world, args);
    else if (cmd == "sample")
      code = cli::cmd_sample(*world, args);
    else if (cmd == "sweep")
      code = cli::cmd_sweep(*world, args);
    else if (cmd == "report")
      code = cli::cmd_report(*world, args);
    else
      dist::agree(*world, [&] {
        throw UsageError("unknown command '" + cmd +
                         "' (commands: prepare, train, eval, sample, sweep, report; see mixvae --help)");
      });
  } catch (const UsageError& e) {
    code = fail(kExitUsage, e.what());
  } catch (const DataError& e) {
    code = fail(kExitUsage, e.what());
  } catch (const PreemptedError& e) {
    // Every rank stops at the same step (the stop request is agreed), so this is collective.
    if (world->rank() == 0) std::cerr << "mixvae: " << e.what() << "; rerun with --resume to continue" << std::endl;
    code = kExitPreempted;
  } catch (const DivergedError& e) {
    code = fail(kExitDiverged, std::string("training diverged: ") + e.what());
  } catch (const std::exception& e) {
    code = fail(kExitInternal, std::string("internal error: ") + e.what());
  }
  world.reset();
  dist::finalize();
  return code;
}
