#include "sweep/report.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <tuple>

#include "core/errors.h"
#include "core/files.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace mixvae::sweep {

const std::array<const char*, kMetrics> kMetricNames = {"acc", "nmi", "ari"};

const char* status_name(RunStatus s) {
  switch (s) {
    case RunStatus::Finished:
      return "finished";
    case RunStatus::Failed:
      return "failed";
    case RunStatus::Unfinished:
      return "unfinished";
  }
  return "unfinished";
}

namespace {

json read_json_object(const std::string& path) {
  const std::string text = read_text_file(path);
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    // nlohmann's message starts with "[json.exception.parse_error.101] "; the rest says where.
    std::string what = e.what();
    const auto pos = what.find("] ");
    if (pos != std::string::npos) what = what.substr(pos + 2);
    throw data_error(path, "not valid JSON (" + one_line(what) + ")");
  }
  if (!j.is_object()) throw data_error(path, "expected a JSON object, got " + std::string(j.type_name()));
  return j;
}

// A score is a number, or null when the data had no labels; an absent key reads as null.
std::optional<double> optional_number(const json& j, const char* key, const std::string& path) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_number())
    throw data_error(path, std::string("\"") + key + "\" is " + it->type_name() + ", expected a number or null");
  return it->get<double>();
}

std::optional<int64_t> optional_integer(const json& j, const char* key, const std::string& path) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer())
    throw data_error(path, std::string("\"") + key + "\" is " + it->type_name() + ", expected an integer");
  return it->get<int64_t>();
}

// "seed-12" -> 12; nullopt for anything else.
std::optional<int64_t> parse_seed_dir(const std::string& name) {
  const std::string prefix = "seed-";
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0 || name.size() > prefix.size() + 18)
    return std::nullopt;
  for (size_t i = prefix.size(); i < name.size(); ++i)
    if (name[i] < '0' || name[i] > '9') return std::nullopt;
  return std::stoll(name.substr(prefix.size()));
}

bool is_visible_dir(const fs::directory_entry& e) {
  std::error_code ec;
  return e.is_directory(ec) && e.path().filename().string().rfind('.', 0) != 0;
}

// result.json's "selection": {"criterion": "elbo", "value": -85.2 | null, "higher_is_better": true}.
// Absent: the run has no score (an older result.json).
void read_selection(const json& j, const std::string& path, RunRecord* r) {
  auto it = j.find("selection");
  if (it == j.end() || it->is_null()) return;
  if (!it->is_object())
    throw data_error(path, std::string("\"selection\" is ") + it->type_name() + ", expected an object");
  auto c = it->find("criterion");
  if (c == it->end() || !c->is_string() || c->get<std::string>().empty())
    throw data_error(path, "\"selection\" has no \"criterion\" string");
  auto h = it->find("higher_is_better");
  if (h != it->end() && !h->is_boolean())
    throw data_error(path, std::string("\"selection.higher_is_better\" is ") + h->type_name() + ", expected a boolean");
  r->selection_criterion = c->get<std::string>();
  r->selection = optional_number(*it, "value", path);
  r->selection_higher_is_better = h == it->end() || h->get<bool>();
}

RunRecord read_run(const fs::path& dir, const std::string& dataset, const std::string& model, int64_t seed) {
  RunRecord r;
  r.dataset = dataset;
  r.model = model;
  r.seed = seed;
  r.dir = dataset + "/" + model + "/" + dir.filename().string();
  const fs::path result = dir / "result.json", status = dir / "status.json";
  std::error_code ec;
  if (fs::exists(result, ec)) {
    const std::string path = result.string();
    const json j = read_json_object(path);
    r.status = RunStatus::Finished;
    r.acc = optional_number(j, "acc", path);
    r.nmi = optional_number(j, "nmi", path);
    r.ari = optional_number(j, "ari", path);
    r.seconds = optional_number(j, "seconds", path);
    r.epochs = optional_integer(j, "epochs", path);
    r.world_size = optional_integer(j, "world_size", path);
    read_selection(j, path, &r);
    return r;
  }
  r.status = RunStatus::Unfinished;
  if (fs::exists(status, ec)) {
    const std::string path = status.string();
    const json j = read_json_object(path);
    auto s = j.find("status");
    if (s == j.end() || !s->is_string()) throw data_error(path, "\"status\" is missing or not a string");
    if (s->get<std::string>() == "failed") r.status = RunStatus::Failed;
    auto e = j.find("error");
    if (e != j.end() && e->is_string()) r.error = one_line(e->get<std::string>());
  }
  return r;
}

