// NCCL back end of Communicator (see nccl_communicator.h). Compiled in every build so the
// entry points always exist; the NCCL part only when CMake found the CUDA runtime and NCCL
// (MIXVAE_HAVE_NCCL). Nothing here needs LibTorch, so CI compiles it against a CPU LibTorch.
#include "core/errors.h"
#include "core/threads.h"
#include "dist/nccl_communicator.h"

#ifdef MIXVAE_HAVE_NCCL
#include <cuda_runtime_api.h>
#include <nccl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <sstream>
#include <stdexcept>
#include <thread>

#if NCCL_VERSION_CODE < NCCL_VERSION(2, 14, 0)
#error "mixvae's NCCL back end needs NCCL 2.14 or newer (nonblocking communicators)"
#endif
#endif

namespace mixvae::dist {

int local_device(int local_rank, int device_count) {
  if (device_count <= 0) return -1;
  return (local_rank < 0 ? 0 : local_rank) % device_count;
}

int local_device() { return local_device(local_rank(), cuda_device_count()); }

std::pair<int, int> shared_gpu_ranks(const std::vector<GpuSeat>& seats) {
  for (size_t a = 0; a < seats.size(); ++a)
    for (size_t b = a + 1; b < seats.size(); ++b)
      if (seats[a].host == seats[b].host && seats[a].pci_bus == seats[b].pci_bus) return {int(a), int(b)};
  return {-1, -1};
}

std::string describe_shared_gpu(const std::vector<GpuSeat>& seats, std::pair<int, int> ranks) {
  const auto [a, b] = ranks;
  if (a < 0 || b < 0 || size_t(b) >= seats.size()) return "";
  const GpuSeat& s = seats[size_t(a)];
  return "ranks " + std::to_string(a) + " and " + std::to_string(b) + " both use GPU " + s.pci_bus + " on " + s.host +
         " (" + std::to_string(s.node_ranks) + " rank(s) on that node, " + std::to_string(s.visible_gpus) +
         " GPU(s) visible to each)";
}

#ifndef MIXVAE_HAVE_NCCL

bool nccl_available() { return false; }
std::string nccl_version() { return ""; }
int cuda_device_count() { return 0; }

namespace {
[[noreturn]] void built_without_nccl() {
  throw UsageError(
      "this mixvae was built without NCCL (CMake found no CUDA runtime and nccl.h, or MIXVAE_WITH_NCCL=OFF), so "
      "the NCCL back end is not available: rebuild with NCCL (docs/gpu.md) or use the MPI back end");
}
}  // namespace

std::unique_ptr<NcclCommunicator> make_nccl_communicator(Communicator&, int, double) { built_without_nccl(); }
std::vector<GpuSeat> gpu_seats(Communicator&, int) { built_without_nccl(); }
std::unique_ptr<NcclCommunicator> make_nccl_communicator(std::unique_ptr<Communicator>, int, double) {
  built_without_nccl();
}

#else  // MIXVAE_HAVE_NCCL

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// NCCL's last-error text can span lines; our errors are one line.
std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  while (!s.empty() && (s.back() == ' ' || s.back() == '.')) s.pop_back();
  return s;
}

std::string cuda_error(cudaError_t e) { return std::string(cudaGetErrorName(e)) + " (" + cudaGetErrorString(e) + ")"; }

void check_cuda(cudaError_t e, const char* call) {
  if (e == cudaSuccess) return;
  cudaGetLastError();  // clear a sticky-free error so the next call does not report it again
  throw std::runtime_error(std::string(call) + " failed: " + cuda_error(e));
}

std::string nccl_error(ncclResult_t r, ncclComm_t comm) {
  std::string s = ncclGetErrorString(r);
  const char* last = ncclGetLastError(comm);
  if (last && *last) s += ": " + one_line(last);
  return s;
}

void check_nccl(ncclResult_t r, const char* call) {
  if (r != ncclSuccess) throw std::runtime_error(std::string(call) + " failed: " + nccl_error(r, nullptr));
}

ncclDataType_t to_nccl(DType t) {
  switch (t) {
    case DType::F32:
      return ncclFloat32;
    case DType::F64:
      return ncclFloat64;
    case DType::I64:
      return ncclInt64;
    case DType::I32:
      return ncclInt32;
    case DType::U8:
      return ncclUint8;
  }
  throw std::invalid_argument("NCCL: unknown DType");
}

