#include "sweep/plot.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/errors.h"
#include "core/files.h"

extern char** environ;

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace mixvae::sweep {
namespace {

// A gnuplot single-quoted string: nothing is special inside but the quote, written twice.
std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\n' || c == '\r') c = ' ';
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// The script and data files live here while gnuplot runs.
class ScratchDir {
 public:
  ScratchDir() {
    std::error_code ec;
    fs::path base = fs::temp_directory_path(ec);
    if (ec) base = "/tmp";
    std::string tmpl = (base / "mixvae-plot-XXXXXX").string();
    if (::mkdtemp(tmpl.data())) path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  bool ok() const { return !path_.empty(); }
  std::string file(const std::string& name) const { return (fs::path(path_) / name).string(); }

 private:
  std::string path_;
};

// Runs `gnuplot script` with its output in `log`. "" on success, else one line.
std::string run_gnuplot(const std::string& gnuplot, const std::string& script, const std::string& log) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<char*> argv = {const_cast<char*>(gnuplot.c_str()), const_cast<char*>(script.c_str()), nullptr};
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, gnuplot.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return "cannot start " + gnuplot + ": " + std::strerror(rc);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return std::string("waiting for gnuplot: ") + std::strerror(errno);
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  // gnuplot echoes the failing line and a caret before its message: the last line says why.
  std::ifstream in(log);
  std::string line, last;
  while (std::getline(in, line))
    if (line.find_first_not_of(" \t^") != std::string::npos) last = line;
  const std::string how = WIFEXITED(status) ? "exit code " + std::to_string(WEXITSTATUS(status)) : "killed by a signal";
  return "gnuplot failed (" + how + ")" + (last.empty() ? "" : ": " + last);
}

// Runs `body` (the plot commands) with a PNG terminal of w x h pixels drawing into a
// temporary file beside `png_path`, then renames it into place.
std::string render(const ScratchDir& scratch, const std::string& body, int w, int h, const std::string& png_path) {
  const std::string gnuplot = find_gnuplot();
  if (gnuplot.empty()) return "gnuplot not found on PATH (install gnuplot-nox)";
  const std::string tmp_png = temporary_path(png_path);
  std::ostringstream s;
  s << "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
    << "  set terminal pngcairo size " << w << "," << h << " noenhanced font 'Sans,10'\n"
    << "} else {\n"
    << "  set terminal png size " << w << "," << h << " noenhanced\n"
    << "}\n"
    << "set output " << quote(tmp_png) << "\n"
    << body << "set output\n";
  const std::string script = scratch.file("plot.gp");
  {
    std::ofstream out(script);
    out << s.str();
    if (!out) return "cannot write the gnuplot script " + script;
  }
  std::string why = run_gnuplot(gnuplot, script, scratch.file("gnuplot.log"));
  std::error_code ec;
  if (why.empty() && (!fs::exists(tmp_png, ec) || fs::file_size(tmp_png, ec) == 0)) why = "gnuplot wrote no image";
  if (why.empty() && std::rename(tmp_png.c_str(), png_path.c_str()) != 0)
    why = "cannot write " + png_path + ": " + std::strerror(errno);
  if (!why.empty()) fs::remove(tmp_png, ec);
  return why;
}

bool write_points(const std::string& path, const std::vector<std::pair<double, double>>& xy) {
  std::ofstream out(path);
  for (const auto& [x, y] : xy) out << fmt("%.10g", x) << ' ' << fmt("%.10g", y) << '\n';
  return static_cast<bool>(out);
}

}  // namespace

std::string find_gnuplot() {
  const char* env = std::getenv("PATH");
  std::stringstream path(env ? env : "");
  std::string dir;
  while (std::getline(path, dir, ':')) {
    if (dir.empty()) continue;
    const std::string candidate = (fs::path(dir) / "gnuplot").string();
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(candidate.c_str(), X_OK) == 0)
      return candidate;
  }
  return "";
}