// A run listed in sweep.json: its labels come from the last three parts of "dir"
// (RUNS/<dataset>/<model>/seed-<s>, RUNS as the sweep named it) when they have that form,
// else from the "dataset", "model" and "seed" keys.
RunRecord listed_run(const json& e, const std::string& path) {
  if (!e.is_object()) throw data_error(path, "each entry of \"runs\" must be an object");
  RunRecord r;
  bool have = false;
  auto d = e.find("dir");
  if (d != e.end() && d->is_string()) {
    std::vector<std::string> parts;
    for (const auto& p : fs::path(d->get<std::string>()).lexically_normal())
      if (!p.empty()) parts.push_back(p.string());
    const size_t n = parts.size();
    if (n >= 3 && parts[n - 3] != ".." && parts[n - 2] != "..") {
      if (auto seed = parse_seed_dir(parts[n - 1])) {
        r.dataset = parts[n - 3];
        r.model = parts[n - 2];
        r.seed = *seed;
        have = true;
      }
    }
  }
  if (!have) {
    auto ds = e.find("dataset"), m = e.find("model"), s = e.find("seed");
    if (ds == e.end() || !ds->is_string() || m == e.end() || !m->is_string() || s == e.end() || !s->is_number_integer())
      throw data_error(path,
                       "a run in \"runs\" has neither \"dir\": \"<dataset>/<model>/seed-<s>\" nor "
                       "\"dataset\", \"model\" and an integer \"seed\"");
    r.dataset = ds->get<std::string>();
    r.model = m->get<std::string>();
    r.seed = s->get<int64_t>();
  }
  r.dir = r.dataset + "/" + r.model + "/seed-" + std::to_string(r.seed);
  r.status = RunStatus::Unfinished;
  auto err = e.find("error");
  if (err != e.end() && err->is_string()) r.error = one_line(err->get<std::string>());
  return r;
}

// Position of each name: first those in `first` (in that order), then the rest sorted.
std::map<std::string, size_t> order_of(const std::vector<std::string>& first, const std::set<std::string>& all) {
  std::map<std::string, size_t> pos;
  for (const auto& n : first)
    if (!pos.count(n)) pos.emplace(n, pos.size());
  for (const auto& n : all)  // std::set: alphabetical
    if (!pos.count(n)) pos.emplace(n, pos.size());
  return pos;
}

}  // namespace

RunTree scan_runs(const std::string& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec))
    throw data_error(root, "no such directory (expected a sweep's RUNS folder or the output.dir of train --seeds)");
  std::vector<RunRecord> runs;
  std::set<std::tuple<std::string, std::string, int64_t>> seen;  // (dataset, model, seed)
  auto list = [&](const fs::path& dir) {
    std::vector<fs::directory_entry> out;
    std::error_code e;
    for (fs::directory_iterator it(dir, e), end; !e && it != end; it.increment(e))
      if (is_visible_dir(*it)) out.push_back(*it);
    if (e) throw data_error(dir.string(), "cannot list: " + e.message());
    return out;
  };
  for (const auto& ds : list(root)) {
    for (const auto& m : list(ds.path())) {
      for (const auto& s : list(m.path())) {
        auto seed = parse_seed_dir(s.path().filename().string());
        if (!seed) continue;
        runs.push_back(read_run(s.path(), ds.path().filename().string(), m.path().filename().string(), *seed));
        seen.emplace(runs.back().dataset, runs.back().model, runs.back().seed);
      }
    }
  }

  // The flat layout of `mixvae train --seeds` (ROOT/seed-<s>/): dataset and model from each
  // run's result.json (an unfinished one is listed under the folder's name).
  for (const auto& s : list(root)) {
    auto seed = parse_seed_dir(s.path().filename().string());
    if (!seed) continue;
    fs::path named = fs::path(root);
    if (named.filename().empty()) named = named.parent_path();  // "runs/ens/"
    std::string dataset = "?", model = named.filename().string();
    const fs::path result = s.path() / "result.json";
    if (fs::exists(result, ec)) {
      const json j = read_json_object(result.string());
      if (j.contains("dataset") && j["dataset"].is_string()) dataset = j["dataset"].get<std::string>();
      if (j.contains("model") && j["model"].is_string()) model = j["model"].get<std::string>();
    }
    if (seen.emplace(dataset, model, *seed).second) runs.push_back(read_run(s.path(), dataset, model, *seed));
  }

  // sweep.json, and the sweep.slice-I-of-N.json of a sweep run in slices (job arrays).
  std::vector<std::string> listings;
  if (fs::exists(fs::path(root) / "sweep.json", ec)) listings.push_back((fs::path(root) / "sweep.json").string());
  std::vector<std::string> slices;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind("sweep.slice-", 0) == 0 && name.size() > 5 && name.compare(name.size() - 5, 5, ".json") == 0)
      slices.push_back(it->path().string());
  }
  std::sort(slices.begin(), slices.end());
  listings.insert(listings.end(), slices.begin(), slices.end());
  std::vector<std::string> dataset_first, model_first;
  for (const auto& path : listings) {
    const json j = read_json_object(path);
    auto list_it = j.find("runs");
    if (list_it != j.end() && !list_it->is_null()) {
      if (!list_it->is_array()) throw data_error(path, "\"runs\" must be an array");
      for (const auto& e : *list_it) {
        RunRecord r = listed_run(e, path);
        dataset_first.push_back(r.dataset);
        model_first.push_back(r.model);
        if (seen.emplace(r.dataset, r.model, r.seed).second) runs.push_back(std::move(r));
      }
    }
  }

  std::set<std::string> all_datasets, all_models;
  for (const auto& r : runs) {
    all_datasets.insert(r.dataset);
    all_models.insert(r.model);
  }
  const auto dpos = order_of(dataset_first, all_datasets), mpos = order_of(model_first, all_models);
  std::sort(runs.begin(), runs.end(), [&](const RunRecord& a, const RunRecord& b) {
    return std::make_tuple(dpos.at(a.dataset), mpos.at(a.model), a.seed) <
           std::make_tuple(dpos.at(b.dataset), mpos.at(b.model), b.seed);
  });
  RunTree tree;
  tree.runs = std::move(runs);
  tree.datasets.resize(dpos.size());
  for (const auto& [name, i] : dpos) tree.datasets[i] = name;
  tree.models.resize(mpos.size());
  for (const auto& [name, i] : mpos) tree.models[i] = name;
  return tree;
}

