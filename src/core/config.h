#pragma once
// The run configuration: INI sections [data] [model] [train] [pretrain] [dist]
// [checkpoint] [output], overridable on the command line as --section.key=value.
//
// Parsing is Boost.Program_options (config-file and command-line parsers share one
// description per key, so both accept exactly the same keys and types). Unknown keys and
// unparsable values are UsageErrors that name the key and list the valid ones.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace boost::program_options {
class error;
}

namespace mixvae {

struct DataConfig {
  std::string path;               // HDF5 feature file written by `mixvae prepare`
  std::string shuffle = "shard";  // shard: each rank holds and shuffles its shard;
                                  // global: every rank holds the file, identical global batches
};

struct ModelConfig {
  std::string name = "vade";
  int64_t clusters = 10;  // K
  int64_t latent = 10;    // J
  std::string hidden = "500,500,2000";
  std::string likelihood = "auto";  // auto | bernoulli | gaussian
  double recon_weight = 1.0;        // alpha_rec of VaDE's config_init
  double logvar_clamp = 10.0;       // |log sigma^2| bound, encoder and mixture
  std::string init = "gmm";         // mixture initialisation: gmm | kmeans | umap
  int64_t init_iters = 200;         // EM iterations (Lloyd for kmeans)
  int64_t init_restarts = 1;        // k-means++ restarts, best by objective
  int64_t init_fits = 1;            // init = gmm | umap: independent GMM fits, highest likelihood kept
  int64_t umap_neighbors = 15;      // init = umap: k of the neighbour graph (UMAP's n_neighbors)
  int64_t umap_epochs = 0;          // init = umap: layout epochs, 0 = UMAP's default (200 above 10k rows)
  std::string umap_init = "pca";    // init = umap: the layout's start, pca | spectral
};

struct TrainConfig {
  int64_t epochs = 300;
  int64_t batch_size = 100;  // global batch: each rank takes its share
  double lr = 0.002;
  double lr_mixture = 0.002;
  double lr_decay = 0.9;
  int64_t lr_decay_every = 10;
  double lr_floor = 0.0002;
  double adam_eps = 1e-4;
  std::string adam = "fused";      // fused (one-pass update on CPU, _foreach_ on GPU) | torch, every stage
  std::string precision = "fp32";  // fp32 | bf16: the networks' matrix products (master weights stay fp32)
  uint64_t seed = 0;
  int64_t eval_every = 1;
  int64_t threads = 0;                // intra-op threads; 0 = cores / local ranks
  double collapse_warn = 0.9;         // warn when one cluster holds more than this fraction
  int64_t divergence_retries = 2;     // NaN/Inf loss: roll back to the last checkpoint this often
  double divergence_lr_factor = 0.5;  // ... each time multiplying every learning rate by this
};

struct PretrainConfig {
  int64_t epochs = 10;
  int64_t batch_size = 100;
  double lr = 0.001;
  double adam_eps = 1e-8;
  // Denoising pretraining: the probability that an input entry is zeroed (0: a plain
  // autoencoder, as the VaDE reference's weight files record; DEC's stacked AE used 0.2).
  double input_dropout = 0;
};

struct DistConfig {
  double bucket_mb = 16.0;       // gradient bucket size for the all-reduce
  bool overlap = false;          // all-reduce finished buckets while backward() runs (MPI, CPU)
  std::string device = "auto";   // auto (a GPU when LibTorch has CUDA and one is visible) | cpu | cuda
  std::string backend = "auto";  // auto (NCCL for GPU tensors, MPI otherwise) | mpi | nccl
  double timeout_s = 600;        // a device collective that takes longer ends the job (0: never)
};

struct CheckpointConfig {
  int64_t every = 1;  // epochs between checkpoints (0: only at the end)
};

struct OutputConfig {
  std::string dir = "runs/default";
  int64_t samples_per_cluster = 10;
  bool progress = true;
};

// A key of a model's own section ([kdvae], [gmvae], ...). Models declare theirs in the
// model registry (src/models/registry.cpp), which registers them before any config is
// read, so adding a model never touches this file.
struct OptionSpec {
  enum class Type { Int, Double, String, Bool };
  std::string section, key, default_value, help;
  Type type = Type::String;
  std::vector<std::string> choices;  // a String key's allowed values (empty: any)
};
void register_options(const std::vector<OptionSpec>& specs);
const std::vector<OptionSpec>& registered_options();
// The model names `model.name` accepts (filled by the registry; empty: not checked here).
void register_model_name(const std::string& name);
const std::vector<std::string>& registered_model_names();

struct RunConfig {
  DataConfig data;
  ModelConfig model;
  TrainConfig train;
  PretrainConfig pretrain;
  DistConfig dist;
  CheckpointConfig checkpoint;
  OutputConfig output;
  std::string source;  // the INI file this came from, if any
  // Keys set on the command line ("section.key" -> the value as given): a bad value is
  // reported as the flag's, not the file's.
  std::map<std::string, std::string> from_command_line;
  // Values of the registered model sections, "section.key" -> text (validated by type).
  std::map<std::string, std::string> options;

  // A registered option's value (its default when unset); UsageError if the key is unknown.
  int64_t opt_int(const std::string& full_key) const;
  double opt_double(const std::string& full_key) const;
  std::string opt_string(const std::string& full_key) const;
  bool opt_bool(const std::string& full_key) const;

  // Defaults, then `ini_path` (may be empty), then overrides ("--section.key=value" or
  // "section.key=value"). Throws UsageError on unknown keys or bad values.
  static RunConfig load(const std::string& ini_path, const std::vector<std::string>& overrides);
  // The same from INI text (e.g. the config stored in a checkpoint); `origin` names it in errors.
  static RunConfig load_text(const std::string& ini_text, const std::string& origin,
                             const std::vector<std::string>& overrides = {});
  // INI text of every key, fully resolved; load() of it gives back the same config.
  std::string to_ini() const;
  // Stable hash of to_ini() (hex), stored in checkpoints.
  std::string hash() const;
  // "section.key" -> value as to_ini() writes it, for every key of to_ini().
  std::map<std::string, std::string> values() const;
  // Cross-key checks (K >= 2, epochs >= 0, positive learning rates, ...).
  void validate() const;
};

// Every valid "section.key" with its help text, for --help.
std::string config_help();

// Whether a key can change what a run trains (its parameters, hence its scores). The keys
// that cannot say how fast a run goes or what it logs and where: train.threads (like the
// other speed keys, it moves only the last bits of float sums), train.eval_every,
// train.collapse_warn, dist.bucket_mb, dist.overlap, dist.backend, dist.timeout_s and
// [output]. This is the one list of them: a sweep's skip/resume check, --resume's config
// check and the artifact keys (train/pretrain_artifact.cpp, which name only keys that
// change training) all go by it.
bool changes_training(const std::string& full_key);
// The keys that change training whose values differ between a and b ("section.key (a's
// value -> b's value)"), in to_ini() order; empty when a run of a would train what a run
// of b trains.
std::vector<std::string> training_differences(const RunConfig& a, const RunConfig& b);

// Program_options' message for e. Boost 1.74 fills its message templates by replacing a
// placeholder ("%value%", "%invalid_line%", ...) with the input until none is left, so an
// input that contains the placeholder itself never finishes (found by fuzz_ini). When the
// input (everything parsed) has a '%', the message is built here instead, in the same
// words; `values` are the key/value pairs parsed so far.
std::string program_options_message(const boost::program_options::error& e, const std::string& input,
                                    const std::vector<std::pair<std::string, std::string>>& values = {});

}  // namespace mixvae
