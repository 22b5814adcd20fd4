#pragma once
// The mixture a model starts from, fitted to the pretrained codes of every rank, as
// `[model] init` says: gmm (a diagonal GMM, init_fits restarts), kmeans (k-means centres,
// unit variances, uniform weights: VaDE's Reuters recipe) or umap (a GMM fitted in a UMAP
// embedding of the codes, its clusters' moments in the codes' space; mixture/umap.h).
// One place for the choice, so that every model with a mixture start (VaDE and the models
// built on it, GMVAE with `gmvae.start = pretrained`) offers the same three.
#include <torch/torch.h>

#include <string>

#include "core/config.h"
#include "dist/communicator.h"
#include "mixture/gmm.h"

namespace mixvae::mixture {

// Collective. `summary` gets one line for the log.
DiagGmm initial_mixture(dist::Communicator& comm, const torch::Tensor& z_local, int64_t k, const RunConfig& cfg,
                        std::string* summary);

}  // namespace mixvae::mixture
