#!/usr/bin/env bash
# The report's label-free pick does not look at labels: the same small sweep (VaDE and
# AE+GMM, 3 seeds) on a generated data set and on a copy whose labels are shuffled (same
# features, same converter) picks the same seed with the same score in both, while the
# picked run's ACC differs. Also: every run stores its selection score in result.json and
# in the last line of metrics.jsonl.
source "$(dirname "$0")/common.sh"
cd "$ROOT"

# The data: `prepare --dataset synthetic`, its features and labels read back with h5dump,
# written as .npy (a 10-line writer: no numpy here), and converted twice by `prepare
# --dataset npy`: once with the labels, once with a fixed permutation of them.
"$MIXVAE" prepare --dataset synthetic --n 1200 --d 20 --k 4 --seed 3 --out "$TMP/syn.h5" >/dev/null \
  && h5dump -d /features -b LE -o "$TMP/features.bin" "$TMP/syn.h5" >/dev/null \
  && h5dump -d /labels -b LE -o "$TMP/labels.bin" "$TMP/syn.h5" >/dev/null \
  && ok "prepare synthetic data, read it back with h5dump" || bad "prepare / h5dump"
python3 - "$TMP" <<'PY' && ok "features and labels as .npy, a shuffled copy of the labels" || bad "npy files"
import random, struct, sys
d = sys.argv[1]
def npy(path, descr, shape, payload):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, repr(shape))
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + payload)
features = open(f"{d}/features.bin", "rb").read()
labels = list(struct.unpack("<1200q", open(f"{d}/labels.bin", "rb").read()))
assert len(features) == 1200 * 20 * 4 and sorted(set(labels)) == [0, 1, 2, 3], (len(features), set(labels))
shuffled = labels[:]
random.Random(7).shuffle(shuffled)
assert shuffled != labels
npy(f"{d}/features.npy", "<f4", (1200, 20), features)
npy(f"{d}/labels.npy", "<i8", (1200,), struct.pack("<1200q", *labels))
npy(f"{d}/shuffled.npy", "<i8", (1200,), struct.pack("<1200q", *shuffled))
PY
for copy in labels shuffled; do
  "$MIXVAE" prepare --dataset npy --features "$TMP/features.npy" --labels "$TMP/$copy.npy" --name smoke \
    --out "$TMP/$copy.h5" >/dev/null && ok "prepare --dataset npy ($copy)" || bad "prepare npy ($copy)"
done

# The same sweep on both copies: the smoke grid's VaDE and AE+GMM, seeds 0-2, 2 runs side by side.
for copy in labels shuffled; do
  start=$(date +%s)
  if timeout 900 "${MPIRUN[@]}" "$MIXVAE" sweep --config configs/sweeps/smoke.ini --sweep.runs_dir="$TMP/runs-$copy" \
       --datasets.smoke="$TMP/$copy.h5" --sweep.models=vade,aegmm --sweep.seeds=0-2 > "$TMP/$copy.log" 2>&1; then
    ok "sweep on the $copy copy ($(( $(date +%s) - start )) s)"
  else
    bad "sweep on the $copy copy: $(tail -5 "$TMP/$copy.log")"
  fi
  "$MIXVAE" report "$TMP/runs-$copy" --out "$TMP/report-$copy" > "$TMP/report-$copy.md" 2> "$TMP/report-$copy.err" \
    && ok "report of the $copy copy" || bad "report ($copy): $(cat "$TMP/report-$copy.err")"
done

python3 - "$TMP" <<'PY' && ok "every run stores its score in result.json and the last metrics.jsonl line" \
  || bad "selection score not stored"
import json, pathlib, sys
d = pathlib.Path(sys.argv[1])
criteria = {"vade": "elbo", "aegmm": "gmm_loglik_minus_recon"}
for copy in ("labels", "shuffled"):
    for model, criterion in criteria.items():
        for seed in range(3):
            run = d / f"runs-{copy}/smoke/{model}/seed-{seed}"
            sel = json.load(open(run / "result.json"))["selection"]
            assert sel["criterion"] == criterion and sel["higher_is_better"] is True, sel
            assert isinstance(sel["value"], float), sel
            last = [json.loads(l) for l in open(run / "metrics.jsonl")][-1]
            assert last["selection"] == sel, (last, sel)