ncclRedOp_t to_nccl(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum:
      return ncclSum;
    case ReduceOp::Max:
      return ncclMax;
    case ReduceOp::Min:
      return ncclMin;
  }
  throw std::invalid_argument("NCCL: unknown ReduceOp");
}

// Nonblocking: NCCL calls return ncclInProgress instead of blocking the host on a peer
// (initialisation, connection setup at the first collective, ncclGroupEnd), so the wait
// loop below stays in control and can enforce the timeout with ncclCommAbort.
ncclConfig_t nonblocking_config() {
  ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
  cfg.blocking = 0;
  return cfg;
}

// Device memory (or managed memory) goes to NCCL; host memory, pinned or not, to the
// bootstrap communicator.
bool on_device(const void* p) {
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
}

// Makes `device` current for the scope and restores the caller's device afterwards.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) : device_(device) {
    if (cudaGetDevice(&previous_) != cudaSuccess) {
      cudaGetLastError();
      previous_ = -1;
    }
    if (previous_ != device_) check_cuda(cudaSetDevice(device_), "cudaSetDevice");
  }
  ~DeviceGuard() {
    if (previous_ >= 0 && previous_ != device_) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int device_;
  int previous_ = -1;
};

// Short spins first (small all-reduces finish in microseconds), then sleeps growing to 2 ms.
void backoff(int round) {
  if (round < 200) {
    std::this_thread::yield();
    return;
  }
  const int shift = std::min(round - 200, 7);
  std::this_thread::sleep_for(std::chrono::microseconds(std::min(20 << shift, 2000)));
}

// Polls a communicator until no NCCL call on it is in progress. "" when it is ready,
// otherwise why not (error or timeout); the caller aborts.
std::string wait_ready(ncclComm_t comm, double timeout_s, const char* what) {
  const auto start = Clock::now();
  for (int round = 0;; ++round) {
    ncclResult_t state = ncclInProgress;
    ncclResult_t r = ncclCommGetAsyncError(comm, &state);
    if (r != ncclSuccess) return std::string("ncclCommGetAsyncError failed: ") + nccl_error(r, comm);
    if (state == ncclSuccess) return "";
    if (state != ncclInProgress) return std::string(what) + ": " + nccl_error(state, comm);
    if (timeout_s > 0 && seconds_since(start) > timeout_s) {
      std::ostringstream m;
      m << what << " timed out after " << timeout_s << " s (a rank did not join or is not responding)";
      return m.str();
    }
    backoff(round);
  }
}

// Throws the same UsageError on every rank of `boot` when any rank's `error` is set, so a
// failed set-up on one rank never leaves the others waiting for it.
void agree_setup(Communicator& boot, const std::string& error) {
  agree(boot, [&] {
    if (!error.empty()) throw UsageError("NCCL setup failed on rank " + std::to_string(boot.rank()) + ": " + error);
  });
}

std::string visible_devices_note() {
  const char* v = std::getenv("CUDA_VISIBLE_DEVICES");
  return v ? std::string(", CUDA_VISIBLE_DEVICES=") + v : std::string();
}

