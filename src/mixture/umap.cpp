#include "mixture/umap.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <nanoflann.hpp>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "dist/tensor_ops.h"

namespace mixvae::mixture {
namespace {

// splitmix64: the negative samples' stream (any good 64-bit generator would do; this one is
// a few lines and has no state beyond one word).
struct SplitMix {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
};

// Gradient clip of the reference implementation (its `clip`, ±4).
inline float clip4(float v) { return v > 4.f ? 4.f : (v < -4.f ? -4.f : v); }

// nanoflann's view of a row-major float64 matrix.
struct RowsAdaptor {
  const double* data;
  int64_t n, j;
  size_t kdtree_get_point_count() const { return size_t(n); }
  double kdtree_get_pt(size_t i, size_t d) const { return data[int64_t(i) * j + int64_t(d)]; }
  template <class Box>
  bool kdtree_get_bbox(Box&) const {
    return false;
  }
};
// Above this many dimensions a k-d tree visits most of its leaves (the curse of
// dimensionality) and the blocked products below do the same work in BLAS: GMVAE's
// 200-dimensional codes take that path. A round threshold, not a measured crossover.
constexpr int64_t kKdTreeMaxDims = 24;

// Brute force: [block, N] squared distances as |a|^2 + |b|^2 - 2 a.b from one product per
// block, in float64 and centred so that near neighbours keep their small distances.
std::pair<torch::Tensor, torch::Tensor> nearest_neighbours_blocked(const torch::Tensor& x_in, int64_t k) {
  const int64_t n = x_in.size(0);
  torch::Tensor x = x_in.to(torch::kFloat64);
  x = (x - x.mean(0, true)).contiguous();
  torch::Tensor sq = x.pow(2).sum(1);
  torch::Tensor idx = torch::empty({n, k}, torch::kInt64);
  torch::Tensor dist = torch::empty({n, k}, torch::kFloat32);
  const int64_t block = 1024;  // [block, N] distances at a time: 0.5 GiB at N = 70,000
  torch::Tensor d2 = torch::empty({std::min(n, block), n}, torch::kFloat64);  // reused: no page faults per block
  for (int64_t s = 0; s < n; s += block) {
    const int64_t e = std::min(n, s + block);
    torch::Tensor d = d2.slice(0, 0, e - s);
    torch::addmm_out(d, sq.unsqueeze(0), x.slice(0, s, e), x.t(), 1.0, -2.0);
    d.add_(sq.slice(0, s, e).unsqueeze(1));
    d.slice(1, s, e).diagonal().fill_(std::numeric_limits<double>::infinity());  // not its own neighbour
    auto [v, i] = d.topk(k, 1, /*largest=*/false, /*sorted=*/true);
    idx.slice(0, s, e).copy_(i);
    dist.slice(0, s, e).copy_(v.clamp_min(0).sqrt());
  }
  return {idx, dist};
}

using KdTree =
    nanoflann::KDTreeSingleIndexAdaptor<nanoflann::L2_Simple_Adaptor<double, RowsAdaptor>, RowsAdaptor, -1, size_t>;
}  // namespace

std::pair<torch::Tensor, torch::Tensor> nearest_neighbours(const torch::Tensor& x_in, int64_t k) {
  torch::NoGradGuard ng;
  const int64_t n = x_in.size(0), j = x_in.size(1);
  if (k < 1 || k >= n) throw std::invalid_argument("nearest_neighbours: need 1 <= k < rows");
  // Exact search in a k-d tree (nanoflann, Debian's libnanoflann-dev): O(N log N) for the
  // ten or so dimensions of a latent space, where the brute-force [N, N] distances cost
  // minutes at N = 70,000. Squared distances are summed in float64 directly, so near
  // neighbours keep their small distances; rows are independent, so the result is the same
  // with any number of threads.
  if (j > kKdTreeMaxDims) return nearest_neighbours_blocked(x_in, k);
  torch::Tensor x = x_in.to(torch::kFloat64).contiguous();
  RowsAdaptor rows{x.data_ptr<double>(), n, j};
  KdTree tree(size_t(j), rows, nanoflann::KDTreeSingleIndexAdaptorParams(10));
  torch::Tensor idx = torch::empty({n, k}, torch::kInt64);
  torch::Tensor dist = torch::empty({n, k}, torch::kFloat32);
  int64_t* out_i = idx.data_ptr<int64_t>();
  float* out_d = dist.data_ptr<float>();
  at::parallel_for(0, n, 256, [&](int64_t begin, int64_t end) {
    std::vector<size_t> found(size_t(k + 1));
    std::vector<double> d2(size_t(k + 1));
    for (int64_t i = begin; i < end; ++i) {
      const size_t got = tree.knnSearch(rows.data + i * j, size_t(k + 1), found.data(), d2.data());
      // The row itself is among the k + 1 nearest unless more than k rows coincide with it;
      // either way the k others nearest are kept, nearest first.
      int64_t w = 0;
      for (size_t t = 0; t < got && w < k; ++t) {
        if (int64_t(found[t]) == i) continue;
        out_i[i * k + w] = int64_t(found[t]);
        out_d[i * k + w] = float(std::sqrt(std::max(0.0, d2[t])));
        ++w;
      }
    }
  });
  return {idx, dist};
}

FuzzyGraph fuzzy_graph(const torch::Tensor& x, int64_t neighbors) {
  const int64_t n = x.size(0);
  if (neighbors < 2) throw std::invalid_argument("fuzzy_graph: neighbors must be >= 2");
  // UMAP's n_neighbors counts the point itself: k - 1 others.
  const int64_t k = std::min(neighbors - 1, n - 1);
  auto [idx_t, dist_t] = nearest_neighbours(x, k);
  const int64_t* idx = idx_t.data_ptr<int64_t>();
  const float* dist = dist_t.data_ptr<float>();

  // §3.1: rho_i = distance to the nearest neighbour; sigma_i such that
  // sum_j exp(-(d_ij - rho_i) / sigma_i) = log2(n_neighbors), by bisection (64 steps, as the
  // reference's smooth_knn_dist), floored at 1e-3 of the mean distance (its MIN_K_DIST_SCALE).
  const double target = std::log2(double(neighbors));
  double mean_all = 0;
  for (int64_t t = 0; t < n * k; ++t) mean_all += dist[t];
  mean_all /= double(n * k);
  std::vector<float> w(static_cast<size_t>(n * k));
  for (int64_t i = 0; i < n; ++i) {
    const float* d = dist + i * k;
    double rho = 0;
    for (int64_t j = 0; j < k; ++j)
      if (d[j] > 0) {
        rho = d[j];
        break;
      }
    double lo = 0, hi = std::numeric_limits<double>::infinity(), mid = 1;
    for (int it = 0; it < 64; ++it) {
      double psum = 0;
      for (int64_t j = 0; j < k; ++j) {
        const double r = d[j] - rho;
        psum += r > 0 ? std::exp(-r / mid) : 1.0;
      }
      if (std::fabs(psum - target) < 1e-5) break;
      if (psum > target) {
        hi = mid;
        mid = (lo + hi) / 2;
      } else {
        lo = mid;
        mid = std::isinf(hi) ? mid * 2 : (lo + hi) / 2;
      }
    }
    double mean_i = 0;
    for (int64_t j = 0; j < k; ++j) mean_i += d[j];
    mean_i /= double(k);
    const double sigma = std::max(mid, 1e-3 * (rho > 0 ? mean_i : mean_all));
    for (int64_t j = 0; j < k; ++j) {
      const double r = d[j] - rho;
      w[size_t(i * k + j)] = float(r > 0 ? std::exp(-r / sigma) : 1.0);
    }
  }

  // Fuzzy union of the directed graph and its transpose: w + w' - w w' (§3.1). Reverse edges
  // are found by binary search in the sorted list of directed keys i * N + j.
  std::vector<std::pair<int64_t, float>> keyed(static_cast<size_t>(n * k));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j) keyed[size_t(i * k + j)] = {i * n + idx[i * k + j], w[size_t(i * k + j)]};
  std::sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  auto reverse = [&](int64_t i, int64_t j) -> float {
    const int64_t key = j * n + i;
    auto it = std::lower_bound(keyed.begin(), keyed.end(), key, [](const auto& e, int64_t v) { return e.first < v; });
    return it != keyed.end() && it->first == key ? it->second : 0.f;
  };
  std::vector<int64_t> heads, tails;
  std::vector<float> weights;
  heads.reserve(keyed.size() * 2);
  tails.reserve(keyed.size() * 2);
  weights.reserve(keyed.size() * 2);
  for (const auto& [key, wij] : keyed) {
    const int64_t i = key / n, j = key % n;
    const float wji = reverse(i, j);
    const float s = wij + wji - wij * wji;
    heads.push_back(i), tails.push_back(j), weights.push_back(s);
    if (wji == 0.f) heads.push_back(j), tails.push_back(i), weights.push_back(s);  // the pair's other direction
  }
  const int64_t e = int64_t(heads.size());
  FuzzyGraph g;
  g.heads = torch::from_blob(heads.data(), {e}, torch::kInt64).clone();
  g.tails = torch::from_blob(tails.data(), {e}, torch::kInt64).clone();
  g.weights = torch::from_blob(weights.data(), {e}, torch::kFloat32).clone();
  return g;
}

