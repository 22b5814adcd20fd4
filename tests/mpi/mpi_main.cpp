// GoogleTest main for the MPI tests: initialises MPI through mixvae's world (or a world
// of one when started without mpirun), prints results on rank 0 only (other ranks print
// only their failures, prefixed with the rank), and makes the exit code agree across ranks
// so mpirun reports any rank's failure.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>

#include "mpi_world.h"

namespace mixvae::test {
dist::Communicator* g_world = nullptr;
}

namespace {
// Rank r > 0: each failed assertion and failed test on one line group, "[rank r] ...".
class FailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (!r.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: Failure\n%s\n", rank_, r.file_name() ? r.file_name() : "?", r.line_number(),
                 r.message());
  }
  void OnTestEnd(const ::testing::TestInfo& t) override {
    if (t.result()->Failed()) std::fprintf(stderr, "[rank %d] FAILED %s.%s\n", rank_, t.test_suite_name(), t.name());
  }

 private:
  int rank_;
};
}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  auto world = mixvae::dist::make_world(&argc, &argv);
  mixvae::test::g_world = world.get();
  if (world->rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new FailurePrinter(world->rank()));
  }
  int rc = RUN_ALL_TESTS();
  int64_t worst = world->all_reduce_value<int64_t>(rc, mixvae::dist::ReduceOp::Max);
  world.reset();
  mixvae::dist::finalize();
  return static_cast<int>(worst);
}
