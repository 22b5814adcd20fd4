#pragma once
// The rows a rank trains and evaluates on, as tensors, and the batch plan of an epoch.
//
// shard mode:  the rank reads rows [r*N/W, (r+1)*N/W) only, shuffles them with a seed of
//              (seed, stage, epoch, rank), and each step takes its proportional share of
//              the global batch, which is exactly train.batch_size at any world size.
// global mode: every rank reads the whole file; one permutation of (seed, stage, epoch)
//              is cut into global batches and rank r takes its slice of each, so the
//              training is the same at any world size (up to summation order).
// Either way a rank evaluates exactly its rows [r*N/W, (r+1)*N/W): every sample once.
#include <torch/torch.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/config.h"
#include "dist/communicator.h"

namespace mixvae::train {

struct TrainData {
  std::string path, name;
  torch::Tensor x;  // [local rows, D] float32
  torch::Tensor y;  // [local rows] int64, undefined without labels
  int64_t n_global = 0, d = 0, num_classes = 0;
  bool global_mode = false;
  bool unit_interval = true;                        // every feature in [0,1] (all ranks agree)
  std::vector<std::pair<int64_t, int64_t>> shards;  // every rank's global row range
  int64_t eval_begin = 0, eval_end = 0;             // local rows this rank evaluates
};

// Collective: validates the file on every rank (same error everywhere, see dist::agree).
TrainData load_train_data(dist::Communicator& comm, const RunConfig& cfg);

struct StepSlice {
  torch::Tensor rows;          // local row indices of this rank's part of the batch
  int64_t global_rows = 0;     // size of the global batch
  int64_t begin = 0, end = 0;  // this rank's rows within the global batch (global mode)
};

class EpochPlan {
 public:
  EpochPlan(const TrainData& data, int rank, int world, int64_t batch_size, uint64_t seed);
  int64_t steps() const { return steps_; }
  StepSlice step(int64_t s) const;
  bool global_mode() const { return global_; }

 private:
  bool global_;
  int rank_, world_;
  int64_t batch_, steps_, n_;
  std::vector<int64_t> local_sizes_;  // shard mode: every rank's rows to plan
  torch::Tensor perm_;                // this rank's rows in the order they are trained
  // Shard mode: the slots the shares are taken over start at slot0_ (0, or the slots a
  // stopped epoch had already trained) and number slots_ (n_, or what was left).
  int64_t slot0_ = 0, slots_ = 0;
  friend EpochPlan epoch_plan(const TrainData&, int, int, int64_t, const std::function<uint64_t(int)>&, int64_t, int);
};

// The plan of an epoch on `world` ranks whose rank r shuffles with seed_of(r) (global mode:
// seed_of(0) for all). done_steps > 0 continues an epoch stopped after that many steps by
// `from_world` ranks (a mid-epoch checkpoint's step and world_size): with the same world,
// the same plan (its steps from done_steps on); with another world in shard mode, the rows
// the stopped ranks had not reached are re-planned for the new ranks (each rank takes
// those of its own shard), so that every row of the epoch is still trained exactly once
// and every remaining global batch keeps its size (steps() is unchanged). Global mode's
// batches do not depend on the ranks, so nothing changes there.
EpochPlan epoch_plan(const TrainData& data, int rank, int world, int64_t batch_size,
                     const std::function<uint64_t(int rank)>& seed_of, int64_t done_steps = 0, int from_world = 0);

// Fisher-Yates with a splitmix64 stream: the same permutation on every platform.
std::vector<int64_t> permutation(int64_t n, uint64_t seed);

}  // namespace mixvae::train
