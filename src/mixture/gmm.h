#pragma once
// Diagonal Gaussian mixture fitted by EM from all-reduced sufficient statistics
// (N_k = sum gamma, S1 = sum gamma z, S2 = sum gamma z^2), so the fit is the same on
// any number of ranks. Initialised from k-means, as scikit-learn's GaussianMixture.
#include <torch/torch.h>

#include "dist/communicator.h"

namespace mixvae::mixture {

struct DiagGmm {
  torch::Tensor weights;           // [K]    float64, sums to 1
  torch::Tensor means;             // [K, J] float64
  torch::Tensor variances;         // [K, J] float64, >= reg_covar
  double mean_log_likelihood = 0;  // per sample, all ranks
  int64_t iterations = 0;
  bool converged = false;
};

struct GmmOptions {
  int64_t max_iters = 200;
  double tol = 1e-3;        // on the change of the mean log-likelihood
  double reg_covar = 1e-6;  // variance floor added in the M-step
  int64_t kmeans_restarts = 1;
  // Independent fits, each from its own k-means++ start (seeds derived from `seed`); the
  // one with the highest mean log-likelihood is kept (scikit-learn's n_init).
  int64_t fits = 1;
};

DiagGmm fit_diag_gmm(dist::Communicator& comm, const torch::Tensor& x_local, int64_t k, uint64_t seed,
                     const GmmOptions& opt = {});

// The seed of fit f (0-based) of GmmOptions::fits: fit 0 uses `seed` itself.
inline uint64_t gmm_fit_seed(uint64_t seed, int64_t f) { return seed + 0x9E3779B97F4A7C15ULL * uint64_t(f); }

// The mixture whose components are the moments of x_local's rows weighted by resp_local
// [n, K] (one M-step; statistics summed over all ranks).
DiagGmm gmm_from_responsibilities(dist::Communicator& comm, const torch::Tensor& x_local,
                                  const torch::Tensor& resp_local, double reg_covar = 1e-6);

// log p(x, c) for every component: [n, K] float64.
torch::Tensor log_joint(const DiagGmm& g, const torch::Tensor& x);

}  // namespace mixvae::mixture