// Collective over `boot`: device checks, duplicate-GPU check, unique id from rank 0,
// ncclCommInitRankConfig. Leaves `device` current on the calling thread.
ncclComm_t create_comm(Communicator& boot, int device, double timeout_s) {
  const int rank = boot.rank(), size = boot.size();
  std::string error;
  ncclUniqueId id{};
  try {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
      cudaGetLastError();
      throw std::runtime_error("no usable CUDA device (cudaGetDeviceCount: " + cuda_error(e) + ")");
    }
    if (device < 0 || device >= count) {
      throw std::runtime_error("GPU " + std::to_string(device) + " requested but this process sees " +
                               std::to_string(count) + " CUDA device(s)" + visible_devices_note());
    }
    check_cuda(cudaSetDevice(device), "cudaSetDevice");
    if (rank == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
  } catch (const std::exception& ex) {
    error = ex.what();
  }
  agree_setup(boot, error);

  // NCCL hangs or fails obscurely when two ranks of one communicator share a GPU; say so.
  const std::vector<GpuSeat> seats = gpu_seats(boot, device);
  const auto shared = shared_gpu_ranks(seats);
  if (shared.first >= 0)
    error = describe_shared_gpu(seats, shared) +
            ": NCCL needs a distinct GPU per rank in one communicator (start at most one rank per GPU)";
  agree_setup(boot, error);

  boot.broadcast(&id, sizeof id, DType::U8, 0);
  ncclComm_t comm = nullptr;
  ncclConfig_t cfg = nonblocking_config();
  ncclResult_t r = ncclCommInitRankConfig(&comm, size, id, rank, &cfg);
  if (r != ncclSuccess && r != ncclInProgress) {
    error = "ncclCommInitRankConfig failed: " + nccl_error(r, comm);
  } else {
    // Start-up (topology discovery, shared-memory setup) takes about a second on one H100:
    // it gets at least 120 s whatever the collective timeout.
    error = wait_ready(comm, timeout_s > 0 ? std::max(timeout_s, 120.0) : 0.0, "ncclCommInitRankConfig");
  }
  if (!error.empty() && comm) {
    ncclCommAbort(comm);
    comm = nullptr;
  }
  try {
    agree_setup(boot, error);
  } catch (...) {
    if (comm) ncclCommAbort(comm);  // this rank's init worked, another's did not
    throw;
  }
  return comm;
}

class NcclComm final : public NcclCommunicator {
 public:
  NcclComm(Communicator* boot, ncclComm_t comm, int device, double timeout_s)
      : boot_(boot), comm_(comm), device_(device), timeout_(timeout_s) {
    rank_ = boot_->rank();
    size_ = boot_->size();
    try {
      DeviceGuard guard(device_);
      int nccl_rank = -1, nccl_size = -1;
      check_nccl(ncclCommUserRank(comm_, &nccl_rank), "ncclCommUserRank");
      check_nccl(ncclCommCount(comm_, &nccl_size), "ncclCommCount");
      if (nccl_rank != rank_ || nccl_size != size_) {
        throw std::logic_error("NCCL communicator is rank " + std::to_string(nccl_rank) + " of " +
                               std::to_string(nccl_size) + " but its bootstrap is rank " + std::to_string(rank_) +
                               " of " + std::to_string(size_));
      }
      check_cuda(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming), "cudaEventCreateWithFlags");
      check_cuda(cudaMalloc(&scratch_, sizeof(int64_t)), "cudaMalloc");
      check_cuda(cudaMemset(scratch_, 0, sizeof(int64_t)), "cudaMemset");
    } catch (...) {
      release(/*orderly=*/false);
      throw;
    }
  }

  ~NcclComm() override { release(/*orderly=*/std::uncaught_exceptions() == 0); }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "nccl"; }

  void set_stream(void* cuda_stream) override {
    if (group_depth_ > 0) throw std::logic_error("NcclCommunicator::set_stream inside a group");
    stream_ = static_cast<cudaStream_t>(cuda_stream);
  }
  void* stream() const override { return stream_; }
  int device() const override { return device_; }
  double timeout_seconds() const override { return timeout_; }
  uint64_t sequence() const override { return seq_; }
  Communicator& bootstrap() override { return *boot_; }

  void all_reduce(void* data, size_t count, DType type, ReduceOp op) override {
    if (count == 0) return;
    if (!on_device(data)) return boot_->all_reduce(data, count, type, op);
    issue("all_reduce", [&] { return ncclAllReduce(data, data, count, to_nccl(type), to_nccl(op), comm_, stream_); });
  }

  void broadcast(void* data, size_t count, DType type, int root) override {
    if (count == 0) return;
    if (!on_device(data)) return boot_->broadcast(data, count, type, root);
    issue("broadcast", [&] { return ncclBroadcast(data, data, count, to_nccl(type), root, comm_, stream_); });
  }

  void all_gather(const void* send, void* recv, size_t count, DType type) override {
    if (count == 0) return;
    const bool dev_send = on_device(send), dev_recv = on_device(recv);
    if (dev_send != dev_recv) {
      throw std::invalid_argument("NCCL all_gather: send and recv must both be device memory or both host memory");
    }
    if (!dev_send) return boot_->all_gather(send, recv, count, type);
    issue("all_gather", [&] { return ncclAllGather(send, recv, count, to_nccl(type), comm_, stream_); });
  }

  // A one-element all-reduce on the device, waited for like any collective: every rank has
  // reached it and this rank's stream has drained up to it.
  void barrier() override {
    if (group_depth_ > 0) throw std::logic_error("NcclCommunicator::barrier inside a group");
    issue("barrier", [&] { return ncclAllReduce(scratch_, scratch_, 1, ncclInt64, ncclSum, comm_, stream_); });
  }

  std::unique_ptr<Communicator> split(int color, int key) override { return split_nccl(color, key); }

  std::unique_ptr<NcclCommunicator> split_nccl(int color, int key) override {
    if (group_depth_ > 0) throw std::logic_error("NcclCommunicator::split inside a group");
    if (color < 0) throw std::invalid_argument("NcclCommunicator::split: colour must be >= 0");
    usable("split");
    const uint64_t seq = ++seq_;
    // The host side splits the same way, so the child keeps a bootstrap of the same ranks.
    auto child_boot = boot_->split(color, key);
    ncclComm_t child = nullptr;
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 18, 0)
    {
      DeviceGuard guard(device_);
      std::string error;
      ncclConfig_t cfg = nonblocking_config();
      ncclResult_t r = ncclCommSplit(comm_, color, key, &child, &cfg);
      if (r != ncclSuccess && r != ncclInProgress) {
        error = "ncclCommSplit failed: " + nccl_error(r, comm_);
      } else {
        error = wait_ready(comm_, timeout_, "ncclCommSplit");
        if (error.empty() && child) error = wait_ready(child, timeout_, "ncclCommSplit");
      }
      if (!error.empty() && child) {
        ncclCommAbort(child);
        child = nullptr;
      }
      if (!error.empty()) error = "split #" + std::to_string(seq) + ": " + error;
      try {
        agree_setup(*boot_, error);
      } catch (...) {
        if (child) ncclCommAbort(child);  // this rank's split worked, another's did not
        throw;
      }
    }
