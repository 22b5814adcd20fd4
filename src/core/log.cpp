#include "core/log.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

namespace mixvae::log {
namespace {
int g_rank = 0;
int g_tty = -1;                         // -1: ask isatty
std::unique_ptr<std::ofstream> g_file;  // set by Redirect
}  // namespace

Redirect::Redirect(const std::string& path, int r) : saved_rank_(g_rank), saved_tty_(g_tty) {
  if (!path.empty()) g_file = std::make_unique<std::ofstream>(path, std::ios::app);
  g_rank = r;
  g_tty = 0;
}

Redirect::~Redirect() {
  g_file.reset();
  g_rank = saved_rank_;
  g_tty = saved_tty_;
}

void set_tty(bool tty) { g_tty = tty ? 1 : 0; }

void set_rank(int r) { g_rank = r; }
int rank() { return g_rank; }
bool stdout_is_tty() { return g_tty >= 0 ? g_tty == 1 : ::isatty(STDOUT_FILENO) == 1; }

void info(const std::string& line) {
  if (g_rank != 0) return;
  (g_file ? *g_file : std::cout) << line << std::endl;
}

void warn(const std::string& line) {
  if (g_rank != 0) return;
  (g_file ? *g_file : std::cerr) << "warning: " << line << std::endl;
}

Progress::Progress(bool enabled, std::string stage, int64_t epoch, int64_t epochs, int64_t steps,
                   int64_t samples_per_epoch)
    : enabled_(enabled && g_rank == 0),
      tty_(stdout_is_tty()),
      stage_(std::move(stage)),
      epoch_(epoch),
      epochs_(epochs),
      steps_(steps),
      samples_(samples_per_epoch),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

double Progress::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::string Progress::line(int64_t step, double loss) const {
  double s = seconds();
  double frac = steps_ > 0 ? double(step) / double(steps_) : 1.0;
  double sps = s > 0 ? frac * double(samples_) / s : 0.0;
  // ETA for the rest of this stage, from this epoch's pace.
  double epoch_time = frac > 0 ? s / frac : 0.0;
  double eta = epoch_time * (double(epochs_ - epoch_) + (1.0 - frac));
  char buf[256];
  std::snprintf(buf, sizeof buf, "%-8s epoch %lld/%lld step %lld/%lld loss %.4f %.0f samples/s ETA %dm%02ds",
                stage_.c_str(), (long long)epoch_, (long long)epochs_, (long long)step, (long long)steps_, loss, sps,
                int(eta) / 60, int(eta) % 60);
  return buf;
}

void Progress::step(int64_t step, double running_loss) {
  if (!enabled_ || !tty_) return;
  auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(200) && step != steps_) return;
  last_draw_ = now;
  std::cout << "\r" << line(step, running_loss) << "\x1b[K" << std::flush;
}

void Progress::finish(double loss, const std::string& extra) {
  if (!enabled_) return;
  std::string l = line(steps_, loss);
  if (!extra.empty()) l += "  " + extra;
  if (tty_)
    std::cout << "\r" << l << "\x1b[K" << std::endl;
  else
    std::cout << l << std::endl;
}

}  // namespace mixvae::log
