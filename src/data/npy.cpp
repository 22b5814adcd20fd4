#include "data/npy.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>

#include "core/errors.h"
#include "data/schema.h"

namespace mixvae::data {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;
// A header claiming more than this is corrupt (the .npy writer pads to 64 bytes).
constexpr uint64_t kMaxHeader = uint64_t{1} << 24;
constexpr uint64_t kMaxPayload = uint64_t{1} << 40;

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

// A tiny reader for the header's Python dict literal.
class HeaderParser {
 public:
  HeaderParser(const std::string& path, const std::string& text) : path_(path), s_(text) {}

  void parse(NpyArray* a) {
    bool have_descr = false, have_order = false, have_shape = false;
    expect('{');
    for (;;) {
      skip();
      if (peek() == '}') break;
      const std::string key = quoted();
      expect(':');
      skip();
      if (key == "descr") {
        if (peek() == '[') fail("structured dtypes are not supported (need a plain numeric array)");
        a->descr = quoted();
        have_descr = true;
      } else if (key == "fortran_order") {
        a->fortran_order = boolean();
        have_order = true;
      } else if (key == "shape") {
        a->shape = tuple();
        have_shape = true;
      } else {
        fail("unexpected key '" + key + "' in the .npy header");
      }
      skip();
      if (peek() == ',') ++i_;
    }
    if (!have_descr || !have_order || !have_shape)
      fail(std::string("the .npy header lacks '") +
           (!have_descr   ? "descr"
            : !have_order ? "fortran_order"
                          : "shape") +
           "'");
  }

 private:
  [[noreturn]] void fail(const std::string& what) { throw data_error(path_, what); }
  void skip() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  char peek() {
    if (i_ >= s_.size()) fail("the .npy header ends early");
    return s_[i_];
  }
  void expect(char c) {
    skip();
    if (peek() != c)
      fail(std::string("malformed .npy header (expected '") + c + "' at offset " + std::to_string(i_) + ")");
    ++i_;
  }
  std::string quoted() {
    const char q = peek();
    if (q != '\'' && q != '"')
      fail("malformed .npy header (expected a quoted key or value at offset " + std::to_string(i_) + ")");
    const size_t end = s_.find(q, i_ + 1);
    if (end == std::string::npos) fail("malformed .npy header (unterminated string)");
    std::string v = s_.substr(i_ + 1, end - i_ - 1);
    i_ = end + 1;
    return v;
  }
  bool boolean() {
    if (s_.compare(i_, 4, "True") == 0) {
      i_ += 4;
      return true;
    }
    if (s_.compare(i_, 5, "False") == 0) {
      i_ += 5;
      return false;
    }
    fail("malformed .npy header (fortran_order is not True or False)");
  }
  std::vector<int64_t> tuple() {
    std::vector<int64_t> dims;
    expect('(');
    for (;;) {
      skip();
      if (peek() == ')') {
        ++i_;
        return dims;
      }
      int64_t v = 0;
      size_t digits = 0;
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') {
        if (v > (std::numeric_limits<int64_t>::max() - 9) / 10) fail("implausible dimension in the .npy shape");
        v = v * 10 + (s_[i_++] - '0');
        ++digits;
      }
      if (digits == 0) fail("malformed .npy header (shape is not a tuple of non-negative integers)");
      if (i_ < s_.size() && s_[i_] == 'L') ++i_;  // written by Python 2
      dims.push_back(v);
      skip();
      if (peek() == ',')
        ++i_;
      else if (peek() != ')')
        fail("malformed .npy header (shape is not a tuple of integers)");
    }
  }

  const std::string& path_;
  const std::string& s_;
  size_t i_ = 0;
};

void check_dtype(NpyArray* a) {
  const std::string& d = a->descr;
  auto unsupported = [&] {
    throw data_error(
        a->path,
        "dtype '" + d + "' is not supported (float32/float64 or integers: '<f4', '<f8', '<i8', '<i4', '|u1', ...)");
  };
  if (d.size() < 3) unsupported();
  const char order = d[0];
  a->kind = d[1];
  int64_t size = 0;
  for (size_t i = 2; i < d.size(); ++i) {
    if (d[i] < '0' || d[i] > '9') unsupported();
    size = size * 10 + (d[i] - '0');
    if (size > 16) unsupported();
  }
  a->item_size = static_cast<int>(size);
  const bool is_float = a->kind == 'f' && (size == 4 || size == 8);
  const bool is_int = (a->kind == 'i' || a->kind == 'u') && (size == 1 || size == 2 || size == 4 || size == 8);
  if (!is_float && !is_int) unsupported();
  if (order == '>')
    a->swap_bytes = size > 1;
  else if (order != '<' && order != '|' && order != '=')
    unsupported();
}

