// The NCCL back end on a communicator of one: every collective and dtype on cudaMalloc'd
// buffers when this process sees a GPU, a clear error otherwise, and in a build without
// NCCL the UsageError that says so.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/errors.h"
#include "dist/nccl_communicator.h"

#ifdef MIXVAE_HAVE_NCCL
#include <cuda_runtime_api.h>

#include "device_vec.h"
#endif

namespace mixvae::dist {
namespace {

TEST(NcclBuild, LocalDeviceIsLocalRankModuloDeviceCount) {
  EXPECT_EQ(local_device(0, 4), 0);
  EXPECT_EQ(local_device(5, 4), 1);
  EXPECT_EQ(local_device(3, 1), 0);
  EXPECT_EQ(local_device(-1, 2), 0);
  EXPECT_EQ(local_device(2, 0), -1);
}

// Whether ranks share a GPU is decided by host name and PCI bus id, not by counting: under
// hpc/slurm/train.sbatch (--gpus-per-task=1) each of 4 ranks on a node sees one GPU, its
// own, as device 0, and NCCL must be used.
TEST(NcclBuild, SharedGpuIsTheSameHostAndPciBusNotMoreRanksThanVisibleGpus) {
  auto seat = [](const char* host, const char* bus, int node_ranks, int visible) {
    GpuSeat s;
    s.host = host;
    s.pci_bus = bus;
    s.node_ranks = node_ranks;
    s.visible_gpus = visible;
    return s;
  };
  // Two nodes, 4 tasks each, one GPU visible per task (its own).
  std::vector<GpuSeat> per_task;
  for (const char* host : {"node1", "node2"})
    for (const char* bus : {"0000:1B:00.0", "0000:43:00.0", "0000:52:00.0", "0000:9D:00.0"})
      per_task.push_back(seat(host, bus, 4, 1));
  EXPECT_EQ(shared_gpu_ranks(per_task), std::make_pair(-1, -1));
  // The same bus id on two hosts is two GPUs.
  EXPECT_EQ(shared_gpu_ranks({seat("a", "0000:1B:00.0", 1, 1), seat("b", "0000:1B:00.0", 1, 1)}),
            std::make_pair(-1, -1));
  // Two ranks of one node on one GPU (more ranks than GPUs, or CUDA_VISIBLE_DEVICES
  // naming the same device for both): shared, whatever each process sees.
  EXPECT_EQ(shared_gpu_ranks(
                {seat("n", "0000:1B:00.0", 3, 8), seat("n", "0000:43:00.0", 3, 8), seat("n", "0000:1B:00.0", 3, 8)}),
            std::make_pair(0, 2));
  EXPECT_EQ(shared_gpu_ranks({}), std::make_pair(-1, -1));
}

#ifndef MIXVAE_HAVE_NCCL

TEST(NcclBuild, WithoutNcclMakingOneIsAClearUsageError) {
  EXPECT_FALSE(nccl_available());
  EXPECT_EQ(nccl_version(), "");
  EXPECT_EQ(cuda_device_count(), 0);
  auto self = make_self_communicator();
  try {
    make_nccl_communicator(*self, 0);
    FAIL() << "make_nccl_communicator should throw in a build without NCCL";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("this mixvae was built without NCCL"), std::string::npos) << e.what();
  }
}

#else

#define CUDA_OK(call) ASSERT_EQ((call), cudaSuccess) << #call

TEST(NcclBuild, ReportsTheLinkedNcclVersion) {
  EXPECT_TRUE(nccl_available());
  const std::string v = nccl_version();
  EXPECT_EQ(std::count(v.begin(), v.end(), '.'), 2) << v;
  EXPECT_GE(cuda_device_count(), 0);
}

// No device at all (CI), or one past the last: the same clear UsageError, no crash.
TEST(NcclCommunicator, AMissingDeviceIsAClearUsageError) {
  auto self = make_self_communicator();
  try {
    make_nccl_communicator(*self, cuda_device_count());
    FAIL() << "make_nccl_communicator should throw for a device that does not exist";
  } catch (const UsageError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("NCCL setup failed on rank 0: ", 0), 0u) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  EXPECT_THROW(make_nccl_communicator(*self, 0, -1.0), UsageError);
}

using test::DeviceVec;

#define SKIP_WITHOUT_GPU()      \
  if (cuda_device_count() == 0) \
  GTEST_SKIP() << "no CUDA device: NCCL tests skipped (built with NCCL " << nccl_version() << ")"

template <class T>
void check_dtype(NcclCommunicator& c) {
  const std::vector<T> values = {T(1), T(2), T(3), T(100), T(7)};
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min}) {
    DeviceVec<T> d(values);
    c.all_reduce(d.get(), values.size(), dtype_of<T>(), op);
    EXPECT_EQ(d.host(), values) << "op " << int(op);
  }
  DeviceVec<T> b(values);
  c.broadcast(b.get(), values.size(), dtype_of<T>(), 0);
  EXPECT_EQ(b.host(), values);
  DeviceVec<T> send(values), recv(std::vector<T>(values.size(), T(0)));
  c.all_gather(send.get(), recv.get(), values.size(), dtype_of<T>());
  EXPECT_EQ(recv.host(), values);
}

