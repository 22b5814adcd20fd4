#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "eval/metrics.h"

namespace mixvae::eval {
namespace {

// Best total weight over all matchings of min(rows, cols) pairs: pad to n x n with zeros
// and try every permutation (an injective map from the smaller side when rows != cols).
double brute_force_max(const std::vector<double>& w, int64_t rows, int64_t cols) {
  const int64_t n = std::max(rows, cols);
  std::vector<int64_t> perm(static_cast<size_t>(n));
  std::iota(perm.begin(), perm.end(), 0);
  double best = -1e300;
  do {
    double s = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t c = perm[static_cast<size_t>(r)];
      if (c < cols) s += w[static_cast<size_t>(r * cols + c)];
    }
    best = std::max(best, s);
  } while (std::next_permutation(perm.begin(), perm.end()));
  return best;
}

// Checks that `match` is a valid assignment (distinct in-range columns, exactly
// min(rows, cols) rows assigned) and returns its total weight.
double assignment_weight(const std::vector<int64_t>& match, const std::vector<double>& w, int64_t rows, int64_t cols) {
  EXPECT_EQ(match.size(), static_cast<size_t>(rows));
  std::vector<char> used(static_cast<size_t>(cols), 0);
  int64_t assigned = 0;
  double s = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t c = match[static_cast<size_t>(r)];
    if (c == -1) continue;
    EXPECT_GE(c, 0);
    EXPECT_LT(c, cols);
    if (c < 0 || c >= cols) continue;
    EXPECT_FALSE(used[static_cast<size_t>(c)]) << "column " << c << " assigned twice";
    used[static_cast<size_t>(c)] = 1;
    ++assigned;
    s += w[static_cast<size_t>(r * cols + c)];
  }
  EXPECT_EQ(assigned, std::min(rows, cols));
  return s;
}

Contingency random_table(std::mt19937& rng, int64_t K, int64_t C) {
  Contingency t(K, C);
  // Small counts give many ties, which is where assignment bugs hide.
  std::uniform_int_distribution<int64_t> small(0, 6), large(0, 1000);
  const bool use_large = std::uniform_int_distribution<int>(0, 3)(rng) == 0;
  for (auto& v : t.counts) v = use_large ? large(rng) : small(rng);
  return t;
}

double brute_force_acc(const Contingency& t) {
  std::vector<double> w(t.counts.begin(), t.counts.end());
  return brute_force_max(w, t.rows, t.cols) / static_cast<double>(t.total());
}

TEST(HungarianMax, MatchesBruteForceOnRandomRealMatrices) {
  std::mt19937 rng(12345);
  std::uniform_real_distribution<double> val(-10.0, 10.0);
  for (int64_t rows = 1; rows <= 7; ++rows) {
    for (int64_t cols = 1; cols <= 7; ++cols) {
      for (int trial = 0; trial < 8; ++trial) {
        std::vector<double> w(static_cast<size_t>(rows * cols));
        for (auto& x : w) x = val(rng);
        const auto match = hungarian_max(w, rows, cols);
        EXPECT_NEAR(assignment_weight(match, w, rows, cols), brute_force_max(w, rows, cols), 1e-9)
            << rows << "x" << cols << " trial " << trial;
      }
    }
  }
}

TEST(HungarianMax, EdgeCases) {
  EXPECT_TRUE(hungarian_max({}, 0, 0).empty());
  EXPECT_EQ(hungarian_max({}, 3, 0), (std::vector<int64_t>{-1, -1, -1}));
  EXPECT_EQ(hungarian_max({5.0}, 1, 1), (std::vector<int64_t>{0}));
  // 1 x 3: the row takes the largest column even though all are negative.
  EXPECT_EQ(hungarian_max({-3.0, -1.0, -2.0}, 1, 3), (std::vector<int64_t>{1}));
  // 3 x 1: only the best row is assigned.
  EXPECT_EQ(hungarian_max({1.0, 7.0, 2.0}, 3, 1), (std::vector<int64_t>{-1, 0, -1}));
  EXPECT_THROW(hungarian_max({1.0, 2.0}, 2, 2), std::invalid_argument);
  EXPECT_THROW(hungarian_max({1.0, std::nan("")}, 1, 2), std::invalid_argument);
}

TEST(ClusteringAcc, MatchesBruteForceSquare) {
  std::mt19937 rng(2024);
  for (int64_t k = 2; k <= 7; ++k) {
    for (int trial = 0; trial < 40; ++trial) {
      const Contingency t = random_table(rng, k, k);
      if (t.total() == 0) continue;
      EXPECT_DOUBLE_EQ(clustering_acc(t), brute_force_acc(t)) << "K=C=" << k;
    }
  }
}