#else
    // No ncclCommSplit before 2.18: a fresh communicator over the split bootstrap.
    (void)seq;
    child = create_comm(*child_boot, device_, timeout_);
#endif
    Communicator* cb = child_boot.get();
    auto result = wrap(*boot_, cb, std::move(child_boot), child, device_, timeout_);
    result->stream_ = stream_;
    return result;
  }

  // Wraps a new NCCL communicator; agreed over `agree_over` so that no rank goes on with a
  // communicator that another rank failed to set up. Takes `owned` only on success.
  static std::unique_ptr<NcclComm> wrap(Communicator& agree_over, Communicator* boot,
                                        std::unique_ptr<Communicator> owned, ncclComm_t comm, int device,
                                        double timeout_s) {
    std::unique_ptr<NcclComm> result;
    std::string error;
    try {
      result = std::make_unique<NcclComm>(boot, comm, device, timeout_s);
    } catch (const std::exception& e) {
      error = e.what();
    }
    agree_setup(agree_over, error);
    result->owned_boot_ = std::move(owned);
    return result;
  }

  void group_start() override {
    usable("group_start");
    check_nccl(ncclGroupStart(), "ncclGroupStart");
    if (group_depth_++ == 0) {
      group_first_ = seq_ + 1;
      group_ops_ = 0;
      group_name_.clear();
    }
  }

  void group_end() override {
    usable("group_end");
    if (group_depth_ == 0) throw std::logic_error("NcclCommunicator::group_end without group_start");
    DeviceGuard guard(device_);
    const auto start = Clock::now();
    ncclResult_t r = ncclGroupEnd();
    --group_depth_;
    if (group_depth_ > 0) {
      if (r != ncclSuccess) fail(group_label(), group_first_, seq_, nccl_error(r, comm_));
      return;
    }
    if (group_ops_ == 0) return;
    if (r != ncclSuccess && r != ncclInProgress) fail(group_label(), group_first_, seq_, nccl_error(r, comm_));
    wait(group_label(), group_first_, seq_, start);
  }

  [[noreturn]] void abort(int exit_code) override {
    abort_nccl();
    boot_->abort(exit_code);
    std::_Exit(exit_code);  // not reached; the bootstrap's abort does not return
  }

 private:
  void usable(const char* op) const {
    if (!comm_) {
      throw std::runtime_error(std::string("NCCL ") + op + " on rank " + std::to_string(rank_) +
                               ": the NCCL communicator was aborted after an earlier error");
    }
  }

  // Issues one collective; outside a group, waits for it.
  template <class Launch>
  void issue(const char* op, Launch&& launch) {
    usable(op);
    DeviceGuard guard(device_);
    const uint64_t seq = ++seq_;
    const auto start = Clock::now();
    ncclResult_t r = launch();
    if (r != ncclSuccess && r != ncclInProgress) fail(op, seq, seq, nccl_error(r, comm_));
    if (group_depth_ > 0) {
      if (group_ops_++ == 0)
        group_name_ = op;
      else if (group_name_ != op)
        group_name_ = "collectives";
      return;
    }
    wait(op, seq, seq, start);
  }

  std::string group_label() const {
    return group_ops_ <= 1 ? group_name_ : group_name_ + " (group of " + std::to_string(group_ops_) + ")";
  }

  // Nonblocking NCCL first reports ncclInProgress until the operation is enqueued; only
  // then may the stream be touched, so the completion event is recorded after that. Both
  // phases poll the asynchronous error state and share one deadline.
  void wait(const std::string& op, uint64_t first, uint64_t last, Clock::time_point start) {
    bool recorded = false;
    for (int round = 0;; ++round) {
      ncclResult_t state = ncclInProgress;
      ncclResult_t r = ncclCommGetAsyncError(comm_, &state);
      if (r != ncclSuccess) fail(op, first, last, "ncclCommGetAsyncError failed: " + nccl_error(r, comm_));
      if (state != ncclSuccess && state != ncclInProgress) fail(op, first, last, nccl_error(state, comm_));
      if (state == ncclSuccess) {
        if (!recorded) {
          cudaError_t e = cudaEventRecord(done_, stream_);
          if (e != cudaSuccess) {
            cudaGetLastError();
            fail(op, first, last, "cudaEventRecord failed: " + cuda_error(e));
          }
          recorded = true;
        }
        cudaError_t e = cudaEventQuery(done_);
        if (e == cudaSuccess) return;
        if (e != cudaErrorNotReady) {
          cudaGetLastError();
          fail(op, first, last, "CUDA error while waiting: " + cuda_error(e));
        }
      }
      if (timeout_ > 0 && seconds_since(start) > timeout_) {
        std::ostringstream m;
        m << "timed out after " << timeout_ << " s (another rank did not join or is not responding)";
        fail(op, first, last, m.str());
      }
      backoff(round);
    }
  }

  [[noreturn]] void fail(const std::string& op, uint64_t first, uint64_t last, const std::string& why) {
    abort_nccl();
    std::ostringstream m;
    m << "NCCL " << op << " #" << first;
    if (last != first) m << "-#" << last;
    m << " failed on rank " << rank_ << " of " << size_ << " (GPU " << device_ << "): " << why
      << "; NCCL communicator aborted";
    throw std::runtime_error(one_line(m.str()));
  }

  void abort_nccl() noexcept {
    // An open group holds this communicator's queued work: close it before the abort frees it.
    for (; group_depth_ > 0; --group_depth_) ncclGroupEnd();
    if (comm_) {
      ncclCommAbort(comm_);
      comm_ = nullptr;
    }
  }

  // Orderly: finalize (flush, wait until quiescent within the timeout), then destroy. While
  // an exception unwinds, or when finalize fails, abort instead: a peer may be gone.
  void release(bool orderly) noexcept {
    int previous = -1;
    if (cudaGetDevice(&previous) != cudaSuccess) previous = -1;
    if (previous != device_) cudaSetDevice(device_);
    if (comm_) {
      for (; group_depth_ > 0; --group_depth_) ncclGroupEnd();
      bool finalized = false;
      if (orderly) {
        ncclResult_t r = ncclCommFinalize(comm_);
        finalized =
            (r == ncclSuccess || r == ncclInProgress) && wait_ready(comm_, timeout_, "ncclCommFinalize").empty();
      }
      if (finalized) {
        ncclCommDestroy(comm_);
      } else {
        ncclCommAbort(comm_);
      }
      comm_ = nullptr;
    }
    if (done_) cudaEventDestroy(done_);
    if (scratch_) cudaFree(scratch_);
    done_ = nullptr;
    scratch_ = nullptr;
    cudaGetLastError();
    if (previous >= 0 && previous != device_) cudaSetDevice(previous);
  }

  Communicator* boot_;
  std::unique_ptr<Communicator> owned_boot_;  // set when this communicator owns its bootstrap
  ncclComm_t comm_;
  int device_;
  double timeout_;
  int rank_ = 0;
  int size_ = 1;
  cudaStream_t stream_ = nullptr;  // the legacy default stream
  cudaEvent_t done_ = nullptr;
  void* scratch_ = nullptr;  // barrier's one int64 on the device
  uint64_t seq_ = 0;
  int group_depth_ = 0;
  uint64_t group_first_ = 0;
  int group_ops_ = 0;
  std::string group_name_;
};