RunTree make_tree(std::vector<RunRecord> runs) {
  RunTree tree;
  for (const auto& run : runs) {
    if (std::find(tree.models.begin(), tree.models.end(), run.model) == tree.models.end())
      tree.models.push_back(run.model);
    if (std::find(tree.datasets.begin(), tree.datasets.end(), run.dataset) == tree.datasets.end())
      tree.datasets.push_back(run.dataset);
  }
  tree.runs = std::move(runs);
  return tree;
}

std::optional<Summary> summarize(std::vector<double> v) {
  if (v.empty()) return std::nullopt;
  std::sort(v.begin(), v.end());
  Summary s;
  s.n = static_cast<int64_t>(v.size());
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / double(s.n);
  s.min = v.front();
  s.max = v.back();
  const size_t h = v.size() / 2;
  s.median = v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
  if (s.n >= 2) {
    double ss = 0;
    for (double x : v) ss += (x - s.mean) * (x - s.mean);
    s.std = std::sqrt(ss / double(s.n - 1));
  }
  return s;
}

// ---------------------------------------------------------------------------------------
// Paper CSV

namespace {

// One CSV record (RFC 4180 quoting, no line breaks inside fields).
std::vector<std::string> split_csv_line(const std::string& line, const std::string& where) {
  std::vector<std::string> out;
  std::string field;
  bool quoted = false, was_quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"' && !was_quoted && field.find_first_not_of(" \t") == std::string::npos) {
      field.clear();
      quoted = was_quoted = true;
    } else if (c == ',') {
      out.push_back(field);
      field.clear();
      was_quoted = false;
    } else {
      field += c;
    }
  }
  if (quoted) throw DataError(where + ": unterminated quoted field");
  out.push_back(field);
  return out;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

}  // namespace

