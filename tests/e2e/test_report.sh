#!/usr/bin/env bash
# mixvae report on a fake run tree: the table in Markdown, CSV and JSON (statistics checked
# against Python's), the files of --out (PNGs drawn by gnuplot where it is installed, a
# one-line warning where it is not), the paper column, training curves, and bad inputs as
# one line and exit code 2, also on 2 ranks.
source "$(dirname "$0")/common.sh"

RUNS="$TMP/runs"
python3 - "$RUNS" <<'PY'
import json, os, sys
root = sys.argv[1]
def put(rel, name, obj):
    os.makedirs(f"{root}/{rel}", exist_ok=True)
    with open(f"{root}/{rel}/{name}", "w") as f:
        json.dump(obj, f)
accs = {("mnist", "vade-quick"): [0.78, 0.80, 0.74, 0.81],
        ("mnist", "kdvae-quick"): [0.86, 0.83, 0.84],
        ("har", "vade-quick"): [0.61]}
for (ds, m), values in accs.items():
    for s, a in enumerate(values):
        rel = f"{ds}/{m}/seed-{s}"
        put(rel, "result.json", {"acc": a, "nmi": a - 0.05, "ari": a - 0.1, "seconds": 100.0 + s, "epochs": 20,
                                 "world_size": 1, "seed": s, "model": m.split("-")[0], "dataset": ds})
        put(rel, "status.json", {"status": "done"})
put("mnist/kdvae-quick/seed-3", "status.json", {"status": "failed", "error": 'out of memory, rank 1: "cuda"'})
put("mnist/kdvae-quick/seed-4", "status.json", {"status": "running"})
with open(f"{root}/mnist/kdvae-quick/seed-4/metrics.jsonl", "w") as f:  # a live run: never in the table
    f.write(json.dumps({"stage": "train", "stage_index": 2, "epoch": 1, "loss": 90.0, "acc": 0.99}) + "\n")
put(".", "sweep.json", {"name": "e2e", "runs": [
    {"dataset": "mnist", "model": "vade-quick", "seed": 0, "dir": "x/mnist/vade-quick/seed-0", "status": "done"},
    {"dataset": "mnist", "model": "kdvae-quick", "seed": 5, "dir": "x/mnist/kdvae-quick/seed-5", "status": "pending"},
    {"dataset": "har", "model": "vade-quick", "seed": 0, "dir": "x/har/vade-quick/seed-0", "status": "done"}]})
# Training curves of one run: pretraining, the mixture initialisation, training.
with open(f"{root}/mnist/vade-quick/seed-0/metrics.jsonl", "w") as f:
    for e in range(1, 6):
        f.write(json.dumps({"stage": "pretrain", "stage_index": 0, "epoch": e, "loss": 120.0 / e}) + "\n")
    f.write(json.dumps({"stage": "mixture_init", "stage_index": 1, "epoch": 0, "acc": 0.7}) + "\n")
    for e in range(1, 6):
        f.write(json.dumps({"stage": "train", "stage_index": 2, "epoch": e, "loss": 100.0 - e, "acc": 0.7 + e / 100}) + "\n")
PY

is_png() { python3 -c "import sys;sys.exit(open(sys.argv[1],'rb').read(8)!=b'\x89PNG\r\n\x1a\n')" "$1"; }

# Markdown (the default) on stdout.
md=$("$MIXVAE" report "$RUNS" 2>"$TMP/md.err"); rc=$?
[ "$rc" -eq 0 ] && [ ! -s "$TMP/md.err" ] && ok "report prints Markdown" || bad "report md: exit $rc, $(cat "$TMP/md.err")"
echo "$md" | grep -q '^| model | mnist | mnist min / median / max | mnist label-free pick | har | har min / median / max | har label-free pick |$' \
  && ok "Table 2 layout: models as rows, datasets as column groups (sweep.json order)" || bad "md header: $md"
echo "$md" | grep -q '^| kdvae-quick | \*\*84.33 ± 1.53\*\* | 83.00 / 84.00 / 86.00 |' \
  && ok "best mean in bold, sample std" || bad "md kdvae row: $(echo "$md" | grep kdvae-quick | head -1)"
echo "$md" | grep -q '^| vade-quick | 78.25 ± 3.10 | 74.00 / 79.00 / 81.00 | no pick | 61.00 ± – | 61.00 / 61.00 / 61.00 |' \
  && ok "one seed shows – for its std" || bad "md vade row: $(echo "$md" | grep vade-quick | head -1)"
echo "$md" | grep -q '3 finished, 1 failed, 2 unfinished' && ok "failed and unfinished runs counted" \
  || bad "md counts: $(echo "$md" | grep finished)"
# These result.json files predate the selection score: no pick, with the reason, no error.
echo "$md" | grep -q '^| vade-quick | mnist | no pick: seed 0, seed 1, seed 2 and 1 more have no selection score' \
  && ok "runs without a selection score: no pick, with the reason" || bad "no-pick line: $(echo "$md" | grep 'no pick:')"

