#pragma once
// Sums gradients over the ranks of a Communicator in flat buckets: a few large
// all-reduces instead of one per parameter. The trainer scales each rank's loss by
// 1 / (global batch size), so the sum is the gradient of the global-batch mean.
//
// Overlap (as PyTorch DDP): with `overlap` on, a hook on every parameter's gradient
// accumulator marks it ready while backward() runs; once every gradient of a bucket (and
// of the buckets before it) is ready, a worker thread all-reduces that bucket while
// backward() goes on computing the gradients of the earlier layers. Buckets hold the
// parameters in reverse order (backward produces the last layer's gradients first) and are
// always launched in index order, so every rank issues the same collectives in the same
// order whatever order its gradients arrive in. The last bucket (the first layers, which
// backward finishes with) carries the ride-along values and is reduced in all_reduce().
// The sums are the same numbers as without overlap.
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "dist/communicator.h"

namespace mixvae::dist {

class GradReducer {
 public:
  // `overlap` is honoured where it can work: more than one rank, CPU gradients, and a
  // communicator whose collectives may come from the worker thread (MPI at
  // MPI_THREAD_MULTIPLE); overlapping() says whether it is on.
  GradReducer(Communicator& comm, std::vector<torch::Tensor> params, double bucket_mb, bool overlap = false);
  ~GradReducer();
  GradReducer(const GradReducer&) = delete;
  GradReducer& operator=(const GradReducer&) = delete;

  // On more than one rank, the constructor makes every parameter's .grad() a view of its
  // slot in a bucket (existing values kept), so backward() fills the buckets in place.
  //
  // With overlap: call begin_step() right before backward(); buckets whose gradients are
  // complete are then reduced while backward() runs. Without it (or without overlap) the
  // hooks do nothing and all_reduce() reduces every bucket.
  void begin_step();
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
  bool overlapping() const { return overlap_; }
  // Buckets whose reduce started during the last step's backward() (overlap only).
  size_t launched_during_backward() const { return launched_early_; }

  // Called by the gradient accumulator hook of parameter `index` (internal).
  void mark_ready(size_t index);

 private:
  struct Bucket {
    std::vector<size_t> members;  // indices into params_
    torch::Tensor flat;           // float32, contiguous
  };
  struct Worker;  // the thread that reduces buckets handed over during backward()
  // Whether p's gradient is (still) the view of `slot` that the constructor installed.
  static bool in_bucket(const torch::Tensor& p, const torch::Tensor& slot);
  // Makes bucket b's slots hold the gradients (copies any gradient that is not its view).
  void stage(size_t b);
  // Makes every gradient of bucket b the view of its slot again.
  void rebind(size_t b);
  void launch_ready();

  Communicator& comm_;
  std::vector<torch::Tensor> params_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_, offset_of_;
  // Overlap state (main thread only).
  bool overlap_ = false, armed_ = false;
  std::vector<uint8_t> ready_;
  std::vector<size_t> pending_;
  size_t next_ = 0, launched_early_ = 0;
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators_;
  std::vector<uintptr_t> hook_keys_;
  std::shared_ptr<Worker> worker_;
};

}  // namespace mixvae::dist