template <class T>
T load(const uint8_t* p, bool swap) {
  uint8_t b[sizeof(T)];
  std::memcpy(b, p, sizeof(T));
  if (swap)
    for (size_t i = 0; i < sizeof(T) / 2; ++i) std::swap(b[i], b[sizeof(T) - 1 - i]);
  T v;
  std::memcpy(&v, b, sizeof(T));
  return v;
}

// Element i (in storage order) as a double, for the float and integer kinds.
double element_as_double(const NpyArray& a, size_t i) {
  const uint8_t* p = a.data.data() + i * static_cast<size_t>(a.item_size);
  const bool s = a.swap_bytes;
  switch (a.kind) {
    case 'f':
      return a.item_size == 4 ? static_cast<double>(load<float>(p, s)) : load<double>(p, s);
    case 'i':
      switch (a.item_size) {
        case 1:
          return load<int8_t>(p, s);
        case 2:
          return load<int16_t>(p, s);
        case 4:
          return load<int32_t>(p, s);
        default:
          return static_cast<double>(load<int64_t>(p, s));
      }
    default:
      switch (a.item_size) {
        case 1:
          return load<uint8_t>(p, s);
        case 2:
          return load<uint16_t>(p, s);
        case 4:
          return load<uint32_t>(p, s);
        default:
          return static_cast<double>(load<uint64_t>(p, s));
      }
  }
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

}  // namespace

NpyArray read_npy(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw data_error(
        path, errno == ENOENT ? std::string("no such file") : std::string("cannot access: ") + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) throw data_error(path, "is a directory, expected a .npy file");
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  if (!f) throw data_error(path, std::string("cannot read: ") + std::strerror(errno));

  NpyArray a;
  a.path = path;
  uint8_t pre[12];
  const size_t got = std::fread(pre, 1, 10, f.get());
  if (got == 0) throw data_error(path, "is empty, expected a .npy file");
  if (got < kMagicLen || std::memcmp(pre, kMagic, kMagicLen) != 0)
    throw data_error(path, "not a .npy file (no \\x93NUMPY magic)");
  if (got < 10) throw data_error(path, "truncated: the .npy header ends after " + std::to_string(got) + " bytes");
  const int major = pre[6], minor = pre[7];
  uint64_t header_len = 0;
  size_t prefix = 10;
  if (major == 1) {
    header_len = pre[8] | (uint64_t{pre[9]} << 8);
  } else if (major == 2 || major == 3) {
    if (std::fread(pre + 10, 1, 2, f.get()) != 2) throw data_error(path, "truncated: the .npy header ends early");
    header_len = pre[8] | (uint64_t{pre[9]} << 8) | (uint64_t{pre[10]} << 16) | (uint64_t{pre[11]} << 24);
    prefix = 12;
  } else {
    throw data_error(path, ".npy format version " + std::to_string(major) + "." + std::to_string(minor) +
                               " is not supported (1.0, 2.0, 3.0)");
  }
  if (header_len > kMaxHeader) throw data_error(path, "implausible .npy header length (corrupt file?)");
  std::string header(header_len, '\0');
  if (std::fread(header.data(), 1, header_len, f.get()) != header_len)
    throw data_error(path, "truncated: the .npy header ends early");
  HeaderParser(path, header).parse(&a);
  check_dtype(&a);

  uint64_t count = 1;
  for (int64_t dim : a.shape) {
    if (dim != 0 && count > kMaxPayload / static_cast<uint64_t>(dim))
      throw data_error(path, "shape " + shape_string(a.shape) + " is implausibly large (corrupt header?)");
    count *= static_cast<uint64_t>(dim);
  }
  const uint64_t expected = count * static_cast<uint64_t>(a.item_size);
  if (expected > kMaxPayload) throw data_error(path, "shape " + shape_string(a.shape) + " is implausibly large");
  const uint64_t available = static_cast<uint64_t>(st.st_size) - prefix - header_len;
  if (static_cast<uint64_t>(st.st_size) < prefix + header_len || available < expected)
    throw data_error(
        path, "truncated: expected " + std::to_string(expected) + " bytes of data for shape " + shape_string(a.shape) +
                  ", found " +
                  std::to_string(static_cast<uint64_t>(st.st_size) >= prefix + header_len ? available : 0));
  if (available > expected)
    throw data_error(path, std::to_string(available - expected) + " unexpected extra bytes after the " +
                               std::to_string(expected) + " bytes of data");
  a.data.resize(static_cast<size_t>(expected));
  if (expected > 0 && std::fread(a.data.data(), 1, a.data.size(), f.get()) != a.data.size())
    throw data_error(path, std::string("cannot read: ") + (std::ferror(f.get()) ? std::strerror(errno) : "short read"));
  return a;
}

