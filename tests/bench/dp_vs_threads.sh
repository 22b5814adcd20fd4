#!/usr/bin/env bash
# Data parallel on one machine: VaDE training epochs on full MNIST with R ranks x 1 thread
# against 1 rank x R threads, same global batch, run alternately (1xR, Rx1, 1xR, ...).
# Prints every epoch with rank 0's split (compute / all-reduce / optimiser, from
# metrics.jsonl), the medians, the throughput ratio (R x 1) / (1 x R) (issue 8 target:
# >= 0.95) and each layout's peak memory per rank.
#   tests/bench/dp_vs_threads.sh [ROUNDS=2] [RANKS=2] [EPOCHS=2]
# FLAGS: extra mixvae flags for both layouts; MPI_FLAGS: extra mpirun flags (e.g.
# "--mca btl_vader_single_copy_mechanism none").
set -euo pipefail
rounds="${1:-2}" np="${2:-2}" epochs="${3:-2}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
mpi_launch "$np"
# shellcheck disable=SC2206
launch+=(${MPI_FLAGS:-})
# shellcheck disable=SC2206
flags=(--config "$root/configs/experiments/mnist-vade-quick.ini" --data.path="$h5" --pretrain.epochs=1
  --train.epochs="$epochs" ${FLAGS:-})
report() {  # run folder -> "seconds compute all_reduce optimizer rss" per training epoch
  python3 -c 'import json,sys
for l in open(sys.argv[1]):
    j = json.loads(l)
    t = j.get("rank0_seconds")
    if j.get("stage") == "train" and t:
        print("%.2f %.2f %.2f %.2f %d" % (j["seconds"], t["compute"], t["all_reduce"], t["optimizer"], j["peak_rss_mib"]))' "$1/metrics.jsonl"
}
: > "$out/threads" && : > "$out/ranks"
for i in $(seq 1 "$rounds"); do
  "$mixvae" train "${flags[@]}" --train.threads="$np" --output.dir="$out/t$i" > "$out/t$i.log" 2>&1 \
    || { echo "1 x $np failed: $(tail -3 "$out/t$i.log")"; exit 1; }
  report "$out/t$i" | tee -a "$out/threads" | sed "s/^/1 x $np  round $i: epoch s, compute, all-reduce, optimiser, MiB: /"
  "${launch[@]}" "$mixvae" train "${flags[@]}" --train.threads=1 --output.dir="$out/r$i" > "$out/r$i.log" 2>&1 \
    || { echo "$np x 1 failed: $(tail -3 "$out/r$i.log")"; exit 1; }
  report "$out/r$i" | tee -a "$out/ranks" | sed "s/^/$np x 1  round $i: epoch s, compute, all-reduce, optimiser, MiB: /"
done
t=$(cut -d' ' -f1 "$out/threads" | median) r=$(cut -d' ' -f1 "$out/ranks" | median)
echo "median training epoch: 1 x $np ${t} s, $np x 1 ${r} s"
echo "throughput ($np x 1) / (1 x $np) = $(awk -v a="$t" -v b="$r" 'BEGIN { printf "%.3f", a / b }')"
echo "peak memory per rank: 1 x $np $(cut -d' ' -f5 "$out/threads" | sort -g | tail -1) MiB, $np x 1 $(cut -d' ' -f5 "$out/ranks" | sort -g | tail -1) MiB"
