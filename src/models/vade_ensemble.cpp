#include "models/vade_ensemble.h"

#include <stdexcept>

namespace mixvae::models {
namespace {
constexpr double kLog2Pi = 1.8378770664093453;
}

VadeEnsemble::VadeEnsemble(int64_t members, int64_t d, const ModelConfig& cfg, bool bernoulli)
    : s_(members),
      d_(d),
      k_(cfg.clusters),
      j_(cfg.latent),
      bernoulli_(bernoulli),
      recon_weight_(cfg.recon_weight),
      clamp_(cfg.logvar_clamp) {
  if (members < 1) throw std::invalid_argument("VadeEnsemble needs at least one member");
  // The shapes of Vade (models-math §3.1); the values come from store_member().
  std::vector<int64_t> hidden = parse_widths(cfg.hidden);
  std::vector<int64_t> enc_sizes{d};
  enc_sizes.insert(enc_sizes.end(), hidden.begin(), hidden.end());
  std::vector<int64_t> dec_sizes{j_};
  dec_sizes.insert(dec_sizes.end(), hidden.rbegin(), hidden.rend());
  dec_sizes.push_back(d);
  enc_ = register_module("enc", StackedMlp(s_, enc_sizes));
  enc_mu_ = register_module("enc_mu", StackedMlp(s_, std::vector<int64_t>{hidden.back(), j_}));
  enc_logvar_ = register_module("enc_logvar", StackedMlp(s_, std::vector<int64_t>{hidden.back(), j_}));
  dec_ = register_module("dec", StackedMlp(s_, dec_sizes));
  pi_logits_ = register_parameter("pi_logits", torch::zeros({s_, k_}));
  mu_c_ = register_parameter("mu_c", torch::zeros({s_, k_, j_}));
  log_sigma2_c_ = register_parameter("log_sigma2_c", torch::zeros({s_, k_, j_}));
}

std::pair<torch::Tensor, torch::Tensor> VadeEnsemble::encode(const torch::Tensor& x) {
  torch::Tensor h = torch::relu(enc_->forward(x));  // Vade's encoder has a ReLU after its last layer too
  return {enc_mu_->forward(h), enc_logvar_->forward(h).clamp(-clamp_, clamp_)};
}

torch::Tensor VadeEnsemble::recon_nll(const torch::Tensor& out, const torch::Tensor& x) {
  if (bernoulli_)  // -log Bernoulli(x | sigmoid(out)) summed over D (models-math §3.5)
    return torch::binary_cross_entropy_with_logits(out, x, {}, {}, at::Reduction::None).sum(2);
  return (out - x).pow(2).sum(2);  // the reference's "linear" likelihood (models-math §3.2)
}

EnsembleLoss VadeEnsemble::loss(const torch::Tensor& x, const torch::Tensor& eps) {
  // Vade::loss with a leading member axis; shapes in comments are per call.
  auto [mu, logvar] = encode(x);                                       // [S, B, J]
  torch::Tensor z = mu + torch::exp(0.5 * logvar) * eps;               // reparameterised, L = 1
  torch::Tensor rec = recon_weight_ * recon_nll(dec_->forward(z), x);  // [S, B]

  torch::Tensor ls2 = log_sigma2_c_.clamp(-clamp_, clamp_);  // [S, K, J]
  torch::Tensor inv = torch::exp(-ls2).unsqueeze(1);         // [S, 1, K, J]
  torch::Tensor log_pi = torch::log_softmax(pi_logits_, 1);  // [S, K]
  // log p(c) + log N(z | mu_c, sigma2_c) (models-math §3.2), [S, B, K]
  torch::Tensor diff2 = (z.unsqueeze(2) - mu_c_.unsqueeze(1)).pow(2);  // [S, B, K, J]
  torch::Tensor log_pz_c = -0.5 * (double(j_) * kLog2Pi + ls2.sum(2).unsqueeze(1) + (diff2 * inv).sum(3));
  torch::Tensor log_gamma = torch::log_softmax(log_pi.unsqueeze(1) + log_pz_c, 2);  // q(c|x) ~ p(c|z)
  torch::Tensor gamma = log_gamma.exp();
  // -E_q[log p(z|c)] in closed form (Vade::gaussian_cross_entropy), [S, B, K]
  torch::Tensor t =
      ls2.unsqueeze(1) + torch::exp(logvar).unsqueeze(2) * inv + (mu.unsqueeze(2) - mu_c_.unsqueeze(1)).pow(2) * inv;
  torch::Tensor ce = 0.5 * (double(j_) * kLog2Pi + t.sum(3));
  torch::Tensor prior_z = (gamma * ce).sum(2);                                        // [S, B]
  torch::Tensor kl_c = (gamma * (log_gamma - log_pi.unsqueeze(1))).sum(2);            // KL(q(c|x) || p(c))
  torch::Tensor neg_entropy = -0.5 * (double(j_) * kLog2Pi + (1.0 + logvar).sum(2));  // -H[q(z|x)]

  EnsembleLoss out;
  out.per_member = (rec + prior_z + kl_c + neg_entropy).sum(1);
  out.parts = {{"recon", rec.sum(1).detach()},
               {"kl_z", (prior_z + neg_entropy).sum(1).detach()},
               {"kl_c", kl_c.sum(1).detach()}};
  return out;
}

EnsembleLoss VadeEnsemble::pretrain_loss(const torch::Tensor& x, const torch::Tensor& input) {
  torch::Tensor rec = recon_weight_ * recon_nll(dec_->forward(encode(input).first), x);
  EnsembleLoss out;
  out.per_member = rec.sum(1);
  out.parts = {{"recon", out.per_member.detach()}};
  return out;
}

std::vector<std::tuple<torch::Tensor, torch::Tensor, VadeEnsemble::Map>> VadeEnsemble::pairs(Vade& v) {
  // Module::parameters() lists a module's own parameters (pi_logits, mu_c, log_sigma2_c)
  // before its children's: enc (its Linear layers), enc_mu, enc_logvar, dec, each Linear
  // as weight [out, in], bias [out]. The stacked layers hold weight [S, in, out] and bias
  // [S, 1, out].
  std::vector<torch::Tensor> mine{pi_logits_, mu_c_, log_sigma2_c_};
  const size_t mixture = mine.size();
  for (StackedMlp* m : {&enc_, &enc_mu_, &enc_logvar_, &dec_})
    for (int64_t l = 0; l < (*m)->layers(); ++l) {
      mine.push_back((*m)->weight(l));
      mine.push_back((*m)->bias(l));
    }
  std::vector<torch::Tensor> theirs = v.parameters();
  if (theirs.size() != mine.size())
    throw std::logic_error("VadeEnsemble: the Vade has " + std::to_string(theirs.size()) + " parameters, expected " +
                           std::to_string(mine.size()));
  std::vector<std::tuple<torch::Tensor, torch::Tensor, Map>> out;
  for (size_t i = 0; i < mine.size(); ++i) {
    Map how = i < mixture ? Map::Same : ((i - mixture) % 2 == 0 ? Map::Weight : Map::Bias);
    const auto& e = mine[i];
    const auto& p = theirs[i];
    const bool fits = how == Map::Weight ? (p.dim() == 2 && e.size(1) == p.size(1) && e.size(2) == p.size(0))
                      : how == Map::Bias ? (p.dim() == 1 && e.size(2) == p.size(0))
                                         : e.sizes().slice(1) == p.sizes();
    if (!fits) throw std::logic_error("VadeEnsemble: parameter " + std::to_string(i) + " does not match the Vade's");
    out.emplace_back(e, p, how);
  }
  return out;
}

void VadeEnsemble::store_member(int64_t s, Vade& v) {
  torch::NoGradGuard ng;
  for (auto& [e, p, how] : pairs(v)) {
    torch::Tensor src = p.to(e.device());
    if (how == Map::Weight) src = src.t();
    e[s].copy_(how == Map::Bias ? src.unsqueeze(0) : src);
  }
}

void VadeEnsemble::load_member(int64_t s, Vade& v) {
  torch::NoGradGuard ng;
  for (auto& [e, p, how] : pairs(v)) {
    torch::Tensor src = e[s].to(p.device());
    if (how == Map::Weight) src = src.t();
    p.copy_(how == Map::Bias ? src.squeeze(0) : src);
  }
}

std::vector<torch::Tensor> VadeEnsemble::pretrain_parameters() {
  // Vade::pretrain_parameters: encoder, mean head, decoder (the log-variance head is not
  // part of the autoencoder).
  std::vector<torch::Tensor> p;
  for (StackedMlp* m : {&enc_, &enc_mu_, &dec_})
    for (auto& t : (*m)->parameters()) p.push_back(t);
  return p;
}

std::vector<torch::Tensor> VadeEnsemble::network_parameters() {
  std::vector<torch::Tensor> p = pretrain_parameters();
  for (auto& t : enc_logvar_->parameters()) p.push_back(t);
  return p;
}

std::vector<torch::Tensor> VadeEnsemble::mixture_parameters() { return {pi_logits_, mu_c_, log_sigma2_c_}; }

}  // namespace mixvae::models
