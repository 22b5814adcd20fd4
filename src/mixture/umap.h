#pragma once
// UMAP (McInnes, Healy & Melville 2018, arXiv:1802.03426, §3 and Appendix C) of a point
// cloud, written for one job: starting a mixture from the manifold structure of the
// pretrained codes instead of from Gaussian blobs fitted to the codes themselves, as N2D
// does (McConville et al. 2020: autoencoder, then UMAP, then a GMM). `[model] init = umap`.
//
// Deterministic: the same input, options and seed give the same embedding (one thread for
// the stochastic layout, LibTorch for the neighbour search). Written here rather than taken
// from a library because no C++ UMAP is packaged for Debian 12; the algorithm is the
// paper's, with the reference implementation's published defaults (noted at each constant).
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <utility>

#include "core/config.h"
#include "dist/communicator.h"
#include "mixture/gmm.h"

namespace mixvae::mixture {

struct UmapOptions {
  int64_t neighbors = 15;  // k of the k-nearest-neighbour graph, the point itself counted (UMAP's n_neighbors)
  int64_t dims = 10;       // dimension of the embedding
  int64_t epochs = 0;      // layout epochs; 0: 200 above 10,000 points, else 500 (UMAP's default)
  double min_dist = 0.0;   // 0: clusters packed as tightly as the layout allows (N2D's choice for clustering)
  double spread = 1.0;
  int64_t negatives = 5;  // negative samples per positive one
  // Where the layout starts: "spectral" (UMAP's default: the graph's leading eigenvectors,
  // approximated by subspace iteration) or "pca" (the input's principal components).
  std::string init = "pca";
};

// The k nearest neighbours of every row of x [N, J] among the other rows (exact, Euclidean),
// nearest first: indices [N, k] int64 and distances [N, k] float32.
std::pair<torch::Tensor, torch::Tensor> nearest_neighbours(const torch::Tensor& x, int64_t k);

// The fuzzy simplicial set of x (§3.1): a symmetric weighted graph as a list of directed
// edges (both directions of every pair), heads [E], tails [E] int64, weights [E] float32.
struct FuzzyGraph {
  torch::Tensor heads, tails, weights;
};
FuzzyGraph fuzzy_graph(const torch::Tensor& x, int64_t neighbors);

// a, b of the low-dimensional similarity 1 / (1 + a d^(2b)), least-squares fitted to
// exp(-(d - min_dist) / spread) for d > min_dist (1 below) on [0, 3 spread] (Appendix C).
std::pair<double, double> umap_curve(double min_dist, double spread);

// The start of the layout for `opt.init = spectral`: the eigenvectors 2..dims+1 of the
// graph's normalised adjacency D^-1/2 W D^-1/2 (those of the smallest eigenvalues of the
// normalised Laplacian, after the trivial one), by `iterations` steps of subspace iteration
// on (I + D^-1/2 W D^-1/2) / 2 from a seeded random start, then Rayleigh-Ritz. [N, dims] float64.
torch::Tensor spectral_start(const FuzzyGraph& g, int64_t n, int64_t dims, uint64_t seed, int64_t iterations = 300);

// The embedding [N, dims] float32 of x [N, J] (any N >= 2, dims <= J). The layout starts from
// opt.init (spectral or x's principal components), scaled to [0, 10] per dimension as UMAP does.
torch::Tensor umap_embed(const torch::Tensor& x, const UmapOptions& opt, uint64_t seed);

// The options of `[model] init = umap`: umap_neighbors, umap_epochs, and as many dimensions as
// clusters (N2D's choice).
UmapOptions umap_options(const RunConfig& cfg);

// `[model] init = umap`: the codes of every rank gathered on rank 0, embedded with UMAP, a
// diagonal GMM fitted there (gmm.fits restarts, the highest likelihood kept), and the
// mixture returned is the moments, in the codes' own space, of the clusters that GMM finds
// (its responsibilities as weights), so that a model's latent mixture starts from the
// manifold's clusters. Every rank gets rank 0's result. `summary` (if given) says what was done.
DiagGmm fit_umap_gmm(dist::Communicator& comm, const torch::Tensor& z_local, int64_t k, uint64_t seed,
                     const GmmOptions& gmm, const UmapOptions& umap, std::string* summary = nullptr);

}  // namespace mixvae::mixture
