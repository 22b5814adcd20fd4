#pragma once
// k-DVAE (kdvae-paper.md): a mixture of k VAEs, each a D-500-100-J encoder and a
// J-100-500-D decoder with a standard-normal latent; trained on the hard-max ELBO
// (Eq. 6), clustered by Eq. 8. Initialised as in the paper §4.2: a pretrained VaDE,
// k-means on its latent means, then a warm-up that trains each pair on its own initial
// cluster. With variational = false it is k-DAE (Opochinsky et al. 2020, the paper's
// ablation): k autoencoders, hard-min reconstruction, no KL term; its default
// initialisation is the single autoencoder + k-means of the k-DAE paper.
#include <algorithm>

#include "models/clustering_model.h"
#include "models/stacked_mlp.h"
#include "models/vade.h"

namespace mixvae::models {

class KDvae : public ClusteringModel {
 public:
  // Options come from the model's own section ([kdvae] or [kdae], see registry.cpp).
  KDvae(int64_t d, const RunConfig& cfg, bool bernoulli, bool variational);

  std::string name() const override { return variational_ ? "kdvae" : "kdae"; }
  int64_t clusters() const override { return k_; }
  // Eq. 8 runs all k networks on every row: k * rows stays at the 2,000 rows of a
  // one-network model (at 10 networks on MNIST the evaluation peaked 860 MB above the
  // run's resident memory with 2,000 rows).
  int64_t eval_batch_rows() const override { return std::max<int64_t>(100, 2000 / std::max<int64_t>(k_, 1)); }
  LossTerms loss(const torch::Tensor& x, Noise& noise) override;
  // The last stage's objective: the hard-max ELBO of Eq. 6, max_i ELBO_i(x) (k-DVAE), or
  // minus the smallest reconstruction error of the k autoencoders (k-DAE).
  Selection selection_score(const torch::Tensor& x, Noise& noise) override {
    if (phase_ != Phase::Networks) return init_->selection_score(x, noise);
    return {variational_ ? "max_elbo" : "neg_min_recon", -loss(x, noise).total};
  }
  torch::Tensor posterior(const torch::Tensor& x) override;
  torch::Tensor assign(const torch::Tensor& x) override;
  torch::Tensor sample(int64_t cluster, int64_t n, torch::Generator& gen) override;
  std::vector<Stage> recipe(const RunConfig& cfg) const override;
  void set_stage(int64_t index) override;
  LossTerms pretrain_loss(const torch::Tensor& x, const torch::Tensor& input) override {
    return init_->pretrain_loss(x, input);
  }
  std::vector<torch::Tensor> pretrain_parameters() override { return init_->pretrain_parameters(); }
  // "vade": the initialiser's VaDE after its ELBO stage (the same tensors a VaDE run trains).
  std::vector<torch::Tensor> artifact_parameters(const std::string& family) override {
    return vade_init_ ? init_->artifact_parameters(family) : std::vector<torch::Tensor>{};
  }
  StartFrom start_from() const override { return {vade_checkpoint_, vade_checkpoint_.empty() ? "" : "vade"}; }
  torch::Tensor embed(const torch::Tensor& x) override { return init_->embed(x); }
  std::string init_mixture(dist::Communicator& comm, const torch::Tensor& z_local, const RunConfig& cfg) override;
  std::vector<torch::Tensor> network_parameters() override;
  std::vector<torch::Tensor> mixture_parameters() override;

  // The per-network scores, [K, B]. sample = true: Eq. 6's terms with z_i drawn by the
  // reparameterisation trick (eps [K, B, J]); false: Eq. 8's deterministic score at
  // z_i = mu_i. k-DAE: the negative reconstruction error of each autoencoder.
  torch::Tensor scores(const torch::Tensor& x, const torch::Tensor* eps);
  // The same, network by network (the loop the batched version is tested against).
  torch::Tensor scores_loop(const torch::Tensor& x, const torch::Tensor* eps);
  // Sum over rows of the score of network idx[b] for row b (eps [K, B, J] as in scores()),
  // computed with each network on its own rows only: B rows in all instead of K x B.
  // Equals scores().gather(idx).sum() in value and in gradient.
  torch::Tensor selected_score_sum(const torch::Tensor& x, const torch::Tensor* eps, const torch::Tensor& idx);
  // Initial cluster of each row: nearest k-means centre of the initialiser's embedding.
  torch::Tensor initial_cluster(const torch::Tensor& x);
  StackedMlp& encoders() { return enc_; }
  StackedMlp& decoders() { return dec_; }

 private:
  enum class Phase { Init, KMeans, Networks };
  int64_t d_, k_, j_;
  bool bernoulli_, variational_, vade_init_;
  bool vade_clusters_ = false;   // [kdvae] initial_clusters = vade
  std::string vade_checkpoint_;  // [kdvae] vade_checkpoint: a finished VaDE run to start from
  int64_t stage_ = 0;
  Phase phase_ = Phase::Init;
  std::shared_ptr<Vade> init_;  // the VaDE (or autoencoder) the k networks start from
  StackedMlp enc_{nullptr}, dec_{nullptr};
  torch::Tensor centers_;  // [K, J] k-means centres (a buffer: checkpointed)

  torch::Tensor log_px(const torch::Tensor& out, const torch::Tensor& x);  // [K, B]
  // From an encoder output h ([..., 2J]): the code z_i the decoder gets and the score's
  // terms besides log p(x | z_i), [...]: Eq. 6 with noise eps (z_i = mu_i + sigma_i eps_i,
  // minus the KL to N(0, I)), or Eq. 8 without (z_i = mu_i, -1/2 ||mu_i||^2 + sum log sigma_is).
  std::pair<torch::Tensor, torch::Tensor> latent_terms(const torch::Tensor& h, const torch::Tensor* eps) const;
  const std::string& stage_name() const;
  double clamp_ = 10.0;
  bool dense_gradient_ = false;  // [kdvae] gradient = dense
  std::vector<std::string> stage_names_;
};

}  // namespace mixvae::models
