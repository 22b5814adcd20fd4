#!/usr/bin/env bash
# sweep.seeds_per_process = 2 and `mixvae train --seeds`: VaDE seeds train as batched
# ensembles (two per group on 2 ranks), each seed leaves an ordinary run directory, the
# autoencoders the ensembles pretrain are reused by AE+GMM, a preempted ensemble sweep
# resumes to the same results, and refused uses are one-line errors.
source "$(dirname "$0")/common.sh"
cd "$ROOT"
"$MIXVAE" prepare --dataset synthetic --n 2000 --d 20 --k 4 --seed 0 --out "$TMP/smoke.h5" >/dev/null \
  && ok "prepare smoke data" || bad "prepare smoke data"
sweep() {  # sweep RUNS_DIR EPOCHS [extra args]
  local runs="$1" epochs="$2"; shift 2
  timeout 900 "${MPIRUN[@]}" "$MIXVAE" sweep --config configs/sweeps/smoke.ini --sweep.runs_dir="$runs" \
    --datasets.smoke="$TMP/smoke.h5" --overrides.train.epochs="$epochs" --sweep.models=vade,aegmm \
    --sweep.seeds=0-3 --sweep.seeds_per_process=2 "$@"
}
results() {  # one line per run: label acc nmi ari (sorted)
  python3 - "$1" <<'PY'
import json, pathlib, sys
for p in sorted(pathlib.Path(sys.argv[1]).glob("*/*/seed-*/result.json")):
    r = json.load(open(p))
    print(p.parent.relative_to(sys.argv[1]), r["acc"], r["nmi"], r["ari"])
PY
}

# 1. Eight runs: vade seeds {0,1} and {2,3} as two ensembles, aegmm one seed at a time.
if sweep "$TMP/a" 5 > "$TMP/a.log" 2>&1; then ok "ensemble sweep on 2 ranks"; else bad "ensemble sweep: $(tail -5 "$TMP/a.log")"; fi
python3 - "$TMP/a" <<'PY' && ok "vade seeds trained in pairs, aegmm reused their autoencoders" || bad "ensemble sweep outputs"
import json, pathlib, sys
root = pathlib.Path(sys.argv[1])
s = json.load(open(root / "sweep.json"))
assert s["status"] == "done" and s["counts"] == {"done": 8}, s["counts"]
assert s["seeds_per_process"] == 2
for seed in range(4):
    v = json.load(open(root / f"smoke/vade/seed-{seed}/result.json"))
    a = json.load(open(root / f"smoke/aegmm/seed-{seed}/result.json"))
    assert v["ensemble_seeds"] == ([0, 1] if seed < 2 else [2, 3]), v.get("ensemble_seeds")
    assert "ensemble_seeds" not in a
    assert v["seed"] == seed and v["acc"] is not None
    assert v["pretrain_artifact"].startswith("saved:"), v["pretrain_artifact"]
    assert a["pretrain_artifact"] == "reused:" + v["pretrain_artifact"][6:], (a["pretrain_artifact"], v["pretrain_artifact"])
    assert (root / f"smoke/vade/seed-{seed}/checkpoint.h5").exists()
    assert (root / f"smoke/vade/seed-{seed}/samples.png").exists()
    assert json.load(open(root / f"smoke/vade/seed-{seed}/status.json"))["status"] == "done"
assert sorted(p.name for p in (root / "smoke/vade").glob("ensemble-*")) == ["ensemble-0-1", "ensemble-2-3"]
PY
# A member's run directory is an ordinary run: eval reads its checkpoint.
"$MIXVAE" eval --checkpoint "$TMP/a/smoke/vade/seed-1/checkpoint.h5" --data "$TMP/smoke.h5" > "$TMP/eval.txt" 2>&1 \
  && grep -q "ACC" "$TMP/eval.txt" && ok "eval reads an ensemble member's checkpoint" || bad "eval: $(tail -2 "$TMP/eval.txt")"
sweep "$TMP/a" 5 > "$TMP/a2.log" 2>&1 && grep -q "8 finished earlier" "$TMP/a2.log" \
  && ok "rerun of a finished ensemble sweep trains nothing" || bad "rerun: $(tail -3 "$TMP/a2.log")"

