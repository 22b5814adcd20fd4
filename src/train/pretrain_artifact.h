#pragma once
// Pretraining as an artifact, not a download: the pretrained autoencoder of a (data file,
// architecture, pretraining config, seed, world size) is saved once under a cache folder
// (a sweep's RUNS/pretrained/) and loaded by every later run that would train the same
// thing (VaDE, AE+GMM, k-DVAE's and k-DAE's initialiser share one), so a sweep never
// pretrains the same thing twice and any result names the artifact it started from.
//
// A stage whose result several models share (models::Stage::artifact, e.g. VaDE's ELBO
// stage, which k-DVAE runs first) is an artifact the same way: a VaDE run and the k-DVAE
// run of the same seed train it once. Its key adds everything the stage's values depend on.
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/files.h"
#include "dist/communicator.h"

namespace mixvae::train {

struct PretrainKey {
  std::string family;  // the registry's pretraining family ("" : the model has none)
  std::string text;    // every input the pretrained weights depend on, one per line
  std::string hash;    // first 16 hex digits of SHA-256(text)
  std::string file_name() const { return family + "-" + hash + ".h5"; }
};

// The key of cfg's pretraining on `world_size` ranks. The data file enters by its
// canonical path, size and modification time (a rewritten file is a new artifact).
PretrainKey pretrain_key(const RunConfig& cfg, int world_size);
// The key of the stage artifact `family` at recipe position `stage_index` (the noise of
// a stage is drawn from its index): the pretraining's key, the mixture initialisation and
// every [train] / [checkpoint] value that changes the trained parameters.
PretrainKey stage_key(const RunConfig& cfg, int world_size, const std::string& family, int64_t stage_index);

// Collective over comm (rank 0 looks at the files, the others follow): true when every
// file of `paths` exists (load them); false when this group is to make the missing ones,
// with *locks holding their lock files (lock_file_of(path), core/files.h; release them after
// saving, destruction releases them too). Artifacts are made once across independent
// processes (the slices of a job array, two sweeps sharing RUNS/pretrained): while another
// process holds the lock of a missing one, this waits, calling `hook` on every rank
// between looks (a sweep's coordinator serves its queue there), and a stop request
// (SIGTERM/SIGUSR1) ends the wait with PreemptedError. Takes the locks of all the missing
// files or none (never waits while holding one).
bool await_artifacts(dist::Communicator& comm, const std::vector<std::string>& paths, std::vector<LockFile>* locks,
                     const std::function<void()>& hook);

// Loads an artifact into `params` (in order) after checking its checksum, key and
// shapes; DataError naming the file otherwise.
void load_pretrained(const std::string& path, const PretrainKey& key, const std::vector<torch::Tensor>& params);
// Writes it atomically (unique temporary file, fsync, rename): concurrent writers of the
// same key are harmless, readers never see half a file.
void save_pretrained(const std::string& path, const PretrainKey& key, const std::vector<torch::Tensor>& params,
                     const std::string& source);

}  // namespace mixvae::train
