// mixvae prepare --dataset mnist|har|reuters|stl10|npy|csv|synthetic [--raw DIR] --out FILE.h5
#include <filesystem>
#include <iostream>
#include <system_error>
#include <vector>

#include "cli/commands.h"
#include "core/errors.h"
#include "core/log.h"
#include "data/csv.h"
#include "data/har.h"
#include "data/mnist.h"
#include "data/npy.h"
#include "data/reuters.h"
#include "data/schema.h"
#include "data/stl10.h"
#include "data/stl10_backbone.h"
#include "data/synthetic.h"

namespace mixvae::cli {
namespace fs = std::filesystem;
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

std::string require(const Flags& f, const std::string& flag, const std::string& dataset, const std::string& what) {
  if (!f.has(flag) || f.get(flag).empty())
    throw UsageError("prepare: --" + flag + " " + what + " is required for --dataset " + dataset);
  return f.get(flag);
}

data::Delimiter to_delimiter(const std::string& v) {
  if (v == "auto") return data::Delimiter::kAuto;
  if (v == "comma" || v == ",") return data::Delimiter::kComma;
  if (v == "whitespace" || v == "space") return data::Delimiter::kWhitespace;
  throw UsageError("prepare: --delimiter must be auto, comma or whitespace, got '" + v + "'");
}

data::HeaderMode to_header(const std::string& v) {
  if (v == "auto") return data::HeaderMode::kAuto;
  if (v == "yes") return data::HeaderMode::kYes;
  if (v == "no") return data::HeaderMode::kNo;
  throw UsageError("prepare: --header must be auto, yes or no, got '" + v + "'");
}

void convert(const Flags& f) {
  const std::string ds = f.get("dataset"), out = f.get("out");
  if (ds == "mnist") {
    data::prepare_mnist(require(f, "raw", ds, "DIR"), out);
  } else if (ds == "har") {
    data::prepare_har(require(f, "raw", ds, "DIR"), out, f.has("first") ? to_int("first", f.get("first")) : 0);
  } else if (ds == "reuters") {
    data::ReutersOptions o;
    o.subset = data::parse_reuters_subset(f.get("subset"));
    o.docs = to_int("docs", f.get("docs"));
    o.vocabulary = to_int("vocab", f.get("vocab"));
    o.progress = true;
    data::prepare_reuters(require(f, "raw", ds, "DIR"), o, out);
  } else if (ds == "stl10") {
    if (f.has("backbone")) {
      data::Stl10BackboneOptions o;
      o.backbone = f.get("backbone");
      o.batch_size = to_int("batch-size", f.get("batch-size"));
      o.image_size = to_int("image-size", f.get("image-size"));
      o.device = f.get("device");
      o.backbone_info = f.get("backbone-info");
      o.weights_info = f.get("weights-info");
      o.progress = true;
      data::prepare_stl10_backbone(require(f, "raw", ds + " --backbone", "DIR"), o, out);
    } else if (f.has("features")) {
      data::FeatureProvenance p{f.get("backbone-info"), f.get("weights-info"), f.get("preprocessing-info")};
      if (p.backbone.empty() || p.weights.empty() || p.preprocessing.empty())
        log::warn(
            "stl10 --features: give --backbone-info, --weights-info and --preprocessing-info so the file "
            "records how the features were made (stored as 'unspecified')");
      data::prepare_stl10_features(f.get("features"), f.get("labels"), f.get("raw"), p, out);
    } else {
      throw UsageError(
          "prepare: --dataset stl10 needs --backbone FILE.pt (with --raw DIR of the binary release; "
          "launch/stl10_backbone.py writes one) "
          "or --features FILE.npy (precomputed features)");
    }
  } else if (ds == "npy") {
    data::prepare_npy(require(f, "features", ds, "FILE.npy"), f.get("labels"), f.get("name"), out);
  } else if (ds == "csv") {
    data::CsvOptions o;
    o.delimiter = to_delimiter(f.get("delimiter"));
    o.header = to_header(f.get("header"));
    o.label_column = f.get("label-column");
    data::prepare_csv(require(f, "input", ds, "FILE"), o, f.get("name"), out);
  } else if (ds == "synthetic") {
    data::prepare_synthetic(out, to_int("n", f.get("n")), to_int("d", f.get("d")), to_int("k", f.get("k")),
                            static_cast<uint64_t>(to_int("seed", f.get("seed"))));
  } else {
    throw UsageError("prepare: unknown --dataset '" + ds + "' (mnist, har, reuters, stl10, npy, csv, synthetic)");
  }
}
}  // namespace

