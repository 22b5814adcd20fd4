// Google Benchmark micro-benchmarks of the hot pieces of a training step, and the GEMM
// ceiling of this machine at the models' shapes (issue 8). Not run by CTest: timings are
// reported, never asserted (docs/performance.md has the figures and the command).
//   build/tests/mixvae_microbench [--benchmark_filter=REGEX] [--threads N]
// Every benchmark runs with the intra-op thread count of --threads (default: all cores),
// as training does.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "train/fused_adam.h"

namespace {

// GEMM rate at one shape: C[M, N] = A[M, K] B[K, N], counted as 2*M*N*K flops.
void gemm(benchmark::State& state, torch::Dtype dtype) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  torch::manual_seed(0);
  torch::Tensor a = torch::randn({m, k}).to(dtype), b = torch::randn({k, n}).to(dtype);
  torch::Tensor c = torch::empty({m, n}, dtype);
  for (auto _ : state) {
    torch::mm_out(c, a, b);
    benchmark::DoNotOptimize(c.data_ptr());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * double(m) * double(n) * double(k) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
void BM_GemmF32(benchmark::State& s) { gemm(s, torch::kFloat32); }
void BM_GemmBF16(benchmark::State& s) { gemm(s, torch::kBFloat16); }

// The shapes of one VaDE step at batch 100 (D-500-500-2000-10 and back), forward
// (B x in . in x out), and the two backward products (weights: in x B . B x out; inputs:
// B x out . out x in); k-DVAE's 784-500 layer at its per-network row count (10 of 100 rows
// for k = 10) and shared first layer ([B, D] x [D, K*500]); a large square GEMM for the
// machine's peak.
void shapes(benchmark::internal::Benchmark* b) {
  for (auto [in, out] : std::vector<std::pair<int64_t, int64_t>>{{784, 500}, {500, 500}, {500, 2000}, {2000, 10}}) {
    b->Args({100, in, out});  // forward
    b->Args({in, 100, out});  // weight gradient
    b->Args({100, out, in});  // input gradient
  }
  b->Args({10, 784, 500});      // k-DVAE: one network's rows in the selected pass
  b->Args({100, 784, 5000});    // k-DVAE: shared first layer of all k = 10 encoders
  b->Args({1024, 1024, 1024});  // peak
  b->Args({2048, 2048, 2048});
}
BENCHMARK(BM_GemmF32)->Apply(shapes)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_GemmBF16)->Apply(shapes)->Unit(benchmark::kMicrosecond)->UseRealTime();

// One Adam step over P parameters (VaDE 3.3 M, k-DVAE 8.9 M): LibTorch's class and the
// fused one. Bytes counted: parameter, gradient and both moments read, three written.
template <class Opt>
void adam(benchmark::State& state) {
  const int64_t n = state.range(0);
  torch::Tensor p = torch::randn({n}).requires_grad_(true);
  p.mutable_grad() = torch::randn({n});
  Opt opt(std::vector<torch::Tensor>{p}, torch::optim::AdamOptions(0.002).eps(1e-4));
  opt.step();  // allocates the moments
  for (auto _ : state) opt.step();
  state.counters["GB/s"] = benchmark::Counter(double(n) * 4 * 7 * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
void BM_AdamTorch(benchmark::State& s) { adam<torch::optim::Adam>(s); }
void BM_AdamFused(benchmark::State& s) { adam<mixvae::train::FusedAdam>(s); }
BENCHMARK(BM_AdamTorch)->Arg(3'300'000)->Arg(8'900'000)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_AdamFused)->Arg(3'300'000)->Arg(8'900'000)->Unit(benchmark::kMillisecond)->UseRealTime();

// One training step's forward + backward of k stacked D-500-100-J / J-100-500-D networks
// (k-DVAE), batch 100: all k on every row (dense) against each row on one network.
void knet(benchmark::State& state, bool selected) {
  const int64_t k = state.range(0), b = 100, d = 784;
  torch::manual_seed(0);
  std::vector<torch::Tensor> w;
  for (auto [i, o] :
       std::vector<std::pair<int64_t, int64_t>>{{d, 500}, {500, 100}, {100, 20}, {10, 100}, {100, 500}, {500, d}})
    w.push_back((torch::randn({k, i, o}) * 0.05).requires_grad_(true));
  torch::Tensor x = torch::rand({b, d});
  torch::Tensor owner = torch::randint(k, {b});
  for (auto _ : state) {
    torch::Tensor loss;
    if (!selected) {
      torch::Tensor h = x.unsqueeze(0).expand({k, b, d});
      for (size_t l = 0; l < w.size(); ++l) {
        if (l == 3) h = h.narrow(2, 0, 10);
        h = torch::bmm(h, w[l]);
        if (l != 2 && l + 1 < w.size()) h = torch::relu(h);
      }
      loss = std::get<0>(h.sum(2).max(0)).sum();
    } else {
      loss = torch::zeros({});
      std::vector<std::vector<torch::Tensor>> ws;
      for (auto& t : w) ws.push_back(t.unbind(0));
      for (int64_t i = 0; i < k; ++i) {
        torch::Tensor rows = (owner == i).nonzero().squeeze(1);
        if (rows.numel() == 0) continue;
        torch::Tensor h = x.index_select(0, rows);
        for (size_t l = 0; l < w.size(); ++l) {
          if (l == 3) h = h.narrow(1, 0, 10);
          h = torch::mm(h, ws[l][size_t(i)]);
          if (l != 2 && l + 1 < w.size()) h = torch::relu(h);
        }
        loss = loss + h.sum();
      }
    }
    loss.backward();
    for (auto& t : w) t.mutable_grad() = torch::Tensor();
  }
}
void BM_KNetDense(benchmark::State& s) { knet(s, false); }
void BM_KNetSelected(benchmark::State& s) { knet(s, true); }
BENCHMARK(BM_KNetDense)->Arg(10)->Arg(20)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_KNetSelected)->Arg(10)->Arg(20)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  int threads = 0;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--threads") == 0) threads = std::atoi(argv[i + 1]);
  torch::set_num_threads(threads > 0 ? threads : int(std::thread::hardware_concurrency()));
  benchmark::AddCustomContext("intra-op threads", std::to_string(torch::get_num_threads()));
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
