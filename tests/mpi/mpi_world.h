#pragma once
#include "dist/communicator.h"

namespace mixvae::test {
// The world communicator of the test process (2 ranks under mpirun, 1 alone).
extern dist::Communicator* g_world;
inline dist::Communicator& world() { return *g_world; }
}  // namespace mixvae::test
