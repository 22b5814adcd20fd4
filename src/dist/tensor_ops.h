#pragma once
// Collectives on tensors, on top of the buffer-level Communicator.
#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "dist/communicator.h"

namespace mixvae::dist {

DType dtype_of(const torch::Tensor& t);

// In place. A CUDA tensor goes straight to an NCCL communicator (on the current stream);
// to any other back end, and any non-contiguous tensor, through a contiguous (host) copy.
void all_reduce(Communicator& comm, torch::Tensor& t, ReduceOp op = ReduceOp::Sum);
void broadcast(Communicator& comm, torch::Tensor& t, int root);

// Rank 0's values for every parameter and buffer of `module`, in one flat broadcast.
void broadcast_parameters(Communicator& comm, const std::vector<torch::Tensor>& tensors, int root = 0);

// Every rank's [n_r, w] rows, in rank order (= file order: each rank evaluates its shard),
// assembled on rank 0; the other ranks get an undefined tensor. A rank without rows may
// pass any width.
template <class T>
inline torch::Tensor gather_rows(dist::Communicator& comm, const torch::Tensor& local) {
  const int64_t n = local.size(0);
  const int64_t w = comm.all_reduce_value<int64_t>(n > 0 ? local.size(1) : 0, ReduceOp::Max);
  const std::vector<int64_t> counts = comm.all_gather_value<int64_t>(n);
  const int64_t most = *std::max_element(counts.begin(), counts.end());
  std::vector<T> send(static_cast<size_t>(most * w), T(0));
  if (n > 0 && w > 0) std::memcpy(send.data(), local.contiguous().data_ptr<T>(), sizeof(T) * size_t(n * w));
  std::vector<T> recv(send.size() * size_t(comm.size()));
  if (!send.empty()) comm.all_gather(send.data(), recv.data(), send.size(), dtype_of<T>());
  if (comm.rank() != 0) return {};
  int64_t total = 0;
  for (int64_t c : counts) total += c;
  torch::Tensor out = torch::empty({total, w}, torch::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value));
  T* dst = out.data_ptr<T>();
  for (size_t r = 0; r < counts.size(); ++r) {
    std::memcpy(dst, recv.data() + r * send.size(), sizeof(T) * size_t(counts[r] * w));
    dst += counts[r] * w;
  }
  return out;
}

}  // namespace mixvae::dist
