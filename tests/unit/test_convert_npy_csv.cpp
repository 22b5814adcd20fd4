// Tests of the .npy reader and the `npy` and `csv` converters (src/data/npy, src/data/csv)
// on small files written byte for byte as numpy.save and ordinary CSV writers do.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/sha256.h"
#include "data/csv.h"
#include "data/h5.h"
#include "data/npy.h"
#include "data/schema.h"
#include "test_util.h"

namespace mixvae::data {
namespace {

using mixvae::test::error_of;
using mixvae::test::TempDir;
using mixvae::test::usage_error_of;

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void write_text(const std::string& path, const std::string& text) { write_bytes(path, text); }

template <class T>
std::string raw(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

// A .npy file as numpy.save writes it: magic, version, little-endian header length, the
// dict padded with spaces to a multiple of 64 bytes and ended by "\n", then the payload.
std::string npy_bytes(const std::string& descr, bool fortran, const std::string& shape, const std::string& payload,
                      int major = 1) {
  std::string dict =
      "{'descr': '" + descr + "', 'fortran_order': " + (fortran ? "True" : "False") + ", 'shape': " + shape + ", }";
  const size_t prefix = major == 1 ? 10 : 12;
  size_t total = prefix + dict.size() + 1;
  dict.append((64 - total % 64) % 64, ' ');
  dict += '\n';
  std::string out = "\x93NUMPY";
  out += static_cast<char>(major);
  out += '\0';
  const uint32_t len = static_cast<uint32_t>(dict.size());
  out += static_cast<char>(len & 0xFF);
  out += static_cast<char>((len >> 8) & 0xFF);
  if (major != 1) {
    out += static_cast<char>((len >> 16) & 0xFF);
    out += static_cast<char>((len >> 24) & 0xFF);
  }
  return out + dict + payload;
}

class ConvertNpy : public ::testing::Test {
 protected:
  void SetUp() override { out = tmp.file("out.h5"); }
  // Must fail with a one-line DataError naming `file` and containing `phrase`, and leave
  // nothing behind.
  template <class F>
  void expect_refused(F&& f, const std::string& file, const std::string& phrase) {
    const std::string msg = error_of(f);
    EXPECT_CONTAINS(msg, file);
    EXPECT_CONTAINS(msg, phrase);
    for (const std::string& name : tmp.entries())
      EXPECT_EQ(name.find("out.h5"), std::string::npos) << "left behind: " << name;
  }
  TempDir tmp;
  std::string out;
};

TEST_F(ConvertNpy, Float32FeaturesAndInt64Labels) {
  const std::vector<float> x = {0.5f, -1.25f, 3e-5f, 7.0f, 1e10f, -0.0f};
  write_bytes(tmp.file("feats.npy"), npy_bytes("<f4", false, "(3, 2)", raw(x)));
  write_bytes(tmp.file("labels.npy"), npy_bytes("<i8", false, "(3,)", raw(std::vector<int64_t>{2, 0, 4})));
  prepare_npy(tmp.file("feats.npy"), tmp.file("labels.npy"), "", out);

  const DatasetInfo info = inspect(out);
  EXPECT_EQ(info.n, 3);
  EXPECT_EQ(info.d, 2);
  EXPECT_EQ(info.name, "feats");
  EXPECT_EQ(info.num_classes, 5);  // max label + 1
  const Shard s = read_rows(info, 0, 3);
  EXPECT_EQ(s.x, x);
  EXPECT_EQ(s.y, (std::vector<int64_t>{2, 0, 4}));
  h5::File f = h5::open_read(out);
  EXPECT_EQ(h5::read_attr_string(f, "features_dtype"), "<f4");
  EXPECT_EQ(h5::read_attr_string(f, "labels_dtype"), "<i8");
  EXPECT_EQ(h5::read_attr_string(f, "sha256_feats.npy"), sha256_file(tmp.file("feats.npy")));
  EXPECT_EQ(h5::read_attr_string(f, "sha256_labels.npy"), sha256_file(tmp.file("labels.npy")));
}

TEST_F(ConvertNpy, FortranOrderFloat64AndHeaderVersions) {
  // The matrix [[1, 2, 3], [4, 5, 6]] stored column by column.
  const std::vector<double> column_major = {1, 4, 2, 5, 3, 6};
  for (int major : {1, 2, 3}) {
    const std::string path = tmp.file("f" + std::to_string(major) + ".npy");
    write_bytes(path, npy_bytes("<f8", true, "(2, 3)", raw(column_major), major));
    const NpyArray a = read_npy(path);
    EXPECT_TRUE(a.fortran_order);
    int64_t n = 0, d = 0;
    EXPECT_EQ(npy_matrix(a, &n, &d), (std::vector<float>{1, 2, 3, 4, 5, 6})) << "version " << major;
    EXPECT_EQ(n, 2);
    EXPECT_EQ(d, 3);
  }
  prepare_npy(tmp.file("f2.npy"), "", "mine", out);
  const DatasetInfo info = inspect(out);
  EXPECT_EQ(info.name, "mine");
  EXPECT_FALSE(info.has_labels);
  EXPECT_EQ(info.num_classes, 0);
}

TEST_F(ConvertNpy, BigEndianIntegerFeaturesAndSmallLabelTypes) {
  // >f4 1.5 and -2 as big-endian bytes.
  write_bytes(tmp.file("be.npy"),
              npy_bytes(">f4", false, "(1, 2)", std::string("\x3F\xC0\x00\x00\xC0\x00\x00\x00", 8)));
  int64_t n = 0, d = 0;
  EXPECT_EQ(npy_matrix(read_npy(tmp.file("be.npy")), &n, &d), (std::vector<float>{1.5f, -2.0f}));
  write_bytes(tmp.file("u1.npy"), npy_bytes("|u1", false, "(2, 2)", std::string("\x00\x01\xFE\xFF", 4)));
  EXPECT_EQ(npy_matrix(read_npy(tmp.file("u1.npy")), &n, &d), (std::vector<float>{0, 1, 254, 255}));
  write_bytes(tmp.file("y4.npy"), npy_bytes("<i4", false, "(2, 1)", raw(std::vector<int32_t>{3, 1})));
  EXPECT_EQ(npy_labels(read_npy(tmp.file("y4.npy"))), (std::vector<int64_t>{3, 1}));
  write_bytes(tmp.file("yu.npy"), npy_bytes("|u1", false, "(2,)", std::string("\x09\x00", 2)));
  EXPECT_EQ(npy_labels(read_npy(tmp.file("yu.npy"))), (std::vector<int64_t>{9, 0}));
  write_bytes(tmp.file("y2.npy"), npy_bytes(">u2", false, "(1,)", std::string("\x01\x02", 2)));
  EXPECT_EQ(npy_labels(read_npy(tmp.file("y2.npy"))), (std::vector<int64_t>{258}));
}

TEST_F(ConvertNpy, BadFilesAreRefused) {
  const std::string x = tmp.file("x.npy"), y = tmp.file("y.npy");
  auto convert = [&] { prepare_npy(x, y, "", out); };
  const std::string good_x = npy_bytes("<f4", false, "(3, 2)", raw(std::vector<float>(6, 1.0f)));
  write_bytes(y, npy_bytes("<i8", false, "(3,)", raw(std::vector<int64_t>{0, 1, 2})));

  expect_refused(convert, x, "no such file");
  write_bytes(x, good_x.substr(0, good_x.size() - 4));
  expect_refused(convert, x, "truncated: expected 24 bytes of data for shape (3, 2), found 20");
  write_bytes(x, good_x + "abc");
  expect_refused(convert, x, "3 unexpected extra bytes");
  write_bytes(x, "PK\x03\x04 not numpy at all");
  expect_refused(convert, x, "not a .npy file");
  write_bytes(x, good_x.substr(0, 30));
  expect_refused(convert, x, "truncated");
  write_bytes(x, npy_bytes("<f2", false, "(3, 2)", std::string(12, '\0')));
  expect_refused(convert, x, "dtype '<f2' is not supported");
  write_bytes(x, npy_bytes("|O", false, "(3, 2)", std::string(48, '\0')));
  expect_refused(convert, x, "dtype '|O' is not supported");
  write_bytes(x, npy_bytes("<f4", false, "(6,)", raw(std::vector<float>(6, 1.0f))));
  expect_refused(convert, x, "shape (6,) is not a 2-D matrix");
  std::string bad_header = good_x;
  bad_header.replace(bad_header.find("'shape'"), 7, "'shapf'");
  write_bytes(x, bad_header);
  expect_refused(convert, x, "unexpected key 'shapf'");
  write_bytes(x, npy_bytes("<f4", false, "(3, 2)", raw(std::vector<float>{0, 1, 2, std::nanf(""), 4, 5})));
  expect_refused(convert, x, "row 1, column 1 is NaN");
  write_bytes(x, npy_bytes("<f8", false, "(3, 2)", raw(std::vector<double>{0, 1, 2, 1e300, 4, 5})));
  expect_refused(convert, x, "does not fit float32");

  write_bytes(x, good_x);
  write_bytes(y, npy_bytes("<f8", false, "(3,)", raw(std::vector<double>{0, 1, 2})));
  expect_refused(convert, y, "expected an integer dtype");
  write_bytes(y, npy_bytes("<i8", false, "(3,)", raw(std::vector<int64_t>{0, -1, 2})));
  expect_refused(convert, y, "label -1 at index 1 is negative");
  write_bytes(y, npy_bytes("<i8", false, "(2,)", raw(std::vector<int64_t>{0, 1})));
  expect_refused(convert, y, "has 2 labels but x.npy has 3 rows");
  write_bytes(y, npy_bytes("<i8", false, "(3, 2)", raw(std::vector<int64_t>(6, 0))));
  expect_refused(convert, y, "expected (N,) or (N, 1)");
}

// ---------------------------------------------------------------------------------------
TEST(ConvertTextNumbers, ParseLikeTheFilesWriteThem) {
  double v = 0;
  ASSERT_TRUE(parse_double("2.8858451e-001", &v));
  EXPECT_DOUBLE_EQ(v, 0.28858451);
  ASSERT_TRUE(parse_double("-9.9527860e-001", &v));
  EXPECT_DOUBLE_EQ(v, -0.9952786);
  ASSERT_TRUE(parse_double("+3", &v));
  EXPECT_EQ(v, 3);
  ASSERT_TRUE(parse_double("-.5E+02", &v));
  EXPECT_EQ(v, -50);
  ASSERT_TRUE(parse_double("1e-400", &v));  // underflow is zero, not an error
  EXPECT_EQ(v, 0);
  EXPECT_FALSE(parse_double("1e400", &v));
  EXPECT_FALSE(parse_double(" 1", &v));
  EXPECT_FALSE(parse_double("1,5", &v));
  EXPECT_FALSE(parse_double("", &v));
  EXPECT_FALSE(parse_double("+-1", &v));
  ASSERT_TRUE(parse_double("nan", &v));
  EXPECT_TRUE(std::isnan(v));
  int64_t i = 0;
  EXPECT_TRUE(parse_int64("+42", &i));
  EXPECT_EQ(i, 42);
  EXPECT_FALSE(parse_int64("4.0", &i));
  std::vector<std::string_view> f;
  split_whitespace("  2.5e-001 -1.0e+000\t 3 ", &f);
  EXPECT_EQ(f, (std::vector<std::string_view>{"2.5e-001", "-1.0e+000", "3"}));
  split_commas(" a , \"b c\",,d", &f);
  EXPECT_EQ(f, (std::vector<std::string_view>{"a", "b c", "", "d"}));
}

TEST(ConvertTextLines, ReadsPlainAndGzipWithCrlfAndNoFinalNewline) {
  TempDir tmp;
  write_text(tmp.file("a.txt"), "one\r\ntwo\n\nthree");
  const std::string gz = tmp.file("b.txt.gz");
  gzFile g = gzopen(gz.c_str(), "wb");
  const std::string text = "one\r\ntwo\n\nthree";
  gzwrite(g, text.data(), static_cast<unsigned>(text.size()));
  gzclose(g);
  for (const std::string& path : {tmp.file("a.txt"), gz}) {
    TextLines lines(path);
    std::vector<std::string> got;
    std::string line;
    while (lines.next(line)) got.push_back(line);
    EXPECT_EQ(got, (std::vector<std::string>{"one", "two", "", "three"})) << path;
    EXPECT_EQ(lines.line_number(), 4);
  }
  EXPECT_EQ(error_of([&] { TextLines l(tmp.file("none.txt")); }), tmp.file("none.txt") + ": no such file");
  EXPECT_CONTAINS(error_of([&] { TextLines l(tmp.path()); }), "is a directory");
}

class ConvertCsv : public ConvertNpy {};

TEST_F(ConvertCsv, HeaderAndTextLabelsByName) {
  write_text(tmp.file("iris.csv"),
             "sepal,petal,species\n"
             "5.1,1.4,setosa\n"
             "7.0,4.7,versicolor\n"
             "\n"
             "6.3,6.0,virginica\n"
             "4.9,1.4,setosa\n");
  CsvOptions o;
  o.label_column = "species";
  prepare_csv(tmp.file("iris.csv"), o, "", out);
  const DatasetInfo info = inspect(out);
  EXPECT_EQ(info.name, "iris");
  EXPECT_EQ(info.n, 4);
  EXPECT_EQ(info.d, 2);
  EXPECT_EQ(info.num_classes, 3);
  const Shard s = read_rows(info, 0, 4);
  EXPECT_EQ(s.x, (std::vector<float>{5.1f, 1.4f, 7.0f, 4.7f, 6.3f, 6.0f, 4.9f, 1.4f}));
  EXPECT_EQ(s.y, (std::vector<int64_t>{0, 1, 2, 0}));  // sorted class names
  h5::File f = h5::open_read(out);
  EXPECT_EQ(h5::read_attr_string(f, "label_values"), "[\"setosa\",\"versicolor\",\"virginica\"]");
  EXPECT_EQ(h5::read_attr_string(f, "label_column"), "species");
  EXPECT_EQ(h5::read_attr_string(f, "delimiter"), "comma");
  EXPECT_EQ(h5::read_attr_string(f, "header"), "yes");
  EXPECT_EQ(h5::read_attr_string(f, "sha256_iris.csv"), sha256_file(tmp.file("iris.csv")));
}

TEST_F(ConvertCsv, WhitespaceNoHeaderIntegerLabelsLastColumn) {
  write_text(tmp.file("t.txt"), "  2.5e-001 -1.0e+000 3\r\n 1 2 0\r\n-4 +5 3\r\n");
  CsvOptions o;
  o.label_column = "-1";
  const CsvTable t = read_csv(tmp.file("t.txt"), o);
  EXPECT_FALSE(t.had_header);
  EXPECT_EQ(t.delimiter, ' ');
  EXPECT_EQ(t.n, 3);
  EXPECT_EQ(t.d, 2);
  EXPECT_EQ(t.x, (std::vector<float>{0.25f, -1.0f, 1, 2, -4, 5}));
  EXPECT_EQ(t.y, (std::vector<int64_t>{3, 0, 3}));  // kept as they are
  EXPECT_EQ(t.num_classes, 4);
  // A label column that is not all integers holds class names: sorted, they become 0..K-1.
  o.label_column = "0";
  const CsvTable named = read_csv(tmp.file("t.txt"), o);
  EXPECT_EQ(named.label_values, (std::vector<std::string>{"-4", "1", "2.5e-001"}));
  EXPECT_EQ(named.y, (std::vector<int64_t>{2, 1, 0}));
  // No label column: every column is a feature.
  o.label_column.clear();
  const CsvTable all = read_csv(tmp.file("t.txt"), o);
  EXPECT_EQ(all.d, 3);
  EXPECT_TRUE(all.y.empty());
}

TEST_F(ConvertCsv, LabelColumnByIndexAndNumericHeaderDetection) {
  write_text(tmp.file("a.csv"), "1,0.5,0.25\n0,1.5,2.25\n");
  CsvOptions o;
  o.label_column = "0";
  const CsvTable t = read_csv(tmp.file("a.csv"), o);
  EXPECT_FALSE(t.had_header);
  EXPECT_EQ(t.y, (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(t.x, (std::vector<float>{0.5f, 0.25f, 1.5f, 2.25f}));
  // A header whose names are numbers is still found by name first.
  write_text(tmp.file("b.csv"), "x,2,y\n1,7,3\n");
  o.label_column = "2";
  o.header = HeaderMode::kYes;
  const CsvTable b = read_csv(tmp.file("b.csv"), o);
  EXPECT_EQ(b.y, (std::vector<int64_t>{7}));
  EXPECT_EQ(b.columns, (std::vector<std::string>{"x", "y"}));
}

TEST_F(ConvertCsv, BadFilesAreRefused) {
  const std::string path = tmp.file("bad.csv");
  CsvOptions o;
  o.label_column = "label";
  auto convert = [&] { prepare_csv(path, o, "", out); };

  expect_refused(convert, path, "no such file");
  write_text(path, "");
  expect_refused(convert, path, "is empty");
  write_text(path, "a,b,label\n");
  expect_refused(convert, path, "has a header but no data rows");
  write_text(path, "a,b,label\n1,2,0\n3,4\n");
  expect_refused(convert, path, "line 3 has 2 columns, the header has 3");
  write_text(path, "a,b,label\n1,2,0\n3,abc,1\n");
  expect_refused(convert, path, "line 3, column 2 ('b'): 'abc' is not a number");
  write_text(path, "a,b,label\n1,nan,0\n");
  expect_refused(convert, path, "line 2, column 2 ('b'): NaN");
  write_text(path, "a,b,label\n1,-inf,0\n");
  expect_refused(convert, path, "is infinite");
  write_text(path, "a,b,label\n1,1e39,0\n");
  expect_refused(convert, path, "'1e39' does not fit float32");
  write_text(path, "a,b,label\n1,1e999,0\n");
  expect_refused(convert, path, "'1e999' is out of range");
  write_text(path, "a,b,label\n1,2,0\n1,2,-3\n");
  expect_refused(convert, path, "line 3: label -3 is negative");
  write_text(path, "a,b,label\n1,2,x\n1,2,\n");
  expect_refused(convert, path, "line 3: empty label");

  o.label_column.clear();
  write_text(path, "1 2 3\n4 5 6\n7 8\n");
  expect_refused(convert, path, "line 3 has 2 values, expected 3 as on line 1");

  write_text(path, "a,b\n1,2\n");
  o.label_column = "nope";
  EXPECT_CONTAINS(usage_error_of(convert), "--label-column 'nope'");
  o.label_column = "5";
  EXPECT_CONTAINS(usage_error_of(convert), "has 2 columns");
  write_text(path, "1,2\n");
  o.label_column = "name";
  o.header = HeaderMode::kNo;
  EXPECT_CONTAINS(usage_error_of(convert), "has no header line");
}

}  // namespace
}  // namespace mixvae::data
