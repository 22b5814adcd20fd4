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
};

}  // namespace mixvae::models
