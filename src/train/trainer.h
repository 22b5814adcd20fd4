#pragma once
// Runs a model's recipe (pretrain -> mixture init -> main objective) on the ranks of a
// Communicator; rank 0 writes the run directory (config.ini, metrics.jsonl, result.json,
// checkpoint.h5, samples.png).
#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/errors.h"
#include "dist/communicator.h"
#include "dist/grad_reducer.h"
#include "models/clustering_model.h"
#include "models/noise.h"
#include "train/checkpoint.h"
#include "train/evaluate.h"
#include "train/pretrain_artifact.h"
#include "train/train_data.h"

namespace mixvae::train {

struct TrainResult {
  EvalResult eval;
  double loss = 0;
  double seconds = 0;
  int64_t epochs = 0;
};

// auto -> bernoulli for data in [0,1], gaussian otherwise.
bool use_bernoulli(const RunConfig& cfg, bool unit_interval);

// Sets LibTorch's thread count (train.threads, else the cores per local rank) and flushes
// denormals on every thread; returns the thread count.
int configure_cpu(const RunConfig& cfg);
// [train]'s step decay: max(min(lr_floor, base), base * lr_decay^floor(epoch / lr_decay_every)).
double decayed_lr(const RunConfig& cfg, double base, int64_t epoch);
// The noise of step `step` of a run with `seed` (models/noise.h): the generator is seeded
// from (seed, stage, epoch, step[, rank]); in global mode it draws for the whole global
// batch and this rank keeps its rows, in shard mode for this rank's rows. A batched
// ensemble member calls it with its own seed, so it draws what its separate run draws.
models::Noise step_noise(uint64_t seed, int64_t stage_index, int64_t epoch, int64_t step, const StepSlice& sl,
                         const TrainData& data, int rank, torch::Device device);
// Keeps the lines of DIR/metrics.jsonl up to (stage_index, epoch), so that epochs replayed
// after a resume or rollback appear once.
void keep_metrics_lines(const std::string& dir, int64_t stage_index, int64_t epoch);

// The checkpoint metadata of a run of `cfg` on `data` at (stage_index, epoch); `mid`, when
// given, supplies the mid-epoch fields (and is otherwise copied).
CheckpointMeta checkpoint_meta(const RunConfig& cfg, const std::string& model, const TrainData& data, bool bernoulli,
                               int world_size, int64_t stage_index, const std::string& stage_name, int64_t epoch,
                               const CheckpointMeta* mid = nullptr);
// --resume of the checkpoint at `path` (metadata `meta`) by a run of `cfg`: UsageError,
// one line naming them, when keys that change training (changes_training, core/config.h)
// have other values than the checkpoint was trained with. data.path is not compared as
// text (a requeued job may read the same file through another path); the file is checked
// by its dataset name and dimension instead. The world size may differ (see epoch_plan).
void check_resume_config(const std::string& path, const CheckpointMeta& meta, const RunConfig& cfg);
// What a checkpoint written after stage si of `recipe` names as the next stage: that
// stage's name, or "done" after the last.
std::string next_stage_name(const std::vector<models::Stage>& recipe, int64_t si);
// Never a NaN checkpoint: DivergedError naming (stage_name, epoch) when a parameter of
// `model` is NaN/Inf (checked once per checkpoint, not every step).
void check_finite(torch::nn::Module& model, const std::string& stage_name, int64_t epoch);

// What result.json records besides the model, the data and the scores.
struct RunRecord {
  int world_size = 1;
  std::string pretrain_artifact;
  std::map<std::string, std::string> artifacts;
  std::vector<double> peak_rss_per_rank;
  std::string device;
  std::vector<uint64_t> ensemble_seeds;  // non-empty: trained in one process with these seeds (train/ensemble.h)
};

class Trainer {
 public:
  Trainer(dist::Communicator& comm, RunConfig cfg);
  // resume: continue from output.dir/checkpoint.h5 (an error if there is none).
  TrainResult run(bool resume);

  // Stop (with a checkpoint, as if killed) after this many epochs of the main objective;
  // 0 = run to the end. Used by the resume tests.
  void set_stop_after_main_epochs(int64_t epochs) { stop_after_ = epochs; }
  models::ClusteringModel& model() { return *model_; }
  // Called on every rank before every training step (a sweep's coordinator serves its
  // queue there; a hook may call signals::request_stop()).
  void set_step_hook(std::function<void()> hook) { step_hook_ = std::move(hook); }
  // Folder of artifacts (train/pretrain_artifact.h): a pretraining stage, or a stage that
  // models share (Stage::artifact, e.g. VaDE's ELBO stage in k-DVAE), loads its result
  // from there when present and saves it there otherwise. "" = off.
  void set_pretrain_cache(std::string dir) { artifact_dir_ = std::move(dir); }
  // Where a stage's result came from: "" (trained here, no artifact dir), "saved:<file>"
  // or "reused:<file>"; by family ("vade-ae": the pretrained autoencoder, "vade", ...).
  const std::string& artifact(const std::string& family) const;
  const std::string& pretrain_artifact() const;

