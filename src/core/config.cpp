#include "core/config.h"

#include <algorithm>
#include <boost/program_options.hpp>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <map>
#include <sstream>

#include "core/errors.h"
#include "core/files.h"
#include "core/sha256.h"

namespace po = boost::program_options;

namespace mixvae {
namespace {

// The registry's model names joined by sep (registered before any config is read).
std::string model_names_joined(const std::string& sep) {
  std::string out;
  for (const auto& n : registered_model_names()) out += (out.empty() ? "" : sep) + n;
  return out;
}

// Every key once: section, name, field, help. Visitors register them with
// Program_options, print them as INI, or list them for help and error messages.
template <class V>
void visit(RunConfig& c, V& v) {
  v("data", "path", c.data.path, "HDF5 feature file written by `mixvae prepare`");
  v("data", "shuffle", c.data.shuffle,
    "shard (each rank reads and shuffles only its rows) | global (every rank holds the file; "
    "the global batch is identical at any world size)");
  v("model", "name", c.model.name, "model to train: " + model_names_joined(" | "));
  v("model", "clusters", c.model.clusters, "number of clusters K (>= 2)");
  v("model", "latent", c.model.latent, "latent dimension J");
  v("model", "hidden", c.model.hidden, "encoder widths, comma-separated (decoder mirrors them)");
  v("model", "likelihood", c.model.likelihood,
    "auto (bernoulli for data in [0,1], else gaussian) | bernoulli | gaussian");
  v("model", "recon_weight", c.model.recon_weight, "weight of the reconstruction term");
  v("model", "logvar_clamp", c.model.logvar_clamp, "bound on |log variance| (encoder and mixture)");
  v("model", "init", c.model.init,
    "mixture initialisation on the pretrained latent means: gmm | kmeans | umap (a GMM fitted in a UMAP "
    "embedding of the means, its clusters' moments taken as the mixture; docs/models.md)");
  v("model", "init_iters", c.model.init_iters, "EM / Lloyd iterations of the initialisation");
  v("model", "init_restarts", c.model.init_restarts, "k-means++ restarts (best objective kept)");
  v("model", "init_fits", c.model.init_fits,
    "init = gmm: independent GMM fits, each from its own k-means++ start; the highest likelihood is kept "
    "(scikit-learn's n_init); with init = umap, the fits in the embedding");
  v("model", "umap_neighbors", c.model.umap_neighbors,
    "init = umap: neighbours per point in the graph, the point itself counted (UMAP's n_neighbors)");
  v("model", "umap_epochs", c.model.umap_epochs, "init = umap: layout epochs (0: 200 above 10,000 rows, else 500)");
  v("model", "umap_init", c.model.umap_init,
    "init = umap: where the layout starts: pca (the codes' principal components) | spectral (UMAP's default, the "
    "graph's leading eigenvectors)");
  v("train", "epochs", c.train.epochs, "epochs of the main objective");
  v("train", "batch_size", c.train.batch_size, "global batch size (each rank takes its share)");
  v("train", "lr", c.train.lr, "Adam learning rate of the networks");
  v("train", "lr_mixture", c.train.lr_mixture, "Adam learning rate of the mixture parameters");
  v("train", "lr_decay", c.train.lr_decay, "learning-rate factor applied every lr_decay_every epochs");
  v("train", "lr_decay_every", c.train.lr_decay_every, "epochs between decays (0: never)");
  v("train", "lr_floor", c.train.lr_floor, "the decayed learning rate never goes below this");
  v("train", "adam_eps", c.train.adam_eps, "Adam epsilon (Keras' 1e-4 in VaDE's code)");
  v("train", "adam", c.train.adam,
    "Adam implementation of every stage: fused (one pass over memory per parameter on CPU; on a GPU one "
    "multi-tensor operation per parameter group) | torch (LibTorch's torch::optim::Adam). Same algorithm; "
    "results differ by float rounding");
  v("train", "precision", c.train.precision,
    "matrix products of the networks' hidden stacks: fp32 | bf16 (inputs and weights cast to bfloat16 for each "
    "product, fp32 master weights, optimiser, loss and mixture math; pays on GPUs and CPUs with AVX512-BF16/AMX, "
    "slower elsewhere: docs/performance.md)");
  v("train", "seed", c.train.seed, "run seed: every random choice derives from (seed, epoch, rank)");
  v("train", "eval_every", c.train.eval_every, "epochs between ACC/NMI/ARI evaluations (0: only at the end)");
  v("train", "threads", c.train.threads, "intra-op threads per rank (0: cores / local ranks)");
  v("train", "collapse_warn", c.train.collapse_warn, "warn when one cluster holds more than this fraction of the data");
  v("train", "divergence_retries", c.train.divergence_retries,
    "NaN/Inf loss: roll back to the last checkpoint and retry with lower learning rates this often (0: stop)");
  v("train", "divergence_lr_factor", c.train.divergence_lr_factor,
    "factor applied to every learning rate at each divergence rollback");
  v("pretrain", "epochs", c.pretrain.epochs, "autoencoder pretraining epochs (0: skip)");
  v("pretrain", "batch_size", c.pretrain.batch_size, "global batch size of pretraining");
  v("pretrain", "lr", c.pretrain.lr, "Adam learning rate of pretraining");
  v("pretrain", "adam_eps", c.pretrain.adam_eps, "Adam epsilon of pretraining");
  v("pretrain", "input_dropout", c.pretrain.input_dropout,
    "denoising pretraining: each input entry is zeroed with this probability and the rest scaled by 1/(1-p); "
    "the autoencoder reconstructs the clean input (0: plain autoencoder; DEC used 0.2)");
  v("dist", "bucket_mb", c.dist.bucket_mb, "gradient all-reduce bucket size in MiB");
  v("dist", "overlap", c.dist.overlap,
    "all-reduce each finished gradient bucket on a second thread while backward() computes the rest "
    "(MPI on CPU, more than one bucket; see docs/performance.md for when it pays)");
  v("dist", "device", c.dist.device,
    "auto (one GPU per local rank when LibTorch has CUDA and a GPU is visible, else CPU) | cpu | cuda");
  v("dist", "backend", c.dist.backend, "collectives on GPU tensors: auto (NCCL when available) | mpi | nccl");
  v("dist", "timeout_s", c.dist.timeout_s,
    "seconds a collective (MPI or NCCL) may wait for the other ranks before the job ends, naming the ranks that did "
    "not arrive (0: no limit)");
  v("checkpoint", "every", c.checkpoint.every, "epochs between checkpoints (0: only at the end)");
  v("output", "dir", c.output.dir, "run directory (config.ini, metrics.jsonl, result.json, checkpoint.h5)");
  v("output", "samples_per_cluster", c.output.samples_per_cluster, "columns of samples.png");
  v("output", "progress", c.output.progress,
    "print the progress line and one line per epoch on stdout (metrics.jsonl has every epoch either way)");
  // Model sections: only the selected model's own section is part of the config (and of
  // its hash), so adding a model does not change the hash of other models' runs.
  for (const auto& spec : registered_options()) {
    if (!v.all_sections && spec.section != c.model.name) continue;
    std::string full = spec.section + "." + spec.key;
    auto it = c.options.find(full);
    if (it == c.options.end()) it = c.options.emplace(full, spec.default_value).first;
    v(spec.section.c_str(), spec.key.c_str(), it->second, spec.help.c_str());
  }
}

std::vector<OptionSpec>& option_table() {
  static std::vector<OptionSpec> t;
  return t;
}
std::vector<std::string>& model_names() {
  static std::vector<std::string> t;
  return t;
}

const OptionSpec* find_spec(const std::string& full_key) {
  for (const auto& s : option_table())
    if (s.section + "." + s.key == full_key) return &s;
  return nullptr;
}

// Parses a registered option's text by its type; throws UsageError naming the key.
template <class T>
T parse_option(const std::string& origin, const std::string& key, const std::string& text);
template <>
std::string parse_option(const std::string&, const std::string&, const std::string& text) {
  return text;
}
template <>
int64_t parse_option(const std::string& origin, const std::string& key, const std::string& text) {
  try {
    size_t pos = 0;
    long long v = std::stoll(text, &pos);
    if (pos == text.size()) return v;
  } catch (const std::exception&) {
  }
  throw UsageError(origin + ": " + key + " must be an integer, got '" + text + "'");
}
template <>
double parse_option(const std::string& origin, const std::string& key, const std::string& text) {
  try {
    size_t pos = 0;
    double v = std::stod(text, &pos);
    if (pos == text.size() && std::isfinite(v)) return v;
  } catch (const std::exception&) {
  }
  throw UsageError(origin + ": " + key + " must be a number, got '" + text + "'");
}
template <>
bool parse_option(const std::string& origin, const std::string& key, const std::string& text) {
  if (text == "true" || text == "1" || text == "yes" || text == "on") return true;
  if (text == "false" || text == "0" || text == "no" || text == "off") return false;
  throw UsageError(origin + ": " + key + " must be true or false, got '" + text + "'");
}

template <class T>
T get_option(const RunConfig& c, const std::string& full_key) {
  const OptionSpec* spec = find_spec(full_key);
  if (!spec) throw UsageError("config: no option " + full_key + " is registered");
  auto it = c.options.find(full_key);
  const std::string& text = it == c.options.end() ? spec->default_value : it->second;
  const std::string origin = c.from_command_line.count(full_key) ? std::string("command line")
                             : c.source.empty()                  ? std::string("config")
                                                                 : c.source;
  return parse_option<T>(origin, full_key, text);
}

struct Register {
  bool all_sections = true;
  po::options_description& desc;
  template <class T>
  void operator()(const char* s, const char* k, T& field, const std::string& help) {
    std::string name = std::string(s) + "." + k;
    desc.add_options()(name.c_str(), po::value<T>(&field), help.c_str());
  }
};

template <class T>
std::string to_text(const T& v) {
  std::ostringstream os;
  os << std::setprecision(17) << v;
  return os.str();
}
std::string to_text(const bool& v) { return v ? "true" : "false"; }
std::string to_text(const std::string& v) { return v; }

struct Printer {
  bool all_sections = false;
  std::map<std::string, std::vector<std::string>> lines;
  std::vector<std::string> order;
  template <class T>
  void operator()(const char* s, const char* k, T& field, const std::string&) {
    if (!lines.count(s)) order.push_back(s);
    lines[s].push_back(std::string(k) + " = " + to_text(field));
  }
};

struct Lister {
  bool all_sections = true;
  std::map<std::string, std::vector<std::string>> keys;
  std::string help;
  template <class T>
  void operator()(const char* s, const char* k, T& field, const std::string& h) {
    keys[s].push_back(k);
    help += "  --" + std::string(s) + "." + k + "=" + to_text(field) + "\n      " + h + "\n";
  }
};

std::string valid_keys_message(const std::string& full_key) {
  RunConfig defaults;
  Lister l;
  visit(defaults, l);
  auto dot = full_key.find('.');
  std::string section = dot == std::string::npos ? "" : full_key.substr(0, dot);
  std::string out;
  if (l.keys.count(section)) {
    out = "valid keys of [" + section + "]:";
    for (const auto& k : l.keys[section]) out += " " + k;
  } else {
    out = "valid sections:";
    for (const auto& [s, _] : l.keys) out += " [" + s + "]";
  }
  return out;
}

std::string strip_dashes(std::string s) {
  while (!s.empty() && s[0] == '-') s.erase(0, 1);
  return s;
}

}  // namespace

namespace {
RunConfig load_stream(std::istream* in, const std::string& ini_path, const std::vector<std::string>& overrides);
}

RunConfig RunConfig::load(const std::string& ini_path, const std::vector<std::string>& overrides) {
  if (ini_path.empty()) return load_stream(nullptr, "", overrides);
  std::ifstream in(ini_path);
  if (!in) throw UsageError(ini_path + ": cannot open config file");
  return load_stream(&in, ini_path, overrides);
}

RunConfig RunConfig::load_text(const std::string& text, const std::string& origin,
                               const std::vector<std::string>& overrides) {
  std::istringstream in(text);
  return load_stream(&in, origin, overrides);
}

std::string program_options_message(const po::error& e, const std::string& input,
                                    const std::vector<std::pair<std::string, std::string>>& values) {
  if (input.find('%') == std::string::npos) return e.what();
  if (const auto* line = dynamic_cast<const po::invalid_config_file_syntax*>(&e))
    return "invalid line '" + one_line(line->tokens()) + "'";
  if (const auto* named = dynamic_cast<const po::error_with_option_name*>(&e)) {
    const std::string shown = named->get_option_name(), name = strip_dashes(shown);
    for (const auto& kv : values)
      if (kv.first == name) return "the argument ('" + one_line(kv.second) + "') for option '" + shown + "' is invalid";
    return "option '" + shown + "' is invalid";
  }
  return e.what();
}

namespace {
RunConfig load_stream(std::istream* in, const std::string& ini_path, const std::vector<std::string>& overrides) {
  RunConfig cfg;
  cfg.source = ini_path;
  po::options_description desc;
  Register reg{true, desc};
  visit(cfg, reg);
  po::variables_map vm;
  std::vector<std::pair<std::string, std::string>> raw;  // key -> value as given, for the messages
  std::string input;                                     // everything given, for the messages
  for (const auto& o : overrides) input += o + "\n";
  std::istringstream file;
  if (in) {
    std::ostringstream os;
    os << in->rdbuf();
    file.str(os.str());
    input += file.str();
  }
  try {
    // Command line first: Program_options keeps the first value stored for a key.
    std::vector<std::string> args;
    for (const auto& o : overrides) {
      if (o.rfind("--", 0) != 0)
        throw UsageError("unexpected argument '" + o + "' (overrides look like --section.key=value)");
      args.push_back(o);
    }
    // No prefix guessing: "--train.epoch" must not silently mean train.epochs.
    auto style = po::command_line_style::default_style & ~po::command_line_style::allow_guessing;
    auto cl = po::command_line_parser(args).options(desc).style(style).allow_unregistered().run();
    for (const auto& u : po::collect_unrecognized(cl.options, po::include_positional)) {
      std::string key = strip_dashes(u);
      key = key.substr(0, key.find('='));
      throw UsageError("unknown option --" + key + "; " + valid_keys_message(key));
    }
    for (const auto& o : cl.options)
      if (!o.value.empty()) {
        raw.emplace_back(o.string_key, o.value.front());
        cfg.from_command_line[o.string_key] = o.value.front();
      }
    try {
      po::store(cl, vm);
    } catch (const po::error& e) {
      throw UsageError("command line: " + program_options_message(e, input, raw));  // not the INI file's fault
    }
    if (in) {
      auto parsed = po::parse_config_file(file, desc, /*allow_unregistered=*/true);
      for (const auto& o : parsed.options) {
        if (o.unregistered)
          throw UsageError(ini_path + ": unknown key '" + o.string_key + "'; " + valid_keys_message(o.string_key));
        if (!o.value.empty()) raw.emplace_back(o.string_key, o.value.front());
      }
      po::store(parsed, vm);
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError((ini_path.empty() ? std::string("config") : ini_path) + ": " +
                     program_options_message(e, input, raw));
  }
  cfg.validate();
  return cfg;
}
}  // namespace

void RunConfig::validate() const {
  auto bad = [&](const std::string& key, const std::string& what) {
    auto flag = from_command_line.find(key);
    const bool flagged = flag != from_command_line.end();
    throw UsageError((!source.empty() ? source
                      : flagged       ? std::string("command line")
                                      : std::string("config")) +
                     ": " + key + " " + what + (flagged ? " (given as --" + key + "=" + flag->second + ")" : ""));
  };
  if (data.shuffle != "shard" && data.shuffle != "global")
    bad("data.shuffle", "must be 'shard' or 'global', got '" + data.shuffle + "'");
  const auto& names = registered_model_names();
  if (!names.empty() && std::find(names.begin(), names.end(), model.name) == names.end())
    bad("model.name", "must be one of: " + model_names_joined(", ") + " (got '" + model.name + "')");
  for (const auto& spec : registered_options()) {  // every registered option parses as its type
    const std::string full = spec.section + "." + spec.key;
    switch (spec.type) {
      case OptionSpec::Type::Int:
        (void)opt_int(full);
        break;
      case OptionSpec::Type::Double:
        (void)opt_double(full);
        break;
      case OptionSpec::Type::Bool:
        (void)opt_bool(full);
        break;
      case OptionSpec::Type::String:
        if (!spec.choices.empty()) {
          const std::string v = opt_string(full);
          std::string list;
          for (const auto& c : spec.choices) list += (list.empty() ? "" : ", ") + c;
          if (std::find(spec.choices.begin(), spec.choices.end(), v) == spec.choices.end())
            bad(full, "must be one of: " + list + " (got '" + v + "')");
        }
        break;
    }
  }
  if (model.clusters < 2) bad("model.clusters", "must be >= 2, got " + std::to_string(model.clusters));
  if (model.latent < 1) bad("model.latent", "must be >= 1");
  if (model.likelihood != "auto" && model.likelihood != "bernoulli" && model.likelihood != "gaussian")
    bad("model.likelihood", "must be auto, bernoulli or gaussian, got '" + model.likelihood + "'");
  if (!(model.recon_weight > 0)) bad("model.recon_weight", "must be > 0");
  if (!(model.logvar_clamp > 0)) bad("model.logvar_clamp", "must be > 0");
  if (model.init != "gmm" && model.init != "kmeans" && model.init != "umap")
    bad("model.init", "must be gmm, kmeans or umap, got '" + model.init + "'");
  if (model.umap_neighbors < 2) bad("model.umap_neighbors", "must be >= 2");
  if (model.umap_epochs < 0) bad("model.umap_epochs", "must be >= 0");
  if (model.umap_init != "pca" && model.umap_init != "spectral")
    bad("model.umap_init", "must be pca or spectral, got '" + model.umap_init + "'");
  if (model.init_iters < 1) bad("model.init_iters", "must be >= 1");
  if (model.init_restarts < 1) bad("model.init_restarts", "must be >= 1");
  if (model.init_fits < 1) bad("model.init_fits", "must be >= 1");
  for (char ch : model.hidden)
    if (!(std::isdigit(static_cast<unsigned char>(ch)) || ch == ','))
      bad("model.hidden", "must be comma-separated widths, got '" + model.hidden + "'");
  if (train.epochs < 0) bad("train.epochs", "must be >= 0, got " + std::to_string(train.epochs));
  if (train.batch_size < 1) bad("train.batch_size", "must be >= 1");
  if (!(train.lr > 0) || !std::isfinite(train.lr)) bad("train.lr", "must be a positive number");
  if (!(train.lr_mixture > 0) || !std::isfinite(train.lr_mixture)) bad("train.lr_mixture", "must be a positive number");
  if (!(train.lr_decay > 0 && train.lr_decay <= 1)) bad("train.lr_decay", "must be in (0, 1]");
  if (train.lr_decay_every < 0) bad("train.lr_decay_every", "must be >= 0");
  if (train.lr_floor < 0) bad("train.lr_floor", "must be >= 0");
  if (!(train.adam_eps > 0)) bad("train.adam_eps", "must be > 0");
  if (train.adam != "fused" && train.adam != "torch")
    bad("train.adam", "must be 'fused' or 'torch', got '" + train.adam + "'");
  if (train.precision != "fp32" && train.precision != "bf16")
    bad("train.precision", "must be 'fp32' or 'bf16', got '" + train.precision + "'");
  if (train.eval_every < 0) bad("train.eval_every", "must be >= 0");
  if (train.threads < 0) bad("train.threads", "must be >= 0");
  if (!(train.collapse_warn > 0 && train.collapse_warn <= 1)) bad("train.collapse_warn", "must be in (0, 1]");
  if (train.divergence_retries < 0) bad("train.divergence_retries", "must be >= 0");
  if (!(train.divergence_lr_factor > 0 && train.divergence_lr_factor <= 1))
    bad("train.divergence_lr_factor", "must be in (0, 1]");
  if (pretrain.epochs < 0) bad("pretrain.epochs", "must be >= 0, got " + std::to_string(pretrain.epochs));
  if (pretrain.batch_size < 1) bad("pretrain.batch_size", "must be >= 1");
  if (!(pretrain.lr > 0)) bad("pretrain.lr", "must be a positive number");
  if (!(pretrain.adam_eps > 0)) bad("pretrain.adam_eps", "must be > 0");
  if (!(pretrain.input_dropout >= 0 && pretrain.input_dropout < 1)) bad("pretrain.input_dropout", "must be in [0, 1)");
  if (!(dist.bucket_mb > 0)) bad("dist.bucket_mb", "must be > 0");
  if (dist.device != "auto" && dist.device != "cpu" && dist.device != "cuda")
    bad("dist.device", "must be auto, cpu or cuda, got '" + dist.device + "'");
  if (dist.backend != "auto" && dist.backend != "mpi" && dist.backend != "nccl")
    bad("dist.backend", "must be auto, mpi or nccl, got '" + dist.backend + "'");
  if (!(dist.timeout_s >= 0)) bad("dist.timeout_s", "must be >= 0");
  if (checkpoint.every < 0) bad("checkpoint.every", "must be >= 0");
  if (output.dir.empty()) bad("output.dir", "must not be empty");
  if (output.samples_per_cluster < 1) bad("output.samples_per_cluster", "must be >= 1");
}

std::string RunConfig::to_ini() const {
  RunConfig copy = *this;
  Printer p;
  visit(copy, p);
  std::string out = "# mixvae resolved config: `mixvae train --config <this file>` re-runs it\n";
  for (const auto& s : p.order) {
    out += "\n[" + s + "]\n";
    for (const auto& l : p.lines[s]) out += l + "\n";
  }
  return out;
}

std::string RunConfig::hash() const {
  const std::string text = to_ini();
  return sha256_bytes(text.data(), text.size()).substr(0, 16);
}

namespace {
struct Values {
  bool all_sections = false;
  std::vector<std::pair<std::string, std::string>> kv;  // in to_ini() order
  template <class T>
  void operator()(const char* s, const char* k, T& field, const std::string&) {
    kv.emplace_back(std::string(s) + "." + k, to_text(field));
  }
};
std::vector<std::pair<std::string, std::string>> ordered_values(const RunConfig& c) {
  RunConfig copy = c;
  Values v;
  visit(copy, v);
  return std::move(v.kv);
}
}  // namespace

std::map<std::string, std::string> RunConfig::values() const {
  auto kv = ordered_values(*this);
  return {kv.begin(), kv.end()};
}

bool changes_training(const std::string& full_key) {
  static const char* const kNeutral[] = {"train.threads", "train.eval_every", "train.collapse_warn", "dist.bucket_mb",
                                         "dist.overlap",  "dist.backend",     "dist.timeout_s"};
  if (full_key.rfind("output.", 0) == 0) return false;
  for (const char* k : kNeutral)
    if (full_key == k) return false;
  return true;
}

std::vector<std::string> training_differences(const RunConfig& a, const RunConfig& b) {
  const auto va = ordered_values(a);
  const auto vb = b.values();
  std::vector<std::string> out;
  std::map<std::string, bool> seen;
  for (const auto& [k, v] : va) {
    seen[k] = true;
    if (!changes_training(k)) continue;
    auto it = vb.find(k);
    if (it == vb.end())
      out.push_back(k + " (" + v + " -> unset)");
    else if (it->second != v)
      out.push_back(k + " (" + v + " -> " + it->second + ")");
  }
  for (const auto& [k, v] : vb)  // another model's section
    if (!seen.count(k) && changes_training(k)) out.push_back(k + " (unset -> " + v + ")");
  return out;
}

void register_options(const std::vector<OptionSpec>& specs) {
  for (const auto& s : specs)
    if (!find_spec(s.section + "." + s.key)) option_table().push_back(s);
}
const std::vector<OptionSpec>& registered_options() { return option_table(); }
void register_model_name(const std::string& name) {
  for (const auto& n : model_names())
    if (n == name) return;
  model_names().push_back(name);
}
const std::vector<std::string>& registered_model_names() { return model_names(); }

int64_t RunConfig::opt_int(const std::string& k) const { return get_option<int64_t>(*this, k); }
double RunConfig::opt_double(const std::string& k) const { return get_option<double>(*this, k); }
std::string RunConfig::opt_string(const std::string& k) const { return get_option<std::string>(*this, k); }
bool RunConfig::opt_bool(const std::string& k) const { return get_option<bool>(*this, k); }

std::string config_help() {
  RunConfig defaults;
  Lister l;
  visit(defaults, l);
  return l.help;
}

}  // namespace mixvae
