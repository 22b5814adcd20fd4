#pragma once
// UCI "Human Activity Recognition Using Smartphones" converter (the set the VaDE paper
// calls HHAR) -> one mixvae dataset file.
#include <cstdint>
#include <string>

namespace mixvae::data {

inline constexpr int64_t kHarFeatures = 561;
inline constexpr int64_t kHarClasses = 6;
// VaDE's code keeps the first 10,200 of the 10,299 rows (HAR.mat, X[:10200]).
inline constexpr int64_t kHarVadeRows = 10200;

// Reads train/X_train.txt, train/y_train.txt, test/X_test.txt and test/y_test.txt (each
// optionally ".gz") below raw_dir, or below raw_dir/"UCI HAR Dataset" (the folder the
// official zip unpacks to). Features: 561 whitespace-separated numbers per line (leading
// blanks and scientific notation with 3-digit exponents, as published), already scaled
// to [-1, 1] by the publishers and stored as they are; labels 1-6 (WALKING ... LAYING)
// stored as 0-5. Train rows then test rows (10,299 in all). first > 0 keeps only the
// first `first` rows (10200 = VaDE); UsageError if there are fewer rows than that.
// DataError naming the file (and line) for a missing file, a line with the wrong number
// of values, a value that is not a finite number, a label outside 1-6 or a label file
// whose line count differs from its feature file's. Nothing is left at out_path on error.
void prepare_har(const std::string& raw_dir, const std::string& out_path, int64_t first = 0);

}  // namespace mixvae::data
