#pragma once
// Sums gradients over the ranks of a Communicator in flat buckets: a few large
// all-reduces instead of one per parameter. The trainer scales each rank's loss by
// 1 / (global batch size), so the sum is the gradient of the global-batch mean.
#include <torch/torch.h>

#include <vector>

#include "dist/communicator.h"

namespace mixvae::dist {

class GradReducer {
 public:
  GradReducer(Communicator& comm, std::vector<torch::Tensor> params, double bucket_mb);
  // On more than one rank, the constructor makes every parameter's .grad() a view of its
  // slot in a bucket (existing values kept), so backward() fills the buckets in place.
  // After backward(): every parameter's .grad() holds the sum over ranks. A parameter
  // without a gradient on this rank contributes zeros (and receives the sum).
  // `local_value` (e.g. this rank's loss sum) rides along in the last bucket; the return
  // value is its sum over ranks, so every rank sees the global loss of the step at no
  // extra collective and can react to NaN identically. `flag`, when given, rides along
  // too: in, this rank's flag; out, whether any rank set it (e.g. a stop request), so all
  // ranks act on it at the same step.
  double all_reduce(double local_value = 0.0, bool* flag = nullptr);
  // Zeros every gradient in place, keeping the bucket views (LibTorch 1.13's
  // Optimizer::zero_grad() calls detach_(), which a view refuses). Use it instead.
  void zero_grad();
  size_t buckets() const { return buckets_.size(); }

 private:
  struct Bucket {
    std::vector<size_t> members;  // indices into params_
    torch::Tensor flat;           // float32, contiguous
  };
  // Whether p's gradient is (still) the view of `slot` that the constructor installed.
  static bool in_bucket(const torch::Tensor& p, const torch::Tensor& slot);
  Communicator& comm_;
  std::vector<torch::Tensor> params_;
  std::vector<Bucket> buckets_;
};

}  // namespace mixvae::dist
