#!/usr/bin/env bash
# The GPU session's checks in one command, for the lent GPU machine (docs/gpu.md): build
# against the machine's CUDA LibTorch (tests/gpu/device_build.sh), the whole CTest suite in
# that build, then the GPU measurements, most important first, each started only if the
# time left allows it. Everything is written under $OUT as it goes, so a run cut short
# still returns what it did.
#
#   tests/gpu/device_check.sh [SECONDS]     (the time it may take; default 580)
#
# Needs, in ignored folders of the checkout: .devdeps/ (tests/gpu/fetch_debs.sh) and
# .devdata/mnist/ (the four MNIST .gz files).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
OUT=${OUT:-/tmp/mixvae-gpu-out}
mkdir -p "$OUT"
t0=$(date +%s)
deadline=$((t0 + ${1:-580}))
left() { echo $((deadline - $(date +%s))); }
log() { echo "[$(($(date +%s) - t0)) s] $*" | tee -a "$OUT/summary.log"; }
W=/tmp/mixvae-gpu # scratch: runs, the dependency prefix
mkdir -p "$W/runs"
B=build-gpu

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader >>"$OUT/summary.log" 2>&1
log "cores $(nproc), $(free -g | awk '/Mem:/{print $2}') GiB"

log "build"
if ! timeout $(($(left) - 60)) bash tests/gpu/device_build.sh .devdeps "$W/dep" "$B" >"$OUT/build.log" 2>&1; then
  log "build FAILED"
  grep -E "error|FAILED:" "$OUT/build.log" | head -30 | tee -a "$OUT/summary.log"
  [ -x $B/mixvae ] || exit 1 # the CLI built: go on with what did
fi
grep -E "^device_build|mixvae: LibTorch" "$OUT/build.log" | tee -a "$OUT/summary.log"
log "built"
# shellcheck disable=SC1091
source "$W/dep/env.sh"
ldd $B/mixvae | grep -E "not found|libmpi|hdf5|torch_cuda|nccl|cudart" | tee -a "$OUT/summary.log"
mix=$B/mixvae
mkdir -p data
[ -f data/mnist.h5 ] || $mix prepare --dataset mnist --raw .devdata/mnist --out data/mnist.h5 >"$OUT/prepare.log" 2>&1
log "data: $(ls -la data/mnist.h5 2>&1)"

# ---- the test suite in the CUDA build -------------------------------------------------
log "ctest"
ct=$(($(left) - 250))
((ct < 90)) && ct=90
(cd $B && timeout $ct ctest -j"$(nproc)" --timeout 200 --output-on-failure >"$OUT/ctest.log" 2>&1)
log "ctest rc=$?: $(grep -E 'tests passed|tests failed' "$OUT/ctest.log")"
pkill -9 -f "$B/" 2>/dev/null # what a cut-short ctest left running
pkill -9 orterun 2>/dev/null
grep -E "^\s*[0-9]+ - |Failed|SEGFAULT|Not Run" "$OUT/ctest.log" | tail -40 | tee -a "$OUT/summary.log"
grep -E "NCCL|Nccl" "$OUT/ctest.log" | grep -E "Passed|Failed|Skipped|skipped" | head -12 | tee -a "$OUT/summary.log"
# A crashed unit test: its stack, for the next session (cuda-gdb also debugs host code).
crashed=$(grep -oE "[0-9]+ - [A-Za-z0-9_./]+ \(SEGFAULT\)" "$OUT/ctest.log" | head -1 | awk '{print $3}')
if [ -n "$crashed" ] && command -v cuda-gdb >/dev/null; then
  log "backtrace of $crashed"
  timeout 60 cuda-gdb -batch -ex run -ex bt --args $B/tests/mixvae_unit_tests --gtest_filter="$crashed" \
    >"$OUT/backtrace.log" 2>&1
  # If the crash is LibTorch's std::filesystem again (docs/gpu.md), libstdc++ preloaded
  # shows what else fails.
  log "unit tests with libstdc++ preloaded"
  (cd $B/tests && LD_PRELOAD=$(g++ -print-file-name=libstdc++.so.6) timeout 120 ./mixvae_unit_tests \
    >"$OUT/unit-preloaded.log" 2>&1)
  grep -E "^\[  (PASSED|FAILED) |FAILED  \]" "$OUT/unit-preloaded.log" | tail -12 | tee -a "$OUT/summary.log"
