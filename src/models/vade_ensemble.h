#pragma once
// S VaDE models (one per seed) trained side by side in one process: every parameter has a
// leading member axis S, and each layer of all S networks is one batched matrix product
// (StackedMlp), each member on its own rows. Member s is exactly the Vade of seed s: the
// ensemble is filled from S ordinary Vade instances (store_member) and read back into one
// (load_member) for evaluation, mixture fitting, sampling and checkpoints, so everything
// outside the training step is the single-model code. The losses are those of
// Vade::loss / Vade::pretrain_loss (models-math §3.2), evaluated for all members at once;
// members share no parameter, so the gradient of the summed loss is every member's own.
#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "core/config.h"
#include "models/stacked_mlp.h"
#include "models/vade.h"

namespace mixvae::models {

struct EnsembleLoss {
  torch::Tensor per_member;                                  // [S] summed over each member's rows
  std::vector<std::pair<std::string, torch::Tensor>> parts;  // each [S], detached
};

class VadeEnsemble : public torch::nn::Module {
 public:
  VadeEnsemble(int64_t members, int64_t d, const ModelConfig& cfg, bool bernoulli);
  int64_t members() const { return s_; }

  // x: [S, B, D] (member s trains on x[s]); eps: [S, B, J] standard normal draws.
  EnsembleLoss loss(const torch::Tensor& x, const torch::Tensor& eps);
  // The autoencoder pretraining objective through the mean head, [S].
  EnsembleLoss pretrain_loss(const torch::Tensor& x, const torch::Tensor& input);

  // Copies between member s and an ordinary Vade of the same configuration (no autograd).
  void store_member(int64_t s, Vade& v);
  void load_member(int64_t s, Vade& v);

  // Parameter groups of the two optimisers (the same split as Vade's, stacked).
  std::vector<torch::Tensor> pretrain_parameters();
  std::vector<torch::Tensor> network_parameters();
  std::vector<torch::Tensor> mixture_parameters();

 private:
  int64_t s_, d_, k_, j_;
  bool bernoulli_;
  double recon_weight_, clamp_;
  StackedMlp enc_{nullptr}, enc_mu_{nullptr}, enc_logvar_{nullptr}, dec_{nullptr};
  torch::Tensor pi_logits_, mu_c_, log_sigma2_c_;  // [S, K], [S, K, J], [S, K, J]

  std::pair<torch::Tensor, torch::Tensor> encode(const torch::Tensor& x);     // [S, B, J] each
  torch::Tensor recon_nll(const torch::Tensor& out, const torch::Tensor& x);  // [S, B]
  // (ensemble tensor, Vade tensor, how they map) in Vade's registration order.
  enum class Map { Weight, Bias, Same };
  std::vector<std::tuple<torch::Tensor, torch::Tensor, Map>> pairs(Vade& v);
};

}  // namespace mixvae::models
