#include "eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace mixvae::eval {

// ---------------------------------------------------------------------------------------
// Contingency

Contingency::Contingency(int64_t K, int64_t C) : rows(K), cols(C) {
  if (K < 1 || C < 1) {
    throw std::invalid_argument("Contingency: need at least one cluster and one class, got K=" + std::to_string(K) +
                                ", C=" + std::to_string(C));
  }
  counts.assign(static_cast<size_t>(K * C), 0);
}

int64_t& Contingency::at(int64_t k, int64_t c) {
  if (k < 0 || k >= rows || c < 0 || c >= cols) {
    throw std::out_of_range("Contingency::at(" + std::to_string(k) + ", " + std::to_string(c) + ") outside " +
                            std::to_string(rows) + "x" + std::to_string(cols));
  }
  return counts[static_cast<size_t>(k * cols + c)];
}

int64_t Contingency::at(int64_t k, int64_t c) const { return const_cast<Contingency*>(this)->at(k, c); }

int64_t Contingency::total() const {
  int64_t n = 0;
  for (int64_t v : counts) n += v;
  return n;
}

Contingency Contingency::from_labels(const std::vector<int64_t>& pred, const std::vector<int64_t>& truth, int64_t K,
                                     int64_t C) {
  if (pred.size() != truth.size()) {
    throw std::invalid_argument("Contingency::from_labels: " + std::to_string(pred.size()) + " predicted labels but " +
                                std::to_string(truth.size()) + " true labels");
  }
  Contingency t(K, C);
  t.add(pred.data(), truth.data(), pred.size());
  return t;
}

void Contingency::add(const int64_t* pred, const int64_t* truth, size_t n) {
  if (counts.size() != static_cast<size_t>(rows * cols)) {
    throw std::invalid_argument("Contingency::add: counts has " + std::to_string(counts.size()) +
                                " entries, expected " + std::to_string(rows) + "x" + std::to_string(cols));
  }
  // Validate first so that a bad label does not leave a half-counted table behind.
  for (size_t i = 0; i < n; ++i) {
    if (pred[i] < 0 || pred[i] >= rows) {
      throw std::invalid_argument("Contingency: predicted cluster " + std::to_string(pred[i]) + " at sample " +
                                  std::to_string(i) + " is outside [0, " + std::to_string(rows) + ")");
    }
    if (truth[i] < 0 || truth[i] >= cols) {
      throw std::invalid_argument("Contingency: true class " + std::to_string(truth[i]) + " at sample " +
                                  std::to_string(i) + " is outside [0, " + std::to_string(cols) + ")");
    }
  }
  for (size_t i = 0; i < n; ++i) ++counts[static_cast<size_t>(pred[i] * cols + truth[i])];
}

// ---------------------------------------------------------------------------------------
// Assignment
//
// Hand-written because Debian has no small, well-kept C++ assignment library (dlib has
// one, but it is a large dependency for a single function). It is the shortest-augmenting-
// path form of Kuhn-Munkres with row/column potentials (Jonker-Volgenant style), O(n^3);
// tests/unit/test_metrics.cpp checks it against brute force over all permutations.

