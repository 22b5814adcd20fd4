#pragma once
// NumPy .npy files (format versions 1.0, 2.0 and 3.0) and the `npy` converter for users'
// own data: a float matrix [N, D] plus optional integer labels [N] in a second file.
//
// Layout: "\x93NUMPY", major and minor version bytes, the header length (uint16 LE in
// 1.0, uint32 LE in 2.0/3.0), an ASCII (UTF-8 in 3.0) Python dict literal
// {'descr': '<f4', 'fortran_order': False, 'shape': (N, D), } padded with blanks and
// ending in "\n", then the raw elements in C (row-major) or Fortran (column-major) order.
#include <cstdint>
#include <string>
#include <vector>

namespace mixvae::data {

struct NpyArray {
  std::string path;
  std::string descr;        // e.g. "<f4", "|u1"
  char kind = 0;            // 'f' float, 'i' signed, 'u' unsigned integer
  int item_size = 0;        // bytes per element
  bool swap_bytes = false;  // stored big-endian
  bool fortran_order = false;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;  // prod(shape) * item_size bytes, as stored
};

// Reads and checks a whole .npy file: magic, version, header dict (descr, fortran_order,
// shape), supported dtype (float32/64, signed and unsigned integers of 1-8 bytes, either
// byte order), and exactly prod(shape) elements of payload (a short file is
// "truncated: expected X bytes of data, found Y"). DataError naming the file otherwise.
NpyArray read_npy(const std::string& path);

// The array as a row-major float32 [n, d] matrix: 2-D arrays only, C or Fortran order,
// float or integer dtypes. DataError naming the file for another rank, NaN/Inf (first
// bad row and column named) or values beyond float32.
std::vector<float> npy_matrix(const NpyArray& a, int64_t* n, int64_t* d);

// The array as labels: an integer dtype of shape [N] or [N, 1], values >= 0. DataError
// naming the file otherwise (a float array is refused: labels are class ids).
std::vector<int64_t> npy_labels(const NpyArray& a);

// The `npy` converter: features from `features_path`, labels from `labels_path` (empty:
// unlabelled), num_classes = max label + 1. The dataset's name is `name`, or the stem
// of the features file. Records the SHA-256 and dtype of each input.
void prepare_npy(const std::string& features_path, const std::string& labels_path, const std::string& name,
                 const std::string& out_path);

}  // namespace mixvae::data
