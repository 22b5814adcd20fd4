#include "mixture/gamma_moments.h"

#include "dist/tensor_ops.h"

namespace mixvae::mixture {

torch::Tensor moment_statistics(const torch::Tensor& z_in, const torch::Tensor& resp_in) {
  torch::NoGradGuard ng;
  torch::Tensor z = z_in.to(torch::kFloat64), r = resp_in.to(torch::kFloat64);
  return torch::cat({r.sum(0), r.t().matmul(z).reshape({-1}), r.t().matmul(z * z).reshape({-1})});
}

GammaMixture gamma_from_statistics(const torch::Tensor& stats_in, int64_t k, int64_t j, const GammaMomentOptions& opt) {
  torch::NoGradGuard ng;
  torch::Tensor stats = stats_in.to(torch::kFloat64);
  torch::Tensor nk = stats.slice(0, 0, k);
  torch::Tensor s1 = stats.slice(0, k, k + k * j).view({k, j});
  torch::Tensor s2 = stats.slice(0, k + k * j, k + 2 * k * j).view({k, j});
  const double n = nk.sum().item<double>();
  // Moments of all the data: the fallback for clusters without mass.
  torch::Tensor m_all = s1.sum(0) / n, v_all = (s2.sum(0) / n - m_all.pow(2)).clamp_min(0);
  torch::Tensor empty = (nk <= 1e-8 * n).unsqueeze(1);
  torch::Tensor nk_safe = nk.clamp_min(1e-300).unsqueeze(1);
  GammaMixture g;
  g.means = torch::where(empty, m_all.unsqueeze(0), s1 / nk_safe);
  g.variances =
      torch::where(empty, v_all.unsqueeze(0), (s2 / nk_safe - (s1 / nk_safe).pow(2)).clamp_min(0)) + opt.var_floor;
  torch::Tensor m = g.means.clamp_min(opt.min_param * opt.min_param);  // codes are positive; guard a zero mean
  // Method of moments (§2.5): a = m^2 / v, b = m / v.
  torch::Tensor a = m.pow(2) / g.variances, b = m / g.variances;
  // Common scaling keeps the mean a/b: down when either exceeds the maximum, then up
  // when either is below the minimum; a last clamp for what no common factor can fix.
  torch::Tensor down = torch::minimum(torch::ones_like(a), torch::minimum(opt.max_param / a, opt.max_param / b));
  a = a * down;
  b = b * down;
  torch::Tensor up = torch::maximum(torch::ones_like(a), torch::maximum(opt.min_param / a, opt.min_param / b));
  a = a * up;
  b = b * up;
  g.shapes = a.clamp(opt.min_param, opt.max_param);
  g.rates = b.clamp(opt.min_param, opt.max_param);
  g.weights = nk / n;
  g.weights = g.weights.clamp_min(1e-12);
  g.weights = g.weights / g.weights.sum();
  return g;
}

GammaMixture fit_gamma_moments(dist::Communicator& comm, const torch::Tensor& z_local, const torch::Tensor& resp_local,
                               const GammaMomentOptions& opt) {
  torch::Tensor stats = moment_statistics(z_local, resp_local).contiguous();
  dist::all_reduce(comm, stats);
  return gamma_from_statistics(stats, resp_local.size(1), z_local.size(1), opt);
}

}  // namespace mixvae::mixture
