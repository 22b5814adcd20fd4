// The overlapped gradient all-reduce (dist.overlap): buckets reduced by the worker thread
// while backward() runs give the same sums as the reduce after backward(), whatever order
// the gradients arrive in and whichever parameters a rank leaves without a gradient.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <stdexcept>

#include "data/synthetic.h"
#include "dist/grad_reducer.h"
#include "mpi_world.h"
#include "train/trainer.h"

using namespace mixvae;
using test::world;
namespace fs = std::filesystem;

namespace {
// A small net whose forward uses `shared` twice, and `rank1_unused` only on rank 0.
struct Net {
  std::vector<torch::Tensor> params;
  torch::Tensor w1, b1, w2, b2, shared, rank1_unused;
  explicit Net(uint64_t seed) {
    torch::manual_seed(seed);
    w1 = torch::randn({40, 300}).mul_(0.1).requires_grad_();
    b1 = torch::zeros({300}).requires_grad_();
    shared = torch::randn({300, 300}).mul_(0.05).requires_grad_();
    w2 = torch::randn({300, 20}).mul_(0.1).requires_grad_();
    b2 = torch::zeros({20}).requires_grad_();
    rank1_unused = torch::randn({300}).requires_grad_();
    params = {rank1_unused, w1, b1, shared, w2, b2};  // reversed in buckets: rank1_unused last
  }
  torch::Tensor loss(const torch::Tensor& x, int rank) const {
    auto h = torch::tanh(torch::addmm(b1, x, w1));
    h = torch::tanh(h.mm(shared));
    h = torch::tanh(h.mm(shared));
    if (rank == 0) h = h * rank1_unused;
    return torch::addmm(b2, h, w2).pow(2).sum();
  }
};

// The gradient sums of one step on every rank's own data, with or without overlap.
std::vector<torch::Tensor> reduced_grads(bool overlap, double* loss_sum, size_t* early, bool* on) {
  auto& c = world();
  Net net(5);
  dist::GradReducer r(c, net.params, /*bucket_mb=*/0.02, overlap);  // 4 buckets
  torch::manual_seed(100 + c.rank());
  torch::Tensor x = torch::randn({64, 40});
  std::vector<torch::Tensor> out;
  for (int step = 0; step < 3; ++step) {  // a few steps: the hooks re-arm each time
    r.zero_grad();
    r.begin_step();
    torch::Tensor loss = net.loss(x * (1 + step), c.rank());
    loss.backward();
    *loss_sum = r.all_reduce(loss.item<double>());
    *early = r.launched_during_backward();
    *on = r.overlapping();
  }
  for (auto& p : net.params) out.push_back(p.grad().clone());
  return out;
}
}  // namespace

TEST(Overlap, SameSumsAsTheReduceAfterBackward) {
  double loss[2];
  size_t early[2];
  bool on[2];
  auto plain = reduced_grads(false, &loss[0], &early[0], &on[0]);
  auto overlapped = reduced_grads(true, &loss[1], &early[1], &on[1]);
  EXPECT_FALSE(on[0]);
  EXPECT_EQ(on[1], world().size() > 1);  // a world of one has nothing to reduce
  if (world().size() > 1) {
    // The first three buckets (w2 and b2, shared, w1 and b1) went out while backward was
    // still running; the last (rank1_unused, which rank 1 never uses) waits for all_reduce().
    EXPECT_EQ(early[1], 3u);
  }
  EXPECT_EQ(loss[0], loss[1]);
  ASSERT_EQ(plain.size(), overlapped.size());
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_TRUE(torch::equal(plain[i], overlapped[i])) << "parameter " << i;
  // rank1_unused has rank 0's gradient only, summed onto every rank.
  EXPECT_GT(plain.back().abs().sum().item<double>(), 0.0);
}

TEST(Overlap, TwoBackwardsInOneStepAreRefused) {
  auto& c = world();
  if (c.size() == 1) GTEST_SKIP() << "overlap needs more than one rank";
  Net net(6);
  dist::GradReducer r(c, net.params, 0.02, true);
  ASSERT_TRUE(r.overlapping());
  torch::Tensor x = torch::randn({8, 40});
  r.zero_grad();
  r.begin_step();
  torch::Tensor loss = net.loss(x, 1);
  loss.backward({}, /*retain_graph=*/true);
  EXPECT_THROW(loss.backward(), std::logic_error);
  r.all_reduce();  // every rank still issues the same collectives: no rank left waiting
  r.zero_grad();
  r.begin_step();
  net.loss(x, 1).backward();
  EXPECT_NO_THROW(r.all_reduce());
}

// Whole training runs: dist.overlap on and off give the same parameters, bit for bit
// (the same buckets summed; only when they are sent differs).
TEST(Overlap, TrainingGivesTheSameParametersAsWithoutOverlap) {
  std::string dir;
  if (world().rank() == 0) {
    std::string tmpl = (fs::temp_directory_path() / "mixvae-overlap-XXXXXX").string();
    dir = ::mkdtemp(tmpl.data());
    data::prepare_synthetic(dir + "/d.h5", 2000, 30, 5, 4);
  }
  world().broadcast_string(dir, 0);
  std::vector<torch::Tensor> result[2];
  for (int overlap = 0; overlap < 2; ++overlap) {
    RunConfig cfg =
        RunConfig::load("", {"--data.path=" + dir + "/d.h5", "--output.dir=" + dir + "/run" + std::to_string(overlap),
                             "--model.hidden=64,32", "--model.clusters=5", "--model.latent=4", "--pretrain.epochs=1",
                             "--train.epochs=1", "--train.batch_size=100", "--train.threads=1",
                             "--output.progress=false", "--train.seed=3", "--dist.bucket_mb=0.005",
                             std::string("--dist.overlap=") + (overlap ? "true" : "false")});
    train::Trainer t(world(), cfg);
    t.run(false);
    for (auto& p : t.model().parameters()) result[overlap].push_back(p.detach().clone());
  }
  ASSERT_EQ(result[0].size(), result[1].size());
  for (size_t i = 0; i < result[0].size(); ++i) EXPECT_TRUE(torch::equal(result[0][i], result[1][i])) << i;
  world().barrier();
  if (world().rank() == 0) fs::remove_all(dir);
}
