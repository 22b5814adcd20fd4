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