std::string plot_acc_per_seed(const Report& report, const std::string& png_path) {
  if (find_gnuplot().empty()) return "gnuplot not found on PATH (install gnuplot-nox)";
  ScratchDir scratch;
  if (!scratch.ok()) return "cannot create a temporary folder for gnuplot";
  // One panel per dataset that has at least one ACC; colours follow the model's row.
  std::ostringstream panels;
  int n_panels = 0;
  size_t max_seed_span = 0;
  for (size_t d = 0; d < report.datasets.size(); ++d) {
    std::ostringstream plot;
    for (size_t m = 0; m < report.models.size(); ++m) {
      std::vector<std::pair<double, double>> xy;
      for (const auto& run : report.runs)
        if (run.dataset == report.datasets[d] && run.model == report.models[m] && run.status == RunStatus::Finished &&
            run.acc)
          xy.emplace_back(double(run.seed), *run.acc);
      if (xy.empty()) continue;
      max_seed_span = std::max(max_seed_span, xy.size());
      const std::string file = scratch.file("acc_" + std::to_string(d) + "_" + std::to_string(m) + ".dat");
      if (!write_points(file, xy)) return "cannot write gnuplot data " + file;
      double mean = 0;
      for (const auto& p : xy) mean += p.second;
      mean /= double(xy.size());
      const int lc = int(m) + 1, pt = std::vector<int>{7, 5, 9, 11, 13, 15}[m % 6];
      plot << (plot.tellp() > 0 ? ", \\\n     " : "plot ") << quote(file) << " using 1:2 with points pt " << pt
           << " ps 1.4 lc " << lc << " title " << quote(report.models[m]) << ", " << fmt("%.10g", mean)
           << " with lines dt 2 lc " << lc << " notitle";
    }
    if (plot.tellp() == 0) continue;
    ++n_panels;
    panels << "set title " << quote(report.datasets[d]) << "\n" << plot.str() << "\n";
  }
  if (n_panels == 0) return "no finished run has an ACC (unlabelled data?), nothing to plot";
  const int cols = n_panels == 1 ? 1 : n_panels <= 4 ? 2 : 3, rows = (n_panels + cols - 1) / cols;
  std::ostringstream body;
  body << "set multiplot layout " << rows << "," << cols << " title "
       << quote("ACC per seed (dashed: mean over the seeds): " + report.root) << "\n"
       << "set grid\nset key outside right top\nset xlabel 'seed'\nset ylabel 'ACC'\n"
       << "set offsets graph 0.05, graph 0.05, graph 0.1, graph 0.1\n"
       << (max_seed_span <= 20 ? "set xtics 1\n" : "") << panels.str() << "unset multiplot\n";
  return render(scratch, body.str(), 620 * cols, 420 * rows, png_path);
}

std::vector<CurvePoint> read_metrics(const std::string& run_dir) {
  std::error_code ec;
  if (!fs::is_directory(run_dir, ec)) throw data_error(run_dir, "no such run directory");
  const std::string path = (fs::path(run_dir) / "metrics.jsonl").string();
  std::ifstream in(path, std::ios::binary);
  if (!in) throw data_error(path, std::string("cannot read: ") + std::strerror(errno));
  std::ostringstream os;
  os << in.rdbuf();
  const std::string text = os.str();
  std::vector<CurvePoint> out;
  size_t start = 0;
  int64_t lineno = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    const bool torn = end == std::string::npos;  // no newline yet: the writer may be mid-line
    if (torn) end = text.size();
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      if (torn) break;
      throw DataError(path + ":" + std::to_string(lineno) + ": not a JSON object");
    }
    CurvePoint p;
    if (auto it = j.find("stage"); it != j.end() && it->is_string()) p.stage = it->get<std::string>();
    if (auto it = j.find("stage_index"); it != j.end() && it->is_number_integer()) p.stage_index = it->get<int64_t>();
    if (auto it = j.find("epoch"); it != j.end() && it->is_number_integer()) p.epoch = it->get<int64_t>();
    if (auto it = j.find("loss"); it != j.end() && it->is_number()) p.loss = it->get<double>();
    if (auto it = j.find("acc"); it != j.end() && it->is_number()) p.acc = it->get<double>();
    out.push_back(std::move(p));
  }
  return out;
}

