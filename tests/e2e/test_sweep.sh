#!/usr/bin/env bash
# `mixvae sweep` end to end on the smoke grid (6 models x 2 seeds, generated data) on 2
# ranks = 2 groups: every run finishes, pretraining is shared, a killed sweep rerun
# finishes only what was missing with the same results, SIGUSR1 stops it with checkpoints
# (exit 3) and a rerun completes it, bad sweep files are one-line errors.
source "$(dirname "$0")/common.sh"
cd "$ROOT"
"$MIXVAE" prepare --dataset synthetic --n 2000 --d 20 --k 4 --seed 0 --out "$TMP/smoke.h5" >/dev/null \
  && ok "prepare smoke data" || bad "prepare smoke data"
# The smoke grid into RUNS_DIR on 2 ranks; 40 epochs so that a signal can land mid-run.
sweep() {  # sweep RUNS_DIR [extra args]
  local runs="$1"; shift
  timeout 900 "${MPIRUN[@]}" "$MIXVAE" sweep --config configs/sweeps/smoke.ini --sweep.runs_dir="$runs" \
    --datasets.smoke="$TMP/smoke.h5" --overrides.train.epochs=40 "$@"
}
wait_for_results() {  # wait_for_results RUNS_DIR N: until N runs have finished (2 minutes at most)
  for _ in $(seq 600); do
    [ "$(ls "$1"/smoke/*/seed-*/result.json 2>/dev/null | wc -l)" -ge "$2" ] && return
    sleep 0.2
  done
}
results() {  # one line per run: label acc nmi ari (sorted)
  python3 - "$1" <<'PY'
import json, pathlib, sys
for p in sorted(pathlib.Path(sys.argv[1]).glob("*/*/seed-*/result.json")):
    r = json.load(open(p))
    print(p.parent.relative_to(sys.argv[1]), r["acc"], r["nmi"], r["ari"])
PY
}

# 1. The whole grid, two runs side by side.
start=$(date +%s)
if sweep "$TMP/a" > "$TMP/a.log" 2>&1; then ok "smoke sweep on 2 ranks ($(( $(date +%s) - start )) s)"
else bad "smoke sweep: $(tail -5 "$TMP/a.log")"; fi
[ "$(results "$TMP/a" | wc -l)" -eq 12 ] && ok "12 runs finished" || bad "$(results "$TMP/a" | wc -l) runs finished, expected 12"
python3 - "$TMP/a" <<'PY' && ok "sweep.json: 12 done, both groups trained, artifacts shared" || bad "sweep.json / artifacts"
import json, pathlib, sys
root = pathlib.Path(sys.argv[1])
s = json.load(open(root / "sweep.json"))
assert s["status"] == "done" and s["counts"] == {"done": 12}, s["counts"]
assert {r["group"] for r in s["runs"]} == {0, 1}, "one group did all the work"
# One VaDE-family autoencoder per seed (vade, aegmm, kdvae, kdae share it), one GamMM-VAE per
# seed, and one VaDE ELBO stage per seed (the VaDE run trains it, k-DVAE's first stage loads it:
# both train 40 epochs here).
arts = sorted(p.name.rsplit("-", 1)[0] for p in (root / "pretrained").glob("*.h5"))
assert arts == ["gammmvae-ae"] * 2 + ["vade"] * 2 + ["vade-ae"] * 2, arts
notes = [json.load(open(p))["pretrain_artifact"] for p in root.glob("smoke/*/seed-*/result.json")]
assert sum(n.startswith("saved:") for n in notes) == 4 and sum(n.startswith("reused:") for n in notes) == 6, notes
for seed in (0, 1):
    stage = {m: json.load(open(root / f"smoke/{m}/seed-{seed}/result.json"))["artifacts"].get("vade", "")
             for m in ("vade", "kdvae")}
    assert stage["vade"].startswith("saved:") and stage["kdvae"] == "reused:" + stage["vade"][6:], stage
for r in s["runs"]:
    assert (root / r["dir"] / "train.log").stat().st_size > 0
PY
grep -q "12/12 done" "$TMP/a.log" && ok "live summary reaches 12/12" || bad "no 12/12 summary line"

