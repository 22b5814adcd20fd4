// Tests of the synthetic Gaussian-mixture data set (src/data/synthetic).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "core/errors.h"
#include "data/schema.h"
#include "data/synthetic.h"
#include "test_util.h"

namespace mixvae::data {
namespace {

namespace fs = std::filesystem;

using mixvae::test::TempDir;

Shard load(const std::string& path, DatasetInfo* info_out = nullptr) {
  const DatasetInfo info = inspect(path);
  if (info_out != nullptr) *info_out = info;
  return read_rows(info, 0, info.n);
}

TEST(Synthetic, SameSeedSameDataOtherSeedOtherData) {
  TempDir dir;
  prepare_synthetic(dir.file("a.h5"), 200, 16, 4, 7);
  prepare_synthetic(dir.file("b.h5"), 200, 16, 4, 7);
  prepare_synthetic(dir.file("c.h5"), 200, 16, 4, 8);
  const Shard a = load(dir.file("a.h5")), b = load(dir.file("b.h5")), c = load(dir.file("c.h5"));
  EXPECT_EQ(a.x, b.x);
  EXPECT_EQ(a.y, b.y);
  EXPECT_NE(a.x, c.x);
  EXPECT_NE(a.y, c.y);
}

TEST(Synthetic, LabelsAreBalancedAndShuffled) {
  TempDir dir;
  prepare_synthetic(dir.file("s.h5"), 103, 5, 4, 1);
  DatasetInfo info;
  const Shard s = load(dir.file("s.h5"), &info);
  EXPECT_EQ(info.num_classes, 4);
  std::vector<int> counts(4, 0);
  for (int64_t y : s.y) {
    ASSERT_GE(y, 0);
    ASSERT_LT(y, 4);
    ++counts[y];
  }
  EXPECT_EQ(counts, (std::vector<int>{26, 26, 26, 25}));
  bool in_order = true;
  for (size_t i = 0; i < s.y.size(); ++i) in_order = in_order && s.y[i] == static_cast<int64_t>(i % 4);
  EXPECT_FALSE(in_order);
}

TEST(Synthetic, ValuesAreFiniteAndInUnitInterval) {
  TempDir dir;
  prepare_synthetic(dir.file("v.h5"), 500, 64, 10, 3);
  DatasetInfo info;
  const Shard s = load(dir.file("v.h5"), &info);
  EXPECT_EQ(info.n, 500);
  EXPECT_EQ(info.d, 64);
  EXPECT_EQ(info.name, "synthetic");
  EXPECT_NE(info.preprocessing.find("sigmoid"), std::string::npos);
  float lo = 1, hi = 0;
  for (float v : s.x) {
    ASSERT_TRUE(std::isfinite(v));
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  EXPECT_GE(lo, 0.0f);
  EXPECT_LE(hi, 1.0f);
  EXPECT_LT(lo, 0.2f);  // the range is used, not a narrow band around 0.5
  EXPECT_GT(hi, 0.8f);
}

// The clusters stay apart in data space: assigning each sample to the nearest class mean
// recovers nearly every label.
TEST(Synthetic, ClustersAreSeparatedInDataSpace) {
  TempDir dir;
  const int64_t n = 1000, d = 20, k = 5;
  prepare_synthetic(dir.file("k.h5"), n, d, k, 11);
  const Shard s = load(dir.file("k.h5"));
  std::vector<double> means(k * d, 0.0);
  std::vector<int> counts(k, 0);
  for (int64_t i = 0; i < n; ++i) {
    ++counts[s.y[i]];
    for (int64_t c = 0; c < d; ++c) means[s.y[i] * d + c] += s.x[i * d + c];
  }
  for (int64_t j = 0; j < k; ++j)
    for (int64_t c = 0; c < d; ++c) means[j * d + c] /= counts[j];
  int correct = 0;
  for (int64_t i = 0; i < n; ++i) {
    int64_t best = -1;
    double best_dist = std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < k; ++j) {
      double dist = 0;
      for (int64_t c = 0; c < d; ++c) dist += std::pow(s.x[i * d + c] - means[j * d + c], 2);
      if (dist < best_dist) best_dist = dist, best = j;
    }
    correct += best == s.y[i];
  }
  EXPECT_GT(correct, 0.95 * n);
}

TEST(Synthetic, BadSizesAreUsageErrors) {
  TempDir dir;
  EXPECT_THROW(prepare_synthetic(dir.file("x.h5"), 10, 4, 1, 0), UsageError);
  EXPECT_THROW(prepare_synthetic(dir.file("x.h5"), 3, 4, 4, 0), UsageError);
  EXPECT_THROW(prepare_synthetic(dir.file("x.h5"), 10, 0, 2, 0), UsageError);
  EXPECT_FALSE(fs::exists(dir.file("x.h5")));
  prepare_synthetic(dir.file("x.h5"), 2, 1, 2, 0);  // the smallest valid one
  EXPECT_EQ(inspect(dir.file("x.h5")).n, 2);
}

}  // namespace
}  // namespace mixvae::data
