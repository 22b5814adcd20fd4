#include "dist/grad_reducer.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>

#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include "dist/tensor_ops.h"

namespace mixvae::dist {

// The worker thread and what it shares with the main thread. Held by shared_ptr: a
// reducer destroyed while a collective is still in flight (an exception during backward:
// the job is about to end) detaches the thread, which keeps this state alive.
struct GradReducer::Worker {
  Communicator& comm;
  std::mutex m;
  std::condition_variable cv;
  std::deque<torch::Tensor> queue;  // buckets to reduce, in order
  size_t in_flight = 0;             // handed over and not finished
  bool stop = false;
  std::exception_ptr error;
  std::thread thread;

  explicit Worker(Communicator& c) : comm(c) {}

  void run() {
    for (;;) {
      torch::Tensor t;
      {
        std::unique_lock<std::mutex> lk(m);
        cv.wait(lk, [&] { return stop || !queue.empty(); });
        if (queue.empty()) return;
        t = std::move(queue.front());
        queue.pop_front();
      }
      try {
        if (!error) dist::all_reduce(comm, t);  // after an error, only drain
      } catch (...) {
        std::lock_guard<std::mutex> lk(m);
        error = std::current_exception();
      }
      std::lock_guard<std::mutex> lk(m);
      --in_flight;
      cv.notify_all();
    }
  }
  void push(torch::Tensor t) {
    std::lock_guard<std::mutex> lk(m);
    queue.push_back(std::move(t));
    ++in_flight;
    cv.notify_all();
  }
  void wait_all() {
    std::unique_lock<std::mutex> lk(m);
    cv.wait(lk, [&] { return in_flight == 0; });
    if (error) {
      auto e = error;
      error = nullptr;
      std::rethrow_exception(e);
    }
  }
};

namespace {
// Runs after a parameter's gradient accumulator has added this backward's gradient.
class ReadyHook final : public torch::autograd::FunctionPostHook {
 public:
  ReadyHook(GradReducer* r, size_t index) : r_(r), index_(index) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list&) override {
    r_->mark_ready(index_);
    return outputs;
  }

 private:
  GradReducer* r_;
  size_t index_;
};
}  // namespace

GradReducer::GradReducer(Communicator& comm, std::vector<torch::Tensor> params, double bucket_mb, bool overlap)
    : comm_(comm), params_(std::move(params)) {
  const int64_t cap = std::max<int64_t>(1, static_cast<int64_t>(bucket_mb * 1024 * 1024 / 4));
  bucket_of_.assign(params_.size(), 0);
  offset_of_.assign(params_.size(), 0);
  Bucket cur;
  int64_t filled = 0;
  auto close = [&] {
    if (cur.members.empty()) return;
    // On the parameters' device: an NCCL communicator reduces it in place on the GPU.
    cur.flat =
        torch::zeros({filled + 2}, params_[cur.members.front()].options().dtype(torch::kFloat32));  // +2: ride-alongs
    buckets_.push_back(std::move(cur));
    cur = Bucket{};
    filled = 0;
  };
  // Reverse order: backward() produces the last layers' gradients first, so the first
  // buckets are complete first (the order does not change the sums).
  for (size_t k = params_.size(); k-- > 0;) {
    bucket_of_[k] = buckets_.size();
    offset_of_[k] = size_t(filled);
    cur.members.push_back(k);
    filled += params_[k].numel();
    if (filled >= cap) close();
  }
  close();
  if (comm_.size() == 1) return;  // nothing to reduce: gradients stay LibTorch's own
  // Each gradient becomes a view of its slot in the bucket (as PyTorch DDP's
  // gradient_as_bucket_view): zero_grad() below zeros it in place and backward()
  // accumulates into it in place, so the all-reduce works on the gradients where they are,
  // with no copy in and out (that pair of copies cost about a third of the reduce time:
  // docs/performance.md). A gradient someone replaces later is copied as before.
  {
    torch::NoGradGuard ng;
    for (size_t i = 0; i < params_.size(); ++i) {
      auto& p = params_[i];
      auto& b = buckets_[bucket_of_[i]];
      auto slot = b.flat.slice(0, int64_t(offset_of_[i]), int64_t(offset_of_[i]) + p.numel()).view_as(p);
      if (p.grad().defined()) slot.copy_(p.grad());
      p.mutable_grad() = slot;
    }
  }
  bool on_cpu = true;
  for (auto& p : params_) on_cpu = on_cpu && p.device().is_cpu();
  overlap_ = overlap && buckets_.size() > 1 && on_cpu && comm_.collectives_from_any_thread();
  if (!overlap_) return;
  ready_.assign(params_.size(), 0);
  pending_.assign(buckets_.size(), 0);
  for (size_t i = 0; i < params_.size(); ++i) {
    auto acc = torch::autograd::impl::grad_accumulator(params_[i]);
    if (!acc) throw std::logic_error("GradReducer: a parameter without a gradient accumulator");
    hook_keys_.push_back(acc->add_post_hook(std::make_unique<ReadyHook>(this, i)));
    accumulators_.push_back(std::move(acc));
  }
  worker_ = std::make_shared<Worker>(comm_);
  auto w = worker_;
  worker_->thread = std::thread([w] { w->run(); });
}