int cmd_prepare(dist::Communicator& comm, const Args& args) {
  const std::string usage =
      "mixvae prepare --dataset mnist|har|reuters|stl10|npy|csv|synthetic [--raw DIR] --out FILE.h5 [options]\n"
      "  mnist     --raw DIR (the four IDX files)\n"
      "  har       --raw DIR ('UCI HAR Dataset' folder) [--first 10200]\n"
      "  reuters   --raw DIR (RCV1-v2 token files + qrels) [--subset dec|dec-keras] [--docs 10000] [--vocab 2000]\n"
      "  stl10     --raw DIR --backbone FILE.pt [--image-size 96] [--batch-size 100] [--device cpu]\n"
      "            or --features FILE.npy [--labels FILE.npy | --raw DIR] --backbone-info T --weights-info T "
      "--preprocessing-info T\n"
      "  npy       --features FILE.npy [--labels FILE.npy] [--name NAME]\n"
      "  csv       --input FILE [--label-column NAME|INDEX] [--header auto|yes|no] [--delimiter "
      "auto|comma|whitespace]\n"
      "  synthetic [--n N] [--d D] [--k K] [--seed S]";
  const std::vector<FlagSpec> spec = {
      {"dataset", "mnist | har | reuters | stl10 | npy | csv | synthetic", ""},
      {"raw", "directory with the published raw files (mnist, har, reuters, stl10)", ""},
      {"out", "HDF5 file to write (written atomically)", ""},
      {"first", "har: keep only the first N of the 10,299 rows (10200 = VaDE's 'HHAR')", ""},
      {"subset",
       "reuters: dec (permute all kept documents, seed 1234, take the first --docs: DEC/VaDE) | dec-keras "
       "(first --docs in file order, then permute: DEC-keras)",
       "dec"},
      {"docs", "reuters: documents in the subset", "10000"},
      {"vocab", "reuters: most frequent terms kept as features", "2000"},
      {"backbone",
       "stl10: TorchScript module (torch.jit.save) mapping [B,3,S,S] ImageNet-normalised images to [B,F]; "
       "launch/stl10_backbone.py writes the ResNet-50 one",
       ""},
      {"image-size", "stl10 --backbone: side S fed to the backbone (96 = no resize, else bilinear)", "96"},
      {"batch-size", "stl10 --backbone: images per forward pass", "100"},
      {"device", "stl10 --backbone: cpu | cuda | cuda:N", "cpu"},
      {"backbone-info", "stl10: the backbone, recorded as an attribute (e.g. 'torchvision resnet50, avgpool output')",
       ""},
      {"weights-info", "stl10: the weights, recorded as an attribute (e.g. 'IMAGENET1K_V2')", ""},
      {"preprocessing-info", "stl10 --features: how the images were prepared, recorded as an attribute", ""},
      {"features", "stl10/npy: .npy float matrix [N, D]", ""},
      {"labels", "stl10/npy: .npy integer labels [N] (stl10: 0-9)", ""},
      {"input", "csv: the text table (comma or whitespace separated, optional header line)", ""},
      {"label-column", "csv: label column, by header name or 0-based index (-1 = last); none if omitted", ""},
      {"header", "csv: auto | yes | no", "auto"},
      {"delimiter", "csv: auto | comma | whitespace", "auto"},
      {"name", "npy/csv: dataset name attribute (default: the file's stem)", ""},
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
    if (!f.has("dataset"))
      throw UsageError("prepare: --dataset is required (mnist, har, reuters, stl10, npy, csv, synthetic)");
    if (!f.has("out")) throw UsageError("prepare: --out FILE.h5 is required");
  });
  if (help) {
    if (comm.rank() == 0) std::cout << flags_help(usage, spec);
    return kExitOk;
  }
  // One writer: rank 0 converts, the others learn the outcome.
  dist::agree(comm, [&] {
    if (comm.rank() != 0) return;
    // --out's folder is made if missing, and removed again (when still empty) if the
    // conversion fails, so a failed prepare leaves nothing behind.
    std::vector<fs::path> made;
    for (fs::path p = fs::path(f.get("out")).parent_path(); !p.empty() && !fs::exists(p); p = p.parent_path())
      made.push_back(p);
    if (!made.empty()) {
      std::error_code ec;
      fs::create_directories(made.front(), ec);
      if (ec) throw UsageError(made.front().string() + ": cannot create the folder for --out: " + ec.message());
    }
    try {
      convert(f);
    } catch (...) {
      std::error_code ec;
      for (const auto& d : made) fs::remove(d, ec);  // deepest first; a folder that is not empty stays
      throw;
    }
    const std::string out = f.get("out");
    data::DatasetInfo info = data::inspect(out);
    log::info("wrote " + out + ": " + std::to_string(info.n) + " x " + std::to_string(info.d) + ", " +
              std::to_string(info.num_classes) + " classes (" + info.name + ")");
  });
  return kExitOk;
}

}  // namespace mixvae::cli
