// Tests of the HDF5 layer (src/data/h5), the dataset schema (src/data/schema) and the
// SHA-256 helpers (src/data/sha256).
#include <gtest/gtest.h>
#include <hdf5.h>
#include <stdlib.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/sha256.h"
#include "data/h5.h"
#include "data/schema.h"
#include "test_util.h"

namespace mixvae::data {
namespace {

namespace fs = std::filesystem;

using mixvae::test::data_error_of;
using mixvae::test::TempDir;

// A file made with the raw C API, for shapes and types write_dataset never produces.
template <class T>
void raw_dataset(const std::string& path, const std::string& name, hid_t type, const std::vector<hsize_t>& dims,
                 const std::vector<T>& values, bool truncate = true, hid_t mem_type = -1) {
  hid_t file = truncate ? H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT)
                        : H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
  hid_t dset = H5Dcreate2(file, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(dset, 0);
  ASSERT_GE(H5Dwrite(dset, mem_type >= 0 ? mem_type : type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), 0);
  H5Dclose(dset);
  H5Sclose(space);
  H5Fclose(file);
}

std::vector<float> ramp(int64_t n, int64_t d) {
  std::vector<float> x(static_cast<size_t>(n * d));
  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.5f * static_cast<float>(i);
  return x;
}

DatasetMeta test_meta(int64_t k) {
  DatasetMeta meta;
  meta.name = "toy";
  meta.source = "unit test";
  meta.preprocessing = "none";
  meta.num_classes = k;
  return meta;
}

// ---------------------------------------------------------------------------------------
// h5 layer

TEST(H5, ArraysRoundTripForEverySupportedType) {
  TempDir dir;
  {
    h5::File f = h5::create(dir.file("a.h5"));
    const std::vector<float> f32 = {1.5f, -2.0f, 3.25f, 4.0f, 5.0f, 6.0f};
    const std::vector<double> f64 = {1e-300, 2.0, -3.0};
    const std::vector<int64_t> i64 = {std::numeric_limits<int64_t>::min(), 0, 42};
    const std::vector<int32_t> i32 = {-7, 8};
    const std::vector<uint8_t> u8 = {0, 255, 17};
    const std::vector<uint64_t> u64 = {std::numeric_limits<uint64_t>::max(), 1};
    h5::write_array(f, "model/enc.0.weight", f32.data(), {2, 3});
    h5::write_array(f, "model/deep/er/x", f64.data(), {3});
    h5::write_array(f, "i64", i64.data(), {3});
    h5::write_array(f, "i32", i32.data(), {2});
    h5::write_array(f, "u8", u8.data(), {3});
    h5::write_array(f, "u64", u64.data(), {2});
    const double scalar = 9.5;
    h5::write_array(f, "scalar", &scalar, {});
    f.close();
  }
  h5::File f = h5::open_read(dir.file("a.h5"));
  std::vector<hsize_t> dims;
  EXPECT_EQ(h5::read_array<float>(f, "model/enc.0.weight", &dims),
            (std::vector<float>{1.5f, -2.0f, 3.25f, 4.0f, 5.0f, 6.0f}));
  EXPECT_EQ(dims, (std::vector<hsize_t>{2, 3}));
  EXPECT_EQ(h5::read_array<double>(f, "/model/deep/er/x"), (std::vector<double>{1e-300, 2.0, -3.0}));
  EXPECT_EQ(h5::read_array<int64_t>(f, "i64"), (std::vector<int64_t>{std::numeric_limits<int64_t>::min(), 0, 42}));
  EXPECT_EQ(h5::read_array<int32_t>(f, "i32"), (std::vector<int32_t>{-7, 8}));
  EXPECT_EQ(h5::read_array<uint8_t>(f, "u8"), (std::vector<uint8_t>{0, 255, 17}));
  EXPECT_EQ(h5::read_array<uint64_t>(f, "u64"), (std::vector<uint64_t>{std::numeric_limits<uint64_t>::max(), 1}));
  EXPECT_EQ(h5::read_array<double>(f, "scalar", &dims), std::vector<double>{9.5});
  EXPECT_TRUE(dims.empty());
  EXPECT_EQ(h5::dims_of(f, "model/enc.0.weight"), (std::vector<hsize_t>{2, 3}));
}

TEST(H5, ChunkedAndCompressedArraysReadBackAndAreChunked) {
  TempDir dir;
  const std::vector<float> x = ramp(10, 4);
  {
    h5::File f = h5::create(dir.file("c.h5"));
    h5::write_array(f, "chunked", x.data(), {10, 4}, 3);
    h5::write_array(f, "deflated", x.data(), {10, 4}, 0, 6);
    h5::write_array(f, "plain", x.data(), {10, 4});
    const float none = 0;
    h5::write_array(f, "empty", &none, {0, 4}, 3);  // chunking is skipped for empty arrays
  }
  h5::File f = h5::open_read(dir.file("c.h5"));
  for (const char* name : {"chunked", "deflated", "plain"}) EXPECT_EQ(h5::read_array<float>(f, name), x);
  EXPECT_TRUE(h5::read_array<float>(f, "empty").empty());
  auto layout = [&](const char* name, hsize_t* rows) {
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    hid_t plist = H5Dget_create_plist(d);
    const H5D_layout_t l = H5Pget_layout(plist);
    hsize_t chunk[2] = {0, 0};
    if (l == H5D_CHUNKED) H5Pget_chunk(plist, 2, chunk);
    *rows = chunk[0];
    H5Pclose(plist);
    H5Dclose(d);
    return l;
  };
  hsize_t rows = 0;
  EXPECT_EQ(layout("chunked", &rows), H5D_CHUNKED);
  EXPECT_EQ(rows, 3u);
  EXPECT_EQ(layout("deflated", &rows), H5D_CHUNKED);
  EXPECT_EQ(rows, 10u);  // ~1 MiB chunks, capped at N
  EXPECT_EQ(layout("plain", &rows), H5D_CONTIGUOUS);
}

TEST(H5, WritingAnExistingDatasetIsRefused) {
  TempDir dir;
  h5::File f = h5::create(dir.file("e.h5"));
  const int32_t v = 1;
  h5::write_array(f, "a/b", &v, {1});
  const std::string msg = data_error_of([&] { h5::write_array(f, "a/b", &v, {1}); });
  EXPECT_CONTAINS(msg, dir.file("e.h5"));
  EXPECT_CONTAINS(msg, "/a/b already exists");
}

TEST(H5, ExistsChecksEveryComponent) {
  TempDir dir;
  h5::File f = h5::create(dir.file("x.h5"));
  const float v = 1;
  h5::write_array(f, "model/enc.0.weight", &v, {1});
  EXPECT_TRUE(h5::exists(f, "model"));
  EXPECT_TRUE(h5::exists(f, "model/enc.0.weight"));
  EXPECT_TRUE(h5::exists(f, "/model/enc.0.weight"));
  EXPECT_TRUE(h5::exists(f, "/"));
  EXPECT_FALSE(h5::exists(f, "model/nope"));
  EXPECT_FALSE(h5::exists(f, "nope/deeper/still"));
  EXPECT_FALSE(h5::exists(f, "model/enc.0.weight/below_a_dataset"));
}

TEST(H5, ListDatasetsIsRecursiveAndSorted) {
  TempDir dir;
  h5::File f = h5::create(dir.file("l.h5"));
  const float v = 1;
  for (const char* name : {"model/z", "model/a/b", "model/enc.0.weight", "optim/m", "top"})
    h5::write_array(f, name, &v, {1});
  H5Gclose(H5Gcreate2(f, "model/empty_group", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  EXPECT_EQ(h5::list_datasets(f, "model"), (std::vector<std::string>{"a/b", "enc.0.weight", "z"}));
  EXPECT_EQ(h5::list_datasets(f, "/"),
            (std::vector<std::string>{"model/a/b", "model/enc.0.weight", "model/z", "optim/m", "top"}));
  const std::string msg = data_error_of([&] { h5::list_datasets(f, "missing"); });
  EXPECT_CONTAINS(msg, "/missing does not exist");
}

TEST(H5, AttributesRoundTripOnFileGroupAndDataset) {
  TempDir dir;
  const std::string path = dir.file("attrs.h5");
  {
    h5::File f = h5::create(path);
    const float v = 1;
    h5::write_array(f, "g/d", &v, {1});
    h5::write_attr(f, "name", std::string("mnist"));
    h5::write_attr(f, "literal", "a C string");
    h5::write_attr(f, "count", int64_t{70000});
    h5::write_attr(f, "small_int", 3);  // int goes to the int64 overload
    h5::write_attr(f, "ratio", 0.25);
    h5::write_attr(f, "name", std::string("replaced"));
    h5::Handle g(H5Gopen2(f, "g", H5P_DEFAULT), H5Gclose);
    h5::write_attr(g, "on_group", int64_t{-5});
    h5::Handle d(H5Dopen2(f, "g/d", H5P_DEFAULT), H5Dclose);
    h5::write_attr(d, "on_dataset", std::string("yes"));
  }
  {
    // A fixed-length, space-padded string attribute as other tools write them.
    hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, 8);
    H5Tset_strpad(type, H5T_STR_SPACEPAD);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = H5Acreate2(file, "fixed", type, space, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(attr, type, "abc     ");
    H5Aclose(attr);
    H5Sclose(space);
    H5Tclose(type);
    H5Fclose(file);
  }
  h5::File f = h5::open_read(path);
  EXPECT_EQ(h5::read_attr_string(f, "name"), "replaced");
  EXPECT_EQ(h5::read_attr_string(f, "literal"), "a C string");
  EXPECT_EQ(h5::read_attr_string(f, "fixed"), "abc");
  EXPECT_EQ(h5::read_attr_int(f, "count"), 70000);
  EXPECT_EQ(h5::read_attr_int(f, "small_int"), 3);
  EXPECT_EQ(h5::read_attr_double(f, "ratio"), 0.25);
  EXPECT_EQ(h5::read_attr_double(f, "count"), 70000.0);
  EXPECT_FALSE(h5::read_attr_string(f, "absent").has_value());
  EXPECT_FALSE(h5::read_attr_int(f, "absent").has_value());
  EXPECT_TRUE(h5::has_attr(f, "ratio"));
  EXPECT_FALSE(h5::has_attr(f, "absent"));
  h5::Handle g(H5Gopen2(f, "g", H5P_DEFAULT), H5Gclose);
  EXPECT_EQ(h5::read_attr_int(g, "on_group"), -5);
  h5::Handle d(H5Dopen2(f, "g/d", H5P_DEFAULT), H5Dclose);
  EXPECT_EQ(h5::read_attr_string(d, "on_dataset"), "yes");

  const std::string msg = data_error_of([&] { h5::read_attr_int(f, "name"); });
  EXPECT_CONTAINS(msg, path);
  EXPECT_CONTAINS(msg, "attribute 'name'");
  EXPECT_CONTAINS(msg, "expected an integer");
  EXPECT_CONTAINS(data_error_of([&] { h5::read_attr_string(f, "count"); }), "expected a string");
}

TEST(H5, ReadingAsAnotherTypeIsAnError) {
  TempDir dir;
  const std::string path = dir.file("t.h5");
  raw_dataset<int32_t>(path, "features", H5T_STD_I32LE, {2, 2}, {1, 2, 3, 4});
  h5::File f = h5::open_read(path);
  const std::string msg = data_error_of([&] { h5::read_array<float>(f, "features"); });
  EXPECT_EQ(msg, path + ": /features has type int32, expected float32");
  EXPECT_CONTAINS(data_error_of([&] { h5::read_array<int64_t>(f, "features"); }), "has type int32, expected int64");
  // Widening is opt-in and only for integers.
  EXPECT_EQ(h5::read_row_range<int64_t>(f, "features", 1, 2, h5::Conversion::kWidenInteger),
            (std::vector<int64_t>{3, 4}));
  EXPECT_CONTAINS(data_error_of([&] { h5::read_array<double>(f, "nope"); }), "has no /nope dataset");
}

TEST(H5, ReadRowRangeReadsExactlyTheRows) {
  TempDir dir;
  const std::vector<float> x = ramp(6, 2);
  {
    h5::File f = h5::create(dir.file("r.h5"));
    h5::write_array(f, "x", x.data(), {6, 2}, 4);
  }
  h5::File f = h5::open_read(dir.file("r.h5"));
  EXPECT_EQ(h5::read_row_range<float>(f, "x", 2, 5), std::vector<float>(x.begin() + 4, x.begin() + 10));
  EXPECT_TRUE(h5::read_row_range<float>(f, "x", 6, 6).empty());
  EXPECT_THROW(h5::read_row_range<float>(f, "x", 5, 7), std::out_of_range);
}

TEST(H5, OpenReadNamesTheProblem) {
  TempDir dir;
  EXPECT_EQ(data_error_of([&] { h5::open_read(dir.file("absent.h5")); }), dir.file("absent.h5") + ": no such file");
  std::ofstream(dir.file("text.h5")) << "just some text, not HDF5\n";
  EXPECT_EQ(data_error_of([&] { h5::open_read(dir.file("text.h5")); }), dir.file("text.h5") + ": not an HDF5 file");
  EXPECT_CONTAINS(data_error_of([&] { h5::open_read(dir.path()); }), "is a directory");
}

// ---------------------------------------------------------------------------------------
// dataset schema

TEST(Schema, WriteInspectReadRoundTrip) {
  TempDir dir;
  const std::string path = dir.file("toy.h5");
  const std::vector<float> x = ramp(5, 3);
  const std::vector<int64_t> y = {0, 1, 2, 1, 0};
  DatasetMeta meta = test_meta(3);
  meta.extra = {{"sha256_raw.bin", "abc123"}};
  meta.extra_int = {{"num_train", 4}};
  write_dataset(path, x.data(), 5, 3, y.data(), meta);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"toy.h5"});  // no temp file left

  const DatasetInfo info = inspect(path);
  EXPECT_EQ(info.path, path);
  EXPECT_EQ(info.n, 5);
  EXPECT_EQ(info.d, 3);
  EXPECT_TRUE(info.has_labels);
  EXPECT_EQ(info.num_classes, 3);
  EXPECT_EQ(info.name, "toy");
  EXPECT_EQ(info.source, "unit test");
  EXPECT_EQ(info.preprocessing, "none");
  EXPECT_EQ(info.format_version, 1);

  const Shard all = read_rows(info, 0, 5);
  EXPECT_EQ(all.x, x);
  EXPECT_EQ(all.y, y);
  EXPECT_EQ(all.d, 3);

  h5::File f = h5::open_read(path);
  EXPECT_EQ(h5::read_attr_string(f, "sha256_raw.bin"), "abc123");
  EXPECT_EQ(h5::read_attr_int(f, "num_train"), 4);
  EXPECT_EQ(h5::read_attr_int(f, "format_version"), 1);
  // The documented on-disk types.
  hid_t d = H5Dopen2(f, "labels", H5P_DEFAULT);
  hid_t t = H5Dget_type(d);
  EXPECT_EQ(h5::type_name(t), "int64");
  H5Tclose(t);
  H5Dclose(d);
}

TEST(Schema, UnlabelledDataHasNoLabels) {
  TempDir dir;
  const std::string path = dir.file("u.h5");
  const std::vector<float> x = ramp(4, 2);
  write_dataset(path, x.data(), 4, 2, nullptr, test_meta(0));
  const DatasetInfo info = inspect(path);
  EXPECT_FALSE(info.has_labels);
  const Shard s = read_rows(info, 1, 3);
  EXPECT_TRUE(s.y.empty());
  EXPECT_EQ(s.x, std::vector<float>(x.begin() + 2, x.begin() + 6));
}

TEST(Schema, RewritingReplacesTheFileAtomically) {
  TempDir dir;
  const std::string path = dir.file("w.h5");
  const std::vector<float> a(6, 1.0f), b(8, 2.0f);
  write_dataset(path, a.data(), 3, 2, nullptr, test_meta(0));
  write_dataset(path, b.data(), 4, 2, nullptr, test_meta(0));
  const DatasetInfo info = inspect(path);
  EXPECT_EQ(info.n, 4);
  EXPECT_EQ(read_rows(info, 0, 4).x, b);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"w.h5"});
}

