#include "mixture/kmeans.h"

#include <cmath>
#include <random>
#include <stdexcept>

#include "dist/tensor_ops.h"

namespace mixvae::mixture {
namespace {

// Squared distances [n, K] without forming [n, K, J].
torch::Tensor sq_dist(const torch::Tensor& x, const torch::Tensor& c) {
  auto xx = (x * x).sum(1, true);
  auto cc = (c * c).sum(1).unsqueeze(0);
  return (xx - 2 * x.matmul(c.t()) + cc).clamp_min(0);
}

// Picks a global row with probability proportional to w (local weights per rank) and
// returns it on every rank. `u` in [0,1) is the same on every rank.
torch::Tensor pick_weighted(dist::Communicator& comm, const torch::Tensor& x, const torch::Tensor& w, double u) {
  double local_total = w.sum().item<double>();
  std::vector<double> totals = comm.all_gather_value(local_total);
  double total = 0;
  for (double t : totals) total += t;
  double target = u * total;
  int owner = comm.size() - 1;
  double before = 0;
  for (int r = 0; r < comm.size(); ++r) {
    if (target < before + totals[r] || r == comm.size() - 1) {
      owner = r;
      break;
    }
    before += totals[r];
  }
  const int64_t j = x.size(1);
  torch::Tensor row = torch::zeros({j}, x.options().dtype(torch::kFloat64));
  if (comm.rank() == owner && x.size(0) > 0) {
    auto cum = w.cumsum(0);
    double t = target - before;
    int64_t idx = torch::searchsorted(cum, torch::tensor({t}, cum.options()), /*out_int32=*/false, /*right=*/true)
                      .item<int64_t>();
    idx = std::min<int64_t>(idx, x.size(0) - 1);
    // skip zero-weight rows (already chosen points) when rounding lands on one
    while (idx > 0 && w[idx].item<double>() == 0) --idx;
    row.copy_(x[idx]);
  }
  dist::broadcast(comm, row, owner);
  return row;
}

torch::Tensor seed_plus_plus(dist::Communicator& comm, const torch::Tensor& x, int64_t k, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> unif(0.0, 1.0);
  const int64_t n_trials = 2 + static_cast<int64_t>(std::log(double(k)));
  std::vector<torch::Tensor> centers;
  centers.push_back(pick_weighted(comm, x, torch::ones({x.size(0)}, x.options().dtype(torch::kFloat64)), unif(rng)));
  torch::Tensor closest = sq_dist(x, centers[0].unsqueeze(0)).select(1, 0);
  for (int64_t c = 1; c < k; ++c) {
    std::vector<torch::Tensor> cand;
    for (int64_t t = 0; t < n_trials; ++t) cand.push_back(pick_weighted(comm, x, closest, unif(rng)));
    torch::Tensor cands = torch::stack(cand);                                   // [T, J]
    torch::Tensor d = torch::minimum(sq_dist(x, cands), closest.unsqueeze(1));  // [n, T]
    torch::Tensor pot = d.sum(0).contiguous();                                  // [T]
    dist::all_reduce(comm, pot);
    int64_t best = pot.argmin().item<int64_t>();
    centers.push_back(cands[best]);
    closest = d.select(1, best).contiguous();
  }
  return torch::stack(centers);
}

}  // namespace

torch::Tensor nearest(const torch::Tensor& x, const torch::Tensor& centers) {
  return sq_dist(x.to(torch::kFloat64), centers.to(torch::kFloat64)).argmin(1);
}

KMeansResult kmeans(dist::Communicator& comm, const torch::Tensor& x_local, int64_t k, uint64_t seed, int64_t iters,
                    int64_t restarts, double tol) {
  torch::NoGradGuard ng;
  torch::Tensor x = x_local.to(torch::kFloat64).contiguous();
  const int64_t j = x.size(1);
  int64_t n_total = comm.all_reduce_value<int64_t>(x.size(0));
  if (n_total < k) throw std::invalid_argument("k-means: fewer samples than clusters");
  // Tolerance relative to the data's mean variance, as scikit-learn does.
  torch::Tensor s = torch::stack({x.sum(0), (x * x).sum(0)});
  dist::all_reduce(comm, s);
  double mean_var = ((s[1] / double(n_total)) - (s[0] / double(n_total)).pow(2)).mean().item<double>();
  double abs_tol = tol * mean_var;

  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ULL + 0x6b6d65616e73ULL);
  KMeansResult best;
  best.inertia = INFINITY;
  for (int64_t r = 0; r < restarts; ++r) {
    torch::Tensor c = seed_plus_plus(comm, x, k, rng);
    int64_t it = 0;
    for (; it < iters; ++it) {
      torch::Tensor assign = sq_dist(x, c).argmin(1);
      torch::Tensor onehot = torch::zeros({x.size(0), k}, x.options().dtype(torch::kFloat64));
      onehot.scatter_(1, assign.unsqueeze(1), 1.0);
      torch::Tensor stats = torch::cat({onehot.sum(0), onehot.t().matmul(x).reshape({-1})});  // [K + K*J]
      dist::all_reduce(comm, stats);
      torch::Tensor counts = stats.slice(0, 0, k);
      torch::Tensor sums = stats.slice(0, k).view({k, j});
      // An empty cluster keeps its centre.
      torch::Tensor nonempty = (counts > 0).unsqueeze(1);
      torch::Tensor next = torch::where(nonempty, sums / counts.clamp_min(1).unsqueeze(1), c);
      double shift = (next - c).pow(2).sum().item<double>();
      c = next;
      if (shift <= abs_tol) {
        ++it;
        break;
      }
    }
    double inertia = std::get<0>(sq_dist(x, c).min(1)).sum().item<double>();
    inertia = comm.all_reduce_value(inertia);
    if (inertia < best.inertia) {
      best.centers = c;
      best.inertia = inertia;
      best.iterations = it;
    }
  }
  return best;
}

}  // namespace mixvae::mixture
