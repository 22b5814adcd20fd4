// Tests of the UCI HAR converter (src/data/har) on small folders written in the published
// layout: "UCI HAR Dataset/{train,test}/X_*.txt" with 561 numbers per line, each right-
// aligned in 16 characters with a 3-digit exponent ("  2.8858451e-001 -2.0294171e-002"),
// and y_*.txt with one activity id 1-6 per line.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/sha256.h"
#include "data/h5.h"
#include "data/har.h"
#include "data/schema.h"
#include "test_util.h"

namespace mixvae::data {
namespace {

namespace fs = std::filesystem;
using mixvae::test::error_of;
using mixvae::test::TempDir;

constexpr int kTrain = 7, kTest = 4;

// Value of row `r` (train then test), column `c`, in [-1, 1].
double value(int r, int c) { return ((r * 561 + c * 37) % 2001 - 1000) / 1000.0; }
int activity(int r) { return 1 + (r * 5) % 6; }  // 1..6, all of them used

// "%16.7e" with the exponent widened to 3 digits, as in the published files.
std::string har_number(double v) {
  char mantissa[32];
  std::snprintf(mantissa, sizeof mantissa, "%.7e", v);
  std::string s = mantissa;
  const size_t e = s.find('e');
  std::string exp_digits = s.substr(e + 2);
  while (exp_digits.size() < 3) exp_digits = "0" + exp_digits;
  s = s.substr(0, e + 2) + exp_digits;
  return std::string(16 - s.size(), ' ') + s;
}

std::string x_line(int r, int columns = 561) {
  std::string line;
  for (int c = 0; c < columns; ++c) line += har_number(value(r, c));
  return line + "\n";
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

class ConvertHar : public ::testing::Test {
 protected:
  void SetUp() override {
    root = tmp.file("raw");
    dir = root + "/UCI HAR Dataset";
    fs::create_directories(dir + "/train");
    fs::create_directories(dir + "/test");
    fs::create_directory(tmp.file("out"));
    out = tmp.file("out/har.h5");
    write_split("train", 0, kTrain);
    write_split("test", kTrain, kTest);
  }

  void write_split(const std::string& split, int first, int count) {
    std::string x, y;
    for (int r = first; r < first + count; ++r) {
      x += x_line(r);
      y += std::to_string(activity(r)) + "\n";
    }
    write_text(path(split, "X_" + split + ".txt"), x);
    write_text(path(split, "y_" + split + ".txt"), y);
  }

  std::string path(const std::string& split, const std::string& name) const { return dir + "/" + split + "/" + name; }

  void expect_refused(const std::string& file, const std::string& phrase) {
    const std::string msg = error_of([&] { prepare_har(dir, out); });
    EXPECT_CONTAINS(msg, file);
    EXPECT_CONTAINS(msg, phrase);
    EXPECT_TRUE(fs::is_empty(tmp.file("out"))) << "something left in the output directory";
  }

  TempDir tmp;
  std::string root, dir, out;
};

TEST(ConvertHarFormat, NumbersLookLikeThePublishedFiles) {
  EXPECT_EQ(har_number(0.28858451), "  2.8858451e-001");
  EXPECT_EQ(har_number(-0.020294171), " -2.0294171e-002");
  EXPECT_EQ(har_number(1.0), "  1.0000000e+000");
}

TEST_F(ConvertHar, ConvertsTrainThenTestAsPublished) {
  prepare_har(dir, out);
  const DatasetInfo info = inspect(out);
  EXPECT_EQ(info.n, kTrain + kTest);
  EXPECT_EQ(info.d, 561);
  EXPECT_EQ(info.num_classes, 6);
  EXPECT_EQ(info.name, "har");
  EXPECT_CONTAINS(info.preprocessing, "labels 1-6 stored as 0-5");
  const Shard s = read_rows(info, 0, info.n);
  for (int r = 0; r < kTrain + kTest; ++r) {
    EXPECT_EQ(s.y[r], activity(r) - 1) << "row " << r;
    for (int c = 0; c < 561; ++c) {
      // Exactly the float nearest the printed decimal, not a rescaled value.
      const float expected = static_cast<float>(std::strtod(har_number(value(r, c)).c_str(), nullptr));
      ASSERT_EQ(s.x[static_cast<size_t>(r) * 561 + c], expected) << "row " << r << " column " << c;
    }
  }
  h5::File f = h5::open_read(out);
  EXPECT_EQ(h5::read_attr_int(f, "num_train"), kTrain);
  EXPECT_EQ(h5::read_attr_int(f, "num_test"), kTest);
  EXPECT_EQ(h5::read_attr_int(f, "first_rows"), 0);
  EXPECT_EQ(h5::read_attr_string(f, "sha256_X_test.txt"), sha256_file(path("test", "X_test.txt")));
  EXPECT_EQ(h5::read_attr_string(f, "sha256_y_train.txt"), sha256_file(path("train", "y_train.txt")));
}

TEST_F(ConvertHar, FirstRowsAndParentFolder) {
  prepare_har(root, out, 9);  // the parent of "UCI HAR Dataset" works too
  const DatasetInfo info = inspect(out);
  EXPECT_EQ(info.n, 9);
  EXPECT_CONTAINS(info.preprocessing, "first 9 of 11 rows kept");
  const Shard s = read_rows(info, 0, 9);
  EXPECT_EQ(s.y[8], activity(8) - 1);  // row 8 is the second test row
  h5::File f = h5::open_read(out);
  EXPECT_EQ(h5::read_attr_int(f, "first_rows"), 9);
  EXPECT_THROW(prepare_har(dir, tmp.file("out/more.h5"), 12), UsageError);
  EXPECT_THROW(prepare_har(dir, tmp.file("out/neg.h5"), -1), UsageError);
  EXPECT_FALSE(fs::exists(tmp.file("out/more.h5")));
}

TEST_F(ConvertHar, MissingFilesAreNamed) {
  fs::remove(path("test", "y_test.txt"));
  expect_refused(path("test", "y_test.txt"), "missing UCI HAR file");
  const std::string msg = error_of([&] { prepare_har(tmp.file("nowhere"), out); });
  EXPECT_CONTAINS(msg, tmp.file("nowhere"));
  EXPECT_CONTAINS(msg, "no such directory");
}

TEST_F(ConvertHar, WrongColumnCountIsRefused) {
  std::string x;
  for (int r = kTrain; r < kTrain + kTest; ++r) x += x_line(r, r == kTrain + 2 ? 560 : 561);
  write_text(path("test", "X_test.txt"), x);
  expect_refused(path("test", "X_test.txt"), "line 3 has 560 values, expected 561");
  // The first line is measured against 561 too.
  write_text(path("test", "X_test.txt"), x_line(0, 562) + x_line(1));
  expect_refused(path("test", "X_test.txt"), "line 1 has 562 values, expected 561");
}

TEST_F(ConvertHar, TruncatedFileIsRefused) {
  // A download cut off in the middle of the last line.
  std::string x;
  for (int r = 0; r < kTrain; ++r) x += x_line(r);
  write_text(path("train", "X_train.txt"), x.substr(0, x.size() - 1000));
  expect_refused(path("train", "X_train.txt"), "line 7 has ");
  // ... or exactly at a line end: the labels no longer match.
  write_text(path("train", "X_train.txt"), x.substr(0, x.size() - x_line(kTrain - 1).size()));
  expect_refused(path("train", "y_train.txt"), "has 7 labels but X_train.txt has 6 rows");
}

TEST_F(ConvertHar, NonNumbersAndNaNAreRefused) {
  std::string line = x_line(0);
  line.replace(16 * 4, 16, "             NaN");
  write_text(path("train", "X_train.txt"), line);
  expect_refused(path("train", "X_train.txt"), "line 1, column 5: NaN");
  line.replace(16 * 4, 16, "      1.2.3e-001");
  write_text(path("train", "X_train.txt"), line);
  expect_refused(path("train", "X_train.txt"), "line 1, column 5: '1.2.3e-001' is not a number");
}

TEST_F(ConvertHar, BadLabelsAreRefused) {
  write_text(path("train", "y_train.txt"), "1\n2\n3\n7\n5\n6\n1\n");
  expect_refused(path("train", "y_train.txt"), "line 4: label '7' is not an activity id 1-6");
  write_text(path("train", "y_train.txt"), "1\n2\n3\n0\n5\n6\n1\n");
  expect_refused(path("train", "y_train.txt"), "line 4: label '0'");
  write_text(path("train", "y_train.txt"), "1\n2 3\n");
  expect_refused(path("train", "y_train.txt"), "line 2 has 2 values, expected one activity label");
  write_text(path("train", "y_train.txt"), "1\n2\n3\n");
  expect_refused(path("train", "y_train.txt"), "has 3 labels but X_train.txt has 7 rows");
  write_text(path("train", "y_train.txt"), "");
  expect_refused(path("train", "y_train.txt"), "is empty");
}

}  // namespace
}  // namespace mixvae::data
