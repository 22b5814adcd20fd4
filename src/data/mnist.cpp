#include "data/mnist.h"

#include <sys/stat.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "core/errors.h"
#include "data/h5.h"
#include "data/idx.h"
#include "data/schema.h"

namespace mixvae::data {
namespace {

constexpr int kSide = 28;
constexpr int64_t kPixels = kSide * kSide;
constexpr int64_t kClasses = 10;

struct RawName {
  const char* split;  // "train" or "t10k"
  const char* what;   // "images" or "labels"
  const char* kind;   // "idx3" or "idx1"
};

constexpr RawName kTrainImages{"train", "images", "idx3"};
constexpr RawName kTrainLabels{"train", "labels", "idx1"};
constexpr RawName kTestImages{"t10k", "images", "idx3"};
constexpr RawName kTestLabels{"t10k", "labels", "idx1"};

std::string stem(const RawName& r) { return std::string(r.split) + "-" + r.what; }

std::string join(const std::string& dir, const std::string& name) {
  return !dir.empty() && dir.back() == '/' ? dir + name : dir + "/" + name;
}

bool is_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// The official names, then the dot spelling some mirrors use (train-images.idx3-ubyte).
std::optional<std::string> locate(const std::string& dir, const RawName& r) {
  for (const char sep : {'-', '.'})
    for (const char* suffix : {".gz", ""}) {
      const std::string path = join(dir, stem(r) + sep + r.kind + "-ubyte" + suffix);
      if (is_file(path)) return path;
    }
  return std::nullopt;
}

std::string require(const std::string& dir, const RawName& r) {
  if (auto path = locate(dir, r)) return *path;
  throw data_error(join(dir, stem(r) + "-" + r.kind + "-ubyte.gz"), "missing MNIST file (also looked for " + stem(r) +
                                                                        "-" + r.kind + "-ubyte and " + stem(r) + "." +
                                                                        r.kind + "-ubyte[.gz])");
}

struct Split {
  std::vector<uint8_t> pixels;  // n * 784
  std::vector<uint8_t> labels;  // n
  int64_t n = 0;
};

Split read_split(const std::string& images_path, const std::string& labels_path, const RawName& images_name,
                 const RawName& labels_name) {
  IdxArray images = read_idx_u8(images_path, 3);
  if (images.dims[1] != kSide || images.dims[2] != kSide)
    throw data_error(images_path, "images are " + std::to_string(images.dims[1]) + "x" +
                                      std::to_string(images.dims[2]) + ", expected 28x28");
  IdxArray labels = read_idx_u8(labels_path, 1);
  if (labels.dims[0] != images.dims[0])
    throw data_error(labels_path, stem(images_name) + " has " + std::to_string(images.dims[0]) + " images but " +
                                      stem(labels_name) + " has " + std::to_string(labels.dims[0]) + " labels");
  for (size_t i = 0; i < labels.data.size(); ++i)
    if (labels.data[i] >= kClasses)
      throw data_error(labels_path, "label " + std::to_string(labels.data[i]) + " at index " + std::to_string(i) +
                                        " is outside 0-9");
  Split split;
  split.n = images.dims[0];
  split.pixels = std::move(images.data);
  split.labels = std::move(labels.data);
  return split;
}

}  // namespace

bool find_mnist_dir(const std::string& dir) {
  for (const RawName& r : {kTrainImages, kTrainLabels, kTestImages, kTestLabels})
    if (!locate(dir, r)) return false;
  return true;
}

void prepare_mnist(const std::string& raw_dir, const std::string& out_path) {
  h5::quiet();
  struct stat st {};
  if (::stat(raw_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw data_error(raw_dir, "no such directory (expected the four MNIST IDX files)");
  const std::string train_images = require(raw_dir, kTrainImages);
  const std::string train_labels = require(raw_dir, kTrainLabels);
  const std::string test_images = require(raw_dir, kTestImages);
  const std::string test_labels = require(raw_dir, kTestLabels);

  const Split train = read_split(train_images, train_labels, kTrainImages, kTrainLabels);
  const Split test = read_split(test_images, test_labels, kTestImages, kTestLabels);

  // Train first, then test: the order DEC, VaDE and k-DVAE use for the 70,000 images.
  const int64_t n = train.n + test.n;
  std::vector<float> features(static_cast<size_t>(n * kPixels));
  std::vector<int64_t> labels(static_cast<size_t>(n));
  size_t row = 0;
  for (const Split* split : {&train, &test}) {
    const size_t offset = row * kPixels;
    for (size_t i = 0; i < split->pixels.size(); ++i)
      features[offset + i] = static_cast<float>(split->pixels[i]) / 255.0f;
    for (size_t i = 0; i < split->labels.size(); ++i) labels[row + i] = split->labels[i];
    row += static_cast<size_t>(split->n);
  }

  DatasetMeta meta;
  meta.name = "mnist";
  meta.source = "yann.lecun.com/exdb/mnist IDX files (train+t10k)";
  meta.preprocessing = "train then t10k concatenated; pixels/255 to [0,1]; flattened row-major 784";
  meta.num_classes = kClasses;
  for (const std::string& path : {train_images, train_labels, test_images, test_labels})
    meta.extra.push_back(file_checksum(path));
  meta.extra_int.emplace_back("num_train", train.n);
  meta.extra_int.emplace_back("num_test", test.n);
  write_dataset(out_path, features.data(), n, kPixels, labels.data(), meta);
}

}  // namespace mixvae::data
