#pragma once
// MNIST converter: the four official IDX files -> one mixvae dataset file.
#include <string>

namespace mixvae::data {

// Converts train (60,000) then t10k (10,000) images into /features float32 [70000, 784]
// with pixels/255 in [0, 1] (as VaDE does), /labels int64, and provenance attributes
// (SHA-256 of each raw file, num_train, num_test). Looks in raw_dir for
// train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
// t10k-labels-idx1-ubyte, each optionally ".gz" and also with the ".idx3-ubyte" dot
// spelling. DataError naming the file for anything missing or malformed; nothing is left
// at out_path on error.
void prepare_mnist(const std::string& raw_dir, const std::string& out_path);

// True if all four files are present in `dir` (under any accepted spelling).
bool find_mnist_dir(const std::string& dir);

}  // namespace mixvae::data
