#!/usr/bin/env bash
# k-DVAE epoch time (the Eq. 6 stage), mixvae vs the PyTorch reference's loop and bmm
# implementations (shared/bench/ref_models.py), run interleaved (A B C A B C ...) on the
# same data, batch and thread count. Prints medians and the ratios.
#   tests/bench/kdvae_vs_reference.sh [REPEATS=3] [THREADS=2] [BATCH=100]
#   IMPLS="loop" to time only the reference's loop implementation (default "loop bmm").
#   GRADIENTS="selected dense" to time mixvae's kdvae.gradient modes too (default "selected").
# Needs: build/mixvae, data/mnist.h5 (mixvae prepare), ../shared/data/mnist, and
# /usr/bin/python3 with Debian's python3-torch.
set -euo pipefail
reps="${1:-3}" threads="${2:-2}" batch="${3:-100}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
for i in $(seq 1 "$reps"); do
  # One autoencoder epoch, k-means on its codes, then the timed k-network stage: the
  # clusters are as spread as in a real run (with no training at all most networks end up
  # empty, which would time a different workload).
  for g in ${GRADIENTS:-selected}; do
    "$mixvae" train --config "$root/configs/experiments/mnist-kdvae-quick.ini" --data.path="$h5" \
      --output.dir="$out/m-$g$i" --kdvae.init=ae --pretrain.epochs=1 --train.epochs=0 --kdvae.warmup_epochs=0 --kdvae.epochs=2 \
      --kdvae.kmeans_restarts=1 --train.eval_every=0 --train.threads="$threads" --train.batch_size="$batch" \
      --kdvae.gradient="$g" --output.progress=false > /dev/null
  done
  for impl in ${IMPLS:-loop bmm}; do
    /usr/bin/python3 "$ref" --model kdvae --kdvae-impl $impl --data "$raw" --epochs 2 --batch "$batch" \
      --threads "$threads" --time-only > "$out/$impl$i.jsonl"
  done
  echo "round $i of $reps done" >&2
done
python3 - "$out" "$reps" "$threads" "$batch" <<'PY'
import json, statistics, sys
out, reps, threads, batch = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
import os
m = {g: [] for g in os.environ.get("GRADIENTS", "selected").split()}
r = {k: [] for k in os.environ.get("IMPLS", "loop bmm").split()}
for i in range(1, reps + 1):
    for g in m:
        for l in open(f"{out}/m-{g}{i}/metrics.jsonl"):
            j = json.loads(l)
            if j.get("stage") == "train" and "seconds" in j:
                m[g].append(j["seconds"])
    for impl in r:
        for l in open(f"{out}/{impl}{i}.jsonl"):
            j = json.loads(l)
            if j.get("phase") == "kdvae" and "seconds" in j:
                r[impl].append(j["seconds"])
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"machine: {cpu}, threads {threads}, batch {batch}, full MNIST (70000 x 784), {reps} interleaved rounds")
for g, v in m.items():
    a = statistics.median(v)
    print(f"k-DVAE s/epoch  mixvae, kdvae.gradient = {g:8s} {a:6.2f} (n={len(v)})")
    for impl, w in r.items():
        b = statistics.median(w)
        print(f"  reference {impl:4s} {b:6.2f} (n={len(w)})  speed-up {b/a:.2f}x, time ratio {a/b:.3f}")
PY
