#include "train/trainer.h"

#include <H5public.h>
#include <torch/version.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/errors.h"
#include "core/files.h"
#include "core/log.h"
#include "core/memory.h"
#include "core/signals.h"
#include "core/threads.h"
#include "dist/grad_reducer.h"
#include "dist/nccl_communicator.h"
#include "dist/tensor_ops.h"
#include "models/mlp.h"
#include "models/noise.h"
#include "models/registry.h"
#include "train/checkpoint.h"
#include "train/device.h"
#include "train/fused_adam.h"
#include "train/pretrain_artifact.h"
#include "train/sample_grid.h"

namespace mixvae::train {
namespace fs = std::filesystem;
using json = nlohmann::json;

std::string next_stage_name(const std::vector<models::Stage>& recipe, int64_t si) {
  return size_t(si + 1) < recipe.size() ? recipe[size_t(si + 1)].name : "done";
}

namespace {
double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

std::string checkpoint_path(const RunConfig& cfg) { return (fs::path(cfg.output.dir) / "checkpoint.h5").string(); }
}  // namespace

bool use_bernoulli(const RunConfig& cfg, bool unit_interval) {
  if (cfg.model.likelihood == "bernoulli") {
    if (!unit_interval)
      throw UsageError(cfg.data.path + ": model.likelihood = bernoulli needs features in [0,1]; use gaussian");
    return true;
  }
  if (cfg.model.likelihood == "gaussian") return false;
  return unit_interval;
}

int configure_cpu(const RunConfig& cfg) {
  const int threads = cfg.train.threads > 0 ? int(cfg.train.threads) : default_threads();
  torch::set_num_threads(threads);
  // Denormal floats (Adam second moments of dead units decaying towards 0) cost ~100x per
  // operation on x86; flushing them to zero changes no result that matters.
  at::globalContext().setFlushDenormal(true);
  // The setting is per thread (MXCSR): set it on the intra-op (OpenMP) threads too, which
  // may already exist and which run half of every matrix product.
  at::parallel_for(0, threads, 1, [](int64_t, int64_t) { at::globalContext().setFlushDenormal(true); });
  return threads;
}

models::Noise step_noise(uint64_t seed, int64_t stage_index, int64_t epoch, int64_t step, const StepSlice& sl,
                         const TrainData& data, int rank, torch::Device device) {
  const uint64_t nseed = models::mix_seed(seed, 2000 + stage_index, epoch, step, data.global_mode ? 0 : rank + 1);
  if (data.global_mode) return models::Noise(nseed, sl.global_rows, sl.begin, sl.end, device);
  return models::Noise(nseed, sl.end - sl.begin, 0, sl.end - sl.begin, device);
}

double decayed_lr(const RunConfig& cfg, double base, int64_t epoch) {
  // lr_e = max(floor, lr0 * decay^floor(e / every)), e counted from 0: the step decay of
  // the VaDE paper (x0.9 every 10 epochs) with the reference's floor.
  const double factor =
      cfg.train.lr_decay_every > 0 ? std::pow(cfg.train.lr_decay, double(epoch / cfg.train.lr_decay_every)) : 1.0;
  // The floor never lifts a rate above its own base: a group configured below the floor
  // (VaDE's HHAR mixture at 2e-5, a slower mixture on MNIST) keeps its base.
  return std::max(std::min(cfg.train.lr_floor, base), base * factor);
}

Trainer::Trainer(dist::Communicator& comm, RunConfig cfg) : comm_(comm), cfg_(std::move(cfg)) {}

namespace {
// A stage's learning rates: its own, else [train]'s.
double stage_lr(const models::Stage& st, const RunConfig& c) { return st.lr > 0 ? st.lr : c.train.lr; }
double stage_lr_mixture(const models::Stage& st, const RunConfig& c) {
  return st.lr_mixture > 0 ? st.lr_mixture : c.train.lr_mixture;
}
}  // namespace

std::unique_ptr<torch::optim::Adam> Trainer::make_optimizer(const models::Stage& stage) {
  if (stage.kind == models::StageKind::Pretrain) {
    auto opts =
        torch::optim::AdamOptions((stage.lr > 0 ? stage.lr : cfg_.pretrain.lr) * lr_scale_).eps(cfg_.pretrain.adam_eps);
    if (cfg_.train.adam == "fused") return std::make_unique<FusedAdam>(model_->pretrain_parameters(), opts);
    return std::make_unique<torch::optim::Adam>(model_->pretrain_parameters(), opts);
  }
  // Two parameter groups: networks and mixture, each with its own learning rate
  // (VaDE's adam_nn and adam_gmm, models-math §3.3); models without mixture parameters
  // in this stage have one group.
  const double lr = stage_lr(stage, cfg_) * lr_scale_, lr_mix = stage_lr_mixture(stage, cfg_) * lr_scale_;
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(model_->network_parameters(), std::make_unique<torch::optim::AdamOptions>(
                                                        torch::optim::AdamOptions(lr).eps(cfg_.train.adam_eps)));
  auto mix = model_->mixture_parameters();
  if (!mix.empty())
    groups.emplace_back(
        mix, std::make_unique<torch::optim::AdamOptions>(torch::optim::AdamOptions(lr_mix).eps(cfg_.train.adam_eps)));
  if (cfg_.train.adam == "fused")
    return std::make_unique<FusedAdam>(std::move(groups), torch::optim::AdamOptions(lr).eps(cfg_.train.adam_eps));
  return std::make_unique<torch::optim::Adam>(std::move(groups),
                                              torch::optim::AdamOptions(lr).eps(cfg_.train.adam_eps));
}

void Trainer::set_learning_rates(const models::Stage& stage, int64_t epoch, torch::optim::Adam& opt) {
  // Without decay the optimiser keeps the rates make_optimizer gave it (scale included).
  if (stage.kind != models::StageKind::Main || !stage.decay) return;
  double base[2] = {stage_lr(stage, cfg_), stage_lr_mixture(stage, cfg_)};
  auto& groups = opt.param_groups();
  for (size_t g = 0; g < groups.size() && g < 2; ++g)
    static_cast<torch::optim::AdamOptions&>(groups[g].options()).lr(decayed_lr(cfg_, base[g], epoch) * lr_scale_);
}

double Trainer::run_epoch(const models::Stage& stage, int64_t stage_index, int64_t epoch, torch::optim::Adam& opt,
                          dist::GradReducer& reducer, std::vector<double>* part_sums,
                          std::vector<std::string>* part_names, const CheckpointMeta* mid) {
  model_->train(true);
  const uint64_t seed = cfg_.train.seed;
  const int64_t batch = stage.kind == models::StageKind::Pretrain ? cfg_.pretrain.batch_size : cfg_.train.batch_size;
  // A mid-epoch checkpoint continues with the rows its ranks had not reached, re-planned
  // when it was written on another number of ranks.
  const EpochPlan plan = epoch_plan(
      data_, comm_.rank(), comm_.size(), batch,
      [&](int r) { return models::mix_seed(seed, 1000 + stage_index, epoch, data_.global_mode ? 0 : r + 1); },
      mid ? mid->step : 0, mid ? int(mid->world_size) : 0);
  log::Progress progress(cfg_.output.progress, stage.name, epoch + 1, stage.epochs, plan.steps(), data_.n_global);
  double local_sum = 0, shown = 0;
  int64_t seen = 0, first_step = 0;
  // The loss parts are summed where they are computed and read once per epoch (reading
  // each part every step would add a device synchronisation per part per step on a GPU).
  torch::Tensor part_acc;
  if (mid && mid->step > 0) {
    // Continue a stopped epoch: the same plan, from the next step; rank 0 carries the
    // global sums of the steps already done (only their sum over ranks is ever used).
    first_step = mid->step;
    seen = mid->epoch_seen;
    shown = mid->epoch_loss_sum;
    if (comm_.rank() == 0) local_sum = mid->epoch_loss_sum;
    if (!mid->epoch_part_sums.empty()) {
      part_acc = torch::tensor(mid->epoch_part_sums, torch::kFloat64).to(device_);
      if (comm_.rank() != 0) part_acc.zero_();
    }
  }
  times_ = EpochTimes{};
  for (int64_t s = first_step; s < plan.steps(); ++s) {
    if (step_hook_) step_hook_();
    for (auto& lock : artifact_locks_) lock.heartbeat();  // rank 0, while it makes an artifact
    const double t_start = now_s();
    StepSlice sl = plan.step(s);
    torch::Tensor xb = data_.x.index_select(0, device_.is_cpu() ? sl.rows : sl.rows.to(device_));
    models::LossTerms terms;
    if (stage.kind == models::StageKind::Pretrain) {
      torch::Tensor input = xb;
      if (const double p = cfg_.pretrain.input_dropout; p > 0)  // denoising: the encoder sees a corrupted x
        input = models::input_dropout(
            xb, step_noise(seed, stage_index, epoch, s, sl, data_, comm_.rank(), device_).uniform(xb.size(1)), p);
      terms = model_->pretrain_loss(xb, input);
    } else {
      models::Noise noise = step_noise(seed, stage_index, epoch, s, sl, data_, comm_.rank(), device_);
      terms = model_->loss(xb, noise);
    }
    reducer.zero_grad();
    reducer.begin_step();
    (terms.total / double(sl.global_rows)).backward();
    double local = terms.total.item<double>();
    bool stop = signals::stop_requested();
    const double t_computed = now_s();
    double global = reducer.all_reduce(local, &stop);
    const double t_reduced = now_s();
    if (!std::isfinite(global)) {
      throw DivergedError("loss is " + std::to_string(global) + " at " + stage.name + " epoch " +
                          std::to_string(epoch + 1) + " step " + std::to_string(s + 1) + "");
    }
    opt.step();
    times_.compute += t_computed - t_start;
    times_.all_reduce += t_reduced - t_computed;
    times_.optimizer += now_s() - t_reduced;
    local_sum += local;
    if (part_sums && !terms.parts.empty()) {
      std::vector<torch::Tensor> values;
      for (auto& [n, v] : terms.parts) values.push_back(v.to(torch::kFloat64));
      torch::Tensor step_parts = torch::stack(values);
      if (!part_acc.defined()) {
        for (auto& [n, v] : terms.parts) part_names->push_back(n);
        part_acc = step_parts;
      } else {
        part_acc += step_parts;
      }
    }
    seen += sl.global_rows;
    shown += global;
    progress.step(s + 1, shown / double(seen));
    if (stop) {
      // Every rank agreed on the stop at this step (it rode along with the gradients).
      CheckpointMeta at;
      at.step = s + 1;
      at.epoch_seen = seen;
      at.epoch_loss_sum = comm_.all_reduce_value(local_sum);
      if (part_acc.defined()) {
        torch::Tensor p = part_acc.to(torch::kCPU).contiguous();
        at.epoch_part_sums.assign(p.data_ptr<double>(), p.data_ptr<double>() + p.numel());
        comm_.all_reduce(at.epoch_part_sums);
      }
      write_checkpoint(stage_index, stage.name, epoch, &opt, &at);
      throw PreemptedError("stopped by " +
                           std::string(signals::stop_signal() ? strsignal(signals::stop_signal()) : "request") +
                           " at " + stage.name + " epoch " + std::to_string(epoch + 1) + " step " +
                           std::to_string(s + 1) + "; checkpoint written to " + checkpoint_path(cfg_));
    }
  }
  double total = comm_.all_reduce_value(local_sum);
  if (part_sums && part_acc.defined()) {
    part_acc = part_acc.to(torch::kCPU).contiguous();
    part_sums->assign(part_acc.data_ptr<double>(), part_acc.data_ptr<double>() + part_acc.numel());
  }
  if (part_sums) comm_.all_reduce(*part_sums);
  return seen > 0 ? total / double(seen) : 0.0;
}

CheckpointMeta checkpoint_meta(const RunConfig& cfg, const std::string& model, const TrainData& data, bool bernoulli,
                               int world_size, int64_t stage_index, const std::string& stage_name, int64_t epoch,
                               const CheckpointMeta* mid) {
  CheckpointMeta meta = mid ? *mid : CheckpointMeta{};
  meta.stage_index = stage_index;
  meta.epoch = epoch;
  meta.stage_name = stage_name;
  meta.model = model;
  meta.input_dim = data.d;
  meta.bernoulli = bernoulli;
  meta.dataset = data.name;
  meta.config_ini = cfg.to_ini();
  meta.config_hash = cfg.hash();
  std::error_code ec;
  const fs::path abs = fs::absolute(cfg.data.path, ec);
  meta.data_file = ec ? std::string() : abs.lexically_normal().string();
  meta.world_size = world_size;
  return meta;
}

void check_resume_config(const std::string& path, const CheckpointMeta& meta, const RunConfig& cfg) {
  RunConfig stored;
  try {
    stored = RunConfig::load_text(meta.config_ini, path + " (its config)");
  } catch (const UsageError& e) {
    throw UsageError(std::string(e.what()) +
                     "; this mixvae cannot compare the checkpoint's config with this run's (resume with the mixvae "
                     "that wrote it, or choose another output.dir to start afresh)");
  }
  stored.data.path = cfg.data.path;
  const std::vector<std::string> diff = training_differences(stored, cfg);
  if (diff.empty()) return;
  std::string keys;
  for (const auto& d : diff) keys += (keys.empty() ? "" : "; ") + d;
  throw UsageError(path + ": the checkpoint was trained with other values of key(s) that change training: " + keys +
                   " (checkpoint -> this run); resume with the checkpoint's values, or choose another output.dir to "
                   "start afresh");
}

void check_finite(torch::nn::Module& model, const std::string& stage_name, int64_t epoch) {
  // A NaN gradient with a finite loss leaves NaN parameters that the next step's loss
  // would show; checked on every rank (the parameters are the same everywhere).
  torch::NoGradGuard ng;
  for (const auto& p : model.parameters())
    if (!torch::isfinite(p).all().item<bool>())
      throw DivergedError("parameters became NaN/Inf in " + stage_name + " epoch " + std::to_string(epoch));
}

void Trainer::write_checkpoint(int64_t stage_index, const std::string& stage_name, int64_t epoch,
                               torch::optim::Adam* opt, const CheckpointMeta* mid) {
  check_finite(*model_, stage_name, epoch);
  on_rank0([&] {
    CheckpointMeta meta =
        checkpoint_meta(cfg_, model_->name(), data_, bernoulli_, comm_.size(), stage_index, stage_name, epoch, mid);
    meta.lr_scale = lr_scale_;
    meta.rollbacks = rollbacks_;
    save_checkpoint(checkpoint_path(cfg_), *model_, opt, meta);
  });
}

void Trainer::log_metrics(const std::string& line) {
  on_rank0([&] {
    const fs::path path = fs::path(cfg_.output.dir) / "metrics.jsonl";
    std::ofstream out(path, std::ios::app);
    out << line << "\n";
    out.flush();
    if (!out) throw data_error(path.string(), std::string("cannot append: ") + std::strerror(errno));
  });
}

TrainResult Trainer::run(bool resume) {
  start_time_ = now_s();
  DirLock dir_lock;  // rank 0: output.dir is this run's until run() returns or throws
  // A rank that stops, hangs or dies ends the run within dist.timeout_s, named, instead
  // of leaving the others waiting in a collective (for this run only: a sweep's group
  // then waits for its next run as long as it takes).
  dist::ScopedTimeout timeout(comm_, cfg_.dist.timeout_s);
  const int threads = configure_cpu(cfg_);

  dist::agree(comm_, [&] {
    device_ = select_device(cfg_.dist.device, local_rank());
    if (cfg_.dist.backend == "nccl" && !device_.is_cuda())
      throw UsageError("dist.backend = nccl needs GPU tensors (dist.device = cuda or auto with a GPU)");
    if (cfg_.dist.backend == "nccl" && !dist::nccl_available())
      throw UsageError("dist.backend = nccl, but this mixvae was built without NCCL (docs/gpu.md)");
  });
  // Every rank on a GPU or every rank on the CPU: the GPU-only collectives below must pair up.
  agree_device_kind(comm_, device_.is_cuda());
  models::set_matmul_precision(cfg_.train.precision);
  if (cfg_.train.precision == "bf16" && device_.is_cpu() && !__builtin_cpu_supports("avx512bf16") &&
      !__builtin_cpu_supports("amx-bf16"))
    log::warn(
        "train.precision = bf16 on a CPU without AVX512-BF16 or AMX: LibTorch's bf16 products run far "
        "slower than fp32 here (25-34x measured on AVX2, docs/performance.md)");
  // NCCL needs a GPU of its own per rank. Two ranks on one GPU are told apart by host name
  // and PCI bus id (not by counting ranks per node against the GPUs a process sees: with
  // --gpus-per-task=1 each rank sees one, its own); then `auto` keeps the MPI path (host
  // copies) with a warning, and `nccl` is refused with a clear message.
  std::string shared_gpu;  // "" or which ranks share which GPU
  if (device_.is_cuda() && comm_.size() > 1 && dist::nccl_available()) {
    const std::vector<dist::GpuSeat> seats = dist::gpu_seats(comm_, int(device_.index()));
    shared_gpu = dist::describe_shared_gpu(seats, dist::shared_gpu_ranks(seats));
  }
  dist::agree(comm_, [&] {
    if (cfg_.dist.backend == "nccl" && !shared_gpu.empty())
      throw UsageError("dist.backend = nccl needs one GPU per rank, but " + shared_gpu +
                       " (start at most one rank per GPU, or use dist.backend = mpi or auto)");
  });
  if (!shared_gpu.empty() && cfg_.dist.backend == "auto")
    log::warn("GPU collectives go through MPI (host copies), not NCCL: " + shared_gpu);
  if (device_.is_cuda() && comm_.size() > 1 && cfg_.dist.backend != "mpi" && dist::nccl_available() &&
      shared_gpu.empty()) {
    // Gradients and mixture statistics are all-reduced on the GPUs; host values still go
    // through comm_ (the NCCL communicator forwards host buffers to it).
    nccl_ = dist::make_nccl_communicator(comm_, int(device_.index()), cfg_.dist.timeout_s);
  }
  data_ = load_train_data(comm_, cfg_);
  dist::agree(comm_, [&] { bernoulli_ = use_bernoulli(cfg_, data_.unit_interval); });
  if (!device_.is_cpu()) {
    // The shard goes to the GPU once, through pinned memory; labels stay on the host
    // (evaluation counts on the CPU).
    data_.x = data_.x.pin_memory().to(device_, /*non_blocking=*/true);
  }
  torch::manual_seed(cfg_.train.seed);
  model_ = models::make_model(cfg_, data_.d, bernoulli_);  // initialised on the CPU: the same weights on any device
  model_->to(device_);
  {
    std::vector<torch::Tensor> all;
    for (auto& p : model_->parameters()) all.push_back(p);
    for (auto& b : model_->buffers()) all.push_back(b);
    dist::broadcast_parameters(tcomm(), all, 0);
  }

  // A finished run to start from is checked and loaded before the output folder is
  // touched, so a wrong one leaves nothing behind.
  const std::string start_path = resume ? std::string() : load_start_from();
  const std::string ckpt = checkpoint_path(cfg_);
  std::string resume_ckpt = ckpt;  // the previous checkpoint when ckpt is damaged
  int64_t start_stage = 0, start_epoch = 0;
  CheckpointMeta resume_meta;
  dist::agree(comm_, [&] {
    if (comm_.rank() == 0) {
      if (resume) require_checkpoint(ckpt);
      // Temporaries were left by a process killed while writing (checkpoint.h5.tmp.<pid>.<token>.<host>,
      // ...): never read, only taking space; claim_dir removes them once it holds the lock.
      int removed = 0;
      dir_lock = claim_dir(cfg_.output.dir, &removed);
      if (removed)
        log::info("removed " + std::to_string(removed) + " temporary file(s) left by an interrupted write in " +
                  cfg_.output.dir);
    }
    if (resume) {
      std::string note;
      CheckpointMeta meta;
      resume_ckpt = usable_checkpoint(ckpt, &note, [&](const std::string& p) {
        meta = read_checkpoint_meta(p);
        // Not a damaged file but the wrong one: no fallback (UsageError), same message.
        if (meta.model != model_->name() || meta.input_dim != data_.d)
          throw UsageError(ckpt + ": checkpoint is of model '" + meta.model + "' with input dimension " +
                           std::to_string(meta.input_dim) + ", this run is '" + model_->name() + "' with " +
                           std::to_string(data_.d));
        // Same shapes, other data (e.g. MNIST and Fashion-MNIST, both 784 wide): the
        // dataset's name attribute (set by `mixvae prepare`) tells them apart.
        if (!meta.dataset.empty() && meta.dataset != data_.name)
          throw UsageError(ckpt + ": checkpoint was trained on dataset '" + meta.dataset + "', this run's data (" +
                           data_.path + ") is '" + data_.name + "'");
        check_resume_config(ckpt, meta, cfg_);
        load_checkpoint(p, *model_, nullptr);
      });
      if (!note.empty()) log::warn(note);
      start_stage = meta.stage_index;
      start_epoch = meta.epoch;
      resume_meta = meta;
      // A stage trained partly on another number of ranks is not what its artifact key
      // (which holds the world size) names.
      if (meta.world_size != comm_.size() && (meta.epoch > 0 || meta.step > 0)) mixed_world_stage_ = meta.stage_index;
      lr_scale_ = meta.lr_scale;
      rollbacks_ = meta.rollbacks;
    }
  });

  if (nccl_)
    log::info("GPU collectives: NCCL " + dist::nccl_version() + " on " + std::to_string(comm_.size()) + " ranks");
  log::info("mixvae " MIXVAE_VERSION ": " + model_->name() + " on " + data_.path + " (" +
            std::to_string(data_.n_global) + " x " + std::to_string(data_.d) + ", " +
            (bernoulli_ ? "bernoulli" : "gaussian") + " likelihood), " + std::to_string(comm_.size()) + " rank(s) x " +
            (device_.is_cpu() ? std::to_string(threads) + " thread(s)" : describe_device(device_)) + ", " +
            (data_.global_mode ? "global" : "shard") + " shuffle, seed " + std::to_string(cfg_.train.seed));

  on_rank0([&] {
    write_file_atomic((fs::path(cfg_.output.dir) / "config.ini").string(), cfg_.to_ini());
    if (!resume) write_file_atomic((fs::path(cfg_.output.dir) / "metrics.jsonl").string(), "");
  });
  if (resume) {
    // Keep only the epochs the checkpoint contains, so a resumed run's log has each once.
    keep_metrics_until(start_stage, start_epoch);
    log::info("resuming from " + resume_ckpt + " at stage " + std::to_string(start_stage) + ", epoch " +
              std::to_string(start_epoch));
    if (resume_meta.world_size != comm_.size())
      log::info(
          "the checkpoint was written by " + std::to_string(resume_meta.world_size) + " rank(s), this run has " +
          std::to_string(comm_.size()) +
          (resume_meta.step > 0 ? ": the rows of the stopped epoch not trained yet are re-planned for them" : ""));
  }

  TrainResult result;
  bool final_evaluated = false;  // the last main epoch already evaluated the final model
  const auto recipe = model_->recipe(cfg_);
  const int64_t first_stage = resume ? start_stage : start_from_run(recipe, start_path);
  for (int64_t si = first_stage; si < int64_t(recipe.size()); ++si) {
    const models::Stage& stage = recipe[si];
    model_->set_stage(si);
    if (stage.kind == models::StageKind::MixtureInit) {
      double t0 = now_s();
      // Every sample once: each rank embeds its evaluation rows.
      model_->eval();
      torch::Tensor z = map_rows(
          data_.x.slice(0, data_.eval_begin, data_.eval_end), 2000,
          [&](const torch::Tensor& xb) { return model_->embed(xb); },
          torch::empty({0, cfg_.model.latent}, data_.x.options()));
      std::string msg = model_->init_mixture(tcomm(), z, cfg_);
      EvalResult ev = evaluate(comm_, *model_, data_);
      json j = {{"stage", stage.name}, {"stage_index", si}, {"epoch", 0}, {"seconds", now_s() - t0}, {"info", msg}};
      if (ev.has_labels) j.update({{"acc", ev.scores.acc}, {"nmi", ev.scores.nmi}, {"ari", ev.scores.ari}});
      log_metrics(j.dump());
      char buf[160];
      std::snprintf(buf, sizeof buf, "  ACC %.4f NMI %.4f ARI %.4f", ev.scores.acc, ev.scores.nmi, ev.scores.ari);
      log::info(stage.name + ": " + msg + (ev.has_labels ? buf : "") + " (" + std::to_string(int(now_s() - t0)) +
                " s)");
      result.eval = ev;
      write_checkpoint(si + 1, next_stage_name(recipe, si), 0, nullptr);
      continue;
    }

    const bool stage_start = si != start_stage || (start_epoch == 0 && resume_meta.step == 0);
    if (stage_start && reuse_artifact(stage, si)) {
      json j = {{"stage", stage.name},
                {"stage_index", si},
                {"epoch", stage.epochs},
                {"artifact", artifacts_[family_of(stage)]}};
      log_metrics(j.dump());
      if (stage.kind == models::StageKind::Main) result.epochs = stage.epochs;
      write_checkpoint(si + 1, next_stage_name(recipe, si), 0, nullptr);
      continue;
    }
    auto opt = make_optimizer(stage);
    std::vector<torch::Tensor> params;
    for (auto& g : opt->param_groups())
      for (auto& p : g.params()) params.push_back(p);
    dist::GradReducer reducer(tcomm(), params, cfg_.dist.bucket_mb, cfg_.dist.overlap);
    if (cfg_.dist.overlap && comm_.size() > 1 && !reducer.overlapping() && si == start_stage)
      log::warn("dist.overlap is off for " + stage.name + ": it needs CPU gradients, MPI at MPI_THREAD_MULTIPLE and " +
                "more than one bucket (" + std::to_string(reducer.buckets()) +
                " of dist.bucket_mb = " + std::to_string(cfg_.dist.bucket_mb) + " MiB here)");
    int64_t first = si == start_stage ? start_epoch : 0;
    const bool mid_epoch = resume && si == start_stage && resume_meta.step > 0;
    if (resume && si == start_stage && (first > 0 || mid_epoch)) load_checkpoint(resume_ckpt, *model_, opt.get());
    // The epoch that continues a mid-epoch checkpoint (resume or rollback), and its meta.
    int64_t mid_at = mid_epoch ? first : -1;
    CheckpointMeta mid_meta = resume_meta;
    for (int64_t e = first; e < stage.epochs; ++e) {
      try {
        set_learning_rates(stage, e, *opt);
        double t0 = now_s();
        std::vector<double> parts;
        std::vector<std::string> names;
        double loss = run_epoch(stage, si, e, *opt, reducer, &parts, &names, e == mid_at ? &mid_meta : nullptr);
        mid_at = -1;
        double secs = now_s() - t0;
        json j = {{"stage", stage.name},
                  {"stage_index", si},
                  {"epoch", e + 1},
                  {"loss", loss},
                  {"seconds", secs},
                  {"samples_per_s", double(data_.n_global) / secs},
                  {"lr", static_cast<torch::optim::AdamOptions&>(opt->param_groups()[0].options()).lr()}};
        for (size_t i = 0; i < names.size(); ++i) j[names[i]] = parts[i] / double(data_.n_global);
        // The largest rank's peak resident memory so far (each rank holds only its shard).
        const double rss = comm_.all_reduce_value<double>(peak_rss_mib(), dist::ReduceOp::Max);
        j["peak_rss_mib"] = std::round(rss);
        j["rank0_seconds"] = {
            {"compute", times_.compute}, {"all_reduce", times_.all_reduce}, {"optimizer", times_.optimizer}};
        std::string extra;
        const bool last = e + 1 == stage.epochs;
        const bool stopping = stage.kind == models::StageKind::Main && stop_after_ > 0 && e + 1 >= stop_after_ && !last;
        if (stage.kind == models::StageKind::Main &&
            ((cfg_.train.eval_every > 0 && (e + 1) % cfg_.train.eval_every == 0) || last || stopping)) {
          model_->eval();
          // The final model (last epoch of the last stage) also gets its selection score.
          final_evaluated = last && size_t(si + 1) == recipe.size();
          EvalResult ev = evaluate(comm_, *model_, data_, 0, nullptr, final_evaluated);
          result.eval = ev;
          j.update({{"occupancy", ev.occupancy},
                    {"empty_clusters", ev.empty_clusters},
                    {"largest_fraction", ev.largest_fraction},
                    {"mean_entropy", ev.mean_entropy}});
          char buf[200];
          if (ev.has_labels) {
            j.update(
                {{"acc", ev.scores.acc}, {"nmi", ev.scores.nmi}, {"ari", ev.scores.ari}, {"purity", ev.scores.purity}});
            std::snprintf(buf, sizeof buf, "ACC %.4f NMI %.4f ARI %.4f | ", ev.scores.acc, ev.scores.nmi,
                          ev.scores.ari);
            extra += buf;
          }
          std::snprintf(buf, sizeof buf, "largest cluster %.1f%%, %lld empty, H[q(c|x)] %.3f",
                        100 * ev.largest_fraction, (long long)ev.empty_clusters, ev.mean_entropy);
          extra += buf;
          if (ev.largest_fraction > cfg_.train.collapse_warn) {
            log::warn("cluster collapse: one cluster holds " + std::to_string(int(100 * ev.largest_fraction)) +
                      "% of the data at epoch " + std::to_string(e + 1) +
                      " (lower train.lr_mixture, check the pretraining, or try another seed)");
          } else if (ev.empty_clusters > 0) {
            log::warn(std::to_string(ev.empty_clusters) + " of " + std::to_string(model_->clusters()) +
                      " clusters are empty at epoch " + std::to_string(e + 1));
          }
        }
        log_metrics(j.dump());
        if (comm_.rank() == 0 && cfg_.output.progress) {
          char buf[160];
          std::snprintf(buf, sizeof buf, "%-8s epoch %lld/%lld loss %.4f %.1f s %.0f samples/s %.0f MiB/rank",
                        stage.name.c_str(), (long long)(e + 1), (long long)stage.epochs, loss, secs,
                        double(data_.n_global) / secs, rss);
          if (!log::stdout_is_tty())
            log::info(std::string(buf) + (extra.empty() ? "" : "  " + extra));
          else
            log::info(std::string("\r") + buf + (extra.empty() ? "" : "  " + extra) + "\x1b[K");
        }
        result.loss = loss;
        result.epochs = e + 1;
        if ((cfg_.checkpoint.every > 0 && (e + 1) % cfg_.checkpoint.every == 0) || last || stopping)
          write_checkpoint(last ? si + 1 : si,
                           last && size_t(si + 1) < recipe.size() ? recipe[si + 1].name : stage.name, last ? 0 : e + 1,
                           last ? nullptr : opt.get());
        if (stopping) {
          result.seconds = now_s() - start_time_;
          return result;
        }
      } catch (const DivergedError& d) {
        // Every rank sees the same global loss, so every rank is here at the same step.
        std::string from = ckpt;
        mid_meta = roll_back(d, si, &from);
        opt = make_optimizer(stage);  // fresh state, then the checkpoint's, at the new rates
        load_checkpoint(from, *model_, opt.get());
        mid_at = mid_meta.step > 0 ? mid_meta.epoch : -1;
        e = mid_meta.epoch - 1;  // the loop's ++e continues at the checkpoint's epoch
      }
    }
    save_artifact(stage, si);
  }
  if (!final_evaluated) {  // e.g. resuming a finished run, or a recipe that ends without a main stage
    model_->set_stage(int64_t(recipe.size()) - 1);
    model_->eval();
    result.eval = evaluate(comm_, *model_, data_, 0, nullptr, /*selection=*/true);
  }
  result.seconds = now_s() - start_time_;
  write_outputs(result);
  return result;
}

CheckpointMeta Trainer::roll_back(const DivergedError& d, int64_t stage_index, std::string* ckpt_inout) {
  const std::string ckpt = *ckpt_inout;
  const std::string what = d.what();
  if (rollbacks_ >= cfg_.train.divergence_retries)
    throw DivergedError(what + (rollbacks_ > 0 ? "; still diverging after " + std::to_string(rollbacks_) +
                                                     " rollback(s) (train.divergence_retries)"
                                               : ""));
  const bool have =
      comm_.all_reduce_value<int64_t>(
          comm_.rank() == 0 && (fs::exists(ckpt) || fs::exists(previous_checkpoint_path(ckpt))) ? 1 : 0) != 0;
  if (!have) throw DivergedError(what + "; no checkpoint to roll back to yet");
  CheckpointMeta m;
  dist::agree(comm_, [&] {
    std::string note;
    *ckpt_inout = usable_checkpoint(ckpt, &note);
    if (!note.empty()) log::warn(note);
    m = read_checkpoint_meta(*ckpt_inout);
  });
  if (m.stage_index != stage_index)
    throw DivergedError(what + "; the last checkpoint is from another stage, no rollback");
  ++rollbacks_;
  lr_scale_ *= cfg_.train.divergence_lr_factor;
  log::warn(what + ": rolling back to the checkpoint at " + m.stage_name + " epoch " + std::to_string(m.epoch) +
            (m.step > 0 ? " step " + std::to_string(m.step) : "") + " with learning rates x" +
            std::to_string(lr_scale_) + " (rollback " + std::to_string(rollbacks_) + " of " +
            std::to_string(cfg_.train.divergence_retries) + ")");
  keep_metrics_until(m.stage_index, m.epoch);
  json j = {{"stage", m.stage_name}, {"stage_index", m.stage_index},
            {"epoch", m.epoch},      {"event", "divergence_rollback"},
            {"error", what},         {"lr_scale", lr_scale_},
            {"rollback", rollbacks_}};
  log_metrics(j.dump());
  return m;
}

void keep_metrics_lines(const std::string& dir, int64_t stage_index, int64_t epoch) {
  const fs::path mpath = fs::path(dir) / "metrics.jsonl";
  if (!fs::exists(mpath)) return;
  std::ifstream in(mpath);
  std::string line, kept;
  while (std::getline(in, line)) {
    auto j = json::parse(line, nullptr, false);
    if (j.is_discarded()) continue;
    int64_t si = j.value("stage_index", int64_t(0)), ep = j.value("epoch", int64_t(0));
    if (si < stage_index || (si == stage_index && ep <= epoch)) kept += line + "\n";
  }
  in.close();
  write_file_atomic(mpath.string(), kept);
}

void Trainer::keep_metrics_until(int64_t stage_index, int64_t epoch) {
  on_rank0([&] { keep_metrics_lines(cfg_.output.dir, stage_index, epoch); });
}

std::string Trainer::family_of(const models::Stage& stage) const {
  if (stage.kind == models::StageKind::Pretrain) return models::pretrain_family(cfg_.model.name);
  return stage.kind == models::StageKind::Main ? stage.artifact : "";
}

bool Trainer::artifact_of(const models::Stage& stage, int64_t stage_index, PretrainKey* key,
                          std::vector<torch::Tensor>* params) {
  if (artifact_dir_.empty() || stage.epochs == 0 || family_of(stage).empty()) return false;
  if (stage.kind == models::StageKind::Pretrain) {
    *key = pretrain_key(cfg_, comm_.size());
    *params = model_->pretrain_parameters();
  } else {
    *key = stage_key(cfg_, comm_.size(), stage.artifact, stage_index);
    *params = model_->artifact_parameters(stage.artifact);
  }
  return !key->family.empty() && !params->empty();
}

std::string Trainer::load_start_from() {
  const models::ClusteringModel::StartFrom from = model_->start_from();
  if (from.checkpoint.empty()) return "";
  std::error_code ec;
  const std::string path = fs::absolute(from.checkpoint, ec).lexically_normal().string();
  dist::agree(comm_, [&] {
    const std::string what = path + ": cannot start " + model_->name() + " from it: ";
    CheckpointMeta meta = read_checkpoint_meta(path);
    if (meta.model != from.family)
      throw UsageError(what + "it is a '" + meta.model + "' run, not a '" + from.family + "' run");
    if (meta.input_dim != data_.d || meta.bernoulli != bernoulli_)
      throw UsageError(what + "it was trained on " + std::to_string(meta.input_dim) + "-dimensional data with a " +
                       (meta.bernoulli ? "bernoulli" : "gaussian") + " likelihood, this run has " +
                       std::to_string(data_.d) + " and " + (bernoulli_ ? "bernoulli" : "gaussian"));
    if (!meta.dataset.empty() && meta.dataset != data_.name)
      throw UsageError(what + "it was trained on dataset '" + meta.dataset + "', this run's data is '" + data_.name +
                       "'");
    RunConfig src_cfg;
    auto src = model_from_checkpoint(path, &src_cfg, {});
    // A finished run's last checkpoint points past its recipe.
    if (meta.stage_index < int64_t(src->recipe(src_cfg).size()))
      throw UsageError(what + "that run is not finished (stopped in stage '" + meta.stage_name + "' after epoch " +
                       std::to_string(meta.epoch) + "); finish it with mixvae train --resume");
    std::vector<torch::Tensor> in = src->artifact_parameters(from.family),
                               out = model_->artifact_parameters(from.family);
    bool same = in.size() == out.size();
    for (size_t i = 0; same && i < in.size(); ++i) same = in[i].sizes() == out[i].sizes();
    if (!same)
      throw UsageError(what + "its architecture differs ([model] hidden = " + src_cfg.model.hidden +
                       ", latent = " + std::to_string(src_cfg.model.latent) +
                       ", clusters = " + std::to_string(src_cfg.model.clusters) + "; this run: " + cfg_.model.hidden +
                       ", " + std::to_string(cfg_.model.latent) + ", " + std::to_string(cfg_.model.clusters) + ")");
    torch::NoGradGuard ng;
    for (size_t i = 0; i < in.size(); ++i) out[i].copy_(in[i].to(out[i].device()));
  });
  return path;
}

int64_t Trainer::start_from_run(const std::vector<models::Stage>& recipe, const std::string& path) {
  if (path.empty()) return 0;
  const std::string family = model_->start_from().family;
  const int64_t v = models::last_stage_of(recipe, family);
  if (v < 0) throw std::logic_error(model_->name() + ": start_from names family '" + family + "', not in the recipe");
  const double t0 = now_s();
  model_->set_stage(v);
  artifacts_[family] = "from:" + path;
  model_->eval();
  EvalResult ev = evaluate(comm_, *model_, data_);
  json j = {{"stage", recipe[v].name},
            {"stage_index", v},
            {"epoch", recipe[v].epochs},
            {"from", path},
            {"seconds", now_s() - t0}};
  if (ev.has_labels) j.update({{"acc", ev.scores.acc}, {"nmi", ev.scores.nmi}, {"ari", ev.scores.ari}});
  log_metrics(j.dump());
  char buf[160];
  std::snprintf(buf, sizeof buf, " (ACC %.4f NMI %.4f ARI %.4f)", ev.scores.acc, ev.scores.nmi, ev.scores.ari);
  log::info(recipe[v].name + ": started from the finished run " + path + (ev.has_labels ? buf : "") +
            "; its stages before this one are skipped");
  write_checkpoint(v + 1, next_stage_name(recipe, v), 0, nullptr);
  return v + 1;
}

bool Trainer::reuse_artifact(const models::Stage& stage, int64_t stage_index) {
  PretrainKey key;
  std::vector<torch::Tensor> params;
  if (!artifact_of(stage, stage_index, &key, &params)) return false;
  const std::string path = (fs::path(artifact_dir_) / key.file_name()).string();
  // Every rank takes the same branch (rank 0 looks, the others follow); while another
  // process (another array slice, another sweep) makes the same artifact, this waits for
  // it; otherwise this run makes it, holding its lock until save_artifact.
  if (!await_artifacts(comm_, {path}, &artifact_locks_, step_hook_)) return false;
  dist::agree(comm_, [&] { load_pretrained(path, key, params); });
  artifacts_[key.family] = "reused:" + path;
  log::info(stage.name + ": reused the artifact " + path + " (the same " +
            (stage.kind == models::StageKind::Pretrain ? "pretraining" : "stage") + ", trained by an earlier run)");
  return true;
}

void Trainer::save_artifact(const models::Stage& stage, int64_t stage_index) {
  PretrainKey key;
  std::vector<torch::Tensor> params;
  if (!artifact_of(stage, stage_index, &key, &params)) return;
  const std::string path = (fs::path(artifact_dir_) / key.file_name()).string();
  if (stage_index == mixed_world_stage_) {
    log::info(stage.name + ": not saved as the artifact " + path + " (trained partly on another number of ranks)");
    artifact_locks_.clear();  // another run makes it
    return;
  }
  artifacts_[key.family] = "saved:" + path;
  on_rank0([&] {
    torch::NoGradGuard ng;
    train::save_pretrained(path, key, params, cfg_.output.dir);
    log::info(stage.name + ": saved the artifact " + path);
  });
  artifact_locks_.clear();  // released: the waiting runs load it now
}

const std::string& Trainer::pretrain_artifact() const { return artifact(models::pretrain_family(cfg_.model.name)); }

const std::string& Trainer::artifact(const std::string& family) const {
  static const std::string none;
  auto it = artifacts_.find(family);
  return it == artifacts_.end() ? none : it->second;
}

void Trainer::write_outputs(const TrainResult& r) {
  const std::vector<double> rss = comm_.all_gather_value<double>(std::round(peak_rss_mib()));
  on_rank0([&] { write_outputs_rank0(r, rss); });
}

void Trainer::write_outputs_rank0(const TrainResult& r, const std::vector<double>& peak_rss_per_rank) {
  RunRecord rec;
  rec.world_size = comm_.size();
  rec.pretrain_artifact = pretrain_artifact();
  rec.artifacts = artifacts_;
  rec.peak_rss_per_rank = peak_rss_per_rank;
  rec.device = describe_device(device_);
  write_run_outputs(cfg_, *model_, data_, r, rec);
}

namespace {
// result.json's "selection": the final model's label-free selection score (evaluate.h).
// JSON has no NaN: a score that is not finite is null, and the report picks no such run.
json selection_json(const EvalResult::Selection& s) {
  return {{"criterion", s.criterion},
          {"value", std::isfinite(s.value) ? json(s.value) : json(nullptr)},
          {"higher_is_better", s.higher_is_better},
          {"noise_seed", kSelectionNoiseSeed}};
}
}  // namespace

void add_to_last_metrics_line(const std::string& dir, const std::string& key, const std::string& json_value) {
  const fs::path path = fs::path(dir) / "metrics.jsonl";
  std::vector<std::string> lines;
  {
    std::ifstream in(path);
    for (std::string l; std::getline(in, l);)
      if (!l.empty()) lines.push_back(l);
  }
  json last = lines.empty() ? json() : json::parse(lines.back(), nullptr, false);
  if (last.is_object())
    lines.pop_back();
  else  // no line to add it to (or a torn one): a line of its own
    last = {{"stage", "done"}};
  last[key] = json::parse(json_value);
  lines.push_back(last.dump());
  std::string text;
  for (const auto& l : lines) text += l + "\n";
  write_file_atomic(path.string(), text);
}

void write_run_outputs(const RunConfig& cfg, models::ClusteringModel& model, const TrainData& data,
                       const TrainResult& r, const RunRecord& rec) {
  const fs::path dir(cfg.output.dir);
  // The selection score goes on the line of the evaluation that scored the final model
  // before result.json (which marks the run finished) is written.
  if (r.eval.selection) add_to_last_metrics_line(cfg.output.dir, "selection", selection_json(*r.eval.selection).dump());
  json j = {{"model", model.name()},
            {"dataset", data.name},
            {"data_path", data.path},
            {"seed", cfg.train.seed},
            {"world_size", rec.world_size},
            {"epochs", cfg.train.epochs},
            {"pretrain_epochs", cfg.pretrain.epochs},
            {"loss", r.loss},
            {"seconds", r.seconds},
            {"occupancy", r.eval.occupancy},
            {"empty_clusters", r.eval.empty_clusters},
            {"mean_entropy", r.eval.mean_entropy},
            {"config_hash", cfg.hash()},
            {"pretrain_artifact", rec.pretrain_artifact},
            {"artifacts", rec.artifacts},
            {"threads", torch::get_num_threads()},
            {"peak_rss_mib_per_rank", rec.peak_rss_per_rank},
            {"device", rec.device},
            {"versions",
             {{"mixvae", MIXVAE_VERSION},
              {"libtorch", TORCH_VERSION},
              {"hdf5", H5_VERS_INFO},
              {"mpi", dist::mpi_library_version()}}}};
  if (!rec.ensemble_seeds.empty()) j["ensemble_seeds"] = rec.ensemble_seeds;
  if (r.eval.selection) j["selection"] = selection_json(*r.eval.selection);
  if (r.eval.has_labels) {
    j.update({{"acc", r.eval.scores.acc},
              {"nmi", r.eval.scores.nmi},
              {"ari", r.eval.scores.ari},
              {"purity", r.eval.scores.purity},
              {"contingency", r.eval.contingency},
              {"cluster_class", r.eval.scores.cluster_class}});
  } else {
    j.update({{"acc", nullptr}, {"nmi", nullptr}, {"ari", nullptr}});
  }
  write_file_atomic((dir / "result.json").string(), j.dump(2) + "\n");

  write_sample_grid(model, (dir / "samples.png").string(), cfg.output.samples_per_cluster, uint64_t(cfg.train.seed));
}

}  // namespace mixvae::train

namespace mixvae::train {
std::shared_ptr<models::ClusteringModel> model_from_checkpoint(const std::string& path, RunConfig* cfg,
                                                               const std::vector<std::string>& overrides,
                                                               CheckpointMeta* meta_out) {
  CheckpointMeta meta = read_checkpoint_meta(path);
  if (meta.model.rfind(kEnsembleModelTag, 0) == 0)
    throw UsageError(path + ": the checkpoint of a seed ensemble (" + meta.model + "); use one run's own, " +
                     (fs::path(path).parent_path().parent_path() / "seed-<s>" / "checkpoint.h5").string());
  *cfg = RunConfig::load_text(meta.config_ini, path + " (stored config)", overrides);
  auto model = models::make_model(*cfg, meta.input_dim, meta.bernoulli);
  load_checkpoint(path, *model, nullptr);
  // The objective the checkpoint was written in (the last stage once the run is done).
  model->set_stage(std::min<int64_t>(meta.stage_index, int64_t(model->recipe(*cfg).size()) - 1));
  model->eval();
  if (meta_out) *meta_out = std::move(meta);
  return model;
}
}  // namespace mixvae::train
