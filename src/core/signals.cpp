#include "core/signals.h"

#include <time.h>

#include <csignal>

namespace mixvae::signals {
namespace {
volatile std::sig_atomic_t g_stop = 0;        // the signal number, or -1 for request_stop()
volatile std::sig_atomic_t g_first_term = 0;  // CLOCK_MONOTONIC second of the first SIGTERM

long mono_seconds() {
  struct timespec ts {};
  clock_gettime(CLOCK_MONOTONIC, &ts);  // async-signal-safe
  return long(ts.tv_sec);
}

extern "C" void on_stop_signal(int sig) {
  if (sig == SIGTERM) {
    const long t = mono_seconds();
    if (g_first_term == 0) {
      g_first_term = std::sig_atomic_t(t > 0 ? t : 1);
    } else if (t - long(g_first_term) >= 5) {
      // A second SIGTERM well after the first: whoever sends it wants the process gone
      // now. (Slurm's time limit sends two within milliseconds; those count as one.)
      std::signal(SIGTERM, SIG_DFL);
      std::raise(SIGTERM);
      return;
    }
  }
  if (g_stop == 0) g_stop = sig;
}
}  // namespace

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // blocking reads and MPI progress calls resume after the flag is set
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGUSR1, &sa, nullptr);
}

bool stop_requested() { return g_stop != 0; }
int stop_signal() { return g_stop > 0 ? int(g_stop) : 0; }
void request_stop() {
  if (g_stop == 0) g_stop = -1;
}
void clear_stop() {
  g_stop = 0;
  g_first_term = 0;
}

}  // namespace mixvae::signals