# 2. SIGUSR1 while the ensembles train: exit 3, the ensemble checkpoints, a rerun resumes
#    them and ends with the results of an uninterrupted sweep.
sweep "$TMP/u" 40 > "$TMP/u.log" 2>&1 && ok "uninterrupted 40-epoch ensemble sweep" || bad "40 epochs: $(tail -3 "$TMP/u.log")"
sweep "$TMP/c" 40 > "$TMP/c.log" 2>&1 &
pid=$!
for _ in $(seq 600); do
  [ "$(grep -c '"stage":"train"' "$TMP"/c/smoke/vade/seed-0/metrics.jsonl 2>/dev/null)" -ge 3 ] 2>/dev/null && break
  sleep 0.05
done
mpirun_pid=$(pgrep -f "^mpirun .*sweep.runs_dir=$TMP/c" | head -1)
kill -USR1 "$mpirun_pid"
wait $pid; rc=$?
[ "$rc" -eq 3 ] && ok "SIGUSR1 -> exit 3" || bad "SIGUSR1 -> exit $rc: $(tail -3 "$TMP/c.log")"
[ -f "$TMP/c/smoke/vade/ensemble-0-1/checkpoint.h5" ] && ok "the ensemble wrote its checkpoint" || bad "no ensemble checkpoint"
sweep "$TMP/c" 40 > "$TMP/c2.log" 2>&1 && ok "rerun after preemption" || bad "rerun: $(tail -3 "$TMP/c2.log")"
grep -q "resuming the ensemble" "$TMP/c/smoke/vade/seed-0/train.log" && ok "the rerun resumed the ensemble" \
  || bad "no resume in $(tail -3 "$TMP/c/smoke/vade/seed-0/train.log")"
diff <(results "$TMP/u") <(results "$TMP/c") > "$TMP/diff.txt" && ok "preempted + rerun = uninterrupted" \
  || bad "results differ after preemption: $(head -4 "$TMP/diff.txt")"

# 3. `mixvae train --seeds`: two seed directories and a one-line error for other models.
"$MIXVAE" train --config configs/experiments/smoke-vade.ini --data.path="$TMP/smoke.h5" --train.epochs=2 \
  --output.dir="$TMP/t" --seeds 5,6 > "$TMP/t.log" 2>&1 \
  && [ -f "$TMP/t/seed-5/result.json" ] && [ -f "$TMP/t/seed-6/result.json" ] && grep -q "final seed 6: ACC" "$TMP/t.log" \
  && ok "train --seeds 5,6" || bad "train --seeds: $(tail -3 "$TMP/t.log")"
"$MIXVAE" report "$TMP/t" > "$TMP/t-report.md" 2>&1 && grep -q "2 runs: 2 finished" "$TMP/t-report.md" \
  && grep -q "| vade | " "$TMP/t-report.md" && ok "report reads the seed folders of train --seeds" \
  || bad "report of train --seeds: $(head -5 "$TMP/t-report.md")"
# Each seed's folder holds a normal checkpoint for eval/sample; the ensemble's own state
# file is refused with a pointer to them.
"$MIXVAE" eval --checkpoint "$TMP/t/seed-6/checkpoint.h5" > /dev/null && ok "eval reads one seed of train --seeds" \
  || bad "eval of t/seed-6/checkpoint.h5"
expect_error 2 "the checkpoint of a seed ensemble .*use one run's own, .*t/seed-<s>/checkpoint.h5" -- \
  "$MIXVAE" eval --checkpoint "$TMP/t/ensemble/checkpoint.h5"
expect_error 2 "the checkpoint of a seed ensemble" -- "$MIXVAE" sample --checkpoint "$TMP/t/ensemble/checkpoint.h5" \
  --out "$TMP/e.png"
expect_error 2 "no batched ensemble yet" -- "$MIXVAE" train --config configs/experiments/smoke-kdvae.ini \
  --data.path="$TMP/smoke.h5" --output.dir="$TMP/k" --seeds 0-1
expect_error 2 "seeds_per_process must be a positive integer" -- "$MIXVAE" sweep --config configs/sweeps/smoke.ini \
  --datasets.smoke="$TMP/smoke.h5" --sweep.seeds_per_process=0
expect_error 2 "train --seeds" -- "$MIXVAE" train --config configs/experiments/smoke-vade.ini --seeds 1-x
finish
