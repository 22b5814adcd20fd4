// MPI back end of Communicator (Open MPI on Debian; any MPI-3 library works).
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/errors.h"
#include "dist/communicator.h"

namespace mixvae::dist {
namespace {

bool g_we_initialised = false;

// The watchdog calls MPI from its own thread: only legal at MPI_THREAD_MULTIPLE.
bool thread_multiple() {
  int level = MPI_THREAD_SINGLE;
  MPI_Query_thread(&level);
  return level >= MPI_THREAD_MULTIPLE;
}

MPI_Datatype to_mpi(DType t) {
  switch (t) {
    case DType::F32:
      return MPI_FLOAT;
    case DType::F64:
      return MPI_DOUBLE;
    case DType::I64:
      return MPI_INT64_T;
    case DType::I32:
      return MPI_INT32_T;
    case DType::U8:
      return MPI_UINT8_T;
  }
  return MPI_BYTE;
}

MPI_Op to_mpi(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum:
      return MPI_SUM;
    case ReduceOp::Max:
      return MPI_MAX;
    case ReduceOp::Min:
      return MPI_MIN;
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

// ---- Collective watchdog -------------------------------------------------------------
// Blocking collectives stay the fast path (Open MPI's nonblocking ones, polled, were up to
// 1.6x slower on a 16 MB bucket). Around each one the main thread records which collective
// it is in (sequence number, operation, start time: three atomics). A watchdog thread per
// communicator wakes every 50 ms: it answers its peers' "where are you?" queries on a
// duplicate of the communicator, and when this rank has waited in one collective longer
// than the timeout it asks every peer, waits a short grace period for the answers, and
// ends the job naming the ranks that have not arrived (no answer: stopped, hung or dead;
// an answer: still busy before that collective).

enum Op : int { kNone = 0, kAllReduce, kBroadcast, kAllGather, kBarrier, kSplit };
const char* op_name(int op) {
  switch (op) {
    case kAllReduce:
      return "all_reduce";
    case kBroadcast:
      return "broadcast";
    case kAllGather:
      return "all_gather";
    case kBarrier:
      return "barrier";
    case kSplit:
      return "split";
  }
  return "none";
}
constexpr int kTagQuery = 7101, kTagReply = 7102;

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// What the main thread is doing on one communicator.
struct Progress {
  std::atomic<uint64_t> seq{0};   // collectives entered so far (the current one's number)
  std::atomic<int> op{kNone};     // the current one, kNone between collectives
  std::atomic<int64_t> since{0};  // when it was entered / the last one was left (ms)
};

void default_timeout_handler(const std::string& message, void*) {
  // Once per process, whatever calls it again while MPI_Abort takes the job down.
  static std::atomic<bool> told{false};
  if (!told.exchange(true)) std::cerr << "mixvae: error: " << message << std::endl;
  MPI_Abort(MPI_COMM_WORLD, kExitCollectiveTimeout);
  std::_Exit(kExitCollectiveTimeout);
}

class Watchdog {
 public:
  Watchdog(MPI_Comm ctl, const Progress* p, double timeout_s, Communicator::TimeoutHandler handler, void* context)
      : ctl_(ctl),
        p_(p),
        timeout_ms_(int64_t(timeout_s * 1000)),
        handler_(handler ? handler : default_timeout_handler),
        context_(context) {
    MPI_Comm_rank(ctl_, &rank_);
    MPI_Comm_size(ctl_, &size_);
    thread_ = std::thread([this] { loop(); });
  }
  ~Watchdog() {
    stop_ = true;
    thread_.join();
  }

 private:
  MPI_Comm ctl_;
  const Progress* p_;
  int64_t timeout_ms_;
  Communicator::TimeoutHandler handler_;
  void* context_;
  int rank_ = 0, size_ = 1;
  int64_t query_id_ = 0;
  uint64_t reported_ = 0;  // the collective already reported (a custom handler may return)
  std::atomic<bool> stop_{false};
  std::thread thread_;
  // Queries sent with MPI_Isend, each with the buffer it reads: kept until MPI_Test says the
  // send is complete (a peer that is stopped receives it only when continued, possibly
  // long after report() returned). Only finish_sends' last resort frees a request that is
  // still pending, and it keeps that buffer.
  struct PendingSend {
    std::unique_ptr<int64_t> value;  // on the heap: stays put when pending_ grows
    MPI_Request request = MPI_REQUEST_NULL;
  };
  std::vector<PendingSend> pending_;

  // Drops the sends that have completed.
  void test_sends() {
    for (auto it = pending_.begin(); it != pending_.end();) {
      int done = 0;
      MPI_Test(&it->request, &done, MPI_STATUS_IGNORE);
      it = done ? pending_.erase(it) : std::next(it);
    }
  }
  // When the watchdog ends: the sends get a moment to complete; one whose peer never
  // receives it (dead, or hung outside MPI) keeps its buffer for the rest of the process
  // (8 bytes, leaked on purpose: MPI may still read it).
  void finish_sends() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) {  // MPI is gone, and with it every pending operation
      pending_.clear();
      return;
    }
    for (const int64_t end = now_ms() + 1000; !pending_.empty() && now_ms() < end;) {
      test_sends();
      if (!pending_.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    for (auto& s : pending_) {
      MPI_Request_free(&s.request);  // the buffer below is never freed
      (void)s.value.release();
    }
    pending_.clear();
  }

  // The wait is counted in this thread's own ticks, not read off the wall clock: a gap
  // between two ticks longer than kMaxTickMs means this process did not run (stopped with
  // SIGSTOP, or not scheduled) and counts as kMaxTickMs. Otherwise the rank that was
  // stopped would, once continued (Open MPI sends SIGCONT before killing the job), find
  // its own collective "late" and blame the rank that reported it (seen in 2 of 60 runs
  // of test_faults: a second, wrong timeout line from the stopped rank).
  static constexpr int64_t kTickMs = 50, kMaxTickMs = 250;

  void loop() {
    uint64_t counted_seq = 0;  // the collective whose wait is being counted
    int64_t waited = 0, last = now_ms();
    while (!stop_) {
      serve();
      test_sends();
      const int64_t now = now_ms();
      const int64_t step = std::min(now - last, kMaxTickMs);
      last = now;
      const int op = p_->op.load();
      const uint64_t seq = p_->seq.load();
      if (op == kNone) {
        counted_seq = 0;
      } else if (seq != counted_seq) {  // entered since the last tick: at most one step ago
        counted_seq = seq;
        waited = std::clamp<int64_t>(now - p_->since.load(), 0, step);
      } else {
        waited += step;
      }
      if (op != kNone && seq == counted_seq && seq != reported_ && waited > timeout_ms_) {
        reported_ = seq;
        report(seq, op);
        last = now_ms();  // the time spent asking was counted there
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(kTickMs));
    }
    finish_sends();
  }

  // Answers every waiting query with {query id, sequence, op, ms since entered/left}.
  void serve() {
    for (;;) {
      int flag = 0;
      MPI_Status st;
      MPI_Iprobe(MPI_ANY_SOURCE, kTagQuery, ctl_, &flag, &st);
      if (!flag) return;
      int64_t qid = 0;
      MPI_Recv(&qid, 1, MPI_INT64_T, st.MPI_SOURCE, kTagQuery, ctl_, MPI_STATUS_IGNORE);
      int64_t reply[4] = {qid, int64_t(p_->seq.load()), int64_t(p_->op.load()), now_ms() - p_->since.load()};
      MPI_Send(reply, 4, MPI_INT64_T, st.MPI_SOURCE, kTagReply, ctl_);  // small: sent eagerly
    }
  }

  // World rank of a rank of this communicator, for messages.
  int world_rank(int r) const {
    MPI_Group g, w;
    MPI_Comm_group(ctl_, &g);
    MPI_Comm_group(MPI_COMM_WORLD, &w);
    int out = -1;
    MPI_Group_translate_ranks(g, 1, &r, w, &out);
    MPI_Group_free(&g);
    MPI_Group_free(&w);
    return out;
  }

  void report(uint64_t seq, int op) {
    const int64_t qid = ++query_id_;
    for (int r = 0; r < size_; ++r) {
      if (r == rank_) continue;
      pending_.push_back({std::make_unique<int64_t>(qid), MPI_REQUEST_NULL});
      MPI_Isend(pending_.back().value.get(), 1, MPI_INT64_T, r, kTagQuery, ctl_, &pending_.back().request);
    }
    // Answers: every peer that is alive answers within 50 ms; allow a few seconds.
    const int64_t grace = std::min<int64_t>(5000, std::max<int64_t>(1000, timeout_ms_ / 4));
    std::vector<std::vector<int64_t>> answer(static_cast<size_t>(size_));
    int answered = 0;
    for (const int64_t end = now_ms() + grace; answered < size_ - 1 && now_ms() < end;) {
      serve();
      test_sends();
      int flag = 0;
      MPI_Status st;
      MPI_Iprobe(MPI_ANY_SOURCE, kTagReply, ctl_, &flag, &st);
      if (!flag) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      int64_t reply[4];
      MPI_Recv(reply, 4, MPI_INT64_T, st.MPI_SOURCE, kTagReply, ctl_, MPI_STATUS_IGNORE);
      if (reply[0] != qid || !answer[size_t(st.MPI_SOURCE)].empty()) continue;  // an older query's answer
      answer[size_t(st.MPI_SOURCE)] = {reply[1], reply[2], reply[3]};
      ++answered;
    }
    if (p_->seq.load() != seq || p_->op.load() == kNone) return;  // it finished while we asked: nothing to report
    auto name = [&](int r) {
      std::string n = "rank " + std::to_string(r);
      const int w = world_rank(r);
      if (w != r) n += " (world rank " + std::to_string(w) + ")";
      return n;
    };
    std::ostringstream missing, arrived;
    int n_missing = 0, lowest_arrived = rank_;
    arrived << name(rank_);
    for (int r = 0; r < size_; ++r) {
      if (r == rank_) continue;
      const auto& a = answer[size_t(r)];
      if (!a.empty() && uint64_t(a[0]) >= seq) {  // in it (or past it: a root that is done)
        arrived << ", " << r;
        lowest_arrived = std::min(lowest_arrived, r);
        continue;
      }
      missing << (n_missing++ ? "; " : "") << name(r);
      if (a.empty())
        missing << " did not answer (stopped, hung or dead)";
      else if (a[1] == kNone)
        missing << " has not reached it (busy outside collectives for " << a[2] / 1000.0 << " s, since #" << a[0]
                << ")";
      else
        missing << " waits in " << op_name(int(a[1])) << " #" << a[0] << " (a different collective)";
    }
    std::ostringstream m;
    m << "MPI " << op_name(op) << " #" << seq << " on rank " << rank_ << " of " << size_ << " did not finish within "
      << timeout_ms_ / 1000.0 << " s (dist.timeout_s): ";
    if (n_missing)
      m << missing.str() << "; arrived: " << arrived.str();
    else
      m << "every rank answered that it is in it (a network or MPI problem)";
    // One rank tells: the lowest that arrived. The others end the job a little later if it
    // has not already (MPI_Abort from that rank ends every process).
    if (rank_ != lowest_arrived) {
      for (const int64_t end = now_ms() + 2 * grace + 2000; now_ms() < end && !stop_;) {
        serve();
        test_sends();
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      if (stop_ || p_->seq.load() != seq || p_->op.load() == kNone) return;
    }
    handler_(m.str(), context_);
  }
};

// Marks the main thread inside collective `op` for the watchdog.
class InCollective {
 public:
  InCollective(Progress& p, int op) : p_(p) {
    p_.since.store(now_ms());
    p_.seq.fetch_add(1);
    p_.op.store(op);
  }
  ~InCollective() {
    p_.op.store(kNone);
    p_.since.store(now_ms());
  }

 private:
  Progress& p_;
};

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, bool owned) : comm_(comm), owned_(owned) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    if (size_ > 1) check(MPI_Comm_dup(comm_, &ctl_), "MPI_Comm_dup");  // the watchdog's channel
    progress_.since.store(now_ms());
  }
  ~MpiCommunicator() override {
    watchdog_.reset();
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    if (ctl_ != MPI_COMM_NULL) MPI_Comm_free(&ctl_);
    if (owned_) MPI_Comm_free(&comm_);
  }
  void set_timeout(double seconds, TimeoutHandler handler, void* context) override {
    watchdog_.reset();
    if (seconds > 0 && size_ > 1 && thread_multiple())
      watchdog_ = std::make_unique<Watchdog>(ctl_, &progress_, seconds, handler, context);
  }
  uint64_t collectives() const override { return progress_.seq.load(); }
  bool collectives_from_any_thread() const override { return thread_multiple(); }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }

