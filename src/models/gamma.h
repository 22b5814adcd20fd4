#pragma once
// The Gamma distribution pieces GamMM-VAE needs (shared/papers/models-math.md §2): the
// log-density, its expectation under another Gamma, the entropy, the closed-form
// Gamma–Gamma KL, and two reparameterised samplers driven by explicit Gaussian and
// uniform draws (so that all randomness comes from the step's Noise object):
//   - sample_mt: the Marsaglia–Tsang transform of a Gaussian with shape boosting and no
//     rejection step (§2.3, the default): pathwise gradients, slightly biased variance;
//   - sample_exact: Marsaglia–Tsang *with* rejection over a fixed number of candidate
//     draws (an exact Gamma sample unless every candidate is rejected), differentiated by
//     LibTorch's implicit reparameterisation formula (at::_standard_gamma_grad, §2.3
//     "Alternatives"): the reference the M–T path is tested against.
// Parameterisation: shape `alpha` and RATE `beta`; every function broadcasts.
#include <torch/torch.h>

namespace mixvae::models::gamma {

// log Gamma(z; a, b) = a log b - lgamma(a) + (a-1) log z - b z   (§2.2). Takes log z
// and z both, so a caller that sampled in log space never computes log(exp(.)).
torch::Tensor log_density(const torch::Tensor& log_z, const torch::Tensor& z, const torch::Tensor& a,
                          const torch::Tensor& b);

// E_{Gamma(alpha, beta)}[log Gamma(z; a, b)]
//   = a log b - lgamma(a) + (a-1)(psi(alpha) - log beta) - b alpha/beta   (§2.4)
torch::Tensor expected_log_density(const torch::Tensor& alpha, const torch::Tensor& beta, const torch::Tensor& a,
                                   const torch::Tensor& b);

// H[Gamma(alpha, beta)] = alpha - log beta + lgamma(alpha) + (1-alpha) psi(alpha)   (§2.4)
torch::Tensor entropy(const torch::Tensor& alpha, const torch::Tensor& beta);

// KL(Gamma(alpha, beta) || Gamma(a, b))
//   = (alpha-a) psi(alpha) - lgamma(alpha) + lgamma(a) + a (log beta - log b) + alpha (b-beta)/beta   (§2.4)
torch::Tensor kl(const torch::Tensor& alpha, const torch::Tensor& beta, const torch::Tensor& a, const torch::Tensor& b);

struct Sample {
  torch::Tensor z;      // the sample (may underflow to 0 for tiny shapes)
  torch::Tensor log_z;  // its logarithm, computed in log space (the primary quantity, §2.6)
};

// Marsaglia–Tsang with shape boosting, no rejection (§2.3):
//   alpha' = alpha + 1, d = alpha' - 1/3, c = 1/sqrt(9d), v = max(1 + c eps, 1e-4),
//   log z = log d + 3 log v + log(u)/alpha - log beta.
// eps ~ N(0,1) and u ~ U(0,1) have alpha's shape and carry no gradient; u is clamped to
// [1e-7, 1 - 1e-7] (§2.6). The mean E[z] = alpha/beta is exact (up to the clamp on v);
// the variance exceeds alpha/beta^2 by mt_variance_excess() (a few per cent).
Sample sample_mt(const torch::Tensor& alpha, const torch::Tensor& beta, const torch::Tensor& eps,
                 const torch::Tensor& u);

// Exact Gamma(alpha, beta) sample with implicit gradients (Figurnov et al. 2018, the
// formula of LibTorch's _standard_gamma backward). eps and u_accept: [R, alpha's shape],
// R candidate pairs of Marsaglia–Tsang for Gamma(alpha + 1, 1); the first accepted
// candidate is kept (each is accepted with probability > 0.95, so all R = 4 fail with
// probability < 1e-5; then the first candidate is used as sample_mt would). u_boost
// brings the shape back down: Gamma(alpha) = Gamma(alpha + 1) U^(1/alpha). Gradients:
// d z~/d alpha = _standard_gamma_grad(alpha, z~) for z~ ~ Gamma(alpha, 1), z = z~/beta.
Sample sample_exact(const torch::Tensor& alpha, const torch::Tensor& beta, const torch::Tensor& eps,
                    const torch::Tensor& u_accept, const torch::Tensor& u_boost);

// Var_MT[z] - alpha/beta^2 for sample_mt without the clamp: the boosted proposal's second
// moment d^2 (1 + 15c^2 + 45c^4 + 15c^6) * alpha/(alpha+2) minus the Gamma's
// alpha(alpha+1), over beta^2. Used by the tests and quoted in docs/models.md.
double mt_variance_excess(double alpha, double beta);

// softplus^-1(y) = y + log(1 - exp(-y)) for y > 0, stable; for initialising raw parameters.
torch::Tensor inverse_softplus(const torch::Tensor& y);

}  // namespace mixvae::models::gamma
