#pragma once
// The device a rank trains on: `[dist] device = auto|cpu|cuda`. With CUDA, local rank r of
// a node uses GPU r mod (visible GPUs), so `mpirun -np G` on a node with G GPUs gives each
// rank its own GPU, and several ranks (or sweep runs) per GPU share it.
#include <torch/torch.h>

#include <string>

#include "dist/communicator.h"

namespace mixvae::train {

// UsageError when `cuda` is asked for and this LibTorch has no CUDA or no GPU is visible.
torch::Device select_device(const std::string& want, int local_rank);
// Collective: every rank's choice (is_cuda: this rank's device is a GPU) must be the same,
// or collectives that only GPU ranks issue (NCCL set-up, the GPU checks) no longer pair up.
// A mix (dist.device = auto on nodes with and without a visible GPU) is one UsageError on
// every rank, through dist::agree.
void agree_device_kind(dist::Communicator& comm, bool is_cuda);
// "cpu" or "cuda:N (NVIDIA H100 80GB HBM3)" for the log line.
std::string describe_device(const torch::Device& d);

}  // namespace mixvae::train
