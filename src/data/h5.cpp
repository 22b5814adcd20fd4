#include "data/h5.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <stdexcept>

#include "core/errors.h"
#include "core/files.h"

namespace mixvae::data::h5 {
namespace {

// The most specific message on HDF5's error stack. Must run before any other HDF5 call,
// since every API call clears the stack.
std::string h5_detail() {
  std::string desc;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned n, const H5E_error2_t* err, void* data) -> herr_t {
        if (n == 0 && err != nullptr && err->desc != nullptr) *static_cast<std::string*>(data) = err->desc;
        return 0;
      },
      &desc);
  if (desc.empty()) return std::string();
  // I/O failures come as "file write failed: time = <ctime, with its newline>, filename =
  // ..., errno = 28, error message = 'No space left on device', buf = ..."; keep the
  // operation and the system's reason.
  const std::string key = "error message = '";
  const auto at = desc.find(key);
  if (at != std::string::npos) {
    const auto end = desc.find('\'', at + key.size());
    const std::string reason =
        desc.substr(at + key.size(), end == std::string::npos ? std::string::npos : end - at - key.size());
    desc = desc.substr(0, desc.find(':')) + ": " + reason;
  }
  return " (HDF5: " + one_line(desc) + ")";
}

// Throws "FILE: problem (HDF5: detail)" for a failed HDF5 call on an object of `loc`.
[[noreturn]] void fail(hid_t loc, const std::string& problem) {
  std::string detail = h5_detail();
  throw data_error(file_name_of(loc), problem + detail);
}

// A file-access property list with file locking off: flock() is unsupported or hangs on
// several parallel file systems (Lustre, some NFS mounts), and our files are never
// read and written concurrently.
Handle make_fapl() {
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
#if H5_VERSION_GE(1, 10, 7)
  H5Pset_file_locking(fapl, false, true);
#else
  setenv("HDF5_USE_FILE_LOCKING", "FALSE", 0);
#endif
  return fapl;
}

// HDF5 looks for its superblock at 0, 512, 1024, 2048, ... (a user block may precede it).
bool has_hdf5_signature(const std::string& path) {
  static const char kSignature[8] = {'\x89', 'H', 'D', 'F', '\r', '\n', '\x1a', '\n'};
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  for (std::streamoff offset = 0; offset + 8 <= size; offset = offset == 0 ? 512 : offset * 2) {
    char buf[8];
    in.seekg(offset);
    if (!in.read(buf, 8)) return false;
    if (std::memcmp(buf, kSignature, 8) == 0) return true;
  }
  return false;
}

std::string errno_text(int err) { return std::strerror(err); }

template <class T>
struct Traits;
template <>
struct Traits<float> {
  static hid_t mem() { return H5T_NATIVE_FLOAT; }
  static hid_t disk() { return H5T_IEEE_F32LE; }
};
template <>
struct Traits<double> {
  static hid_t mem() { return H5T_NATIVE_DOUBLE; }
  static hid_t disk() { return H5T_IEEE_F64LE; }
};
template <>
struct Traits<int64_t> {
  static hid_t mem() { return H5T_NATIVE_INT64; }
  static hid_t disk() { return H5T_STD_I64LE; }
};
template <>
struct Traits<int32_t> {
  static hid_t mem() { return H5T_NATIVE_INT32; }
  static hid_t disk() { return H5T_STD_I32LE; }
};
template <>
struct Traits<uint8_t> {
  static hid_t mem() { return H5T_NATIVE_UINT8; }
  static hid_t disk() { return H5T_STD_U8LE; }
};
template <>
struct Traits<uint64_t> {
  static hid_t mem() { return H5T_NATIVE_UINT64; }
  static hid_t disk() { return H5T_STD_U64LE; }
};

template <class T>
std::string expected_name() {
  if constexpr (std::is_floating_point_v<T>) {
    return "float" + std::to_string(8 * sizeof(T));
  } else {
    return (std::is_signed_v<T> ? "int" : "uint") + std::to_string(8 * sizeof(T));
  }
}

