#include "sweep/plan.h"

#include <algorithm>
#include <boost/program_options.hpp>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/config.h"
#include "core/errors.h"

namespace mixvae::sweep {
namespace fs = std::filesystem;
namespace po = boost::program_options;

namespace {
std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

const std::vector<std::string> kSweepKeys = {"name",   "runs_dir", "experiments",   "datasets",
                                             "models", "seeds",    "ranks_per_run", "seeds_per_process"};

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// One (section, key, value) from the file or the command line, with where it came from.
struct Entry {
  std::string section, key, value, origin;
};

// INI through Program_options' config-file parser (the same one RunConfig uses), with
// every key unregistered: [datasets] and [overrides] have open-ended keys, so keys are
// checked here by section instead.
std::vector<Entry> read_ini(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw UsageError(path + ": cannot open sweep config");
  std::vector<Entry> out;
  std::ostringstream text;
  text << in.rdbuf();
  try {
    po::options_description none;
    std::istringstream file(text.str());
    auto parsed = po::parse_config_file(file, none, /*allow_unregistered=*/true);
    for (const auto& o : parsed.options) {
      size_t dot = o.string_key.find('.');
      if (dot == std::string::npos)
        throw UsageError(path + ": key '" + o.string_key + "' is outside a section ([sweep], [datasets], [overrides])");
      out.push_back({o.string_key.substr(0, dot), o.string_key.substr(dot + 1),
                     o.value.empty() ? "" : trim(o.value.front()), path});
    }
  } catch (const po::error& e) {
    throw UsageError(path + ": " + program_options_message(e, text.str()));
  }
  return out;
}
}  // namespace

std::string RunSpec::label() const { return dataset + "/" + model + "/seed-" + std::to_string(seed); }

std::vector<std::string> parse_list(const std::string& text, const std::string& what) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) {
    item = trim(item);
    if (item.empty()) throw UsageError(what + ": empty item in '" + text + "'");
    if (std::find(out.begin(), out.end(), item) != out.end())
      throw UsageError(what + ": '" + item + "' is listed twice");
    out.push_back(item);
  }
  if (out.empty()) throw UsageError(what + ": needs at least one value");
  return out;
}

std::vector<uint64_t> parse_seeds(const std::string& text, const std::string& what) {
  std::vector<uint64_t> out;
  std::set<uint64_t> seen;
  auto number = [&](const std::string& s) {
    if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos)
      throw UsageError(what + ": '" + s + "' is not a seed (non-negative integers and ranges like 0-9)");
    // Bounded well below 2^64: the range loop below must not wrap (found by fuzz_ini:
    // "seeds = 18446744073709551615" looped forever), and stoull must not throw.
    if (s.size() > 15) throw UsageError(what + ": seed '" + s.substr(0, 24) + "' is too large (at most 15 digits)");
    return std::stoull(s);
  };
  for (const auto& item : parse_list(text, what)) {
    size_t dash = item.find('-');
    uint64_t lo = number(dash == std::string::npos ? item : trim(item.substr(0, dash)));
    uint64_t hi = dash == std::string::npos ? lo : number(trim(item.substr(dash + 1)));
    if (hi < lo) throw UsageError(what + ": range '" + item + "' runs backwards");
    if (hi - lo > 100000) throw UsageError(what + ": range '" + item + "' is too long");
    if (out.size() + (hi - lo) >= 100000)  // fuzz_ini: many long ranges took minutes and GBs
      throw UsageError(what + ": more than 100000 seeds");
    for (uint64_t s = lo; s <= hi; ++s) {
      if (!seen.insert(s).second) throw UsageError(what + ": seed " + std::to_string(s) + " is listed twice");
      out.push_back(s);
    }
  }
  return out;
}

std::pair<int64_t, int64_t> parse_slice(const std::string& text) {
  size_t slash = text.find('/');
  auto bad = [&] { return UsageError("--slice: expected I/N with 0 <= I < N (e.g. 0/4), got '" + text + "'"); };
  if (slash == std::string::npos) throw bad();
  const std::string a = text.substr(0, slash), b = text.substr(slash + 1);
  if (a.empty() || b.empty() || a.find_first_not_of("0123456789") != std::string::npos ||
      b.find_first_not_of("0123456789") != std::string::npos || a.size() > 9 || b.size() > 9)
    throw bad();
  int64_t i = std::stoll(a), n = std::stoll(b);
  if (n < 1 || i >= n) throw bad();
  return {i, n};
}

