#pragma once
// The report's PNG plots, drawn by gnuplot: mixvae writes a gnuplot script and its data
// files into a temporary folder and runs `gnuplot` on them (no pixels are drawn here).
// Without gnuplot the tables still work: a plot then comes back as a one-line reason it was
// skipped, never as an error, and never as a partial file.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sweep/report.h"

namespace mixvae::sweep {

// gnuplot's path on $PATH, or "" when it is not installed.
std::string find_gnuplot();

// ACC of every finished seed, one panel per dataset, one point series (and a dashed mean
// line) per model. Returns "" when `png_path` was written, else why it was not.
std::string plot_acc_per_seed(const Report& report, const std::string& png_path);

// One line of a run's metrics.jsonl.
struct CurvePoint {
  std::string stage;
  int64_t stage_index = 0, epoch = 0;
  std::optional<double> loss, acc;
};

// RUN_DIR/metrics.jsonl in file order. DataError naming the file (and line) when it is
// missing or a line is not a JSON object; a torn last line (a run still writing) is skipped.
std::vector<CurvePoint> read_metrics(const std::string& run_dir);

// Loss (top) and ACC (bottom, when the run has labels) per epoch, one series per stage,
// epochs numbered through all stages in order. Returns "" when written, else why not.
std::string plot_training_curves(const std::vector<CurvePoint>& points, const std::string& title,
                                 const std::string& png_path);

}  // namespace mixvae::sweep
