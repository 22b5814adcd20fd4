#pragma once
// HDF5 checkpoints: parameters, optimiser state, the recipe position and the resolved
// config, with a SHA-256 over every stored tensor. Written atomically (temporary file,
// fsync, rename, fsync of the directory), so a crash mid-write leaves the previous
// checkpoint intact; a checkpoint whose checksum does not match is refused, and a resume
// falls back to the previous checkpoint (kept as checkpoint.prev.h5 by every save).
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "models/clustering_model.h"

namespace mixvae::train {

struct CheckpointMeta {
  int64_t stage_index = 0;  // recipe position: stage to run next ...
  int64_t epoch = 0;        // ... and epochs of it already done
  std::string stage_name;
  std::string model;
  int64_t input_dim = 0;
  bool bernoulli = true;
  std::string dataset;     // dataset name attribute of the training file
  std::string config_ini;  // fully resolved config
  std::string config_hash;
  // The data file as an absolute path, resolved where the run was started (config_ini keeps
  // data.path as the user wrote it, which may be relative to that folder). "" in
  // checkpoints written before it was recorded.
  std::string data_file;
  int64_t world_size = 1;
  // Mid-epoch position (a stop at a step boundary): `step` steps of epoch `epoch` + 1 are
  // done; the epoch's running sums (global, over all ranks) let the resumed run log the
  // same epoch loss. step = 0: at an epoch boundary.
  int64_t step = 0;
  int64_t epoch_seen = 0;
  double epoch_loss_sum = 0;
  std::vector<double> epoch_part_sums;
  // Divergence rollbacks so far and the learning-rate factor they left (1: none).
  double lr_scale = 1.0;
  int64_t rollbacks = 0;
};

// opt may be null (no optimiser state between stages).
void save_checkpoint(const std::string& path, torch::nn::Module& model, torch::optim::Adam* opt,
                     const CheckpointMeta& meta);

// Reads only the metadata (to build the model before loading it). DataError on a
// missing, truncated or foreign file.
CheckpointMeta read_checkpoint_meta(const std::string& path);

// The start of the `model` field of a seed ensemble's checkpoint (train --seeds):
// "vade-ensemble seeds=0,1,...". It holds S stacked models, not one.
inline constexpr const char* kEnsembleModelTag = "vade-ensemble";

// Where save_checkpoint keeps the checkpoint it replaced: "checkpoint.prev.h5".
std::string previous_checkpoint_path(const std::string& path);
// Reads a checkpoint completely and checks its checksum; DataError naming the problem.
void verify_checkpoint(const std::string& path);
// UsageError "--resume: no checkpoint at PATH" unless PATH or its previous checkpoint
// exists. Checked before a resumed run creates any folder, so a mistyped --output.dir
// leaves nothing behind.
void require_checkpoint(const std::string& path);
// The checkpoint to resume from: `path` when open(path) succeeds, else the previous one
// (the damaged file is renamed to *.damaged.h5 and `note` says why). `open` is whatever
// the caller reads it for (loading it: one read, not a check and then a load); a DataError
// from it means "damaged". UsageError when there is neither file; DataError when neither
// opens.
std::string usable_checkpoint(const std::string& path, std::string* note,
                              const std::function<void(const std::string&)>& open = verify_checkpoint);

// Loads parameters (and optimiser state when opt is given and the file has it) after
// verifying the checksum and that every parameter is present with the right shape.
CheckpointMeta load_checkpoint(const std::string& path, torch::nn::Module& model, torch::optim::Adam* opt);

}  // namespace mixvae::train