PaperTable read_paper_csv(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw data_error(path, std::string("cannot read: ") + std::strerror(errno));
  const std::vector<std::string> valid = {"model",   "dataset", "acc",     "acc_std", "nmi",
                                          "nmi_std", "ari",     "ari_std", "source"};
  std::map<std::string, size_t> col;
  PaperTable out;
  std::set<std::pair<std::string, std::string>> keys;
  std::string line;
  int64_t lineno = 0;
  bool header = true;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (lineno == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line = line.substr(3);  // UTF-8 BOM
    if (trim(line).empty()) continue;
    const std::string where = path + ":" + std::to_string(lineno);
    auto fields = split_csv_line(line, where);
    if (header) {
      for (size_t i = 0; i < fields.size(); ++i) {
        std::string name = trim(fields[i]);
        std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
        if (std::find(valid.begin(), valid.end(), name) == valid.end()) {
          std::string list;
          for (const auto& v : valid) list += (list.empty() ? "" : ", ") + v;
          throw DataError(where + ": unknown column '" + name + "' (valid: " + list + ")");
        }
        if (!col.emplace(name, i).second) throw DataError(where + ": column '" + name + "' appears twice");
      }
      if (!col.count("model") || !col.count("dataset"))
        throw DataError(where + ": the header must name the columns model and dataset");
      header = false;
      continue;
    }
    if (fields.size() > col.size())
      throw DataError(where + ": " + std::to_string(fields.size()) + " fields, the header has " +
                      std::to_string(col.size()));
    auto get = [&](const std::string& name) {
      auto it = col.find(name);
      return it == col.end() || it->second >= fields.size() ? std::string() : trim(fields[it->second]);
    };
    PaperEntry e;
    e.model = get("model");
    e.dataset = get("dataset");
    e.source = get("source");
    if (e.model.empty() || e.dataset.empty()) throw DataError(where + ": model and dataset must not be blank");
    if (!keys.emplace(e.model, e.dataset).second)
      throw DataError(where + ": a second row for model '" + e.model + "' on dataset '" + e.dataset + "'");
    auto number = [&](const std::string& name, double lo, double hi, const char* expected) -> std::optional<double> {
      const std::string s = get(name);
      if (s.empty()) return std::nullopt;
      char* end = nullptr;
      const double v = std::strtod(s.c_str(), &end);
      if (end != s.c_str() + s.size() || !std::isfinite(v))
        throw DataError(where + ": " + name + " '" + s + "' is not a number");
      if (v < lo || v > hi) throw DataError(where + ": " + name + " " + s + " is out of range (" + expected + ")");
      return v / 100.0;
    };
    // ACC of a clustering is at least 1/K, so a value <= 1 is a fraction written by mistake.
    e.metric[kAcc].mean = number("acc", 1.0 + 1e-12, 100, "a percentage in (1, 100], e.g. 97.87, not 0.9787");
    e.metric[kNmi].mean = number("nmi", 0, 100, "a percentage in [0, 100]");
    e.metric[kAri].mean = number("ari", -100, 100, "a percentage in [-100, 100]");
    for (int m = 0; m < kMetrics; ++m)
      e.metric[m].std = number(std::string(kMetricNames[m]) + "_std", 0, 100, "a percentage in [0, 100]");
    out.push_back(std::move(e));
  }
  if (header) throw data_error(path, "empty (expected a header: model,dataset,acc,nmi,ari)");
  return out;
}

const PaperEntry* match_paper(const PaperTable& paper, const std::string& model, const std::string& dataset) {
  std::string name = model;
  while (true) {
    for (const auto& e : paper)
      if (e.model == name && e.dataset == dataset) return &e;
    const auto dash = name.rfind('-');
    if (dash == std::string::npos || dash == 0) return nullptr;
    name.resize(dash);
  }
}

// ---------------------------------------------------------------------------------------
// Aggregation

Pick pick_run(const std::vector<RunRecord>& runs) {
  Pick p;
  std::vector<size_t> finished;
  std::vector<std::string> unscored, criteria;
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunRecord& r = runs[i];
    if (r.status != RunStatus::Finished) continue;  // failed and unfinished runs cannot be picked
    finished.push_back(i);
    if (r.selection_criterion.empty()) {
      unscored.push_back("seed " + std::to_string(r.seed));
      continue;
    }
    const std::string c = r.selection_criterion + (r.selection_higher_is_better ? "" : " (lower is better)");
    if (std::find(criteria.begin(), criteria.end(), c) == criteria.end()) criteria.push_back(c);
  }
  auto list = [](const std::vector<std::string>& v) {
    std::string s;
    for (size_t i = 0; i < v.size() && i < 3; ++i) s += (i ? ", " : "") + v[i];
    return v.size() > 3 ? s + " and " + std::to_string(v.size() - 3) + " more" : s;
  };
  if (finished.empty()) {
    p.reason = "no finished run";
  } else if (!unscored.empty()) {
    p.reason = list(unscored) + (unscored.size() == 1 ? " has" : " have") +
               " no selection score (an older result.json; `mixvae train --config RUN/config.ini --resume` "
               "scores a finished run without training it)";
  } else if (criteria.size() > 1) {
    p.reason = "the runs' selection criteria differ (" + list(criteria) + ")";
  } else {
    for (size_t i : finished) {
      const RunRecord& r = runs[i];
      if (!r.selection) continue;  // not finite: never picked
      if (!p.index) {
        p.index = i;
        continue;
      }
      const RunRecord& best = runs[*p.index];
      const double a = *r.selection, b = *best.selection;
      const bool better = r.selection_higher_is_better ? a > b : a < b;
      if (better || (a == b && r.seed < best.seed)) p.index = i;
    }
    if (!p.index) p.reason = "no finished run has a finite selection score";
  }
  return p;
}

const Cell* Report::cell(const std::string& model, const std::string& dataset) const {
  for (const auto& c : cells)
    if (c.model == model && c.dataset == dataset) return &c;
  return nullptr;
}