TEST(ClusteringAcc, MatchesBruteForceRectangular) {
  std::mt19937 rng(777);
  const std::pair<int64_t, int64_t> shapes[] = {{3, 5}, {6, 4}, {2, 7}, {7, 3}, {1, 4}, {5, 1}};
  for (const auto& [k, c] : shapes) {
    for (int trial = 0; trial < 40; ++trial) {
      const Contingency t = random_table(rng, k, c);
      if (t.total() == 0) continue;
      EXPECT_DOUBLE_EQ(clustering_acc(t), brute_force_acc(t)) << "K=" << k << " C=" << c;
    }
  }
}

// Reference values: scikit-learn 1.2.1 normalized_mutual_info_score(truth, pred) and
// adjusted_rand_score(truth, pred) (defaults, average_method='arithmetic'); ACC from
// scipy 1.10.1 linear_sum_assignment on the negated K x C contingency table.
struct Case {
  const char* name;
  std::vector<int64_t> pred, truth;
  int64_t K, C;
  double nmi, ari, acc;
};

const std::vector<Case>& sklearn_cases() {
  static const std::vector<Case> cases = {
      {"perfect", {0, 0, 1, 1, 2, 2, 3}, {0, 0, 1, 1, 2, 2, 3}, 4, 4, 1.0, 1.0, 1.0},
      {"permuted", {2, 2, 2, 0, 0, 1, 1, 1, 1}, {0, 0, 0, 1, 1, 2, 2, 2, 2}, 3, 3, 1.0, 1.0, 1.0},
      {"pred_constant", {0, 0, 0, 0, 0}, {0, 1, 0, 1, 2}, 1, 3, 0.0, 0.0, 0.4},
      // Label values 1 and 2 in tables of K=2, C=3: the unused rows/columns are empty.
      {"both_constant", {1, 1, 1, 1}, {2, 2, 2, 2}, 2, 3, 1.0, 1.0, 1.0},
      {"singletons", {0, 1, 2, 3, 4}, {4, 3, 2, 1, 0}, 5, 5, 1.0, 1.0, 1.0},
      {"anti", {0, 0, 1, 1}, {0, 1, 0, 1}, 2, 2, 0.0, -0.5, 0.5},
      {"k4_c3",
       {0, 0, 1, 1, 2, 2, 3, 3, 0, 1, 2, 3},
       {0, 0, 0, 1, 1, 1, 2, 2, 2, 0, 1, 2},
       4,
       3,
       0.6280760724651602,
       0.40310077519379844,
       0.6666666666666666},
      // K=4 but cluster 3 is never predicted.
      {"k4_c5_empty",
       {0, 1, 1, 2, 0, 0, 1, 2, 2, 1, 0, 0, 2, 1, 1, 2, 0, 1, 2, 2},
       {0, 1, 2, 3, 4, 0, 1, 1, 3, 3, 4, 0, 2, 2, 1, 3, 4, 0, 3, 2},
       4,
       5,
       0.4511193286638574,
       0.2219020172910663,
       0.5},
      {"k6_c2",
       {0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 5, 5, 0, 0},
       {0, 0, 0, 1, 1, 1, 0, 1, 0, 1, 1, 1, 1, 0, 0, 1},
       6,
       2,
       0.2625966255336675,
       0.04844290657439446,
       0.375},
  };
  return cases;
}

TEST(Metrics, MatchSklearnAndScipy) {
  for (const Case& c : sklearn_cases()) {
    const Contingency t = Contingency::from_labels(c.pred, c.truth, c.K, c.C);
    EXPECT_EQ(t.total(), static_cast<int64_t>(c.pred.size())) << c.name;
    EXPECT_NEAR(nmi(t), c.nmi, 1e-12) << c.name;
    EXPECT_NEAR(ari(t), c.ari, 1e-12) << c.name;
    EXPECT_NEAR(clustering_acc(t), c.acc, 1e-12) << c.name;
    const Scores s = score(t);
    EXPECT_EQ(s.nmi, nmi(t));
    EXPECT_EQ(s.ari, ari(t));
    EXPECT_EQ(s.acc, clustering_acc(t));
    EXPECT_EQ(s.purity, purity(t));
  }
}

TEST(Metrics, SymmetricMetricsDoNotDependOnOrientation) {
  for (const Case& c : sklearn_cases()) {
    const Contingency t = Contingency::from_labels(c.pred, c.truth, c.K, c.C);
    const Contingency tt = Contingency::from_labels(c.truth, c.pred, c.C, c.K);
    EXPECT_NEAR(nmi(t), nmi(tt), 1e-12) << c.name;
    EXPECT_NEAR(ari(t), ari(tt), 1e-12) << c.name;
    EXPECT_NEAR(clustering_acc(t), clustering_acc(tt), 1e-12) << c.name;
  }
}

