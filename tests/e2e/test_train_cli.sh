#!/usr/bin/env bash
# The CLI end to end on generated data: prepare, train on 2 ranks, eval and sample the
# checkpoint, resume a finished run.
source "$(dirname "$0")/common.sh"

"$MIXVAE" prepare --dataset synthetic --n 2000 --d 64 --k 5 --seed 3 --out "$TMP/syn.h5" >/dev/null \
  && ok "prepare synthetic" || bad "prepare synthetic"
# The file is plain HDF5: h5dump reads it without anything of ours.
h5dump -H "$TMP/syn.h5" | grep -q 'DATASET "features"' && h5dump -a /num_classes "$TMP/syn.h5" | grep -q "(0): 5" \
  && ok "h5dump reads the prepared file" || bad "h5dump cannot read the prepared file"
args=(--data.path="$TMP/syn.h5" --model.hidden=128,64 --model.clusters=5 --model.latent=5
      --pretrain.epochs=5 --train.epochs=4 --train.lr_decay_every=2 --train.seed=7 --output.progress=false)
if timeout 600 "${MPIRUN[@]}" "$MIXVAE" train "${args[@]}" --output.dir="$TMP/run" > "$TMP/train.log" 2>&1; then
  ok "train on 2 ranks"
else
  bad "train on 2 ranks: $(tail -5 "$TMP/train.log")"
fi
for f in config.ini metrics.jsonl result.json checkpoint.h5 samples.png; do
  [ -s "$TMP/run/$f" ] && ok "run has $f" || bad "run lacks $f"
done
python3 - "$TMP/run" <<'PY' && ok "result.json and metrics.jsonl well formed" || bad "result.json / metrics.jsonl"
import json, sys
d = sys.argv[1]
r = json.load(open(f"{d}/result.json"))
for k in ("acc", "nmi", "ari", "loss", "epochs", "seconds", "world_size", "seed", "model", "dataset"):
    assert k in r, k
assert r["world_size"] == 2 and 0 <= r["acc"] <= 1
lines = [json.loads(l) for l in open(f"{d}/metrics.jsonl")]
assert [l["stage"] for l in lines] == ["pretrain"] * 5 + ["mixture_init"] + ["train"] * 4, lines
assert all("occupancy" in l and "mean_entropy" in l for l in lines if l["stage"] == "train")
# The cluster-by-class table and the matching behind ACC: rows are the clusters' sizes,
# each class is matched at most once, and the matched cells give ACC.
t, m = r["contingency"], r["cluster_class"]
assert len(t) == 5 and all(len(row) == 5 for row in t), t
assert [sum(row) for row in t] == r["occupancy"], (t, r["occupancy"])
assert sorted(c for c in m if c >= 0) == list(range(5)), m
assert abs(sum(t[k][m[k]] for k in range(5)) / sum(map(sum, t)) - r["acc"]) < 1e-12
print("acc", r["acc"])
PY
grep -q "final: ACC" "$TMP/train.log" && ok "final ACC line" || bad "no final ACC line"
[ "$(grep -c 'mixvae 0' "$TMP/train.log")" -eq 1 ] && ok "only rank 0 speaks" || bad "more than one rank printed"

# eval on 1 and on 2 ranks gives the result.json figures.
acc=$(python3 -c "import json;print('%.4f'%json.load(open('$TMP/run/result.json'))['acc'])")
e1=$("$MIXVAE" eval --checkpoint "$TMP/run/checkpoint.h5")
e2=$(timeout 120 "${MPIRUN[@]}" "$MIXVAE" eval --checkpoint "$TMP/run/checkpoint.h5")
echo "$e1" | grep -q "ACC $acc" && ok "eval (1 rank) = result.json: $e1" || bad "eval 1 rank '$e1' vs $acc"
echo "$e2" | grep -q "ACC $acc" && ok "eval (2 ranks) = result.json" || bad "eval 2 ranks '$e2' vs $acc"
python3 - "$TMP/run/result.json" <("$MIXVAE" eval --checkpoint "$TMP/run/checkpoint.h5" --json) <<'PY' \
  && ok "eval --json gives result.json's cluster-by-class table" || bad "eval --json table differs from result.json"
import json, sys
r, e = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert e["contingency"] == r["contingency"] and e["cluster_class"] == r["cluster_class"], (e, r)
PY
# Every row's cluster, in file order, on 1 and on 2 ranks: the same assignments, and they
# are the ones behind result.json's table.
"$MIXVAE" eval --checkpoint "$TMP/run/checkpoint.h5" --assignments "$TMP/as1.csv" >/dev/null \
  && timeout 120 "${MPIRUN[@]}" "$MIXVAE" eval --checkpoint "$TMP/run/checkpoint.h5" --assignments "$TMP/as2.csv" >/dev/null \
  && cmp -s "$TMP/as1.csv" "$TMP/as2.csv" && ok "eval --assignments: the same CSV on 1 and 2 ranks" \
  || bad "eval --assignments on 1 vs 2 ranks"
python3 - "$TMP/as1.csv" "$TMP/run/result.json" <<'PY' && ok "assignments.csv: one row per sample, result.json's contingency" || bad "assignments.csv"
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1])))
r = json.load(open(sys.argv[2]))
assert list(rows[0].keys()) == ["row", "cluster", "confidence", "label"], rows[0].keys()
assert [int(x["row"]) for x in rows] == list(range(2000))
t = [[0] * len(r["contingency"][0]) for _ in r["contingency"]]
for x in rows:
    t[int(x["cluster"])][int(x["label"])] += 1
    assert 0 < float(x["confidence"]) <= 1
