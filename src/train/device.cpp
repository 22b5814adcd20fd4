#include "train/device.h"

#include "core/errors.h"

#ifdef MIXVAE_TORCH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#include <cuda_runtime_api.h>
#endif

namespace mixvae::train {

torch::Device select_device(const std::string& want, int local_rank) {
  const bool have = torch::cuda::is_available();
  if (want == "cpu" || (want == "auto" && !have)) return torch::kCPU;
  if (!have)
    throw UsageError(
        "dist.device = cuda, but this mixvae's LibTorch has no CUDA or no GPU is visible "
        "(use dist.device = cpu or auto; docs/gpu.md builds against a CUDA LibTorch)");
  const int n = static_cast<int>(torch::cuda::device_count());
  const int idx = (local_rank < 0 ? 0 : local_rank) % n;
#ifdef MIXVAE_TORCH_CUDA
  c10::cuda::set_device(static_cast<c10::DeviceIndex>(idx));  // NCCL and cuBLAS handles follow it
#endif
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(idx));
}

void agree_device_kind(dist::Communicator& comm, bool is_cuda) {
  const std::vector<int64_t> gpu = comm.all_gather_value<int64_t>(is_cuda ? 1 : 0);
  int64_t on_gpu = 0;
  for (int64_t g : gpu) on_gpu += g;
  dist::agree(comm, [&] {
    if (on_gpu == 0 || on_gpu == comm.size()) return;
    // The first few ranks on the CPU name the nodes to look at.
    std::string cpu_ranks;
    int named = 0;
    for (size_t r = 0; r < gpu.size() && named < 8; ++r)
      if (!gpu[r]) cpu_ranks += std::string(named++ ? ", " : "") + std::to_string(r);
    if (comm.size() - on_gpu > named) cpu_ranks += ", ...";
    throw UsageError("the ranks chose different devices: a GPU on " + std::to_string(on_gpu) + " of " +
                     std::to_string(comm.size()) + " ranks, the CPU on rank(s) " + cpu_ranks +
                     " (dist.device = auto needs a visible GPU on every node or on none; set dist.device = cpu, "
                     "or cuda where every rank has a GPU)");
  });
}

std::string describe_device(const torch::Device& d) {
  if (d.is_cpu()) return "cpu";
  std::string s = "cuda:" + std::to_string(d.index());
#ifdef MIXVAE_TORCH_CUDA
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, d.index()) == cudaSuccess) s += std::string(" (") + prop.name + ")";
#endif
  return s;
}

}  // namespace mixvae::train