fi

# ---- measurements -------------------------------------------------------------------
# time_for NAME SECONDS_NEEDED: true when that much time is left, else logs the skip.
time_for() {
  (($(left) >= $2)) && return 0
  log "skip $1 (needs $2 s, $(left) s left)"
  return 1
}

# run NAME SECONDS_NEEDED args...: a mixvae train into $W/runs/NAME, alone on the GPU.
run() {
  local name=$1
  time_for "$name" "$2" || return 1
  shift 2
  local s
  s=$(date +%s)
  timeout $(($(left) - 5)) $mix train --output.progress=false --output.dir="$W/runs/$name" "$@" >"$W/runs/$name.log" 2>&1
  local rc=$?
  log "$name rc=$rc in $(($(date +%s) - s)) s: $(grep -E 'ACC' "$W/runs/$name.log" | tail -1)"
  return $rc
}
stage_times() { # median seconds per stage of a run directory
  python3 - "$1/metrics.jsonl" <<'PY'
import json, statistics, sys
by = {}
for l in open(sys.argv[1]):
    j = json.loads(l)
    if "seconds" in j and "stage" in j: by.setdefault(j["stage"], []).append(j["seconds"])
print("  ".join(f"{k}: {statistics.median(v):.3f} s/epoch (x{len(v)})" for k, v in by.items()))
PY
}

# bench NAME SECONDS_NEEDED script args...: one of tests/bench/ on this build, its output logged.
bench() {
  local name=$1
  time_for "$name" "$2" || return 1
  shift 2
  MIXVAE_BUILD_DIR=$B timeout $(($(left) - 5)) bash "$@" >"$W/runs/$name.log" 2>&1
  log "$name rc=$?: $(tail -3 "$W/runs/$name.log" | tr '\n' ' ')"
}

# 1. Epoch times of the full MNIST recipes (the full runs do not fit one session's device
#    time): VaDE's pretraining and VaDE epochs; k-DVAE's warm-up and Eq. 6 epochs. Then the
#    optimiser, interleaved: torch::optim::Adam (A) against FusedAdam (B, _foreach_ on a GPU).
if run vade-full 50 --config configs/experiments/mnist-vade.ini --pretrain.epochs=2 --train.epochs=4; then
  log "vade-full: $(stage_times "$W/runs/vade-full")"
fi
if run kdvae-full 90 --config configs/experiments/mnist-kdvae.ini --pretrain.epochs=1 --train.epochs=1 \
  --kdvae.warmup_epochs=2 --kdvae.epochs=4; then
  log "kdvae-full: $(stage_times "$W/runs/kdvae-full")"
fi
CONFIG=configs/experiments/mnist-vade.ini A_FLAGS=--train.adam=torch \
  bench adam-ab 80 tests/bench/ab_epoch.sh $mix $mix 2 1 2

# 2. Seed ensembles on the GPU (#8): 4 seeds of the quick VaDE profile, 1 pretraining + 3
#    VaDE epochs, as one ensemble, one after another, and as 4 processes at once.
bench ensembles 150 tests/bench/ensemble_vs_processes.sh 4 3 1

# 3. bf16 against fp32 on the GPU (#8): the quick VaDE profile, seed 0, both side by side.
if time_for quick-fp32-bf16 170; then
  s0=$(date +%s)
  for p in fp32 bf16; do
    timeout $(($(left) - 5)) $mix train --config configs/experiments/mnist-vade-quick.ini --train.precision=$p --output.progress=false \
      --output.dir="$W/runs/quick-$p" >"$W/runs/quick-$p.log" 2>&1 &
  done
  wait
  for p in fp32 bf16; do
    log "quick-$p: $(grep -E 'ACC' "$W/runs/quick-$p.log" | tail -1) | $(stage_times "$W/runs/quick-$p")"
  done
  log "fp32 and bf16 side by side: $(($(date +%s) - s0)) s wall"
fi

log "done, $(left) s left"
(cd "$W/runs" && tar czf "$OUT/runs.tgz" --exclude='*.h5' --exclude='*.png' .) 2>/dev/null
