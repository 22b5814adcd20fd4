#include "models/kdvae.h"

#include <algorithm>
#include <sstream>
#include <tuple>
#include <utility>
#include <vector>

#include "core/errors.h"
#include "mixture/kmeans.h"
#include "models/mlp.h"

namespace mixvae::models {

KDvae::KDvae(int64_t d, const RunConfig& cfg, bool bernoulli, bool variational)
    : d_(d), k_(cfg.model.clusters), j_(cfg.model.latent), bernoulli_(bernoulli), variational_(variational) {
  const std::string sec = variational ? "kdvae." : "kdae.";
  vade_init_ = cfg.opt_string(sec + "init") == "vade";  // vade | ae, checked by the config
  vade_clusters_ = cfg.opt_string(sec + "initial_clusters") == "vade";
  if (vade_clusters_ && !vade_init_)
    throw UsageError(sec + "initial_clusters = vade needs " + sec + "init = vade (an autoencoder has no clusters)");
  vade_checkpoint_ = cfg.opt_string(sec + "vade_checkpoint");
  if (!vade_checkpoint_.empty() && !vade_init_)
    throw UsageError(sec + "vade_checkpoint needs " + sec + "init = vade (it replaces the VaDE stages)");
  // The initialiser: VaDE's D-500-500-2000-J autoencoder and mixture ([model] keys).
  init_ = register_module("init", std::make_shared<Vade>(d, cfg.model, bernoulli));
  // k pairs D-500-100-J / J-100-500-D (paper §4.2); a VAE encoder emits mu and log sigma^2.
  std::vector<int64_t> hidden = parse_widths(cfg.opt_string(sec + "hidden"));
  std::vector<int64_t> enc{d};
  enc.insert(enc.end(), hidden.begin(), hidden.end());
  enc.push_back(variational ? 2 * j_ : j_);
  std::vector<int64_t> dec{j_};
  dec.insert(dec.end(), hidden.rbegin(), hidden.rend());
  dec.push_back(d);
  enc_ = register_module("enc", StackedMlp(k_, enc));
  dec_ = register_module("dec", StackedMlp(k_, dec));
  centers_ = register_buffer("centers", torch::zeros({k_, j_}));
  clamp_ = cfg.model.logvar_clamp;
  dense_gradient_ = cfg.opt_string(sec + "gradient") == "dense";
  stage_names_ = vade_init_
                     ? std::vector<std::string>{"pretrain", "mixture_init", "vade", "kmeans_init", "warmup", "train"}
                     : std::vector<std::string>{"pretrain", "kmeans_init", "warmup", "train"};
}

std::vector<Stage> KDvae::recipe(const RunConfig& cfg) const {
  const std::string sec = variational_ ? "kdvae." : "kdae.";
  const double lr = cfg.opt_double(sec + "lr");
  std::vector<Stage> s;
  for (const std::string& n : stage_names_) {  // the one list of stages (set_stage reads it too)
    if (n == "pretrain")
      s.push_back({n, StageKind::Pretrain, cfg.pretrain.epochs});
    else if (n == "mixture_init" || n == "kmeans_init")
      s.push_back({n, StageKind::MixtureInit, 0});
    // VaDE with [train]'s schedule: exactly a VaDE run's "train" stage (same index, same
    // parameters, same noise), so the two share its result as an artifact.
    else if (n == "vade")
      s.push_back({n, StageKind::Main, cfg.train.epochs, 0, 0, true, "vade"});
    // Warm-up and the k-network objective: constant learning rate (the papers give none).
    else if (n == "warmup")
      s.push_back({n, StageKind::Main, cfg.opt_int(sec + "warmup_epochs"), lr, lr, false});
    else
      s.push_back({n, StageKind::Main, cfg.opt_int(sec + "epochs"), lr, lr, false});
  }
  return s;
}

void KDvae::set_stage(int64_t index) {
  stage_ = std::min<int64_t>(index, int64_t(stage_names_.size()) - 1);
  const std::string& n = stage_names_[size_t(stage_)];
  phase_ = (n == "warmup" || n == "train") ? Phase::Networks : Phase::Init;
}

const std::string& KDvae::stage_name() const { return stage_names_[size_t(stage_)]; }

torch::Tensor KDvae::log_px(const torch::Tensor& out, const torch::Tensor& x) {
  torch::Tensor xt = x.dim() == 2 ? x.unsqueeze(0).expand_as(out) : x;  // shared [B, D] or per network [K, B, D]
  if (bernoulli_) {
    // log Ber(x | sigmoid(out)) summed over D (the binary case of paper §3.1).
    return -torch::binary_cross_entropy_with_logits(out, xt, {}, {}, at::Reduction::None).sum(2);
  }
  // Real-valued data: a Gaussian of fixed variance 1/2, i.e. minus the squared error,
  // as VaDE's reference does for non-binary data (docs/models.md).
  return -(out - xt).pow(2).sum(2);
}

std::pair<torch::Tensor, torch::Tensor> KDvae::latent_terms(const torch::Tensor& h, const torch::Tensor* eps) const {
  torch::Tensor mu = h.narrow(-1, 0, j_), logvar = h.narrow(-1, j_, j_).clamp(-clamp_, clamp_);
  if (eps) return {mu + torch::exp(0.5 * logvar) * *eps, -0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)};
  return {mu, -0.5 * mu.pow(2).sum(-1) + 0.5 * logvar.sum(-1)};
}

