#pragma once
// A labelled synthetic clustering data set for tests, demos and benchmarks.
#include <cstdint>
#include <string>

namespace mixvae::data {

// Writes a k-cluster Gaussian mixture in a 5-D latent space, pushed through a fixed
// random two-layer tanh network into D dimensions and squashed into (0, 1) by a sigmoid,
// so a VAE with a Bernoulli decoder can fit it and a mixture prior can recover the
// clusters. Labels are balanced (i % k, then shuffled). The full recipe is stored in the
// "preprocessing" attribute. Deterministic for a given seed on a given platform (only
// mt19937_64 and our own transforms, no implementation-defined distributions).
// UsageError unless n >= k >= 2 and d >= 1.
void prepare_synthetic(const std::string& out, int64_t n, int64_t d, int64_t k, uint64_t seed);

}  // namespace mixvae::data
