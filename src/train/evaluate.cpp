#include "train/evaluate.h"

#include <algorithm>

#include "models/noise.h"

namespace mixvae::train {

torch::Tensor map_rows(const torch::Tensor& x, int64_t batch,
                       const std::function<torch::Tensor(const torch::Tensor&)>& fn, const torch::Tensor& empty) {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < x.size(0); i += batch) out.push_back(fn(x.slice(0, i, std::min(x.size(0), i + batch))));
  return out.empty() ? empty : torch::cat(out);
}

EvalResult evaluate(dist::Communicator& comm, models::ClusteringModel& model, const TrainData& data, int64_t batch,
                    RowResults* rows, bool selection) {
  torch::NoGradGuard ng;
  const int64_t k = model.clusters();
  if (batch <= 0) batch = model.eval_batch_rows();
  torch::Tensor x = data.x.slice(0, data.eval_begin, data.eval_end);
  const int64_t n = x.size(0);
  // This rank's rows are rows [first, first + n) of the data set.
  const int64_t first = size_t(comm.rank()) < data.shards.size() ? data.shards[size_t(comm.rank())].first : 0;
  const int64_t n_global = std::max(data.n_global, first + n);
  double entropy = 0, score = 0;
  std::string criterion;
  std::vector<torch::Tensor> preds, posteriors, embeddings;
  for (int64_t i = 0; i < n;) {
    const int64_t block = (first + i) / batch, block_begin = block * batch;
    const int64_t end = std::min(n, block_begin + batch - first);
    const torch::Tensor xb = x.slice(0, i, end);
    torch::Tensor q = model.posterior(xb);
    entropy -= (q * q.clamp_min(1e-30).log()).sum().item<double>();
    if (rows) {
      posteriors.push_back(q.to(torch::kCPU, torch::kFloat32));
      embeddings.push_back(model.embed(xb).to(torch::kCPU, torch::kFloat32));
    }
    preds.push_back(q.argmax(1));
    if (selection) {
      models::Noise noise(models::mix_seed(kSelectionNoiseSeed, uint64_t(block)),
                          std::min(batch, n_global - block_begin), first + i - block_begin, first + end - block_begin,
                          x.device());
      models::ClusteringModel::Selection s = model.selection_score(xb, noise);
      score += s.sum.item<double>();
      criterion = s.criterion;
    }
    i = end;
  }
  torch::Tensor pred =
      (preds.empty() ? torch::empty({0}, torch::kInt64) : torch::cat(preds)).to(torch::kCPU).contiguous();
  if (rows) {
    rows->cluster = pred;
    rows->posterior = posteriors.empty() ? torch::empty({0, k}) : torch::cat(posteriors).contiguous();
    rows->embedding = embeddings.empty() ? torch::empty({0, 0}) : torch::cat(embeddings).contiguous();
  }

  EvalResult r;
  r.has_labels = data.y.defined() && data.num_classes > 0;
  // One all-reduce: [occupancy K | entropy | selection score]
  std::vector<double> stats(static_cast<size_t>(k) + 2, 0.0);
  auto acc = pred.accessor<int64_t, 1>();
  for (int64_t i = 0; i < pred.size(0); ++i) stats[acc[i]] += 1;
  stats[k] = entropy;
  stats[k + 1] = score;
  comm.all_reduce(stats);
  r.occupancy.resize(k);
  for (int64_t c = 0; c < k; ++c) r.occupancy[c] = static_cast<int64_t>(stats[c]);
  r.samples = 0;
  for (auto o : r.occupancy) r.samples += o;
  r.empty_clusters = std::count(r.occupancy.begin(), r.occupancy.end(), 0);
  r.largest_fraction =
      r.samples ? double(*std::max_element(r.occupancy.begin(), r.occupancy.end())) / double(r.samples) : 0;
  r.mean_entropy = r.samples ? stats[k] / double(r.samples) : 0;
  // (A rank without rows, N < world size, has no criterion name; rank 0, which writes it,
  // always has rows when N >= world size.)
  if (selection && r.samples) r.selection = EvalResult::Selection{criterion, stats[k + 1] / double(r.samples), true};

  if (r.has_labels) {
    eval::Contingency table(k, data.num_classes);
    torch::Tensor y = data.y.slice(0, data.eval_begin, data.eval_end).contiguous();
    table.add(pred.data_ptr<int64_t>(), y.data_ptr<int64_t>(), static_cast<size_t>(pred.size(0)));
    comm.all_reduce(table.counts);
    r.scores = eval::score(table);
    for (int64_t c = 0; c < k; ++c)
      r.contingency.emplace_back(table.counts.begin() + c * table.cols, table.counts.begin() + (c + 1) * table.cols);
  }
  return r;
}

}  // namespace mixvae::train
