// Google Benchmark of the gradient all-reduce (issue 8): a raw Communicator::all_reduce of
// one float buffer, and GradReducer on VaDE's parameter shapes (copy into the buckets,
// all-reduce, copy back), so the data-parallel cost per step can be read beside the
// compute. Run it under the launcher; rank 0 reports:
//   mpirun -np 2 build/tests/mixvae_allreduce_bench [--benchmark_filter=REGEX]
// Every benchmark has a fixed iteration count: each rank must call the collective the same
// number of times (Google Benchmark's adaptive count could differ between ranks and hang).
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "dist/communicator.h"
#include "dist/grad_reducer.h"

namespace {

mixvae::dist::Communicator* g_comm = nullptr;

// Ranks other than 0 run the same benchmarks and print nothing.
class Quiet : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>&) override {}
};

// One all-reduce (sum) of a float buffer of range(0) KiB.
void BM_AllReduce(benchmark::State& state) {
  std::vector<float> buf(size_t(state.range(0)) * 256, 1.0f);
  g_comm->barrier();
  for (auto _ : state)
    g_comm->all_reduce(buf.data(), buf.size(), mixvae::dist::DType::F32, mixvae::dist::ReduceOp::Sum);
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(buf.size() * sizeof(float)));
  state.counters["ranks"] = g_comm->size();
}
// 1 MiB, 4 MiB, VaDE's 12.8 MiB of gradients, a 16 MiB bucket, k-DVAE's 34 MiB.
BENCHMARK(BM_AllReduce)
    ->Arg(1024)
    ->Arg(4096)
    ->Arg(13090)
    ->Arg(16384)
    ->Arg(34816)
    ->Iterations(40)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// GradReducer on VaDE's parameters (784-500-500-2000-10 encoder with the log-variance
// head, mirrored decoder, K = 10 mixture of 10 dimensions), range(0) = bucket MiB.
void BM_GradReducerVade(benchmark::State& state) {
  const std::vector<std::vector<int64_t>> shapes = {
      {500, 784}, {500},    {500, 500},  {500}, {2000, 500}, {2000}, {10, 2000}, {10},  {10, 2000}, {10},  // encoder
      {2000, 10}, {2000},   {500, 2000}, {500}, {500, 500},  {500},  {784, 500}, {784},                    // decoder
      {10},       {10, 10}, {10, 10}};                                                                     // mixture
  std::vector<torch::Tensor> params;
  for (const auto& s : shapes) {
    auto p = torch::zeros(s, torch::requires_grad());
    p.mutable_grad() = torch::ones(s);
    params.push_back(p);
  }
  mixvae::dist::GradReducer reducer(*g_comm, params, double(state.range(0)));
  int64_t bytes = 0;
  for (const auto& p : params) bytes += p.numel() * 4;
  g_comm->barrier();
  for (auto _ : state) benchmark::DoNotOptimize(reducer.all_reduce(1.0));
  state.SetBytesProcessed(int64_t(state.iterations()) * bytes);
  state.counters["buckets"] = double(reducer.buckets());
}
BENCHMARK(BM_GradReducerVade)->Arg(4)->Arg(16)->Arg(64)->Iterations(40)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  auto world = mixvae::dist::make_world(&argc, &argv);
  g_comm = world.get();
  torch::set_num_threads(1);
  benchmark::AddCustomContext("ranks", std::to_string(world->size()));
  benchmark::Initialize(&argc, argv);
  if (world->rank() == 0) {
    benchmark::RunSpecifiedBenchmarks();
  } else {
    Quiet quiet;
    benchmark::RunSpecifiedBenchmarks(&quiet);
  }
  benchmark::Shutdown();
  world.reset();
  mixvae::dist::finalize();
  return 0;
}
