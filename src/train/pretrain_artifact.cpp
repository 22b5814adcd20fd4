#include "train/pretrain_artifact.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <iomanip>
#include <sstream>
#include <thread>

#include "core/errors.h"
#include "core/files.h"
#include "core/log.h"
#include "core/sha256.h"
#include "core/signals.h"
#include "data/h5.h"
#include "models/registry.h"

namespace mixvae::train {
namespace fs = std::filesystem;
namespace h5 = mixvae::data::h5;

namespace {
std::string data_identity(const std::string& path) {
  std::error_code ec;
  fs::path canon = fs::weakly_canonical(path, ec);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return (ec ? path : canon.string()) + " (missing)";
  std::ostringstream os;
  os << (ec ? path : canon.string()) << " size=" << st.st_size << " mtime=" << st.st_mtim.tv_sec << "."
     << st.st_mtim.tv_nsec;
  return os.str();
}

std::string params_digest(const std::vector<torch::Tensor>& params) {
  Sha256 sha;
  for (const auto& p : params) {
    torch::Tensor c = p.detach().to(torch::kCPU).to(torch::kFloat32).contiguous();
    sha.add(c.data_ptr(), size_t(c.numel()) * sizeof(float));
  }
  return sha.hex();
}
}  // namespace

PretrainKey pretrain_key(const RunConfig& cfg, int world_size) {
  PretrainKey k;
  k.family = models::pretrain_family(cfg.model.name);
  if (k.family.empty()) return k;
  std::ostringstream t;
  t << std::setprecision(17);  // every double exactly (0.002 and 0.0020001 differ)
  // The pretrained weights depend on these and nothing else: the initial weights (seed,
  // architecture), the data and its order (file, shuffle mode, ranks), the objective
  // (likelihood, reconstruction weight) and the optimiser (the [pretrain] section). Every
  // key named is one that changes training (changes_training, core/config.h).
  t << "family=" << k.family << "\n"
    << "data=" << data_identity(cfg.data.path) << "\n"
    << "data.shuffle=" << cfg.data.shuffle << "\n"
    << "world_size=" << world_size << "\n"
    << "dist.device=" << cfg.dist.device << "\n"
    << "model.hidden=" << cfg.model.hidden << "\n"
    << "model.latent=" << cfg.model.latent << "\n"
    << "model.likelihood=" << cfg.model.likelihood << "\n"
    << "model.recon_weight=" << cfg.model.recon_weight << "\n"
    << "model.logvar_clamp=" << cfg.model.logvar_clamp << "\n"
    << "pretrain.epochs=" << cfg.pretrain.epochs << "\n"
    << "pretrain.batch_size=" << cfg.pretrain.batch_size << "\n"
    << "pretrain.lr=" << cfg.pretrain.lr << "\n"
    << "pretrain.adam_eps=" << cfg.pretrain.adam_eps << "\n";
  if (cfg.pretrain.input_dropout != 0)
    t << "pretrain.input_dropout=" << cfg.pretrain.input_dropout << "\n";  // 0: as before
  if (k.family == "gmvae-ae")  // the w heads sit between the encoder and the decoder: their size moves its init
    t << "gmvae.w_dim=" << cfg.opt_int("gmvae.w_dim") << "\n"
      << "gmvae.gaussian_variance=" << cfg.opt_string("gmvae.gaussian_variance") << "\n";
  t << "train.adam=" << cfg.train.adam << "\n"
    << "train.seed=" << cfg.train.seed << "\n";
  if (cfg.train.precision != "fp32") t << "train.precision=" << cfg.train.precision << "\n";  // fp32: keys as before
  k.text = t.str();
  k.hash = sha256_bytes(k.text.data(), k.text.size()).substr(0, 16);
  return k;
}

PretrainKey stage_key(const RunConfig& cfg, int world_size, const std::string& family, int64_t stage_index) {
  PretrainKey k;
  const PretrainKey pre = pretrain_key(cfg, world_size);
  if (family.empty() || pre.family.empty()) return k;  // the stage starts from the pretraining
  k.family = family;
  std::ostringstream t;
  t << std::setprecision(17);  // every double exactly (0.002 and 0.0020001 differ)
  // Only keys that change training (changes_training, core/config.h: not train.threads,
  // eval_every, collapse_warn, the dist speed keys or [output]; the thread count is left
  // out although it changes the last bits of BLAS sums). Test:
  // PretrainArtifact.KeysNameOnlyKeysThatChangeTraining.
  t << "stage=" << family << "@" << stage_index << "\n"
    << pre.text << "model.clusters=" << cfg.model.clusters << "\n"
    << "model.init=" << cfg.model.init << "\n"
    << "model.init_iters=" << cfg.model.init_iters << "\n"
    << "model.init_restarts=" << cfg.model.init_restarts << "\n"
    << (cfg.model.init_fits != 1 ? "model.init_fits=" + std::to_string(cfg.model.init_fits) + "\n"
                                 : "")  // 1: keys as before
    << (cfg.model.init == "umap" ? "model.umap_neighbors=" + std::to_string(cfg.model.umap_neighbors) +
                                       "\nmodel.umap_epochs=" + std::to_string(cfg.model.umap_epochs) + "\n" +
                                       (cfg.model.umap_init != "pca" ? "model.umap_init=" + cfg.model.umap_init + "\n"
                                                                     : std::string())  // pca: keys as before
                                 : "")
    << "train.epochs=" << cfg.train.epochs << "\n"
    << "train.batch_size=" << cfg.train.batch_size << "\n"
    << "train.lr=" << cfg.train.lr << "\n"
    << "train.lr_mixture=" << cfg.train.lr_mixture << "\n"
    << "train.lr_decay=" << cfg.train.lr_decay << "\n"
    << "train.lr_decay_every=" << cfg.train.lr_decay_every << "\n"
    << "train.lr_floor=" << cfg.train.lr_floor << "\n"
    << "train.adam_eps=" << cfg.train.adam_eps << "\n"
    << "train.divergence_retries=" << cfg.train.divergence_retries << "\n"
    << "train.divergence_lr_factor=" << cfg.train.divergence_lr_factor << "\n"
    << "checkpoint.every=" << cfg.checkpoint.every << "\n";  // a rollback returns to the last checkpoint
  k.text = t.str();
  k.hash = sha256_bytes(k.text.data(), k.text.size()).substr(0, 16);
  return k;
}

bool await_artifacts(dist::Communicator& comm, const std::vector<std::string>& paths, std::vector<LockFile>* locks,
                     const std::function<void()>& hook) {
  bool told = false;
  for (;;) {
    int64_t state = 0;  // rank 0: 1 every file there, 2 the missing ones' locks taken, 0 wait
    std::string waiting_for, holder;
    dist::agree(comm, [&] {
      if (comm.rank() != 0) return;
      std::vector<std::string> missing;
      for (const auto& p : paths)
        if (!fs::exists(p)) missing.push_back(p);
      if (missing.empty()) {
        state = 1;
        return;
      }
      std::error_code ec;
      fs::create_directories(fs::path(missing.front()).parent_path(), ec);
      std::vector<LockFile> taken;
      for (const auto& p : missing) {
        LockFile l;
        if (!LockFile::try_take(lock_file_of(p), &l, &holder)) {
          waiting_for = p;
          return;  // the locks taken so far are released: no waiting while holding one
        }
        taken.push_back(std::move(l));
      }
      // A producer may have saved and released between the look and the lock.
      bool all_there = true;
      for (const auto& p : paths) all_there = all_there && fs::exists(p);
      if (all_there) {
        state = 1;
        return;
      }
      state = 2;
      *locks = std::move(taken);
    });
    int64_t v[2] = {state, signals::stop_requested() ? 1 : 0};
    comm.all_reduce(v, 2, dist::DType::I64, dist::ReduceOp::Max);
    if (v[0] == 1) return true;
    if (v[0] == 2) return false;
    if (v[1] != 0)
      throw PreemptedError("stopped while waiting for the artifact " +
                           (waiting_for.empty() ? paths.front() : waiting_for) + ", which another process is making");
    if (!told) {
      log::info("waiting for the artifact " + waiting_for + ", which another process is making (" + holder + ")");
      told = true;
    }
    if (hook) hook();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

void load_pretrained(const std::string& path, const PretrainKey& key, const std::vector<torch::Tensor>& params) {
  h5::File f = h5::open_read(path);
  if (h5::read_attr_string(f, "format").value_or("") != "mixvae-pretrained")
    throw data_error(path, "not a mixvae pretraining artifact");
  if (h5::read_attr_string(f, "key").value_or("") != key.text)
    throw data_error(path, "pretraining artifact was made for another key (remove it; it is rebuilt on demand)");
  const int64_t n = h5::read_attr_int(f, "count").value_or(-1);
  if (n != int64_t(params.size()))
    throw data_error(path, "pretraining artifact holds " + std::to_string(n) + " tensors, the model has " +
                               std::to_string(params.size()));
  std::vector<torch::Tensor> loaded;
  for (size_t i = 0; i < params.size(); ++i) {
    std::vector<hsize_t> dims;
    auto v = h5::read_array<float>(f, "params/" + std::to_string(i), &dims);
    std::vector<int64_t> shape(dims.begin(), dims.end());
    if (torch::IntArrayRef(shape) != params[i].sizes())
      throw data_error(path, "tensor " + std::to_string(i) + " of the pretraining artifact has another shape");
    loaded.push_back(torch::from_blob(v.data(), shape, torch::kFloat32).clone());
  }
  if (params_digest(loaded) != h5::read_attr_string(f, "sha256").value_or(""))
    throw data_error(path, "pretraining artifact checksum mismatch (corrupted file; remove it)");
  torch::NoGradGuard ng;
  for (size_t i = 0; i < params.size(); ++i) params[i].copy_(loaded[i]);
}

void save_pretrained(const std::string& path, const PretrainKey& key, const std::vector<torch::Tensor>& params,
                     const std::string& source) {
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  write_atomically(path, "pretraining artifact", [&](const std::string& tmp) {
    h5::File f = h5::create(tmp);
    for (size_t i = 0; i < params.size(); ++i) {
      torch::Tensor c = params[i].detach().to(torch::kCPU).to(torch::kFloat32).contiguous();
      std::vector<hsize_t> dims(c.sizes().begin(), c.sizes().end());
      h5::write_array<float>(f, "params/" + std::to_string(i), c.data_ptr<float>(), dims);
    }
    h5::write_attr(f, "format", std::string("mixvae-pretrained"));
    h5::write_attr(f, "key", key.text);
    h5::write_attr(f, "count", int64_t(params.size()));
    h5::write_attr(f, "source", source);
    h5::write_attr(f, "sha256", params_digest(params));
    f.flush();
    f.close();
  });
}

}  // namespace mixvae::train