assert t == r["contingency"], (t, r["contingency"])
PY
timeout 120 "${MPIRUN[@]}" "$MIXVAE" eval --checkpoint "$TMP/run/checkpoint.h5" --assignments "$TMP/as.h5" >/dev/null \
  && h5dump -H "$TMP/as.h5" > "$TMP/as.txt" && grep -A2 'DATASET "cluster"' "$TMP/as.txt" | grep -q '( 2000 )' \
  && grep -A2 'DATASET "posterior"' "$TMP/as.txt" | grep -q '( 2000, 5 )' \
  && grep -A2 'DATASET "embedding"' "$TMP/as.txt" | grep -q '( 2000, 5 )' && grep -q 'DATASET "labels"' "$TMP/as.txt" \
  && ok "eval --assignments FILE.h5: cluster, posterior, embedding, labels" || bad "assignments.h5: $(head -c 300 "$TMP/as.txt")"
expect_error 2 "must end in .csv or .h5" -- "$MIXVAE" eval --checkpoint "$TMP/run/checkpoint.h5" --assignments "$TMP/a.txt"
expect_error 2 "no such folder" -- "$MIXVAE" eval --checkpoint "$TMP/run/checkpoint.h5" --assignments "$TMP/none/a.csv"
"$MIXVAE" sample --checkpoint "$TMP/run/checkpoint.h5" --per-cluster 4 --out "$TMP/grid.png" >/dev/null \
  && python3 -c "import sys;b=open('$TMP/grid.png','rb').read(8);sys.exit(b!=b'\x89PNG\r\n\x1a\n')" \
  && ok "sample writes a PNG" || bad "sample"
# Without --seed, sample draws as the run did (its train.seed): the run's own samples.png.
per=$(sed -n 's/^samples_per_cluster = //p' "$TMP/run/config.ini")
"$MIXVAE" sample --checkpoint "$TMP/run/checkpoint.h5" --per-cluster "$per" --out "$TMP/same.png" >/dev/null \
  && cmp -s "$TMP/same.png" "$TMP/run/samples.png" && ok "sample without --seed reproduces the run's samples.png" \
  || bad "sample without --seed differs from samples.png"
"$MIXVAE" sample --checkpoint "$TMP/run/checkpoint.h5" --per-cluster "$per" --seed 0 --out "$TMP/other.png" >/dev/null \
  && ! cmp -s "$TMP/other.png" "$TMP/run/samples.png" && ok "sample --seed 0 draws other samples" || bad "sample --seed 0"
expect_error 2 "--seed a non-negative integer" -- "$MIXVAE" sample --checkpoint "$TMP/run/checkpoint.h5" --seed -1 --out "$TMP/x.png"

# A run trained with a relative data.path evaluates from any folder (the checkpoint keeps
# the absolute path too); when that file is gone, eval says so and names --data.
mkdir -p "$TMP/proj" "$TMP/elsewhere" && cp "$TMP/syn.h5" "$TMP/proj/rel.h5"
(cd "$TMP/proj" && "$MIXVAE" train --data.path=rel.h5 --model.hidden=128,64 --model.clusters=5 --model.latent=5 \
   --pretrain.epochs=1 --train.epochs=1 --train.seed=7 --output.progress=false --output.dir=relrun > "$TMP/rel.log" 2>&1) \
  && grep -q '^path = rel.h5$' "$TMP/proj/relrun/config.ini" && ok "train with a relative data.path" \
  || bad "train with a relative data.path: $(tail -3 "$TMP/rel.log")"
racc=$(python3 -c "import json;print('%.4f'%json.load(open('$TMP/proj/relrun/result.json'))['acc'])" 2>/dev/null)
[ -n "$racc" ] && (cd "$TMP/elsewhere" && "$MIXVAE" eval --checkpoint ../proj/relrun/checkpoint.h5) | grep -q "ACC $racc" \
  && ok "eval from another folder finds the run's relative data file" || bad "eval from another folder"
# An explicit --data is taken as given, even when the recorded file exists.
expect_error 2 "rel.h5: no such file" -- \
  env -C "$TMP/elsewhere" "$MIXVAE" eval --checkpoint ../proj/relrun/checkpoint.h5 --data rel.h5
rm "$TMP/proj/rel.h5"
expect_error 2 "rel.h5, is not there \(from this folder\); give it with --data" -- \
  env -C "$TMP/elsewhere" "$MIXVAE" eval --checkpoint ../proj/relrun/checkpoint.h5
(cd "$TMP/elsewhere" && "$MIXVAE" eval --checkpoint ../proj/relrun/checkpoint.h5 --data "$TMP/syn.h5") | grep -q "ACC $racc" \
  && ok "eval --data replaces a missing data file" || bad "eval --data after the data file moved"

# --resume of a finished run: nothing left to train, same result.
timeout 300 "${MPIRUN[@]}" "$MIXVAE" train "${args[@]}" --output.dir="$TMP/run" --resume > "$TMP/resume.log" 2>&1 \
  && grep -q "final: ACC $acc" "$TMP/resume.log" && ok "resume of a finished run" || bad "resume: $(tail -3 "$TMP/resume.log")"
finish
