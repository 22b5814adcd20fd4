// mixvae report RUNS_DIR [--format md|csv|json|clustpy] [--out DIR] [--paper FILE.csv] [--curves RUN_DIR]
//
// Reads files only, so rank 0 does the work; the other ranks of an mpirun start take part
// in dist::agree alone, which makes a bad input one message and exit code 2 everywhere.
#include <filesystem>
#include <iostream>
#include <optional>

#include "cli/commands.h"
#include "core/errors.h"
#include "core/log.h"
#include "sweep/plot.h"
#include "sweep/report.h"

namespace fs = std::filesystem;

namespace mixvae::cli {
namespace {

// parse_flags takes options only: pull out the one positional RUNS_DIR, skipping the
// values of "--flag VALUE" options.
std::string take_positional(const Args& args, const std::vector<FlagSpec>& spec, Args* rest) {
  std::vector<std::string> positional;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.size() > 2 && a.compare(0, 2, "--") == 0) {
      rest->push_back(a);
      const std::string name = a.substr(2);
      if (name.find('=') != std::string::npos) continue;
      for (const auto& f : spec)
        if (f.name == name && !f.is_switch && i + 1 < args.size()) rest->push_back(args[++i]);
    } else if (!a.empty() && a[0] == '-') {
      rest->push_back(a);  // let parse_flags reject it with the list of valid options
    } else {
      positional.push_back(a);
    }
  }
  if (positional.size() > 1)
    throw UsageError("report: one RUNS_DIR expected, got '" + positional[0] + "' and '" + positional[1] + "'");
  return positional.empty() ? "" : positional[0];
}

}  // namespace

int cmd_report(dist::Communicator& comm, const Args& args) {
  const std::string usage =
      "mixvae report RUNS_DIR [--format md|csv|json|clustpy] [--out DIR] [--paper FILE.csv] [--curves RUN_DIR]";
  const std::vector<FlagSpec> spec = {
      {"format",
       "table printed on stdout: md (Markdown), csv, json or clustpy (ClustPy's evaluate_multiple_datasets CSV)", "md"},
      {"out",
       "also write table.md, table.csv, table.json, runs.csv, clustpy.csv and acc_per_seed.png (and curves.png) here",
       ""},
      {"paper", "CSV of published numbers (model,dataset,acc,nmi,ari in percent) shown beside the table", ""},
      {"curves", "a run folder whose metrics.jsonl is drawn as DIR/curves.png (needs --out; RUNS_DIR optional)", ""},
  };
  bool help = false;
  std::vector<std::string> warnings;
  std::string printed;
  dist::agree(comm, [&] {
    Args rest;
    const std::string runs_dir = take_positional(args, spec, &rest);
    const Flags f = parse_flags("report", usage, spec, rest, &help);
    if (help) return;
    const std::string format = f.get("format");
    if (format != "md" && format != "csv" && format != "json" && format != "clustpy")
      throw UsageError("report: unknown --format '" + format + "' (md, csv, json or clustpy)");
    const std::string out = f.get("out"), curves = f.get("curves");
    if (runs_dir.empty() && curves.empty()) throw UsageError("report: RUNS_DIR is required (usage: " + usage + ")");
    if (!curves.empty() && out.empty()) throw UsageError("report: --curves needs --out DIR for curves.png");
    if (comm.rank() != 0) return;

    // Read and render everything first, so a bad input leaves no file behind.
    std::optional<sweep::Report> report;
    std::string md, csv, js, runs, clustpy;
    if (!runs_dir.empty()) {
      sweep::RunTree tree = sweep::scan_runs(runs_dir);
      if (tree.runs.empty())
        throw DataError("report: no runs found under " + runs_dir +
                        " (expected <dataset>/<model>/seed-<s>/ folders, seed-<s>/ folders or a sweep.json)");
      sweep::PaperTable paper;
      if (f.has("paper")) paper = sweep::read_paper_csv(f.get("paper"));
      report = sweep::build_report(runs_dir, std::move(tree), f.has("paper") ? &paper : nullptr, f.get("paper"));
      md = sweep::to_markdown(*report);
      csv = sweep::to_csv(*report);
      js = sweep::to_json(*report);
      runs = sweep::runs_csv(*report);
      clustpy = sweep::clustpy_csv(*report);
      printed = format == "md" ? md : format == "csv" ? csv : format == "json" ? js : clustpy;
    }
    std::vector<sweep::CurvePoint> points;
    if (!curves.empty()) points = sweep::read_metrics(curves);

    if (!out.empty()) {
      std::error_code ec;
      fs::create_directories(out, ec);
      if (!fs::is_directory(out, ec)) throw data_error(out, "cannot create the output folder");
      const fs::path dir(out);
      std::vector<std::pair<std::string, std::string>> skipped;  // file, why
      if (report) {
        write_file_atomic((dir / "table.md").string(), md);
        write_file_atomic((dir / "table.csv").string(), csv);
        write_file_atomic((dir / "table.json").string(), js);
        write_file_atomic((dir / "runs.csv").string(), runs);
        write_file_atomic((dir / "clustpy.csv").string(), clustpy);
        const std::string why = sweep::plot_acc_per_seed(*report, (dir / "acc_per_seed.png").string());
        if (!why.empty()) skipped.emplace_back("acc_per_seed.png", why);
      }
      if (!curves.empty()) {
        const std::string why = sweep::plot_training_curves(points, curves, (dir / "curves.png").string());
        if (!why.empty())
          skipped.emplace_back("curves.png", why);
        else if (!report)
          printed = "wrote " + (dir / "curves.png").string() + "\n";
      }
      // A skipped plot is a warning, not an error: the tables are complete without it. One
      // line, also when both plots were skipped for the same reason (gnuplot missing).
      if (skipped.size() == 2 && skipped[0].second == skipped[1].second)
        warnings.push_back("report: acc_per_seed.png and curves.png not drawn: " + skipped[0].second);
      else if (!skipped.empty()) {
        std::string line = "report:";
        for (const auto& [file, why] : skipped) line += (line.size() > 7 ? "; " : " ") + file + " not drawn: " + why;
        warnings.push_back(line);
      }
    }
  });
  if (help) {
    if (comm.rank() == 0) std::cout << flags_help(usage, spec);
    return kExitOk;
  }
  if (comm.rank() == 0) {
    std::cout << printed << std::flush;
    for (const auto& w : warnings) log::warn(w);
  }
  return kExitOk;
}

}  // namespace mixvae::cli
