// The world of one: what a plain `mixvae train` (no mpirun) runs on.
#include <cstdlib>
#include <cstring>

#include "dist/communicator.h"

namespace mixvae::dist {
namespace {

class SelfCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return "self"; }
  void all_reduce(void*, size_t, DType, ReduceOp) override {}
  void broadcast(void*, size_t, DType, int) override {}
  void all_gather(const void* send, void* recv, size_t count, DType type) override {
    if (send != recv) std::memmove(recv, send, count * dtype_size(type));
  }
  void barrier() override {}
  std::unique_ptr<Communicator> split(int, int) override { return std::make_unique<SelfCommunicator>(); }
  [[noreturn]] void abort(int exit_code) override { std::_Exit(exit_code); }
};

}  // namespace

std::unique_ptr<Communicator> make_self_communicator() { return std::make_unique<SelfCommunicator>(); }

}  // namespace mixvae::dist