  void all_reduce(void* data, size_t count, DType type, ReduceOp op) override {
    if (size_ == 1) return;
    InCollective in(progress_, kAllReduce);
    char* p = static_cast<char*>(data);
    for (size_t off = 0; off < count; off += kMaxChunk) {
      size_t n = std::min(kMaxChunk, count - off);
      check(
          MPI_Allreduce(MPI_IN_PLACE, p + off * dtype_size(type), static_cast<int>(n), to_mpi(type), to_mpi(op), comm_),
          "MPI_Allreduce");
    }
  }
  void broadcast(void* data, size_t count, DType type, int root) override {
    if (size_ == 1) return;
    InCollective in(progress_, kBroadcast);
    char* p = static_cast<char*>(data);
    for (size_t off = 0; off < count; off += kMaxChunk) {
      size_t n = std::min(kMaxChunk, count - off);
      check(MPI_Bcast(p + off * dtype_size(type), static_cast<int>(n), to_mpi(type), root, comm_), "MPI_Bcast");
    }
  }
  void all_gather(const void* send, void* recv, size_t count, DType type) override {
    if (count > kMaxChunk) throw std::runtime_error("all_gather: block too large");
    InCollective in(progress_, kAllGather);
    check(
        MPI_Allgather(send, static_cast<int>(count), to_mpi(type), recv, static_cast<int>(count), to_mpi(type), comm_),
        "MPI_Allgather");
  }
  void barrier() override {
    InCollective in(progress_, kBarrier);
    check(MPI_Barrier(comm_), "MPI_Barrier");
  }
  std::unique_ptr<Communicator> split(int color, int key) override {
    MPI_Comm sub;
    InCollective in(progress_, kSplit);
    check(MPI_Comm_split(comm_, color, key, &sub), "MPI_Comm_split");
    return std::make_unique<MpiCommunicator>(sub, true);
  }
  [[noreturn]] void abort(int exit_code) override {
    MPI_Abort(MPI_COMM_WORLD, exit_code);
    std::_Exit(exit_code);
  }

 private:
  MPI_Comm comm_;
  MPI_Comm ctl_ = MPI_COMM_NULL;
  bool owned_;
  int rank_ = 0;
  int size_ = 1;
  Progress progress_;
  std::unique_ptr<Watchdog> watchdog_;
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
    // MIXVAE_MPI_THREADS=funneled: the level mixvae needs without the watchdog, for an MPI
    // library whose MPI_THREAD_MULTIPLE is slow or broken (the watchdog is then off).
    const char* level = std::getenv("MIXVAE_MPI_THREADS");
    const bool funneled = level && std::string(level) == "funneled";
    check(MPI_Init_thread(argc, argv, funneled ? MPI_THREAD_FUNNELED : MPI_THREAD_MULTIPLE, &provided),
          "MPI_Init_thread");
    if (!funneled && provided < MPI_THREAD_MULTIPLE)
      std::cerr << "mixvae: warning: this MPI library does not support MPI_THREAD_MULTIPLE; the collective "
                   "watchdog (dist.timeout_s) is off\n";
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
