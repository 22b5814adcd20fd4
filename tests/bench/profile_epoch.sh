#!/usr/bin/env bash
# Where a VaDE training epoch spends its CPU time, mixvae and the PyTorch reference side
# by side: `perf record` over the training epochs of each (no pretraining: a random
# autoencoder costs the same), then the share of samples per library (OpenBLAS = the
# matrix products, libgomp = OpenMP fork/join and spin-waits, libtorch_cpu = ATen's
# element-wise kernels and dispatch, libc, the kernel, ...) and the top symbols.
#   tests/bench/profile_epoch.sh [THREADS=2] [EPOCHS=2] [TOP=25]
# Needs perf (apt-get install linux-perf) and what epoch_vs_reference.sh needs.
set -euo pipefail
threads="${1:-2}" epochs="${2:-2}" top="${3:-25}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
command -v perf > /dev/null || { echo "profile_epoch.sh: perf is not installed (apt-get install linux-perf)" >&2; exit 2; }
# The training stage only: start recording when its first epoch begins (after data loading
# and the mixture initialisation), stop when the process ends.
profile() {  # name, marker regexp on stdout, command...
  local name="$1" marker="$2"
  shift 2
  "$@" > "$out/$name.log" 2>&1 &
  local pid=$!
  until grep -qE "$marker" "$out/$name.log" 2> /dev/null; do
    kill -0 "$pid" 2> /dev/null || { echo "$name ended before its training epochs" >&2; cat "$out/$name.log" >&2; exit 1; }
    sleep 0.2
  done
  perf record -F 499 -o "$out/$name.data" -p "$pid" 2> /dev/null > /dev/null || true
  wait "$pid"
}
profile mixvae "mixture_init" "$mixvae" train --config "$root/configs/experiments/mnist-vade-quick.ini" \
  --data.path="$h5" --output.dir="$out/m" --pretrain.epochs=0 --train.epochs="$epochs" --train.eval_every=0 \
  --train.threads="$threads" --output.progress=false
profile reference '"phase": "gmm_init"' /usr/bin/python3 -u "$ref" --model vade \
  --data "$raw" --pretrain-epochs 0 --epochs "$epochs" --threads "$threads" --time-only
for name in mixvae reference; do
  echo "== $name: share of CPU samples by library =="
  perf report -i "$out/$name.data" --sort dso --stdio 2> /dev/null | grep -E '^ +[0-9]' | head -12
  echo "== $name: top $top symbols =="
  perf report -i "$out/$name.data" --sort dso,sym --stdio 2> /dev/null | grep -E '^ +[0-9]' | head -"$top"
done