TEST(NcclCommunicator, OneRankCollectivesOnDeviceBuffersOfEachDtype) {
  SKIP_WITHOUT_GPU();
  auto self = make_self_communicator();
  auto c = make_nccl_communicator(*self, 0, /*timeout_seconds=*/60);
  EXPECT_EQ(c->rank(), 0);
  EXPECT_EQ(c->size(), 1);
  EXPECT_EQ(c->backend(), "nccl");
  EXPECT_EQ(c->device(), 0);
  check_dtype<float>(*c);
  check_dtype<double>(*c);
  check_dtype<int64_t>(*c);
  check_dtype<int32_t>(*c);
  check_dtype<uint8_t>(*c);
  EXPECT_EQ(c->sequence(), 5u * 5u);
  c->barrier();
  EXPECT_EQ(c->sequence(), 5u * 5u + 1u);
}

TEST(NcclCommunicator, GroupsStreamsHostBuffersAndSplit) {
  SKIP_WITHOUT_GPU();
  auto self = make_self_communicator();
  auto c = make_nccl_communicator(*self, 0, 60);
  cudaStream_t s = nullptr;
  CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  c->set_stream(s);
  EXPECT_EQ(c->stream(), s);
  // Several buckets as one NCCL group, waited for by group_end().
  DeviceVec<float> a(std::vector<float>(1000, 1.5f)), b(std::vector<float>(3, -2.0f));
  DeviceVec<double> d(std::vector<double>(7, 0.25));
  const uint64_t before = c->sequence();
  c->group_start();
  c->all_reduce(a.get(), 1000, DType::F32, ReduceOp::Sum);
  c->all_reduce(b.get(), 3, DType::F32, ReduceOp::Sum);
  c->all_reduce(d.get(), 7, DType::F64, ReduceOp::Max);
  c->group_end();
  EXPECT_EQ(c->sequence(), before + 3);
  EXPECT_EQ(a.host(), std::vector<float>(1000, 1.5f));
  EXPECT_EQ(b.host(), std::vector<float>(3, -2.0f));
  EXPECT_EQ(d.host(), std::vector<double>(7, 0.25));
  EXPECT_THROW(c->group_end(), std::logic_error);
  // Host buffers go through the bootstrap: conveniences and strings keep working.
  EXPECT_EQ(c->all_reduce_value<int64_t>(41), 41);
  std::string msg = "hello";
  c->broadcast_string(msg, 0);
  EXPECT_EQ(msg, "hello");
  EXPECT_EQ(c->sequence(), before + 3);
  // A split keeps the device and the stream.
  auto sub = c->split_nccl(0, 0);
  EXPECT_EQ(sub->size(), 1);
  EXPECT_EQ(sub->stream(), s);
  DeviceVec<int64_t> x(std::vector<int64_t>{5, 6});
  sub->all_reduce(x.get(), 2, DType::I64, ReduceOp::Sum);
  EXPECT_EQ(x.host(), (std::vector<int64_t>{5, 6}));
  sub.reset();
  c.reset();
  CUDA_OK(cudaStreamDestroy(s));
}

// A collective stuck behind stream work that outlasts the timeout: the communicator aborts
// and throws one line naming the operation, its number and the rank; later use throws too.
TEST(NcclCommunicator, ACollectivePastItsTimeoutAbortsWithAClearMessage) {
  SKIP_WITHOUT_GPU();
  auto self = make_self_communicator();
  auto c = make_nccl_communicator(*self, 0, /*timeout_seconds=*/0.5);
  cudaStream_t s = nullptr;
  CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  c->set_stream(s);
  DeviceVec<float> d(std::vector<float>(4, 1.0f));
  c->all_reduce(d.get(), 4, DType::F32, ReduceOp::Sum);
  auto sleep_2s = [](void*) { std::this_thread::sleep_for(std::chrono::seconds(2)); };
  CUDA_OK(cudaLaunchHostFunc(s, sleep_2s, nullptr));
  try {
    c->all_reduce(d.get(), 4, DType::F32, ReduceOp::Sum);
    FAIL() << "the all_reduce should have timed out";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("NCCL all_reduce #2 failed on rank 0 of 1 (GPU 0): timed out after 0.5 s", 0), 0u) << msg;
    EXPECT_NE(msg.find("NCCL communicator aborted"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  try {
    c->barrier();
    FAIL() << "an aborted communicator should refuse further collectives";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("aborted after an earlier error"), std::string::npos) << e.what();
  }
  CUDA_OK(cudaStreamSynchronize(s));
  c.reset();
  CUDA_OK(cudaStreamDestroy(s));
}

#endif  // MIXVAE_HAVE_NCCL

}  // namespace
}  // namespace mixvae::dist
