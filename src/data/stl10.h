#pragma once
// STL-10 converter, torch-free part: the binary release's files (labels, images in their
// column-major layout) and the precomputed-features path. Passing the images through a
// TorchScript backbone needs LibTorch and lives in stl10_backbone.{h,cpp}.
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace mixvae::data {

inline constexpr int64_t kStl10Side = 96;
inline constexpr int64_t kStl10Channels = 3;
inline constexpr int64_t kStl10ImageBytes = kStl10Channels * kStl10Side * kStl10Side;  // 27,648
inline constexpr int64_t kStl10Classes = 10;

// The labelled part of the binary release: train_X.bin / train_y.bin (5,000 images) and
// test_X.bin / test_y.bin (8,000), found in a directory or in its stl10_binary/ folder
// (what stl10_binary.tar.gz unpacks to).
struct Stl10Files {
  std::string dir;
  std::string train_x, train_y, test_x, test_y;  // *_X.bin empty unless images were asked for
  int64_t n_train = 0, n_test = 0;               // label counts
};

// Locates the label files (and, with need_images, the image files) and checks them: each
// *_X.bin a whole number of 3x96x96 images, as many as its *_y.bin has labels. DataError
// naming the file otherwise.
Stl10Files locate_stl10(const std::string& raw_dir, bool need_images);

// Train then test labels, stored 1-10 in the files and returned as 0-9. DataError naming
// the file and byte offset for a value outside 1-10.
std::vector<int64_t> read_stl10_labels(const Stl10Files& files);

// The train+test images in order, read in batches. Each channel of an image is stored
// column-major (x outer, y inner); read() returns channel-major CHW with rows (y) outer
// and columns (x) inner, the layout of a [3, 96, 96] tensor.
class Stl10Images {
 public:
  explicit Stl10Images(const Stl10Files& files);
  int64_t size() const { return n_train_ + n_test_; }
  // Images [first, first + count) into out (count * 27,648 bytes).
  void read(int64_t first, int64_t count, uint8_t* out);

 private:
  struct Closer {
    void operator()(std::FILE* f) const {
      if (f != nullptr) std::fclose(f);
    }
  };
  std::string train_path_, test_path_;
  std::unique_ptr<std::FILE, Closer> train_, test_;
  int64_t n_train_ = 0, n_test_ = 0;
  std::vector<uint8_t> buf_;
};

// What produced a set of features, recorded as the attributes backbone,
// backbone_weights and feature_preprocessing ("unspecified" when empty).
struct FeatureProvenance {
  std::string backbone, weights, preprocessing;
};

// Writes the stl10 dataset file: features [n, d] (stored as given) and labels 0-9, with
// `provenance`, `source_detail` appended to the standard source attribute, and further
// attributes (e.g. checksums of the inputs).
void write_stl10(const std::string& out_path, const std::vector<float>& features, int64_t n, int64_t d,
                 const std::vector<int64_t>& labels, const FeatureProvenance& provenance,
                 const std::vector<std::pair<std::string, std::string>>& extra,
                 const std::vector<std::pair<std::string, int64_t>>& extra_int);

// The precomputed-features path: features from a .npy float matrix [N, D] (e.g. the
// average-pooled ResNet-50 features, [13000, 2048]); labels from a .npy of integer class
// ids 0-9 (`labels_npy`), or, when that is empty, from raw_dir's train_y.bin and
// test_y.bin. DataError naming the file for a label/row count mismatch or labels outside
// 0-9; UsageError if neither labels source is given.
void prepare_stl10_features(const std::string& features_npy, const std::string& labels_npy, const std::string& raw_dir,
                            const FeatureProvenance& provenance, const std::string& out_path);

}  // namespace mixvae::data