TEST(Schema, NanAndInfFeaturesAreRefusedAndNothingIsLeft) {
  TempDir dir;
  const std::string path = dir.file("nan.h5");
  std::vector<float> x = ramp(4, 3);
  x[7] = std::numeric_limits<float>::quiet_NaN();
  std::string msg = data_error_of([&] { write_dataset(path, x.data(), 4, 3, nullptr, test_meta(0)); });
  EXPECT_CONTAINS(msg, path);
  EXPECT_CONTAINS(msg, "row 2, column 1 is NaN");
  x[7] = std::numeric_limits<float>::infinity();
  msg = data_error_of([&] { write_dataset(path, x.data(), 4, 3, nullptr, test_meta(0)); });
  EXPECT_CONTAINS(msg, "is Inf");
  EXPECT_TRUE(dir.entries().empty());
}

TEST(Schema, LabelsOutOfRangeAreRefused) {
  TempDir dir;
  const std::string path = dir.file("lab.h5");
  const std::vector<float> x = ramp(3, 2);
  const std::vector<int64_t> too_big = {0, 3, 1};
  std::string msg = data_error_of([&] { write_dataset(path, x.data(), 3, 2, too_big.data(), test_meta(3)); });
  EXPECT_CONTAINS(msg, path);
  EXPECT_CONTAINS(msg, "label of row 1 is 3, outside [0, 3)");
  const std::vector<int64_t> negative = {0, 1, -1};
  msg = data_error_of([&] { write_dataset(path, x.data(), 3, 2, negative.data(), test_meta(0)); });
  EXPECT_CONTAINS(msg, "row 2 is -1, negative");
  EXPECT_TRUE(dir.entries().empty());
}