# CSV and JSON on stdout; the numbers are Python's mean / stdev / median of the finished seeds.
"$MIXVAE" report "$RUNS" --format csv > "$TMP/table.csv" && "$MIXVAE" report "$RUNS" --format json > "$TMP/table.json" \
  && python3 - "$TMP/table.csv" "$TMP/table.json" <<'PY' && ok "CSV and JSON tables match Python's statistics" || bad "CSV/JSON tables"
import csv, json, statistics as st, sys
rows = {(r["model"], r["dataset"]): r for r in csv.DictReader(open(sys.argv[1]))}
j = json.load(open(sys.argv[2]))
cells = {(c["model"], c["dataset"]): c for c in j["cells"]}
for key, values in {("vade-quick", "mnist"): [0.78, 0.80, 0.74, 0.81], ("kdvae-quick", "mnist"): [0.86, 0.83, 0.84]}.items():
    r, c = rows[key], cells[key]
    for got in (float(r["acc_mean"]), c["acc"]["mean"]):
        assert abs(got - st.mean(values)) < 1e-9, (key, got)
    for got in (float(r["acc_std"]), c["acc"]["std"]):
        assert abs(got - st.stdev(values)) < 1e-9, (key, got)
    assert abs(c["acc"]["median"] - st.median(values)) < 1e-12
    assert c["acc"]["n"] == len(values) and int(r["acc_n"]) == len(values)
assert rows[("kdvae-quick", "mnist")]["acc_best"] == "1" and cells[("kdvae-quick", "mnist")]["acc"]["best"] is True
assert rows[("vade-quick", "mnist")]["acc_best"] == "0"
k = cells[("kdvae-quick", "mnist")]
assert (k["finished"], k["failed"], k["unfinished"]) == (3, 1, 2), k
assert k["acc"]["max"] == 0.86, "a live run's ACC entered the table"
assert cells[("vade-quick", "har")]["acc"]["std"] is None
assert j["models"] == ["vade-quick", "kdvae-quick"] and j["datasets"] == ["mnist", "har"]
PY

# --out: every file, the per-run CSV read back by Python's csv module, the PNG if gnuplot is here.
out="$TMP/out"
"$MIXVAE" report "$RUNS" --out "$out" --paper "$ROOT/configs/sweeps/table2-paper.csv" \
  --curves "$RUNS/mnist/vade-quick/seed-0" > "$TMP/out.md" 2> "$TMP/out.err"; rc=$?
[ "$rc" -eq 0 ] && ok "report --out exits 0" || bad "report --out: exit $rc, $(cat "$TMP/out.err")"
for f in table.md table.csv table.json runs.csv clustpy.csv; do
  [ -s "$out/$f" ] && ok "--out wrote $f" || bad "--out lacks $f"
done
cmp -s "$out/table.md" "$TMP/out.md" && ok "table.md is what stdout shows" || bad "table.md differs from stdout"
python3 - "$out/runs.csv" <<'PY' && ok "runs.csv: one row per run, error with comma and quotes intact" || bad "runs.csv"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert list(rows[0].keys()) == ["dataset", "model", "seed", "status", "acc", "nmi", "ari", "seconds", "epochs",
                                "world_size", "selection_criterion", "selection", "error"], rows[0].keys()
assert len(rows) == 11, len(rows)
failed = [r for r in rows if r["status"] == "failed"]
assert len(failed) == 1 and failed[0]["error"] == 'out of memory, rank 1: "cuda"', failed
assert sum(r["status"] == "unfinished" for r in rows) == 2
PY
"$MIXVAE" report "$RUNS" --format clustpy | cmp -s - "$out/clustpy.csv" && ok "--format clustpy prints clustpy.csv" \
  || bad "--format clustpy differs from clustpy.csv"
python3 - "$out/clustpy.csv" "$out/runs.csv" <<'PY' && ok "clustpy.csv: ClustPy's layout, the finished runs' scores" || bad "clustpy.csv"
import csv, statistics, sys
rows = list(csv.reader(open(sys.argv[1])))
runs = [r for r in csv.DictReader(open(sys.argv[2])) if r["status"] == "finished"]
assert rows[0][:2] == ["algorithm", ""] and rows[1][:2] == ["metric", ""], rows[:2]
cols = list(zip(rows[0][2:], rows[1][2:]))
assert [m for _, m in cols[:4]] == ["acc", "nmi", "ari", "runtime"], cols
for r in runs:  # every finished run's ACC sits in its (dataset, seed) row and (model, acc) column
    line = next(l for l in rows[2:] if l[:2] == [r["dataset"], r["seed"]])
    assert line[2 + cols.index((r["model"], "acc"))] == r["acc"], (r, line)