std::vector<int64_t> hungarian_max(const std::vector<double>& weight, int64_t rows, int64_t cols) {
  if (rows < 0 || cols < 0 || weight.size() != static_cast<size_t>(rows * cols)) {
    throw std::invalid_argument("hungarian_max: weight has " + std::to_string(weight.size()) + " entries, expected " +
                                std::to_string(rows) + "x" + std::to_string(cols));
  }
  for (double w : weight) {
    if (!std::isfinite(w)) throw std::invalid_argument("hungarian_max: non-finite weight");
  }
  std::vector<int64_t> result(static_cast<size_t>(rows), -1);
  const int64_t n = std::max(rows, cols);
  if (n == 0) return result;

  // Minimise cost = -weight on the n x n matrix padded with zeros. Padding rows/columns
  // cost the same whatever they match, so the real part is an optimal matching of
  // min(rows, cols) pairs. Indices are 1-based; row/column 0 is the "virtual" start.
  auto cost = [&](int64_t i, int64_t j) -> double {  // 1-based
    return (i <= rows && j <= cols) ? -weight[static_cast<size_t>((i - 1) * cols + (j - 1))] : 0.0;
  };
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> u(n + 1, 0.0), v(n + 1, 0.0);  // row / column potentials
  std::vector<int64_t> row_of(n + 1, 0);             // column j matched to row row_of[j]
  std::vector<int64_t> prev(n + 1, 0);               // alternating-tree back pointers
  std::vector<double> slack(n + 1);
  std::vector<char> in_tree(n + 1);

  for (int64_t i = 1; i <= n; ++i) {
    // Grow a shortest-path tree from row i until it reaches a free column (Dijkstra on
    // reduced costs, which the potentials keep non-negative).
    row_of[0] = i;
    int64_t j0 = 0;
    std::fill(slack.begin(), slack.end(), inf);
    std::fill(in_tree.begin(), in_tree.end(), 0);
    do {
      in_tree[j0] = 1;
      const int64_t i0 = row_of[j0];
      double delta = inf;
      int64_t j1 = -1;
      for (int64_t j = 1; j <= n; ++j) {
        if (in_tree[j]) continue;
        const double reduced = cost(i0, j) - u[i0] - v[j];
        if (reduced < slack[j]) {
          slack[j] = reduced;
          prev[j] = j0;
        }
        if (slack[j] < delta) {
          delta = slack[j];
          j1 = j;
        }
      }
      if (j1 < 0) throw std::invalid_argument("hungarian_max: weights too large in magnitude");
      for (int64_t j = 0; j <= n; ++j) {
        if (in_tree[j]) {
          u[row_of[j]] += delta;
          v[j] -= delta;
        } else {
          slack[j] -= delta;
        }
      }
      j0 = j1;
    } while (row_of[j0] != 0);
    // Flip the augmenting path back to the root.
    do {
      const int64_t j1 = prev[j0];
      row_of[j0] = row_of[j1];
      j0 = j1;
    } while (j0 != 0);
  }

  for (int64_t j = 1; j <= cols; ++j) {
    if (row_of[j] >= 1 && row_of[j] <= rows) result[static_cast<size_t>(row_of[j] - 1)] = j - 1;
  }
  return result;
}

// ---------------------------------------------------------------------------------------
// Metrics

namespace {

void check_table(const Contingency& t, const char* who) {
  if (t.rows < 0 || t.cols < 0 || t.counts.size() != static_cast<size_t>(t.rows * t.cols)) {
    throw std::invalid_argument(std::string(who) + ": contingency counts has " + std::to_string(t.counts.size()) +
                                " entries, expected " + std::to_string(t.rows) + "x" + std::to_string(t.cols));
  }
  for (int64_t v : t.counts) {
    if (v < 0) throw std::invalid_argument(std::string(who) + ": negative contingency count");
  }
}

struct Marginals {
  std::vector<int64_t> row_sum, col_sum;
  int64_t n = 0;
};

Marginals marginals(const Contingency& t) {
  Marginals m;
  m.row_sum.assign(static_cast<size_t>(t.rows), 0);
  m.col_sum.assign(static_cast<size_t>(t.cols), 0);
  for (int64_t k = 0; k < t.rows; ++k) {
    for (int64_t c = 0; c < t.cols; ++c) {
      const int64_t v = t.counts[static_cast<size_t>(k * t.cols + c)];
      m.row_sum[static_cast<size_t>(k)] += v;
      m.col_sum[static_cast<size_t>(c)] += v;
      m.n += v;
    }
  }
  return m;
}

int64_t count_nonzero(const std::vector<int64_t>& v) {
  return std::count_if(v.begin(), v.end(), [](int64_t x) { return x != 0; });
}

// Entropy (nats) of a labeling given its cluster sizes; 0*log0 = 0. Same expression as
// sklearn's entropy(): -sum p * (log(n_i) - log(n)).
double entropy(const std::vector<int64_t>& sizes, int64_t n) {
  if (count_nonzero(sizes) <= 1) return 0.0;
  const double log_n = std::log(static_cast<double>(n));
  long double h = 0;
  for (int64_t s : sizes) {
    if (s == 0) continue;
    const double p = static_cast<double>(s) / static_cast<double>(n);
    h -= p * (std::log(static_cast<double>(s)) - log_n);
  }
  return static_cast<double>(h);
}

}  // namespace

std::vector<int64_t> best_matching(const Contingency& t) {
  check_table(t, "best_matching");
  // Counts are far below 2^53, so the double weights (and the potentials) are exact.
  std::vector<double> w(t.counts.begin(), t.counts.end());
  return hungarian_max(w, t.rows, t.cols);
}