torch::Tensor KDvae::scores(const torch::Tensor& x, const torch::Tensor* eps) {
  torch::Tensor h = enc_->forward(x);                     // [K, B, 2J] or [K, B, J]
  if (!variational_) return log_px(dec_->forward(h), x);  // k-DAE: -reconstruction error
  auto [z, terms] = latent_terms(h, eps);
  return log_px(dec_->forward(z), x) + terms;
}

torch::Tensor KDvae::scores_loop(const torch::Tensor& x, const torch::Tensor* eps) {
  std::vector<torch::Tensor> rows;
  for (int64_t i = 0; i < k_; ++i) {
    torch::Tensor h = enc_->forward_one(i, x);
    if (!variational_) {
      rows.push_back(log_px(dec_->forward_one(i, h).unsqueeze(0), x)[0]);
      continue;
    }
    const torch::Tensor eps_i = eps ? (*eps)[i] : torch::Tensor();
    auto [z, terms] = latent_terms(h, eps ? &eps_i : nullptr);
    rows.push_back(log_px(dec_->forward_one(i, z).unsqueeze(0), x)[0] + terms);
  }
  return torch::stack(rows, 0);
}

torch::Tensor KDvae::selected_score_sum(const torch::Tensor& x, const torch::Tensor* eps, const torch::Tensor& idx) {
  // Row lists per network (exact: no padding, so a network that takes most rows costs no
  // more than those rows).
  const torch::Tensor cpu = idx.to(torch::kCPU, torch::kLong).contiguous();
  const int64_t b = cpu.size(0);
  const int64_t* id = cpu.data_ptr<int64_t>();
  std::vector<std::vector<int64_t>> members(static_cast<size_t>(k_));
  for (int64_t r = 0; r < b; ++r) members[size_t(id[r])].push_back(r);
  std::vector<torch::Tensor> rows(static_cast<size_t>(k_)), xs(static_cast<size_t>(k_));
  for (int64_t i = 0; i < k_; ++i) {
    if (members[size_t(i)].empty()) continue;
    rows[size_t(i)] = torch::tensor(members[size_t(i)], torch::kLong).to(x.device());
    xs[size_t(i)] = x.index_select(0, rows[size_t(i)]);  // [B_i, D]
  }
  std::vector<torch::Tensor> h = enc_->forward_groups(xs), z = h;
  std::vector<torch::Tensor> terms(static_cast<size_t>(k_));  // the score's terms besides log p(x | z_i), [B_i]
  if (variational_) {
    for (int64_t i = 0; i < k_; ++i) {
      if (!h[size_t(i)].defined()) continue;
      const torch::Tensor eps_i = eps ? (*eps)[i].index_select(0, rows[size_t(i)]) : torch::Tensor();
      std::tie(z[size_t(i)], terms[size_t(i)]) = latent_terms(h[size_t(i)], eps ? &eps_i : nullptr);
    }
  }
  std::vector<torch::Tensor> out = dec_->forward_groups(z);
  torch::Tensor total = torch::zeros({}, x.options());
  for (int64_t i = 0; i < k_; ++i) {
    if (!out[size_t(i)].defined()) continue;
    torch::Tensor s = log_px(out[size_t(i)].unsqueeze(0), xs[size_t(i)])[0];
    total = total + (terms[size_t(i)].defined() ? (s + terms[size_t(i)]).sum() : s.sum());
  }
  return total;
}

