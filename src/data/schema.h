#pragma once
// The mixvae dataset file (docs: DESIGN.md "HDF5 dataset file"):
//   /features  float32 [N, D], chunked by rows
//   /labels    int64 [N], optional (ground truth, evaluation only)
//   attributes on "/": name, source, preprocessing, num_classes, format_version, and any
//   further provenance (checksums of the raw inputs, split sizes, ...).
// Writing is atomic; reading validates shape, type and values and reads only the rows
// a rank owns.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace mixvae::data {

inline constexpr int64_t kFormatVersion = 1;

struct DatasetMeta {
  std::string name, source, preprocessing;
  int64_t num_classes = 0;  // 0: unknown / unlabelled
  // Further provenance attributes, e.g. {"sha256_train-images-idx3-ubyte.gz", "440f..."}.
  std::vector<std::pair<std::string, std::string>> extra;
  // Integer provenance attributes, e.g. {"num_train", 60000}.
  std::vector<std::pair<std::string, int64_t>> extra_int;
};

// The provenance attribute of a raw input file: {"sha256_<file name>", its SHA-256}.
std::pair<std::string, std::string> file_checksum(const std::string& path);

// Writes a dataset file at `path` atomically: the data goes to temporary_path(path) in the
// same directory, is flushed and fsync'ed, then renamed over `path` (and the directory
// fsync'ed). On any error nothing is left at `path` nor the temp file, and a DataError
// names `path`. Refuses NaN/Inf features, labels outside [0, num_classes) (or negative
// labels when num_classes is 0), and empty data. `labels` may be null.
void write_dataset(const std::string& path, const float* features, int64_t n, int64_t d, const int64_t* labels,
                   const DatasetMeta& meta);

struct DatasetInfo {
  std::string path;
  int64_t n = 0, d = 0;
  bool has_labels = false;
  int64_t num_classes = 0;
  std::string name, source, preprocessing;
  int64_t format_version = 0;
};

// Opens `path` read-only and checks its structure (no feature data is read): /features
// exists, is 2-D with D >= 1 and float32; /labels, if present, is 1-D of an integer type
// that fits int64, with N entries; num_classes >= 0; format_version not newer than ours.
// Missing attributes default to: name = the file's stem, source/preprocessing = "",
// num_classes = 0, format_version = 1.
DatasetInfo inspect(const std::string& path);

// One rank's rows.
struct Shard {
  int64_t begin = 0, end = 0;  // global row range [begin, end)
  std::vector<float> x;        // (end - begin) * d, row-major
  std::vector<int64_t> y;      // end - begin labels; empty if the file has none
  int64_t d = 0;
};

// Reads exactly rows [begin, end) of /features (and /labels) as one hyperslab each.
// DataError (naming the file and the first bad global row) for NaN/Inf features or
// labels outside [0, num_classes) (>= 0 when num_classes is 0). A range outside [0, N)
// is a caller bug: std::out_of_range.
Shard read_rows(const DatasetInfo& info, int64_t begin, int64_t end);

// Rows [rank*N/W, (rank+1)*N/W) of N for rank `rank` of `world` (64-bit, no overflow).
// Every row is owned by exactly one rank. std::invalid_argument for a bad rank/world.
std::pair<int64_t, int64_t> shard_range(int64_t n, int rank, int world);

// DataError "FILE: N samples cannot be split over W ranks" when some rank would get no
// rows.
void check_shardable(const DatasetInfo& info, int world);

}  // namespace mixvae::data