namespace {
double acc_of(const Contingency& t, const std::vector<int64_t>& match) {
  const int64_t n = t.total();
  if (n == 0) return 0.0;
  int64_t matched = 0;
  for (int64_t k = 0; k < t.rows; ++k) {
    const int64_t c = match[static_cast<size_t>(k)];
    if (c >= 0) matched += t.counts[static_cast<size_t>(k * t.cols + c)];
  }
  return static_cast<double>(matched) / static_cast<double>(n);
}
}  // namespace

double clustering_acc(const Contingency& t) {
  check_table(t, "clustering_acc");
  return t.total() == 0 ? 0.0 : acc_of(t, best_matching(t));
}

double nmi(const Contingency& t) {
  check_table(t, "nmi");
  const Marginals m = marginals(t);
  const int64_t n_clusters = count_nonzero(m.row_sum);
  const int64_t n_classes = count_nonzero(m.col_sum);
  // sklearn: both labelings a single cluster (or no samples at all) is a perfect match.
  if (n_clusters == n_classes && n_clusters <= 1) return 1.0;
  // sklearn mutual_info_score: a single cluster on either side means MI = 0.
  if (n_clusters == 1 || n_classes == 1) return 0.0;

  // Term by term as sklearn's mutual_info_score, including zeroing terms below machine
  // epsilon and clipping the sum at 0, so that near-independent tables give the same 0.
  const double n = static_cast<double>(m.n);
  const double log_n = std::log(n);
  const double eps = std::numeric_limits<double>::epsilon();
  long double mi = 0;
  for (int64_t k = 0; k < t.rows; ++k) {
    for (int64_t c = 0; c < t.cols; ++c) {
      const int64_t v = t.counts[static_cast<size_t>(k * t.cols + c)];
      if (v == 0) continue;  // 0*log0 = 0
      const double p = static_cast<double>(v) / n;
      // log(a_k * b_c) as a sum of logs: the product can overflow int64 for huge n.
      const double log_outer = -(std::log(static_cast<double>(m.row_sum[static_cast<size_t>(k)])) +
                                 std::log(static_cast<double>(m.col_sum[static_cast<size_t>(c)]))) +
                               2.0 * log_n;
      const double term = p * (std::log(static_cast<double>(v)) - log_n) + p * log_outer;
      if (std::abs(term) >= eps) mi += term;
    }
  }
  const double mi_d = std::max(0.0, static_cast<double>(mi));
  if (mi_d == 0.0) return 0.0;
  const double normalizer = 0.5 * (entropy(m.row_sum, m.n) + entropy(m.col_sum, m.n));
  return mi_d / normalizer;
}

double ari(const Contingency& t) {
  check_table(t, "ari");
  const Marginals m = marginals(t);
  // Pair confusion matrix as sklearn's pair_confusion_matrix (ordered pairs). All of
  // these are <= n^2, exact in int64 for any n below 3e9.
  int64_t sum_squares = 0, row_squares = 0, col_squares = 0;
  for (int64_t v : t.counts) sum_squares += v * v;
  for (int64_t v : m.row_sum) row_squares += v * v;
  for (int64_t v : m.col_sum) col_squares += v * v;
  const int64_t tp = sum_squares - m.n;
  const int64_t fp = row_squares - sum_squares;
  const int64_t fn = col_squares - sum_squares;
  const int64_t tn = m.n * m.n - fp - fn - sum_squares;
  // sklearn's special case: no disagreeing pair at all (includes n == 0).
  if (fn == 0 && fp == 0) return 1.0;
  // Products reach n^4, past int64; long double keeps 64 mantissa bits.
  using LD = long double;
  const LD num = LD(tp) * LD(tn) - LD(fn) * LD(fp);
  const LD den = LD(tp + fn) * LD(fn + tn) + LD(tp + fp) * LD(fp + tn);
  return static_cast<double>(2.0L * num / den);
}

double purity(const Contingency& t) {
  check_table(t, "purity");
  const int64_t n = t.total();
  if (n == 0) return 0.0;
  int64_t majority = 0;
  for (int64_t k = 0; k < t.rows; ++k) {
    const auto row = t.counts.begin() + k * t.cols;
    majority += *std::max_element(row, row + t.cols);
  }
  return static_cast<double>(majority) / static_cast<double>(n);
}

Scores score(const Contingency& t) {
  Scores s;
  s.cluster_class = best_matching(t);  // one Hungarian solve for ACC and the reported matching
  s.acc = acc_of(t, s.cluster_class);
  s.nmi = nmi(t);
  s.ari = ari(t);
  s.purity = purity(t);
  return s;
}

}  // namespace mixvae::eval
