#include "mixture/initial.h"

#include <sstream>

#include "mixture/kmeans.h"
#include "mixture/umap.h"

namespace mixvae::mixture {

DiagGmm initial_mixture(dist::Communicator& comm, const torch::Tensor& z_local, int64_t k, const RunConfig& cfg,
                        std::string* summary) {
  torch::NoGradGuard ng;
  std::ostringstream msg;
  DiagGmm g;
  if (cfg.model.init == "kmeans") {
    KMeansResult km = kmeans(comm, z_local, k, cfg.train.seed, cfg.model.init_iters, cfg.model.init_restarts);
    g.means = km.centers.to(torch::kFloat64);
    g.variances = torch::ones_like(g.means);
    g.weights = torch::full({k}, 1.0 / double(k), torch::kFloat64);
    g.iterations = km.iterations;
    g.converged = true;
    msg << "k-means: " << km.iterations << " Lloyd iterations, inertia " << km.inertia;
  } else {
    GmmOptions opt;
    opt.max_iters = cfg.model.init_iters;
    opt.kmeans_restarts = cfg.model.init_restarts;
    opt.fits = cfg.model.init_fits;
    if (cfg.model.init == "umap") {
      std::string how;
      g = fit_umap_gmm(comm, z_local, k, cfg.train.seed, opt, umap_options(cfg), &how);
      msg << how;
    } else {
      g = fit_diag_gmm(comm, z_local, k, cfg.train.seed, opt);
      msg << "diagonal GMM: " << g.iterations << " EM iterations, mean log-likelihood " << g.mean_log_likelihood
          << (g.converged ? "" : " (not converged)");
    }
  }
  if (summary) *summary = msg.str();
  return g;
}

}  // namespace mixvae::mixture
