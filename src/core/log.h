#pragma once
// Rank 0 speaks: info and warnings are printed by rank 0 only; errors by whoever main
// decides. The progress line updates in place on a terminal and is one line per epoch
// otherwise (logs, Slurm output files).
#include <chrono>
#include <cstdint>
#include <string>

namespace mixvae::log {

void set_rank(int rank);
int rank();
void info(const std::string& line);  // stdout, rank 0
void warn(const std::string& line);  // stderr "warning: ...", rank 0
bool stdout_is_tty();
// Sends info and warnings to a file instead of stdout/stderr while it lives, and speaks as
// `rank` (a sweep's group leader logs its run into the run folder, whatever its world rank).
class Redirect {
 public:
  Redirect(const std::string& path, int rank);
  ~Redirect();
  Redirect(const Redirect&) = delete;
  Redirect& operator=(const Redirect&) = delete;

 private:
  int saved_rank_, saved_tty_;
};
// Overrides the isatty() answer: mpirun hands ranks a pseudo-terminal even when its own
// output goes to a file, so under MPI main() says "not a terminal" (one line per epoch).
void set_tty(bool tty);

class Progress {
 public:
  Progress(bool enabled, std::string stage, int64_t epoch, int64_t epochs, int64_t steps, int64_t samples_per_epoch);
  // Cheap to call every step; redraws at most ~5 times a second, and only on a TTY.
  void step(int64_t step, double running_loss);
  // Ends the epoch: prints the final line (with extra text) on a TTY and off it.
  void finish(double loss, const std::string& extra);
  double seconds() const;

 private:
  bool enabled_;
  bool tty_;
  std::string stage_;
  int64_t epoch_, epochs_, steps_, samples_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  std::string line(int64_t step, double loss) const;
};

}  // namespace mixvae::log
