#pragma once
// Clustering quality metrics computed from a cluster x class contingency table.
//
// Everything goes through the table (not the label vectors) because the table is what
// ranks can sum cheaply: each rank counts its shard, the flat `counts` buffer is
// all-reduced, and every metric is then a function of the global table.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace mixvae::eval {

struct Contingency {
  int64_t rows = 0;             // K: number of predicted clusters
  int64_t cols = 0;             // C: number of true classes
  std::vector<int64_t> counts;  // row-major rows x cols; counts[k*cols+c]

  Contingency() = default;
  // A K x C table of zeros. Throws std::invalid_argument unless K >= 1 and C >= 1.
  Contingency(int64_t K, int64_t C);

  // Bounds-checked element access (std::out_of_range).
  int64_t& at(int64_t k, int64_t c);
  int64_t at(int64_t k, int64_t c) const;
  // Number of samples counted.
  int64_t total() const;

  // Throws std::invalid_argument if the vectors differ in length or a label is out of
  // range (pred must be in [0,K), truth in [0,C)).
  static Contingency from_labels(const std::vector<int64_t>& pred, const std::vector<int64_t>& truth, int64_t K,
                                 int64_t C);
  // Counts n more samples. All labels are checked before any is counted, so a throw
  // (std::invalid_argument) leaves the table unchanged.
  void add(const int64_t* pred, const int64_t* truth, size_t n);
};

// Maximum-weight assignment on a rows x cols matrix (row-major, finite values). Returns,
// for each row, its column or -1. As with scipy's linear_sum_assignment, exactly
// min(rows, cols) rows are assigned, and the matching maximises the total weight among
// such matchings. O(max(rows,cols)^3). Throws std::invalid_argument on a size mismatch
// or a non-finite weight.
std::vector<int64_t> hungarian_max(const std::vector<double>& weight, int64_t rows, int64_t cols);

// The metrics below throw std::invalid_argument if counts.size() != rows*cols or a count
// is negative. Empty clusters/classes (all-zero rows/columns) are ignored, exactly as if
// that label value had never been declared.

// The best one-to-one matching of clusters to classes (K may differ from C): for each
// cluster its class, or -1 when left unmatched (K > C).
std::vector<int64_t> best_matching(const Contingency& t);
// Unsupervised accuracy: the samples that best_matching puts in their class / total. 0
// for an empty table.
double clustering_acc(const Contingency& t);
// Normalised mutual information, arithmetic-mean normalisation; matches
// sklearn.metrics.normalized_mutual_info_score (1.2) including its special cases: 1.0
// if both labelings are a single cluster (or there are no samples), 0.0 if only one is.
double nmi(const Contingency& t);
// Adjusted Rand index; matches sklearn.metrics.adjusted_rand_score (1.2), including 1.0
// when the two labelings agree on every pair (e.g. both a single cluster, both all
// singletons, no samples).
double ari(const Contingency& t);
// Fraction of samples that belong to the majority class of their cluster. 0 for an
// empty table.
double purity(const Contingency& t);

struct Scores {
  double acc = 0, nmi = 0, ari = 0, purity = 0;
  std::vector<int64_t> cluster_class;  // best_matching: the matching ACC counts
};
Scores score(const Contingency& t);

}  // namespace mixvae::eval
