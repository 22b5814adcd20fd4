#include "models/vade.h"

#include <cmath>

#include "mixture/initial.h"

namespace mixvae::models {
namespace {
constexpr double kLog2Pi = 1.8378770664093453;
}

Vade::Vade(int64_t d, const ModelConfig& cfg, bool bernoulli)
    : d_(d),
      k_(cfg.clusters),
      j_(cfg.latent),
      bernoulli_(bernoulli),
      recon_weight_(cfg.recon_weight),
      clamp_(cfg.logvar_clamp) {
  std::vector<int64_t> hidden = parse_widths(cfg.hidden);
  std::vector<int64_t> enc_sizes{d};
  enc_sizes.insert(enc_sizes.end(), hidden.begin(), hidden.end());
  std::vector<int64_t> dec_sizes{j_};
  dec_sizes.insert(dec_sizes.end(), hidden.rbegin(), hidden.rend());
  dec_sizes.push_back(d);
  // Encoder D-500-500-2000 then heads (mu, log sigma^2) in R^J; decoder mirrors it
  // (models-math §3.1). The decoder emits logits (Bernoulli) or means (Gaussian).
  enc_ = register_module("enc", Mlp(enc_sizes, /*relu_last=*/true));
  enc_mu_ = register_module("enc_mu", glorot_linear(hidden.back(), j_));
  enc_logvar_ = register_module("enc_logvar", glorot_linear(hidden.back(), j_));
  dec_ = register_module("dec", Mlp(dec_sizes, /*relu_last=*/false));
  // Mixture: pi through a softmax (the reference's raw theta is unconstrained, §3.5),
  // log-variances instead of variances. Real values come from init_mixture().
  pi_logits = register_parameter("pi_logits", torch::zeros({k_}));
  mu_c = register_parameter("mu_c", torch::zeros({k_, j_}));
  log_sigma2_c = register_parameter("log_sigma2_c", torch::zeros({k_, j_}));
}

std::pair<torch::Tensor, torch::Tensor> Vade::encode(const torch::Tensor& x) {
  torch::Tensor h = enc_->forward(x);
  return {enc_mu_->forward(h), enc_logvar_->forward(h).clamp(-clamp_, clamp_)};
}

torch::Tensor Vade::decode_logits(const torch::Tensor& z) { return dec_->forward(z); }

torch::Tensor Vade::clamped_log_sigma2_c() { return log_sigma2_c.clamp(-clamp_, clamp_); }

torch::Tensor Vade::recon_nll(const torch::Tensor& out, const torch::Tensor& x) {
  if (bernoulli_) {
    // -log Bernoulli(x | sigmoid(out)) summed over D, stable form (models-math §3.5).
    return torch::binary_cross_entropy_with_logits(out, x, {}, {}, at::Reduction::None).sum(1);
  }
  // The reference's "linear" likelihood: a sum of squared errors, i.e. a Gaussian of
  // fixed variance 1/2 up to a constant (models-math §3.2).
  return (out - x).pow(2).sum(1);
}

torch::Tensor Vade::log_joint(const torch::Tensor& z) {
  // log N(z | mu_c, diag sigma2_c) for all c at once: [B, K]. A single log pi_c per
  // cluster (the reference code counts it J times, models-math §3.2).
  torch::Tensor ls2 = clamped_log_sigma2_c();                         // [K, J]
  torch::Tensor diff2 = (z.unsqueeze(1) - mu_c.unsqueeze(0)).pow(2);  // [B, K, J]
  torch::Tensor log_pz_c =
      -0.5 * (double(j_) * kLog2Pi + ls2.sum(1).unsqueeze(0) + (diff2 * torch::exp(-ls2).unsqueeze(0)).sum(2));
  return log_pi().unsqueeze(0) + log_pz_c;
}

LossTerms Vade::loss(const torch::Tensor& x, Noise& noise) {
  auto [mu, logvar] = encode(x);
  // Reparameterised sample z = mu + sigma * eps, one per x (L = 1).
  torch::Tensor z = mu + torch::exp(0.5 * logvar) * noise.normal(j_);
  torch::Tensor rec = recon_weight_ * recon_nll(decode_logits(z), x);  // [B]

  // gamma = q(c|x) ~ p(c|z), computed in log space (models-math §3.2 "Responsibilities",
  // stable form of §3.5); kept in the graph as in the paper.
  torch::Tensor log_gamma = torch::log_softmax(log_joint(z), 1);  // [B, K]
  torch::Tensor gamma = log_gamma.exp();

  // sum_c gamma_c * (-E_q[log p(z|c)]), the analytic expectation over q(z|x).
  torch::Tensor prior_z = (gamma * gaussian_cross_entropy(mu, logvar, mu_c, clamped_log_sigma2_c())).sum(1);  // [B]
  // E_q[log q(c|x)] - E_q[log p(c)] = KL(q(c|x) || p(c))
  torch::Tensor kl_c = (gamma * (log_gamma - log_pi().unsqueeze(0))).sum(1);
  // -H[q(z|x)] = -1/2 sum_j (log 2pi + 1 + log sigma^2)
  torch::Tensor neg_entropy = -0.5 * (double(j_) * kLog2Pi + (1.0 + logvar).sum(1));
  torch::Tensor latent = prior_z + kl_c + neg_entropy;

  LossTerms out;
  out.total = (rec + latent).sum();
  out.parts = {
      {"recon", rec.sum().detach()}, {"kl_z", (prior_z + neg_entropy).sum().detach()}, {"kl_c", kl_c.sum().detach()}};
  return out;
}

torch::Tensor Vade::gaussian_cross_entropy(const torch::Tensor& mu, const torch::Tensor& logvar,
                                           const torch::Tensor& mu_c, const torch::Tensor& ls2_c) {
  torch::Tensor inv = torch::exp(-ls2_c).unsqueeze(0);  // [1, K, J]
  torch::Tensor t = ls2_c.unsqueeze(0) + torch::exp(logvar).unsqueeze(1) * inv +
                    (mu.unsqueeze(1) - mu_c.unsqueeze(0)).pow(2) * inv;  // [B, K, J]
  return 0.5 * (double(mu.size(1)) * kLog2Pi + t.sum(2));
}

torch::Tensor Vade::posterior(const torch::Tensor& x) {
  // At the encoder mean, like the reference's test script (models-math §3.4).
  auto mu = encode(x).first;
  return torch::softmax(log_joint(mu), 1);
}

torch::Tensor Vade::sample(int64_t cluster, int64_t n, torch::Generator& gen) {
  torch::Tensor eps = torch::randn({n, j_}, gen).to(mu_c.device());  // drawn on the CPU: the same on any device
  torch::Tensor z = mu_c[cluster].unsqueeze(0) + torch::exp(0.5 * clamped_log_sigma2_c()[cluster]).unsqueeze(0) * eps;
  torch::Tensor out = decode_logits(z);
  return bernoulli_ ? torch::sigmoid(out) : out;
}

std::vector<Stage> Vade::recipe(const RunConfig& cfg) const {
  return {{"pretrain", StageKind::Pretrain, cfg.pretrain.epochs},
          {"mixture_init", StageKind::MixtureInit, 0},
          {"train", StageKind::Main, cfg.train.epochs, 0, 0, true, "vade"}};
}

std::vector<torch::Tensor> Vade::artifact_parameters(const std::string& family) {
  if (family == "vade") return parameters();  // networks and mixture, in registration order
  return {};
}

LossTerms Vade::pretrain_loss(const torch::Tensor& x, const torch::Tensor& input) {
  // Deterministic autoencoder through the mean head (the stacked-AE pretraining the
  // reference shipped only as weight files, models-math §3.3); denoising when `input` is
  // a corrupted x.
  torch::Tensor rec = recon_weight_ * recon_nll(decode_logits(encode(input).first), x);
  LossTerms out;
  out.total = rec.sum();
  out.parts = {{"recon", out.total.detach()}};
  return out;
}

std::vector<torch::Tensor> Vade::pretrain_parameters() {
  std::vector<torch::Tensor> p;
  for (auto& t : enc_->parameters()) p.push_back(t);
  for (auto& t : enc_mu_->parameters()) p.push_back(t);
  for (auto& t : dec_->parameters()) p.push_back(t);
  return p;
}

torch::Tensor Vade::embed(const torch::Tensor& x) { return encode(x).first; }

std::string Vade::init_mixture(dist::Communicator& comm, const torch::Tensor& z_local, const RunConfig& cfg) {
  torch::NoGradGuard ng;
  std::string msg;
  mixture::DiagGmm g = mixture::initial_mixture(comm, z_local, k_, cfg, &msg);
  // k-means gives uniform weights and unit variances: written as zeros, exactly as before.
  if (cfg.model.init == "kmeans")
    pi_logits.zero_();
  else
    pi_logits.copy_(g.weights.log().to(torch::kFloat32));
  mu_c.copy_(g.means.to(torch::kFloat32));
  log_sigma2_c.copy_(g.variances.log().clamp(-clamp_, clamp_).to(torch::kFloat32));
  return msg;
}

std::vector<torch::Tensor> Vade::network_parameters() {
  std::vector<torch::Tensor> p = pretrain_parameters();
  for (auto& t : enc_logvar_->parameters()) p.push_back(t);
  return p;
}

std::vector<torch::Tensor> Vade::mixture_parameters() { return {pi_logits, mu_c, log_sigma2_c}; }

}  // namespace mixvae::models