for d in {r["dataset"] for r in runs}:
    for m in {r["model"] for r in runs if r["dataset"] == d}:
        accs = [float(r["acc"]) for r in runs if r["dataset"] == d and r["model"] == m and r["acc"]]
        mean = next(l for l in rows if l[:2] == [d, "mean"])[2 + cols.index((m, "acc"))]
        std = next(l for l in rows if l[:2] == [d, "std"])[2 + cols.index((m, "acc"))]
        if accs:
            assert abs(float(mean) - statistics.fmean(accs)) < 1e-9 and abs(float(std) - statistics.pstdev(accs)) < 1e-9
PY
grep -q '| mnist paper |' "$out/table.md" && grep -q '| kdvae-quick | \*\*84.33 ± 1.53\*\* | 83.00 / 84.00 / 86.00 | no pick | 97.87 ± 0.10 |' "$out/table.md" \
  && ok "paper column: kdvae-quick reads the kdvae row of table2-paper.csv" || bad "paper column: $(grep kdvae "$out/table.md" | head -1)"
if command -v gnuplot >/dev/null; then
  [ ! -s "$TMP/out.err" ] && ok "no warning with gnuplot installed" || bad "warnings: $(cat "$TMP/out.err")"
  is_png "$out/acc_per_seed.png" && ok "acc_per_seed.png is a PNG ($(file -b "$out/acc_per_seed.png" 2>/dev/null))" \
    || bad "acc_per_seed.png missing or not a PNG"
  is_png "$out/curves.png" && ok "curves.png is a PNG" || bad "curves.png missing or not a PNG"
else
  echo "note: gnuplot is not installed; the PNG checks run where it is (apt-get install gnuplot-nox)"
fi
[ -z "$(find "$out" -name '*.tmp*')" ] && ok "no temporary files left in --out" || bad "leftovers: $(ls "$out")"

# Without gnuplot the tables are still written and the plots are one warning line, not an error.
env PATH=/nonexistent "$MIXVAE" report "$RUNS" --out "$TMP/nogp" --curves "$RUNS/mnist/vade-quick/seed-0" \
  > /dev/null 2> "$TMP/nogp.err"; rc=$?
if [ "$rc" -eq 0 ] && [ "$(grep -c '' "$TMP/nogp.err")" -eq 1 ] && grep -q 'gnuplot not found' "$TMP/nogp.err" \
   && [ -s "$TMP/nogp/table.csv" ] && [ ! -e "$TMP/nogp/acc_per_seed.png" ]; then
  ok "without gnuplot: exit 0, tables written, one warning: $(cat "$TMP/nogp.err")"
else
  bad "without gnuplot: exit $rc, stderr: $(cat "$TMP/nogp.err"), files: $(ls "$TMP/nogp" 2>&1)"
fi

# Bad inputs: one line, exit code 2, and no output files.
expect_error 2 'no such directory' -- "$MIXVAE" report "$TMP/missing"
mkdir -p "$TMP/empty/mnist/vade"
expect_error 2 "no runs found under $TMP/empty" -- "$MIXVAE" report "$TMP/empty"
expect_error 2 "unknown --format 'xml'" -- "$MIXVAE" report "$RUNS" --format xml
expect_error 2 'RUNS_DIR is required' -- "$MIXVAE" report
expect_error 2 "one RUNS_DIR expected" -- "$MIXVAE" report "$RUNS" "$RUNS"
expect_error 2 'unknown option --bogus' -- "$MIXVAE" report "$RUNS" --bogus
expect_error 2 '--curves needs --out' -- "$MIXVAE" report --curves "$RUNS/mnist/vade-quick/seed-0"
expect_error 2 'metrics.jsonl: cannot read' -- "$MIXVAE" report --curves "$RUNS/har/vade-quick/seed-0" --out "$TMP/c"
printf 'model,dataset,acc\nvade,mnist,0.9443\n' > "$TMP/fraction.csv"
expect_error 2 'fraction.csv:2: acc 0.9443 is out of range' -- "$MIXVAE" report "$RUNS" --paper "$TMP/fraction.csv"
cp -r "$RUNS" "$TMP/garbled"
printf '{"acc": 0.5,' > "$TMP/garbled/har/vade-quick/seed-0/result.json"
expect_error 2 'garbled/har/vade-quick/seed-0/result.json: not valid JSON' -- "$MIXVAE" report "$TMP/garbled" --out "$TMP/gout"
[ -z "$(ls -A "$TMP/gout" 2>/dev/null)" ] && ok "a garbled result.json writes no output file" || bad "files after an error: $(ls "$TMP/gout")"

# Under mpirun: rank 0 alone prints the table, and an error is one line from every rank (no hang).
n=$(timeout 120 "${MPIRUN[@]}" "$MIXVAE" report "$RUNS" 2>/dev/null | grep -c '^## ACC')
[ "$n" -eq 1 ] && ok "2 ranks print the table once" || bad "2 ranks printed the table $n times"
expect_error 2 'result.json: not valid JSON' -- timeout 120 "${MPIRUN[@]}" "$MIXVAE" report "$TMP/garbled"
finish
