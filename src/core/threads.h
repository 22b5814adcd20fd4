#pragma once
// How many compute threads one rank should use: the machine's cores shared among the
// ranks that run on this node (Debian's LibTorch starts with one thread otherwise).
namespace mixvae {

// Ranks on this node, from the launcher's environment (Open MPI, Slurm, MPICH); 1 alone.
int local_ranks();
// This rank's index on its node (GPU selection), 0 alone.
int local_rank();
// max(1, usable cores / local_ranks()); usable cores honour the CPU affinity mask.
int default_threads();

}  // namespace mixvae
