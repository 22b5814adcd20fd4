#pragma once
// Collectives on tensors, on top of the buffer-level Communicator.
#include <torch/torch.h>

#include "dist/communicator.h"

namespace mixvae::dist {

DType dtype_of(const torch::Tensor& t);

// In place. A CUDA tensor goes straight to an NCCL communicator (on the current stream);
// to any other back end, and any non-contiguous tensor, through a contiguous (host) copy.
void all_reduce(Communicator& comm, torch::Tensor& t, ReduceOp op = ReduceOp::Sum);
void broadcast(Communicator& comm, torch::Tensor& t, int root);

// Rank 0's values for every parameter and buffer of `module`, in one flat broadcast.
void broadcast_parameters(Communicator& comm, const std::vector<torch::Tensor>& tensors, int root = 0);

}  // namespace mixvae::dist
