#!/usr/bin/env bash
# How the cost of a training epoch grows with batch size, data size, the number of
# clusters k and the layout of ranks and threads (issue #8). One training epoch per point
# (median of REPEATS), no pretraining (a random autoencoder costs the same), no evaluation
# inside the epoch. Prints one line per point: seconds per epoch, samples per second,
# microseconds per sample and the cost per sample relative to the axis's first point.
#   tests/bench/scaling.sh [AXES="batch data k kdvae ranks"] [REPEATS=1]
#   batch  VaDE on MNIST, batch 50 / 100 / 200 / 500 (1 rank x all cores)
#   data   VaDE on synthetic 784-dimensional data, 10,000 / 35,000 / 70,000 / 140,000 rows
#   k      VaDE on MNIST, K = 5 / 10 / 20 / 50 mixture components
#   kdvae  k-DVAE's Eq. 6 epoch on MNIST, k = 5 / 10 / 20 networks
#   ranks  VaDE on MNIST: 1 rank x 1 thread, 1 x cores, cores x 1 (MPI)
set -euo pipefail
axes="${1:-batch data k kdvae ranks}" reps="${2:-1}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cores=$(nproc)
vade=(--config "$root/configs/experiments/mnist-vade-quick.ini")
kdvae=(--config "$root/configs/experiments/mnist-kdvae-quick.ini" --kdvae.init=ae --kdvae.initial_clusters=kmeans
  --kdvae.warmup_epochs=0 --kdvae.epochs=1 --kdvae.kmeans_restarts=1)
n=0
# point AXIS VALUE ROWS [mpirun...] -- mixvae flags...: one timed point.
point() {
  local axis="$1" value="$2" rows="$3"
  shift 3
  local pre=()
  while [ "$1" != "--" ]; do pre+=("$1"); shift; done
  shift
  local times=()
  for r in $(seq 1 "$reps"); do
    n=$((n + 1))
    "${pre[@]}" "$mixvae" train "$@" --pretrain.epochs=0 --train.epochs=1 --train.eval_every=0 \
      --output.progress=false --output.samples_per_cluster=1 --output.dir="$out/p$n" > "$out/p$n.log" 2>&1 ||
      { echo "$axis=$value failed: $(tail -2 "$out/p$n.log")" >&2; exit 1; }
    times+=("$(python3 -c 'import json,sys
t = [j["seconds"] for j in map(json.loads, open(sys.argv[1])) if j.get("stage") == "train" and "seconds" in j]
print(t[-1])' "$out/p$n/metrics.jsonl")")
  done
  local t
  t=$(printf '%s\n' "${times[@]}" | median)
  awk -v a="$axis" -v v="$value" -v t="$t" -v rows="$rows" -v f="$out/$axis.first" 'BEGIN {
    us = 1e6 * t / rows
    if ((getline base < f) <= 0) { base = us; print us > f }
    printf "%-6s %-14s %8.2f s/epoch %8.0f samples/s %8.1f us/sample  x%.2f\n", a, v, t, rows / t, us, us / base }'
}
for axis in $axes; do
  case "$axis" in
    batch)
      for b in 50 100 200 500; do point batch "$b" 70000 -- "${vade[@]}" --data.path="$h5" --train.batch_size="$b"; done ;;
    data)
      for rows in 10000 35000 70000 140000; do
        "$mixvae" prepare --dataset synthetic --n "$rows" --d 784 --k 10 --out "$out/syn$rows.h5" > /dev/null
        point data "$rows" "$rows" -- "${vade[@]}" --data.path="$out/syn$rows.h5" --model.likelihood=gaussian
        rm -f "$out/syn$rows.h5"
      done ;;
    k)
      for k in 5 10 20 50; do point k "$k" 70000 -- "${vade[@]}" --data.path="$h5" --model.clusters="$k"; done ;;
    kdvae)
      for k in 5 10 20; do point kdvae "$k" 70000 -- "${kdvae[@]}" --data.path="$h5" --model.clusters="$k"; done ;;
    ranks)
      point ranks "1x1" 70000 -- "${vade[@]}" --data.path="$h5" --train.threads=1
      point ranks "1x$cores" 70000 -- "${vade[@]}" --data.path="$h5" --train.threads="$cores"
      mpi_launch "$cores"
      point ranks "${cores}x1" 70000 "${launch[@]}" -- "${vade[@]}" --data.path="$h5" --train.threads=1 ;;
    *) echo "scaling.sh: unknown axis '$axis' (batch data k kdvae ranks)" >&2; exit 2 ;;
  esac
done
