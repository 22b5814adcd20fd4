#include "data/stl10.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "core/errors.h"
#include "core/sha256.h"
#include "data/npy.h"
#include "data/schema.h"

namespace mixvae::data {
namespace {

namespace fs = std::filesystem;

std::string basename(const std::string& path) { return fs::path(path).filename().string(); }

// Size of a regular file; DataError if it is missing or not a file.
int64_t file_size(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw data_error(path, errno == ENOENT ? std::string("missing STL-10 file")
                                           : std::string("cannot access: ") + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw data_error(path, "is not a regular file");
  return static_cast<int64_t>(st.st_size);
}

std::vector<uint8_t> read_all(const std::string& path) {
  const int64_t size = file_size(path);
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) throw data_error(path, std::string("cannot read: ") + std::strerror(errno));
  const size_t got = size > 0 ? std::fread(bytes.data(), 1, bytes.size(), f) : 0;
  std::fclose(f);
  if (got != bytes.size()) throw data_error(path, "cannot read: short read");
  return bytes;
}

// Number of labels in a *_y.bin (one byte each).
int64_t count_labels(const std::string& path) {
  const int64_t n = file_size(path);
  if (n == 0) throw data_error(path, "is empty, expected one label byte (1-10) per image");
  return n;
}

void check_images(const std::string& x_path, const std::string& y_path, int64_t labels) {
  const int64_t size = file_size(x_path);
  if (size % kStl10ImageBytes != 0)
    throw data_error(x_path, "truncated: " + std::to_string(size) + " bytes is not a whole number of 3x96x96 images (" +
                                 std::to_string(kStl10ImageBytes) + " bytes each)");
  if (size / kStl10ImageBytes != labels)
    throw data_error(x_path, "holds " + std::to_string(size / kStl10ImageBytes) + " images but " + basename(y_path) +
                                 " has " + std::to_string(labels) + " labels");
}

}  // namespace

Stl10Files locate_stl10(const std::string& raw_dir, bool need_images) {
  struct stat st {};
  if (::stat(raw_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw data_error(raw_dir, "no such directory (expected the STL-10 binary files train_X.bin, train_y.bin, ...)");
  Stl10Files f;
  f.dir = raw_dir;
  if (!fs::exists(fs::path(raw_dir) / "train_y.bin") && fs::is_directory(fs::path(raw_dir) / "stl10_binary"))
    f.dir = (fs::path(raw_dir) / "stl10_binary").string();
  auto in_dir = [&](const char* name) { return (fs::path(f.dir) / name).string(); };
  f.train_y = in_dir("train_y.bin");
  f.test_y = in_dir("test_y.bin");
  f.n_train = count_labels(f.train_y);
  f.n_test = count_labels(f.test_y);
  if (need_images) {
    f.train_x = in_dir("train_X.bin");
    f.test_x = in_dir("test_X.bin");
    check_images(f.train_x, f.train_y, f.n_train);
    check_images(f.test_x, f.test_y, f.n_test);
  }
  return f;
}

std::vector<int64_t> read_stl10_labels(const Stl10Files& files) {
  std::vector<int64_t> labels;
  for (const std::string& path : {files.train_y, files.test_y}) {
    const std::vector<uint8_t> bytes = read_all(path);
    for (size_t i = 0; i < bytes.size(); ++i) {
      if (bytes[i] < 1 || bytes[i] > kStl10Classes)
        throw data_error(
            path, "label byte " + std::to_string(i) + " is " + std::to_string(bytes[i]) + ", expected a class 1-10");
      labels.push_back(bytes[i] - 1);
    }
  }
  return labels;
}

Stl10Images::Stl10Images(const Stl10Files& files)
    : train_path_(files.train_x), test_path_(files.test_x), n_train_(files.n_train), n_test_(files.n_test) {
  for (auto [path, file] : {std::pair{&train_path_, &train_}, std::pair{&test_path_, &test_}}) {
    if (path->empty()) throw std::logic_error("Stl10Images: locate_stl10 was not asked for the images");
    file->reset(std::fopen(path->c_str(), "rb"));
    if (!*file) throw data_error(*path, std::string("cannot read: ") + std::strerror(errno));
  }
}

void Stl10Images::read(int64_t first, int64_t count, uint8_t* out) {
  if (first < 0 || count < 0 || first + count > size()) throw std::out_of_range("Stl10Images::read: bad range");
  constexpr int64_t kPlane = kStl10Side * kStl10Side;
  buf_.resize(static_cast<size_t>(kStl10ImageBytes));
  for (int64_t i = first; i < first + count; ++i) {
    const bool train = i < n_train_;
    std::FILE* f = train ? train_.get() : test_.get();
    const std::string& path = train ? train_path_ : test_path_;
    const int64_t index = train ? i : i - n_train_;
    // Sequential batches seek to where the file already is; fseeko makes that free.
    if (::fseeko(f, static_cast<off_t>(index * kStl10ImageBytes), SEEK_SET) != 0 ||
        std::fread(buf_.data(), 1, buf_.size(), f) != buf_.size())
      throw data_error(path, "cannot read image " + std::to_string(index) + " (file changed while reading?)");
    uint8_t* img = out + (i - first) * kStl10ImageBytes;
    for (int64_t c = 0; c < kStl10Channels; ++c) {
      const uint8_t* src = buf_.data() + c * kPlane;
      uint8_t* dst = img + c * kPlane;
      for (int64_t x = 0; x < kStl10Side; ++x)
        for (int64_t y = 0; y < kStl10Side; ++y) dst[y * kStl10Side + x] = src[x * kStl10Side + y];
    }
  }
}

void write_stl10(const std::string& out_path, const std::vector<float>& features, int64_t n, int64_t d,
                 const std::vector<int64_t>& labels, const FeatureProvenance& provenance,
                 const std::vector<std::pair<std::string, std::string>>& extra,
                 const std::vector<std::pair<std::string, int64_t>>& extra_int) {
  auto or_unspecified = [](const std::string& s) { return s.empty() ? std::string("unspecified") : s; };
  DatasetMeta meta;
  meta.name = "stl10";
  meta.source = "STL-10 (Coates et al. 2011), labelled images: train then test";
  meta.preprocessing = "features of each 96x96 RGB image from backbone '" + or_unspecified(provenance.backbone) +
                       "' (weights: " + or_unspecified(provenance.weights) +
                       "; input preprocessing: " + or_unspecified(provenance.preprocessing) +
                       "); features stored as the backbone gave them; labels 1-10 stored as 0-9";
  meta.num_classes = kStl10Classes;
  meta.extra.emplace_back("backbone", or_unspecified(provenance.backbone));
  meta.extra.emplace_back("backbone_weights", or_unspecified(provenance.weights));
  meta.extra.emplace_back("feature_preprocessing", or_unspecified(provenance.preprocessing));
  meta.extra.insert(meta.extra.end(), extra.begin(), extra.end());
  meta.extra_int = extra_int;
  write_dataset(out_path, features.data(), n, d, labels.data(), meta);
}

void prepare_stl10_features(const std::string& features_npy, const std::string& labels_npy, const std::string& raw_dir,
                            const FeatureProvenance& provenance, const std::string& out_path) {
  if (labels_npy.empty() && raw_dir.empty())
    throw UsageError(
        "stl10 --features: the labels come from --labels FILE.npy or from --raw DIR (train_y.bin, test_y.bin)");
  const NpyArray xa = read_npy(features_npy);
  int64_t n = 0, d = 0;
  const std::vector<float> x = npy_matrix(xa, &n, &d);
  std::vector<std::pair<std::string, std::string>> extra{file_checksum(features_npy), {"features_dtype", xa.descr}};
  std::vector<std::pair<std::string, int64_t>> extra_int;
  std::vector<int64_t> y;
  std::string labels_path;
  if (!labels_npy.empty()) {
    labels_path = labels_npy;
    y = npy_labels(read_npy(labels_npy));
    for (size_t i = 0; i < y.size(); ++i)
      if (y[i] >= kStl10Classes)
        throw data_error(labels_npy, "label " + std::to_string(y[i]) + " at index " + std::to_string(i) +
                                         " is outside 0-9 (the binary release's 1-10 must be stored minus 1)");
    extra.push_back(file_checksum(labels_npy));
  } else {
    const Stl10Files files = locate_stl10(raw_dir, false);
    labels_path = files.train_y;
    y = read_stl10_labels(files);
    extra.push_back(file_checksum(files.train_y));
    extra.push_back(file_checksum(files.test_y));
    extra_int.emplace_back("num_train", files.n_train);
    extra_int.emplace_back("num_test", files.n_test);
  }
  if (static_cast<int64_t>(y.size()) != n)
    throw data_error(labels_path, "has " + std::string(labels_npy.empty() ? "(with test_y.bin) " : "") +
                                      std::to_string(y.size()) + " labels but " + basename(features_npy) + " has " +
                                      std::to_string(n) + " rows");
  write_stl10(out_path, x, n, d, y, provenance, extra, extra_int);
}

}  // namespace mixvae::data
