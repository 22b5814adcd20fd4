// mixvae sample --checkpoint RUN/checkpoint.h5 --per-cluster 16 --out grid.png
#include <iostream>
#include <optional>

#include "cli/commands.h"
#include "core/errors.h"
#include "core/log.h"
#include "models/mlp.h"
#include "train/sample_grid.h"
#include "train/trainer.h"

namespace mixvae::cli {

int cmd_sample(dist::Communicator& comm, const Args& args) {
  const std::string usage = "mixvae sample --checkpoint RUN/checkpoint.h5 [--per-cluster N] [--seed S] --out grid.png";
  const std::vector<FlagSpec> spec = {
      {"checkpoint", "checkpoint written by mixvae train", ""},
      {"per-cluster", "samples per cluster (columns of the grid)", "16"},
      {"seed", "seed of the prior draws (default: the run's train.seed, which gives the run's own samples.png)", ""},
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
    std::optional<uint64_t> seed;  // default: the run's own
    try {
      n = std::stoll(f.get("per-cluster"));
      if (f.has("seed")) {
        size_t used = 0;
        const std::string text = f.get("seed");
        seed = std::stoull(text, &used);
        if (used != text.size() || text[0] == '-') throw std::invalid_argument(text);
      }
    } catch (const std::exception&) {
      throw UsageError("sample: --per-cluster must be an integer and --seed a non-negative integer");
    }
    if (n < 1 || n > 1000) throw UsageError("sample: --per-cluster must be in 1..1000");
    RunConfig cfg;
    auto model = train::model_from_checkpoint(f.get("checkpoint"), &cfg);
    models::set_matmul_precision(cfg.train.precision);  // as trained
    train::write_sample_grid(*model, f.get("out"), n, seed.value_or(uint64_t(cfg.train.seed)));
    log::info("wrote " + f.get("out") + ": " + std::to_string(model->clusters()) + " clusters x " + std::to_string(n) +
              " samples");
  });
  return kExitOk;
}

}  // namespace mixvae::cli
