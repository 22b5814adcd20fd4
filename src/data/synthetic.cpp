#include "data/synthetic.h"

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/errors.h"
#include "data/schema.h"

namespace mixvae::data {
namespace {

constexpr int kLatent = 5;
constexpr int kHidden = 32;
constexpr double kCentreScale = 4.0;    // centre coordinates ~ N(0, 4^2); noise ~ N(0, 1)
constexpr double kMinSeparation = 6.0;  // centre distance in noise standard deviations
constexpr int kCentreTries = 200;
constexpr double kHiddenGain = 1.5;  // keeps tanh mostly out of saturation
constexpr double kBiasScale = 0.5;
constexpr double kOutputGain = 3.0;  // spreads outputs over most of (0, 1)
constexpr double kTwoPi = 6.283185307179586476925286766559;

// Independent generator streams, so changing how many numbers one part draws does not
// change the others.
enum Stream : uint64_t { kCentres = 1, kMap = 2, kLabels = 3, kNoise = 4 };

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

std::mt19937_64 stream(uint64_t seed, Stream s) { return std::mt19937_64(splitmix64(seed ^ splitmix64(s))); }

// Box-Muller on 53-bit uniforms: std::normal_distribution differs between standard
// libraries, this does not.
class Normal {
 public:
  explicit Normal(std::mt19937_64 rng) : rng_(std::move(rng)) {}
  double operator()() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double u1 = (static_cast<double>(rng_() >> 11) + 1.0) * 0x1p-53;  // (0, 1]
    const double u2 = static_cast<double>(rng_() >> 11) * 0x1p-53;          // [0, 1)
    const double r = std::sqrt(-2.0 * std::log(u1));
    const double t = kTwoPi * u2;
    spare_ = r * std::sin(t);
    has_spare_ = true;
    return r * std::cos(t);
  }

 private:
  std::mt19937_64 rng_;
  bool has_spare_ = false;
  double spare_ = 0.0;
};

// Uniform in [0, bound) without modulo bias (std::uniform_int_distribution is not
// specified exactly either).
uint64_t uniform_below(std::mt19937_64& rng, uint64_t bound) {
  const uint64_t threshold = (0 - bound) % bound;
  for (;;) {
    const uint64_t r = rng();
    if (r >= threshold) return r % bound;
  }
}

double distance(const double* a, const double* b) {
  double s = 0;
  for (int i = 0; i < kLatent; ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
  return std::sqrt(s);
}

// k centres, each the first of up to kCentreTries draws that keeps kMinSeparation from
// the earlier ones (or the best-separated draw when none does, for very large k).
std::vector<double> draw_centres(int64_t k, uint64_t seed) {
  Normal normal(stream(seed, kCentres));
  std::vector<double> centres(static_cast<size_t>(k) * kLatent);
  double candidate[kLatent], best[kLatent];
  for (int64_t j = 0; j < k; ++j) {
    double best_gap = -1;
    for (int t = 0; t < kCentreTries; ++t) {
      for (double& c : candidate) c = kCentreScale * normal();
      double gap = std::numeric_limits<double>::infinity();
      for (int64_t i = 0; i < j; ++i) gap = std::min(gap, distance(candidate, &centres[i * kLatent]));
      if (gap > best_gap) {
        best_gap = gap;
        std::copy(candidate, candidate + kLatent, best);
      }
      if (gap >= kMinSeparation) break;
    }
    std::copy(best, best + kLatent, &centres[j * kLatent]);
  }
  return centres;
}

std::string recipe(int64_t k) {
  return "labels: i % " + std::to_string(k) +
         " for i in [0,N), Fisher-Yates shuffled; latent z ~ N(mu_label, I) in 5-D, centres "
         "mu_j ~ N(0, 4^2 I) redrawn (up to 200 times) until >= 6 apart; "
         "x = sigmoid(3 * (W2 tanh(W1 z/4 + b1) + b2)) with hidden width 32, "
         "W1 ~ N(0, 1.5^2/5), W2 ~ N(0, 1/32), b1, b2 ~ N(0, 0.5^2) drawn once from the seed; "
         "random streams: mt19937_64 seeded by splitmix64(seed ^ splitmix64(stream)), "
         "Box-Muller normals";
}

}  // namespace

void prepare_synthetic(const std::string& out, int64_t n, int64_t d, int64_t k, uint64_t seed) {
  if (k < 2 || n < k || d < 1)
    throw UsageError("synthetic data needs n >= k >= 2 and d >= 1, got n=" + std::to_string(n) +
                     " k=" + std::to_string(k) + " d=" + std::to_string(d));
  if (d > (int64_t{1} << 36) / n)
    throw UsageError("synthetic data of n=" + std::to_string(n) + " by d=" + std::to_string(d) +
                     " is too large to hold in memory");

  const std::vector<double> centres = draw_centres(k, seed);

  Normal map_normal(stream(seed, kMap));
  std::vector<double> w1(kHidden * kLatent), b1(kHidden), w2(static_cast<size_t>(d) * kHidden),
      b2(static_cast<size_t>(d));
  for (double& w : w1) w = kHiddenGain / std::sqrt(double{kLatent}) * map_normal();
  for (double& b : b1) b = kBiasScale * map_normal();
  for (double& w : w2) w = map_normal() / std::sqrt(double{kHidden});
  for (double& b : b2) b = kBiasScale * map_normal();

  std::vector<int64_t> labels(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) labels[i] = i % k;
  std::mt19937_64 label_rng = stream(seed, kLabels);
  for (int64_t i = n - 1; i > 0; --i)
    std::swap(labels[i], labels[uniform_below(label_rng, static_cast<uint64_t>(i) + 1)]);

  Normal noise(stream(seed, kNoise));
  std::vector<float> features(static_cast<size_t>(n * d));
  double z[kLatent], h[kHidden];
  for (int64_t i = 0; i < n; ++i) {
    const double* mu = &centres[labels[i] * kLatent];
    for (int l = 0; l < kLatent; ++l) z[l] = (mu[l] + noise()) / kCentreScale;
    for (int j = 0; j < kHidden; ++j) {
      double a = b1[j];
      for (int l = 0; l < kLatent; ++l) a += w1[j * kLatent + l] * z[l];
      h[j] = std::tanh(a);
    }
    float* row = &features[static_cast<size_t>(i * d)];
    for (int64_t c = 0; c < d; ++c) {
      double a = b2[c];
      for (int j = 0; j < kHidden; ++j) a += w2[c * kHidden + j] * h[j];
      row[c] = static_cast<float>(1.0 / (1.0 + std::exp(-kOutputGain * a)));
    }
  }

  DatasetMeta meta;
  meta.name = "synthetic";
  meta.source = "mixvae synthetic Gaussian mixture (k=" + std::to_string(k) + ", seed=" + std::to_string(seed) + ")";
  meta.preprocessing = recipe(k);
  meta.num_classes = k;
  meta.extra.emplace_back("seed", std::to_string(seed));  // uint64 may not fit an int64 attr
  meta.extra_int.emplace_back("latent_dim", kLatent);
  write_dataset(out, features.data(), n, d, labels.data(), meta);
}

}  // namespace mixvae::data