Report build_report(const std::string& root, RunTree tree, const PaperTable* paper, const std::string& paper_source) {
  Report r;
  r.root = root;
  r.has_paper = paper != nullptr;
  r.paper_source = paper_source;
  r.models = std::move(tree.models);
  r.datasets = std::move(tree.datasets);
  const std::vector<RunRecord>& runs = tree.runs;
  for (const auto& model : r.models) {
    for (const auto& dataset : r.datasets) {
      Cell c;
      c.model = model;
      c.dataset = dataset;
      std::array<std::vector<double>, kMetrics> values;
      std::vector<double> seconds;
      std::vector<RunRecord> group;  // the runs of this (model, dataset): they differ only in seed
      bool any = false;
      for (const auto& run : runs) {
        if (run.model != model || run.dataset != dataset) continue;
        any = true;
        group.push_back(run);
        if (run.status == RunStatus::Failed) ++c.failed;
        if (run.status == RunStatus::Unfinished) ++c.unfinished;
        if (run.status != RunStatus::Finished) continue;  // counted, never averaged
        ++c.finished;
        const std::array<std::optional<double>, kMetrics> v = {run.acc, run.nmi, run.ari};
        for (int m = 0; m < kMetrics; ++m)
          if (v[m]) values[m].push_back(*v[m]);
        if (run.seconds) seconds.push_back(*run.seconds);
      }
      if (!any) continue;
      for (int m = 0; m < kMetrics; ++m) c.metric[m] = summarize(values[m]);
      if (auto s = summarize(seconds)) c.mean_seconds = s->mean;
      const Pick pick = pick_run(group);
      if (pick.index)
        c.pick = group[*pick.index];
      else
        c.no_pick = pick.reason;
      if (paper)
        if (const PaperEntry* p = match_paper(*paper, model, dataset)) c.paper = *p;
      r.cells.push_back(std::move(c));
    }
  }
  // Best per (dataset, metric) column: the highest mean, ties all marked. A lone model
  // is not "best" of anything, so a column needs two models with a value.
  for (const auto& dataset : r.datasets) {
    for (int m = 0; m < kMetrics; ++m) {
      int64_t with_value = 0;
      double best = -INFINITY;
      for (const auto& c : r.cells)
        if (c.dataset == dataset && c.metric[m]) {
          ++with_value;
          best = std::max(best, c.metric[m]->mean);
        }
      if (with_value < 2) continue;
      for (auto& c : r.cells)
        if (c.dataset == dataset && c.metric[m] && c.metric[m]->mean == best) c.best[m] = true;
    }
  }
  r.runs = std::move(tree.runs);
  return r;
}

// ---------------------------------------------------------------------------------------
// Rendering

namespace {

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// Numbers in CSV: enough digits to round-trip a score, no exponent for ordinary values.
std::string num(double v) { return fmt("%.10g", v); }
std::string num(const std::optional<double>& v) { return v ? num(*v) : ""; }
std::string num(const std::optional<int64_t>& v) { return v ? std::to_string(*v) : ""; }

std::string pct(double v) { return fmt("%.2f", 100.0 * v); }

std::string duration(double s) {
  if (s < 120) return fmt("%.0f s", s);
  if (s < 7200) return fmt("%.1f min", s / 60);
  return fmt("%.1f h", s / 3600);
}

// A Markdown table cell: '|' would end the cell, a line break the row.
std::string md_escape(const std::string& s) {
  std::string out;
  for (char c : one_line(s)) {
    if (c == '|') out += '\\';
    out += c;
  }
  return out;
}

std::string md_row(const std::vector<std::string>& cells) {
  std::string s = "|";
  for (const auto& c : cells) s += " " + c + " |";
  return s + "\n";
}

std::string mean_std(double mean, const std::optional<double>& sd) {
  return pct(mean) + " ± " + (sd ? pct(*sd) : std::string("–"));
}

std::string csv_row(const std::vector<std::string>& fields) {
  std::string s;
  for (size_t i = 0; i < fields.size(); ++i) s += (i ? "," : "") + csv_field(fields[i]);
  return s + "\n";
}

// The JSON output keeps its keys in the order written (identity first, then numbers).
using ojson = nlohmann::ordered_json;
ojson opt_json(const std::optional<double>& v) { return v ? ojson(*v) : ojson(nullptr); }
ojson opt_json(const std::optional<int64_t>& v) { return v ? ojson(*v) : ojson(nullptr); }

int64_t count(const Report& r, RunStatus s) {
  return std::count_if(r.runs.begin(), r.runs.end(), [&](const RunRecord& x) { return x.status == s; });
}

std::optional<double> metric_of(const RunRecord& run, int m) {
  return m == kAcc ? run.acc : m == kNmi ? run.nmi : run.ari;
}

// A dataset's paper column shows only where the paper file has a number for it.
bool paper_has(const Report& r, const std::string& dataset, int m) {
  for (const auto& c : r.cells)
    if (c.dataset == dataset && c.paper && c.paper->metric[m].mean) return true;
  return false;
}

}  // namespace

