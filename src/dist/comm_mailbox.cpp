#include <mpi.h>

#include <chrono>
#include <list>
#include <stdexcept>
#include <thread>

#include "dist/communicator.h"
#include "dist/mailbox.h"

namespace mixvae::dist {
namespace {

constexpr int kTag = 7703;  // used by nothing else on MPI_COMM_WORLD

class MpiMailbox final : public Mailbox {
 public:
  ~MpiMailbox() override {
    // Complete what is still in flight: the receiver is alive until the sweep ends.
    for (auto& s : pending_) MPI_Wait(&s.req, MPI_STATUS_IGNORE);
  }
  void send(int dst, const std::string& msg) override {
    reap();
    pending_.push_back({msg, MPI_REQUEST_NULL});
    auto& s = pending_.back();
    if (MPI_Isend(s.text.data(), int(s.text.size()), MPI_CHAR, dst, kTag, MPI_COMM_WORLD, &s.req) != MPI_SUCCESS)
      throw std::runtime_error("MPI_Isend to rank " + std::to_string(dst) + " failed");
  }
  bool poll(int src, int* from, std::string* msg) override {
    reap();
    int flag = 0;
    MPI_Status st;
    MPI_Iprobe(src < 0 ? MPI_ANY_SOURCE : src, kTag, MPI_COMM_WORLD, &flag, &st);
    if (!flag) return false;
    int n = 0;
    MPI_Get_count(&st, MPI_CHAR, &n);
    msg->assign(size_t(n), '\0');
    MPI_Recv(msg->data(), n, MPI_CHAR, st.MPI_SOURCE, kTag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    if (from) *from = st.MPI_SOURCE;
    return true;
  }

 private:
  struct Send {
    std::string text;
    MPI_Request req;
  };
  std::list<Send> pending_;  // a list: the buffers must not move while in flight
  void reap() {
    for (auto it = pending_.begin(); it != pending_.end();) {
      int done = 0;
      MPI_Test(&it->req, &done, MPI_STATUS_IGNORE);
      it = done ? pending_.erase(it) : std::next(it);
    }
  }
};

}  // namespace

std::string Mailbox::wait_from(int src) {
  std::string msg;
  int from = -1;
  auto pause = std::chrono::milliseconds(1);
  while (!poll(src, &from, &msg)) {
    std::this_thread::sleep_for(pause);
    if (pause < std::chrono::milliseconds(20)) pause *= 2;  // quick at first, then cheap
  }
  return msg;
}

std::unique_ptr<Mailbox> make_world_mailbox() {
  if (!launched_by_mpi()) return nullptr;
  return std::make_unique<MpiMailbox>();
}

}  // namespace mixvae::dist
