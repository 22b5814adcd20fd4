#include "train/evaluate.h"

#include <algorithm>

namespace mixvae::train {

torch::Tensor map_rows(const torch::Tensor& x, int64_t batch,
                       const std::function<torch::Tensor(const torch::Tensor&)>& fn, const torch::Tensor& empty) {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < x.size(0); i += batch) out.push_back(fn(x.slice(0, i, std::min(x.size(0), i + batch))));
  return out.empty() ? empty : torch::cat(out);
}

EvalResult evaluate(dist::Communicator& comm, models::ClusteringModel& model, const TrainData& data, int64_t batch,
                    RowResults* rows) {
  torch::NoGradGuard ng;
  const int64_t k = model.clusters();
  if (batch <= 0) batch = model.eval_batch_rows();
  torch::Tensor x = data.x.slice(0, data.eval_begin, data.eval_end);
  double entropy = 0;
  std::vector<torch::Tensor> posteriors, embeddings;
  torch::Tensor pred = map_rows(
                           x, batch,
                           [&](const torch::Tensor& xb) {
                             torch::Tensor q = model.posterior(xb);
                             entropy -= (q * q.clamp_min(1e-30).log()).sum().item<double>();
                             if (rows) {
                               posteriors.push_back(q.to(torch::kCPU, torch::kFloat32));
                               embeddings.push_back(model.embed(xb).to(torch::kCPU, torch::kFloat32));
                             }
                             return q.argmax(1);
                           },
                           torch::empty({0}, torch::kInt64))
                           .to(torch::kCPU)
                           .contiguous();
  if (rows) {
    rows->cluster = pred;
    rows->posterior = posteriors.empty() ? torch::empty({0, k}) : torch::cat(posteriors).contiguous();
    rows->embedding = embeddings.empty() ? torch::empty({0, 0}) : torch::cat(embeddings).contiguous();
  }

  EvalResult r;
  r.has_labels = data.y.defined() && data.num_classes > 0;
  // One all-reduce: [occupancy K | entropy*1e6 as a double below | contingency K*C]
  std::vector<double> stats(static_cast<size_t>(k) + 1, 0.0);
  auto acc = pred.accessor<int64_t, 1>();
  for (int64_t i = 0; i < pred.size(0); ++i) stats[acc[i]] += 1;
  stats[k] = entropy;
  comm.all_reduce(stats);
  r.occupancy.resize(k);
  for (int64_t c = 0; c < k; ++c) r.occupancy[c] = static_cast<int64_t>(stats[c]);
  r.samples = 0;
  for (auto o : r.occupancy) r.samples += o;
  r.empty_clusters = std::count(r.occupancy.begin(), r.occupancy.end(), 0);
  r.largest_fraction =
      r.samples ? double(*std::max_element(r.occupancy.begin(), r.occupancy.end())) / double(r.samples) : 0;
  r.mean_entropy = r.samples ? stats[k] / double(r.samples) : 0;

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
