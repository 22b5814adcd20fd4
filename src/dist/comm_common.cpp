// Pieces of the Communicator that do not depend on the back end.
#include <cstring>

#include "core/errors.h"
#include "dist/communicator.h"

namespace mixvae::dist {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32:
      return 4;
    case DType::F64:
      return 8;
    case DType::I64:
      return 8;
    case DType::I32:
      return 4;
    case DType::U8:
      return 1;
  }
  return 0;
}

void Communicator::broadcast_string(std::string& s, int root) {
  int64_t n = static_cast<int64_t>(s.size());
  broadcast(&n, 1, DType::I64, root);
  s.resize(static_cast<size_t>(n));
  if (n > 0) broadcast(s.data(), static_cast<size_t>(n), DType::U8, root);
}

bool classify_error(const std::exception& e, int* kind) {
  if (dynamic_cast<const UsageError*>(&e)) {
    *kind = 1;
    return true;
  }
  if (dynamic_cast<const DataError*>(&e)) {
    *kind = 2;
    return true;
  }
  return false;
}

namespace {
bool g_collective_error = false;
}
bool last_error_was_collective() { return g_collective_error; }

void agree_impl(Communicator& comm, int kind, const std::string& message) {
  // The lowest failing rank wins; everybody learns who that is with one all-reduce.
  const int64_t none = comm.size();
  int64_t failing = kind != 0 ? comm.rank() : none;
  failing = comm.all_reduce_value(failing, ReduceOp::Min);
  if (failing == none) return;
  std::string msg = message;
  int64_t k = kind;
  comm.broadcast(&k, 1, DType::I64, static_cast<int>(failing));
  comm.broadcast_string(msg, static_cast<int>(failing));
  g_collective_error = true;
  if (k == 1) throw UsageError(msg);
  throw DataError(msg);
}

}  // namespace mixvae::dist
