#!/usr/bin/env bash
# S VaDE seeds on full MNIST, three ways, on all the machine's cores (C = nproc):
#   ensemble    one process, C threads: `mixvae train --seeds 0-(S-1)` (batched products)
#   sequential  S separate runs one after another, C threads each
#   parallel    S separate processes at once, max(1, C/S) threads each
# Prints the median seconds of one VaDE epoch of all S seeds for each way, and the
# throughput of the ensemble relative to the other two (> 1: the ensemble is faster).
# Rounds alternate the three ways. Each run: 1 pretraining epoch, then EPOCHS VaDE epochs
# (the timed ones), batch 100.
#
#   tests/bench/ensemble_vs_processes.sh [S] [EPOCHS] [ROUNDS]      (defaults 2 2 1)
set -euo pipefail
source "$(dirname "$0")/common.sh"
S="${1:-2}"
EPOCHS="${2:-2}"
ROUNDS="${3:-1}"
C="$(nproc)"
per=$((C / S))
[ "$per" -ge 1 ] || per=1
common=(--config "$root/configs/experiments/mnist-vade-quick.ini" "--data.path=$h5" --pretrain.epochs=1
        "--train.epochs=$EPOCHS" --train.eval_every=0 --output.progress=false --checkpoint.every=0)
# The VaDE epochs' seconds of a run directory, one per line.
epoch_secs() {
  python3 -c 'import json,sys
for l in open(sys.argv[1]):
    j = json.loads(l)
    if j.get("stage") == "train" and "seconds" in j: print(j["seconds"])' "$1/metrics.jsonl"
}
# Sum over runs of the per-epoch median (sequential), or the max of the medians (parallel).
declare -a ens seq par
for ((r = 0; r < ROUNDS; r++)); do
  d="$out/ens-$r"
  "$mixvae" train "${common[@]}" "--train.threads=$C" "--output.dir=$d" --seeds "0-$((S - 1))" >/dev/null
  ens+=("$(epoch_secs "$d/seed-0" | median)")

  total=0
  for ((s = 0; s < S; s++)); do
    d="$out/seq-$r-$s"
    "$mixvae" train "${common[@]}" "--train.threads=$C" "--train.seed=$s" "--output.dir=$d" >/dev/null
    total="$(awk -v a="$total" -v b="$(epoch_secs "$d" | median)" 'BEGIN { print a + b }')"
  done
  seq+=("$total")

  pids=()
  for ((s = 0; s < S; s++)); do
    "$mixvae" train "${common[@]}" "--train.threads=$per" "--train.seed=$s" "--output.dir=$out/par-$r-$s" >/dev/null &
    pids+=($!)
  done
  wait "${pids[@]}"
  worst=0
  for ((s = 0; s < S; s++)); do
    m="$(epoch_secs "$out/par-$r-$s" | median)"
    worst="$(awk -v a="$m" -v b="$worst" 'BEGIN { print (a > b) ? a : b }')"
  done
  par+=("$worst")
  echo "round $((r + 1)): ensemble ${ens[-1]} s, sequential ${seq[-1]} s, parallel ${par[-1]} s (one epoch of $S seeds)"
done
me="$(printf '%s\n' "${ens[@]}" | median)"
ms="$(printf '%s\n' "${seq[@]}" | median)"
mp="$(printf '%s\n' "${par[@]}" | median)"
printf 'S=%s seeds, %s cores: ensemble %.2f s, sequential %.2f s, parallel (%s threads each) %.2f s per epoch of all seeds\n' \
  "$S" "$C" "$me" "$ms" "$per" "$mp"
printf 'ensemble throughput: %.3fx sequential, %.3fx parallel processes\n' \
  "$(awk -v a="$ms" -v b="$me" 'BEGIN { print a / b }')" "$(awk -v a="$mp" -v b="$me" 'BEGIN { print a / b }')"
