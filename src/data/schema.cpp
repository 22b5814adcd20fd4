#include "data/schema.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "core/errors.h"
#include "core/files.h"
#include "core/sha256.h"
#include "data/h5.h"

namespace mixvae::data {
namespace {

// Removes the temp file unless the write got as far as renaming it into place.
class TempFileGuard {
 public:
  explicit TempFileGuard(std::string path) : path_(std::move(path)) {}
  ~TempFileGuard() {
    if (armed_) ::unlink(path_.c_str());
  }
  TempFileGuard(const TempFileGuard&) = delete;
  TempFileGuard& operator=(const TempFileGuard&) = delete;
  void dismiss() { armed_ = false; }

 private:
  std::string path_;
  bool armed_ = true;
};

std::string parent_dir(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string describe_nonfinite(float v) { return std::isnan(v) ? "NaN" : "Inf"; }

// First index i in [0, count) with a non-finite value, or -1.
int64_t first_nonfinite(const float* x, int64_t count) {
  for (int64_t i = 0; i < count; ++i)
    if (!std::isfinite(x[i])) return i;
  return -1;
}

std::string label_range(int64_t num_classes) {
  return num_classes > 0 ? "outside [0, " + std::to_string(num_classes) + ")" : "negative";
}

bool label_ok(int64_t label, int64_t num_classes) { return label >= 0 && (num_classes <= 0 || label < num_classes); }

void write_attributes(hid_t file, const DatasetMeta& meta) {
  static const char* const kReserved[] = {"name", "source", "preprocessing", "num_classes", "format_version"};
  auto check_free = [](const std::string& key) {
    for (const char* r : kReserved)
      if (key == r)
        throw std::invalid_argument("write_dataset: extra attribute '" + key + "' clashes with a standard one");
  };
  h5::write_attr(file, "name", meta.name);
  h5::write_attr(file, "source", meta.source);
  h5::write_attr(file, "preprocessing", meta.preprocessing);
  h5::write_attr(file, "num_classes", meta.num_classes);
  h5::write_attr(file, "format_version", kFormatVersion);
  for (const auto& [key, value] : meta.extra) {
    check_free(key);
    h5::write_attr(file, key, value);
  }
  for (const auto& [key, value] : meta.extra_int) {
    check_free(key);
    h5::write_attr(file, key, value);
  }
}

void write_contents(const std::string& tmp, const float* features, int64_t n, int64_t d, const int64_t* labels,
                    const DatasetMeta& meta) {
  h5::File file = h5::create(tmp);
  // ~1 MiB chunks: a rank's hyperslab then touches few chunks beyond its own rows, and
  // h5py/h5dump read it efficiently.
  const int64_t chunk_rows = std::min<int64_t>(n, std::max<int64_t>(1, (int64_t{1} << 20) / (4 * d)));
  h5::write_array(file, "features", features, {static_cast<hsize_t>(n), static_cast<hsize_t>(d)},
                  static_cast<hsize_t>(chunk_rows));
  if (labels != nullptr) h5::write_array(file, "labels", labels, {static_cast<hsize_t>(n)});
  write_attributes(file, meta);
  file.flush();
  file.close();
}

}  // namespace

void write_dataset(const std::string& path, const float* features, int64_t n, int64_t d, const int64_t* labels,
                   const DatasetMeta& meta) {
  h5::quiet();
  if (n <= 0 || d <= 0)
    throw data_error(
        path, "refusing to write an empty dataset (N = " + std::to_string(n) + ", D = " + std::to_string(d) + ")");
  if (meta.num_classes < 0) throw data_error(path, "num_classes must be >= 0, got " + std::to_string(meta.num_classes));
  if (const int64_t bad = first_nonfinite(features, n * d); bad >= 0)
    throw data_error(path, "refusing to write: feature row " + std::to_string(bad / d) + ", column " +
                               std::to_string(bad % d) + " is " + describe_nonfinite(features[bad]));
  if (labels != nullptr) {
    for (int64_t i = 0; i < n; ++i)
      if (!label_ok(labels[i], meta.num_classes))
        throw data_error(path, "refusing to write: label of row " + std::to_string(i) + " is " +
                                   std::to_string(labels[i]) + ", " + label_range(meta.num_classes));
  }

  // Same directory as the target, so the rename is atomic (same file system).
  const std::string tmp = temporary_path(path);
  TempFileGuard guard(tmp);
  try {
    write_contents(tmp, features, n, d, labels, meta);
    sync_or_throw(tmp);
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
      throw data_error(path, std::string("cannot move the finished file into place: ") + std::strerror(errno));
    guard.dismiss();
  } catch (const DataError& e) {
    // The user asked for `path`; report it rather than our temp name.
    std::string message = e.what();
    if (message.compare(0, tmp.size() + 1, tmp + ":") == 0) message = path + message.substr(tmp.size());
    throw DataError(message);
  }
  // Best effort: once the rename has happened the file is complete at `path`, and some
  // file systems refuse fsync on a directory; failing here would contradict "nothing left".
  sync_path(parent_dir(path), /*directory=*/true);
}

DatasetInfo inspect(const std::string& path) {
  h5::File file = h5::open_read(path);
  DatasetInfo info;
  info.path = path;

  if (!h5::exists(file, "features")) throw data_error(path, "has no /features dataset");
  const std::vector<hsize_t> dims = h5::dims_of(file, "features");
  if (dims.size() != 2)
    throw data_error(path, "/features must be 2-D [N, D], found rank " + std::to_string(dims.size()));
  h5::check_type<float>(file, "features");
  info.n = static_cast<int64_t>(dims[0]);
  info.d = static_cast<int64_t>(dims[1]);
  if (info.d == 0) throw data_error(path, "/features has D = 0 columns");

  info.has_labels = h5::exists(file, "labels");
  if (info.has_labels) {
    const std::vector<hsize_t> ldims = h5::dims_of(file, "labels");
    if (ldims.size() != 1)
      throw data_error(path, "/labels must be 1-D [N], found rank " + std::to_string(ldims.size()));
    h5::check_type<int64_t>(file, "labels", h5::Conversion::kWidenInteger);
    if (ldims[0] != dims[0])
      throw data_error(path, "/labels has " + std::to_string(ldims[0]) + " entries but /features has " +
                                 std::to_string(dims[0]) + " rows");
  }

  info.name = h5::read_attr_string(file, "name").value_or(std::filesystem::path(path).stem().string());
  info.source = h5::read_attr_string(file, "source").value_or("");
  info.preprocessing = h5::read_attr_string(file, "preprocessing").value_or("");
  info.num_classes = h5::read_attr_int(file, "num_classes").value_or(0);
  if (info.num_classes < 0)
    throw data_error(path, "num_classes must be >= 0, found " + std::to_string(info.num_classes));
  info.format_version = h5::read_attr_int(file, "format_version").value_or(kFormatVersion);
  if (info.format_version > kFormatVersion)
    throw data_error(path, "format_version " + std::to_string(info.format_version) +
                               " is newer than this mixvae reads (" + std::to_string(kFormatVersion) + ")");
  return info;
}

Shard read_rows(const DatasetInfo& info, int64_t begin, int64_t end) {
  if (begin < 0 || end < begin || end > info.n)
    throw std::out_of_range("read_rows: [" + std::to_string(begin) + ", " + std::to_string(end) + ") outside [0, " +
                            std::to_string(info.n) + ") of " + info.path);
  h5::File file = h5::open_read(info.path);
  const std::vector<hsize_t> dims = h5::dims_of(file, "features");
  if (dims.size() != 2 || dims[0] != static_cast<hsize_t>(info.n) || dims[1] != static_cast<hsize_t>(info.d))
    throw data_error(info.path, "changed since it was inspected (/features is no longer [" + std::to_string(info.n) +
                                    ", " + std::to_string(info.d) + "])");

  Shard shard;
  shard.begin = begin;
  shard.end = end;
  shard.d = info.d;
  shard.x = h5::read_row_range<float>(file, "features", static_cast<hsize_t>(begin), static_cast<hsize_t>(end));
  if (const int64_t bad = first_nonfinite(shard.x.data(), static_cast<int64_t>(shard.x.size())); bad >= 0)
    throw data_error(info.path, "/features row " + std::to_string(begin + bad / info.d) + ", column " +
                                    std::to_string(bad % info.d) + " is " + describe_nonfinite(shard.x[bad]));
  if (info.has_labels) {
    shard.y = h5::read_row_range<int64_t>(file, "labels", static_cast<hsize_t>(begin), static_cast<hsize_t>(end),
                                          h5::Conversion::kWidenInteger);
    for (size_t i = 0; i < shard.y.size(); ++i)
      if (!label_ok(shard.y[i], info.num_classes))
        throw data_error(info.path, "/labels row " + std::to_string(begin + static_cast<int64_t>(i)) + " is " +
                                        std::to_string(shard.y[i]) + ", " + label_range(info.num_classes));
  }
  return shard;
}

std::pair<int64_t, int64_t> shard_range(int64_t n, int rank, int world) {
  if (n < 0 || world < 1 || rank < 0 || rank >= world)
    throw std::invalid_argument("shard_range: need n >= 0 and 0 <= rank < world, got n=" + std::to_string(n) +
                                " rank=" + std::to_string(rank) + " world=" + std::to_string(world));
  // floor(n*r/W) without forming n*r: with n = q*W + m, it is q*r + floor(m*r/W), and
  // m*r < W*W fits easily.
  const int64_t q = n / world, m = n % world;
  auto boundary = [&](int64_t r) { return q * r + (m * r) / world; };
  return {boundary(rank), boundary(int64_t{rank} + 1)};
}

void check_shardable(const DatasetInfo& info, int world) {
  if (world < 1) throw std::invalid_argument("check_shardable: world must be >= 1");
  if (info.n < world)
    throw data_error(info.path,
                     std::to_string(info.n) + " samples cannot be split over " + std::to_string(world) + " ranks");
}

std::pair<std::string, std::string> file_checksum(const std::string& path) {
  return {"sha256_" + std::filesystem::path(path).filename().string(), sha256_file(path)};
}

}  // namespace mixvae::data
