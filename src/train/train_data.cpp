#include "train/train_data.h"

#include "core/errors.h"
#include "data/schema.h"

namespace mixvae::train {

std::vector<int64_t> permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  uint64_t s = seed;
  auto next = [&]() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  };
  for (int64_t i = n - 1; i > 0; --i) {
    // Lemire-free modulo: the bias for n < 2^32 is below 2^-32, irrelevant here.
    int64_t j = static_cast<int64_t>(next() % static_cast<uint64_t>(i + 1));
    std::swap(p[i], p[j]);
  }
  return p;
}

TrainData load_train_data(dist::Communicator& comm, const RunConfig& cfg) {
  TrainData out;
  data::DatasetInfo info;
  data::Shard shard;
  const int r = comm.rank(), w = comm.size();
  dist::agree(comm, [&] {
    if (cfg.data.path.empty()) throw UsageError("data.path is not set (use --data.path=FILE.h5)");
    info = data::inspect(cfg.data.path);
    data::check_shardable(info, w);
    auto [b, e] = data::shard_range(info.n, r, w);
    if (cfg.data.shuffle == "global")
      shard = data::read_rows(info, 0, info.n);
    else
      shard = data::read_rows(info, b, e);
  });
  out.path = info.path;
  out.name = info.name;
  out.n_global = info.n;
  out.d = info.d;
  out.num_classes = info.num_classes;
  out.global_mode = cfg.data.shuffle == "global";
  for (int q = 0; q < w; ++q) out.shards.push_back(data::shard_range(info.n, q, w));
  const int64_t rows = shard.end - shard.begin;
  out.x = torch::from_blob(shard.x.data(), {rows, info.d}, torch::kFloat32).clone();
  if (!shard.y.empty()) out.y = torch::from_blob(shard.y.data(), {rows}, torch::kInt64).clone();
  if (out.global_mode) {
    out.eval_begin = out.shards[r].first;
    out.eval_end = out.shards[r].second;
  } else {
    out.eval_begin = 0;
    out.eval_end = rows;
  }
  // Bernoulli likelihood needs data in [0,1]; decided on all rows of all ranks.
  int64_t outside = rows > 0 ? ((out.x < 0) | (out.x > 1)).any().item<bool>() : 0;
  out.unit_interval = comm.all_reduce_value(outside, dist::ReduceOp::Max) == 0;
  if (out.num_classes == 0 && out.y.defined() && out.y.numel() > 0) out.num_classes = out.y.max().item<int64_t>() + 1;
  out.num_classes = comm.all_reduce_value(out.num_classes, dist::ReduceOp::Max);
  return out;
}

EpochPlan::EpochPlan(const TrainData& data, int rank, int world, int64_t batch_size, uint64_t seed)
    : global_(data.global_mode), rank_(rank), world_(world), batch_(batch_size), n_(data.n_global) {
  steps_ = (n_ + batch_ - 1) / batch_;
  if (global_) {
    auto p = permutation(n_, seed);
    perm_ = torch::tensor(p, torch::kInt64);
  } else {
    for (const auto& [b, e] : data.shards) local_sizes_.push_back(e - b);
    auto p = permutation(local_sizes_[rank_], seed);
    perm_ = torch::tensor(p, torch::kInt64);
  }
}

StepSlice EpochPlan::step(int64_t s) const {
  StepSlice out;
  if (global_) {
    int64_t gb = s * batch_, ge = std::min(n_, gb + batch_);
    out.global_rows = ge - gb;
    out.begin = out.global_rows * rank_ / world_;
    out.end = out.global_rows * (rank_ + 1) / world_;
    out.rows = perm_.slice(0, gb + out.begin, gb + out.end);
    return out;
  }
  // Global step s covers slots [s*B, min((s+1)*B, N)). Rank r's share of the first t
  // slots is floor(t*S_{r+1}/N) - floor(t*S_r/N) (S_r: rows of the ranks before r): the
  // shares telescope to exactly t, and reach n_r at t = N, so the global batch is the
  // configured size at any world size and every local row is used once per epoch.
  const int64_t b = s * batch_, e = std::min(n_, b + batch_);
  out.global_rows = e - b;
  int64_t before = 0;
  for (int q = 0; q < rank_; ++q) before += local_sizes_[q];
  const int64_t upto = before + local_sizes_[rank_];
  auto share = [&](int64_t t) {
    if (n_ == 0) return int64_t(0);
    return static_cast<int64_t>((__int128)t * upto / n_ - (__int128)t * before / n_);
  };
  int64_t lb = share(b), le = std::max(lb, share(e));
  out.rows = perm_.slice(0, lb, le);
  out.begin = 0;
  out.end = le - lb;
  return out;
}

}  // namespace mixvae::train