GradReducer::~GradReducer() {
  for (size_t i = 0; i < accumulators_.size(); ++i) accumulators_[i]->del_post_hook(hook_keys_[i]);
  if (!worker_) return;
  bool idle = false;
  {
    std::lock_guard<std::mutex> lk(worker_->m);
    worker_->stop = true;
    idle = worker_->in_flight == 0;
    worker_->cv.notify_all();
  }
  // A collective still in flight may never finish (the other ranks are not coming: this
  // rank is unwinding an error); the watchdog or MPI_Abort ends the job, not a join here.
  if (idle)
    worker_->thread.join();
  else
    worker_->thread.detach();
}

void GradReducer::zero_grad() {
  // One multi-tensor operation (a kernel launch per group of tensors on a GPU, where a
  // step is bound by launches; the same zero_ per tensor on the CPU).
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> grads;
  for (auto& p : params_)
    if (p.grad().defined()) grads.push_back(p.mutable_grad());
  if (!grads.empty()) torch::_foreach_zero_(grads);
}

bool GradReducer::in_bucket(const torch::Tensor& p, const torch::Tensor& slot) {
  const auto& g = p.grad();
  return g.defined() && g.data_ptr() == slot.data_ptr() && g.is_contiguous();
}

void GradReducer::stage(size_t b) {
  torch::NoGradGuard ng;
  auto& bk = buckets_[b];
  for (size_t i : bk.members) {
    auto& p = params_[i];
    auto slot = bk.flat.slice(0, int64_t(offset_of_[i]), int64_t(offset_of_[i]) + p.numel());
    if (in_bucket(p, slot)) {  // already there
    } else if (p.grad().defined()) {
      slot.copy_(p.grad().reshape({-1}));
    } else {
      slot.zero_();
    }
  }
}

void GradReducer::rebind(size_t b) {
  auto& bk = buckets_[b];
  for (size_t i : bk.members) {
    auto& p = params_[i];
    auto slot = bk.flat.slice(0, int64_t(offset_of_[i]), int64_t(offset_of_[i]) + p.numel()).view_as(p);
    if (!in_bucket(p, slot)) p.mutable_grad() = slot;  // from now on a view again
  }
}

void GradReducer::begin_step() {
  if (!overlap_) return;
  std::fill(ready_.begin(), ready_.end(), 0);
  for (size_t b = 0; b < buckets_.size(); ++b) pending_[b] = buckets_[b].members.size();
  next_ = 0;
  launched_early_ = 0;
  armed_ = true;
}

void GradReducer::mark_ready(size_t index) {
  if (!armed_) return;  // a backward() outside a training step: not ours to reduce
  if (ready_[index]) {
    armed_ = false;
    throw std::logic_error("GradReducer: parameter " + std::to_string(index) +
                           " received its gradient twice in one step (two backward() calls between begin_step() "
                           "and all_reduce(), or retain_graph); its bucket may already be on the wire");
  }
  ready_[index] = 1;
  --pending_[bucket_of_[index]];
  launch_ready();
}

void GradReducer::launch_ready() {
  // In index order only, and never the last bucket (its ride-alongs are set in all_reduce()).
  while (next_ + 1 < buckets_.size() && pending_[next_] == 0) {
    stage(next_);
    worker_->push(buckets_[next_].flat);
    ++next_;
    ++launched_early_;
  }
}

double GradReducer::all_reduce(double local_value, bool* flag) {
  if (comm_.size() == 1) return local_value;
  if (buckets_.empty()) {
    std::vector<double> v{local_value, flag && *flag ? 1.0 : 0.0};
    comm_.all_reduce(v);
    if (flag) *flag = v[1] > 0;
    return v[0];
  }
  torch::NoGradGuard ng;
  auto& last = buckets_.back();
  const int64_t tail = last.flat.numel() - 2;
  const size_t first = overlap_ && armed_ ? next_ : 0;  // buckets already handed to the worker
  armed_ = false;
  for (size_t b = first; b < buckets_.size(); ++b) {
    stage(b);
    if (b + 1 == buckets_.size()) {
      last.flat[tail] = local_value;
      last.flat[tail + 1] = flag && *flag ? 1.0 : 0.0;
    }
    if (worker_)
      worker_->push(buckets_[b].flat);  // after the ones in flight, in order
    else
      dist::all_reduce(comm_, buckets_[b].flat);
  }
  if (worker_) worker_->wait_all();
  auto t = last.flat.slice(0, tail, tail + 2).to(torch::kCPU);
  local_value = t[0].item<double>();
  if (flag) *flag = t[1].item<double>() > 0;
  for (size_t b = 0; b < buckets_.size(); ++b) rebind(b);
  return local_value;
}

}  // namespace mixvae::dist
