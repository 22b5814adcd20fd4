// GoogleTest main for the MPI tests: initialises MPI through mixvae's world (or a world
// of one when started without mpirun), prints results on rank 0 only, and makes the
// exit code agree across ranks so mpirun reports any rank's failure.
#include <gtest/gtest.h>
#include <mpi.h>

#include "mpi_world.h"

namespace mixvae::test {
dist::Communicator* g_world = nullptr;
}

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  auto world = mixvae::dist::make_world(&argc, &argv);
  mixvae::test::g_world = world.get();
  if (world->rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int rc = RUN_ALL_TESTS();
  int64_t worst = world->all_reduce_value<int64_t>(rc, mixvae::dist::ReduceOp::Max);
  world.reset();
  mixvae::dist::finalize();
  return static_cast<int>(worst);
}
