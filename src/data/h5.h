#pragma once
// RAII and typed helpers over the HDF5 C API.
//
// Everything here reports bad files as mixvae::DataError with one line "FILE: problem";
// HDF5's own error-stack printing is switched off (quiet()) so that line is all a user
// sees. The helpers are generic on purpose: the dataset schema and the checkpoint writer
// both build on them.
#include <hdf5.h>

#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace mixvae::data::h5 {

// Silences HDF5's automatic error-stack printing (once per process). Every entry point
// of src/data calls it, so callers never have to.
void quiet();

// Owns one HDF5 identifier. Move-only; closes on destruction and ignores close errors
// there (a destructor cannot report them). Use File::close() where a failed close matters.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);

  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  ~Handle() { reset(); }
  Handle(Handle&& other) noexcept : id_(other.id_), closer_(other.closer_) { other.id_ = -1; }
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = std::exchange(other.id_, -1);
      closer_ = other.closer_;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  hid_t id() const { return id_; }
  operator hid_t() const { return id_; }  // NOLINT: lets a Handle go straight into H5 calls
  bool valid() const { return id_ >= 0; }
  hid_t release() { return std::exchange(id_, -1); }
  void reset() {
    if (id_ >= 0 && closer_ != nullptr) closer_(id_);
    id_ = -1;
  }

 private:
  hid_t id_ = -1;
  Closer closer_ = nullptr;
};

// An open HDF5 file that remembers its path, for error messages.
class File : public Handle {
 public:
  File() = default;
  File(hid_t id, std::string path) : Handle(id, H5Fclose), path_(std::move(path)) {}
  const std::string& path() const { return path_; }

  // Writes buffered data to disk (H5Fflush); DataError if that fails.
  void flush();
  // Closes now and reports failure (a write-back error shows up here, not in the
  // destructor). Every object opened from the file must be closed first.
  void close();

 private:
  std::string path_;
};

// Opens an existing file read-only with file locking off (POSIX locks fail or hang on
// some cluster file systems, and a dataset is never written while being read).
// DataError: "no such file", "is a directory", "not an HDF5 file", ...
File open_read(const std::string& path);

// Creates (truncates) a file for writing, also without file locking.
File create(const std::string& path);

// The name of the file an identifier belongs to ("" if unknown).
std::string file_name_of(hid_t obj);

// "/group/name" for messages: `name` resolved against the object `loc`.
std::string object_path(hid_t loc, const std::string& name);

// Human-readable name of a stored datatype: "float32", "int64", "uint8", "string", ...
std::string type_name(hid_t type);

// True if every component of the slash-separated `path` exists below `loc` (checked one
// link at a time, so a missing intermediate group is simply false, not an error).
bool exists(hid_t loc, const std::string& path);

// Names of all datasets below `group` (recursively), relative to it, sorted,
// e.g. {"dec.0.bias", "enc/0/weight"}. Soft and external links are not followed.
std::vector<std::string> list_datasets(hid_t loc, const std::string& group);

// Shape of the dataset `name`; DataError if it is missing or not a dataset.
std::vector<hsize_t> dims_of(hid_t loc, const std::string& name);

// Opens dataset `name` below `loc`; DataError naming the file if it is missing or is not
// a dataset.
Handle open_dataset(hid_t loc, const std::string& name);

// Element types the array helpers support: float, double, int64_t, int32_t, uint8_t,
// uint64_t. Stored on disk as the little-endian standard type of the same size.
template <class T>
inline constexpr bool kSupportedElement =
    std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, int64_t> || std::is_same_v<T, int32_t> ||
    std::is_same_v<T, uint8_t> || std::is_same_v<T, uint64_t>;

// Writes a new dataset `name` (intermediate groups are created, so "model/enc.0.weight"
// works). `dims` empty means a scalar. chunk_rows > 0 chunks by that many rows along
// dim 0; deflate 1..9 compresses (and picks ~1 MiB row chunks if chunk_rows is 0).
// DataError if the dataset already exists or the write fails.
template <class T>
void write_array(hid_t loc, const std::string& name, const T* data, const std::vector<hsize_t>& dims,
                 hsize_t chunk_rows = 0, int deflate = 0);

// Reads a whole dataset. Its stored type must be exactly T's type (byte order aside):
// "FILE: /features has type int32, expected float32" otherwise. dims, if given, receives
// the shape.
template <class T>
std::vector<T> read_array(hid_t loc, const std::string& name, std::vector<hsize_t>* dims = nullptr);

// How read_row_range treats a stored type that differs from the requested one.
enum class Conversion {
  kExact,         // the stored type must be exactly T's
  kWidenInteger,  // any integer type that T holds losslessly is accepted (T integral)
};

// Checks that dataset `name` can be read as T under `conversion` without reading it:
// "FILE: /features has type int32, expected float32" otherwise.
template <class T>
void check_type(hid_t loc, const std::string& name, Conversion conversion = Conversion::kExact);

// Reads rows [begin, end) along dim 0 (one hyperslab; nothing else is read) into a
// vector of (end - begin) * (product of the other dims) elements.
template <class T>
std::vector<T> read_row_range(hid_t loc, const std::string& name, hsize_t begin, hsize_t end,
                              Conversion conversion = Conversion::kExact);

// Attributes on any object (a file id means the root group). Writing replaces an
// attribute of the same name. Strings are variable-length UTF-8, as h5py writes them.
void write_attr(hid_t obj, const std::string& name, const std::string& value);
void write_attr(hid_t obj, const std::string& name, const char* value);
void write_attr(hid_t obj, const std::string& name, int64_t value);
void write_attr(hid_t obj, const std::string& name, double value);
// Other integer types (int, unsigned, ...) would be ambiguous between int64_t and double;
// they are stored as int64, so values must fit it.
template <class I,
          std::enable_if_t<std::is_integral_v<I> && !std::is_same_v<I, int64_t> && !std::is_same_v<I, bool>, int> = 0>
void write_attr(hid_t obj, const std::string& name, I value) {
  write_attr(obj, name, static_cast<int64_t>(value));
}

bool has_attr(hid_t obj, const std::string& name);
// Each returns nullopt if the attribute is absent, and throws DataError if it is present
// but not of the right kind (read_attr_string accepts fixed- and variable-length strings;
// read_attr_int any integer type that fits int64; read_attr_double any float or integer).
std::optional<std::string> read_attr_string(hid_t obj, const std::string& name);
std::optional<int64_t> read_attr_int(hid_t obj, const std::string& name);
std::optional<double> read_attr_double(hid_t obj, const std::string& name);

}  // namespace mixvae::data::h5