std::pair<double, double> umap_curve(double min_dist, double spread) {
  // Levenberg-Marquardt on 300 points of [0, 3 spread] (the reference's find_ab_params uses
  // scipy's curve_fit on the same grid).
  const int m = 300;
  std::vector<double> xs(m), ys(m);
  for (int t = 0; t < m; ++t) {
    xs[t] = 3.0 * spread * t / (m - 1);
    ys[t] = xs[t] < min_dist ? 1.0 : std::exp(-(xs[t] - min_dist) / spread);
  }
  auto sse = [&](double a, double b) {
    double s = 0;
    for (int t = 0; t < m; ++t) {
      const double r = 1.0 / (1.0 + a * std::pow(xs[t], 2 * b)) - ys[t];
      s += r * r;
    }
    return s;
  };
  double a = 1.0, b = 1.0, lambda = 1e-3, cur = sse(a, b);
  for (int it = 0; it < 200; ++it) {
    // J^T J and J^T r of the residuals r_t = g(x_t) - y_t.
    double jaa = 0, jab = 0, jbb = 0, ga = 0, gb = 0;
    for (int t = 0; t < m; ++t) {
      if (xs[t] <= 0) continue;  // g = 1 there whatever a and b
      const double p = std::pow(xs[t], 2 * b), g = 1.0 / (1.0 + a * p), r = g - ys[t];
      const double da = -p * g * g, db = -a * p * 2.0 * std::log(xs[t]) * g * g;
      jaa += da * da, jab += da * db, jbb += db * db, ga += da * r, gb += db * r;
    }
    const double haa = jaa * (1 + lambda), hbb = jbb * (1 + lambda), det = haa * hbb - jab * jab;
    if (!(std::fabs(det) > 0)) break;
    const double step_a = -(hbb * ga - jab * gb) / det, step_b = -(haa * gb - jab * ga) / det;
    const double next = sse(a + step_a, b + step_b);
    if (a + step_a > 0 && b + step_b > 0 && next < cur) {
      a += step_a, b += step_b;
      const bool done = cur - next < 1e-14 * (1 + cur);
      cur = next;
      lambda *= 0.3;
      if (done) break;
    } else {
      lambda *= 10;
      if (lambda > 1e12) break;
    }
  }
  return {a, b};
}

