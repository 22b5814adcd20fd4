#pragma once
// samples.png: one row per cluster of decoder means drawn from that cluster's prior.
// Square feature vectors (28x28 MNIST) are shown as images, others as near-square tiles
// padded with black; real-valued samples are min-max scaled per cluster.
#include <cstdint>
#include <string>

#include "models/clustering_model.h"

namespace mixvae::train {

// The draws come from a generator derived from `run_seed`: a run's samples.png and
// `mixvae sample` with the run's seed give the same grid.
void write_sample_grid(models::ClusteringModel& model, const std::string& path, int64_t per_cluster, uint64_t run_seed);

}  // namespace mixvae::train
