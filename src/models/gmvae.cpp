#include "models/gmvae.h"

#include <cmath>

#include "core/errors.h"
#include "mixture/initial.h"

namespace mixvae::models {
namespace {
constexpr double kLog2Pi = 1.8378770664093453;

// K heads Lin(H, Dx) stored as one Lin(H, K*Dx), each block initialised as its own
// Glorot-uniform layer would be (bound sqrt(6 / (H + Dx)), not sqrt(6 / (H + K*Dx))).
torch::nn::Linear stacked_heads(int64_t in, int64_t k, int64_t out) { return glorot_linear(in, k * out, out); }
}  // namespace

Gmvae::Gmvae(int64_t d, const RunConfig& cfg, bool bernoulli)
    : d_(d),
      k_(cfg.model.clusters),
      dx_(cfg.model.latent),
      dw_(cfg.opt_int("gmvae.w_dim")),
      m_(cfg.opt_int("gmvae.mc_samples")),
      bernoulli_(bernoulli),
      recon_weight_(cfg.model.recon_weight),
      clamp_(cfg.model.logvar_clamp),
      free_bits_(cfg.opt_double("gmvae.free_bits")),
      zprior_weight_(cfg.opt_double("gmvae.zprior_weight")) {
  if (dw_ < 1) throw UsageError("gmvae.w_dim must be >= 1");
  if (m_ < 1) throw UsageError("gmvae.mc_samples must be >= 1");
  if (free_bits_ < 0) throw UsageError("gmvae.free_bits must be >= 0");
  if (!(zprior_weight_ >= 0)) throw UsageError("gmvae.zprior_weight must be >= 0");
  // The choice-valued keys are checked against their registered choices by the config.
  row_scope_ = cfg.opt_string("gmvae.free_bits_scope") == "row";
  reference_qz_grad_ = cfg.opt_string("gmvae.qz_gradient") == "reference";
  learned_variance_ = !bernoulli && cfg.opt_string("gmvae.gaussian_variance") == "learned";
  pretrained_start_ = cfg.opt_string("gmvae.start") == "pretrained";
  const int64_t hp = cfg.opt_int("gmvae.prior_hidden");
  if (hp < 1) throw UsageError("gmvae.prior_hidden must be >= 1");

  // Recognition model (§1.3, FC variant of §1.7): one trunk D-H-H with ReLU, four linear
  // heads mu_x, log sigma_x^2 (Dx) and mu_w, log sigma_w^2 (Dw). The reference's BatchNorm
  // layers are left out (docs/models.md: batch statistics would differ between ranks).
  std::vector<int64_t> hidden = parse_widths(cfg.model.hidden);
  std::vector<int64_t> enc{d};
  enc.insert(enc.end(), hidden.begin(), hidden.end());
  enc_ = register_module("enc", Mlp(enc, /*relu_last=*/true));
  enc_mu_x_ = register_module("enc_mu_x", glorot_linear(hidden.back(), dx_));
  enc_lv_x_ = register_module("enc_logvar_x", glorot_linear(hidden.back(), dx_));
  enc_mu_w_ = register_module("enc_mu_w", glorot_linear(hidden.back(), dw_));
  enc_lv_w_ = register_module("enc_logvar_w", glorot_linear(hidden.back(), dw_));
  // Decoder p(y|x) (§1.2, §1.7): Dx-H-H with ReLU, then the output layer (logits for the
  // Bernoulli; mean, and a log-variance head when learned, for the Gaussian).
  std::vector<int64_t> dec{dx_};
  dec.insert(dec.end(), hidden.rbegin(), hidden.rend());
  dec_ = register_module("dec", Mlp(dec, /*relu_last=*/true));
  dec_out_ = register_module("dec_out", glorot_linear(hidden.front(), d));
  if (learned_variance_) dec_lv_ = register_module("dec_logvar", glorot_linear(hidden.front(), d));
  // Prior generator (§1.2): Lin(Dw, Hp)-Tanh, then K mean heads and K log-variance heads.
  prior_h_ = register_module("prior_h", glorot_linear(dw_, hp));
  prior_mu_ = register_module("prior_mu", stacked_heads(hp, k_, dx_));
  prior_lv_ = register_module("prior_logvar", stacked_heads(hp, k_, dx_));
}

Gmvae::Encoded Gmvae::encode(const torch::Tensor& y) {
  torch::Tensor h = enc_->forward(y);
  // Every log-variance clamped before exp (§1.10).
  return {enc_mu_x_->forward(h), enc_lv_x_->forward(h).clamp(-clamp_, clamp_), enc_mu_w_->forward(h),
          enc_lv_w_->forward(h).clamp(-clamp_, clamp_)};
}

std::pair<torch::Tensor, torch::Tensor> Gmvae::prior(const torch::Tensor& w) {
  torch::Tensor h = torch::tanh(prior_h_->forward(w));
  std::vector<int64_t> shape(w.sizes().begin(), w.sizes().end() - 1);
  shape.push_back(k_);
  shape.push_back(dx_);
  return {prior_mu_->forward(h).view(shape), prior_lv_->forward(h).view(shape).clamp(-clamp_, clamp_)};
}

torch::Tensor Gmvae::log_rho(const torch::Tensor& x, const torch::Tensor& mu_k, const torch::Tensor& logvar_k) const {
  // log N = -1/2 sum_d [(x_d - mu_kd)^2 exp(-log sigma_kd^2) + log sigma_kd^2 + log 2 pi]; pi_k = 1/K.
  torch::Tensor diff2 = (x.unsqueeze(-2) - mu_k).pow(2);
  torch::Tensor log_n = -0.5 * ((diff2 * torch::exp(-logvar_k) + logvar_k).sum(-1) + double(dx_) * kLog2Pi);
  return log_n - std::log(double(k_));
}

torch::Tensor Gmvae::gaussian_kl(const torch::Tensor& mu, const torch::Tensor& logvar, const torch::Tensor& mu_k,
                                 const torch::Tensor& logvar_k) {
  // 1/2 sum_d [log sigma_k^2 - log sigma^2 + (sigma^2 + (mu - mu_k)^2) / sigma_k^2 - 1]
  return 0.5 * (logvar_k - logvar + (torch::exp(logvar) + (mu - mu_k).pow(2)) * torch::exp(-logvar_k) - 1.0).sum(-1);
}

torch::Tensor Gmvae::decode(const torch::Tensor& x) { return dec_out_->forward(dec_->forward(x)); }

torch::Tensor Gmvae::decode_logvar(const torch::Tensor& x) {
  if (!learned_variance_) throw std::logic_error("Gmvae::decode_logvar: the decoder has no log-variance head");
  return dec_lv_->forward(dec_->forward(x)).clamp(-clamp_, clamp_);
}

torch::Tensor Gmvae::recon_nll(const torch::Tensor& x, const torch::Tensor& y) {
  torch::Tensor h = dec_->forward(x);
  torch::Tensor out = dec_out_->forward(h);
  torch::Tensor nll;
  if (bernoulli_) {
    // BCE on the logits against the continuous targets in [0,1] (§1.2, §1.10).
    nll = torch::binary_cross_entropy_with_logits(out, y, {}, {}, at::Reduction::None).sum(-1);
  } else if (learned_variance_) {
    // Gaussian with learned mean and (clamped) log-variance heads (§1.2).
    torch::Tensor lv = dec_lv_->forward(h).clamp(-clamp_, clamp_);
    nll = 0.5 * (kLog2Pi + lv + (y - out).pow(2) * torch::exp(-lv)).sum(-1);
  } else {
    // Fixed variance 1/2 up to a constant: the sum of squared errors, as VaDE's reference.
    nll = (out - y).pow(2).sum(-1);
  }
  return recon_weight_ * nll;
}

Gmvae::Terms Gmvae::terms(const torch::Tensor& y, const torch::Tensor& eps_x, const torch::Tensor& eps_w) {
  const int64_t b = y.size(0), m = eps_x.size(1);
  Encoded q = encode(y);
  // Reparameterised samples x^(m), w^(m): [B, M, D*] (§1.3).
  torch::Tensor xs = q.mu_x.unsqueeze(1) + torch::exp(0.5 * q.logvar_x).unsqueeze(1) * eps_x;
  torch::Tensor ws = q.mu_w.unsqueeze(1) + torch::exp(0.5 * q.logvar_w).unsqueeze(1) * eps_w;
  auto [mu_k, lv_k] = prior(ws);  // [B, M, K, Dx]
  // q(z | x^(m), w^(m)) = softmax_k log rho_k, in log space, kept in the graph (§1.3, §1.10).
  torch::Tensor log_qz = torch::log_softmax(log_rho(xs, mu_k, lv_k), -1);  // [B, M, K]
  torch::Tensor qz = log_qz.exp();

  Terms t;
  // 1. -T1 = -(1/M) sum_m log p(y | x^(m))
  torch::Tensor y_rep = y.unsqueeze(1).expand({b, m, y.size(1)}).reshape({b * m, y.size(1)});
  t.recon = recon_nll(xs.reshape({b * m, dx_}), y_rep).view({b, m}).mean(1);
  // 2. T2 = (1/M) sum_m sum_k q_k^(m) KL(N(mu_x, sigma_x^2) || N(mu_k(w^(m)), sigma_k^2(w^(m))))
  torch::Tensor kl = gaussian_kl(q.mu_x.unsqueeze(1).unsqueeze(1), q.logvar_x.unsqueeze(1).unsqueeze(1), mu_k, lv_k);
  t.cond_prior = (qz * kl).sum(-1).mean(1);
  // 3. T3 = KL(q(w|y) || N(0, I)) = -1/2 sum_d (1 + log sigma_w^2 - mu_w^2 - sigma_w^2)
  t.w_prior = -0.5 * (1.0 + q.logvar_w - q.mu_w.pow(2) - torch::exp(q.logvar_w)).sum(1);
  // 4. T4 = (1/M) sum_m sum_k q_k (log q_k - log pi_k), with q log q as q * log_softmax (§1.10).
  t.z_prior = (qz * (log_qz + std::log(double(k_)))).sum(-1).mean(1);
  t.qz = qz;
  t.kl = kl;
  return t;
}

torch::Tensor Gmvae::z_prior_objective(const torch::Tensor& t4) const {
  const double lambda = free_bits_;
  torch::Tensor constrained;
  if (row_scope_) {
    constrained = zprior_weight_ * t4.clamp_min(lambda).sum();
  } else {
    // max(lambda, mean_b T4) * B: no z-prior gradient while the batch mean is below lambda (§1.5).
    const double rows = double(t4.size(0));
    constrained = t4.size(0) == 0 ? t4.sum() : zprior_weight_ * (t4.mean().clamp_min(lambda) * rows);
  }
  // The value of the raw term, the gradient of the constrained one.
  return t4.sum().detach() + (constrained - constrained.detach());
}

torch::Tensor Gmvae::free_bits_active(const torch::Tensor& t4) const {
  torch::Tensor v = t4.detach();
  if (row_scope_) return (v > free_bits_).to(v.scalar_type());
  const bool on = v.numel() > 0 && v.mean().item<double>() > free_bits_;
  return torch::full_like(v, on ? 1.0 : 0.0);
}

torch::Tensor Gmvae::cond_prior_objective(const Terms& t) const {
  if (!reference_qz_grad_) return t.cond_prior.sum();
  // sign -1 where the reference flips the q(z) gradient, +1 elsewhere; [B, 1, 1].
  torch::Tensor sign = (1.0 - 2.0 * free_bits_active(t.z_prior)).view({-1, 1, 1});
  torch::Tensor g = (t.qz.detach() * t.kl + sign * t.qz * t.kl.detach()).sum(-1).mean(1).sum();
  return t.cond_prior.sum().detach() + (g - g.detach());
}

LossTerms Gmvae::loss(const torch::Tensor& y, Noise& noise) {
  const int64_t b = y.size(0);
  torch::Tensor eps_x = noise.normal(m_ * dx_).view({b, m_, dx_});
  torch::Tensor eps_w = noise.normal(m_ * dw_).view({b, m_, dw_});
  Terms t = terms(y, eps_x, eps_w);
  LossTerms out;
  out.total = (t.recon + t.w_prior).sum() + cond_prior_objective(t) + z_prior_objective(t.z_prior);
  out.parts = {{"recon", t.recon.sum().detach()},
               {"kl_x", t.cond_prior.sum().detach()},
               {"kl_w", t.w_prior.sum().detach()},
               {"kl_z", t.z_prior.sum().detach()}};
  return out;
}

torch::Tensor Gmvae::posterior(const torch::Tensor& y) {
  // The reference's test-time rule (§1.6): no noise, q(z | mu_x(y), mu_w(y)).
  Encoded q = encode(y);
  auto [mu_k, lv_k] = prior(q.mu_w);
  return torch::softmax(log_rho(q.mu_x, mu_k, lv_k), -1);
}

torch::Tensor Gmvae::sample(int64_t cluster, int64_t n, torch::Generator& gen) {
  // Ancestral sampling (§1.2): w ~ N(0, I), x ~ p(x | z = cluster, w), decoder mean of p(y | x).
  // Drawn on the CPU, then moved: the same samples on any device.
  const torch::Device device = parameters().front().device();
  torch::Tensor w = torch::randn({n, dw_}, gen).to(device);
  auto [mu_k, lv_k] = prior(w);
  torch::Tensor mu = mu_k.select(1, cluster), lv = lv_k.select(1, cluster);
  torch::Tensor x = mu + torch::exp(0.5 * lv) * torch::randn({n, dx_}, gen).to(device);
  torch::Tensor out = decode(x);
  return bernoulli_ ? torch::sigmoid(out) : out;
}

std::vector<Stage> Gmvae::recipe(const RunConfig& cfg) const {
  // The paper trains the ELBO from scratch: no autoencoder, no mixture initialisation.
  if (!pretrained_start_) return {{"train", StageKind::Main, cfg.train.epochs}};
  // gmvae.start = pretrained: the components start distinct and where the data are.
  return {{"pretrain", StageKind::Pretrain, cfg.pretrain.epochs},
          {"mixture_init", StageKind::MixtureInit, 0},
          {"train", StageKind::Main, cfg.train.epochs}};
}

LossTerms Gmvae::pretrain_loss(const torch::Tensor& y, const torch::Tensor& input) {
  LossTerms out;
  if (!pretrained_start_) {
    out.total = torch::zeros({}, y.options());
    return out;
  }
  // A deterministic autoencoder y -> mu_x -> decoder, as VaDE's pretraining.
  out.total = recon_nll(enc_mu_x_->forward(enc_->forward(input)), y).sum();
  out.parts = {{"recon", out.total.detach()}};
  return out;
}

std::vector<torch::Tensor> Gmvae::pretrain_parameters() {
  std::vector<torch::Tensor> p;
  if (!pretrained_start_) return p;
  auto add = [&p](const torch::nn::Module& m) {
    for (auto& t : m.parameters()) p.push_back(t);
  };
  add(*enc_), add(*enc_mu_x_), add(*dec_), add(*dec_out_);
  if (dec_lv_) add(*dec_lv_);
  return p;
}

std::string Gmvae::init_mixture(dist::Communicator& comm, const torch::Tensor& z_local, const RunConfig& cfg) {
  if (!pretrained_start_) return "GMVAE has no mixture initialisation (its prior is a network)";
  // The K components of p(x | z, w) start as the clusters `[model] init` finds in the
  // pretrained codes mu_x: each head's bias is its cluster's mean / log-variance, and the
  // heads' weights start at zero, so that every w gives the same, data-aligned components
  // (the paper's zero-initialised biases make all K coincide, the collapse
  // docs/models.md describes). The weights learn the dependence on w from the first step.
  torch::NoGradGuard ng;
  std::string msg;
  mixture::DiagGmm g = mixture::initial_mixture(comm, z_local, k_, cfg, &msg);
  prior_mu_->bias.copy_(g.means.reshape({-1}).to(torch::kFloat32));
  prior_lv_->bias.copy_(g.variances.log().clamp(-clamp_, clamp_).reshape({-1}).to(torch::kFloat32));
  prior_mu_->weight.zero_();
  prior_lv_->weight.zero_();
  return msg + "; prior heads set to its components";
}

std::vector<torch::Tensor> Gmvae::network_parameters() {
  std::vector<torch::Tensor> p;
  for (auto& t : parameters()) p.push_back(t);
  return p;
}

}  // namespace mixvae::models
