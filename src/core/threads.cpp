#include "core/threads.h"

#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace mixvae {
namespace {
int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  try {
    return std::stoi(v);
  } catch (...) {
    return fallback;
  }
}
}  // namespace

int local_ranks() {
  for (const char* v : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"}) {
    int n = env_int(v, 0);
    if (n > 0) return n;
  }
  // srun sets the step's tasks per node as "2", "2(x3)" or "3,2" (one entry per node
  // group); the leading count is this node's when the layout is uniform, which is what
  // `srun -n` on whole nodes gives.
  if (const char* v = std::getenv("SLURM_STEP_TASKS_PER_NODE")) {
    int n = std::atoi(v);
    if (n > 0) return n;
  }
  return 1;
}

int local_rank() {
  for (const char* v : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"}) {
    int n = env_int(v, -1);
    if (n >= 0) return n;
  }
  return 0;
}

int default_threads() {
  // Inside a Slurm step with --cpus-per-task, that is the share this rank was given
  // (srun does not always bind, so the affinity mask may still show the whole node).
  if (std::getenv("SLURM_STEP_ID")) {
    int n = env_int("SLURM_CPUS_PER_TASK", 0);
    if (n > 0) return n;
  }
  int cores = 0;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) cores = CPU_COUNT(&set);
  if (cores <= 0) cores = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  // mpirun binds each rank to one core by default; the affinity mask then says 1 and
  // dividing again would be wrong. Divide only when the mask covers the whole node.
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  int per = cores;
  if (cores >= online) per = cores / local_ranks();
  return per < 1 ? 1 : per;
}

}  // namespace mixvae