SweepConfig SweepConfig::load(const std::string& path, const std::vector<std::string>& cli) {
  if (path.empty()) throw UsageError("sweep: --config SWEEP.ini is required");
  std::vector<Entry> entries = read_ini(path);
  for (const auto& a : cli) {
    // --section.key=value; the key of [overrides] itself has a dot ("overrides.train.epochs=2").
    size_t eq = a.find('=');
    size_t dot = a.find('.');
    if (a.rfind("--", 0) != 0 || eq == std::string::npos || dot == std::string::npos || dot > eq)
      throw UsageError("sweep: unexpected argument '" + a + "' (overrides look like --sweep.runs_dir=DIR)");
    entries.push_back({a.substr(2, dot - 2), a.substr(dot + 1, eq - dot - 1), a.substr(eq + 1), "command line " + a});
  }
  SweepConfig c;
  c.source = path;
  std::map<std::string, std::string> sweep_values;
  std::map<std::string, size_t> override_pos;
  for (const auto& e : entries) {
    if (e.key.empty()) throw UsageError(e.origin + ": empty key");
    if (e.section == "sweep") {
      if (std::find(kSweepKeys.begin(), kSweepKeys.end(), e.key) == kSweepKeys.end())
        throw UsageError(e.origin + ": unknown key 'sweep." + e.key + "'; valid keys of [sweep]: " + join(kSweepKeys));
      sweep_values[e.key] = e.value;  // later wins: the command line overrides the file
    } else if (e.section == "datasets") {
      if (e.value.empty()) throw UsageError(e.origin + ": dataset '" + e.key + "' needs a file");
      c.dataset_paths[e.key] = e.value;
    } else if (e.section == "overrides") {
      if (e.key.find('.') == std::string::npos)
        throw UsageError(e.origin + ": override '" + e.key + "' must be section.key (e.g. train.epochs)");
      auto it = override_pos.find(e.key);
      if (it != override_pos.end())
        c.overrides[it->second].second = e.value;
      else {
        override_pos[e.key] = c.overrides.size();
        c.overrides.emplace_back(e.key, e.value);
      }
    } else {
      throw UsageError(e.origin + ": unknown section [" + e.section + "] (sections: sweep, datasets, overrides)");
    }
  }
  auto get = [&](const std::string& k) -> const std::string* {
    auto it = sweep_values.find(k);
    return it == sweep_values.end() ? nullptr : &it->second;
  };
  const std::string where = path + ": [sweep] ";
  if (auto v = get("name")) c.name = *v;
  if (auto v = get("runs_dir")) c.runs_dir = *v;
  if (auto v = get("experiments")) c.experiments = *v;
  for (const char* k : {"datasets", "models", "seeds"})
    if (!get(k)) throw UsageError(where + "needs '" + k + "'");
  c.datasets = parse_list(*get("datasets"), where + "datasets");
  c.models = parse_list(*get("models"), where + "models");
  c.seeds = parse_seeds(*get("seeds"), where + "seeds");
  if (auto v = get("ranks_per_run")) {
    if (v->empty() || v->find_first_not_of("0123456789") != std::string::npos || v->size() > 6 || std::stoll(*v) < 1)
      throw UsageError(where + "ranks_per_run must be a positive integer, got '" + *v + "'");
    c.ranks_per_run = std::stoll(*v);
  }
  if (auto v = get("seeds_per_process")) {
    if (v->empty() || v->find_first_not_of("0123456789") != std::string::npos || v->size() > 4 || std::stoll(*v) < 1)
      throw UsageError(where + "seeds_per_process must be a positive integer, got '" + *v + "'");
    c.seeds_per_process = std::stoll(*v);
  }
  if (c.runs_dir.empty()) throw UsageError(where + "runs_dir is empty");
  // [datasets] may name more datasets than the sweep trains (a file's full list, with
  // --sweep.datasets picking a subset); those entries are simply unused.
  for (const auto& [k, v] : c.overrides)
    if (k == "train.seed" || k == "output.dir")
      throw UsageError(path + ": [overrides] cannot set " + k + " (the sweep sets it per run)");
  return c;
}

std::vector<RunSpec> SweepConfig::expand() const {
  std::vector<RunSpec> runs;
  std::vector<std::string> missing;
  for (const auto& d : datasets)
    for (const auto& m : models) {
      const std::string file = (fs::path(experiments) / (d + "-" + m + ".ini")).string();
      if (!fs::is_regular_file(file)) {
        missing.push_back(file);
        continue;
      }
      for (uint64_t s : seeds) {
        RunSpec r;
        r.index = runs.size();
        r.dataset = d;
        r.model = m;
        r.seed = s;
        r.experiment = file;
        r.dir = (fs::path(runs_dir) / d / m / ("seed-" + std::to_string(s))).string();
        auto dp = dataset_paths.find(d);
        if (dp != dataset_paths.end()) r.overrides.push_back("--data.path=" + dp->second);
        for (const auto& [k, v] : overrides) r.overrides.push_back("--" + k + "=" + v);
        r.overrides.push_back("--train.seed=" + std::to_string(s));
        r.overrides.push_back("--output.dir=" + r.dir);
        runs.push_back(std::move(r));
      }
    }
  if (!missing.empty())
    throw UsageError(source + ": no experiment config for " + std::to_string(missing.size()) +
                     " (dataset, model) pair(s): " + join(missing) + " (sweep.experiments = " + experiments +
                     (fs::path(experiments).is_relative()
                          ? ", relative to the current directory " + fs::current_path().string()
                          : std::string()) +
                     ")");
  return runs;
}

std::string SweepConfig::artifact_dir() const { return (fs::path(runs_dir) / "pretrained").string(); }

}  // namespace mixvae::sweep
