#pragma once
// Batched seed ensembles: S runs of one VaDE configuration that differ only in train.seed,
// trained in one process (on the ranks of one communicator) as batched matrix products
// (models/vade_ensemble.h). Each member has its own initialisation (the model built from
// its seed, exactly as `mixvae train` builds it), its own data order and noise (the same
// mix_seed streams as a separate run) and its own mixture fit; so member s follows the
// separate run of seed s up to float rounding (tests/mpi/test_ensemble.cpp).
//
// Each member writes an ordinary run directory (config.ini, metrics.jsonl, result.json,
// checkpoint.h5 of the finished model, samples.png): `mixvae eval`, `sample` and
// `report` read it as any other run. While training, the ensemble's own checkpoint
// (every member's parameters and optimiser state) is STATE_DIR/checkpoint.h5, which
// resume() continues from; SIGTERM/SIGUSR1 stop at a step boundary as in Trainer.
#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "dist/communicator.h"
#include "train/trainer.h"

namespace mixvae::models {
class Vade;
class VadeEnsemble;
}  // namespace mixvae::models

namespace mixvae::train {

// "" when cfg can be trained as an ensemble, else why not (one line).
std::string ensemble_unsupported(const RunConfig& cfg);

class EnsembleTrainer {
 public:
  // seeds[i] trains into dirs[i] (its output.dir); the ensemble's checkpoint goes to state_dir.
  EnsembleTrainer(dist::Communicator& comm, RunConfig cfg, std::vector<uint64_t> seeds, std::vector<std::string> dirs,
                  std::string state_dir);
  ~EnsembleTrainer();
  // resume: continue from STATE_DIR/checkpoint.h5 (an error if there is none).
  std::vector<TrainResult> run(bool resume);
  void set_step_hook(std::function<void()> hook) { step_hook_ = std::move(hook); }
  // As Trainer::set_pretrain_cache: each member's pretrained autoencoder and VaDE stage are
  // loaded from / saved to this folder under the same keys a separate run uses.
  void set_pretrain_cache(std::string dir) { artifact_dir_ = std::move(dir); }
  // Stop (with a checkpoint, as if killed) after this many epochs of the main stage (tests).
  void set_stop_after_main_epochs(int64_t epochs) { stop_after_ = epochs; }
  // Member i's parameters as its Vade would hold them (tests).
  std::vector<torch::Tensor> member_parameters(size_t i);

 private:
  dist::Communicator& comm_;
  RunConfig cfg_;
  std::vector<uint64_t> seeds_;
  std::vector<std::string> dirs_;
  std::vector<RunConfig> member_cfg_;
  std::string state_dir_, artifact_dir_;
  std::function<void()> step_hook_;
  std::vector<LockFile> artifact_locks_;  // rank 0: the artifacts this ensemble makes (pretrain_artifact.h)
  int64_t stop_after_ = 0;
  TrainData data_;
  bool bernoulli_ = true;
  torch::Device device_ = torch::kCPU;
  std::shared_ptr<models::VadeEnsemble> ens_;
  std::shared_ptr<models::ClusteringModel> scratch_;           // one Vade that member s is copied into
  models::Vade* vade_ = nullptr;                               // scratch_ as a Vade
  std::vector<std::map<std::string, std::string>> artifacts_;  // per member: family -> saved:/reused:<file>

  std::string tag() const;  // the checkpoint's model field: "vade-ensemble seeds=0,1,..."
  std::string checkpoint_path() const;
  void write_checkpoint(int64_t stage_index, const std::string& stage_name, int64_t epoch, torch::optim::Adam* opt,
                        const CheckpointMeta* mid = nullptr);
  std::unique_ptr<torch::optim::Adam> make_optimizer(const models::Stage& stage);
  // One epoch of every member; returns each member's mean loss and fills parts[member][part].
  std::vector<double> run_epoch(const models::Stage& stage, int64_t stage_index, int64_t epoch, torch::optim::Adam& opt,
                                dist::GradReducer& reducer, std::vector<std::vector<double>>* parts,
                                std::vector<std::string>* part_names, const CheckpointMeta* mid);
  bool reuse_artifacts(const models::Stage& stage, int64_t stage_index);
  void save_artifacts(const models::Stage& stage, int64_t stage_index);
  void log_member(size_t i, const std::string& json_line);
  template <class Fn>
  void on_rank0(Fn&& fn) {
    dist::agree(comm_, [&] {
      if (comm_.rank() == 0) fn();
    });
  }
};

}  // namespace mixvae::train
