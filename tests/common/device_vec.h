#pragma once
// A cudaMalloc'd buffer filled from a host vector and read back with host(): the device
// buffers of the NCCL unit and MPI tests. Only for builds with the CUDA runtime.
#include <cuda_runtime_api.h>

#include <stdexcept>
#include <vector>

namespace mixvae::test {

// A device buffer holding `host`, read back with host().
template <class T>
class DeviceVec {
 public:
  explicit DeviceVec(const std::vector<T>& host) : n_(host.size()) {
    if (cudaMalloc(&p_, n_ * sizeof(T)) != cudaSuccess) throw std::runtime_error("cudaMalloc");
    if (cudaMemcpy(p_, host.data(), n_ * sizeof(T), cudaMemcpyHostToDevice) != cudaSuccess)
      throw std::runtime_error("cudaMemcpy");
  }
  ~DeviceVec() { cudaFree(p_); }
  DeviceVec(const DeviceVec&) = delete;
  DeviceVec& operator=(const DeviceVec&) = delete;
  T* get() { return static_cast<T*>(p_); }
  std::vector<T> host() const {
    std::vector<T> out(n_);
    if (cudaMemcpy(out.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost) != cudaSuccess)
      throw std::runtime_error("cudaMemcpy");
    return out;
  }

 private:
  void* p_ = nullptr;
  size_t n_;
};

}  // namespace mixvae::test