// Whether values of the stored type can be read into T without changing any value.
template <class T>
bool type_accepted(hid_t stored, Conversion conversion) {
  const H5T_class_t cls = H5Tget_class(stored);
  const size_t size = H5Tget_size(stored);
  if constexpr (std::is_floating_point_v<T>) {
    return cls == H5T_FLOAT && size == sizeof(T);
  } else {
    if (cls != H5T_INTEGER) return false;
    const bool stored_signed = H5Tget_sign(stored) != H5T_SGN_NONE;
    if (conversion == Conversion::kExact) return size == sizeof(T) && stored_signed == std::is_signed_v<T>;
    if (stored_signed) return std::is_signed_v<T> && size <= sizeof(T);
    return std::is_signed_v<T> ? size < sizeof(T) : size <= sizeof(T);
  }
}

template <class T>
void check_dataset_type(hid_t dset, const std::string& where, Conversion conversion) {
  Handle type(H5Dget_type(dset), H5Tclose);
  if (!type.valid()) fail(dset, "cannot read the type of " + where);
  if (!type_accepted<T>(type, conversion)) {
    std::string expected = expected_name<T>();
    if (conversion == Conversion::kWidenInteger) expected += " (or a narrower integer type)";
    throw data_error(file_name_of(dset), where + " has type " + type_name(type) + ", expected " + expected);
  }
}

std::vector<hsize_t> space_dims(hid_t space) {
  const int rank = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> dims(rank > 0 ? rank : 0);
  if (rank > 0) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  return dims;
}

hsize_t product(const std::vector<hsize_t>& dims, size_t from = 0) {
  hsize_t n = 1;
  for (size_t i = from; i < dims.size(); ++i) n *= dims[i];
  return n;
}

std::string attr_where(hid_t obj, const std::string& name) {
  return "attribute '" + name + "' on " + object_path(obj, ".");
}

// Opens attribute `name` holding exactly one value; nullopt-like invalid Handle if absent.
Handle open_scalar_attr(hid_t obj, const std::string& name) {
  quiet();
  if (H5Aexists(obj, name.c_str()) <= 0) return Handle();
  Handle attr(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose);
  if (!attr.valid()) fail(obj, "cannot open " + attr_where(obj, name));
  Handle space(H5Aget_space(attr), H5Sclose);
  if (H5Sget_simple_extent_npoints(space) != 1)
    throw data_error(file_name_of(obj), attr_where(obj, name) + " must hold a single value");
  return attr;
}

void write_attr_raw(hid_t obj, const std::string& name, hid_t disk_type, hid_t mem_type, const void* value) {
  quiet();
  if (H5Aexists(obj, name.c_str()) > 0 && H5Adelete(obj, name.c_str()) < 0)
    fail(obj, "cannot replace " + attr_where(obj, name));
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attr(H5Acreate2(obj, name.c_str(), disk_type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!attr.valid()) fail(obj, "cannot create " + attr_where(obj, name));
  if (H5Awrite(attr, mem_type, value) < 0) fail(obj, "cannot write " + attr_where(obj, name));
}

}  // namespace

namespace {
// No HDF5 clean-up at process exit. Every file is closed by its RAII handle; the only
// handle that can outlive that is one whose close failed (a full disk while writing a
// checkpoint), and HDF5's exit-time close of such a file crashes inside the library
// (SIGSEGV in H5F__close_cb), turning a clean "exit 2" into a segfault. Must run before
// any other HDF5 call, hence a static initialiser.
const bool g_no_hdf5_atexit = (H5dont_atexit(), true);
}  // namespace

