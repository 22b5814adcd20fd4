#pragma once
// A sweep: which (dataset, model, seed) runs, where they go, on how many ranks each.
//
//   [sweep]
//   name = smoke
//   runs_dir = runs/smoke                 # RUNS: RUNS/<dataset>/<model>/seed-<s>/
//   experiments = configs/experiments     # run config = <experiments>/<dataset>-<model>.ini
//   datasets = synthetic                  # comma-separated
//   models = vade-quick, kdvae-quick      # experiment names (file name minus the dataset)
//   seeds = 0-3, 7                        # lists and inclusive ranges
//   ranks_per_run = 1
//   seeds_per_process = 1                 # >1: up to this many seeds of one (dataset, model)
//                                         # train together as a batched ensemble (vade only)
//   [datasets]
//   synthetic = data/smoke.h5             # optional: the data file of a dataset (data.path)
//   [overrides]
//   train.epochs = 2                      # optional: applied to every run after its file
//
// Torch-free: the plan is read on every rank and checked before anything runs.
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace mixvae::sweep {

struct RunSpec {
  size_t index = 0;  // position in the sweep (dataset, then model, then seed)
  std::string dataset, model;
  uint64_t seed = 0;
  std::string experiment;              // the run's INI file
  std::string dir;                     // RUNS/<dataset>/<model>/seed-<s>
  std::vector<std::string> overrides;  // "--section.key=value", applied after the file
  std::string label() const;           // "<dataset>/<model>/seed-<s>"
};

struct SweepConfig {
  std::string source;  // the sweep file
  std::string name = "sweep";
  std::string runs_dir = "runs/sweep";
  std::string experiments = "configs/experiments";
  std::vector<std::string> datasets, models;
  std::vector<uint64_t> seeds;
  int64_t ranks_per_run = 1;
  int64_t seeds_per_process = 1;
  std::map<std::string, std::string> dataset_paths;            // [datasets]
  std::vector<std::pair<std::string, std::string>> overrides;  // [overrides], in file order

  // The file, then command-line overrides "--section.key=value" (sections sweep,
  // datasets, overrides). UsageError naming the file/key on anything unknown or bad.
  static SweepConfig load(const std::string& path, const std::vector<std::string>& cli);
  // Every run, in order; the experiment files must exist (UsageError listing the missing).
  std::vector<RunSpec> expand() const;
  // Where pretraining artifacts are kept: RUNS/pretrained.
  std::string artifact_dir() const;
};

// "0-3,7" -> {0,1,2,3,7}; UsageError naming `what` on bad syntax or repeats.
std::vector<uint64_t> parse_seeds(const std::string& text, const std::string& what);
// "a, b,c" -> {"a","b","c"}; empty items are errors.
std::vector<std::string> parse_list(const std::string& text, const std::string& what);
// "I/N" with 0 <= I < N.
std::pair<int64_t, int64_t> parse_slice(const std::string& text);

}  // namespace mixvae::sweep
