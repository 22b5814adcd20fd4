#pragma once
// The randomness a model draws in a training step. Each step gets a fresh generator
// seeded from (run seed, stage, epoch, step) — and the rank in shard mode — so resuming
// needs no generator state and, in global mode, a sample gets the same noise whatever
// the world size: noise is drawn for the whole global batch and each rank keeps its rows.
#include <torch/torch.h>

#include <cstdint>

namespace mixvae::models {

class Noise {
 public:
  // Draws are made on the CPU and moved to `device`, so a run draws the same numbers on
  // a CPU and on a GPU (the copy is small next to a training step).
  Noise(uint64_t seed, int64_t global_rows, int64_t row_begin, int64_t row_end, torch::Device device = torch::kCPU)
      : gen_(torch::make_generator<torch::CPUGeneratorImpl>(seed)),
        global_rows_(global_rows),
        begin_(row_begin),
        end_(row_end),
        device_(device) {}

  // Standard normal [local rows, cols].
  torch::Tensor normal(int64_t cols) { return local(torch::randn({global_rows_, cols}, gen_)); }
  // Uniform on [0,1) [local rows, cols].
  torch::Tensor uniform(int64_t cols) { return local(torch::rand({global_rows_, cols}, gen_)); }
  torch::Generator& generator() { return gen_; }
  torch::Device device() const { return device_; }

 private:
  torch::Generator gen_;
  int64_t global_rows_, begin_, end_;
  torch::Device device_;

  torch::Tensor local(torch::Tensor all) const {
    if (begin_ != 0 || end_ != global_rows_) all = all.slice(0, begin_, end_).contiguous();
    return device_.is_cpu() ? all : all.to(device_, /*non_blocking=*/true);
  }
};

// Input dropout, the corruption of DEC's denoising autoencoders: each entry of x is zeroed
// with probability p and the others are scaled by 1 / (1 - p) (inverted dropout, as Keras's
// Dropout layer, so an entry keeps its expected value). `u` is uniform on [0,1), x's shape.
inline torch::Tensor input_dropout(const torch::Tensor& x, const torch::Tensor& u, double p) {
  return x * (u >= p).to(x.scalar_type()) * (1.0 / (1.0 - p));
}

// splitmix64 of a tuple of counters: independent seeds for (seed, stage, epoch, step, rank).
inline uint64_t mix_seed(uint64_t a, uint64_t b = 0, uint64_t c = 0, uint64_t d = 0, uint64_t e = 0) {
  uint64_t h = 0x243F6A8885A308D3ULL;
  for (uint64_t v : {a, b, c, d, e}) {
    h ^= v + 0x9E3779B97F4A7C15ULL + (h << 6) + (h >> 2);
    uint64_t z = h;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    h = z ^ (z >> 31);
  }
  return h;
}

}  // namespace mixvae::models