void quiet() {
  // Called on every entry rather than once: in thread-safe HDF5 builds the setting is
  // per thread, and it costs nothing.
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

void File::flush() {
  if (!valid()) return;
  if (H5Fflush(id(), H5F_SCOPE_GLOBAL) < 0) {
    std::string detail = h5_detail();
    throw data_error(path_, "cannot write (flush failed)" + detail);
  }
}

void File::close() {
  if (!valid()) return;
  if (H5Fclose(release()) < 0) {
    std::string detail = h5_detail();
    throw data_error(path_, "cannot write (close failed)" + detail);
  }
}

File open_read(const std::string& path) {
  quiet();
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) throw data_error(path, "no such file");
    throw data_error(path, "cannot access: " + errno_text(errno));
  }
  if (S_ISDIR(st.st_mode)) throw data_error(path, "is a directory, expected an HDF5 file");
  Handle fapl = make_fapl();
  const hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl);
  if (id < 0) {
    std::string detail = h5_detail();
    const int fd = ::open(path.c_str(), O_RDONLY);
    if (fd < 0) throw data_error(path, "cannot read: " + errno_text(errno));
    ::close(fd);
    if (!has_hdf5_signature(path)) throw data_error(path, "not an HDF5 file");
    throw data_error(path, "cannot be opened as HDF5 (damaged or truncated?)" + detail);
  }
  return File(id, path);
}

File create(const std::string& path) {
  quiet();
  // Probe with open(2) first: HDF5's own message for a missing or unwritable directory
  // does not say which, errno does.
  struct stat st {};
  const bool existed = ::stat(path.c_str(), &st) == 0;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT, 0666);
  if (fd < 0) throw data_error(path, "cannot create file: " + errno_text(errno));
  ::close(fd);
  Handle fapl = make_fapl();
  const hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  if (id < 0) {
    std::string detail = h5_detail();
    if (!existed) ::unlink(path.c_str());
    throw data_error(path, "cannot create HDF5 file" + detail);
  }
  return File(id, path);
}

std::string file_name_of(hid_t obj) {
  quiet();
  const ssize_t len = H5Fget_name(obj, nullptr, 0);
  if (len <= 0) return "";
  std::string name(static_cast<size_t>(len) + 1, '\0');
  H5Fget_name(obj, name.data(), name.size());
  name.resize(static_cast<size_t>(len));
  return name;
}

std::string object_path(hid_t loc, const std::string& name) {
  if (!name.empty() && name[0] == '/') return name;
  quiet();
  std::string base = "/";
  const ssize_t len = H5Iget_name(loc, nullptr, 0);
  if (len > 0) {
    base.assign(static_cast<size_t>(len) + 1, '\0');
    H5Iget_name(loc, base.data(), base.size());
    base.resize(static_cast<size_t>(len));
  }
  if (name.empty() || name == ".") return base;
  return base == "/" ? "/" + name : base + "/" + name;
}

