#include "models/gammmvae.h"

#include <algorithm>
#include <sstream>

#include "core/errors.h"
#include "mixture/gamma_moments.h"
#include "mixture/gmm.h"
#include "mixture/initial.h"
#include "mixture/kmeans.h"

namespace mixvae::models {

GamMMVae::GamMMVae(int64_t d, const RunConfig& cfg, bool bernoulli)
    : d_(d),
      k_(cfg.model.clusters),
      j_(cfg.model.latent),
      bernoulli_(bernoulli),
      recon_weight_(cfg.model.recon_weight),
      alpha_min_(cfg.opt_double("gammmvae.shape_min")),
      init_shape_(cfg.opt_double("gammmvae.init_shape")) {
  // The choice-valued keys are checked against their registered choices by the config.
  exact_sampler_ = cfg.opt_string("gammmvae.sampler") == "exact";
  sampled_resp_ = cfg.opt_string("gammmvae.responsibilities") == "sampled";
  if (!(alpha_min_ > 0 && alpha_min_ < kAlphaMax)) throw UsageError("gammmvae.shape_min must be in (0, 1000)");
  if (!(init_shape_ == 0 || (init_shape_ >= alpha_min_ && init_shape_ <= kAlphaMax)))
    throw UsageError("gammmvae.init_shape must be 0 (automatic) or in [gammmvae.shape_min, 1000]");

  // VaDE's trunk D-500-500-2000 (§2.2) with two positive heads (mean and shape); the
  // decoder mirrors it.
  std::vector<int64_t> hidden = parse_widths(cfg.model.hidden);
  std::vector<int64_t> enc{d};
  enc.insert(enc.end(), hidden.begin(), hidden.end());
  std::vector<int64_t> dec{j_};
  dec.insert(dec.end(), hidden.rbegin(), hidden.rend());
  dec.push_back(d);
  enc_ = register_module("enc", Mlp(enc, /*relu_last=*/true));
  enc_mean_ = register_module("enc_mean", glorot_linear(hidden.back(), j_));
  enc_alpha_ = register_module("enc_alpha", glorot_linear(hidden.back(), j_));
  dec_ = register_module("dec", Mlp(dec, /*relu_last=*/false));
  // The shape head starts constant (init_mixture may reset it): the autoencoder is
  // pretrained through the mean head, so when the VAE starts q(z|x) is centred exactly on
  // the pretrained code with a spread (coefficient of variation 1/sqrt(alpha)) that does
  // not depend on the codes' scale (§2.5 "initialise q(z|x)").
  set_initial_shape(init_shape_ > 0 ? init_shape_ : 10.0);
  // Mixture: pi through a softmax, a and b through softplus (§2.2). Real values come from
  // init_mixture(); until then a = b = 1 and pi uniform.
  pi_logits = register_parameter("pi_logits", torch::zeros({k_}));
  shape_raw = register_parameter("shape_raw", gamma::inverse_softplus(torch::full({k_, j_}, 1.0 - kParamMin)));
  rate_raw = register_parameter("rate_raw", gamma::inverse_softplus(torch::full({k_, j_}, 1.0 - kParamMin)));
}

std::pair<torch::Tensor, torch::Tensor> GamMMVae::encode(const torch::Tensor& x) {
  torch::Tensor h = enc_->forward(x);
  torch::Tensor mean = torch::softplus(enc_mean_->forward(h)) + kParamMin;
  torch::Tensor alpha = (torch::softplus(enc_alpha_->forward(h)) + alpha_min_).clamp_max(kAlphaMax);
  return {alpha, alpha / mean};  // beta = alpha / m, in [alpha_min / m, 1e6]
}

torch::Tensor GamMMVae::code(const torch::Tensor& x) {
  return torch::softplus(enc_mean_->forward(enc_->forward(x))) + kParamMin;
}

void GamMMVae::set_initial_shape(double shape) {
  torch::NoGradGuard ng;
  enc_alpha_->weight.zero_();
  enc_alpha_->bias.copy_(
      gamma::inverse_softplus(torch::full({j_}, std::max(shape - alpha_min_, 1e-6), torch::kFloat64)));
}

torch::Tensor GamMMVae::decode_logits(const torch::Tensor& z) { return dec_->forward(z.clamp_max(kZMax)); }

torch::Tensor GamMMVae::recon_nll(const torch::Tensor& out, const torch::Tensor& x) {
  if (bernoulli_)
    return recon_weight_ * torch::binary_cross_entropy_with_logits(out, x, {}, {}, at::Reduction::None).sum(1);
  // Real-valued data: VaDE's "linear" likelihood, a Gaussian of fixed variance 1/2 (§2.2, §3.2).
  return recon_weight_ * (out - x).pow(2).sum(1);
}

torch::Tensor GamMMVae::shapes() { return (torch::softplus(shape_raw) + kParamMin).clamp_max(kAlphaMax); }
torch::Tensor GamMMVae::rates() { return (torch::softplus(rate_raw) + kParamMin).clamp_max(kAlphaMax); }

torch::Tensor GamMMVae::log_joint_expected(const torch::Tensor& alpha, const torch::Tensor& beta) {
  torch::Tensor e = gamma::expected_log_density(alpha.unsqueeze(1), beta.unsqueeze(1), shapes().unsqueeze(0),
                                                rates().unsqueeze(0));  // [B, K, J]
  return log_pi().unsqueeze(0) + e.sum(2);
}

torch::Tensor GamMMVae::log_joint_sampled(const torch::Tensor& log_z, const torch::Tensor& z) {
  torch::Tensor lp =
      gamma::log_density(log_z.unsqueeze(1), z.unsqueeze(1), shapes().unsqueeze(0), rates().unsqueeze(0));
  return log_pi().unsqueeze(0) + lp.sum(2);
}

torch::Tensor GamMMVae::kl_to_clusters(const torch::Tensor& alpha, const torch::Tensor& beta) {
  return gamma::kl(alpha.unsqueeze(1), beta.unsqueeze(1), shapes().unsqueeze(0), rates().unsqueeze(0)).sum(2);
}

gamma::Sample GamMMVae::draw(const torch::Tensor& alpha, const torch::Tensor& beta, Noise& noise) {
  const int64_t b = alpha.size(0);
  if (!exact_sampler_) {
    torch::Tensor eps = noise.normal(j_), u = noise.uniform(j_);
    return gamma::sample_mt(alpha, beta, eps, u);
  }
  torch::Tensor eps = noise.normal(kExactRounds * j_).view({b, kExactRounds, j_}).permute({1, 0, 2});
  torch::Tensor ua = noise.uniform(kExactRounds * j_).view({b, kExactRounds, j_}).permute({1, 0, 2});
  torch::Tensor ub = noise.uniform(j_);
  return gamma::sample_exact(alpha, beta, eps, ua, ub);
}

LossTerms GamMMVae::loss(const torch::Tensor& x, Noise& noise) {
  auto [alpha, beta] = encode(x);
  // One reparameterised z ~ q(z|x) per row (§2.3), also fed to the decoder.
  gamma::Sample s = draw(alpha, beta, noise);
  torch::Tensor rec = recon_nll(decode_logits(s.z), x);  // [B]
  // gamma = q(c|x) (§2.4): (b) the mean-field optimum by default, (a) at the sample; in
  // log space, kept in the graph as VaDE does.
  torch::Tensor lj = sampled_resp_ ? log_joint_sampled(s.log_z, s.z) : log_joint_expected(alpha, beta);
  torch::Tensor log_gamma = torch::log_softmax(lj, 1);
  torch::Tensor gamma = log_gamma.exp();
  // sum_c gamma_c KL(Gamma(alpha, beta) || Gamma(a_c, b_c))  and  KL(gamma || pi)   (§2.4)
  torch::Tensor kl_z = (gamma * kl_to_clusters(alpha, beta)).sum(1);
  torch::Tensor kl_c = (gamma * (log_gamma - log_pi().unsqueeze(0))).sum(1);
  LossTerms out;
  out.total = (rec + kl_z + kl_c).sum();
  out.parts = {{"recon", rec.sum().detach()}, {"kl_z", kl_z.sum().detach()}, {"kl_c", kl_c.sum().detach()}};
  return out;
}

torch::Tensor GamMMVae::posterior(const torch::Tensor& x) {
  auto [alpha, beta] = encode(x);
  if (!sampled_resp_) return torch::softmax(log_joint_expected(alpha, beta), 1);
  // Option (a) at a deterministic z: the posterior mean alpha/beta (§2.4 "Cluster assignment").
  torch::Tensor z = alpha / beta;
  return torch::softmax(log_joint_sampled(torch::log(z), z), 1);
}

torch::Tensor GamMMVae::sample(int64_t cluster, int64_t n, torch::Generator& gen) {
  // Drawn on the CPU with the CPU generator (a CUDA _standard_gamma refuses it), then
  // moved: the same samples on any device, like every other draw.
  torch::Tensor a = shapes()[cluster].to(torch::kCPU).unsqueeze(0).expand({n, j_}).contiguous();
  torch::Tensor z = at::_standard_gamma(a, gen).to(pi_logits.device()) / rates()[cluster].unsqueeze(0);
  torch::Tensor out = decode_logits(z);
  return bernoulli_ ? torch::sigmoid(out) : out;
}

std::vector<Stage> GamMMVae::recipe(const RunConfig& cfg) const {
  return {{"pretrain", StageKind::Pretrain, cfg.pretrain.epochs},
          {"mixture_init", StageKind::MixtureInit, 0},
          {"train", StageKind::Main, cfg.train.epochs}};
}

LossTerms GamMMVae::pretrain_loss(const torch::Tensor& x, const torch::Tensor& input) {
  // Autoencoder with a positive (softplus) bottleneck (§2.5): the VAE's trunk, mean head
  // and decoder.
  torch::Tensor rec = recon_nll(decode_logits(code(input)), x);
  LossTerms out;
  out.total = rec.sum();
  out.parts = {{"recon", out.total.detach()}};
  return out;
}

std::vector<torch::Tensor> GamMMVae::pretrain_parameters() {
  std::vector<torch::Tensor> p;
  for (auto& t : enc_->parameters()) p.push_back(t);
  for (auto& t : enc_mean_->parameters()) p.push_back(t);
  for (auto& t : dec_->parameters()) p.push_back(t);
  return p;
}

torch::Tensor GamMMVae::embed(const torch::Tensor& x) { return code(x); }  // = alpha / beta

void GamMMVae::set_prior(const torch::Tensor& weights, const torch::Tensor& a, const torch::Tensor& b) {
  torch::NoGradGuard ng;
  pi_logits.copy_(weights.to(torch::kFloat64).log().to(pi_logits.scalar_type()));
  auto raw = [](const torch::Tensor& v) {
    return gamma::inverse_softplus((v.to(torch::kFloat64) - kParamMin).clamp_min(1e-6));
  };
  shape_raw.copy_(raw(a).to(shape_raw.scalar_type()));
  rate_raw.copy_(raw(b).to(rate_raw.scalar_type()));
}

std::string GamMMVae::init_mixture(dist::Communicator& comm, const torch::Tensor& z_local, const RunConfig& cfg) {
  // Cluster the positive codes (distributed GMM or k-means, identical on any number of
  // ranks), then set every cluster's Gamma by the method of moments of its codes (§2.5):
  // a = m^2/v, b = m/v, pi = cluster fractions, from all-reduced sufficient statistics.
  torch::NoGradGuard ng;
  std::ostringstream msg;
  torch::Tensor z = z_local.to(torch::kFloat64);
  std::string how;
  mixture::DiagGmm g = mixture::initial_mixture(comm, z, k_, cfg, &how);
  // Each code's cluster: k-means' nearest centre (one-hot), else the mixture's posterior.
  torch::Tensor lj = mixture::log_joint(g, z);
  torch::Tensor resp =
      cfg.model.init == "kmeans" ? torch::one_hot(lj.argmax(1), k_).to(torch::kFloat64) : torch::softmax(lj, 1);
  msg << how << " (on the positive codes)";
  if (resp.size(0) == 0) resp = torch::zeros({0, k_}, torch::kFloat64);
  mixture::GammaMixture gm = mixture::fit_gamma_moments(comm, z, resp);
  set_prior(gm.weights, gm.shapes, gm.rates);
  msg << "; Gamma moments: shape in [" << gm.shapes.min().item<double>() << ", " << gm.shapes.max().item<double>()
      << "], rate in [" << gm.rates.min().item<double>() << ", " << gm.rates.max().item<double>() << "]";
  // q(z|x)'s initial shape: automatic = the median prior shape, so that q starts about as
  // wide as the clusters around each code (VaDE's encoder variance starts at ~1, the
  // order of its GMM's variances).
  const double shape = init_shape_ > 0
                           ? init_shape_
                           : std::clamp(gm.shapes.median().item<double>(), std::max(alpha_min_, 1.0), kAlphaMax);
  set_initial_shape(shape);
  msg << "; q(z|x) starts with shape " << shape;
  return msg.str();
}

std::vector<torch::Tensor> GamMMVae::network_parameters() {
  std::vector<torch::Tensor> p = pretrain_parameters();
  for (auto& t : enc_alpha_->parameters()) p.push_back(t);
  return p;
}

std::vector<torch::Tensor> GamMMVae::mixture_parameters() { return {pi_logits, shape_raw, rate_raw}; }

}  // namespace mixvae::models