TEST(Schema, UnwritableDirectoryIsADataErrorNamingThePath) {
  TempDir dir;
  std::ofstream(dir.file("afile")) << "a regular file, not a directory";
  const std::string path = dir.file("afile/x.h5");
  const std::vector<float> x = ramp(2, 2);
  const std::string msg = data_error_of([&] { write_dataset(path, x.data(), 2, 2, nullptr, test_meta(0)); });
  EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << msg;
  EXPECT_CONTAINS(msg, "Not a directory");
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"afile"});
}

TEST(Schema, InspectNamesStructuralProblems) {
  TempDir dir;
  EXPECT_EQ(data_error_of([&] { inspect(dir.file("none.h5")); }), dir.file("none.h5") + ": no such file");

  std::ofstream(dir.file("garbage.h5")) << "\x89HDX not really";
  EXPECT_EQ(data_error_of([&] { inspect(dir.file("garbage.h5")); }), dir.file("garbage.h5") + ": not an HDF5 file");

  const std::string nofeat = dir.file("nofeat.h5");
  raw_dataset<int64_t>(nofeat, "labels", H5T_NATIVE_INT64, {2}, {0, 1});
  EXPECT_EQ(data_error_of([&] { inspect(nofeat); }), nofeat + ": has no /features dataset");

  const std::string rank1 = dir.file("rank1.h5");
  raw_dataset<float>(rank1, "features", H5T_NATIVE_FLOAT, {4}, {1, 2, 3, 4});
  EXPECT_EQ(data_error_of([&] { inspect(rank1); }), rank1 + ": /features must be 2-D [N, D], found rank 1");

  const std::string rank3 = dir.file("rank3.h5");
  raw_dataset<float>(rank3, "features", H5T_NATIVE_FLOAT, {1, 2, 2}, {1, 2, 3, 4});
  EXPECT_CONTAINS(data_error_of([&] { inspect(rank3); }), "found rank 3");

  const std::string ints = dir.file("int32.h5");
  raw_dataset<int32_t>(ints, "features", H5T_NATIVE_INT32, {2, 2}, {1, 2, 3, 4});
  EXPECT_EQ(data_error_of([&] { inspect(ints); }), ints + ": /features has type int32, expected float32");

  const std::string doubles = dir.file("float64.h5");
  raw_dataset<double>(doubles, "features", H5T_NATIVE_DOUBLE, {2, 2}, {1, 2, 3, 4});
  EXPECT_CONTAINS(data_error_of([&] { inspect(doubles); }), "/features has type float64, expected float32");

  const std::string short_labels = dir.file("short_labels.h5");
  raw_dataset<float>(short_labels, "features", H5T_NATIVE_FLOAT, {3, 1}, {1, 2, 3});
  raw_dataset<int64_t>(short_labels, "labels", H5T_NATIVE_INT64, {2}, {0, 1}, false);
  EXPECT_EQ(data_error_of([&] { inspect(short_labels); }),
            short_labels + ": /labels has 2 entries but /features has 3 rows");

  const std::string float_labels = dir.file("float_labels.h5");
  raw_dataset<float>(float_labels, "features", H5T_NATIVE_FLOAT, {2, 1}, {1, 2});
  raw_dataset<float>(float_labels, "labels", H5T_NATIVE_FLOAT, {2}, {0, 1}, false);
  EXPECT_CONTAINS(data_error_of([&] { inspect(float_labels); }), "/labels has type float32, expected int64");

  const std::string group_features = dir.file("group.h5");
  {
    hid_t f = H5Fcreate(group_features.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Gclose(H5Gcreate2(f, "features", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5Fclose(f);
  }
  EXPECT_CONTAINS(data_error_of([&] { inspect(group_features); }), "/features is not a dataset");

  const std::string future = dir.file("future.h5");
  const std::vector<float> x = ramp(2, 2);
  write_dataset(future, x.data(), 2, 2, nullptr, test_meta(0));
  {
    h5::File f(H5Fopen(future.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), future);
    h5::write_attr(f, "format_version", int64_t{2});
  }
  EXPECT_CONTAINS(data_error_of([&] { inspect(future); }), "format_version 2 is newer");
}

TEST(Schema, FilesFromOtherToolsGetDefaultsAndNarrowIntegerLabels) {
  TempDir dir;
  const std::string path = dir.file("from_h5py.h5");
  raw_dataset<float>(path, "features", H5T_NATIVE_FLOAT, {3, 2}, {1, 2, 3, 4, 5, 6});
  raw_dataset<int32_t>(path, "labels", H5T_STD_I32BE, {3}, {2, 0, 1}, false, H5T_NATIVE_INT32);
  const DatasetInfo info = inspect(path);
  EXPECT_EQ(info.name, "from_h5py");
  EXPECT_EQ(info.num_classes, 0);
  EXPECT_EQ(info.format_version, 1);
  EXPECT_TRUE(info.source.empty());
  const Shard s = read_rows(info, 0, 3);
  EXPECT_EQ(s.y, (std::vector<int64_t>{2, 0, 1}));

  const std::string u64 = dir.file("u64_labels.h5");
  raw_dataset<float>(u64, "features", H5T_NATIVE_FLOAT, {1, 1}, {1});
  raw_dataset<uint64_t>(u64, "labels", H5T_NATIVE_UINT64, {1}, {0}, false);
  EXPECT_CONTAINS(data_error_of([&] { inspect(u64); }), "/labels has type uint64");
}

TEST(Schema, ReadRowsRejectsBadValuesNamingTheGlobalRow) {
  TempDir dir;
  const std::string nan_file = dir.file("nan_inside.h5");
  std::vector<float> x = ramp(8, 2);
  x[9] = std::numeric_limits<float>::quiet_NaN();  // row 4
  raw_dataset<float>(nan_file, "features", H5T_NATIVE_FLOAT, {8, 2}, x);
  const DatasetInfo info = inspect(nan_file);  // inspect reads no feature data
  EXPECT_NO_THROW(read_rows(info, 0, 4));
  const std::string msg = data_error_of([&] { read_rows(info, 2, 6); });
  EXPECT_EQ(msg, nan_file + ": /features row 4, column 1 is NaN");

  const std::string bad_labels = dir.file("bad_labels.h5");
  raw_dataset<float>(bad_labels, "features", H5T_NATIVE_FLOAT, {4, 1}, {1, 2, 3, 4});
  raw_dataset<int64_t>(bad_labels, "labels", H5T_NATIVE_INT64, {4}, {0, 1, 5, 2}, false);
  {
    h5::File f(H5Fopen(bad_labels.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), bad_labels);
    h5::write_attr(f, "num_classes", int64_t{3});
  }
  const DatasetInfo linfo = inspect(bad_labels);
  EXPECT_EQ(data_error_of([&] { read_rows(linfo, 1, 4); }), bad_labels + ": /labels row 2 is 5, outside [0, 3)");
  EXPECT_THROW(read_rows(linfo, 3, 5), std::out_of_range);
}

TEST(Schema, ShardsConcatenateToTheWholeFile) {
  TempDir dir;
  const std::string path = dir.file("s.h5");
  const int64_t n = 11, d = 3;
  const std::vector<float> x = ramp(n, d);
  std::vector<int64_t> y(n);
  for (int64_t i = 0; i < n; ++i) y[i] = i % 4;
  write_dataset(path, x.data(), n, d, y.data(), test_meta(4));
  const DatasetInfo info = inspect(path);
  for (int world : {1, 2, 3, 5}) {
    std::vector<float> xs;
    std::vector<int64_t> ys;
    for (int r = 0; r < world; ++r) {
      const auto [begin, end] = shard_range(n, r, world);
      const Shard s = read_rows(info, begin, end);
      EXPECT_EQ(s.begin, begin);
      EXPECT_EQ(s.end, end);
      EXPECT_EQ(static_cast<int64_t>(s.x.size()), (end - begin) * d);
      xs.insert(xs.end(), s.x.begin(), s.x.end());
      ys.insert(ys.end(), s.y.begin(), s.y.end());
    }
    EXPECT_EQ(xs, x) << "world " << world;
    EXPECT_EQ(ys, y) << "world " << world;
  }
}

TEST(Schema, ShardRangeCoversEveryRowExactlyOnce) {
  for (int64_t n = 0; n <= 20; ++n) {
    for (int world = 1; world <= 5; ++world) {
      int64_t next = 0;
      for (int r = 0; r < world; ++r) {
        const auto [begin, end] = shard_range(n, r, world);
        EXPECT_EQ(begin, next) << "n=" << n << " world=" << world << " rank=" << r;
        EXPECT_LE(begin, end);
        EXPECT_EQ(begin, n * r / world);
        EXPECT_LE(end - begin, n / world + 1);
        next = end;
      }
      EXPECT_EQ(next, n) << "n=" << n << " world=" << world;
    }
  }
  // No overflow where n * rank would not fit in 64 bits.
  const int64_t big = std::numeric_limits<int64_t>::max();
  int64_t next = 0;
  for (int r = 0; r < 7; ++r) {
    const auto [begin, end] = shard_range(big, r, 7);
    EXPECT_EQ(begin, next);
    EXPECT_GE(end, begin);
    next = end;
  }
  EXPECT_EQ(next, big);
  EXPECT_THROW(shard_range(10, 3, 3), std::invalid_argument);
  EXPECT_THROW(shard_range(10, 0, 0), std::invalid_argument);
}

TEST(Schema, TooFewSamplesForTheRanksIsADataError) {
  DatasetInfo info;
  info.path = "/data/tiny.h5";
  info.n = 2;
  EXPECT_NO_THROW(check_shardable(info, 2));
  EXPECT_EQ(data_error_of([&] { check_shardable(info, 3); }), "/data/tiny.h5: 2 samples cannot be split over 3 ranks");
}

// ---------------------------------------------------------------------------------------
// sha256

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_bytes("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_bytes("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, IncrementalEqualsOneShot) {
  Sha256 sha;
  sha.add("a", 1);
  sha.add(std::string("bc"));
  EXPECT_EQ(sha.hex(), sha256_bytes("abc", 3));
}

TEST(Sha256, FileMatchesBytesAcrossBufferBoundaries) {
  TempDir dir;
  std::string content((1 << 20) * 2 + 123, '\0');
  for (size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>(i * 131 % 251);
  std::ofstream(dir.file("blob"), std::ios::binary) << content;
  EXPECT_EQ(sha256_file(dir.file("blob")), sha256_bytes(content.data(), content.size()));
  const std::string msg = data_error_of([&] { sha256_file(dir.file("missing")); });
  EXPECT_CONTAINS(msg, dir.file("missing"));
  EXPECT_CONTAINS(msg, "cannot read");
}

}  // namespace
}  // namespace mixvae::data
