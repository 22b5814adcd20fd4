#!/usr/bin/env bash
# k-DVAE epoch time (the Eq. 6 stage), mixvae vs the PyTorch reference's loop and bmm
# implementations (shared/bench/ref_models.py), run interleaved (A B C A B C ...) on the
# same data, batch and thread count. Prints medians and the ratios.
#   tests/bench/kdvae_vs_reference.sh [REPEATS=3] [THREADS=2] [BATCH=100]
#   IMPLS="loop" to time only the reference's loop implementation (default "loop bmm").
# Needs: build/mixvae, data/mnist.h5 (mixvae prepare), ../shared/data/mnist, and
# /usr/bin/python3 with Debian's python3-torch.
set -euo pipefail
reps="${1:-3}" threads="${2:-2}" batch="${3:-100}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
for i in $(seq 1 "$reps"); do
  # No pretraining or VaDE epochs: straight to k-means and the k-network stage.
  "$mixvae" train --config "$root/configs/experiments/mnist-kdvae-quick.ini" --data.path="$h5" \
    --output.dir="$out/m$i" --pretrain.epochs=0 --train.epochs=0 --kdvae.warmup_epochs=0 --kdvae.epochs=2 \
    --kdvae.kmeans_restarts=1 --train.eval_every=0 --train.threads="$threads" --train.batch_size="$batch" \
    --output.progress=false > /dev/null
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
m, r = [], {k: [] for k in os.environ.get("IMPLS", "loop bmm").split()}
for i in range(1, reps + 1):
    for l in open(f"{out}/m{i}/metrics.jsonl"):
        j = json.loads(l)
        if j.get("stage") == "train" and "seconds" in j:
            m.append(j["seconds"])
    for impl in r:
        for l in open(f"{out}/{impl}{i}.jsonl"):
            j = json.loads(l)
            if j.get("phase") == "kdvae" and "seconds" in j:
                r[impl].append(j["seconds"])
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"machine: {cpu}, threads {threads}, batch {batch}, full MNIST (70000 x 784), {reps} interleaved rounds")
a = statistics.median(m)
print(f"k-DVAE s/epoch  mixvae {a:6.2f} (n={len(m)})")
for impl, v in r.items():
    b = statistics.median(v)
    print(f"  reference {impl:4s} {b:6.2f} (n={len(v)})  speed-up {b/a:.2f}x")
PY
