#pragma once
// The interface every clustering model implements, and the pieces a trainer needs to run
// its recipe (stages) on any number of ranks.
#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "core/config.h"
#include "dist/communicator.h"
#include "models/noise.h"

namespace mixvae::models {

// A loss and its named parts. Every tensor is a SUM over the batch rows (not a mean): the
// trainer divides by the global batch size, so that summing gradients over ranks gives
// the gradient of the global-batch mean whatever each rank's share is.
struct LossTerms {
  torch::Tensor total;
  std::vector<std::pair<std::string, torch::Tensor>> parts;
};

enum class StageKind { Pretrain, MixtureInit, Main };

struct Stage {
  std::string name;  // "pretrain", "mixture_init", "train", ...
  StageKind kind;
  int64_t epochs = 0;     // 0 for MixtureInit
  double lr = 0;          // 0: pretrain.lr (Pretrain) or train.lr (Main)
  double lr_mixture = 0;  // 0: train.lr_mixture
  bool decay = true;      // apply [train]'s step decay (Main stages)
  // Non-empty: this stage trains the same thing in every model that has it, so its result
  // is a shared artifact of this family (train/pretrain_artifact.h): "vade" = VaDE's ELBO
  // stage, which k-DVAE (and k-DAE with init = vade) run before their own.
  std::string artifact;
};

// The last stage of `recipe` whose artifact family is `artifact`, -1 when none: the stage
// a run that starts from another run's checkpoint (ClusteringModel::start_from) replaces,
// with every stage before it.
inline int64_t last_stage_of(const std::vector<Stage>& recipe, const std::string& artifact) {
  for (size_t i = recipe.size(); i-- > 0;)
    if (recipe[i].artifact == artifact) return int64_t(i);
  return -1;
}

class ClusteringModel : public torch::nn::Module {
 public:
  virtual std::string name() const = 0;
  virtual int64_t clusters() const = 0;

  // Main objective (negative ELBO), summed over the rows of x.
  virtual LossTerms loss(const torch::Tensor& x, Noise& noise) = 0;
  // The label-free model-selection score of the finished model (docs/models.md, "Choosing
  // a seed without labels"): its own objective, HIGHER = BETTER, summed over the rows of x,
  // with the draws of `noise` (the evaluation passes noise of a fixed seed, so runs of
  // every seed are scored on the same draws). Called without gradients, in eval mode,
  // after set_stage(last). Default: the ELBO of the last stage, -loss().total.
  struct Selection {
    std::string criterion;  // what `sum` is, e.g. "elbo"
    torch::Tensor sum;      // scalar
  };
  virtual Selection selection_score(const torch::Tensor& x, Noise& noise) { return {"elbo", -loss(x, noise).total}; }
  // q(c|x), [B, K], deterministic (encoder means).
  virtual torch::Tensor posterior(const torch::Tensor& x) = 0;
  virtual torch::Tensor assign(const torch::Tensor& x) { return posterior(x).argmax(1); }
  // Rows per posterior() call when evaluating (bounds the evaluation's memory: a model
  // whose posterior runs k networks makes [k, rows, D] temporaries).
  virtual int64_t eval_batch_rows() const { return 2000; }
  // Decoder means of n draws from cluster c's prior, [n, D].
  virtual torch::Tensor sample(int64_t cluster, int64_t n, torch::Generator& gen) = 0;

  // The recipe: the stages in order.
  virtual std::vector<Stage> recipe(const RunConfig& cfg) const = 0;
  // Called before stage `index` of the recipe runs (also when a run resumes inside or
  // after it, and with the last stage when a finished model is loaded): models whose
  // stages have different objectives (k-DVAE: VaDE, then k networks) switch here.
  virtual void set_stage(int64_t index) { (void)index; }

  // Pretraining objective (autoencoder) and its parameters; empty when there is none.
  // `input` is what the encoder sees: x itself, or x corrupted by [pretrain] input_dropout
  // (the denoising autoencoder of DEC's stacked-AE pretraining, noise.h); the loss
  // reconstructs the clean x.
  virtual LossTerms pretrain_loss(const torch::Tensor& x, const torch::Tensor& input) = 0;
  virtual std::vector<torch::Tensor> pretrain_parameters() = 0;
  // What a stage artifact of `family` (Stage::artifact) holds: the parameters that stage
  // trains, in a fixed order. Empty when the model has no such stage.
  virtual std::vector<torch::Tensor> artifact_parameters(const std::string& family) {
    (void)family;
    return {};
  }
  // A finished run this model starts from instead of training the first stages of its
  // recipe itself: that run's checkpoint and the artifact family of the stage it replaces
  // (the stages up to and including it are skipped; its parameters are
  // artifact_parameters(family), loaded from the checkpoint of a `family` model). Empty
  // checkpoint: none, the whole recipe runs.
  struct StartFrom {
    std::string checkpoint, family;
  };
  virtual StartFrom start_from() const { return {}; }
  // Latent codes used to initialise the mixture, [B, J].
  virtual torch::Tensor embed(const torch::Tensor& x) = 0;
  // Fits the mixture to every rank's embeddings (collective), sets the prior.
  virtual std::string init_mixture(dist::Communicator& comm, const torch::Tensor& z_local, const RunConfig& cfg) = 0;

  // Parameter groups of the main objective: networks and mixture (separate learning rates).
  virtual std::vector<torch::Tensor> network_parameters() = 0;
  virtual std::vector<torch::Tensor> mixture_parameters() = 0;
};

}  // namespace mixvae::models
