#include "models/gamma.h"

#include <cmath>

namespace mixvae::models::gamma {
namespace {
constexpr double kVMin = 1e-4;     // clamp on 1 + c eps (§2.3)
constexpr double kUMin = 1e-7;     // uniform draws kept in [1e-7, 1 - 1e-7] (§2.6)
constexpr double kLogZMin = -690;  // exp(-690) ~ 1e-300: smallest z~ handed to the implicit gradient
}  // namespace

torch::Tensor log_density(const torch::Tensor& log_z, const torch::Tensor& z, const torch::Tensor& a,
                          const torch::Tensor& b) {
  return a * torch::log(b) - torch::lgamma(a) + (a - 1) * log_z - b * z;
}

torch::Tensor expected_log_density(const torch::Tensor& alpha, const torch::Tensor& beta, const torch::Tensor& a,
                                   const torch::Tensor& b) {
  // E_q[log z] = psi(alpha) - log beta, E_q[z] = alpha / beta.
  return a * torch::log(b) - torch::lgamma(a) + (a - 1) * (torch::digamma(alpha) - torch::log(beta)) - b * alpha / beta;
}

torch::Tensor entropy(const torch::Tensor& alpha, const torch::Tensor& beta) {
  return alpha - torch::log(beta) + torch::lgamma(alpha) + (1 - alpha) * torch::digamma(alpha);
}

torch::Tensor kl(const torch::Tensor& alpha, const torch::Tensor& beta, const torch::Tensor& a,
                 const torch::Tensor& b) {
  return (alpha - a) * torch::digamma(alpha) - torch::lgamma(alpha) + torch::lgamma(a) +
         a * (torch::log(beta) - torch::log(b)) + alpha * (b - beta) / beta;
}

Sample sample_mt(const torch::Tensor& alpha, const torch::Tensor& beta, const torch::Tensor& eps,
                 const torch::Tensor& u) {
  // Boost: Gamma(alpha, 1) = Gamma(alpha + 1, 1) * U^(1/alpha), so the cube transform only
  // ever sees shapes >= 1, where it is accurate.
  torch::Tensor d = alpha + (1.0 - 1.0 / 3.0);  // (alpha + 1) - 1/3
  torch::Tensor c = torch::rsqrt(9.0 * d);
  torch::Tensor v = (1.0 + c * eps).clamp_min(kVMin);  // the exact sampler rejects v <= 0
  torch::Tensor log_u = torch::log(u.clamp(kUMin, 1.0 - kUMin));
  Sample s;
  s.log_z = torch::log(d) + 3.0 * torch::log(v) + log_u / alpha - torch::log(beta);
  s.z = torch::exp(s.log_z);
  return s;
}

Sample sample_exact(const torch::Tensor& alpha, const torch::Tensor& beta, const torch::Tensor& eps,
                    const torch::Tensor& u_accept, const torch::Tensor& u_boost) {
  torch::Tensor log_zt;  // log of an exact Gamma(alpha, 1) draw, float64, no gradient
  torch::Tensor grad;    // d z~ / d alpha at that draw (implicit), float64
  {
    torch::NoGradGuard ng;
    torch::Tensor a64 = alpha.detach().to(torch::kFloat64);
    torch::Tensor d = a64 + (1.0 - 1.0 / 3.0);
    torch::Tensor c = torch::rsqrt(9.0 * d);
    torch::Tensor e = eps.to(torch::kFloat64), ua = u_accept.to(torch::kFloat64).clamp(kUMin, 1.0 - kUMin);
    torch::Tensor t = 1.0 + c.unsqueeze(0) * e;  // [R, ...]
    torch::Tensor log_v = 3.0 * torch::log(t.clamp_min(kVMin));
    // Marsaglia & Tsang (2000): accept d v when v > 0 and log U < x^2/2 + d - d v + d log v.
    torch::Tensor dd = d.unsqueeze(0);
    torch::Tensor accept = (t > 0) & (torch::log(ua) < 0.5 * e * e + dd - dd * torch::exp(log_v) + dd * log_v);
    const int64_t rounds = e.size(0);
    torch::Tensor chosen = log_v[0], found = accept[0];
    for (int64_t r = 1; r < rounds; ++r) {
      chosen = torch::where(found.logical_not() & accept[r], log_v[r], chosen);
      found = found | accept[r];
    }
    log_zt = torch::log(d) + chosen + torch::log(u_boost.to(torch::kFloat64).clamp(kUMin, 1.0 - kUMin)) / a64;
    torch::Tensor zt = torch::exp(log_zt.clamp_min(kLogZMin));
    grad = at::_standard_gamma_grad(a64, zt);
    grad = grad / zt;  // d log z~ / d alpha
  }
  // Value: the exact draw; gradient w.r.t. alpha: the implicit one (alpha - alpha.detach()
  // is exactly 0 in the forward pass); w.r.t. beta: pathwise through z = z~ / beta.
  const auto dtype = alpha.scalar_type();
  Sample s;
  s.log_z = log_zt.to(dtype) + (alpha - alpha.detach()) * grad.to(dtype) - torch::log(beta);
  s.z = torch::exp(s.log_z);
  return s;
}

double mt_variance_excess(double alpha, double beta) {
  const double d = alpha + 2.0 / 3.0, c2 = 1.0 / (9.0 * d);
  const double second = d * d * (1 + 15 * c2 + 45 * c2 * c2 + 15 * c2 * c2 * c2) * alpha / (alpha + 2.0);
  return (second - alpha * (alpha + 1.0)) / (beta * beta);
}

torch::Tensor inverse_softplus(const torch::Tensor& y) { return y + torch::log(-torch::expm1(-y)); }

}  // namespace mixvae::models::gamma
