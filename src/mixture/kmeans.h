#pragma once
// Distributed k-means++ seeding and Lloyd iterations. Each rank passes its own rows; the
// result is the same on any number of ranks (up to floating-point summation order),
// because every random draw comes from one generator shared by all ranks and every
// statistic is a sum.
#include <torch/torch.h>

#include "dist/communicator.h"

namespace mixvae::mixture {

struct KMeansResult {
  torch::Tensor centers;  // [K, J] float64
  double inertia = 0;     // sum of squared distances to the nearest centre, all ranks
  int64_t iterations = 0;
};

// x_local: [n_local, J] (any float dtype; computed in float64). Ranks' rows, in rank
// order, form the global data set. Greedy k-means++ (2 + ln K candidates per centre, as
// scikit-learn), then Lloyd until the centres move less than tol (relative) or `iters`.
KMeansResult kmeans(dist::Communicator& comm, const torch::Tensor& x_local, int64_t k, uint64_t seed,
                    int64_t iters = 300, int64_t restarts = 1, double tol = 1e-4);

// Index of the nearest centre for each row: [n] int64.
torch::Tensor nearest(const torch::Tensor& x, const torch::Tensor& centers);

}  // namespace mixvae::mixture
