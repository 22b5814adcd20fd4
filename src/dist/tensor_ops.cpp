#include "dist/tensor_ops.h"

#include <stdexcept>

#include "dist/nccl_communicator.h"

#ifdef MIXVAE_TORCH_CUDA
#include <c10/cuda/CUDAStream.h>
#endif

namespace mixvae::dist {

DType dtype_of(const torch::Tensor& t) {
  switch (t.scalar_type()) {
    case torch::kFloat32:
      return DType::F32;
    case torch::kFloat64:
      return DType::F64;
    case torch::kInt64:
      return DType::I64;
    case torch::kInt32:
      return DType::I32;
    case torch::kUInt8:
      return DType::U8;
    default:
      throw std::runtime_error("collective on an unsupported tensor dtype");
  }
}

namespace {
// A CUDA tensor goes to an NCCL communicator as it is (on the stream it was produced
// on); to any other back end it goes through a host copy.
template <class Fn>
void with_contiguous_buffer(Communicator& comm, torch::Tensor& t, Fn&& fn) {
  if (t.is_contiguous() && t.device().is_cpu()) {
    fn(t);
    return;
  }
  if (t.is_cuda()) {
    if (auto* nccl = dynamic_cast<NcclCommunicator*>(&comm)) {
#ifdef MIXVAE_TORCH_CUDA
      nccl->set_stream(c10::cuda::getCurrentCUDAStream(t.device().index()).stream());
#endif
      torch::Tensor c = t.contiguous();
      fn(c);
      if (!c.is_same(t)) {
        torch::NoGradGuard ng;
        t.copy_(c);
      }
      return;
    }
  }
  torch::Tensor tmp = t.to(torch::kCPU).contiguous();
  fn(tmp);
  torch::NoGradGuard ng;
  t.copy_(tmp);
}
}  // namespace

void all_reduce(Communicator& comm, torch::Tensor& t, ReduceOp op) {
  if (comm.size() == 1 || t.numel() == 0) return;
  with_contiguous_buffer(comm, t, [&](torch::Tensor& c) {
    comm.all_reduce(c.data_ptr(), static_cast<size_t>(c.numel()), dtype_of(c), op);
  });
}

void broadcast(Communicator& comm, torch::Tensor& t, int root) {
  if (comm.size() == 1 || t.numel() == 0) return;
  with_contiguous_buffer(comm, t, [&](torch::Tensor& c) {
    comm.broadcast(c.data_ptr(), static_cast<size_t>(c.numel()), dtype_of(c), root);
  });
}

void broadcast_parameters(Communicator& comm, const std::vector<torch::Tensor>& tensors, int root) {
  if (comm.size() == 1 || tensors.empty()) return;
  torch::NoGradGuard ng;
  // Flatten per dtype (parameters are float32; buffers may be int64).
  std::vector<torch::Tensor> f32, other;
  for (const auto& t : tensors) (t.scalar_type() == torch::kFloat32 ? f32 : other).push_back(t);
  if (!f32.empty()) {
    std::vector<torch::Tensor> flat_parts;
    for (auto& t : f32) flat_parts.push_back(t.detach().reshape({-1}));
    torch::Tensor flat = torch::cat(flat_parts);
    broadcast(comm, flat, root);
    int64_t off = 0;
    for (auto& t : f32) {
      int64_t n = t.numel();
      t.detach().copy_(flat.slice(0, off, off + n).view_as(t));
      off += n;
    }
  }
  for (auto t : other) broadcast(comm, t, root);
}

}  // namespace mixvae::dist
