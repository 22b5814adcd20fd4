#pragma once
// AE+GMM (the k-DVAE paper's first baseline, §4.2): the D-500-500-2000-J autoencoder
// trained on reconstruction alone, then the distributed diagonal GMM fitted to its
// latent codes. It is VaDE's recipe stopped after the mixture initialisation, so it
// reuses VaDE's networks, pretraining and GMM fit; clusters are the GMM
// responsibilities of the encoder means.
#include "models/vade.h"

namespace mixvae::models {

class AeGmm : public Vade {
 public:
  using Vade::Vade;
  std::string name() const override { return "aegmm"; }
  std::vector<Stage> recipe(const RunConfig& cfg) const override {
    return {{"pretrain", StageKind::Pretrain, cfg.pretrain.epochs}, {"mixture_init", StageKind::MixtureInit, 0}};
  }
  // No stage trains VaDE's ELBO here (the encoder's log-variance head is never trained), so
  // the score is what the two stages fitted: the GMM's log-likelihood of the code,
  // log sum_c pi_c N(z | mu_c, sigma2_c) at z = the encoder mean, minus the autoencoder's
  // reconstruction loss (its pretraining objective). Deterministic: no noise is drawn.
  Selection selection_score(const torch::Tensor& x, Noise& noise) override {
    (void)noise;
    const torch::Tensor log_pz = torch::logsumexp(log_joint(embed(x)), 1);
    return {"gmm_loglik_minus_recon", log_pz.sum() - pretrain_loss(x, x).total};
  }
};

}  // namespace mixvae::models
