// mixvae eval --checkpoint RUN/checkpoint.h5 [--data FILE.h5] [--json]
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/errors.h"
#include "core/log.h"
#include "models/mlp.h"
#include "train/trainer.h"

namespace mixvae::cli {

int cmd_eval(dist::Communicator& comm, const Args& args) {
  const std::string usage = "mixvae eval --checkpoint RUN/checkpoint.h5 [--data FILE.h5] [--json]";
  const std::vector<FlagSpec> spec = {
      {"checkpoint", "checkpoint written by mixvae train", ""},
      {"data", "HDF5 file to evaluate on (default: the file the run trained on)", ""},
      {"json", "print one JSON object instead of a line", "", true},
  };
  bool help = false;
  Flags f;
  RunConfig cfg;
  std::shared_ptr<models::ClusteringModel> model;
  dist::agree(comm, [&] {
    f = parse_flags("eval", usage, spec, args, &help);
    if (help) return;
    if (!f.has("checkpoint")) throw UsageError("eval: --checkpoint is required");
    std::vector<std::string> ov;
    if (f.has("data")) ov.push_back("--data.path=" + f.get("data"));
    ov.push_back("--data.shuffle=shard");
    model = train::model_from_checkpoint(f.get("checkpoint"), &cfg, ov);
    models::set_matmul_precision(cfg.train.precision);  // as trained
  });
  if (help) {
    if (comm.rank() == 0) std::cout << flags_help(usage, spec);
    return kExitOk;
  }
  train::TrainData data = train::load_train_data(comm, cfg);
  train::EvalResult r = train::evaluate(comm, *model, data);
  if (comm.rank() == 0) {
    nlohmann::json j = {{"checkpoint", f.get("checkpoint")}, {"data", data.path}, {"samples", r.samples},
                        {"occupancy", r.occupancy}, {"empty_clusters", r.empty_clusters}, {"mean_entropy", r.mean_entropy}};
    if (r.has_labels) j.update({{"acc", r.scores.acc}, {"nmi", r.scores.nmi}, {"ari", r.scores.ari}, {"purity", r.scores.purity},
                                  {"contingency", r.contingency}, {"cluster_class", r.scores.cluster_class}});
    if (f.has("json")) {
      std::cout << j.dump() << std::endl;
    } else if (r.has_labels) {
      char buf[200];
      std::snprintf(buf, sizeof buf, "ACC %.4f  NMI %.4f  ARI %.4f  purity %.4f  (%lld samples, %lld empty clusters)",
                    r.scores.acc, r.scores.nmi, r.scores.ari, r.scores.purity, (long long)r.samples,
                    (long long)r.empty_clusters);
      std::cout << buf << std::endl;
    } else {
      std::cout << "no labels in " << data.path << ": cluster sizes " << j["occupancy"].dump() << std::endl;
    }
  }
  return kExitOk;
}

}  // namespace mixvae::cli
