#pragma once
// NCCL back end of Communicator: collectives on CUDA device buffers, one GPU per rank.
//
// Torch-free and CUDA-free on purpose (streams are passed as void*), so this header can be
// included everywhere; the code behind it is compiled only when CMake found the CUDA
// runtime and NCCL (MIXVAE_HAVE_NCCL). Without them the functions below still exist:
// cuda_device_count() is 0, nccl_available() false, make_nccl_communicator() throws.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dist/communicator.h"

namespace mixvae::dist {

// True when this mixvae was built with the NCCL back end (says nothing about GPUs).
bool nccl_available();
// Version of the NCCL library linked in, "2.28.9"; "" in a build without NCCL.
std::string nccl_version();
// CUDA devices this process sees; 0 on any CUDA error (no driver, no device) and in a
// build without NCCL.
int cuda_device_count();
// The GPU of a rank: local_rank % device_count, -1 when device_count <= 0.
int local_device(int local_rank, int device_count);
// local_device(core local_rank() from the launcher's environment, cuda_device_count()).
int local_device();

// Where a rank's GPU is: the host name and the GPU's PCI bus id ("0000:3B:00.0"), the one
// identity of a device that does not depend on what the process sees (with
// `--gpus-per-task=1` every rank of a node sees its own GPU as device 0, so counting ranks
// per node against visible GPUs calls 4 ranks with 4 GPUs "shared").
struct GpuSeat {
  std::string host, pci_bus;
  int node_ranks = 1, visible_gpus = 1;  // for messages only: the launcher's ranks on the node, GPUs seen
};
// The first two ranks (a < b) whose GPUs are one device (same host, same PCI bus id);
// {-1, -1} when every rank has its own. NCCL needs a distinct GPU per rank of a
// communicator; the counts in the seats play no part.
std::pair<int, int> shared_gpu_ranks(const std::vector<GpuSeat>& seats);
// Collective over comm: every rank's seat when it uses CUDA device `device`. A rank that
// cannot name its GPU (no such device) is one UsageError on every rank. In a build without
// NCCL a UsageError too (no CUDA runtime to ask).
std::vector<GpuSeat> gpu_seats(Communicator& comm, int device);
// "ranks A and B both use GPU <bus> on <host>" for a pair of shared_gpu_ranks().
std::string describe_shared_gpu(const std::vector<GpuSeat>& seats, std::pair<int, int> ranks);

// A Communicator whose buffers are CUDA device pointers on device(). Every collective is
// issued on stream() and waited for before it returns: completion is polled together with
// NCCL's asynchronous error state, and a collective that fails or takes longer than the
// timeout aborts the NCCL communicator and throws a one-line std::runtime_error naming the
// operation, its sequence number, the rank and NCCL's error. A communicator that has been
// aborted throws on any further collective.
//
// Host buffers (plain or pinned host memory) are passed to the bootstrap communicator
// instead, so the typed conveniences, broadcast_string() and agree() keep working.
class NcclCommunicator : public Communicator {
 public:
  // The stream collectives are issued on and waited for (a cudaStream_t); nullptr is the
  // legacy default stream. Pass the stream the buffers were produced on.
  virtual void set_stream(void* cuda_stream) = 0;
  virtual void* stream() const = 0;
  virtual int device() const = 0;
  // Seconds a collective may take before the communicator is aborted; 0 = no limit.
  virtual double timeout_seconds() const = 0;
  // Collectives issued so far on this communicator (the number in error messages).
  virtual uint64_t sequence() const = 0;
  // The host communicator this one was created over (same ranks, same order).
  virtual Communicator& bootstrap() = 0;
  // Collectives between group_start() and group_end() are launched as one NCCL group
  // (e.g. several gradient buckets) and waited for together by group_end(). Nestable;
  // barrier() and split() are not allowed inside a group.
  virtual void group_start() = 0;
  virtual void group_end() = 0;
  // split() with the concrete type; split() returns the same object as a Communicator.
  virtual std::unique_ptr<NcclCommunicator> split_nccl(int color, int key) = 0;
};

// Collective over `bootstrap`: rank 0 creates the NCCL unique id and broadcasts it, every
// rank makes `device` its current CUDA device and joins. Ranks and their order are the
// bootstrap's; `bootstrap` must outlive the result. Fails on every rank alike (UsageError)
// when any rank has no such device, two ranks of one host name the same GPU, or NCCL cannot
// start; a UsageError also in a build without NCCL.
std::unique_ptr<NcclCommunicator> make_nccl_communicator(Communicator& bootstrap, int device,
                                                         double timeout_seconds = 300);
// The same, owning its bootstrap (e.g. the result of world.split()).
std::unique_ptr<NcclCommunicator> make_nccl_communicator(std::unique_ptr<Communicator> bootstrap, int device,
                                                         double timeout_seconds = 300);

}  // namespace mixvae::dist