std::string type_name(hid_t type) {
  const size_t bits = 8 * H5Tget_size(type);
  switch (H5Tget_class(type)) {
    case H5T_FLOAT:
      return "float" + std::to_string(bits);
    case H5T_INTEGER:
      return (H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int") + std::to_string(bits);
    case H5T_STRING:
      return "string";
    case H5T_COMPOUND:
      return "compound";
    case H5T_ENUM:
      return "enum";
    case H5T_ARRAY:
      return "array";
    case H5T_VLEN:
      return "variable-length sequence";
    case H5T_OPAQUE:
      return "opaque";
    case H5T_REFERENCE:
      return "reference";
    case H5T_BITFIELD:
      return "bitfield";
    case H5T_TIME:
      return "time";
    default:
      return "unknown";
  }
}

bool exists(hid_t loc, const std::string& path) {
  quiet();
  std::string prefix = !path.empty() && path[0] == '/' ? "/" : "";
  size_t pos = 0;
  while (pos < path.size()) {
    size_t next = path.find('/', pos);
    if (next == std::string::npos) next = path.size();
    if (next > pos) {
      if (!prefix.empty() && prefix.back() != '/') prefix += '/';
      prefix += path.substr(pos, next - pos);
      // Negative (an error, e.g. an intermediate component that is a dataset) counts as
      // absent.
      if (H5Lexists(loc, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    }
    pos = next + 1;
  }
  return true;
}

std::vector<std::string> list_datasets(hid_t loc, const std::string& group) {
  quiet();
  const std::string where = object_path(loc, group);
  if (!exists(loc, group)) throw data_error(file_name_of(loc), where + " does not exist");
  Handle g(H5Gopen2(loc, group.empty() ? "." : group.c_str(), H5P_DEFAULT), H5Gclose);
  if (!g.valid()) fail(loc, where + " is not a group");
  std::vector<std::string> names;
  const herr_t status = H5Lvisit(
      g, H5_INDEX_NAME, H5_ITER_INC,
      [](hid_t base, const char* name, const H5L_info_t* info, void* data) -> herr_t {
        if (info->type != H5L_TYPE_HARD) return 0;
        const hid_t obj = H5Oopen(base, name, H5P_DEFAULT);
        if (obj < 0) return 0;
        if (H5Iget_type(obj) == H5I_DATASET) static_cast<std::vector<std::string>*>(data)->push_back(name);
        H5Oclose(obj);
        return 0;
      },
      &names);
  if (status < 0) fail(loc, "cannot list " + where);
  std::sort(names.begin(), names.end());
  return names;
}

Handle open_dataset(hid_t loc, const std::string& name) {
  quiet();
  const std::string where = object_path(loc, name);
  if (!exists(loc, name)) throw data_error(file_name_of(loc), "has no " + where + " dataset");
  Handle obj(H5Oopen(loc, name.c_str(), H5P_DEFAULT), H5Oclose);
  if (!obj.valid()) fail(loc, "cannot open " + where);
  if (H5Iget_type(obj) != H5I_DATASET) throw data_error(file_name_of(loc), where + " is not a dataset");
  return obj;
}

std::vector<hsize_t> dims_of(hid_t loc, const std::string& name) {
  Handle dset = open_dataset(loc, name);
  Handle space(H5Dget_space(dset), H5Sclose);
  if (!space.valid()) fail(loc, "cannot read the shape of " + object_path(loc, name));
  return space_dims(space);
}

template <class T>
void write_array(hid_t loc, const std::string& name, const T* data, const std::vector<hsize_t>& dims,
                 hsize_t chunk_rows, int deflate) {
  static_assert(kSupportedElement<T>, "unsupported element type");
  quiet();
  if (deflate < 0 || deflate > 9) throw std::invalid_argument("h5::write_array: deflate level must be 0..9");
  const std::string where = object_path(loc, name);
  if (exists(loc, name)) throw data_error(file_name_of(loc), where + " already exists");

  const int rank = static_cast<int>(dims.size());
  Handle space(rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims.data(), nullptr), H5Sclose);
  if (!space.valid()) fail(loc, "cannot create the dataspace of " + where);
  Handle lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(lcpl, 1);
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);

  const hsize_t total = product(dims);
  // A chunk may not exceed a fixed dimension, so empty arrays stay contiguous.
  if (rank > 0 && total > 0 && (chunk_rows > 0 || deflate > 0)) {
    const hsize_t row_bytes = sizeof(T) * product(dims, 1);
    hsize_t rows = chunk_rows > 0 ? chunk_rows : std::max<hsize_t>(1, (hsize_t{1} << 20) / row_bytes);
    std::vector<hsize_t> chunk = dims;
    chunk[0] = std::min(rows, dims[0]);
    if (H5Pset_chunk(dcpl, rank, chunk.data()) < 0) fail(loc, "cannot chunk " + where);
    if (deflate > 0 && H5Pset_deflate(dcpl, static_cast<unsigned>(deflate)) < 0) fail(loc, "cannot compress " + where);
  }

  Handle dset(H5Dcreate2(loc, name.c_str(), Traits<T>::disk(), space, lcpl, dcpl, H5P_DEFAULT), H5Dclose);
  if (!dset.valid()) fail(loc, "cannot create dataset " + where);
  if (total > 0 && H5Dwrite(dset, Traits<T>::mem(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
    fail(loc, "cannot write " + where);
}

template <class T>
void check_type(hid_t loc, const std::string& name, Conversion conversion) {
  static_assert(kSupportedElement<T>, "unsupported element type");
  if (conversion == Conversion::kWidenInteger && !std::is_integral_v<T>)
    throw std::invalid_argument("h5::check_type: integer widening needs an integer T");
  Handle dset = open_dataset(loc, name);
  check_dataset_type<T>(dset, object_path(loc, name), conversion);
}

template <class T>
std::vector<T> read_array(hid_t loc, const std::string& name, std::vector<hsize_t>* dims) {
  static_assert(kSupportedElement<T>, "unsupported element type");
  const std::string where = object_path(loc, name);
  Handle dset = open_dataset(loc, name);
  check_dataset_type<T>(dset, where, Conversion::kExact);
  Handle space(H5Dget_space(dset), H5Sclose);
  if (!space.valid()) fail(loc, "cannot read the shape of " + where);
  const std::vector<hsize_t> shape = space_dims(space);
  const hssize_t npoints = H5Sget_simple_extent_npoints(space);
  std::vector<T> out(npoints > 0 ? static_cast<size_t>(npoints) : 0);
  if (!out.empty() && H5Dread(dset, Traits<T>::mem(), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0)
    fail(loc, "cannot read " + where);
  if (dims != nullptr) *dims = shape;
  return out;
}

template <class T>
std::vector<T> read_row_range(hid_t loc, const std::string& name, hsize_t begin, hsize_t end, Conversion conversion) {
  static_assert(kSupportedElement<T>, "unsupported element type");
  if (conversion == Conversion::kWidenInteger && !std::is_integral_v<T>)
    throw std::invalid_argument("h5::read_row_range: integer widening needs an integer T");
  const std::string where = object_path(loc, name);
  Handle dset = open_dataset(loc, name);
  check_dataset_type<T>(dset, where, conversion);
  Handle file_space(H5Dget_space(dset), H5Sclose);
  if (!file_space.valid()) fail(loc, "cannot read the shape of " + where);
  const std::vector<hsize_t> dims = space_dims(file_space);
  if (dims.empty()) throw data_error(file_name_of(loc), where + " is a scalar, expected an array of rows");
  if (begin > end || end > dims[0])
    throw std::out_of_range("h5::read_row_range: rows [" + std::to_string(begin) + ", " + std::to_string(end) +
                            ") outside [0, " + std::to_string(dims[0]) + ") of " + where);
  std::vector<hsize_t> start(dims.size(), 0), count = dims;
  start[0] = begin;
  count[0] = end - begin;
  std::vector<T> out(static_cast<size_t>(product(count)));
  if (out.empty()) return out;
  if (H5Sselect_hyperslab(file_space, H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr) < 0)
    fail(loc, "cannot select rows of " + where);
  Handle mem_space(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr), H5Sclose);
  if (H5Dread(dset, Traits<T>::mem(), mem_space, file_space, H5P_DEFAULT, out.data()) < 0)
    fail(loc, "cannot read rows " + std::to_string(begin) + ".." + std::to_string(end) + " of " + where);
  return out;
}

#define MIXVAE_H5_INSTANTIATE(T)                                                                                \
  template void write_array<T>(hid_t, const std::string&, const T*, const std::vector<hsize_t>&, hsize_t, int); \
  template std::vector<T> read_array<T>(hid_t, const std::string&, std::vector<hsize_t>*);                      \
  template std::vector<T> read_row_range<T>(hid_t, const std::string&, hsize_t, hsize_t, Conversion);           \
  template void check_type<T>(hid_t, const std::string&, Conversion);
MIXVAE_H5_INSTANTIATE(float)
MIXVAE_H5_INSTANTIATE(double)
MIXVAE_H5_INSTANTIATE(int64_t)
MIXVAE_H5_INSTANTIATE(int32_t)
MIXVAE_H5_INSTANTIATE(uint8_t)
MIXVAE_H5_INSTANTIATE(uint64_t)
#undef MIXVAE_H5_INSTANTIATE

void write_attr(hid_t obj, const std::string& name, const std::string& value) {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5T_CSET_UTF8);
  const char* p = value.c_str();
  write_attr_raw(obj, name, type, type, &p);
}

void write_attr(hid_t obj, const std::string& name, const char* value) { write_attr(obj, name, std::string(value)); }

void write_attr(hid_t obj, const std::string& name, int64_t value) {
  write_attr_raw(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

void write_attr(hid_t obj, const std::string& name, double value) {
  write_attr_raw(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

bool has_attr(hid_t obj, const std::string& name) {
  quiet();
  return H5Aexists(obj, name.c_str()) > 0;
}

std::optional<std::string> read_attr_string(hid_t obj, const std::string& name) {
  Handle attr = open_scalar_attr(obj, name);
  if (!attr.valid()) return std::nullopt;
  Handle type(H5Aget_type(attr), H5Tclose);
  if (H5Tget_class(type) != H5T_STRING)
    throw data_error(file_name_of(obj), attr_where(obj, name) + " has type " + type_name(type) + ", expected a string");
  Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_cset(mem, H5Tget_cset(type));
  if (H5Tis_variable_str(type) > 0) {
    H5Tset_size(mem, H5T_VARIABLE);
    char* p = nullptr;
    if (H5Aread(attr, mem, &p) < 0) fail(obj, "cannot read " + attr_where(obj, name));
    std::string value = p != nullptr ? p : "";
    H5free_memory(p);
    return value;
  }
  // Fixed length: let HDF5 turn any padding into a terminating NUL.
  const size_t size = H5Tget_size(type);
  H5Tset_size(mem, size + 1);
  H5Tset_strpad(mem, H5T_STR_NULLTERM);
  std::vector<char> buf(size + 1, '\0');
  if (H5Aread(attr, mem, buf.data()) < 0) fail(obj, "cannot read " + attr_where(obj, name));
  return std::string(buf.data());
}

std::optional<int64_t> read_attr_int(hid_t obj, const std::string& name) {
  Handle attr = open_scalar_attr(obj, name);
  if (!attr.valid()) return std::nullopt;
  Handle type(H5Aget_type(attr), H5Tclose);
  if (H5Tget_class(type) != H5T_INTEGER)
    throw data_error(file_name_of(obj),
                     attr_where(obj, name) + " has type " + type_name(type) + ", expected an integer");
  if (H5Tget_sign(type) == H5T_SGN_NONE && H5Tget_size(type) >= 8) {
    uint64_t value = 0;
    if (H5Aread(attr, H5T_NATIVE_UINT64, &value) < 0) fail(obj, "cannot read " + attr_where(obj, name));
    if (value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      throw data_error(file_name_of(obj),
                       attr_where(obj, name) + " = " + std::to_string(value) + " does not fit int64");
    return static_cast<int64_t>(value);
  }
  int64_t value = 0;
  if (H5Aread(attr, H5T_NATIVE_INT64, &value) < 0) fail(obj, "cannot read " + attr_where(obj, name));
  return value;
}

std::optional<double> read_attr_double(hid_t obj, const std::string& name) {
  Handle attr = open_scalar_attr(obj, name);
  if (!attr.valid()) return std::nullopt;
  Handle type(H5Aget_type(attr), H5Tclose);
  const H5T_class_t cls = H5Tget_class(type);
  if (cls != H5T_FLOAT && cls != H5T_INTEGER)
    throw data_error(file_name_of(obj), attr_where(obj, name) + " has type " + type_name(type) + ", expected a number");
  double value = 0;
  if (H5Aread(attr, H5T_NATIVE_DOUBLE, &value) < 0) fail(obj, "cannot read " + attr_where(obj, name));
  return value;
}

}  // namespace mixvae::data::h5
