#pragma once
// samples.png: one row per cluster of decoder means drawn from that cluster's prior.
// Square feature vectors (28x28 MNIST) are shown as images, others as near-square tiles
// padded with black; real-valued samples are min-max scaled per cluster.
#include <cstdint>
#include <string>

#include "models/clustering_model.h"

namespace mixvae::train {

void write_sample_grid(models::ClusteringModel& model, const std::string& path, int64_t per_cluster, uint64_t seed);

}  // namespace mixvae::train
