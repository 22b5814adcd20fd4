// Where `[model] init = umap` spends its time, phase by phase, on codes written as raw
// float32 rows (for example an autoencoder's latent means on all of MNIST):
//   build/tests/mixvae_umap_phases CODES.f32 ROWS COLS [THREADS] [CLUSTERS]
// Prints seconds per phase and a checksum of the embedding (to confirm that a faster path
// gives the same layout). Never run by CTest; the figures go to docs/performance.md.
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "dist/communicator.h"
#include "mixture/gmm.h"
#include "mixture/umap.h"

using namespace mixvae;

namespace {
double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s CODES.f32 ROWS COLS [THREADS] [CLUSTERS]\n", argv[0]);
    return 2;
  }
  const int64_t n = std::stoll(argv[2]), j = std::stoll(argv[3]);
  const int threads = argc > 4 ? std::stoi(argv[4]) : 1;
  const int64_t k = argc > 5 ? std::stoll(argv[5]) : 10;
  at::set_num_threads(threads);
  std::vector<float> buf(size_t(n * j));
  std::ifstream in(argv[1], std::ios::binary);
  if (!in.read(reinterpret_cast<char*>(buf.data()), std::streamsize(buf.size() * sizeof(float)))) {
    std::fprintf(stderr, "%s: cannot read %lld x %lld floats\n", argv[1], (long long)n, (long long)j);
    return 2;
  }
  torch::Tensor x = torch::from_blob(buf.data(), {n, j}, torch::kFloat32).clone();
  mixture::UmapOptions opt;
  opt.dims = std::min(k, j);

  auto t0 = std::chrono::steady_clock::now();
  auto knn = mixture::nearest_neighbours(x, opt.neighbors - 1);
  std::printf("knn      %8.2f s\n", since(t0));
  t0 = std::chrono::steady_clock::now();
  auto g = mixture::fuzzy_graph(x, opt.neighbors);
  std::printf("graph    %8.2f s (knn included, %lld edges)\n", since(t0), (long long)g.heads.size(0));
  t0 = std::chrono::steady_clock::now();
  torch::Tensor e = mixture::umap_embed(x, opt, 0);
  const double t_embed = since(t0);
  std::printf("embed    %8.2f s (graph included)\n", t_embed);
  std::printf("checksum %.9g %.9g\n", e.to(torch::kFloat64).sum().item<double>(),
              e.to(torch::kFloat64).pow(2).sum().item<double>());
  auto self = dist::make_self_communicator();
  mixture::GmmOptions gopt;
  gopt.fits = 10;
  t0 = std::chrono::steady_clock::now();
  auto gmm = mixture::fit_diag_gmm(*self, e, k, 0, gopt);
  std::printf("gmm x10  %8.2f s (mean log-likelihood %.6f)\n", since(t0), gmm.mean_log_likelihood);
  return 0;
}
