#include "train/ensemble.h"

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
#include "dist/tensor_ops.h"
#include "models/mlp.h"
#include "models/noise.h"
#include "models/registry.h"
#include "models/vade.h"
#include "models/vade_ensemble.h"
#include "train/checkpoint.h"
#include "train/device.h"
#include "train/evaluate.h"
#include "train/fused_adam.h"
#include "train/pretrain_artifact.h"

namespace mixvae::train {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {
double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

std::string join_seeds(const std::vector<uint64_t>& seeds) {
  std::string s;
  for (size_t i = 0; i < seeds.size(); ++i) s += (i ? "," : "") + std::to_string(seeds[i]);
  return s;
}
}  // namespace

std::string ensemble_unsupported(const RunConfig& cfg) {
  if (cfg.model.name != "vade")
    return "model '" + cfg.model.name + "' has no batched ensemble yet (only vade); its seeds run one after another";
  if (cfg.dist.backend == "nccl") return "ensembles reduce through MPI; set dist.backend = auto or mpi";
  return "";
}

EnsembleTrainer::EnsembleTrainer(dist::Communicator& comm, RunConfig cfg, std::vector<uint64_t> seeds,
                                 std::vector<std::string> dirs, std::string state_dir)
    : comm_(comm),
      cfg_(std::move(cfg)),
      seeds_(std::move(seeds)),
      dirs_(std::move(dirs)),
      state_dir_(std::move(state_dir)) {
  if (seeds_.empty() || seeds_.size() != dirs_.size())
    throw UsageError("ensemble: needs one output directory per seed");
  for (size_t i = 0; i < seeds_.size(); ++i) {
    RunConfig c = cfg_;
    c.train.seed = seeds_[i];
    c.output.dir = dirs_[i];
    member_cfg_.push_back(std::move(c));
  }
  artifacts_.resize(seeds_.size());
}

EnsembleTrainer::~EnsembleTrainer() = default;

std::string EnsembleTrainer::tag() const { return std::string(kEnsembleModelTag) + " seeds=" + join_seeds(seeds_); }
std::string EnsembleTrainer::checkpoint_path() const { return (fs::path(state_dir_) / "checkpoint.h5").string(); }

std::vector<torch::Tensor> EnsembleTrainer::member_parameters(size_t i) {
  ens_->load_member(int64_t(i), *vade_);
  std::vector<torch::Tensor> out;
  for (auto& p : vade_->parameters()) out.push_back(p.detach().clone());
  return out;
}

void EnsembleTrainer::log_member(size_t i, const std::string& line) {
  on_rank0([&] {
    const fs::path path = fs::path(dirs_[i]) / "metrics.jsonl";
    std::ofstream out(path, std::ios::app);
    out << line << "\n";
    out.flush();
    if (!out) throw data_error(path.string(), std::string("cannot append: ") + std::strerror(errno));
  });
}

std::unique_ptr<torch::optim::Adam> EnsembleTrainer::make_optimizer(const models::Stage& stage) {
  // The optimisers of Trainer::make_optimizer over the stacked parameters. Adam is
  // element-wise, so one Adam over [S, ...] is S Adams with a shared step count (the
  // members step together).
  std::vector<torch::optim::OptimizerParamGroup> groups;
  double lr0;
  if (stage.kind == models::StageKind::Pretrain) {
    lr0 = stage.lr > 0 ? stage.lr : cfg_.pretrain.lr;
    groups.emplace_back(ens_->pretrain_parameters(), std::make_unique<torch::optim::AdamOptions>(
                                                         torch::optim::AdamOptions(lr0).eps(cfg_.pretrain.adam_eps)));
  } else {
    lr0 = stage.lr > 0 ? stage.lr : cfg_.train.lr;
    const double lr_mix = stage.lr_mixture > 0 ? stage.lr_mixture : cfg_.train.lr_mixture;
    groups.emplace_back(ens_->network_parameters(), std::make_unique<torch::optim::AdamOptions>(
                                                        torch::optim::AdamOptions(lr0).eps(cfg_.train.adam_eps)));
    groups.emplace_back(ens_->mixture_parameters(), std::make_unique<torch::optim::AdamOptions>(
                                                        torch::optim::AdamOptions(lr_mix).eps(cfg_.train.adam_eps)));
  }
  auto defaults = torch::optim::AdamOptions(lr0);
  if (cfg_.train.adam == "fused") return std::make_unique<FusedAdam>(std::move(groups), defaults);
  return std::make_unique<torch::optim::Adam>(std::move(groups), defaults);
}

void EnsembleTrainer::write_checkpoint(int64_t stage_index, const std::string& stage_name, int64_t epoch,
                                       torch::optim::Adam* opt, const CheckpointMeta* mid) {
  check_finite(*ens_, stage_name, epoch);
  on_rank0([&] {
    save_checkpoint(checkpoint_path(), *ens_, opt,
                    checkpoint_meta(cfg_, tag(), data_, bernoulli_, comm_.size(), stage_index, stage_name, epoch, mid));
  });
}

bool EnsembleTrainer::reuse_artifacts(const models::Stage& stage, int64_t stage_index) {
  // Only when every member's artifact is there (a partial set trains the stage for all).
  if (artifact_dir_.empty() || stage.epochs == 0) return false;
  const bool pre = stage.kind == models::StageKind::Pretrain;
  if (!pre && (stage.kind != models::StageKind::Main || stage.artifact.empty())) return false;
  std::vector<PretrainKey> keys;
  std::vector<std::string> paths;
  for (const auto& c : member_cfg_) {
    keys.push_back(pre ? pretrain_key(c, comm_.size()) : stage_key(c, comm_.size(), stage.artifact, stage_index));
    paths.push_back((fs::path(artifact_dir_) / keys.back().file_name()).string());
  }
  if (keys.front().family.empty()) return false;
  // As in Trainer::reuse_artifact: artifacts another process is making are waited for;
  // otherwise this ensemble makes the missing ones, holding their locks until saved.
  if (!await_artifacts(comm_, paths, &artifact_locks_, step_hook_)) return false;
  for (size_t i = 0; i < seeds_.size(); ++i) {
    ens_->load_member(int64_t(i), *vade_);
    std::vector<torch::Tensor> params = pre ? vade_->pretrain_parameters() : vade_->artifact_parameters(stage.artifact);
    dist::agree(comm_, [&] { load_pretrained(paths[i], keys[i], params); });
    ens_->store_member(int64_t(i), *vade_);
    artifacts_[i][keys[i].family] = "reused:" + paths[i];
  }
  log::info(stage.name + ": reused the artifacts of all " + std::to_string(seeds_.size()) + " members from " +
            artifact_dir_);
  return true;
}

void EnsembleTrainer::save_artifacts(const models::Stage& stage, int64_t stage_index) {
  if (artifact_dir_.empty() || stage.epochs == 0) return;
  const bool pre = stage.kind == models::StageKind::Pretrain;
  if (!pre && (stage.kind != models::StageKind::Main || stage.artifact.empty())) return;
  for (size_t i = 0; i < seeds_.size(); ++i) {
    const RunConfig& c = member_cfg_[i];
    PretrainKey key = pre ? pretrain_key(c, comm_.size()) : stage_key(c, comm_.size(), stage.artifact, stage_index);
    if (key.family.empty()) return;
    const std::string path = (fs::path(artifact_dir_) / key.file_name()).string();
    ens_->load_member(int64_t(i), *vade_);
    std::vector<torch::Tensor> params = pre ? vade_->pretrain_parameters() : vade_->artifact_parameters(stage.artifact);
    artifacts_[i][key.family] = "saved:" + path;
    on_rank0([&] {
      torch::NoGradGuard ng;
      save_pretrained(path, key, params, c.output.dir);
    });
  }
  log::info(stage.name + ": saved the artifacts of all " + std::to_string(seeds_.size()) + " members to " +
            artifact_dir_);
  artifact_locks_.clear();  // released: the waiting runs load them now
}

std::vector<double> EnsembleTrainer::run_epoch(const models::Stage& stage, int64_t stage_index, int64_t epoch,
                                               torch::optim::Adam& opt, dist::GradReducer& reducer,
                                               std::vector<std::vector<double>>* parts,
                                               std::vector<std::string>* part_names, const CheckpointMeta* mid) {
  ens_->train(true);
  const size_t S = seeds_.size();
  const bool pre = stage.kind == models::StageKind::Pretrain;
  const int64_t batch = pre ? cfg_.pretrain.batch_size : cfg_.train.batch_size;
  // Each member's own data order: the plan a separate run of its seed would make.
  std::vector<EpochPlan> plans;
  // (A mid-epoch checkpoint of another number of ranks: the rest re-planned, train_data.h.)
  for (uint64_t seed : seeds_)
    plans.push_back(epoch_plan(
        data_, comm_.rank(), comm_.size(), batch,
        [&](int r) {
          return models::mix_seed(seed, 1000 + stage_index, epoch, data_.global_mode ? 0 : uint64_t(r) + 1);
        },
        mid ? mid->step : 0, mid ? int(mid->world_size) : 0));
  const int64_t steps = plans.front().steps();
  log::Progress progress(cfg_.output.progress && comm_.rank() == 0, stage.name, epoch + 1, stage.epochs, steps,
                         data_.n_global * int64_t(S));
  // Per-member running sums (this rank's rows): loss, then each part; rank 0 carries the
  // global sums of the steps a mid-epoch checkpoint already holds.
  torch::Tensor acc;
  int64_t seen = 0, first_step = 0;
  double shown = 0;
  if (mid && mid->step > 0) {
    first_step = mid->step;
    seen = mid->epoch_seen;
    shown = mid->epoch_loss_sum;
    if (!mid->epoch_part_sums.empty()) {
      acc = torch::tensor(mid->epoch_part_sums, torch::kFloat64).view({-1, int64_t(S)});
      if (comm_.rank() != 0) acc.zero_();
    }
  }
  for (int64_t s = first_step; s < steps; ++s) {
    if (step_hook_) step_hook_();
    for (auto& lock : artifact_locks_) lock.heartbeat();  // rank 0, while it makes artifacts
    std::vector<torch::Tensor> xs, eps, inputs;
    StepSlice first;
    const double p = cfg_.pretrain.input_dropout;
    for (size_t m = 0; m < S; ++m) {
      StepSlice sl = plans[m].step(s);
      if (m == 0) first = sl;
      xs.push_back(data_.x.index_select(0, device_.is_cpu() ? sl.rows : sl.rows.to(device_)));
      // Each member draws what a separate run of its seed draws.
      if (!pre) {
        eps.push_back(
            step_noise(seeds_[m], stage_index, epoch, s, sl, data_, comm_.rank(), device_).normal(cfg_.model.latent));
      } else if (p > 0) {
        models::Noise noise = step_noise(seeds_[m], stage_index, epoch, s, sl, data_, comm_.rank(), device_);
        inputs.push_back(models::input_dropout(xs.back(), noise.uniform(xs.back().size(1)), p));
      }
    }
    torch::Tensor x = torch::stack(xs);
    models::EnsembleLoss terms =
        pre ? ens_->pretrain_loss(x, p > 0 ? torch::stack(inputs) : x) : ens_->loss(x, torch::stack(eps));
    reducer.zero_grad();
    reducer.begin_step();
    // Every member's loss over the same global batch size, as in a separate run.
    (terms.per_member.sum() / double(first.global_rows)).backward();
    std::vector<torch::Tensor> rows{terms.per_member.detach()};
    for (auto& [n, v] : terms.parts) rows.push_back(v);
    torch::Tensor step_vals = torch::stack(rows).to(torch::kCPU, torch::kFloat64);  // [1 + parts, S]
    if (part_names->empty())
      for (auto& [n, v] : terms.parts) part_names->push_back(n);
    if (!acc.defined()) acc = torch::zeros_like(step_vals);
    acc += step_vals;
    const double local = step_vals[0].sum().item<double>();
    bool stop = signals::stop_requested();
    const double global = reducer.all_reduce(local, &stop);
    if (!std::isfinite(global)) {
      std::string which;
      for (size_t m = 0; m < S; ++m)
        if (!std::isfinite(step_vals[0][int64_t(m)].item<double>()))
          which += (which.empty() ? "" : ",") + std::to_string(seeds_[m]);
      throw DivergedError(
          "loss is " + std::to_string(global) + " at " + stage.name + " epoch " + std::to_string(epoch + 1) + " step " +
          std::to_string(s + 1) +
          (which.empty() ? "" : " (member seed(s) " + which + " on rank " + std::to_string(comm_.rank()) + ")") +
          "; rerun those seeds alone: a single run rolls back and lowers the learning rate");
    }
    opt.step();
    seen += first.global_rows;
    shown += global;
    progress.step(s + 1, shown / double(seen) / double(S));
    if (stop) {
      CheckpointMeta at;
      at.step = s + 1;
      at.epoch_seen = seen;
      at.epoch_loss_sum = comm_.all_reduce_value(comm_.rank() == 0 ? shown : 0.0);
      torch::Tensor a = acc.contiguous();
      at.epoch_part_sums.assign(a.data_ptr<double>(), a.data_ptr<double>() + a.numel());
      comm_.all_reduce(at.epoch_part_sums);
      write_checkpoint(stage_index, stage.name, epoch, &opt, &at);
      throw PreemptedError("stopped by " +
                           std::string(signals::stop_signal() ? strsignal(signals::stop_signal()) : "request") +
                           " at " + stage.name + " epoch " + std::to_string(epoch + 1) + " step " +
                           std::to_string(s + 1) + "; checkpoint written to " + checkpoint_path());
    }
  }
  torch::Tensor a = acc.contiguous();
  std::vector<double> sums(a.data_ptr<double>(), a.data_ptr<double>() + a.numel());
  comm_.all_reduce(sums);
  std::vector<double> loss(S);
  parts->assign(S, std::vector<double>(part_names->size()));
  for (size_t m = 0; m < S; ++m) {
    loss[m] = seen > 0 ? sums[m] / double(seen) : 0.0;
    for (size_t p = 0; p < part_names->size(); ++p) (*parts)[m][p] = sums[(p + 1) * S + m] / double(data_.n_global);
  }
  return loss;
}

std::vector<TrainResult> EnsembleTrainer::run(bool resume) {
  const double start = now_s();
  const size_t S = seeds_.size();
  dist::ScopedTimeout timeout(comm_, cfg_.dist.timeout_s);  // as in Trainer::run
  const int threads = configure_cpu(cfg_);
  dist::agree(comm_, [&] {
    const std::string why = ensemble_unsupported(cfg_);
    if (!why.empty()) throw UsageError("ensemble: " + why);
    device_ = select_device(cfg_.dist.device, local_rank());
  });
  // Every rank on a GPU or every rank on the CPU: the GPU-only collectives below must pair up.
  agree_device_kind(comm_, device_.is_cuda());
  models::set_matmul_precision(cfg_.train.precision);
  data_ = load_train_data(comm_, cfg_);
  dist::agree(comm_, [&] { bernoulli_ = use_bernoulli(cfg_, data_.unit_interval); });
  if (!device_.is_cpu()) data_.x = data_.x.pin_memory().to(device_, /*non_blocking=*/true);

  // Member s starts from the model a separate run of seed s builds (same generator state).
  ens_ = std::make_shared<models::VadeEnsemble>(int64_t(S), data_.d, cfg_.model, bernoulli_);
  for (size_t i = 0; i < S; ++i) {
    torch::manual_seed(seeds_[i]);
    auto m = models::make_model(member_cfg_[i], data_.d, bernoulli_);
    auto* v = dynamic_cast<models::Vade*>(m.get());
    if (!v) throw std::logic_error("ensemble: model '" + cfg_.model.name + "' is not a Vade");
    ens_->store_member(int64_t(i), *v);
    scratch_ = m;
    vade_ = v;
  }
  ens_->to(device_);
  scratch_->to(device_);
  {
    std::vector<torch::Tensor> all;
    for (auto& p : ens_->parameters()) all.push_back(p);
    dist::broadcast_parameters(comm_, all, 0);
  }

  std::vector<DirLock> locks;
  int64_t start_stage = 0, start_epoch = 0;
  CheckpointMeta resume_meta;
  std::string resume_ckpt = checkpoint_path();
  dist::agree(comm_, [&] {
    if (comm_.rank() != 0) return;
    if (resume) require_checkpoint(checkpoint_path());
    std::vector<std::string> all = dirs_;
    all.push_back(state_dir_);
    for (const auto& d : all) locks.push_back(claim_dir(d));
    if (resume) {
      std::string note;
      resume_ckpt = usable_checkpoint(checkpoint_path(), &note, [&](const std::string& p) {
        CheckpointMeta meta = read_checkpoint_meta(p);
        if (meta.model != tag() || meta.input_dim != data_.d)
          throw UsageError(p + ": checkpoint is of '" + meta.model + "' with input dimension " +
                           std::to_string(meta.input_dim) + ", this run is '" + tag() + "' with " +
                           std::to_string(data_.d));
        if (!meta.dataset.empty() && meta.dataset != data_.name)
          throw UsageError(p + ": checkpoint was trained on dataset '" + meta.dataset + "', this run's data is '" +
                           data_.name + "'");
        check_resume_config(p, meta, cfg_);
        load_checkpoint(p, *ens_, nullptr);
        resume_meta = meta;
      });
      if (!note.empty()) log::warn(note);
    }
    for (size_t i = 0; i < S; ++i) {
      write_file_atomic((fs::path(dirs_[i]) / "config.ini").string(), member_cfg_[i].to_ini());
      if (!resume) write_file_atomic((fs::path(dirs_[i]) / "metrics.jsonl").string(), "");
    }
  });
  if (resume) {
    // Rank 0 read the checkpoint; every rank loads the same file.
    std::vector<int64_t> pos{resume_meta.stage_index, resume_meta.epoch, resume_meta.step};
    comm_.broadcast(pos, 0);
    comm_.broadcast_string(resume_ckpt, 0);
    if (comm_.rank() != 0) resume_meta = read_checkpoint_meta(resume_ckpt);
    dist::agree(comm_, [&] {
      if (comm_.rank() != 0) load_checkpoint(resume_ckpt, *ens_, nullptr);
    });
    start_stage = pos[0];
    start_epoch = pos[1];
    on_rank0([&] {
      for (const auto& d : dirs_) keep_metrics_lines(d, start_stage, start_epoch);
    });
    log::info("resuming the ensemble from " + resume_ckpt + " at stage " + std::to_string(start_stage) + ", epoch " +
              std::to_string(start_epoch));
  }
  log::info("mixvae " MIXVAE_VERSION ": ensemble of " + std::to_string(S) + " " + cfg_.model.name + " runs (seeds " +
            join_seeds(seeds_) + ") on " + data_.path + " (" + std::to_string(data_.n_global) + " x " +
            std::to_string(data_.d) + "), " + std::to_string(comm_.size()) + " rank(s) x " +
            (device_.is_cpu() ? std::to_string(threads) + " thread(s)" : describe_device(device_)));

  std::vector<TrainResult> results(S);
  bool final_evaluated = false;
  const auto recipe = scratch_->recipe(cfg_);
  // final: the member's finished model, which also gets its selection score.
  auto evaluate_member = [&](size_t i, bool final) {
    ens_->load_member(int64_t(i), *vade_);
    vade_->eval();
    return evaluate(comm_, *vade_, data_, 0, nullptr, final);
  };
  for (int64_t si = start_stage; si < int64_t(recipe.size()); ++si) {
    const models::Stage& stage = recipe[size_t(si)];
    const std::string next_name = next_stage_name(recipe, si);
    if (stage.kind == models::StageKind::MixtureInit) {
      const double t0 = now_s();
      for (size_t i = 0; i < S; ++i) {
        ens_->load_member(int64_t(i), *vade_);
        vade_->eval();
        torch::Tensor z = map_rows(
            data_.x.slice(0, data_.eval_begin, data_.eval_end), 2000,
            [&](const torch::Tensor& xb) { return vade_->embed(xb); },
            torch::empty({0, cfg_.model.latent}, data_.x.options()));
        std::string msg = vade_->init_mixture(comm_, z, member_cfg_[i]);
        ens_->store_member(int64_t(i), *vade_);
        EvalResult ev = evaluate(comm_, *vade_, data_);
        json j = {{"stage", stage.name}, {"stage_index", si}, {"epoch", 0}, {"seconds", now_s() - t0}, {"info", msg}};
        if (ev.has_labels) j.update({{"acc", ev.scores.acc}, {"nmi", ev.scores.nmi}, {"ari", ev.scores.ari}});
        log_member(i, j.dump());
        results[i].eval = ev;
        char buf[160];
        std::snprintf(buf, sizeof buf, "  ACC %.4f NMI %.4f ARI %.4f", ev.scores.acc, ev.scores.nmi, ev.scores.ari);
        log::info(stage.name + " seed " + std::to_string(seeds_[i]) + ": " + msg + (ev.has_labels ? buf : ""));
      }
      write_checkpoint(si + 1, next_name, 0, nullptr);
      continue;
    }
    const bool stage_start = si != start_stage || (start_epoch == 0 && resume_meta.step == 0);
    if (stage_start && reuse_artifacts(stage, si)) {
      for (size_t i = 0; i < S; ++i) {
        json j = {{"stage", stage.name}, {"stage_index", si}, {"epoch", stage.epochs}};
        for (auto& [f, a] : artifacts_[i]) j["artifact"] = a;
        log_member(i, j.dump());
        if (stage.kind == models::StageKind::Main) results[i].epochs = stage.epochs;
      }
      write_checkpoint(si + 1, next_name, 0, nullptr);
      continue;
    }
    auto opt = make_optimizer(stage);
    std::vector<torch::Tensor> params;
    for (auto& g : opt->param_groups())
      for (auto& p : g.params()) params.push_back(p);
    dist::GradReducer reducer(comm_, params, cfg_.dist.bucket_mb, cfg_.dist.overlap);
    const int64_t first = si == start_stage ? start_epoch : 0;
    const bool mid_epoch = resume && si == start_stage && resume_meta.step > 0;
    if (resume && si == start_stage && (first > 0 || mid_epoch)) load_checkpoint(resume_ckpt, *ens_, opt.get());
    for (int64_t e = first; e < stage.epochs; ++e) {
      if (stage.kind == models::StageKind::Main && stage.decay) {
        const double base[2] = {stage.lr > 0 ? stage.lr : cfg_.train.lr,
                                stage.lr_mixture > 0 ? stage.lr_mixture : cfg_.train.lr_mixture};
        auto& groups = opt->param_groups();
        for (size_t g = 0; g < groups.size() && g < 2; ++g)
          static_cast<torch::optim::AdamOptions&>(groups[g].options()).lr(decayed_lr(cfg_, base[g], e));
      }
      const double t0 = now_s();
      std::vector<std::vector<double>> parts;
      std::vector<std::string> names;
      std::vector<double> loss =
          run_epoch(stage, si, e, *opt, reducer, &parts, &names, e == first && mid_epoch ? &resume_meta : nullptr);
      const double secs = now_s() - t0;
      const double rss = comm_.all_reduce_value<double>(peak_rss_mib(), dist::ReduceOp::Max);
      const bool last = e + 1 == stage.epochs;
      const bool stopping = stage.kind == models::StageKind::Main && stop_after_ > 0 && e + 1 >= stop_after_ && !last;
      const bool eval_now = stage.kind == models::StageKind::Main &&
                            ((cfg_.train.eval_every > 0 && (e + 1) % cfg_.train.eval_every == 0) || last || stopping);
      std::string accs;
      for (size_t i = 0; i < S; ++i) {
        json j = {{"stage", stage.name},
                  {"stage_index", si},
                  {"epoch", e + 1},
                  {"loss", loss[i]},
                  {"seconds", secs},
                  {"samples_per_s", double(data_.n_global) * double(S) / secs},
                  {"ensemble_members", S},
                  {"lr", static_cast<torch::optim::AdamOptions&>(opt->param_groups()[0].options()).lr()},
                  {"peak_rss_mib", std::round(rss)}};
        for (size_t p = 0; p < names.size(); ++p) j[names[p]] = parts[i][p];
        if (eval_now) {
          EvalResult ev = evaluate_member(i, last && size_t(si + 1) == recipe.size());
          results[i].eval = ev;
          j.update({{"occupancy", ev.occupancy},
                    {"empty_clusters", ev.empty_clusters},
                    {"largest_fraction", ev.largest_fraction},
                    {"mean_entropy", ev.mean_entropy}});
          if (ev.has_labels) {
            j.update(
                {{"acc", ev.scores.acc}, {"nmi", ev.scores.nmi}, {"ari", ev.scores.ari}, {"purity", ev.scores.purity}});
            char buf[16];
            std::snprintf(buf, sizeof buf, " %.4f", ev.scores.acc);
            accs += buf;
          }
          if (ev.largest_fraction > cfg_.train.collapse_warn)
            log::warn("seed " + std::to_string(seeds_[i]) + ": cluster collapse, one cluster holds " +
                      std::to_string(int(100 * ev.largest_fraction)) + "% of the data at epoch " +
                      std::to_string(e + 1));
        }
        log_member(i, j.dump());
        results[i].loss = loss[i];
        if (stage.kind == models::StageKind::Main) results[i].epochs = e + 1;
      }
      if (eval_now) final_evaluated = last && size_t(si + 1) == recipe.size();
      if (comm_.rank() == 0 && cfg_.output.progress) {
        double mean = 0;
        for (double l : loss) mean += l / double(S);
        char buf[200];
        std::snprintf(buf, sizeof buf,
                      "%-8s epoch %lld/%lld  %zu members, mean loss %.4f  %.1f s  %.0f samples/s  %.0f MiB",
                      stage.name.c_str(), (long long)(e + 1), (long long)stage.epochs, S, mean, secs,
                      double(data_.n_global) * double(S) / secs, rss);
        log::info(std::string(buf) + (accs.empty() ? "" : "  ACC" + accs));
      }
      if ((cfg_.checkpoint.every > 0 && (e + 1) % cfg_.checkpoint.every == 0) || last || stopping)
        write_checkpoint(last ? si + 1 : si, last ? next_name : stage.name, last ? 0 : e + 1,
                         last ? nullptr : opt.get());
      if (stopping) {
        for (auto& r : results) r.seconds = now_s() - start;
        return results;
      }
    }
    if (resume && si == start_stage && !stage_start && resume_meta.world_size != comm_.size() && !artifact_dir_.empty())
      log::info(stage.name + ": the members' artifacts are not saved (trained partly on another number of ranks)");
    else
      save_artifacts(stage, si);
  }

  // Every member becomes an ordinary finished run directory.
  const std::vector<double> rss = comm_.all_gather_value<double>(std::round(peak_rss_mib()));
  for (size_t i = 0; i < S; ++i) {
    if (!final_evaluated)
      results[i].eval = evaluate_member(i, true);  // loads member i into vade_
    else {
      ens_->load_member(int64_t(i), *vade_);
      vade_->eval();
    }
    results[i].seconds = now_s() - start;
    on_rank0([&] {
      // What a finished separate run of this seed leaves: stage index past the recipe, "done".
      save_checkpoint((fs::path(dirs_[i]) / "checkpoint.h5").string(), *vade_, nullptr,
                      checkpoint_meta(member_cfg_[i], vade_->name(), data_, bernoulli_, comm_.size(),
                                      int64_t(recipe.size()), "done", 0));
      RunRecord rec;
      rec.world_size = comm_.size();
      rec.artifacts = artifacts_[i];
      auto it = artifacts_[i].find(models::pretrain_family(cfg_.model.name));
      if (it != artifacts_[i].end()) rec.pretrain_artifact = it->second;
      rec.peak_rss_per_rank = rss;
      rec.device = describe_device(device_);
      rec.ensemble_seeds = seeds_;
      write_run_outputs(member_cfg_[i], *vade_, data_, results[i], rec);
    });
  }
  return results;
}

}  // namespace mixvae::train