std::string plot_training_curves(const std::vector<CurvePoint>& points, const std::string& title,
                                 const std::string& png_path) {
  if (find_gnuplot().empty()) return "gnuplot not found on PATH (install gnuplot-nox)";
  ScratchDir scratch;
  if (!scratch.ok()) return "cannot create a temporary folder for gnuplot";
  // Epochs restart at 1 in every stage, so x is the line's position in the log: the
  // stages then follow each other left to right, each in its own colour.
  std::vector<int64_t> stages;  // stage_index in order of appearance
  std::map<int64_t, std::string> names;
  std::map<int64_t, std::vector<std::pair<double, double>>> loss, acc;
  for (size_t i = 0; i < points.size(); ++i) {
    const auto& p = points[i];
    if (!names.count(p.stage_index)) {
      stages.push_back(p.stage_index);
      names[p.stage_index] = p.stage.empty() ? "stage " + std::to_string(p.stage_index) : p.stage;
    }
    if (p.loss && std::isfinite(*p.loss)) loss[p.stage_index].emplace_back(double(i + 1), *p.loss);
    if (p.acc && std::isfinite(*p.acc)) acc[p.stage_index].emplace_back(double(i + 1), *p.acc);
  }
  std::map<std::string, int> name_count;
  for (const auto& [si, name] : names) ++name_count[name];
  auto panel = [&](const std::map<int64_t, std::vector<std::pair<double, double>>>& series, const char* kind,
                   std::string* why) {
    std::ostringstream plot;
    for (size_t k = 0; k < stages.size(); ++k) {
      auto it = series.find(stages[k]);
      if (it == series.end() || it->second.empty()) continue;
      const std::string file = scratch.file(std::string(kind) + "_" + std::to_string(k) + ".dat");
      if (!write_points(file, it->second)) *why = "cannot write gnuplot data " + file;
      std::string label = names[stages[k]];
      if (name_count[label] > 1) label += " (stage " + std::to_string(stages[k]) + ")";
      plot << (plot.tellp() > 0 ? ", \\\n     " : "plot ") << quote(file)
           << " using 1:2 with linespoints pt 7 ps 0.6 lc " << (k + 1) << " title " << quote(label);
    }
    return plot.str();
  };
  std::string why;
  const std::string loss_plot = panel(loss, "loss", &why), acc_plot = panel(acc, "acc", &why);
  if (!why.empty()) return why;
  if (loss_plot.empty() && acc_plot.empty()) return "metrics.jsonl has no epoch with a loss or an ACC, nothing to plot";
  const int rows = (loss_plot.empty() ? 0 : 1) + (acc_plot.empty() ? 0 : 1);
  std::ostringstream body;
  body << "set multiplot layout " << rows << ",1 title " << quote("training curves: " + title) << "\n"
       << "set grid\nset key outside right top\nset xlabel 'epoch (all stages, in order)'\n"
       // Both panels on one x axis, whatever the width of their tick labels.
       << "set xrange [0:" << points.size() + 1 << "]\nset lmargin at screen 0.08\nset rmargin at screen 0.8\n";
  if (!loss_plot.empty()) body << "set ylabel 'loss'\n" << loss_plot << "\n";
  if (!acc_plot.empty()) body << "set ylabel 'ACC'\n" << acc_plot << "\n";
  body << "unset multiplot\n";
  return render(scratch, body.str(), 960, 380 * rows, png_path);
}

}  // namespace mixvae::sweep
