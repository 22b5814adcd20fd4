#pragma once
// VaDE (Jiang et al., IJCAI 2017): a VAE whose latent prior is a Gaussian mixture.
// The paper's full text is not in shared/papers; equations are cited from
// shared/papers/models-math.md §3 (the paper's ELBO and the reference code's recipe).
#include "models/clustering_model.h"
#include "models/mlp.h"

namespace mixvae::models {

class Vade : public ClusteringModel {
 public:
  // d: input dimension; bernoulli: Bernoulli likelihood (data in [0,1]) else Gaussian.
  Vade(int64_t d, const ModelConfig& cfg, bool bernoulli);

  std::string name() const override { return "vade"; }
  int64_t clusters() const override { return k_; }
  LossTerms loss(const torch::Tensor& x, Noise& noise) override;
  torch::Tensor posterior(const torch::Tensor& x) override;
  torch::Tensor sample(int64_t cluster, int64_t n, torch::Generator& gen) override;
  std::vector<Stage> recipe(const RunConfig& cfg) const override;
  LossTerms pretrain_loss(const torch::Tensor& x, const torch::Tensor& input) override;
  std::vector<torch::Tensor> pretrain_parameters() override;
  std::vector<torch::Tensor> artifact_parameters(const std::string& family) override;
  torch::Tensor embed(const torch::Tensor& x) override;
  std::string init_mixture(dist::Communicator& comm, const torch::Tensor& z_local, const RunConfig& cfg) override;
  std::vector<torch::Tensor> network_parameters() override;
  std::vector<torch::Tensor> mixture_parameters() override;

  // Pieces exposed for tests.
  std::pair<torch::Tensor, torch::Tensor> encode(const torch::Tensor& x);  // mu, clamped logvar
  torch::Tensor decode_logits(const torch::Tensor& z);
  // log p(c) + log N(z | mu_c, sigma2_c), [B, K] (models-math §3.2, in log space).
  torch::Tensor log_joint(const torch::Tensor& z);
  // Reconstruction negative log-likelihood summed over dimensions, [B].
  torch::Tensor recon_nll(const torch::Tensor& out, const torch::Tensor& x);
  torch::Tensor log_pi() { return torch::log_softmax(pi_logits, 0); }
  torch::Tensor clamped_log_sigma2_c();
  // -E_{N(z; mu, exp(logvar))}[log N(z; mu_c, exp(ls2_c))] for every row and cluster,
  // [B, K]: the closed form 1/2 sum_j [log 2pi + ls2 + var/s2 + (mu - mu_c)^2/s2].
  static torch::Tensor gaussian_cross_entropy(const torch::Tensor& mu, const torch::Tensor& logvar,
                                              const torch::Tensor& mu_c, const torch::Tensor& ls2_c);

  torch::Tensor pi_logits;     // [K]     p(c) = softmax(pi_logits)
  torch::Tensor mu_c;          // [K, J]
  torch::Tensor log_sigma2_c;  // [K, J]

 private:
  int64_t d_, k_, j_;
  bool bernoulli_;
  double recon_weight_, clamp_;
  Mlp enc_{nullptr}, dec_{nullptr};
  torch::nn::Linear enc_mu_{nullptr}, enc_logvar_{nullptr};
};

}  // namespace mixvae::models