PY

python3 - "$TMP" <<'PY' && ok "shuffled labels: same picks, same scores, different ACC" || bad "the pick depends on the labels"
import json, sys
d = sys.argv[1]
a = {(c["model"], c["dataset"]): c for c in json.load(open(f"{d}/report-labels/table.json"))["cells"]}
b = {(c["model"], c["dataset"]): c for c in json.load(open(f"{d}/report-shuffled/table.json"))["cells"]}
assert a.keys() == b.keys() == {("vade", "smoke"), ("aegmm", "smoke")}, (a.keys(), b.keys())
for key in a:
    pa, pb = a[key]["pick"], b[key]["pick"]
    assert pa and pb, (key, a[key]["no_pick"], b[key]["no_pick"])
    assert (pa["seed"], pa["criterion"], pa["score"]) == (pb["seed"], pb["criterion"], pb["score"]), (key, pa, pb)
    assert pa["acc"] != pb["acc"], (key, pa, pb)
    print(key, "picked seed", pa["seed"], "score", pa["score"], "ACC", pa["acc"], "vs shuffled", pb["acc"])
# Every seed's score is the same on both copies, not only the picked one's.
ra = {(r["model"], r["seed"]): r["selection"] for r in json.load(open(f"{d}/report-labels/table.json"))["runs"]}
rb = {(r["model"], r["seed"]): r["selection"] for r in json.load(open(f"{d}/report-shuffled/table.json"))["runs"]}
assert ra == rb and len(ra) == 6, (ra, rb)
PY
grep -q '^| vade | smoke | elbo | [0-2] | ' "$TMP/report-labels.md" \
  && grep -q '| smoke label-free pick |' "$TMP/report-labels.md" \
  && ok "Markdown: the pick column and the Label-free pick table" || bad "Markdown pick: $(cat "$TMP/report-labels.md")"

# A result.json without the score (as an older mixvae wrote it): that group has no pick, with
# the reason, and the report still exits 0; `train --resume` on the finished run scores it
# without training, and the pick is back.
run="$TMP/runs-labels/smoke/vade/seed-1"
python3 - "$run/result.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
del j["selection"]
json.dump(j, open(sys.argv[1], "w"))
PY
"$MIXVAE" report "$TMP/runs-labels" --format json > "$TMP/old.json" 2> "$TMP/old.err"; rc=$?
python3 - "$TMP/old.json" <<'PY' && [ "$rc" -eq 0 ] && ok "a run without a score: no pick, with the reason" \
  || bad "report with an unscored run: exit $rc, $(cat "$TMP/old.err")"
import json, sys
cells = {c["model"]: c for c in json.load(open(sys.argv[1]))["cells"]}
assert cells["vade"]["pick"] is None and "seed 1 has no selection score" in cells["vade"]["no_pick"], cells["vade"]
assert cells["aegmm"]["pick"] is not None
PY
"$MIXVAE" train --config "$run/config.ini" --resume --train.threads=1 --output.progress=false > "$TMP/rescore.log" 2>&1 \
  && "$MIXVAE" report "$TMP/runs-labels" --format json > "$TMP/rescored.json" \
  && python3 - "$TMP" <<'PY' && ok "train --resume of the finished run scores it again: same pick" || bad "rescore: $(tail -3 "$TMP/rescore.log")"
import json, sys
d = sys.argv[1]
before = {c["model"]: c["pick"] for c in json.load(open(f"{d}/report-labels/table.json"))["cells"]}
after = {c["model"]: c["pick"] for c in json.load(open(f"{d}/rescored.json"))["cells"]}
for m in before:
    assert after[m]["seed"] == before[m]["seed"], (m, before[m], after[m])
    assert abs(after[m]["score"] - before[m]["score"]) <= 1e-6 * abs(before[m]["score"]), (m, before[m], after[m])
PY
finish