torch::Tensor spectral_start(const FuzzyGraph& g, int64_t n, int64_t dims, uint64_t seed, int64_t iterations) {
  torch::NoGradGuard ng;
  const int64_t e = g.heads.size(0), cols = std::min<int64_t>(n, dims + 1 + 4);  // 4 extra columns speed it up
  const int64_t* head = g.heads.data_ptr<int64_t>();
  const int64_t* tail = g.tails.data_ptr<int64_t>();
  torch::Tensor w64 = g.weights.to(torch::kFloat64);
  const double* w = w64.data_ptr<double>();
  std::vector<double> deg(static_cast<size_t>(n), 0.0);
  for (int64_t t = 0; t < e; ++t) deg[size_t(head[t])] += w[t];
  std::vector<double> a(static_cast<size_t>(e));  // D^-1/2 W D^-1/2 on the edge list
  for (int64_t t = 0; t < e; ++t) a[size_t(t)] = w[t] / std::sqrt(deg[size_t(head[t])] * deg[size_t(tail[t])]);
  // (I + A) / 2 Q, column-major over rows: out[i] = (q[i] + sum_j a_ij q[j]) / 2.
  auto apply = [&](const torch::Tensor& q) {
    torch::Tensor out = q.clone();
    const double* qi = q.data_ptr<double>();
    double* o = out.data_ptr<double>();
    for (int64_t t = 0; t < e; ++t) {
      const double* src = qi + tail[t] * cols;
      double* dst = o + head[t] * cols;
      for (int64_t c = 0; c < cols; ++c) dst[c] += a[size_t(t)] * src[c];
    }
    return out.mul_(0.5);
  };
  torch::Generator gen = at::detail::createCPUGenerator(seed);
  torch::Tensor q = std::get<0>(torch::linalg_qr(torch::randn({n, cols}, gen, torch::kFloat64)));
  for (int64_t it = 1; it <= iterations; ++it) {
    q = apply(q.contiguous());
    if (it % 10 == 0 || it == iterations) q = std::get<0>(torch::linalg_qr(q));
  }
  // Rayleigh-Ritz: the eigenvectors of Q^T M Q, largest first; the first is the trivial one.
  auto [vals, vecs] = torch::linalg_eigh(q.t().mm(apply(q.contiguous())), "L");
  return q.mm(vecs.flip(1).slice(1, 1, dims + 1));
}