# 2. Rerun: nothing to do.
before=$(stat -c %Y "$TMP/a/smoke/vade/seed-0/result.json")
sweep "$TMP/a" > "$TMP/a2.log" 2>&1 && grep -q "12 finished earlier" "$TMP/a2.log" \
  && [ "$(stat -c %Y "$TMP/a/smoke/vade/seed-0/result.json")" = "$before" ] \
  && ok "rerun of a finished sweep trains nothing" || bad "rerun: $(tail -3 "$TMP/a2.log")"

# A resubmission with another CPU count (sweep.sbatch/array.sbatch pass
# train.threads=$SLURM_CPUS_PER_TASK) or other output settings is the same sweep: finished
# runs are skipped, a run with only a checkpoint resumes (here: a finished run's last
# checkpoint, nothing left to train) instead of being reported as another config.
rm "$TMP/a/smoke/aegmm/seed-1/result.json"
sweep "$TMP/a" --overrides.train.threads=1 --overrides.output.samples_per_cluster=3 > "$TMP/a2t.log" 2>&1; rc=$?
[ "$rc" -eq 0 ] && grep -q "11 finished earlier" "$TMP/a2t.log" && [ -e "$TMP/a/smoke/aegmm/seed-1/result.json" ] \
  && [ "$(stat -c %Y "$TMP/a/smoke/vade/seed-0/result.json")" = "$before" ] \
  && ok "rerun with another train.threads: finished runs skipped, the checkpointed one resumed" \
  || bad "rerun with another train.threads: exit $rc $(grep -o '"error": "[^"]*"' "$TMP/a/sweep.json" | head -2) $(tail -2 "$TMP/a2t.log")"

# A run folder written by a mixvae that lacked a config key (here: the line removed) is
# still this run; a different config is never overwritten, but reported (exit 5).
sed -i '/^collapse_warn/d' "$TMP/a/smoke/vade/seed-0/config.ini"
sweep "$TMP/a" > "$TMP/a3.log" 2>&1 && grep -q "12 finished earlier" "$TMP/a3.log" \
  && ok "a config.ini without a defaulted key still matches" || bad "older config.ini: $(tail -3 "$TMP/a3.log")"
sweep "$TMP/a" --overrides.train.lr=0.001 > "$TMP/a4.log" 2>&1; rc=$?
[ "$rc" -eq 5 ] && grep -q "is a finished run of another config" "$TMP/a/sweep.json" \
  && [ "$(stat -c %Y "$TMP/a/smoke/vade/seed-0/result.json")" = "$before" ] \
  && ok "another config: exit 5, runs reported, nothing overwritten" || bad "another config: exit $rc $(tail -2 "$TMP/a4.log")"
sweep "$TMP/a" > /dev/null 2>&1  # sweep.json back to the finished state

# 3. Kill -9 mid-sweep, rerun: only the missing runs train, the results are those of the
#    uninterrupted sweep.
sweep "$TMP/b" > "$TMP/b.log" 2>&1 &
pid=$!
wait_for_results "$TMP/b" 3
kill -9 $pid 2>/dev/null; pkill -9 -f "sweep --config configs/sweeps/smoke.ini --sweep.runs_dir=$TMP/b" 2>/dev/null
wait $pid 2>/dev/null
done_before=$(ls "$TMP"/b/smoke/*/seed-*/result.json 2>/dev/null | wc -l)
[ "$done_before" -lt 12 ] && ok "killed with $done_before of 12 runs finished" || bad "the sweep finished before the kill"
sweep "$TMP/b" > "$TMP/b2.log" 2>&1 && ok "rerun after kill -9" || bad "rerun after kill: $(tail -3 "$TMP/b2.log")"
grep -q "$done_before finished earlier" "$TMP/b2.log" && ok "rerun skipped the $done_before finished runs" \
  || bad "rerun did not skip: $(grep 'run(s) on' "$TMP/b2.log")"
diff <(results "$TMP/a") <(results "$TMP/b") > "$TMP/diff.txt" && ok "killed + rerun sweep = uninterrupted sweep" \
  || bad "results differ after kill + rerun: $(head -4 "$TMP/diff.txt")"

# 4. SIGUSR1 (preemption): every running run checkpoints, exit code 3; a rerun completes.
sweep "$TMP/c" > "$TMP/c.log" 2>&1 &
pid=$!
wait_for_results "$TMP/c" 2
# mpirun forwards SIGUSR1 to its ranks (the shell around it would just die of it).
mpirun_pid=$(pgrep -f "^mpirun .*sweep.runs_dir=$TMP/c" | head -1)
kill -USR1 "$mpirun_pid"
wait $pid; rc=$?
[ "$rc" -eq 3 ] && ok "SIGUSR1 -> exit 3" || bad "SIGUSR1 -> exit $rc: $(tail -3 "$TMP/c.log")"
grep -q "preempted" "$TMP/c/sweep.json" && ok "sweep.json records the preempted runs" || bad "no preempted run in sweep.json"
sweep "$TMP/c" > "$TMP/c2.log" 2>&1 && ok "rerun after preemption" || bad "rerun after preemption: $(tail -3 "$TMP/c2.log")"
diff <(results "$TMP/a") <(results "$TMP/c") > "$TMP/diff.txt" && ok "preempted + rerun sweep = uninterrupted sweep" \
  || bad "results differ after preemption: $(head -4 "$TMP/diff.txt")"

# 5. The report of a sweep.
if "$MIXVAE" report "$TMP/a" > "$TMP/report.md" 2>&1; then
  grep -q "vade" "$TMP/report.md" && ok "report prints the table" || bad "report: $(head -5 "$TMP/report.md")"
else
  bad "report: $(tail -3 "$TMP/report.md")"
fi

# 5b. k-DVAE started from a finished VaDE run ([kdvae] vade_checkpoint): it trains neither
#     the autoencoder nor the VaDE stage, so the scheduler neither makes it wait for those
#     artifacts nor counts it as their producer (the sweep's VaDE run of the same seed would
#     otherwise wait for the whole k-DVAE run).
src="$TMP/a/smoke/vade/seed-0/checkpoint.h5"
if sweep "$TMP/e" --sweep.models=vade,kdvae --sweep.seeds=0 --overrides.kdvae.vade_checkpoint="$src" \
  > "$TMP/e.log" 2>&1; then ok "sweep with kdvae.vade_checkpoint"; else bad "vade_checkpoint sweep: $(tail -3 "$TMP/e.log")"; fi
python3 - "$TMP/e" "$src" <<'PY' && ok "vade_checkpoint: no artifacts awaited, the start recorded" || bad "vade_checkpoint sweep.json / result.json"
import json, pathlib, sys
root, src = pathlib.Path(sys.argv[1]), sys.argv[2]
runs = {r["model"]: r for r in json.load(open(root / "sweep.json"))["runs"]}
assert runs["kdvae"]["status"] == "done" and "artifacts" not in runs["kdvae"], runs["kdvae"]
assert len(runs["vade"]["artifacts"]) == 2, runs["vade"]
r = json.load(open(root / "smoke/kdvae/seed-0/result.json"))
assert r["artifacts"] == {"vade": "from:" + src}, r["artifacts"]
PY

# 6. Bad sweeps: one line, exit 2, before anything trains.
expect_error 2 "data file '.*missing.h5' does not exist" -- "$MIXVAE" sweep --config configs/sweeps/smoke.ini \
  --sweep.runs_dir="$TMP/d" --datasets.smoke="$TMP/missing.h5"
expect_error 2 "unknown key 'sweep.seed'" -- "$MIXVAE" sweep --config configs/sweeps/smoke.ini --sweep.seed=1
expect_error 2 "cannot open sweep config" -- "$MIXVAE" sweep --config "$TMP/nope.ini"
expect_error 2 "do not split into groups of sweep.ranks_per_run = 2" -- timeout 120 mpirun -np 3 --oversubscribe --quiet \
  $([ "$(id -u)" -eq 0 ] && echo --allow-run-as-root) "$MIXVAE" sweep --config configs/sweeps/smoke.ini \
  --datasets.smoke="$TMP/smoke.h5" --sweep.ranks_per_run=2
expect_error 2 "unknown option '--bogus'" -- "$MIXVAE" sweep --config configs/sweeps/smoke.ini --bogus
expect_error 2 "smoke-vade.ini: train.epochs must be >= 0, got -1" -- "$MIXVAE" sweep --config configs/sweeps/smoke.ini \
  --datasets.smoke="$TMP/smoke.h5" --overrides.train.epochs=-1
[ ! -e "$TMP/d" ] && ok "nothing written by a refused sweep" || bad "a refused sweep wrote $TMP/d"
finish
