// mixvae prepare --dataset mnist|synthetic --raw DIR --out FILE.h5
#include <iostream>

#include "cli/commands.h"
#include "core/errors.h"
#include "core/log.h"
#include "data/mnist.h"
#include "data/schema.h"
#include "data/synthetic.h"

namespace mixvae::cli {
namespace {
int64_t to_int(const std::string& flag, const std::string& v) {
  try {
    size_t pos = 0;
    long long x = std::stoll(v, &pos);
    if (pos != v.size()) throw std::invalid_argument(v);
    return x;
  } catch (const std::exception&) {
    throw UsageError("prepare: --" + flag + " must be an integer, got '" + v + "'");
  }
}
}  // namespace

int cmd_prepare(dist::Communicator& comm, const Args& args) {
  const std::string usage = "mixvae prepare --dataset mnist|synthetic [--raw DIR] --out FILE.h5";
  const std::vector<FlagSpec> spec = {
      {"dataset", "mnist (the four IDX .gz files) | synthetic (a labelled mixture)", ""},
      {"raw", "directory with the published raw files (mnist)", ""},
      {"out", "HDF5 file to write (written atomically)", ""},
      {"n", "synthetic: samples", "10000"},
      {"d", "synthetic: dimension", "784"},
      {"k", "synthetic: clusters", "10"},
      {"seed", "synthetic: seed", "0"},
  };
  bool help = false;
  Flags f;
  dist::agree(comm, [&] {
    f = parse_flags("prepare", usage, spec, args, &help);
    if (help) return;
    if (!f.has("dataset")) throw UsageError("prepare: --dataset is required (mnist or synthetic)");
    if (!f.has("out")) throw UsageError("prepare: --out FILE.h5 is required");
  });
  if (help) {
    if (comm.rank() == 0) std::cout << flags_help(usage, spec);
    return kExitOk;
  }
  // One writer: rank 0 converts, the others learn the outcome.
  dist::agree(comm, [&] {
    if (comm.rank() != 0) return;
    const std::string ds = f.get("dataset"), out = f.get("out");
    if (ds == "mnist") {
      if (!f.has("raw")) throw UsageError("prepare: --raw DIR is required for mnist");
      data::prepare_mnist(f.get("raw"), out);
    } else if (ds == "synthetic") {
      data::prepare_synthetic(out, to_int("n", f.get("n")), to_int("d", f.get("d")), to_int("k", f.get("k")),
                              static_cast<uint64_t>(to_int("seed", f.get("seed"))));
    } else {
      throw UsageError("prepare: unknown --dataset '" + ds + "' (this version: mnist, synthetic)");
    }
    data::DatasetInfo info = data::inspect(out);
    log::info("wrote " + out + ": " + std::to_string(info.n) + " x " + std::to_string(info.d) + ", " +
              std::to_string(info.num_classes) + " classes (" + info.name + ")");
  });
  return kExitOk;
}

}  // namespace mixvae::cli
