#!/usr/bin/env bash
# VaDE epoch time, mixvae vs the PyTorch reference (shared/bench/ref_models.py), run
# interleaved (A B A B ...) on the same data, batch and thread count. Prints per-epoch
# medians of the pretraining and training phases and the ratio mixvae / reference.
#   tests/bench/epoch_vs_reference.sh [REPEATS=3] [THREADS=2] [BATCH=100]
# Needs: build/mixvae, data/mnist.h5 (mixvae prepare), ../shared/data/mnist, and
# /usr/bin/python3 with Debian's python3-torch (apt-get install python3-torch python3-scipy).
set -euo pipefail
reps="${1:-3}" threads="${2:-2}" batch="${3:-100}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
for i in $(seq 1 "$reps"); do
  "$mixvae" train --config "$root/configs/experiments/mnist-vade-quick.ini" --data.path="$h5" \
    --output.dir="$out/m$i" --pretrain.epochs=1 --train.epochs=2 --train.eval_every=0 \
    --train.threads="$threads" --train.batch_size="$batch" --pretrain.batch_size="$batch" \
    --output.progress=false > /dev/null
  /usr/bin/python3 "$ref" --model vade --data "$raw" --pretrain-epochs 1 --epochs 2 --batch "$batch" \
    --threads "$threads" --time-only > "$out/r$i.jsonl"
  echo "round $i of $reps done" >&2
done
python3 - "$out" "$reps" "$threads" "$batch" <<'PY'
import json, statistics, sys, platform
out, reps, threads, batch = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
m = {"pretrain": [], "train": []}
r = {"pretrain": [], "train": []}
for i in range(1, reps + 1):
    for l in open(f"{out}/m{i}/metrics.jsonl"):
        j = json.loads(l)
        if j["stage"] in m and "seconds" in j:
            m[j["stage"]].append(j["seconds"])
    for l in open(f"{out}/r{i}.jsonl"):
        j = json.loads(l)
        ph = {"pretrain": "pretrain", "vade": "train"}.get(j.get("phase"))
        if ph and "seconds" in j:
            r[ph].append(j["seconds"])
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"machine: {cpu}, threads {threads}, batch {batch}, full MNIST (70000 x 784), {reps} interleaved rounds")
for ph in ("pretrain", "train"):
    a, b = statistics.median(m[ph]), statistics.median(r[ph])
    print(f"{ph:9s} s/epoch  mixvae {a:6.2f} (n={len(m[ph])})  reference {b:6.2f} (n={len(r[ph])})  ratio {a/b:.3f}")
PY