std::vector<float> npy_matrix(const NpyArray& a, int64_t* n, int64_t* d) {
  if (a.shape.size() != 2) throw data_error(a.path, "shape " + shape_string(a.shape) + " is not a 2-D matrix [N, D]");
  const int64_t rows = a.shape[0], cols = a.shape[1];
  if (rows == 0 || cols == 0) throw data_error(a.path, "shape " + shape_string(a.shape) + " is empty");
  std::vector<float> x(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const size_t stored = static_cast<size_t>(a.fortran_order ? c * rows + r : r * cols + c);
      const double v = element_as_double(a, stored);
      if (!std::isfinite(v))
        throw data_error(a.path, "row " + std::to_string(r) + ", column " + std::to_string(c) + " is " +
                                     (std::isnan(v) ? "NaN" : "Inf") + " (features must be finite)");
      if (std::fabs(v) > std::numeric_limits<float>::max())
        throw data_error(a.path, "row " + std::to_string(r) + ", column " + std::to_string(c) + " (" +
                                     std::to_string(v) + ") does not fit float32");
      x[static_cast<size_t>(r * cols + c)] = static_cast<float>(v);
    }
  *n = rows;
  *d = cols;
  return x;
}

std::vector<int64_t> npy_labels(const NpyArray& a) {
  if (a.kind == 'f')
    throw data_error(a.path,
                     "labels have dtype '" + a.descr + "'; expected an integer dtype ('<i8', '<i4', '|u1', ...)");
  if (!(a.shape.size() == 1 || (a.shape.size() == 2 && a.shape[1] == 1)))
    throw data_error(a.path, "labels have shape " + shape_string(a.shape) + ", expected (N,) or (N, 1)");
  const int64_t n = a.shape[0];
  if (n == 0) throw data_error(a.path, "has no labels (shape " + shape_string(a.shape) + ")");
  std::vector<int64_t> y(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* p = a.data.data() + static_cast<size_t>(i) * a.item_size;
    int64_t v = 0;
    if (a.kind == 'u' && a.item_size == 8) {
      const uint64_t u = load<uint64_t>(p, a.swap_bytes);
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        throw data_error(a.path, "label " + std::to_string(u) + " at index " + std::to_string(i) + " is too large");
      v = static_cast<int64_t>(u);
    } else if (a.kind == 'i' && a.item_size == 8) {
      v = load<int64_t>(p, a.swap_bytes);
    } else {
      v = static_cast<int64_t>(element_as_double(a, static_cast<size_t>(i)));  // exact below 2^53
    }
    if (v < 0)
      throw data_error(a.path, "label " + std::to_string(v) + " at index " + std::to_string(i) +
                                   " is negative (labels must be class ids 0..K-1)");
    y[static_cast<size_t>(i)] = v;
  }
  return y;
}

void prepare_npy(const std::string& features_path, const std::string& labels_path, const std::string& name,
                 const std::string& out_path) {
  namespace fs = std::filesystem;
  const NpyArray xa = read_npy(features_path);
  int64_t n = 0, d = 0;
  const std::vector<float> x = npy_matrix(xa, &n, &d);
  std::vector<int64_t> y;
  DatasetMeta meta;
  const std::string xbase = fs::path(features_path).filename().string();
  meta.name = name.empty() ? fs::path(features_path).stem().string() : name;
  meta.source = "user .npy file " + xbase;
  meta.preprocessing = "none: values stored as given (dtype " + xa.descr + " as float32)";
  meta.extra.push_back(file_checksum(features_path));
  meta.extra.emplace_back("features_dtype", xa.descr);
  if (!labels_path.empty()) {
    const NpyArray ya = read_npy(labels_path);
    y = npy_labels(ya);
    if (static_cast<int64_t>(y.size()) != n)
      throw data_error(labels_path, "has " + std::to_string(y.size()) + " labels but " + xbase + " has " +
                                        std::to_string(n) + " rows");
    int64_t max_label = 0;
    for (int64_t v : y) max_label = std::max(max_label, v);
    meta.num_classes = max_label + 1;
    const std::string ybase = fs::path(labels_path).filename().string();
    meta.source += " with labels " + ybase;
    if (ybase != xbase) meta.extra.push_back(file_checksum(labels_path));
    meta.extra.emplace_back("labels_dtype", ya.descr);
  }
  write_dataset(out_path, x.data(), n, d, y.empty() ? nullptr : y.data(), meta);
}

}  // namespace mixvae::data
