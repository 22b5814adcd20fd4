#pragma once
// `mixvae report`: reads a sweep's run tree (RUNS/<dataset>/<model>/seed-<s>/) into one
// record per run, aggregates the finished runs per (model, dataset) and renders the table
// in the layout of the k-DVAE paper's Table 2 (rows = models, column groups = datasets)
// as Markdown, CSV and JSON, plus a per-run CSV.
//
// The statistics use every finished seed and nothing else: failed and unfinished runs are
// counted, never averaged, and no run is ever picked by its labels (there is no "best
// seed"); "best" only marks the model with the highest mean in a column. Beside the
// statistics, each (model, dataset) shows the run that a LABEL-FREE criterion picks (the
// selection score each run stores in result.json, docs/models.md) and that run's scores.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/files.h"  // write_file_atomic, for the report's output files

namespace mixvae::sweep {

// finished: result.json exists. failed: status.json says "failed" and there is no
// result.json. unfinished: anything else (running, preempted, never started).
enum class RunStatus { Finished, Failed, Unfinished };
const char* status_name(RunStatus s);

struct RunRecord {
  std::string dataset, model;  // directory names (the sweep's experiment name for model)
  int64_t seed = 0;
  std::string dir;  // relative to the RUNS root: <dataset>/<model>/seed-<s>
  RunStatus status = RunStatus::Unfinished;
  std::optional<double> acc, nmi, ari;  // finished runs on labelled data only
  std::optional<double> seconds;
  std::optional<int64_t> epochs, world_size;
  std::string error;  // status.json's "error" (one line) for runs that did not finish
  // result.json's "selection" (the label-free selection score of the finished model):
  // criterion empty when result.json has none (written before mixvae recorded it); value
  // none when it is null (the score was not finite).
  std::string selection_criterion;
  std::optional<double> selection;
  bool selection_higher_is_better = true;
};

struct RunTree {
  std::vector<RunRecord> runs;                // sorted by dataset, model, seed
  std::vector<std::string> datasets, models;  // column-group and row order of the table
};

// Every RUNS/<dataset>/<model>/seed-<s>/ folder, plus the runs that RUNS/sweep.json (and
// the RUNS/sweep.slice-I-of-N.json of a sliced sweep) list whose folder does not exist yet
// (unfinished). Hidden folders and folders not named seed-<int> are ignored. Datasets and
// models come in the sweep's order (its JSON lists them as its config does), then
// alphabetically. Throws DataError naming the file for a missing RUNS folder or an
// unreadable or garbled result.json, status.json or sweep.json. No runs when nothing is there.
RunTree scan_runs(const std::string& root);

// A tree of given runs (tests, tools): datasets and models in order of first appearance.
RunTree make_tree(std::vector<RunRecord> runs);

enum Metric { kAcc = 0, kNmi = 1, kAri = 2 };
constexpr int kMetrics = 3;
extern const std::array<const char*, kMetrics> kMetricNames;  // "acc", "nmi", "ari"

struct Summary {
  int64_t n = 0;
  double mean = 0, min = 0, median = 0, max = 0;
  std::optional<double> std;  // sample standard deviation (n - 1); none for one value
};
// None for no values.
std::optional<Summary> summarize(std::vector<double> values);

// Published numbers, stored as fractions like result.json (the CSV holds percentages).
struct PaperValue {
  std::optional<double> mean, std;
};
struct PaperEntry {
  std::string model, dataset, source;
  std::array<PaperValue, kMetrics> metric;
};
using PaperTable = std::vector<PaperEntry>;

// Reads a CSV with a header naming the columns model, dataset and any of acc, acc_std,
// nmi, nmi_std, ari, ari_std, source. Scores are percentages as papers print them (97.87);
// a blank field means "not published". Throws DataError naming the file and line.
PaperTable read_paper_csv(const std::string& path);

// The paper row for a run: the first of NAME, NAME without its last "-suffix", without its
// last two, ... that has a row for `dataset`, so "kdvae-quick" and "kdvae-w2-quick" read
// the "kdvae" row. The dataset must match exactly. nullptr when there is none.
const PaperEntry* match_paper(const PaperTable& paper, const std::string& model, const std::string& dataset);

// The label-free pick among runs that differ only in seed: the finished run with the best
// selection score (the highest, or the lowest where the criterion says lower is better);
// ties go to the lowest seed. Only finished runs can be picked, and only the selection
// fields are read: never acc, nmi or ari. No pick (index none, `reason` says why) when no
// run finished, when a finished run has no score (an older result.json: the pick would
// be over some seeds only), when the runs' criteria differ, or when no score is finite.
struct Pick {
  std::optional<size_t> index;  // into the runs given
  std::string reason;           // why there is no pick
};
Pick pick_run(const std::vector<RunRecord>& runs);

// One (model, dataset) of the table; exists when at least one run of it exists.
struct Cell {
  std::string model, dataset;
  int64_t finished = 0, failed = 0, unfinished = 0;
  std::array<std::optional<Summary>, kMetrics> metric;
  // Highest mean of its column, marked only where at least two models have a value.
  std::array<bool, kMetrics> best{};
  std::optional<double> mean_seconds;  // over the finished runs that report it
  std::optional<PaperEntry> paper;
  std::optional<RunRecord> pick;  // the label-free pick (pick_run)
  std::string no_pick;            // why there is none
};

struct Report {
  std::string root;
  std::vector<std::string> models, datasets;  // row order, column-group order
  std::vector<Cell> cells;                    // row-major: by model, then dataset
  std::vector<RunRecord> runs;
  bool has_paper = false;    // --paper was given (CSV/JSON carry its columns; Markdown where it has numbers)
  std::string paper_source;  // the --paper file

  const Cell* cell(const std::string& model, const std::string& dataset) const;
};

Report build_report(const std::string& root, RunTree tree, const PaperTable* paper = nullptr,
                    const std::string& paper_source = "");

std::string to_markdown(const Report& r);  // percentages, best in bold
std::string to_csv(const Report& r);       // one row per cell, fractions, best as 0/1
std::string to_json(const Report& r);      // cells and runs, fractions
std::string runs_csv(const Report& r);     // one row per run
// The layout of ClustPy's evaluate_multiple_datasets(...).to_csv(): two header rows
// ("algorithm" = the model, "metric" = acc, nmi, ari, runtime), two index columns (dataset;
// seed, then the aggregation rows "mean" and "std"), so that
// pd.read_csv(path, header=[0, 1], index_col=[0, 1]) puts mixvae beside ClustPy baselines.
// Only finished runs fill cells and enter mean/std (ClustPy's std is NumPy's, ddof = 0); a
// seed a model has no finished run for is an empty cell.
std::string clustpy_csv(const Report& r);

// One CSV field, quoted (RFC 4180) when it holds a comma, a quote or a line break.
std::string csv_field(const std::string& s);

}  // namespace mixvae::sweep
