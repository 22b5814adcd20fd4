// Tests of the IDX reader (src/data/idx) and the MNIST converter (src/data/mnist), on
// small files written in the original gzip-compressed IDX format.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/sha256.h"
#include "data/h5.h"
#include "data/idx.h"
#include "data/mnist.h"
#include "data/schema.h"
#include "test_util.h"

namespace mixvae::data {
namespace {

namespace fs = std::filesystem;

using mixvae::test::data_error_of;
using mixvae::test::entries;
using mixvae::test::TempDir;

std::vector<uint8_t> be32(uint32_t v) {
  return {static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16), static_cast<uint8_t>(v >> 8),
          static_cast<uint8_t>(v)};
}

// The bytes of an IDX file: magic 0x0000 08 RANK, big-endian dims, payload.
std::vector<uint8_t> idx_bytes(const std::vector<uint32_t>& dims, const std::vector<uint8_t>& payload,
                               uint32_t magic = 0) {
  std::vector<uint8_t> out = be32(magic != 0 ? magic : 0x00000800u | static_cast<uint32_t>(dims.size()));
  for (uint32_t d : dims) {
    const auto b = be32(d);
    out.insert(out.end(), b.begin(), b.end());
  }
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

void write_gz(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile gz = gzopen(path.c_str(), "wb9");
  ASSERT_NE(gz, nullptr);
  if (!bytes.empty()) {
    ASSERT_EQ(gzwrite(gz, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  }
  ASSERT_EQ(gzclose(gz), Z_OK);
}

void write_plain(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::vector<uint8_t> read_plain(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

constexpr int kPixels = 28 * 28;

// Known content: image `img` (global index, train then test) has pixel i = (img*31 + i*7) % 256
// and label (img * 3) % 10.
uint8_t pixel(int img, int i) { return static_cast<uint8_t>((img * 31 + i * 7) % 256); }
uint8_t label(int img) { return static_cast<uint8_t>((img * 3) % 10); }

std::vector<uint8_t> images_payload(int first, int count) {
  std::vector<uint8_t> p;
  for (int img = first; img < first + count; ++img)
    for (int i = 0; i < kPixels; ++i) p.push_back(pixel(img, i));
  return p;
}

std::vector<uint8_t> labels_payload(int first, int count) {
  std::vector<uint8_t> p;
  for (int img = first; img < first + count; ++img) p.push_back(label(img));
  return p;
}

constexpr int kTrain = 7, kTest = 3;

// A raw directory with the four official .gz files: 7 train and 3 test images.
class MnistDir : public ::testing::Test {
 protected:
  void SetUp() override {
    raw = tmp.file("raw");
    out_dir = tmp.file("out");
    fs::create_directory(raw);
    fs::create_directory(out_dir);
    out = out_dir + "/mnist.h5";
    write_gz(path("train-images-idx3-ubyte.gz"), idx_bytes({kTrain, 28, 28}, images_payload(0, kTrain)));
    write_gz(path("train-labels-idx1-ubyte.gz"), idx_bytes({kTrain}, labels_payload(0, kTrain)));
    write_gz(path("t10k-images-idx3-ubyte.gz"), idx_bytes({kTest, 28, 28}, images_payload(kTrain, kTest)));
    write_gz(path("t10k-labels-idx1-ubyte.gz"), idx_bytes({kTest}, labels_payload(kTrain, kTest)));
  }

  std::string path(const std::string& name) const { return raw + "/" + name; }

  // Converting must fail with a one-line DataError naming `file` and containing
  // `phrase`, and leave nothing (not even a temp file) in the output directory.
  void expect_refused(const std::string& file, const std::string& phrase) {
    const std::string msg = data_error_of([&] { prepare_mnist(raw, out); });
    EXPECT_CONTAINS(msg, file);
    EXPECT_CONTAINS(msg, phrase);
    EXPECT_TRUE(entries(out_dir).empty()) << "left behind: " << entries(out_dir).front();
  }

  TempDir tmp;
  std::string raw, out_dir, out;
};

TEST_F(MnistDir, ConvertsTrainThenTestScaledTo01) {
  ASSERT_TRUE(find_mnist_dir(raw));
  prepare_mnist(raw, out);
  EXPECT_EQ(entries(out_dir), std::vector<std::string>{"mnist.h5"});

  const DatasetInfo info = inspect(out);
  EXPECT_EQ(info.n, kTrain + kTest);
  EXPECT_EQ(info.d, kPixels);
  EXPECT_TRUE(info.has_labels);
  EXPECT_EQ(info.num_classes, 10);
  EXPECT_EQ(info.name, "mnist");
  EXPECT_EQ(info.source, "yann.lecun.com/exdb/mnist IDX files (train+t10k)");
  EXPECT_EQ(info.preprocessing, "train then t10k concatenated; pixels/255 to [0,1]; flattened row-major 784");
  EXPECT_EQ(info.format_version, 1);

  const Shard all = read_rows(info, 0, info.n);
  ASSERT_EQ(all.x.size(), static_cast<size_t>((kTrain + kTest) * kPixels));
  for (int img = 0; img < kTrain + kTest; ++img) {
    EXPECT_EQ(all.y[img], label(img)) << "image " << img;
    for (int i = 0; i < kPixels; ++i)
      ASSERT_EQ(all.x[static_cast<size_t>(img) * kPixels + i], static_cast<float>(pixel(img, i)) / 255.0f)
          << "image " << img << " pixel " << i;
  }
  EXPECT_EQ(*std::max_element(all.x.begin(), all.x.end()), 1.0f);  // pixel 255 occurs

  h5::File f = h5::open_read(out);
  for (const char* name : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                           "t10k-labels-idx1-ubyte.gz"})
    EXPECT_EQ(h5::read_attr_string(f, std::string("sha256_") + name), sha256_file(path(name))) << name;
  EXPECT_EQ(h5::read_attr_int(f, "num_train"), kTrain);
  EXPECT_EQ(h5::read_attr_int(f, "num_test"), kTest);
}

TEST_F(MnistDir, AcceptsUncompressedAndDotSpelledFiles) {
  // Decompressed copies under the dot spelling, as some mirrors ship them.
  for (const char* stem : {"train-images", "t10k-images"}) {
    const std::string gz = path(std::string(stem) + "-idx3-ubyte.gz");
    gzFile in = gzopen(gz.c_str(), "rb");
    std::vector<uint8_t> bytes(1 << 16);
    const int n = gzread(in, bytes.data(), static_cast<unsigned>(bytes.size()));
    gzclose(in);
    bytes.resize(static_cast<size_t>(n));
    fs::remove(gz);
    write_plain(path(std::string(stem) + ".idx3-ubyte"), bytes);
  }
  ASSERT_TRUE(find_mnist_dir(raw));
  prepare_mnist(raw, out);
  const DatasetInfo info = inspect(out);
  EXPECT_EQ(info.n, kTrain + kTest);
  h5::File f = h5::open_read(out);
  EXPECT_TRUE(h5::read_attr_string(f, "sha256_train-images.idx3-ubyte").has_value());
}

TEST_F(MnistDir, MissingFileIsNamed) {
  fs::remove(path("t10k-labels-idx1-ubyte.gz"));
  EXPECT_FALSE(find_mnist_dir(raw));
  expect_refused("t10k-labels-idx1-ubyte", "missing MNIST file");
  const std::string msg = data_error_of([&] { prepare_mnist(tmp.file("nowhere"), out); });
  EXPECT_CONTAINS(msg, tmp.file("nowhere"));
  EXPECT_CONTAINS(msg, "no such directory");
}

TEST_F(MnistDir, WrongMagicIsRefused) {
  // Element type 0x0D (float32) instead of 0x08.
  write_gz(path("train-images-idx3-ubyte.gz"), idx_bytes({kTrain, 28, 28}, images_payload(0, kTrain), 0x00000D03u));
  expect_refused(path("train-images-idx3-ubyte.gz"), "IDX element type 0x0D (float32)");
  // A label file where an image file belongs.
  write_gz(path("train-images-idx3-ubyte.gz"), idx_bytes({kTrain}, labels_payload(0, kTrain)));
  expect_refused(path("train-images-idx3-ubyte.gz"), "IDX rank 1, expected 3");
  write_gz(path("train-images-idx3-ubyte.gz"), idx_bytes({kTrain, 28, 28}, images_payload(0, kTrain), 0x12340803u));
  expect_refused(path("train-images-idx3-ubyte.gz"), "not an IDX file");
}

TEST_F(MnistDir, TruncatedPayloadIsRefusedWithByteCounts) {
  std::vector<uint8_t> short_payload = images_payload(0, kTrain);
  short_payload.resize(short_payload.size() - 100);
  write_gz(path("train-images-idx3-ubyte.gz"), idx_bytes({kTrain, 28, 28}, short_payload));
  expect_refused(path("train-images-idx3-ubyte.gz"), "truncated: expected 5488 bytes of pixel data, found 5388");
}

TEST_F(MnistDir, TruncatedGzipStreamIsRefused) {
  // A download cut short: the compressed file itself ends early.
  std::vector<uint8_t> gz = read_plain(path("t10k-images-idx3-ubyte.gz"));
  gz.resize(gz.size() / 2);
  write_plain(path("t10k-images-idx3-ubyte.gz"), gz);
  expect_refused(path("t10k-images-idx3-ubyte.gz"), "truncated");
}

TEST_F(MnistDir, CorruptGzipDataIsRefused) {
  std::vector<uint8_t> gz = read_plain(path("train-labels-idx1-ubyte.gz"));
  ASSERT_GT(gz.size(), 20u);
  gz[gz.size() - 6] ^= 0xFF;  // inside the CRC-32 of the trailer
  write_plain(path("train-labels-idx1-ubyte.gz"), gz);
  expect_refused(path("train-labels-idx1-ubyte.gz"), "corrupt gzip data");
}

TEST_F(MnistDir, TrailingBytesAreRefused) {
  std::vector<uint8_t> payload = labels_payload(kTrain, kTest);
  payload.insert(payload.end(), {1, 2, 3, 4, 5});
  write_gz(path("t10k-labels-idx1-ubyte.gz"), idx_bytes({kTest}, payload));
  expect_refused(path("t10k-labels-idx1-ubyte.gz"), "5 unexpected extra bytes after the 3 bytes of label data");
}

TEST_F(MnistDir, CountMismatchBetweenImagesAndLabelsIsRefused) {
  write_gz(path("train-labels-idx1-ubyte.gz"), idx_bytes({kTrain - 1}, labels_payload(0, kTrain - 1)));
  expect_refused(path("train-labels-idx1-ubyte.gz"), "train-images has 7 images but train-labels has 6 labels");
}

TEST_F(MnistDir, NonGzipGarbageIsRefused) {
  const std::string text = "<html>404 Not Found</html>\n";
  write_plain(path("train-images-idx3-ubyte.gz"), std::vector<uint8_t>(text.begin(), text.end()));
  expect_refused(path("train-images-idx3-ubyte.gz"), "not an IDX file");
}

TEST_F(MnistDir, WrongImageSizeAndBadLabelsAreRefused) {
  write_gz(path("t10k-images-idx3-ubyte.gz"), idx_bytes({kTest, 27, 28}, std::vector<uint8_t>(kTest * 27 * 28, 9)));
  expect_refused(path("t10k-images-idx3-ubyte.gz"), "images are 27x28, expected 28x28");
  write_gz(path("t10k-images-idx3-ubyte.gz"), idx_bytes({kTest, 28, 28}, images_payload(kTrain, kTest)));
  write_gz(path("t10k-labels-idx1-ubyte.gz"), idx_bytes({kTest}, {1, 10, 2}));
  expect_refused(path("t10k-labels-idx1-ubyte.gz"), "label 10 at index 1 is outside 0-9");
}

TEST(Idx, ReadsPlainAndGzipFilesAndChecksHeaders) {
  TempDir dir;
  const std::vector<uint8_t> bytes = idx_bytes({2, 3}, {1, 2, 3, 4, 5, 6});
  write_plain(dir.file("plain.idx"), bytes);
  write_gz(dir.file("packed.idx.gz"), bytes);
  for (const char* name : {"plain.idx", "packed.idx.gz"}) {
    const IdxArray a = read_idx_u8(dir.file(name), 2);
    EXPECT_EQ(a.dims, (std::vector<int32_t>{2, 3})) << name;
    EXPECT_EQ(a.data, (std::vector<uint8_t>{1, 2, 3, 4, 5, 6})) << name;
  }
  EXPECT_EQ(data_error_of([&] { read_idx_u8(dir.file("absent"), 1); }), dir.file("absent") + ": no such file");
  write_plain(dir.file("empty"), {});
  EXPECT_CONTAINS(data_error_of([&] { read_idx_u8(dir.file("empty"), 1); }), "is empty");
  write_plain(dir.file("short_header"), {0, 0, 8, 3, 0, 0});
  EXPECT_CONTAINS(data_error_of([&] { read_idx_u8(dir.file("short_header"), 3); }),
                  "truncated: the IDX header ends after 6 of 16 bytes");
}

// The real data set: MIXVAE_MNIST_DIR, else ../shared/data/mnist beside the checkout (as
// in CI). Checks the published checksums and class counts.
TEST(MnistReal, ConvertsTheOfficialFilesIfAvailable) {
  const char* env = std::getenv("MIXVAE_MNIST_DIR");
  const std::string raw = env ? env : std::string(MIXVAE_SOURCE_DIR_DEFAULT) + "/../shared/data/mnist";
  if (!find_mnist_dir(raw)) GTEST_SKIP() << "no MNIST files at " << raw << " (set MIXVAE_MNIST_DIR)";
  TempDir dir;
  const std::string out = dir.file("mnist.h5");
  prepare_mnist(raw, out);
  const DatasetInfo info = inspect(out);
  EXPECT_EQ(info.n, 70000);
  EXPECT_EQ(info.d, 784);
  h5::File f = h5::open_read(out);
  EXPECT_EQ(h5::read_attr_string(f, "sha256_train-images-idx3-ubyte.gz"),
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609");
  EXPECT_EQ(h5::read_attr_string(f, "sha256_t10k-labels-idx1-ubyte.gz"),
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6");
  EXPECT_EQ(h5::read_attr_int(f, "num_train"), 60000);
  EXPECT_EQ(h5::read_attr_int(f, "num_test"), 10000);
  const Shard s = read_rows(info, 0, info.n);
  std::map<int64_t, int> counts;
  for (int64_t y : s.y) ++counts[y];
  const int expected[10] = {6903, 7877, 6990, 7141, 6824, 6313, 6876, 7293, 6825, 6958};
  for (int c = 0; c < 10; ++c) EXPECT_EQ(counts[c], expected[c]) << "digit " << c;
  EXPECT_EQ(*std::min_element(s.x.begin(), s.x.end()), 0.0f);
  EXPECT_EQ(*std::max_element(s.x.begin(), s.x.end()), 1.0f);
}

}  // namespace
}  // namespace mixvae::data
