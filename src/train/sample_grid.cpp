#include "train/sample_grid.h"

#include <cmath>
#include <vector>

#include "eval/png_grid.h"
#include "models/noise.h"

namespace mixvae::train {

void write_sample_grid(models::ClusteringModel& model, const std::string& path, int64_t per_cluster,
                       uint64_t run_seed) {
  torch::NoGradGuard ng;
  const int64_t k = model.clusters(), n = per_cluster;
  torch::Generator gen = torch::make_generator<torch::CPUGeneratorImpl>(models::mix_seed(run_seed, 77));
  std::vector<torch::Tensor> rows;
  for (int64_t c = 0; c < k; ++c) {
    torch::Tensor s = model.sample(c, n, gen);
    if (s.min().item<float>() < 0 || s.max().item<float>() > 1) s = (s - s.min()) / (s.max() - s.min() + 1e-12);
    rows.push_back(s);
  }
  torch::Tensor all = torch::cat(rows);  // [k*n, d]
  const int64_t d = all.size(1);
  const int64_t w = static_cast<int64_t>(std::ceil(std::sqrt(double(d))));
  const int64_t h = (d + w - 1) / w;
  if (h * w != d) all = torch::constant_pad_nd(all, {0, h * w - d}, 0.0);
  all = all.to(torch::kCPU, torch::kFloat32).contiguous();
  std::vector<float> pixels(all.data_ptr<float>(), all.data_ptr<float>() + all.numel());
  eval::write_png_grid(path, pixels, k, n, h, w);
}

}  // namespace mixvae::train
