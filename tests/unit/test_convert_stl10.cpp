// Tests of the STL-10 converter (src/data/stl10, src/data/stl10_backbone) on small files
// written in the binary release's format: *_X.bin with 3x96x96 uint8 per image, each
// channel stored column-major; *_y.bin with one class byte 1-10 per image. The backbone is
// a tiny TorchScript module built here in C++ (no Python needed).
#include <gtest/gtest.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/sha256.h"
#include "data/h5.h"
#include "data/schema.h"
#include "data/stl10.h"
#include "data/stl10_backbone.h"
#include "test_util.h"

namespace mixvae::data {
namespace {

namespace fs = std::filesystem;
using mixvae::test::error_of;
using mixvae::test::TempDir;

constexpr int kTrain = 3, kTest = 2, kSide = 96;
const float kMean[3] = {0.485f, 0.456f, 0.406f};
const float kStd[3] = {0.229f, 0.224f, 0.225f};

// Pixel of image `img` (train then test), channel c, row y, column x.
uint8_t pixel(int img, int c, int y, int x) { return static_cast<uint8_t>((img * 37 + c * 71 + y * 3 + x * 5) % 256); }
uint8_t label_byte(int img) { return static_cast<uint8_t>(1 + (img * 7) % 10); }  // 1..10

// Images as the binary release stores them: per channel, column-major (x outer, y inner).
std::string images_bin(int first, int count) {
  std::string s;
  for (int img = first; img < first + count; ++img)
    for (int c = 0; c < 3; ++c)
      for (int x = 0; x < kSide; ++x)
        for (int y = 0; y < kSide; ++y) s += static_cast<char>(pixel(img, c, y, x));
  return s;
}

std::string labels_bin(int first, int count) {
  std::string s;
  for (int img = first; img < first + count; ++img) s += static_cast<char>(label_byte(img));
  return s;
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string npy_f4(int rows, int cols, const std::vector<float>& v) {
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " +
                     std::to_string(cols) + "), }";
  dict.append((64 - (10 + dict.size() + 1) % 64) % 64, ' ');
  dict += '\n';
  std::string out = std::string("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(dict.size() & 0xFF);
  out += static_cast<char>(dict.size() >> 8);
  return out + dict + std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4);
}

std::string npy_i8(const std::vector<int64_t>& v) {
  std::string dict = "{'descr': '<i8', 'fortran_order': False, 'shape': (" + std::to_string(v.size()) + ",), }";
  dict.append((64 - (10 + dict.size() + 1) % 64) % 64, ' ');
  dict += '\n';
  std::string out = std::string("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(dict.size() & 0xFF);
  out += static_cast<char>(dict.size() >> 8);
  return out + dict + std::string(reinterpret_cast<const char*>(v.data()), v.size() * 8);
}

// A TorchScript module with the given forward(self, x) body, saved to `path`.
void save_module(const std::string& path, const std::string& body) {
  torch::jit::Module m("m");
  m.define("def forward(self, x):\n    " + body + "\n");
  m.save(path);
}

class ConvertStl10 : public ::testing::Test {
 protected:
  void SetUp() override {
    raw = tmp.file("stl10_binary");
    fs::create_directory(raw);
    fs::create_directory(tmp.file("out"));
    out = tmp.file("out/stl10.h5");
    write_bytes(path("train_X.bin"), images_bin(0, kTrain));
    write_bytes(path("train_y.bin"), labels_bin(0, kTrain));
    write_bytes(path("test_X.bin"), images_bin(kTrain, kTest));
    write_bytes(path("test_y.bin"), labels_bin(kTrain, kTest));
  }
  std::string path(const std::string& name) const { return raw + "/" + name; }

  Stl10BackboneOptions backbone(const std::string& body, int64_t batch = 2) {
    Stl10BackboneOptions o;
    o.backbone = tmp.file("backbone.pt");
    save_module(o.backbone, body);
    o.batch_size = batch;
    return o;
  }

  void expect_refused(const std::function<void()>& f, const std::string& file, const std::string& phrase) {
    const std::string msg = error_of(f);
    EXPECT_CONTAINS(msg, file);
    EXPECT_CONTAINS(msg, phrase);
    EXPECT_TRUE(fs::is_empty(tmp.file("out"))) << "something left in the output directory";
  }

  TempDir tmp;
  std::string raw, out;
};

TEST_F(ConvertStl10, ImagesAreTransposedFromColumnMajor) {
  const Stl10Files files = locate_stl10(tmp.path(), true);  // finds the stl10_binary/ folder
  EXPECT_EQ(files.n_train, kTrain);
  EXPECT_EQ(files.n_test, kTest);
  Stl10Images images(files);
  ASSERT_EQ(images.size(), kTrain + kTest);
  std::vector<uint8_t> buf(3 * kStl10ImageBytes);
  images.read(2, 3, buf.data());  // crosses from train into test
  for (int i = 0; i < 3; ++i)
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < kSide; ++y)
        for (int x = 0; x < kSide; ++x)
          ASSERT_EQ(buf[((i * 3 + c) * kSide + y) * kSide + x], pixel(2 + i, c, y, x))
              << "image " << 2 + i << " c " << c << " y " << y << " x " << x;
  const std::vector<int64_t> labels = read_stl10_labels(files);
  ASSERT_EQ(labels.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(labels[i], label_byte(i) - 1);
}

TEST_F(ConvertStl10, BackboneFeaturesInBatches) {
  // Pixel (row 0, column 1) and (row 2, column 0) of each channel: shows the orientation.
  Stl10BackboneOptions o = backbone("return torch.cat([x[:, :, 0, 1], x[:, :, 2, 0]], 1)");
  o.backbone_info = "test probe";
  prepare_stl10_backbone(raw, o, out);
  const DatasetInfo info = inspect(out);
  EXPECT_EQ(info.name, "stl10");
  EXPECT_EQ(info.n, kTrain + kTest);
  EXPECT_EQ(info.d, 6);
  EXPECT_EQ(info.num_classes, 10);
  const Shard s = read_rows(info, 0, info.n);
  for (int i = 0; i < kTrain + kTest; ++i) {
    EXPECT_EQ(s.y[i], label_byte(i) - 1);
    for (int c = 0; c < 3; ++c) {
      EXPECT_NEAR(s.x[i * 6 + c], (pixel(i, c, 0, 1) / 255.0f - kMean[c]) / kStd[c], 1e-5) << i << " " << c;
      EXPECT_NEAR(s.x[i * 6 + 3 + c], (pixel(i, c, 2, 0) / 255.0f - kMean[c]) / kStd[c], 1e-5) << i << " " << c;
    }
  }
  h5::File f = h5::open_read(out);
  EXPECT_EQ(h5::read_attr_string(f, "backbone"), "test probe");
  EXPECT_EQ(h5::read_attr_string(f, "sha256_backbone.pt"), sha256_file(o.backbone));
  EXPECT_CONTAINS(*h5::read_attr_string(f, "backbone_weights"), "sha256 " + sha256_file(o.backbone));
  EXPECT_CONTAINS(*h5::read_attr_string(f, "feature_preprocessing"), "ImageNet mean (0.485, 0.456, 0.406)");
  EXPECT_CONTAINS(*h5::read_attr_string(f, "feature_preprocessing"), "not resized (96x96)");
  EXPECT_EQ(h5::read_attr_string(f, "sha256_train_X.bin"), sha256_file(path("train_X.bin")));
  EXPECT_EQ(h5::read_attr_int(f, "num_train"), kTrain);
  EXPECT_EQ(h5::read_attr_int(f, "num_test"), kTest);
  EXPECT_EQ(h5::read_attr_int(f, "batch_size"), 2);
  EXPECT_EQ(h5::read_attr_int(f, "image_size"), 96);
}

TEST_F(ConvertStl10, ResizeAndPooledOutputShape) {
  // [B, 2, 1, 1] like an average pool: the image side it saw, and a channel mean.
  Stl10BackboneOptions o = backbone(
      "return torch.stack([torch.ones([x.size(0)]) * float(x.size(2)), x.mean(dim=[1, 2, 3])], 1)"
      ".unsqueeze(2).unsqueeze(3)",
      4);
  o.image_size = 32;
  prepare_stl10_backbone(raw, o, out);
  const DatasetInfo info = inspect(out);
  EXPECT_EQ(info.d, 2);
  const Shard s = read_rows(info, 0, info.n);
  for (int i = 0; i < info.n; ++i) EXPECT_EQ(s.x[i * 2], 32.0f);
  h5::File f = h5::open_read(out);
  EXPECT_CONTAINS(*h5::read_attr_string(f, "feature_preprocessing"), "bilinear resize 96x96 -> 32x32");
}

TEST_F(ConvertStl10, BadBackbonesAreRefused) {
  Stl10BackboneOptions o = backbone("return x");
  expect_refused([&] { prepare_stl10_backbone(raw, o, out); }, o.backbone,
                 "forward() returned shape [2, 3, 96, 96] for 2 images");
  o = backbone("return torch.log(x.mean(dim=[2, 3]) * 0.0 - 1.0)");
  expect_refused([&] { prepare_stl10_backbone(raw, o, out); }, o.backbone, "NaN/Inf features for images 0-1");
  o = backbone("return x[:, :, :, 0].sum() ");
  expect_refused([&] { prepare_stl10_backbone(raw, o, out); }, o.backbone, "forward() returned shape []");
  o = backbone("return x.view([7, -1])");
  expect_refused([&] { prepare_stl10_backbone(raw, o, out); }, o.backbone, "forward() failed on a batch");
  write_bytes(o.backbone, "not a zip archive");
  expect_refused([&] { prepare_stl10_backbone(raw, o, out); }, o.backbone, "cannot load as a TorchScript module");
  o.backbone = tmp.file("absent.pt");
  expect_refused([&] { prepare_stl10_backbone(raw, o, out); }, o.backbone, "no such file");
  o = backbone("return x.mean(dim=[2, 3])");
  o.device = "gpu7";
  EXPECT_THROW(prepare_stl10_backbone(raw, o, out), UsageError);
  o.device = "cpu";
  o.batch_size = 0;
  EXPECT_THROW(prepare_stl10_backbone(raw, o, out), UsageError);
}

TEST_F(ConvertStl10, BadBinaryFilesAreRefused) {
  Stl10BackboneOptions o = backbone("return x.mean(dim=[2, 3])");
  auto convert = [&] { prepare_stl10_backbone(raw, o, out); };
  const std::string train_x = images_bin(0, kTrain);
  write_bytes(path("train_X.bin"), train_x.substr(0, train_x.size() - 100));
  expect_refused(convert, path("train_X.bin"), "truncated: 82844 bytes is not a whole number of 3x96x96 images");
  write_bytes(path("train_X.bin"), train_x.substr(0, 2 * kStl10ImageBytes));
  expect_refused(convert, path("train_X.bin"), "holds 2 images but train_y.bin has 3 labels");
  write_bytes(path("train_X.bin"), train_x);
  write_bytes(path("test_y.bin"), std::string("\x03\x0B", 2));
  expect_refused(convert, path("test_y.bin"), "label byte 1 is 11, expected a class 1-10");
  write_bytes(path("test_y.bin"), std::string("\x00\x01", 2));
  expect_refused(convert, path("test_y.bin"), "label byte 0 is 0");
  fs::remove(path("test_X.bin"));
  expect_refused(convert, path("test_X.bin"), "missing STL-10 file");
  expect_refused([&] { prepare_stl10_backbone(tmp.file("nowhere"), o, out); }, tmp.file("nowhere"),
                 "no such directory");
}

TEST_F(ConvertStl10, PrecomputedFeaturesWithLabelsFromTheRelease) {
  std::vector<float> x(5 * 4);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.25f * static_cast<float>(i);
  write_bytes(tmp.file("feats.npy"), npy_f4(5, 4, x));
  const FeatureProvenance p{"torchvision resnet50 avgpool", "IMAGENET1K_V2", "resize 224, ImageNet normalisation"};
  prepare_stl10_features(tmp.file("feats.npy"), "", raw, p, out);
  const DatasetInfo info = inspect(out);
  EXPECT_EQ(info.n, 5);
  EXPECT_EQ(info.d, 4);
  const Shard s = read_rows(info, 0, 5);
  EXPECT_EQ(s.x, x);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(s.y[i], label_byte(i) - 1);
  EXPECT_CONTAINS(info.preprocessing, "torchvision resnet50 avgpool");
  h5::File f = h5::open_read(out);
  EXPECT_EQ(h5::read_attr_string(f, "backbone"), "torchvision resnet50 avgpool");
  EXPECT_EQ(h5::read_attr_string(f, "backbone_weights"), "IMAGENET1K_V2");
  EXPECT_EQ(h5::read_attr_string(f, "feature_preprocessing"), "resize 224, ImageNet normalisation");
  EXPECT_EQ(h5::read_attr_string(f, "features_dtype"), "<f4");
  EXPECT_EQ(h5::read_attr_string(f, "sha256_feats.npy"), sha256_file(tmp.file("feats.npy")));
  EXPECT_EQ(h5::read_attr_int(f, "num_test"), kTest);
}

TEST_F(ConvertStl10, PrecomputedFeaturesWithLabelsNpy) {
  write_bytes(tmp.file("feats.npy"), npy_f4(3, 2, {1, 2, 3, 4, 5, 6}));
  write_bytes(tmp.file("y.npy"), npy_i8({9, 0, 4}));
  prepare_stl10_features(tmp.file("feats.npy"), tmp.file("y.npy"), "", FeatureProvenance{}, out);
  const DatasetInfo info = inspect(out);
  EXPECT_EQ(read_rows(info, 0, 3).y, (std::vector<int64_t>{9, 0, 4}));
  h5::File f = h5::open_read(out);
  EXPECT_EQ(h5::read_attr_string(f, "backbone"), "unspecified");
  fs::remove(out);

  write_bytes(tmp.file("y.npy"), npy_i8({10, 0, 4}));
  expect_refused([&] { prepare_stl10_features(tmp.file("feats.npy"), tmp.file("y.npy"), "", {}, out); },
                 tmp.file("y.npy"), "label 10 at index 0 is outside 0-9");
  write_bytes(tmp.file("y.npy"), npy_i8({1, 0}));
  expect_refused([&] { prepare_stl10_features(tmp.file("feats.npy"), tmp.file("y.npy"), "", {}, out); },
                 tmp.file("y.npy"), "has 2 labels but feats.npy has 3 rows");
  expect_refused([&] { prepare_stl10_features(tmp.file("feats.npy"), "", raw, {}, out); }, path("train_y.bin"),
                 "5 labels but feats.npy has 3 rows");
  EXPECT_THROW(prepare_stl10_features(tmp.file("feats.npy"), "", "", {}, out), UsageError);
}

}  // namespace
}  // namespace mixvae::data