 private:
  dist::Communicator& comm_;
  RunConfig cfg_;
  TrainData data_;
  std::shared_ptr<models::ClusteringModel> model_;
  bool bernoulli_ = true;
  torch::Device device_ = torch::kCPU;
  std::unique_ptr<dist::Communicator> nccl_;  // GPU collectives (NCCL) over comm_, when used
  // The communicator for tensor collectives: NCCL for GPU tensors when available, else comm_.
  dist::Communicator& tcomm() { return nccl_ ? *nccl_ : comm_; }
  int64_t stop_after_ = 0;
  // Where this rank's last epoch went (seconds): data + forward + backward, the gradient
  // all-reduce (including waiting for slower ranks), the optimiser step. On a GPU the
  // asynchronous optimiser kernels are counted in the next step's compute.
  struct EpochTimes {
    double compute = 0, all_reduce = 0, optimizer = 0;
  } times_;
  double start_time_ = 0;
  std::function<void()> step_hook_;
  std::map<std::string, std::string> artifacts_;  // family -> "saved:<file>" | "reused:<file>" | "from:<checkpoint>"
  std::string artifact_dir_;
  double lr_scale_ = 1.0;  // divergence rollbacks multiply every learning rate by train.divergence_lr_factor
  int64_t rollbacks_ = 0;
  std::vector<LockFile> artifact_locks_;  // rank 0: the artifacts this run makes (pretrain_artifact.h)
  int64_t mixed_world_stage_ = -1;        // a resumed stage begun on another number of ranks: its artifact is not saved

  // `mid`, when given, is a checkpoint taken inside this epoch: its steps are skipped and
  // its running sums continued. A stop request agreed by all ranks ends the epoch after
  // the current step with a checkpoint and a PreemptedError.
  double run_epoch(const models::Stage& stage, int64_t stage_index, int64_t epoch, torch::optim::Adam& opt,
                   dist::GradReducer& reducer, std::vector<double>* part_sums, std::vector<std::string>* part_names,
                   const CheckpointMeta* mid);
  // The artifact family of a stage ("" for none).
  std::string family_of(const models::Stage& stage) const;
  // The key and tensors of a stage's artifact; false when it has none (or no artifact dir).
  bool artifact_of(const models::Stage& stage, int64_t stage_index, PretrainKey* key,
                   std::vector<torch::Tensor>* params);
  // The model's start_from(): load_start_from checks the finished run's checkpoint and
  // loads its parameters in place of the stages up to the one they replace (returns its
  // path, "" when the model starts from nothing); start_from_run then logs and
  // checkpoints that and returns the first stage left to train (0 for "").
  std::string load_start_from();
  int64_t start_from_run(const std::vector<models::Stage>& recipe, const std::string& path);
  // True when the stage's result was loaded from the artifact dir (then it is skipped).
  bool reuse_artifact(const models::Stage& stage, int64_t stage_index);
  void save_artifact(const models::Stage& stage, int64_t stage_index);
  std::unique_ptr<torch::optim::Adam> make_optimizer(const models::Stage& stage);
  void set_learning_rates(const models::Stage& stage, int64_t epoch, torch::optim::Adam& opt);
  void write_checkpoint(int64_t stage_index, const std::string& stage_name, int64_t epoch, torch::optim::Adam* opt,
                        const CheckpointMeta* mid = nullptr);
  void write_outputs(const TrainResult& r);
  void write_outputs_rank0(const TrainResult& r, const std::vector<double>& peak_rss_per_rank);  // MiB per rank
  // A NaN/Inf loss: reloads nothing itself, but checks that a rollback is allowed and
  // possible, lowers the learning rates and returns the checkpoint to continue from;
  // rethrows (with the reason) when not.
  CheckpointMeta roll_back(const DivergedError& d, int64_t stage_index, std::string* ckpt_inout);
  // metrics.jsonl keeps the lines up to (stage_index, epoch), so replayed epochs appear once.
  void keep_metrics_until(int64_t stage_index, int64_t epoch);
  void log_metrics(const std::string& json_line);
  // Runs fn on rank 0 only, with its outcome agreed: a write that fails there (a full disk,
  // a removed directory) ends every rank with the same one-line error instead of leaving
  // the others in the next collective. Every rank must call it at the same point.
  template <class Fn>
  void on_rank0(Fn&& fn) {
    dist::agree(comm_, [&] {
      if (comm_.rank() == 0) fn();
    });
  }
};

// Sets `key` to `json_value` (JSON text) in the last line of DIR/metrics.jsonl, the line of
// the stage that produced the final model, replacing the key if an earlier finish set it.
void add_to_last_metrics_line(const std::string& dir, const std::string& key, const std::string& json_value);

// Writes cfg.output.dir/result.json and samples.png of a finished run (rank 0 only), and
// the final evaluation's selection score (r.eval.selection) into result.json and the
// last line of metrics.jsonl.
void write_run_outputs(const RunConfig& cfg, models::ClusteringModel& model, const TrainData& data,
                       const TrainResult& r, const RunRecord& rec);

}  // namespace mixvae::train

namespace mixvae::train {
// Rebuilds the model a checkpoint was written by and loads its parameters. cfg receives
// the checkpoint's config (with `overrides` applied). The process-wide matmul precision is
// the caller's: eval and sample set cfg->train.precision (the run's own), a training run
// that starts from the checkpoint keeps its own. meta, when given, receives the
// checkpoint's metadata (eval uses its data_file).
std::shared_ptr<models::ClusteringModel> model_from_checkpoint(const std::string& path, RunConfig* cfg,
                                                               const std::vector<std::string>& overrides = {},
                                                               CheckpointMeta* meta = nullptr);
}  // namespace mixvae::train
