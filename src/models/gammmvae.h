#pragma once
// GamMM-VAE (Guo, Fan, Amayri, Bouguila; Neural Networks 183 (2025) 106979). Only the
// abstract is public; the math is the reconstruction of shared/papers/models-math.md §2
// (a VaDE-style VAE with a positive latent and a Gamma-mixture prior), cited by section:
//   p(c) = Cat(softmax(pi_logits)), p(z|c) = prod_j Gamma(z_j; a_cj, b_cj) (shape, RATE),
//   q(z|x) = prod_j Gamma(z_j; alpha_j(x), beta_j(x)), q(c|x) = gamma(x) as in VaDE,
//   -ELBO = NLL(x | f(z)) + sum_c gamma_c KL(q(z|x) || p(z|c)) + KL(gamma || pi)   (§2.4)
// with z drawn by a Gaussian-to-Gamma reparameterisation (§2.3, models/gamma.h).
// Recipe (§2.5): a positive-code autoencoder, moments of the clustered codes, the ELBO.
#include "models/clustering_model.h"
#include "models/gamma.h"
#include "models/mlp.h"

namespace mixvae::models {

class GamMMVae : public ClusteringModel {
 public:
  // Options from [model] (clusters, latent = J, hidden, recon_weight, init) and [gammmvae].
  GamMMVae(int64_t d, const RunConfig& cfg, bool bernoulli);

  std::string name() const override { return "gammmvae"; }
  int64_t clusters() const override { return k_; }
  LossTerms loss(const torch::Tensor& x, Noise& noise) override;
  torch::Tensor posterior(const torch::Tensor& x) override;
  torch::Tensor sample(int64_t cluster, int64_t n, torch::Generator& gen) override;
  std::vector<Stage> recipe(const RunConfig& cfg) const override;
  LossTerms pretrain_loss(const torch::Tensor& x, const torch::Tensor& input) override;
  std::vector<torch::Tensor> pretrain_parameters() override;
  // The posterior mean alpha/beta = the mean head (after pretraining: the autoencoder's positive code).
  torch::Tensor embed(const torch::Tensor& x) override;
  std::string init_mixture(dist::Communicator& comm, const torch::Tensor& z_local, const RunConfig& cfg) override;
  std::vector<torch::Tensor> network_parameters() override;
  std::vector<torch::Tensor> mixture_parameters() override;

  // ---- pieces, public for the tests ----
  // q(z|x) = Gamma(alpha, beta), each [B, J] (§2.2). The encoder's two positive heads give
  // the shape alpha = softplus(h_alpha) + alpha_min and the MEAN m = softplus(h_m) + m_min
  // (the autoencoder's bottleneck); the rate is beta = alpha / m. Both clamped to [1e-3, 1e3] (§2.6).
  std::pair<torch::Tensor, torch::Tensor> encode(const torch::Tensor& x);
  torch::Tensor code(const torch::Tensor& x);           // the mean head m(x), the pretrained positive code
  torch::Tensor decode_logits(const torch::Tensor& z);  // decoder output (logits or mean), z clamped <= 1e4
  torch::Tensor recon_nll(const torch::Tensor& out, const torch::Tensor& x);  // [B], times model.recon_weight
  torch::Tensor shapes();                                                     // a [K, J]
  torch::Tensor rates();                                                      // b [K, J]
  torch::Tensor log_pi() { return torch::log_softmax(pi_logits, 0); }
  // log pi_c + sum_j E_q[log Gamma(z_j; a_cj, b_cj)], [B, K]: responsibilities (b) of §2.4.
  torch::Tensor log_joint_expected(const torch::Tensor& alpha, const torch::Tensor& beta);
  // log pi_c + sum_j log Gamma(z_j; a_cj, b_cj) at a sample, [B, K]: responsibilities (a).
  torch::Tensor log_joint_sampled(const torch::Tensor& log_z, const torch::Tensor& z);
  // sum_j KL(Gamma(alpha, beta) || Gamma(a_c, b_c)), [B, K].
  torch::Tensor kl_to_clusters(const torch::Tensor& alpha, const torch::Tensor& beta);
  // The reparameterised draw of §2.3 with the configured sampler, from the step's noise.
  gamma::Sample draw(const torch::Tensor& alpha, const torch::Tensor& beta, Noise& noise);
  // Sets the prior from shapes/rates/weights (float64 or float32), inverting the softplus.
  void set_prior(const torch::Tensor& weights, const torch::Tensor& a, const torch::Tensor& b);
  // Makes the shape head constant: alpha(x) = shape for every x (weights zero).
  void set_initial_shape(double shape);

  torch::Tensor pi_logits;  // [K]
  torch::Tensor shape_raw;  // [K, J], a = softplus(shape_raw) + a_min
  torch::Tensor rate_raw;   // [K, J], b = softplus(rate_raw) + b_min

  static constexpr double kAlphaMax = 1e3, kParamMin = 1e-3, kZMax = 1e4;
  static constexpr int64_t kExactRounds = 4;  // candidate pairs of the exact sampler

 private:
  int64_t d_, k_, j_;
  bool bernoulli_, exact_sampler_, sampled_resp_;
  double recon_weight_, alpha_min_, init_shape_;
  Mlp enc_{nullptr}, dec_{nullptr};
  torch::nn::Linear enc_mean_{nullptr}, enc_alpha_{nullptr};
};

}  // namespace mixvae::models
