#include "data/idx.h"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>

#include "core/errors.h"

namespace mixvae::data {
namespace {

constexpr uint8_t kTypeU8 = 0x08;
// A header claiming more than this is corrupt, not a data set (MNIST train is 47 MB).
constexpr uint64_t kMaxPayload = uint64_t{1} << 40;

std::string hex_byte(uint8_t b) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02X", b);
  return buf;
}

const char* idx_type_name(uint8_t t) {
  switch (t) {
    case 0x08:
      return "unsigned byte";
    case 0x09:
      return "signed byte";
    case 0x0B:
      return "int16";
    case 0x0C:
      return "int32";
    case 0x0D:
      return "float32";
    case 0x0E:
      return "float64";
    default:
      return "unknown";
  }
}

// gzread in a loop, turning zlib's error states into DataErrors. Plain (uncompressed)
// files are read transparently by zlib. Returns fewer than `len` bytes only at the end
// of the data, including a gzip stream that stops early.
class GzReader {
 public:
  explicit GzReader(const std::string& path) : path_(path), gz_(gzopen(path.c_str(), "rb")) {
    if (gz_ == nullptr)
      throw data_error(path, std::string("cannot read: ") + (errno != 0 ? std::strerror(errno) : "out of memory"));
  }
  ~GzReader() {
    if (gz_ != nullptr) gzclose(gz_);
  }
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;

  size_t read(void* buf, size_t len) {
    size_t total = 0;
    auto* out = static_cast<unsigned char*>(buf);
    while (total < len) {
      const unsigned chunk = static_cast<unsigned>(std::min<size_t>(len - total, size_t{1} << 20));
      const int got = gzread(gz_, out + total, chunk);
      if (got < 0) throw_error();
      if (got == 0) break;
      total += static_cast<size_t>(got);
    }
    int errnum = Z_OK;
    gzerror(gz_, &errnum);
    // Z_BUF_ERROR is zlib's "unexpected end of file": the caller sees it as short data
    // and reports the truncation with byte counts.
    if (errnum != Z_OK && errnum != Z_BUF_ERROR) throw_error();
    return total;
  }

 private:
  [[noreturn]] void throw_error() {
    int errnum = Z_OK;
    const char* msg = gzerror(gz_, &errnum);
    if (errnum == Z_ERRNO) throw data_error(path_, std::string("cannot read: ") + std::strerror(errno));
    throw data_error(path_, std::string("corrupt gzip data (") + (msg != nullptr ? msg : "?") + ")");
  }

  std::string path_;
  gzFile gz_;
};

}  // namespace

IdxArray read_idx_u8(const std::string& path, int expected_rank) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw data_error(
        path, errno == ENOENT ? std::string("no such file") : std::string("cannot access: ") + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) throw data_error(path, "is a directory, expected an IDX file");

  GzReader in(path);
  uint8_t magic[4];
  const size_t got_magic = in.read(magic, 4);
  if (got_magic == 0) throw data_error(path, "is empty, expected an IDX file");
  if (got_magic < 4)
    throw data_error(path, "truncated: the IDX header ends after " + std::to_string(got_magic) + " bytes");
  if (magic[0] != 0 || magic[1] != 0)
    throw data_error(path, "not an IDX file (starts with " + hex_byte(magic[0]) + " " + hex_byte(magic[1]) + " " +
                               hex_byte(magic[2]) + " " + hex_byte(magic[3]) + ", expected 0x00 0x00 0x08 RANK)");
  if (magic[2] != kTypeU8)
    throw data_error(path, "IDX element type " + hex_byte(magic[2]) + " (" + idx_type_name(magic[2]) +
                               "), expected 0x08 (unsigned byte)");
  const int rank = magic[3];
  if (rank != expected_rank)
    throw data_error(path, "IDX rank " + std::to_string(rank) + ", expected " + std::to_string(expected_rank));

  IdxArray array;
  uint64_t expected = 1;
  for (int i = 0; i < rank; ++i) {
    uint8_t b[4];
    const size_t got = in.read(b, 4);
    if (got < 4)
      throw data_error(path, "truncated: the IDX header ends after " + std::to_string(4 + 4 * i + got) + " of " +
                                 std::to_string(4 + 4 * rank) + " bytes");
    const uint32_t dim = (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
    if (dim > static_cast<uint32_t>(std::numeric_limits<int32_t>::max()))
      throw data_error(path, "IDX dimension " + std::to_string(i) + " is " + std::to_string(dim) +
                                 ", implausibly large (corrupt header?)");
    array.dims.push_back(static_cast<int32_t>(dim));
    expected *= dim;  // each factor < 2^31 and the running product is capped below
    if (expected > kMaxPayload)
      throw data_error(path, "IDX dimensions describe more than 2^40 bytes (corrupt header?)");
  }

  const char* what = rank == 1 ? "label data" : "pixel data";
  // Grow as data arrives rather than trusting the header with one huge allocation.
  array.data.reserve(static_cast<size_t>(std::min<uint64_t>(expected, uint64_t{64} << 20)));
  std::vector<uint8_t> buf(size_t{1} << 20);
  uint64_t total = 0;
  while (total < expected) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(expected - total, buf.size()));
    const size_t got = in.read(buf.data(), want);
    array.data.insert(array.data.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(got));
    total += got;
    if (got < want) break;
  }
  if (total < expected)
    throw data_error(path, "truncated: expected " + std::to_string(expected) + " bytes of " + what + ", found " +
                               std::to_string(total));

  // Reading past the payload also makes zlib check the gzip trailer (CRC and length).
  uint64_t extra = 0;
  for (size_t got; (got = in.read(buf.data(), buf.size())) > 0;) extra += got;
  if (extra > 0)
    throw data_error(path, std::to_string(extra) + " unexpected extra bytes after the " + std::to_string(expected) +
                               " bytes of " + what);
  return array;
}

}  // namespace mixvae::data
