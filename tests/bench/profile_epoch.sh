#!/usr/bin/env bash
# Where a VaDE training epoch spends its CPU time, mixvae and the PyTorch reference side
# by side: `perf record` over the training epochs of each (no pretraining: a random
# autoencoder costs the same), then the share of samples per library (OpenBLAS = the
# matrix products, libgomp = OpenMP fork/join and spin-waits, libtorch_cpu = ATen's
# element-wise kernels and dispatch, libc, the kernel, ...) and the top symbols.
#   tests/bench/profile_epoch.sh [THREADS=2] [EPOCHS=2] [TOP=25]
# MODEL=kdvae profiles k-DVAE's Eq. 6 epochs instead (from a random autoencoder and k-means
# on its codes, mixvae's defaults against the reference's loop over the k networks).
# Needs perf (apt-get install linux-perf) and what epoch_vs_reference.sh needs.
set -euo pipefail
hz=499
threads="${1:-2}" epochs="${2:-2}" top="${3:-25}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
command -v perf > /dev/null || { echo "profile_epoch.sh: perf is not installed (apt-get install linux-perf)" >&2; exit 2; }
# The training epochs only: the run starts under perf with recording off (perf then
# follows every thread the run creates, which attaching with -p does not); recording is
# switched on at the line that starts them (after data loading and the mixture
# initialisation) and off at the line that ends the last of them (before the final
# evaluation, which the reference does not do with --time-only); then the run is ended.
profile() {  # name, start regexp, end regexp (one line per epoch), command...
  local name="$1" start="$2" stop="$3"
  shift 3
  rm -f "$out/$name.ctl" && mkfifo "$out/$name.ctl"
  perf record -F "$hz" -D -1 --control "fifo:$out/$name.ctl" -o "$out/$name.data" -- "$@" > "$out/$name.log" 2>&1 &
  local pid=$!
  exec 9<> "$out/$name.ctl"
  until grep -qE "$start" "$out/$name.log" 2> /dev/null; do
    kill -0 "$pid" 2> /dev/null || { echo "$name ended before its training epochs" >&2; cat "$out/$name.log" >&2; exit 1; }
    sleep 0.1
  done
  echo enable >&9
  until [ "$(grep -cE "$stop" "$out/$name.log")" -ge "$epochs" ]; do
    kill -0 "$pid" 2> /dev/null || break
    sleep 0.1
  done
  echo disable >&9
  sleep 0.5
  pkill -INT -P "$pid" 2> /dev/null || true  # the profiled run; perf then writes its data
  wait "$pid" 2> /dev/null || true
  exec 9>&-
  grep -E "$stop" "$out/$name.log" | head -"$epochs" | sed "s/^/  $name: /"
}
if [ "${MODEL:-vade}" = kdvae ]; then
  profile mixvae "kmeans_init" "^train +epoch" "$mixvae" train \
    --config "$root/configs/experiments/mnist-kdvae-quick.ini" --data.path="$h5" --output.dir="$out/m" \
    --kdvae.init=ae --kdvae.initial_clusters=kmeans --pretrain.epochs=0 --train.epochs=0 --kdvae.warmup_epochs=0 \
    --kdvae.epochs="$epochs" --kdvae.kmeans_restarts=1 --train.eval_every=0 --train.threads="$threads"
  profile reference '"phase": "setup"' '"phase": "kdvae"' /usr/bin/python3 -u "$ref" --model kdvae \
    --kdvae-impl loop --data "$raw" --epochs "$epochs" --threads "$threads" --time-only
else
  profile mixvae "mixture_init" "^train +epoch" "$mixvae" train \
    --config "$root/configs/experiments/mnist-vade-quick.ini" --data.path="$h5" --output.dir="$out/m" \
    --pretrain.epochs=0 --train.epochs="$epochs" --train.eval_every=0 --train.threads="$threads"
  profile reference '"phase": "setup"' '"phase": "vade"' /usr/bin/python3 -u "$ref" --model vade --data "$raw" \
    --pretrain-epochs 0 --epochs "$epochs" --threads "$threads" --time-only
fi
for name in mixvae reference; do
  # CPU seconds per library (samples / rate) over the recorded training epochs; both
  # threads count, so a 2-thread epoch of T seconds has up to 2T CPU seconds.
  echo "== $name: CPU seconds (and share) by library, $epochs training epoch(s), $threads thread(s) =="
  perf report -i "$out/$name.data" -n --sort dso --stdio 2> /dev/null |
    awk -v hz="$hz" '/^ +[0-9.]+%/ && n++ < 12 { printf "  %8.2f s  %7s  %s\n", $2 / hz, $1, $3 }' || true
  echo "== $name: top $top symbols =="
  perf report -i "$out/$name.data" -n --sort dso,sym --stdio 2> /dev/null |
    awk -v hz="$hz" -v top="$top" '/^ +[0-9.]+%/ && n++ < top { s = $2 / hz; $2 = ""; printf "  %8.2f s  %s\n", s, $0 }' || true
done
