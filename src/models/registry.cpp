#include "models/registry.h"

#include "core/errors.h"
#include "models/aegmm.h"
#include "models/gammmvae.h"
#include "models/gmvae.h"
#include "models/kdvae.h"
#include "models/vade.h"

namespace mixvae::models {
namespace {
using T = OptionSpec::Type;

std::vector<OptionSpec> knet_options(const std::string& s, const std::string& init) {
  return {
      {s, "epochs", "100", "epochs of the k-network objective (paper: not stated)", T::Int},
      {s, "warmup_epochs", "10", "epochs training each pair on its initial cluster", T::Int},
      {s, "lr", "0.001", "Adam learning rate of the k networks (constant)", T::Double},
      {s, "hidden", "500,100", "encoder widths of each network (decoder mirrors them; paper: 500,100)", T::String},
      {s,
       "init",
       init,
       "initialisation: vade (pretrain + VaDE, then k-means on its latent means) | ae (autoencoder + k-means)",
       T::String,
       {"vade", "ae"}},
      {s,
       "initial_clusters",
       "kmeans",
       "the clusters the warm-up starts from: kmeans (paper: k-means++ on the initialiser's latent means) | vade "
       "(VaDE's own assignment, arg max q(c|x); needs init = vade)",
       T::String,
       {"kmeans", "vade"}},
      {s, "vade_checkpoint", "",
       "start from a finished VaDE run (its checkpoint.h5) instead of pretraining and training one: the pretrain, "
       "mixture_init and vade stages are skipped (needs init = vade and the same [model] architecture and data)",
       T::String},
      {s, "kmeans_restarts", "10", "k-means++ restarts of the initial clustering (best inertia kept)", T::Int},
      {s, "kmeans_iters", "300", "Lloyd iterations of the initial clustering", T::Int},
      {s,
       "gradient",
       "selected",
       "selected: the backward pass runs each row through its own network only (the max of Eq. 6 and the warm-up's "
       "cluster pass no gradient to the others), rows grouped per network | dense: through all k (what a loop over "
       "the networks computes; for comparisons)",
       T::String,
       {"selected", "dense"}},
  };
}

std::vector<ModelInfo> build() {
  std::vector<ModelInfo> r;
  r.push_back({"vade",
               "VaDE: VAE with a Gaussian-mixture prior (Jiang et al. 2017)",
               {},
               [](int64_t d, const RunConfig& c, bool b) { return std::make_shared<Vade>(d, c.model, b); }});
  r.push_back({"aegmm", "AE+GMM: autoencoder, then a GMM on its codes", {}, [](int64_t d, const RunConfig& c, bool b) {
                 return std::make_shared<AeGmm>(d, c.model, b);
               }});
  r.push_back({"kdvae", "k-DVAE: a mixture of k VAEs (kdvae-paper.md)", knet_options("kdvae", "vade"),
               [](int64_t d, const RunConfig& c, bool b) { return std::make_shared<KDvae>(d, c, b, true); }});
  r.push_back({"kdae", "k-DAE: k autoencoders, hard-min reconstruction (Opochinsky et al. 2020)",
               knet_options("kdae", "ae"),
               [](int64_t d, const RunConfig& c, bool b) { return std::make_shared<KDvae>(d, c, b, false); }});
  r.push_back(
      {"gmvae",
       "GMVAE: Gaussian-mixture VAE with free bits (Dilokthanakul et al. 2016)",
       {
           {"gmvae", "w_dim", "150", "dimension Dw of the noise w that drives the mixture (paper: 150)", T::Int},
           {"gmvae", "prior_hidden", "500",
            "hidden width of the prior generator Lin(Dw,H)-Tanh (paper: 500; 1000 in mnist_fc)", T::Int},
           {"gmvae", "mc_samples", "1", "Monte-Carlo samples M of (x, w) per row (paper: 1 or 10)", T::Int},
           {"gmvae", "free_bits", "0.5", "minimum-information threshold lambda on the z-prior term, nats (0: off)",
            T::Double},
           {"gmvae",
            "free_bits_scope",
            "batch",
            "batch: max(lambda, mean of T4 over the rank's rows of the step) (the reference); row: per-row max(lambda, "
            "T4), world-size invariant",
            T::String,
            {"batch", "row"}},
           {"gmvae",
            "qz_gradient",
            "elbo",
            "elbo: autograd of the ELBO; reference: Nat-D/GMVAE's gradient, term 2's gradient through q(z|x,w) "
            "reversed while the free-bits test is on",
            T::String,
            {"elbo", "reference"}},
           {"gmvae",
            "start",
            "scratch",
            "scratch: the paper's start (zero prior-head biases: all K components coincide); pretrained: an "
            "autoencoder through mu_x ([pretrain]), then the prior heads' biases set to the clusters [model] init "
            "finds in its codes, their weights to zero (docs/models.md)",
            T::String,
            {"scratch", "pretrained"}},
           {"gmvae", "zprior_weight", "1", "gradient weight of the z-prior term (reference run.sh: cvWeight 0.4)",
            T::Double},
           {"gmvae",
            "gaussian_variance",
            "learned",
            "Gaussian p(y|x): learned (log-variance head) | fixed (squared error, as VaDE)",
            T::String,
            {"learned", "fixed"}},
       },
       [](int64_t d, const RunConfig& c, bool b) { return std::make_shared<Gmvae>(d, c, b); }});
  r.push_back({"gammmvae",
               "GamMM-VAE: VAE with a Gamma-mixture prior (Guo et al. 2025; models-math §2 reconstruction)",
               {
                   {"gammmvae",
                    "sampler",
                    "mt",
                    "Gamma reparameterisation: mt (Marsaglia-Tsang, shape boosting, no rejection) | exact (rejection + "
                    "implicit gradient)",
                    T::String,
                    {"mt", "exact"}},
                   {"gammmvae",
                    "responsibilities",
                    "expected",
                    "q(c|x): expected (closed-form mean-field optimum) | sampled (at the drawn z, as VaDE)",
                    T::String,
                    {"expected", "sampled"}},
                   {"gammmvae", "init_shape", "0",
                    "shape alpha of q(z|x) when the VAE starts (around the pretrained code); 0: the median shape of "
                    "the moment-initialised prior",
                    T::Double},
                   {"gammmvae", "shape_min", "0.01", "lower bound alpha_min of the encoder's Gamma shape", T::Double},
               },
               [](int64_t d, const RunConfig& c, bool b) { return std::make_shared<GamMMVae>(d, c, b); }});
  // VaDE's autoencoder is the first module every one of these builds (AE+GMM is a Vade,
  // k-DVAE and k-DAE construct their Vade initialiser first), so one seed gives one
  // pretrained autoencoder for all four (tested in test_pretrain_artifact.cpp).
  for (auto& m : r) {
    if (m.name == "vade" || m.name == "aegmm" || m.name == "kdvae" || m.name == "kdae") m.pretrain_family = "vade-ae";
    if (m.name == "gammmvae") m.pretrain_family = "gammmvae-ae";
    if (m.name == "gmvae") m.pretrain_family = "gmvae-ae";
  }
  return r;
}
}  // namespace

const std::vector<ModelInfo>& model_registry() {
  static const std::vector<ModelInfo> r = build();
  return r;
}

void register_models() {
  for (const auto& m : model_registry()) {
    register_model_name(m.name);
    register_options(m.options);
  }
}

namespace {
// Linked in with make_model, so any program that can build a model knows the names.
const bool registered_at_start = (register_models(), true);
}  // namespace

std::string pretrain_family(const std::string& model_name) {
  for (const auto& m : model_registry())
    if (m.name == model_name) return m.pretrain_family;
  return "";
}

std::shared_ptr<ClusteringModel> make_model(const RunConfig& cfg, int64_t input_dim, bool bernoulli) {
  std::string names;
  for (const auto& m : model_registry()) {
    if (m.name == cfg.model.name) return m.make(input_dim, cfg, bernoulli);
    names += (names.empty() ? "" : ", ") + m.name;
  }
  throw UsageError("model.name: unknown model '" + cfg.model.name + "' (known: " + names + ")");
}

}  // namespace mixvae::models
