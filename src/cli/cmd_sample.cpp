// mixvae sample --checkpoint RUN/checkpoint.h5 --per-cluster 16 --out grid.png
#include <cmath>
#include <iostream>

#include "cli/commands.h"
#include "core/errors.h"
#include "core/log.h"
#include "eval/png_grid.h"
#include "models/noise.h"
#include "train/trainer.h"

namespace mixvae::cli {

int cmd_sample(dist::Communicator& comm, const Args& args) {
  const std::string usage = "mixvae sample --checkpoint RUN/checkpoint.h5 [--per-cluster N] [--seed S] --out grid.png";
  const std::vector<FlagSpec> spec = {
      {"checkpoint", "checkpoint written by mixvae train", ""},
      {"per-cluster", "samples per cluster (columns of the grid)", "16"},
      {"seed", "seed of the prior draws", "0"},
      {"out", "PNG file to write (one row per cluster)", ""},
  };
  bool help = false;
  Flags f;
  dist::agree(comm, [&] {
    f = parse_flags("sample", usage, spec, args, &help);
    if (help) return;
    if (!f.has("checkpoint")) throw UsageError("sample: --checkpoint is required");
    if (!f.has("out")) throw UsageError("sample: --out grid.png is required");
  });
  if (help) {
    if (comm.rank() == 0) std::cout << flags_help(usage, spec);
    return kExitOk;
  }
  dist::agree(comm, [&] {
    if (comm.rank() != 0) return;
    int64_t n = 0;
    uint64_t seed = 0;
    try {
      n = std::stoll(f.get("per-cluster"));
      seed = std::stoull(f.get("seed"));
    } catch (const std::exception&) {
      throw UsageError("sample: --per-cluster and --seed must be integers");
    }
    if (n < 1 || n > 1000) throw UsageError("sample: --per-cluster must be in 1..1000");
    RunConfig cfg;
    auto model = train::model_from_checkpoint(f.get("checkpoint"), &cfg);
    torch::NoGradGuard ng;
    torch::Generator gen = torch::make_generator<torch::CPUGeneratorImpl>(models::mix_seed(seed, 78));
    std::vector<float> pixels;
    int64_t d = 0;
    for (int64_t c = 0; c < model->clusters(); ++c) {
      torch::Tensor s = model->sample(c, n, gen).contiguous();
      d = s.size(1);
      if ((s.min().item<float>() < 0) || (s.max().item<float>() > 1)) s = (s - s.min()) / (s.max() - s.min() + 1e-12);
      pixels.insert(pixels.end(), s.data_ptr<float>(), s.data_ptr<float>() + s.numel());
    }
    int64_t w = static_cast<int64_t>(std::ceil(std::sqrt(double(d))));
    int64_t h = (d + w - 1) / w;
    if (h * w != d) {  // pad every sample to a full tile
      std::vector<float> padded;
      for (size_t i = 0; i < pixels.size(); i += d) {
        padded.insert(padded.end(), pixels.begin() + i, pixels.begin() + i + d);
        padded.insert(padded.end(), h * w - d, 0.0f);
      }
      pixels.swap(padded);
    }
    eval::write_png_grid(f.get("out"), pixels, model->clusters(), n, h, w);
    log::info("wrote " + f.get("out") + ": " + std::to_string(model->clusters()) + " clusters x " + std::to_string(n) + " samples");
  });
  return kExitOk;
}

}  // namespace mixvae::cli
