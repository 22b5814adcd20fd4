#pragma once
// Process-group communication on raw buffers. Torch-free on purpose: tensor helpers live
// in dist/tensor_ops.h, so the data and eval layers can use collectives without LibTorch.
//
// Back ends: a world of one (no MPI needed, e.g. a plain `mixvae train`), MPI, and NCCL
// for device buffers (comm_nccl.cpp, built where the CUDA runtime and nccl.h are found).
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <vector>

namespace mixvae::dist {

enum class ReduceOp { Sum, Max, Min };
enum class DType { F32, F64, I64, I32, U8 };

size_t dtype_size(DType t);
template <class T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::F32;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::F64;
}
template <>
constexpr DType dtype_of<int64_t>() {
  return DType::I64;
}
template <>
constexpr DType dtype_of<int32_t>() {
  return DType::I32;
}
template <>
constexpr DType dtype_of<uint8_t>() {
  return DType::U8;
}

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const = 0;

  // In place: every rank ends with the reduction over all ranks.
  virtual void all_reduce(void* data, size_t count, DType type, ReduceOp op) = 0;
  virtual void broadcast(void* data, size_t count, DType type, int root) = 0;
  // recv holds size() * count elements, rank r's block at r * count.
  virtual void all_gather(const void* send, void* recv, size_t count, DType type) = 0;
  virtual void barrier() = 0;
  // Ranks with the same colour form a new group, ordered by key (then by old rank).
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;
  // Ends every process of the job (MPI_Abort on MPI); never returns.
  [[noreturn]] virtual void abort(int exit_code) = 0;

  // A collective that waits longer than `seconds` for the other ranks ends the job (exit
  // code kExitCollectiveTimeout) with one line naming the operation, its sequence number on
  // this communicator and the ranks that did not arrive (MPI back end: a watchdog thread
  // per communicator; the NCCL back end has its own timeout). 0: wait forever. Every rank
  // of the communicator must set the same value. The default handler prints and aborts;
  // tests pass one that records the message.
  using TimeoutHandler = void (*)(const std::string& message, void* context);
  virtual void set_timeout(double seconds, TimeoutHandler handler = nullptr, void* context = nullptr) {
    (void)seconds;
    (void)handler;
    (void)context;
  }
  // Collectives issued on this communicator so far (the sequence numbers in timeout messages).
  virtual uint64_t collectives() const { return 0; }
  // Whether a thread other than the one that made the communicator may issue its
  // collectives (one thread at a time, in the same order on every rank): MPI at
  // MPI_THREAD_MULTIPLE. GradReducer's overlapped all-reduce needs it.
  virtual bool collectives_from_any_thread() const { return false; }

  // Typed conveniences.
  template <class T>
  void all_reduce(std::vector<T>& v, ReduceOp op = ReduceOp::Sum) {
    if (!v.empty()) all_reduce(v.data(), v.size(), dtype_of<T>(), op);
  }
  template <class T>
  T all_reduce_value(T x, ReduceOp op = ReduceOp::Sum) {
    all_reduce(&x, 1, dtype_of<T>(), op);
    return x;
  }
  template <class T>
  void broadcast(std::vector<T>& v, int root) {
    if (!v.empty()) broadcast(v.data(), v.size(), dtype_of<T>(), root);
  }
  template <class T>
  std::vector<T> all_gather_value(T x) {
    std::vector<T> out(static_cast<size_t>(size()));
    all_gather(&x, out.data(), 1, dtype_of<T>());
    return out;
  }
  void broadcast_string(std::string& s, int root);
};

// The collective timeout of `comm` for a scope (a run): set on entry, off (0) at exit, so
// that a sweep's group can wait for its next run as long as it takes.
class ScopedTimeout {
 public:
  ScopedTimeout(Communicator& comm, double seconds) : comm_(comm) { comm_.set_timeout(seconds); }
  ~ScopedTimeout() { comm_.set_timeout(0); }
  ScopedTimeout(const ScopedTimeout&) = delete;
  ScopedTimeout& operator=(const ScopedTimeout&) = delete;

 private:
  Communicator& comm_;
};

// A world of one: every collective is the identity.
std::unique_ptr<Communicator> make_self_communicator();

// True when this process was started by mpirun/srun/a PMI launcher.
bool launched_by_mpi();

// The world: MPI_COMM_WORLD when launched by an MPI launcher (MPI is initialised here and
// finalised at exit), otherwise a world of one. Thread level MPI_THREAD_MULTIPLE (the
// collective watchdog answers its peers from its own thread).
std::unique_ptr<Communicator> make_world(int* argc, char*** argv);

// "Open MPI v4.1.4" or the like (callable before MPI is initialised).
std::string mpi_library_version();

// Finalises MPI if make_world initialised it. Safe to call more than once.
void finalize();

// Runs fn on every rank and makes the outcome collective: if any rank throws a UsageError
// or DataError, every rank throws the same error (the lowest failing rank's message), so
// no rank is left waiting in a later collective and the message is printed once by rank 0.
// Other exceptions propagate as they are (main aborts the job for those).
template <class Fn>
void agree(Communicator& comm, Fn&& fn);

// True once agree() has thrown: every rank holds the same error, so main can print it on
// rank 0 and exit normally instead of aborting the job.
bool last_error_was_collective();

// Implementation details of agree().
bool classify_error(const std::exception& e, int* kind);
void agree_impl(Communicator& comm, int kind, const std::string& message);

template <class Fn>
void agree(Communicator& comm, Fn&& fn) {
  int kind = 0;  // 0 ok, 1 usage, 2 data
  std::string msg;
  try {
    fn();
  } catch (const std::exception& e) {
    if (!classify_error(e, &kind)) throw;
    msg = e.what();
  }
  agree_impl(comm, kind, msg);
}

}  // namespace mixvae::dist