TEST(Metrics, Purity) {
  // Clusters: {0,0,1} -> 2, {1,1,1,2} -> 3, {2} -> 1; total 8.
  const Contingency t = Contingency::from_labels({0, 0, 0, 1, 1, 1, 1, 2}, {0, 0, 1, 1, 1, 1, 2, 2}, 3, 3);
  EXPECT_DOUBLE_EQ(purity(t), 6.0 / 8.0);
  // Purity rewards splitting: every sample its own cluster is perfectly pure.
  EXPECT_DOUBLE_EQ(purity(Contingency::from_labels({0, 1, 2, 3}, {0, 0, 1, 1}, 4, 2)), 1.0);
}

TEST(Metrics, EmptyTable) {
  const Contingency t(3, 4);
  EXPECT_EQ(t.total(), 0);
  EXPECT_EQ(clustering_acc(t), 0.0);
  EXPECT_EQ(purity(t), 0.0);
  EXPECT_EQ(nmi(t), 1.0);  // sklearn's convention for empty labelings
  EXPECT_EQ(ari(t), 1.0);
}

TEST(Metrics, LargeCountsStayFinite) {
  // n = 2e5: pair products reach n^4 = 1.6e21, past int64.
  Contingency t(2, 2);
  t.at(0, 0) = 60000;
  t.at(0, 1) = 40000;
  t.at(1, 0) = 30000;
  t.at(1, 1) = 70000;
  const Scores s = score(t);
  EXPECT_DOUBLE_EQ(s.acc, 130000.0 / 200000.0);
  EXPECT_GT(s.ari, 0.0);
  EXPECT_LT(s.ari, 1.0);
  EXPECT_GT(s.nmi, 0.0);
  EXPECT_LT(s.nmi, 1.0);
}

TEST(Contingency, CountsAndAddAccumulates) {
  Contingency t = Contingency::from_labels({0, 1, 1, 2}, {1, 0, 0, 1}, 3, 2);
  EXPECT_EQ(t.counts, (std::vector<int64_t>{0, 1, 2, 0, 0, 1}));
  const int64_t pred[] = {2, 0};
  const int64_t truth[] = {0, 0};
  t.add(pred, truth, 2);
  EXPECT_EQ(t.counts, (std::vector<int64_t>{1, 1, 2, 0, 1, 1}));
  EXPECT_EQ(t.total(), 6);
  EXPECT_EQ(t.at(1, 0), 2);
  EXPECT_THROW(t.at(3, 0), std::out_of_range);
  EXPECT_THROW(t.at(0, -1), std::out_of_range);
}

TEST(Contingency, OutOfRangeLabelsThrow) {
  EXPECT_THROW(Contingency::from_labels({0, 3}, {0, 0}, 3, 2), std::invalid_argument);
  EXPECT_THROW(Contingency::from_labels({0, -1}, {0, 0}, 3, 2), std::invalid_argument);
  EXPECT_THROW(Contingency::from_labels({0, 1}, {0, 2}, 3, 2), std::invalid_argument);
  EXPECT_THROW(Contingency::from_labels({0, 1}, {-5, 0}, 3, 2), std::invalid_argument);
  EXPECT_THROW(Contingency::from_labels({0, 1}, {0}, 3, 2), std::invalid_argument);
  EXPECT_THROW(Contingency(0, 2), std::invalid_argument);
  try {
    Contingency::from_labels({0, 1, 7}, {0, 0, 0}, 3, 2);
    FAIL() << "expected a throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("predicted cluster 7 at sample 2"), std::string::npos) << e.what();
  }
  // A bad label leaves the table untouched.
  Contingency t(2, 2);
  const int64_t pred[] = {0, 1, 2};
  const int64_t truth[] = {0, 1, 0};
  EXPECT_THROW(t.add(pred, truth, 3), std::invalid_argument);
  EXPECT_EQ(t.total(), 0);
}

TEST(Metrics, MalformedTableThrows) {
  Contingency t(2, 2);
  t.counts.pop_back();
  EXPECT_THROW(nmi(t), std::invalid_argument);
  EXPECT_THROW(clustering_acc(t), std::invalid_argument);
  Contingency neg(2, 2);
  neg.at(0, 0) = -1;
  EXPECT_THROW(ari(neg), std::invalid_argument);
  EXPECT_THROW(purity(neg), std::invalid_argument);
}

}  // namespace
}  // namespace mixvae::eval
