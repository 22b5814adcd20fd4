#pragma once
// Error types and exit codes shared by every subcommand.
//
// Bad input (files, configs, flags) is the user's to fix: it becomes one line on stderr
// and exit code 2. Anything else escaping to main is a bug in mixvae: exit code 1.
#include <stdexcept>
#include <string>

namespace mixvae {

enum ExitCode : int {
  kExitOk = 0,
  kExitInternal = 1,           // a bug, or an unexpected library failure
  kExitUsage = 2,              // bad input: config, flag, file
  kExitPreempted = 3,          // stopped by SIGTERM/SIGUSR1 after writing a checkpoint
  kExitDiverged = 4,           // NaN/Inf loss that could not be recovered
  kExitRunsFailed = 5,         // a sweep ended, but some of its runs failed (see sweep.json)
  kExitCollectiveTimeout = 6,  // a collective waited past dist.timeout_s: a rank stopped, hung or died
};

// A flag, config key or value the user must change.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A file whose content is wrong (missing, truncated, wrong shape, NaN, ...). The message
// names the file and the problem.
class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The loss or a gradient became NaN/Inf and could not be recovered.
class DivergedError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A stop was requested (SIGTERM/SIGUSR1) and every rank wrote its checkpoint at the same
// step boundary; rerunning with --resume (or the same sweep) continues exactly.
class PreemptedError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Helper for the usual "FILE: problem" message.
inline DataError data_error(const std::string& file, const std::string& problem) {
  return DataError(file + ": " + problem);
}

}  // namespace mixvae