std::string csv_field(const std::string& raw) {
  const std::string s = one_line(raw);
  if (s.find_first_of(",\"") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string to_markdown(const Report& r) {
  std::ostringstream os;
  os << "# mixvae report: " << md_escape(r.root) << "\n\n";
  os << r.runs.size() << " runs: " << count(r, RunStatus::Finished) << " finished, " << count(r, RunStatus::Failed)
     << " failed, " << count(r, RunStatus::Unfinished) << " unfinished. "
     << "Scores in percent: mean ± sample std (n−1) over all finished seeds (– where one seed finished; "
        "n/a where no finished run has a score); **bold** = highest mean of its column. "
        "Failed and unfinished runs are counted, never averaged; no run is chosen by its labels. "
        "*label-free pick* = the score of the finished seed with the best selection score, the model's own "
        "objective on all rows (e.g. the ELBO) read without labels (see Label-free pick below).\n";
  const char* titles[kMetrics] = {"ACC", "NMI", "ARI"};
  for (int m = 0; m < kMetrics; ++m) {
    std::vector<std::string> head = {"model"}, rule = {"---"};
    for (const auto& d : r.datasets) {
      const bool paper_col = r.has_paper && paper_has(r, d, m);
      head.push_back(md_escape(d));
      head.push_back(md_escape(d) + " min / median / max");
      head.push_back(md_escape(d) + " label-free pick");
      rule.insert(rule.end(), {"---:", "---:", "---:"});
      if (paper_col) {
        head.push_back(md_escape(d) + " paper");
        rule.push_back("---:");
      }
    }
    os << "\n## " << titles[m] << " (%)\n\n" << md_row(head) << md_row(rule);
    for (const auto& model : r.models) {
      std::vector<std::string> row = {md_escape(model)};
      for (const auto& d : r.datasets) {
        const bool paper_col = r.has_paper && paper_has(r, d, m);
        const Cell* c = r.cell(model, d);
        if (!c) {
          row.insert(row.end(), {"", "", ""});
        } else {
          if (!c->metric[m]) {
            row.insert(row.end(), {"n/a", ""});
          } else {
            const Summary& s = *c->metric[m];
            const std::string ms = mean_std(s.mean, s.std);
            row.push_back(c->best[m] ? "**" + ms + "**" : ms);
            row.push_back(pct(s.min) + " / " + pct(s.median) + " / " + pct(s.max));
          }
          const std::optional<double> v = c->pick ? metric_of(*c->pick, m) : std::nullopt;
          row.push_back(!c->pick ? "no pick" : (v ? pct(*v) : "n/a") + " (seed " + std::to_string(c->pick->seed) + ")");
        }
        if (paper_col) {
          const PaperValue* p = c && c->paper ? &c->paper->metric[m] : nullptr;
          row.push_back(p && p->mean ? (p->std ? pct(*p->mean) + " ± " + pct(*p->std) : pct(*p->mean)) : "");
        }
      }
      os << md_row(row);
    }
  }
  // The picks in full: criterion, score, the picked run's three scores, or why none.
  os << "\n## Label-free pick\n\n"
     << "Per model and dataset, the finished seed whose final model has the best selection score "
        "(result.json \"selection\"; labels are never read for the choice; ties go to the lowest seed). "
        "Failed and unfinished runs cannot be picked.\n\n"
     << md_row({"model", "dataset", "criterion", "seed", "score", "ACC", "NMI", "ARI"})
     << md_row({"---", "---", "---", "---:", "---:", "---:", "---:", "---:"});
  for (const auto& c : r.cells) {
    if (!c.pick) {
      os << md_row({md_escape(c.model), md_escape(c.dataset), "no pick: " + md_escape(c.no_pick), "", "", "", "", ""});
      continue;
    }
    const RunRecord& p = *c.pick;
    std::vector<std::string> row = {md_escape(c.model), md_escape(c.dataset),
                                    md_escape(p.selection_criterion) + (p.selection_higher_is_better ? "" : " (lower)"),
                                    std::to_string(p.seed), fmt("%.4f", *p.selection)};
    for (int m = 0; m < kMetrics; ++m) row.push_back(metric_of(p, m) ? pct(*metric_of(p, m)) : "n/a");
    os << md_row(row);
  }

  std::vector<std::string> head = {"model"}, rule = {"---"};
  for (const auto& d : r.datasets) {
    head.push_back(md_escape(d) + " seeds");
    head.push_back(md_escape(d) + " mean time");
    rule.insert(rule.end(), {"---", "---:"});
  }
  os << "\n## Runs\n\n" << md_row(head) << md_row(rule);
  for (const auto& model : r.models) {
    std::vector<std::string> row = {md_escape(model)};
    for (const auto& d : r.datasets) {
      const Cell* c = r.cell(model, d);
      if (!c) {
        row.insert(row.end(), {"", ""});
        continue;
      }
      std::string seeds = std::to_string(c->finished) + " finished";
      if (c->failed) seeds += ", " + std::to_string(c->failed) + " failed";
      if (c->unfinished) seeds += ", " + std::to_string(c->unfinished) + " unfinished";
      row.push_back(seeds);
      row.push_back(c->mean_seconds ? duration(*c->mean_seconds) : "");
    }
    os << md_row(row);
  }
  if (count(r, RunStatus::Failed)) {
    os << "\n## Failed runs\n\n";
    for (const auto& run : r.runs)
      if (run.status == RunStatus::Failed)
        os << "- " << md_escape(run.dir) << ": " << md_escape(run.error.empty() ? "(no error recorded)" : run.error)
           << "\n";
  }
  if (r.has_paper)
    os << "\nPaper columns: " << md_escape(r.paper_source)
       << " (a run's model folder reads the row of its name, or of its name without trailing \"-suffix\" parts).\n";
  return os.str();
}

std::string to_csv(const Report& r) {
  std::vector<std::string> head = {"model", "dataset", "finished", "failed", "unfinished", "mean_seconds"};
  for (const char* m : kMetricNames)
    for (const char* part : {"n", "mean", "std", "min", "median", "max", "best"})
      head.push_back(std::string(m) + "_" + part);
  for (const char* part : {"pick_seed", "pick_criterion", "pick_score", "pick_higher_is_better", "pick_acc", "pick_nmi",
                           "pick_ari", "no_pick"})
    head.push_back(part);
  if (r.has_paper) {
    head.push_back("paper_model");
    for (const char* m : kMetricNames) {
      head.push_back(std::string("paper_") + m);
      head.push_back(std::string("paper_") + m + "_std");
    }
  }
  std::string out = csv_row(head);
  for (const auto& c : r.cells) {
    std::vector<std::string> row = {c.model,
                                    c.dataset,
                                    std::to_string(c.finished),
                                    std::to_string(c.failed),
                                    std::to_string(c.unfinished),
                                    num(c.mean_seconds)};
    for (int m = 0; m < kMetrics; ++m) {
      if (const auto& s = c.metric[m]) {
        row.insert(row.end(), {std::to_string(s->n), num(s->mean), num(s->std), num(s->min), num(s->median),
                               num(s->max), c.best[m] ? "1" : "0"});
      } else {
        row.insert(row.end(), {"0", "", "", "", "", "", "0"});
      }
    }
    if (const auto& p = c.pick)
      row.insert(row.end(), {std::to_string(p->seed), p->selection_criterion, num(p->selection),
                             p->selection_higher_is_better ? "1" : "0", num(p->acc), num(p->nmi), num(p->ari), ""});
    else
      row.insert(row.end(), {"", "", "", "", "", "", "", c.no_pick});
    if (r.has_paper) {
      row.push_back(c.paper ? c.paper->model : "");
      for (int m = 0; m < kMetrics; ++m) {
        row.push_back(c.paper ? num(c.paper->metric[m].mean) : "");
        row.push_back(c.paper ? num(c.paper->metric[m].std) : "");
      }
    }
    out += csv_row(row);
  }
  return out;
}

std::string to_json(const Report& r) {
  ojson cells = ojson::array();
  for (const auto& c : r.cells) {
    ojson jc = {{"model", c.model},   {"dataset", c.dataset},       {"finished", c.finished},
                {"failed", c.failed}, {"unfinished", c.unfinished}, {"mean_seconds", opt_json(c.mean_seconds)}};
    for (int m = 0; m < kMetrics; ++m) {
      if (const auto& s = c.metric[m]) {
        jc[kMetricNames[m]] = {{"n", s->n},           {"mean", s->mean}, {"std", opt_json(s->std)}, {"min", s->min},
                               {"median", s->median}, {"max", s->max},   {"best", c.best[m]}};
      } else {
        jc[kMetricNames[m]] = nullptr;
      }
    }
    if (const auto& p = c.pick) {
      jc["pick"] = {{"seed", p->seed},
                    {"dir", p->dir},
                    {"criterion", p->selection_criterion},
                    {"score", opt_json(p->selection)},
                    {"higher_is_better", p->selection_higher_is_better},
                    {"acc", opt_json(p->acc)},
                    {"nmi", opt_json(p->nmi)},
                    {"ari", opt_json(p->ari)}};
      jc["no_pick"] = nullptr;
    } else {
      jc["pick"] = nullptr;
      jc["no_pick"] = c.no_pick;
    }
    if (c.paper) {
      ojson p = {{"model", c.paper->model}, {"source", c.paper->source}};
      for (int m = 0; m < kMetrics; ++m) {
        p[kMetricNames[m]] = opt_json(c.paper->metric[m].mean);
        p[std::string(kMetricNames[m]) + "_std"] = opt_json(c.paper->metric[m].std);
      }
      jc["paper"] = p;
    } else if (r.has_paper) {
      jc["paper"] = nullptr;
    }
    cells.push_back(jc);
  }
  ojson runs = ojson::array();
  for (const auto& run : r.runs)
    runs.push_back(
        {{"dataset", run.dataset},
         {"model", run.model},
         {"seed", run.seed},
         {"dir", run.dir},
         {"status", status_name(run.status)},
         {"acc", opt_json(run.acc)},
         {"nmi", opt_json(run.nmi)},
         {"ari", opt_json(run.ari)},
         {"seconds", opt_json(run.seconds)},
         {"epochs", opt_json(run.epochs)},
         {"world_size", opt_json(run.world_size)},
         {"selection", run.selection_criterion.empty() ? ojson(nullptr)
                                                       : ojson{{"criterion", run.selection_criterion},
                                                               {"value", opt_json(run.selection)},
                                                               {"higher_is_better", run.selection_higher_is_better}}},
         {"error", run.error}});
  ojson j = {{"root", r.root},
             {"units", "scores are fractions in [0, 1] (the Markdown table shows percentages)"},
             {"std", "sample standard deviation (n - 1) over the finished seeds; null for one seed"},
             {"pick",
              "the finished seed with the best label-free selection score (result.json \"selection\"; labels never "
              "read for the choice; ties: lowest seed) and its scores; null with no_pick saying why"},
             {"models", r.models},
             {"datasets", r.datasets},
             {"runs_total", r.runs.size()},
             {"finished", count(r, RunStatus::Finished)},
             {"failed", count(r, RunStatus::Failed)},
             {"unfinished", count(r, RunStatus::Unfinished)},
             {"cells", cells},
             {"runs", runs}};
  if (r.has_paper) j["paper_source"] = r.paper_source;
  return j.dump(2) + "\n";
}

std::string runs_csv(const Report& r) {
  std::string out = csv_row({"dataset", "model", "seed", "status", "acc", "nmi", "ari", "seconds", "epochs",
                             "world_size", "selection_criterion", "selection", "error"});
  for (const auto& run : r.runs)
    out += csv_row({run.dataset, run.model, std::to_string(run.seed), status_name(run.status), num(run.acc),
                    num(run.nmi), num(run.ari), num(run.seconds), num(run.epochs), num(run.world_size),
                    run.selection_criterion, num(run.selection), run.error});
  return out;
}

std::string clustpy_csv(const Report& r) {
  // Columns: (model, metric) for every model of the report, in its row order.
  const std::vector<std::string> metrics = {"acc", "nmi", "ari", "runtime"};
  std::vector<std::string> algorithm{"algorithm", ""}, metric{"metric", ""};
  for (const auto& m : r.models)
    for (const auto& name : metrics) {
      algorithm.push_back(m);
      metric.push_back(name);
    }
  std::string out = csv_row(algorithm) + csv_row(metric);
  auto value = [](const RunRecord& run, size_t i) -> std::optional<double> {
    return i == 0 ? run.acc : i == 1 ? run.nmi : i == 2 ? run.ari : run.seconds;
  };
  for (const auto& d : r.datasets) {
    // The finished runs of this dataset by (model, seed); rows are every seed any model has.
    std::map<std::pair<std::string, int64_t>, const RunRecord*> done;
    std::set<int64_t> seeds;
    for (const auto& run : r.runs)
      if (run.dataset == d && run.status == RunStatus::Finished) {
        done[{run.model, run.seed}] = &run;
        seeds.insert(run.seed);
      }
    if (seeds.empty()) continue;
    for (int64_t seed : seeds) {
      std::vector<std::string> row{d, std::to_string(seed)};
      for (const auto& m : r.models) {
        auto it = done.find({m, seed});
        for (size_t i = 0; i < metrics.size(); ++i) row.push_back(it == done.end() ? "" : num(value(*it->second, i)));
      }
      out += csv_row(row);
    }
    std::vector<std::string> mean_row{d, "mean"}, std_row{d, "std"};
    for (const auto& m : r.models)
      for (size_t i = 0; i < metrics.size(); ++i) {
        std::vector<double> v;
        for (const auto& [key, run] : done)
          if (key.first == m)
            if (auto x = value(*run, i)) v.push_back(*x);
        const std::optional<Summary> sm = summarize(v);
        // ClustPy aggregates with np.std (ddof = 0): the sample std times sqrt((n - 1) / n).
        const double pstd = sm && sm->std ? *sm->std * std::sqrt(double(sm->n - 1) / double(sm->n)) : 0.0;
        mean_row.push_back(sm ? num(sm->mean) : "");
        std_row.push_back(sm ? num(pstd) : "");
      }
    out += csv_row(mean_row) + csv_row(std_row);
  }
  return out;
}

}  // namespace mixvae::sweep