torch::Tensor KDvae::initial_cluster(const torch::Tensor& x) {
  torch::NoGradGuard ng;
  if (vade_clusters_) return init_->assign(x);  // VaDE's arg max q(c|x)
  return mixture::nearest(init_->embed(x), centers_);
}

LossTerms KDvae::loss(const torch::Tensor& x, Noise& noise) {
  if (phase_ != Phase::Networks) return init_->loss(x, noise);  // the VaDE stage
  torch::Tensor eps;
  if (variational_) eps = noise.normal(k_ * j_).view({x.size(0), k_, j_}).permute({1, 0, 2});
  const torch::Tensor* e = variational_ ? &eps : nullptr;
  const bool warmup = stage_name() == "warmup";
  LossTerms out;
  if (dense_gradient_) {
    torch::Tensor s = scores(x, e);  // [K, B]
    torch::Tensor picked = warmup ? s.gather(0, initial_cluster(x).unsqueeze(0)).squeeze(0) : std::get<0>(s.max(0));
    out.total = -picked.sum();
  } else {
    // Only row b's own network gets a gradient from row b: its initial cluster in the
    // warm-up (paper §4.2), the arg max of Eq. 6 (k-DAE: the hard-min reconstruction
    // error) afterwards. So all k score every row without a graph, to find the arg max,
    // and only the chosen (row, network) pairs run again with one.
    torch::Tensor idx;
    if (warmup) {
      idx = initial_cluster(x);
    } else {
      torch::NoGradGuard ng;
      idx = scores(x, e).argmax(0);
    }
    out.total = -selected_score_sum(x, e, idx);
  }
  out.parts = {{variational_ ? "neg_elbo" : "recon", out.total.detach()}};
  return out;
}

torch::Tensor KDvae::posterior(const torch::Tensor& x) {
  if (phase_ == Phase::Networks) return torch::softmax(scores(x, nullptr).t(), 1);
  if (phase_ == Phase::KMeans) return torch::one_hot(initial_cluster(x), k_).to(torch::kFloat32);
  return init_->posterior(x);
}

torch::Tensor KDvae::assign(const torch::Tensor& x) {
  if (phase_ == Phase::Networks) return scores(x, nullptr).argmax(0);  // Eq. 8
  return posterior(x).argmax(1);
}

torch::Tensor KDvae::sample(int64_t cluster, int64_t n, torch::Generator& gen) {
  if (phase_ != Phase::Networks) return init_->sample(cluster, n, gen);
  // Paper §4.4: z ~ N(0, I) through the cluster's own decoder.
  torch::Tensor out = dec_->forward_one(cluster, torch::randn({n, j_}, gen).to(centers_.device()));
  return bernoulli_ ? torch::sigmoid(out) : out;
}

std::string KDvae::init_mixture(dist::Communicator& comm, const torch::Tensor& z_local, const RunConfig& cfg) {
  if (stage_name() == "mixture_init") return init_->init_mixture(comm, z_local, cfg);
  if (vade_clusters_) {  // initial_clusters = vade: the warm-up starts from VaDE's own clusters
    phase_ = Phase::KMeans;
    return "initial clusters: VaDE's assignment, arg max q(c|x) (no k-means)";
  }
  // k-means on the initialiser's latent means (paper §4.2), every rank's rows.
  torch::NoGradGuard ng;
  const std::string sec = variational_ ? "kdvae." : "kdae.";
  mixture::KMeansResult km = mixture::kmeans(comm, z_local, k_, cfg.train.seed, cfg.opt_int(sec + "kmeans_iters"),
                                             cfg.opt_int(sec + "kmeans_restarts"));
  centers_.copy_(km.centers.to(torch::kFloat32));
  phase_ = Phase::KMeans;
  std::ostringstream msg;
  msg << "k-means on the " << (vade_init_ ? "VaDE" : "autoencoder") << " latent means: " << km.iterations
      << " Lloyd iterations, inertia " << km.inertia;
  return msg.str();
}

std::vector<torch::Tensor> KDvae::network_parameters() {
  if (phase_ != Phase::Networks) return init_->network_parameters();
  std::vector<torch::Tensor> p = enc_->parameters();
  for (auto& t : dec_->parameters()) p.push_back(t);
  return p;
}

std::vector<torch::Tensor> KDvae::mixture_parameters() {
  if (phase_ != Phase::Networks) return init_->mixture_parameters();
  return {};
}

}  // namespace mixvae::models
