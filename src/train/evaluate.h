#pragma once
// Evaluation on every rank's own rows (each sample counted once), reduced to one
// contingency table and mixture-health figures on every rank.
#include <torch/torch.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "dist/communicator.h"
#include "eval/metrics.h"
#include "models/clustering_model.h"
#include "train/train_data.h"

namespace mixvae::train {

struct EvalResult {
  bool has_labels = false;
  eval::Scores scores{};
  std::vector<int64_t> occupancy;  // samples per cluster, all ranks
  int64_t empty_clusters = 0;
  double largest_fraction = 0;  // share of the largest cluster
  double mean_entropy = 0;      // mean posterior entropy H[q(c|x)] in nats
  int64_t samples = 0;
  // With labels: the K x C cluster-by-class counts (row k = cluster k). With
  // scores.cluster_class (the matching behind ACC) they show which classes a run merged
  // or split, which ACC alone hides.
  std::vector<std::vector<int64_t>> contingency;
  // The label-free selection score (ClusteringModel::selection_score): its mean per row
  // over every rank's rows, higher = better. Only when evaluate() was asked for it.
  struct Selection {
    std::string criterion;
    double value = 0;
    bool higher_is_better = true;
  };
  std::optional<Selection> selection;
};

// The seed of the selection score's noise: fixed, not the run's seed, so that runs of
// different seeds are scored on the same draws.
constexpr uint64_t kSelectionNoiseSeed = 0x5e1ec7105eedULL;

// Per-row results of this rank's evaluation rows, in their order (`mixvae eval
// --assignments`): the assigned cluster, q(c|x) and the model's embedding (embed(): the
// latent mean; k-DVAE/k-DAE: that of the model they started from).
struct RowResults {
  torch::Tensor cluster;    // [n] int64
  torch::Tensor posterior;  // [n, K] float32
  torch::Tensor embedding;  // [n, J] float32
};

// `rows`, when given, receives this rank's per-row results (on the CPU).
// batch 0: the model's eval_batch_rows(). The rows go through the model in blocks of
// `batch` rows of the whole data set (a rank's first and last blocks may be partial), so
// that `selection` (the final evaluation of a run) scores every row with the same noise
// at any world size: block b draws from a generator seeded by (kSelectionNoiseSeed, b)
// for all its rows and each rank keeps its own (models::Noise, as a global-mode step).
EvalResult evaluate(dist::Communicator& comm, models::ClusteringModel& model, const TrainData& data, int64_t batch = 0,
                    RowResults* rows = nullptr, bool selection = false);

// fn applied to x in chunks of `batch` rows without gradients, results concatenated
// along dim 0 (`empty` when x has no rows).
torch::Tensor map_rows(const torch::Tensor& x, int64_t batch,
                       const std::function<torch::Tensor(const torch::Tensor&)>& fn, const torch::Tensor& empty);

}  // namespace mixvae::train