torch::Tensor umap_embed(const torch::Tensor& x_in, const UmapOptions& opt, uint64_t seed) {
  torch::NoGradGuard ng;
  const int64_t n = x_in.size(0), j = x_in.size(1), dim = opt.dims;
  if (n < 2) throw std::invalid_argument("umap_embed: need at least 2 rows");
  if (dim < 1 || dim > j) throw std::invalid_argument("umap_embed: dims must be in [1, input dimension]");
  const FuzzyGraph g = fuzzy_graph(x_in, std::min<int64_t>(opt.neighbors, n));
  const int64_t epochs = opt.epochs > 0 ? opt.epochs : (n > 10000 ? 200 : 500);

  // Start: the spectral embedding or x's principal components, each dimension scaled to
  // [0, 10] (the range the reference rescales its initial layout to).
  torch::Tensor y0;
  if (opt.init == "spectral" && n > dim + 1) {
    y0 = spectral_start(g, n, dim, seed);
  } else {
    torch::Tensor x = x_in.to(torch::kFloat64);
    x = x - x.mean(0, true);
    auto [evals, evecs] = torch::linalg_eigh(x.t().mm(x) / double(n), "L");
    y0 = x.mm(evecs.flip(1).slice(1, 0, dim));
  }
  torch::Tensor lo = std::get<0>(y0.min(0, true)), hi = std::get<0>(y0.max(0, true));
  y0 = (10.0 * (y0 - lo) / (hi - lo).clamp_min(1e-12)).to(torch::kFloat32).contiguous();
  std::vector<float> y(y0.data_ptr<float>(), y0.data_ptr<float>() + n * dim);

  // Edge sampling (§3.2, the reference's make_epochs_per_sample): an edge of weight w is
  // sampled every w_max / w epochs; edges below w_max / epochs are never sampled.
  const int64_t* head = g.heads.data_ptr<int64_t>();
  const int64_t* tail = g.tails.data_ptr<int64_t>();
  const float* wt = g.weights.data_ptr<float>();
  const int64_t e_all = g.heads.size(0);
  const float wmax = e_all > 0 ? g.weights.max().item<float>() : 1.f;
  std::vector<int64_t> eh, et;
  std::vector<double> per_sample;
  for (int64_t e = 0; e < e_all; ++e) {
    if (wt[e] < wmax / float(epochs) || wt[e] <= 0) continue;
    eh.push_back(head[e]), et.push_back(tail[e]), per_sample.push_back(double(wmax) / double(wt[e]));
  }
  const size_t m = eh.size();
  std::vector<double> next_sample(per_sample), per_negative(m), next_negative(m);
  for (size_t e = 0; e < m; ++e) next_negative[e] = per_negative[e] = per_sample[e] / double(opt.negatives);

  const auto [a, b] = umap_curve(opt.min_dist, opt.spread);
  // The gradients in float, d^2b as exp(b log d^2): a third of the layout's time went to
  // std::pow in double (measured with tests/bench/micro/umap_phases.cpp).
  const float fa = float(a), fb = float(b);
  SplitMix rng{seed};
  std::vector<float> delta(static_cast<size_t>(dim));
  for (int64_t epoch = 0; epoch < epochs; ++epoch) {
    const float alpha = float(1.0 - double(epoch) / double(epochs));  // linearly decayed step
    for (size_t e = 0; e < m; ++e) {
      if (next_sample[e] > double(epoch)) continue;
      float* yi = y.data() + eh[e] * dim;
      float* yj = y.data() + et[e] * dim;
      // Attraction along the edge, both ends move: d/dy log(1 / (1 + a d^2b)).
      float d2 = 0;
      for (int64_t t = 0; t < dim; ++t) d2 += (yi[t] - yj[t]) * (yi[t] - yj[t]);
      if (d2 > 0) {
        const float pb = std::exp(fb * std::log(d2));  // d^2b
        const float c = -2.f * fa * fb * (pb / d2) / (fa * pb + 1.f);
        for (int64_t t = 0; t < dim; ++t) {
          const float gd = clip4(c * (yi[t] - yj[t])) * alpha;
          yi[t] += gd;
          yj[t] -= gd;
        }
      }
      next_sample[e] += per_sample[e];
      // Repulsion from random points (negative sampling), only the head moves.
      const int64_t negs = int64_t((double(epoch) - next_negative[e]) / per_negative[e]);
      for (int64_t p = 0; p < negs; ++p) {
        const int64_t kk = int64_t(rng.next() % uint64_t(n));
        if (kk == eh[e]) continue;
        const float* yk = y.data() + kk * dim;
        float q2 = 0;
        for (int64_t t = 0; t < dim; ++t) q2 += (yi[t] - yk[t]) * (yi[t] - yk[t]);
        if (!(q2 > 0)) continue;  // coincident points: no direction to push along
        const float c = 2.f * fb / ((0.001f + q2) * (fa * std::exp(fb * std::log(q2)) + 1.f));
        for (int64_t t = 0; t < dim; ++t) yi[t] += clip4(c * (yi[t] - yk[t])) * alpha;
      }
      next_negative[e] += double(negs) * per_negative[e];
    }
  }
  return torch::from_blob(y.data(), {n, dim}, torch::kFloat32).clone();
}

