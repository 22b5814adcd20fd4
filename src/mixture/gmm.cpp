#include "mixture/gmm.h"

#include <cmath>
#include <stdexcept>
#include <utility>

#include "dist/tensor_ops.h"
#include "mixture/kmeans.h"

namespace mixvae::mixture {
namespace {
constexpr double kLog2Pi = 1.8378770664093453;

// M-step from responsibilities: the sufficient statistics are summed over all ranks in
// one all-reduce of [K + 2KJ] doubles.
void m_step(dist::Communicator& comm, const torch::Tensor& x, const torch::Tensor& resp, int64_t n_total, double reg,
            DiagGmm& g) {
  const int64_t k = resp.size(1), j = x.size(1);
  torch::Tensor stats =
      torch::cat({resp.sum(0), resp.t().matmul(x).reshape({-1}), resp.t().matmul(x * x).reshape({-1})});
  dist::all_reduce(comm, stats);
  torch::Tensor nk = stats.slice(0, 0, k) + 10 * std::numeric_limits<double>::epsilon();
  torch::Tensor s1 = stats.slice(0, k, k + k * j).view({k, j});
  torch::Tensor s2 = stats.slice(0, k + k * j).view({k, j});
  g.means = s1 / nk.unsqueeze(1);
  g.variances = (s2 / nk.unsqueeze(1) - g.means.pow(2)).clamp_min(0) + reg;
  g.weights = nk / double(n_total);
  g.weights = g.weights / g.weights.sum();
}
}  // namespace

torch::Tensor log_joint(const DiagGmm& g, const torch::Tensor& x64) {
  torch::Tensor x = x64.to(torch::kFloat64);
  // -0.5 * [J log 2pi + sum log var + sum (x - mu)^2 / var] + log w, expanded so that
  // nothing of size [n, K, J] is formed.
  torch::Tensor prec = 1.0 / g.variances;  // [K, J]
  torch::Tensor quad =
      (x * x).matmul(prec.t()) - 2 * x.matmul((g.means * prec).t()) + (g.means.pow(2) * prec).sum(1).unsqueeze(0);
  torch::Tensor logdet = g.variances.log().sum(1).unsqueeze(0);
  return -0.5 * (double(x.size(1)) * kLog2Pi + logdet + quad) + g.weights.log().unsqueeze(0);
}

namespace {
DiagGmm fit_once(dist::Communicator& comm, const torch::Tensor& x, int64_t n_total, int64_t k, uint64_t seed,
                 const GmmOptions& opt) {
  KMeansResult km = kmeans(comm, x, k, seed, 300, opt.kmeans_restarts);
  torch::Tensor resp = torch::zeros({x.size(0), k}, x.options().dtype(torch::kFloat64));
  resp.scatter_(1, nearest(x, km.centers).unsqueeze(1), 1.0);
  DiagGmm g;
  m_step(comm, x, resp, n_total, opt.reg_covar, g);
  double prev = -INFINITY;
  for (int64_t it = 0; it < opt.max_iters; ++it) {
    torch::Tensor lj = log_joint(g, x);
    torch::Tensor lse = torch::logsumexp(lj, 1, true);
    double ll = comm.all_reduce_value(lse.sum().item<double>()) / double(n_total);
    resp = (lj - lse).exp();
    m_step(comm, x, resp, n_total, opt.reg_covar, g);
    g.mean_log_likelihood = ll;
    g.iterations = it + 1;
    if (std::abs(ll - prev) < opt.tol) {
      g.converged = true;
      break;
    }
    prev = ll;
  }
  return g;
}
}  // namespace

DiagGmm gmm_from_responsibilities(dist::Communicator& comm, const torch::Tensor& x_local,
                                  const torch::Tensor& resp_local, double reg_covar) {
  torch::NoGradGuard ng;
  torch::Tensor x = x_local.to(torch::kFloat64).contiguous();
  const int64_t n_total = comm.all_reduce_value<int64_t>(x.size(0));
  DiagGmm g;
  m_step(comm, x, resp_local.to(torch::kFloat64), n_total, reg_covar, g);
  torch::Tensor lse = torch::logsumexp(log_joint(g, x), 1);
  g.mean_log_likelihood = comm.all_reduce_value(lse.sum().item<double>()) / double(n_total);
  return g;
}

DiagGmm fit_diag_gmm(dist::Communicator& comm, const torch::Tensor& x_local, int64_t k, uint64_t seed,
                     const GmmOptions& opt) {
  torch::NoGradGuard ng;
  if (opt.fits < 1) throw std::invalid_argument("fit_diag_gmm: fits must be >= 1");
  torch::Tensor x = x_local.to(torch::kFloat64).contiguous();
  const int64_t n_total = comm.all_reduce_value<int64_t>(x.size(0));
  // Fit 0 uses `seed` itself, so fits = 1 is the single fit it always was. The
  // log-likelihoods are global (all-reduced), so every rank keeps the same fit.
  DiagGmm best = fit_once(comm, x, n_total, k, seed, opt);
  for (int64_t f = 1; f < opt.fits; ++f) {
    DiagGmm g = fit_once(comm, x, n_total, k, gmm_fit_seed(seed, f), opt);
    if (g.mean_log_likelihood > best.mean_log_likelihood) best = std::move(g);
  }
  return best;
}

}  // namespace mixvae::mixture
