#include "dist/grad_reducer.h"

#include "dist/tensor_ops.h"

namespace mixvae::dist {

GradReducer::GradReducer(Communicator& comm, std::vector<torch::Tensor> params, double bucket_mb)
    : comm_(comm), params_(std::move(params)) {
  const int64_t cap = std::max<int64_t>(1, static_cast<int64_t>(bucket_mb * 1024 * 1024 / 4));
  Bucket cur;
  int64_t filled = 0;
  auto close = [&] {
    if (cur.members.empty()) return;
    // On the parameters' device: an NCCL communicator reduces it in place on the GPU.
    cur.flat = torch::zeros({filled + 2}, params_[cur.members.front()].options().dtype(torch::kFloat32));  // +2: ride-alongs
    buckets_.push_back(std::move(cur));
    cur = Bucket{};
    filled = 0;
  };
  for (size_t i = 0; i < params_.size(); ++i) {
    cur.members.push_back(i);
    filled += params_[i].numel();
    if (filled >= cap) close();
  }
  close();
  if (comm_.size() == 1) return;  // nothing to reduce: gradients stay LibTorch's own
  // Each gradient becomes a view of its slot in the bucket (as PyTorch DDP's
  // gradient_as_bucket_view): zero_grad() below zeros it in place and backward()
  // accumulates into it in place, so the all-reduce works on the gradients where they are,
  // with no copy in and out (that pair of copies cost about a third of the reduce time:
  // docs/performance.md). A gradient someone replaces later is copied as before.
  torch::NoGradGuard ng;
  for (auto& b : buckets_) {
    int64_t off = 0;
    for (size_t i : b.members) {
      auto& p = params_[i];
      const int64_t n = p.numel();
      auto slot = b.flat.slice(0, off, off + n).view_as(p);
      if (p.grad().defined()) slot.copy_(p.grad());
      p.mutable_grad() = slot;
      off += n;
    }
  }
}

void GradReducer::zero_grad() {
  torch::NoGradGuard ng;
  for (auto& p : params_)
    if (p.grad().defined()) p.mutable_grad().zero_();
}

bool GradReducer::in_bucket(const torch::Tensor& p, const torch::Tensor& slot) {
  const auto& g = p.grad();
  return g.defined() && g.data_ptr() == slot.data_ptr() && g.is_contiguous();
}

double GradReducer::all_reduce(double local_value, bool* flag) {
  if (comm_.size() == 1) return local_value;
  if (buckets_.empty()) {
    std::vector<double> v{local_value, flag && *flag ? 1.0 : 0.0};
    comm_.all_reduce(v);
    if (flag) *flag = v[1] > 0;
    return v[0];
  }
  torch::NoGradGuard ng;
  for (auto& b : buckets_) {
    int64_t off = 0;
    for (size_t i : b.members) {
      auto& p = params_[i];
      int64_t n = p.numel();
      auto slot = b.flat.slice(0, off, off + n);
      if (in_bucket(p, slot)) {  // already there
      } else if (p.grad().defined()) {
        slot.copy_(p.grad().reshape({-1}));
      } else {
        slot.zero_();
      }
      off += n;
    }
    const bool last = &b == &buckets_.back();
    b.flat[off] = last ? local_value : 0.0;
    b.flat[off + 1] = last && flag && *flag ? 1.0 : 0.0;
    dist::all_reduce(comm_, b.flat);
    if (last) {
      auto tail = b.flat.slice(0, off, off + 2).to(torch::kCPU);
      local_value = tail[0].item<double>();
      if (flag) *flag = tail[1].item<double>() > 0;
    }
    off = 0;
    for (size_t i : b.members) {
      auto& p = params_[i];
      int64_t n = p.numel();
      auto slot = b.flat.slice(0, off, off + n).view_as(p);
      if (!in_bucket(p, slot)) p.mutable_grad() = slot;  // from now on a view again
      off += n;
    }
  }
  return local_value;
}

}  // namespace mixvae::dist
