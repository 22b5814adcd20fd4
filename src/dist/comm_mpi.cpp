// MPI back end of Communicator (Open MPI on Debian; any MPI-3 library works).
#include <mpi.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "dist/communicator.h"

namespace mixvae::dist {
namespace {

bool g_we_initialised = false;

MPI_Datatype to_mpi(DType t) {
  switch (t) {
    case DType::F32: return MPI_FLOAT;
    case DType::F64: return MPI_DOUBLE;
    case DType::I64: return MPI_INT64_T;
    case DType::I32: return MPI_INT32_T;
    case DType::U8: return MPI_UINT8_T;
  }
  return MPI_BYTE;
}

MPI_Op to_mpi(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return MPI_SUM;
    case ReduceOp::Max: return MPI_MAX;
    case ReduceOp::Min: return MPI_MIN;
  }
  return MPI_SUM;
}

void check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) {
    char buf[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, buf, &len);
    throw std::runtime_error(std::string(what) + " failed: " + std::string(buf, len));
  }
}

// MPI counts are int: large buffers go in chunks.
constexpr size_t kMaxChunk = size_t(1) << 30;

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, bool owned) : comm_(comm), owned_(owned) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owned_ && !finalized) MPI_Comm_free(&comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }

  void all_reduce(void* data, size_t count, DType type, ReduceOp op) override {
    if (size_ == 1) return;
    char* p = static_cast<char*>(data);
    for (size_t off = 0; off < count; off += kMaxChunk) {
      size_t n = std::min(kMaxChunk, count - off);
      check(MPI_Allreduce(MPI_IN_PLACE, p + off * dtype_size(type), static_cast<int>(n),
                          to_mpi(type), to_mpi(op), comm_),
            "MPI_Allreduce");
    }
  }
  void broadcast(void* data, size_t count, DType type, int root) override {
    if (size_ == 1) return;
    char* p = static_cast<char*>(data);
    for (size_t off = 0; off < count; off += kMaxChunk) {
      size_t n = std::min(kMaxChunk, count - off);
      check(MPI_Bcast(p + off * dtype_size(type), static_cast<int>(n), to_mpi(type), root, comm_),
            "MPI_Bcast");
    }
  }
  void all_gather(const void* send, void* recv, size_t count, DType type) override {
    if (count > kMaxChunk) throw std::runtime_error("all_gather: block too large");
    check(MPI_Allgather(send, static_cast<int>(count), to_mpi(type), recv, static_cast<int>(count),
                        to_mpi(type), comm_),
          "MPI_Allgather");
  }
  void barrier() override { check(MPI_Barrier(comm_), "MPI_Barrier"); }
  std::unique_ptr<Communicator> split(int color, int key) override {
    MPI_Comm sub;
    check(MPI_Comm_split(comm_, color, key, &sub), "MPI_Comm_split");
    return std::make_unique<MpiCommunicator>(sub, true);
  }
  [[noreturn]] void abort(int exit_code) override {
    MPI_Abort(MPI_COMM_WORLD, exit_code);
    std::_Exit(exit_code);
  }

 private:
  MPI_Comm comm_;
  bool owned_;
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace

bool launched_by_mpi() {
  // Open MPI's mpirun, PMIx (srun --mpi=pmix), and PMI-1/2 launchers.
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"}) {
    if (std::getenv(v)) return true;
  }
  return false;
}

std::unique_ptr<Communicator> make_world(int* argc, char*** argv) {
  if (!launched_by_mpi()) return make_self_communicator();
  int initialised = 0;
  MPI_Initialized(&initialised);
  if (!initialised) {
    int provided = 0;
    check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    g_we_initialised = true;
  }
  return std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, false);
}

std::string mpi_library_version() {
  char buf[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(buf, &len);
  std::string v(buf, static_cast<size_t>(len));
  auto cut = v.find_first_of(",\n");
  return cut == std::string::npos ? v : v.substr(0, cut);
}

void finalize() {
  if (!g_we_initialised) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
  g_we_initialised = false;
}

}  // namespace mixvae::dist