std::unique_ptr<NcclCommunicator> make(Communicator* boot, std::unique_ptr<Communicator> owned, int device,
                                       double timeout_s) {
  if (!(timeout_s >= 0)) {
    throw UsageError("NCCL timeout must be >= 0 seconds (0 = no limit), got " + std::to_string(timeout_s));
  }
  ncclComm_t comm = create_comm(*boot, device, timeout_s);
  return NcclComm::wrap(*boot, boot, std::move(owned), comm, device, timeout_s);
}

}  // namespace

bool nccl_available() { return true; }

std::vector<GpuSeat> gpu_seats(Communicator& comm, int device) {
  // Host name, then the GPU's PCI bus id at offset 96 ("0000:3B:00.0"); then the counts.
  std::array<char, 128> where{};
  std::string error;
  if (gethostname(where.data(), 95) != 0) std::strcpy(where.data(), "?");
  const cudaError_t e = cudaDeviceGetPCIBusId(where.data() + 96, 32, device);
  if (e != cudaSuccess) {
    cudaGetLastError();
    error = "cannot name GPU " + std::to_string(device) + " (cudaDeviceGetPCIBusId: " + cuda_error(e) + ")" +
            visible_devices_note();
  }
  agree_setup(comm, error);
  const size_t n = size_t(comm.size());
  std::vector<char> all(where.size() * n);
  comm.all_gather(where.data(), all.data(), where.size(), DType::U8);
  const int64_t counts[2] = {local_ranks(), cuda_device_count()};
  std::vector<int64_t> all_counts(2 * n);
  comm.all_gather(counts, all_counts.data(), 2, DType::I64);
  std::vector<GpuSeat> seats(n);
  for (size_t r = 0; r < n; ++r) {
    const char* w = &all[r * where.size()];
    seats[r].host.assign(w, strnlen(w, 96));
    seats[r].pci_bus.assign(w + 96, strnlen(w + 96, 32));
    seats[r].node_ranks = int(all_counts[2 * r]);
    seats[r].visible_gpus = int(all_counts[2 * r + 1]);
  }
  return seats;
}

std::string nccl_version() {
  int v = 0;
  if (ncclGetVersion(&v) != ncclSuccess) return "?";
  // NCCL_VERSION(): X*1000+Y*100+Z up to 2.8, X*10000+Y*100+Z from 2.9 on.
  const int major = v >= 10000 ? v / 10000 : v / 1000;
  const int minor = v >= 10000 ? (v / 100) % 100 : (v / 100) % 10;
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(v % 100);
}

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

std::unique_ptr<NcclCommunicator> make_nccl_communicator(Communicator& bootstrap, int device, double timeout_seconds) {
  return make(&bootstrap, nullptr, device, timeout_seconds);
}

std::unique_ptr<NcclCommunicator> make_nccl_communicator(std::unique_ptr<Communicator> bootstrap, int device,
                                                         double timeout_seconds) {
  Communicator* boot = bootstrap.get();
  return make(boot, std::move(bootstrap), device, timeout_seconds);
}

#endif  // MIXVAE_HAVE_NCCL

}  // namespace mixvae::dist
