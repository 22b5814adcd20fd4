#!/usr/bin/env bash
# Before/after: the VaDE training-epoch time of two mixvae binaries on full MNIST, run
# interleaved (A B A B ...) with the same config, ranks and threads. Prints each run's
# median epoch, the medians of A and B and the ratio B/A. For any performance change:
# build the old commit into another folder and pass both binaries.
#   tests/bench/ab_epoch.sh BIN_A BIN_B [REPEATS=3] [RANKS=2] [EPOCHS=2]
# Ranks > 1 run under mpirun with cores/ranks threads each (mixvae's default). A_ENV / B_ENV:
# environment assignments for one side (e.g. B_ENV=MIXVAE_MPI_THREADS=funneled, same binary).
# A_FLAGS / B_FLAGS: extra mixvae flags for one side (e.g. A_FLAGS=--train.adam=torch, same
# binary); FLAGS for both; CONFIG another experiment (default mnist-vade-quick.ini); the
# timed epochs are those of the stage named "train". Given flags replace the defaults here.
#   CONFIG=configs/experiments/mnist-kdvae-quick.ini FLAGS="--kdvae.init=ae --pretrain.epochs=1
#     --kdvae.warmup_epochs=0 --kdvae.epochs=2 --kdvae.kmeans_restarts=1" ...   (k-DVAE's Eq. 6 stage)
set -euo pipefail
a="$1" b="$2" reps="${3:-3}" np="${4:-2}" epochs="${5:-2}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
launch=()
if [ "$np" -gt 1 ]; then
  mpi_launch "$np"
fi
epoch_times() {  # the main-objective epochs of a run's metrics.jsonl, seconds
  python3 -c 'import json,sys
for l in open(sys.argv[1]):
    j = json.loads(l)
    if j.get("stage") == "train" and "seconds" in j: print(j["seconds"])' "$1/metrics.jsonl"
}
for i in $(seq 1 "$reps"); do
  for which in A B; do
    bin="$a" envs="${A_ENV:-}" flags="${A_FLAGS:-}"
    [ "$which" = B ] && bin="$b" envs="${B_ENV:-}" flags="${B_FLAGS:-}"
    # No pretraining (a random autoencoder is as fast), no evaluation inside the epochs;
    # each default only where the given flags do not set that key (a key given twice is an
    # error).
    given=" $flags ${FLAGS:-} " args=()
    for d in --pretrain.epochs=0 --train.epochs="$epochs" --train.eval_every=0 --output.progress=false \
             --output.samples_per_cluster=1; do
      [[ "$given" == *" ${d%%=*}="* ]] || args+=("$d")
    done
    # shellcheck disable=SC2086
    env $envs "${launch[@]}" "$bin" train --config "${CONFIG:-$root/configs/experiments/mnist-vade-quick.ini}" \
      $flags ${FLAGS:-} --data.path="$h5" --output.dir="$out/$which$i" "${args[@]}" > "$out/$which$i.log" 2>&1 \
      || { echo "$which run $i failed: $(tail -2 "$out/$which$i.log")" >&2; exit 1; }
    t=$(epoch_times "$out/$which$i" | median)
    echo "$which run $i: median epoch ${t} s"
    echo "$t" >> "$out/$which.times"
  done
done
ma=$(median < "$out/A.times") mb=$(median < "$out/B.times")
echo "A $a: ${ma} s   B $b: ${mb} s   B/A = $(awk -v a="$ma" -v b="$mb" 'BEGIN { printf "%.3f", b / a }')"
