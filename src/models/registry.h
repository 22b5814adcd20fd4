#pragma once
// The model registry: `[model] name = NAME` -> a ClusteringModel. Each entry names its
// own config section's keys, which are registered with the config parser before any
// config is read. Adding a model = its file(s), one entry in registry.cpp, a config.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "models/clustering_model.h"

namespace mixvae::models {

struct ModelInfo {
  std::string name, summary;
  std::vector<OptionSpec> options;  // the keys of section [name]
  std::function<std::shared_ptr<ClusteringModel>(int64_t input_dim, const RunConfig& cfg, bool bernoulli)> make;
  // Models of one family train the same autoencoder in their pretraining stage (same
  // parameters, initialised first from the seed, same objective), so they can share the
  // pretrained weights (train/pretrain_artifact.h). "": no pretraining to share.
  std::string pretrain_family;
};

const std::vector<ModelInfo>& model_registry();
// Registers every model's name and options with the config parser (idempotent).
void register_models();
// The pretraining family of a model name ("" for none or an unknown name).
std::string pretrain_family(const std::string& model_name);
// The model for a config and an input dimension; UsageError for an unknown name.
std::shared_ptr<ClusteringModel> make_model(const RunConfig& cfg, int64_t input_dim, bool bernoulli);

}  // namespace mixvae::models
