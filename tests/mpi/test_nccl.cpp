// The NCCL back end across ranks. Runs only where every rank has a GPU of its own; the
// decision is taken collectively, so all ranks skip together and nothing waits on a rank
// that skipped. A failed set-up is checked everywhere: it must be one error on all ranks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/threads.h"
#include "dist/nccl_communicator.h"
#include "mpi_world.h"

#ifdef MIXVAE_HAVE_NCCL
#include <cuda_runtime_api.h>

#include "device_vec.h"
#endif

using namespace mixvae;
using test::world;

namespace {

// True on every rank when every rank has a GPU of its own (local ranks 0..L-1 of a node
// take devices local_rank % count, so each needs local_rank < count); false on all ranks
// otherwise, with the reason printed once.
bool every_rank_has_a_gpu(std::string* why) {
  const int count = dist::cuda_device_count();
  const int64_t ok = dist::nccl_available() && local_rank() < count ? 1 : 0;
  if (world().all_reduce_value<int64_t>(ok, dist::ReduceOp::Min) == 1) return true;
  const int64_t fewest = world().all_reduce_value<int64_t>(count, dist::ReduceOp::Min);
  *why = "fewer GPUs than ranks on a node (" + std::to_string(world().size()) +
         " ranks, the fewest any rank sees: " + std::to_string(fewest) + "): NCCL MPI tests skipped (built with NCCL " +
         dist::nccl_version() + ")";
  return false;
}

#define SKIP_UNLESS_EVERY_RANK_HAS_A_GPU() \
  std::string why_skipped;                 \
  if (!every_rank_has_a_gpu(&why_skipped)) GTEST_SKIP() << why_skipped

}  // namespace

// Rank 1 (or every rank, without GPUs) asks for a device it does not have: all ranks throw
// the same UsageError, naming the lowest failing rank, instead of waiting on each other.
TEST(NcclMpi, ASetupFailureIsTheSameErrorOnEveryRank) {
  auto& w = world();
  const int device = w.rank() == w.size() - 1 ? 9999 : std::max(0, dist::local_device());
  std::string msg;
  try {
    dist::make_nccl_communicator(w, device, 60);
    FAIL() << "make_nccl_communicator should have thrown on rank " << w.rank();
  } catch (const UsageError& e) {
    msg = e.what();
  }
  if (!dist::nccl_available()) {
    EXPECT_NE(msg.find("built without NCCL"), std::string::npos) << msg;
    return;
  }
  EXPECT_EQ(msg.rfind("NCCL setup failed on rank ", 0), 0u) << msg;
  std::string from_zero = msg;
  w.broadcast_string(from_zero, 0);
  EXPECT_EQ(msg, from_zero);
}

#ifdef MIXVAE_HAVE_NCCL

namespace {
using test::DeviceVec;

template <class T>
void check_all_reduce(dist::NcclCommunicator& c) {
  const int r = c.rank(), w = c.size();
  for (dist::ReduceOp op : {dist::ReduceOp::Sum, dist::ReduceOp::Max, dist::ReduceOp::Min}) {
    DeviceVec<T> d(std::vector<T>{T(r + 1), T(2 * (r + 1)), T(7)});
    c.all_reduce(d.get(), 3, dist::dtype_of<T>(), op);
    std::vector<T> expect;
    if (op == dist::ReduceOp::Sum) expect = {T(w * (w + 1) / 2), T(w * (w + 1)), T(7 * w)};
    if (op == dist::ReduceOp::Max) expect = {T(w), T(2 * w), T(7)};
    if (op == dist::ReduceOp::Min) expect = {T(1), T(2), T(7)};
    EXPECT_EQ(d.host(), expect) << "op " << int(op) << " on rank " << r;
  }
}
}  // namespace

TEST(NcclMpi, AllReduceBroadcastAndAllGatherAcrossRanks) {
  SKIP_UNLESS_EVERY_RANK_HAS_A_GPU();
  auto& w = world();
  auto c = dist::make_nccl_communicator(w, dist::local_device(), 120);
  ASSERT_EQ(c->rank(), w.rank());
  ASSERT_EQ(c->size(), w.size());
  check_all_reduce<float>(*c);
  check_all_reduce<double>(*c);
  check_all_reduce<int64_t>(*c);
  check_all_reduce<int32_t>(*c);
  check_all_reduce<uint8_t>(*c);

  const int last = w.size() - 1;
  DeviceVec<double> b(std::vector<double>(5, w.rank() == last ? 3.25 : -1.0));
  c->broadcast(b.get(), 5, dist::DType::F64, last);
  EXPECT_EQ(b.host(), std::vector<double>(5, 3.25));

  const size_t n = 4;
  std::vector<int64_t> mine(n);
  for (size_t i = 0; i < n; ++i) mine[i] = 100 * w.rank() + int64_t(i);
  DeviceVec<int64_t> send(mine), recv(std::vector<int64_t>(n * w.size(), -1));
  c->all_gather(send.get(), recv.get(), n, dist::DType::I64);
  std::vector<int64_t> expect;
  for (int q = 0; q < w.size(); ++q)
    for (size_t i = 0; i < n; ++i) expect.push_back(100 * q + int64_t(i));
  EXPECT_EQ(recv.host(), expect);

  // Buckets as one group; host values through the bootstrap; a barrier.
  DeviceVec<float> g1(std::vector<float>(3000, 1.0f)), g2(std::vector<float>(5, float(w.rank())));
  c->group_start();
  c->all_reduce(g1.get(), 3000, dist::DType::F32, dist::ReduceOp::Sum);
  c->all_reduce(g2.get(), 5, dist::DType::F32, dist::ReduceOp::Sum);
  c->group_end();
  EXPECT_EQ(g1.host(), std::vector<float>(3000, float(w.size())));
  EXPECT_EQ(g2.host(), std::vector<float>(5, float(w.size() * (w.size() - 1) / 2)));
  EXPECT_EQ(c->all_reduce_value<int64_t>(w.rank() + 1), int64_t(w.size()) * (w.size() + 1) / 2);
  c->barrier();
}

TEST(NcclMpi, SplitFormsDeviceGroups) {
  SKIP_UNLESS_EVERY_RANK_HAS_A_GPU();
  auto& w = world();
  auto c = dist::make_nccl_communicator(w, dist::local_device(), 120);
  // Every rank alone.
  auto solo = c->split_nccl(w.rank(), 0);
  EXPECT_EQ(solo->size(), 1);
  EXPECT_EQ(solo->rank(), 0);
  DeviceVec<int64_t> x(std::vector<int64_t>{5});
  solo->all_reduce(x.get(), 1, dist::DType::I64, dist::ReduceOp::Sum);
  EXPECT_EQ(x.host(), std::vector<int64_t>{5});
  // All in one group, keyed in reverse: renumbered, and the reduction spans everybody.
  auto rev = c->split_nccl(0, w.size() - w.rank());
  EXPECT_EQ(rev->size(), w.size());
  EXPECT_EQ(rev->rank(), w.size() - 1 - w.rank());
  EXPECT_EQ(rev->bootstrap().rank(), rev->rank());
  DeviceVec<int64_t> send(std::vector<int64_t>{int64_t(rev->rank())}), recv(std::vector<int64_t>(w.size(), -1));
  rev->all_gather(send.get(), recv.get(), 1, dist::DType::I64);
  std::vector<int64_t> expect(w.size());
  for (int q = 0; q < w.size(); ++q) expect[q] = q;
  EXPECT_EQ(recv.host(), expect);
  rev->barrier();
}

#endif  // MIXVAE_HAVE_NCCL
