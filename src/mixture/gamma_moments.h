#pragma once
// A Gamma mixture initialised by the method of moments (shared/papers/models-math.md §2.5):
// given responsibilities of every sample for K clusters (one-hot k-means assignments or
// GMM posteriors), the per-cluster mean m and variance v of the positive codes give
// shape a = m^2 / v and rate b = m / v, and the cluster fractions give pi. The moments
// come from sufficient statistics (N_k = sum r, S1 = sum r z, S2 = sum r z^2) all-reduced
// over the ranks, so the fit is the same on any number of ranks.
#include <torch/torch.h>

#include "dist/communicator.h"

namespace mixvae::mixture {

struct GammaMixture {
  torch::Tensor weights;    // [K]    float64, sums to 1
  torch::Tensor shapes;     // [K, J] float64, a
  torch::Tensor rates;      // [K, J] float64, b
  torch::Tensor means;      // [K, J] float64, the moments before clamping
  torch::Tensor variances;  // [K, J] float64
};

struct GammaMomentOptions {
  double var_floor = 1e-6;  // added to every variance (as the GMM's reg_covar)
  double min_param = 1e-3;  // a, b >= this (§2.6)
  double max_param = 1e3;   // a, b <= this (§2.6)
};

// This rank's statistics [K + 2KJ] float64: N_k, then S1 and S2 row-major.
torch::Tensor moment_statistics(const torch::Tensor& z, const torch::Tensor& resp);

// The mixture from global statistics (the sum of every rank's moment_statistics).
// Clusters with no mass take the moments of all the data. Out-of-range parameters are
// scaled together (a and b by the same factor keeps the mean a/b and changes only the
// variance) before a final clamp.
GammaMixture gamma_from_statistics(const torch::Tensor& stats, int64_t k, int64_t j,
                                   const GammaMomentOptions& opt = {});

// Collective: every rank passes its own codes z_local [n, J] (positive) and
// responsibilities resp_local [n, K]; one all-reduce of the statistics.
GammaMixture fit_gamma_moments(dist::Communicator& comm, const torch::Tensor& z_local, const torch::Tensor& resp_local,
                               const GammaMomentOptions& opt = {});

}  // namespace mixvae::mixture
