// mixvae eval --checkpoint RUN/checkpoint.h5 [--data FILE.h5] [--json] [--assignments FILE.csv|.h5]
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/errors.h"
#include "core/files.h"
#include "core/log.h"
#include "data/h5.h"
#include "dist/tensor_ops.h"
#include "models/mlp.h"
#include "train/trainer.h"

namespace mixvae::cli {
namespace {
namespace h5 = mixvae::data::h5;

// The --assignments format by its extension: "csv", "h5" or "" (neither).
std::string assignments_format(const std::string& path) {
  const std::string ext = std::filesystem::path(path).extension().string();
  return ext == ".csv" ? "csv" : ext == ".h5" || ext == ".hdf5" ? "h5" : "";
}

// Rank 0: every row's assignment, in file order. CSV: row,cluster,confidence[,label];
// HDF5: cluster [N], posterior [N,K], embedding [N,J] (and labels [N]). Written whole or
// not at all (temporary file + rename).
void write_assignments(const std::string& path, const torch::Tensor& cluster, const torch::Tensor& posterior,
                       const torch::Tensor& embedding, const torch::Tensor& labels, const std::string& checkpoint,
                       const std::string& data_path, const std::string& model) {
  const int64_t n = cluster.size(0);
  const int64_t* c = cluster.data_ptr<int64_t>();
  const int64_t* y = labels.defined() ? labels.data_ptr<int64_t>() : nullptr;
  if (assignments_format(path) == "csv") {
    torch::Tensor conf = posterior.size(1) > 0 ? std::get<0>(posterior.max(1)).contiguous() : torch::zeros({n});
    const float* p = conf.data_ptr<float>();
    std::string out = y ? "row,cluster,confidence,label\n" : "row,cluster,confidence\n";
    out.reserve(out.size() + size_t(n) * 24);
    char buf[96];
    for (int64_t i = 0; i < n; ++i) {
      int len = y ? std::snprintf(buf, sizeof buf, "%lld,%lld,%.6g,%lld\n", (long long)i, (long long)c[i], double(p[i]),
                                  (long long)y[i])
                  : std::snprintf(buf, sizeof buf, "%lld,%lld,%.6g\n", (long long)i, (long long)c[i], double(p[i]));
      out.append(buf, size_t(len));
    }
    write_file_atomic(path, out);
    return;
  }
  write_atomically(path, "assignments", [&](const std::string& tmp) {
    h5::File f = h5::create(tmp);
    h5::write_attr(f, "format", std::string("mixvae-assignments"));
    h5::write_attr(f, "checkpoint", checkpoint);
    h5::write_attr(f, "data", data_path);
    h5::write_attr(f, "model", model);
    const hsize_t rows = hsize_t(n);
    h5::write_array(f, "cluster", c, {rows});
    h5::write_array(f, "posterior", posterior.data_ptr<float>(), {rows, hsize_t(posterior.size(1))});
    h5::write_array(f, "embedding", embedding.data_ptr<float>(), {rows, hsize_t(embedding.size(1))});
    if (y) h5::write_array(f, "labels", y, {rows});
    f.close();
  });
}

}  // namespace

int cmd_eval(dist::Communicator& comm, const Args& args) {
  const std::string usage =
      "mixvae eval --checkpoint RUN/checkpoint.h5 [--data FILE.h5] [--json] [--assignments FILE.csv|FILE.h5]";
  const std::vector<FlagSpec> spec = {
      {"checkpoint", "checkpoint written by mixvae train", ""},
      {"data", "HDF5 file to evaluate on (default: the file the run trained on)", ""},
      {"json", "print one JSON object instead of a line", "", true},
      {"assignments",
       "also write every row's cluster, in file order: FILE.csv (row,cluster,confidence[,label]) or FILE.h5 "
       "(cluster [N], posterior q(c|x) [N,K], embedding [N,J], labels [N])",
       ""},
  };
  bool help = false;
  Flags f;
  RunConfig cfg;
  std::shared_ptr<models::ClusteringModel> model;
  dist::agree(comm, [&] {
    f = parse_flags("eval", usage, spec, args, &help);
    if (help) return;
    if (!f.has("checkpoint")) throw UsageError("eval: --checkpoint is required");
    if (f.has("assignments")) {  // checked before the evaluation, not after it
      const std::string a = f.get("assignments");
      if (assignments_format(a).empty()) throw UsageError("eval: --assignments '" + a + "' must end in .csv or .h5");
      const std::filesystem::path dir = std::filesystem::path(a).parent_path();
      std::error_code ec;
      if (!dir.empty() && !std::filesystem::is_directory(dir, ec))
        throw UsageError("eval: --assignments " + a + ": no such folder " + dir.string());
    }
    std::vector<std::string> ov;
    if (f.has("data")) ov.push_back("--data.path=" + f.get("data"));
    ov.push_back("--data.shuffle=shard");
    train::CheckpointMeta meta;
    model = train::model_from_checkpoint(f.get("checkpoint"), &cfg, ov, &meta);
    // The run's own data.path may be relative to the folder it was started in: from
    // elsewhere, the absolute path recorded at training time. An explicit --data is as given.
    std::error_code ec;
    if (!f.has("data") && !std::filesystem::exists(cfg.data.path, ec)) {
      const bool relative = std::filesystem::path(cfg.data.path).is_relative();
      if (!relative || meta.data_file.empty() || !std::filesystem::exists(meta.data_file, ec))
        throw UsageError("eval: " + f.get("checkpoint") + ": the data file the run trained on, " + cfg.data.path +
                         ", is not there" + (relative ? " (from this folder)" : "") + "; give it with --data FILE.h5");
      cfg.data.path = meta.data_file;
    }
    models::set_matmul_precision(cfg.train.precision);  // as trained
  });
  if (help) {
    if (comm.rank() == 0) std::cout << flags_help(usage, spec);
    return kExitOk;
  }
  train::TrainData data = train::load_train_data(comm, cfg);
  const bool want_rows = f.has("assignments");
  train::RowResults rows;
  train::EvalResult r = train::evaluate(comm, *model, data, 0, want_rows ? &rows : nullptr);
  if (want_rows) {
    torch::Tensor cluster = dist::gather_rows<int64_t>(comm, rows.cluster.view({-1, 1}));
    torch::Tensor posterior = dist::gather_rows<float>(comm, rows.posterior);
    torch::Tensor embedding = dist::gather_rows<float>(comm, rows.embedding);
    torch::Tensor labels;
    if (r.has_labels)
      labels = dist::gather_rows<int64_t>(
          comm, data.y.slice(0, data.eval_begin, data.eval_end).reshape({-1, 1}).contiguous());
    dist::agree(comm, [&] {
      if (comm.rank() != 0) return;
      write_assignments(f.get("assignments"), cluster.view({-1}), posterior, embedding,
                        labels.defined() ? labels.view({-1}) : labels, f.get("checkpoint"), data.path, cfg.model.name);
    });
  }
  if (comm.rank() == 0) {
    nlohmann::json j = {{"checkpoint", f.get("checkpoint")},
                        {"data", data.path},
                        {"samples", r.samples},
                        {"occupancy", r.occupancy},
                        {"empty_clusters", r.empty_clusters},
                        {"mean_entropy", r.mean_entropy}};
    if (r.has_labels)
      j.update({{"acc", r.scores.acc},
                {"nmi", r.scores.nmi},
                {"ari", r.scores.ari},
                {"purity", r.scores.purity},
                {"contingency", r.contingency},
                {"cluster_class", r.scores.cluster_class}});
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