UmapOptions umap_options(const RunConfig& cfg) {
  UmapOptions o;
  o.neighbors = cfg.model.umap_neighbors;
  o.epochs = cfg.model.umap_epochs;
  o.dims = cfg.model.clusters;
  o.init = cfg.model.umap_init;
  return o;
}

DiagGmm fit_umap_gmm(dist::Communicator& comm, const torch::Tensor& z_local, int64_t k, uint64_t seed,
                     const GmmOptions& gmm, const UmapOptions& umap, std::string* summary) {
  torch::NoGradGuard ng;
  const auto t0 = std::chrono::steady_clock::now();
  torch::Tensor z = dist::gather_rows<float>(comm, z_local.to(torch::kFloat32).contiguous());
  const int64_t j = z_local.size(1);
  torch::Tensor weights = torch::empty({k}, torch::kFloat64), means = torch::empty({k, j}, torch::kFloat64),
                variances = torch::empty({k, j}, torch::kFloat64), scalars = torch::zeros({3}, torch::kFloat64);
  if (comm.rank() == 0) {
    UmapOptions opt = umap;
    opt.dims = std::min(opt.dims, j);
    torch::Tensor e = umap_embed(z, opt, seed);
    auto self = dist::make_self_communicator();
    DiagGmm in_embedding = fit_diag_gmm(*self, e, k, seed, gmm);
    torch::Tensor resp = torch::softmax(log_joint(in_embedding, e), 1);
    DiagGmm g = gmm_from_responsibilities(*self, z, resp, gmm.reg_covar);
    weights.copy_(g.weights), means.copy_(g.means), variances.copy_(g.variances);
    scalars[0] = g.mean_log_likelihood;
    scalars[1] = in_embedding.mean_log_likelihood;
    scalars[2] = double(in_embedding.iterations);
  }
  dist::broadcast(comm, weights, 0);
  dist::broadcast(comm, means, 0);
  dist::broadcast(comm, variances, 0);
  dist::broadcast(comm, scalars, 0);
  DiagGmm out;
  out.weights = weights, out.means = means, out.variances = variances;
  out.mean_log_likelihood = scalars[0].item<double>();
  out.iterations = int64_t(scalars[2].item<double>());
  out.converged = true;
  if (summary) {
    std::ostringstream m;
    m << "UMAP (" << umap.neighbors << " neighbours, " << std::min(umap.dims, j) << " dimensions, " << umap.init
      << " start) + diagonal GMM (" << gmm.fits << " fit(s), mean log-likelihood " << scalars[1].item<double>()
      << " in the embedding), moments taken in the latent space (mean log-likelihood " << out.mean_log_likelihood
      << "), " << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s";
    *summary = m.str();
  }
  return out;
}

}  // namespace mixvae::mixture
