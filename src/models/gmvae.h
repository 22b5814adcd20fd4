#pragma once
// GMVAE (Dilokthanakul et al. 2016, arXiv:1611.02648; reference code Nat-D/GMVAE, branch
// version2): the paper's own model, not the M2 / Gumbel-softmax model other repositories
// also call GMVAE (shared/papers/models-math.md §1.9). Letters as in the paper (§1.1):
// y the data, x the Gaussian embedding (dimension Dx = model.latent), w the noise that
// drives the mixture (Dw = gmvae.w_dim), z the cluster. Equations are cited from
// models-math.md §1 by section.
//   p(w) = N(0, I), p(z) = uniform, p(x | z=k, w) = N(mu_k(w), diag sigma_k^2(w)), p(y | x)
//   q(x | y), q(w | y) Gaussian from one encoder; q(z | x, w) = p(z | x, w) in closed form.
// The loss is -ELBO = -T1 + T2 + T3 + T4 (§1.4) with the minimum-information constraint
// (free bits) on T4 (§1.5). No pretraining and no mixture initialisation: the recipe is
// one main stage, as in the paper.
#include "models/clustering_model.h"
#include "models/mlp.h"

namespace mixvae::models {

class Gmvae : public ClusteringModel {
 public:
  // Options come from [model] (clusters, latent = Dx, hidden, logvar_clamp, recon_weight)
  // and [gmvae] (registry.cpp).
  Gmvae(int64_t d, const RunConfig& cfg, bool bernoulli);

  std::string name() const override { return "gmvae"; }
  int64_t clusters() const override { return k_; }
  LossTerms loss(const torch::Tensor& y, Noise& noise) override;
  torch::Tensor posterior(const torch::Tensor& y) override;
  torch::Tensor sample(int64_t cluster, int64_t n, torch::Generator& gen) override;
  std::vector<Stage> recipe(const RunConfig& cfg) const override;
  // gmvae.start = pretrained: an autoencoder through the mu_x head; scratch: none (zero).
  LossTerms pretrain_loss(const torch::Tensor& y, const torch::Tensor& input) override;
  std::vector<torch::Tensor> pretrain_parameters() override;
  torch::Tensor embed(const torch::Tensor& y) override { return encode(y).mu_x; }
  std::string init_mixture(dist::Communicator& comm, const torch::Tensor& z_local, const RunConfig& cfg) override;
  std::vector<torch::Tensor> network_parameters() override;
  // pi is uniform and fixed (§1.2); the prior generator is a network like the others.
  std::vector<torch::Tensor> mixture_parameters() override { return {}; }

  // ---- pieces, public for the tests ----
  struct Encoded {
    torch::Tensor mu_x, logvar_x, mu_w, logvar_w;  // [B, Dx], [B, Dx], [B, Dw], [B, Dw]; log-variances clamped
  };
  Encoded encode(const torch::Tensor& y);
  // The prior generator (§1.2): h = tanh(W_p w + b_p), then 2K linear heads;
  // w [..., Dw] -> mu_k, clamped log sigma_k^2, each [..., K, Dx].
  std::pair<torch::Tensor, torch::Tensor> prior(const torch::Tensor& w);
  // log rho_k = log pi_k + log N(x; mu_k, sigma_k^2)   (§1.3); x [..., Dx] against [..., K, Dx] -> [..., K].
  torch::Tensor log_rho(const torch::Tensor& x, const torch::Tensor& mu_k, const torch::Tensor& logvar_k) const;
  // KL(N(mu, e^lv) || N(mu_k, e^lv_k)) summed over the last dimension (§1.4, term 2's closed form).
  static torch::Tensor gaussian_kl(const torch::Tensor& mu, const torch::Tensor& logvar, const torch::Tensor& mu_k,
                                   const torch::Tensor& logvar_k);
  // -log p(y | x) summed over the data dimensions, [N] for x [N, Dx] (times model.recon_weight).
  torch::Tensor recon_nll(const torch::Tensor& x, const torch::Tensor& y);
  // The decoder's output: logits (Bernoulli) or the mean (Gaussian), [N, D].
  torch::Tensor decode(const torch::Tensor& x);
  // The Gaussian decoder's clamped log-variance head (gmvae.gaussian_variance = learned), [N, D].
  torch::Tensor decode_logvar(const torch::Tensor& x);

  // The four terms of §1.4 per row, each [B], averaged over the M samples:
  // recon = -T1, cond_prior = T2, w_prior = T3, z_prior = T4 (raw, before free bits).
  struct Terms {
    torch::Tensor recon, cond_prior, w_prior, z_prior;
    torch::Tensor qz, kl;  // q(z | x^(m), w^(m)) and the KLs of term 2, each [B, M, K]
  };
  // eps_x [B, M, Dx], eps_w [B, M, Dw]: the reparameterisation noise.
  Terms terms(const torch::Tensor& y, const torch::Tensor& eps_x, const torch::Tensor& eps_w);
  // The z-prior part of the loss (§1.5). Value: sum_b T4_b (the raw term, so the reported
  // loss is the true negative ELBO, as the reference reports it). Gradient: that of
  //   scope "batch": weight * max(lambda, mean_b T4_b) * B  (the reference: batch mean),
  //   scope "row":   weight * sum_b max(lambda, T4_b),
  // where b runs over the rows passed in (this rank's share of the step's batch).
  torch::Tensor z_prior_objective(const torch::Tensor& t4) const;
  // 1 where the z-prior gradient is on, [B]: batch scope: mean_b T4_b > lambda for every
  // row; row scope: T4_b > lambda.
  torch::Tensor free_bits_active(const torch::Tensor& t4) const;
  // Term 2's part of the loss. Value: sum_b T2_b. Gradient: gmvae.qz_gradient = elbo: that
  // of T2 (autograd); = reference: as Nat-D/GMVAE version2's main.lua computes it, the
  // gradient through q(z|x,w) reversed on the rows where the free-bits test is on
  // (`gradQz:add(EntropyGrad):mul(-1)`, models-math §1.5), the gradient through the KLs unchanged.
  torch::Tensor cond_prior_objective(const Terms& t) const;

  int64_t mc_samples() const { return m_; }
  int64_t w_dim() const { return dw_; }

 private:
  int64_t d_, k_, dx_, dw_, m_;
  bool bernoulli_, learned_variance_;
  double recon_weight_, clamp_, free_bits_, zprior_weight_;
  bool row_scope_, reference_qz_grad_;
  bool pretrained_start_;  // gmvae.start = pretrained (docs/models.md), else the paper's scratch start
  Mlp enc_{nullptr}, dec_{nullptr};
  torch::nn::Linear enc_mu_x_{nullptr}, enc_lv_x_{nullptr}, enc_mu_w_{nullptr}, enc_lv_w_{nullptr};
  torch::nn::Linear dec_out_{nullptr}, dec_lv_{nullptr};
  torch::nn::Linear prior_h_{nullptr}, prior_mu_{nullptr}, prior_lv_{nullptr};
};

}  // namespace mixvae::models
