#include "train/train_data.h"

#include <stdexcept>

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
  slots_ = n_;
  if (global_) {
    auto p = permutation(n_, seed);
    perm_ = torch::tensor(p, torch::kInt64);
  } else {
    for (const auto& [b, e] : data.shards) local_sizes_.push_back(e - b);
    auto p = permutation(local_sizes_[rank_], seed);
    perm_ = torch::tensor(p, torch::kInt64);
  }
}

namespace {
// Rank r's share of the first t of `slots` slots when the ranks before it hold `before`
// rows and it and they `upto` (shard mode): the shares of all ranks add up to t.
int64_t share_of(int64_t t, int64_t before, int64_t upto, int64_t slots) {
  if (slots == 0) return 0;
  return static_cast<int64_t>((__int128)t * upto / slots - (__int128)t * before / slots);
}
}  // namespace

EpochPlan epoch_plan(const TrainData& data, int rank, int world, int64_t batch_size,
                     const std::function<uint64_t(int rank)>& seed_of, int64_t done_steps, int from_world) {
  EpochPlan plan(data, rank, world, batch_size, seed_of(data.global_mode ? 0 : rank));
  if (data.global_mode || done_steps <= 0 || from_world <= 0 || from_world == world) return plan;
  // The stopped ranks' plans: old rank q shuffled its shard [b, e) with seed_of(q) and had
  // trained the first share_q(t) rows of it when the epoch stopped after t slots.
  const int64_t n = data.n_global, t = std::min(n, done_steps * batch_size);
  std::vector<int64_t> left;  // global rows not trained yet, in the old ranks' order
  left.reserve(size_t(n - t));
  int64_t before = 0;
  for (int q = 0; q < from_world; ++q) {
    const auto [b, e] = data::shard_range(n, q, from_world);
    const int64_t used = share_of(t, before, before + (e - b), n);
    const std::vector<int64_t> p = permutation(e - b, seed_of(q));
    for (int64_t i = used; i < e - b; ++i) left.push_back(b + p[size_t(i)]);
    before += e - b;
  }
  // Each new rank takes the untrained rows of its own shard, in that order; the remaining
  // steps share the n - t slots left as a fresh epoch shares n.
  std::vector<int64_t> counts(size_t(world), 0), mine;
  for (int64_t g : left) {
    int r = 0;
    while (g >= data.shards[size_t(r)].second) ++r;  // shards are contiguous and ordered
    ++counts[size_t(r)];
    if (r == rank) mine.push_back(g - data.shards[size_t(rank)].first);
  }
  plan.local_sizes_ = counts;
  plan.perm_ = torch::tensor(mine, torch::kInt64);
  plan.slot0_ = t;
  plan.slots_ = n - t;
  return plan;
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
  // A re-planned rest of an epoch (epoch_plan) shares the slots from slot0_ on the same way.
  const int64_t b = s * batch_, e = std::min(n_, b + batch_);
  if (b < slot0_) throw std::logic_error("EpochPlan: step " + std::to_string(s) + " was trained before the resume");
  out.global_rows = e - b;
  int64_t before = 0;
  for (int q = 0; q < rank_; ++q) before += local_sizes_[q];
  const int64_t upto = before + local_sizes_[rank_];
  auto share = [&](int64_t t) { return share_of(t - slot0_, before, upto, slots_); };
  int64_t lb = share(b), le = std::max(lb, share(e));
  out.rows = perm_.slice(0, lb, le);
  out.begin = 0;
  out.end = le - lb;
  return out;
}

}  // namespace mixvae::train
