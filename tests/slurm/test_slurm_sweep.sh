#!/usr/bin/env bash
# A real one-node Slurm cluster (hpc/slurm/local/) runs hpc/slurm/sweep.sbatch on the
# smoke grid with 2 tasks: once straight through, once preempted mid-run with the signal
# that `#SBATCH --signal=B:USR1@120` sends; the job must requeue itself, finish, and give
# exactly the uninterrupted results (CPU runs are deterministic).
#   bash tests/slurm/test_slurm_sweep.sh build/mixvae .
# Needs root; installs slurm-wlm munge libpmix-dev when missing. Exit codes: 0 pass,
# 1 fail, 77 skipped (not root, packages not installable). Stops the daemons it started.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: test_slurm_sweep.sh MIXVAE_BINARY SOURCE_DIR" >&2; exit 2; }
ROOT="$(cd "$2" && pwd)"
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok: $*"; }
# Our own deadline, well inside CTest's TIMEOUT, so that the EXIT trap always gets to
# stop the daemons (CTest's timeout kills without a trap).
DEADLINE=$(( $(date +%s) + ${MIXVAE_SLURM_TEST_BUDGET:-2100} ))
left() { echo $(( DEADLINE - $(date +%s) )); }

[ "$(id -u)" -eq 0 ] || skip "slurm.sweep needs root (it installs and starts slurmctld, slurmd and munged)"
# shellcheck source=../../launch/packages.sh
source "$ROOT/launch/packages.sh"
mixvae_install_missing "slurm.sweep" slurm-wlm munge libpmix-dev 2>/dev/null ||
  skip "cannot install slurm-wlm munge libpmix-dev (apt-get failed; offline?)"

# The binary is copied: a rebuild during the test must not change it under the jobs.
STATE=/tmp/mixvae-slurm-test        # fixed, so that a killed earlier run is cleaned up
WORK="$(mktemp -d /tmp/mixvae-slurm-work.XXXXXX)"
chmod 755 "$WORK"
if [ -f "$STATE/pids" ]; then
  echo "stopping the cluster a killed earlier run left in $STATE"
  "$ROOT/hpc/slurm/local/stop.sh" "$STATE" || true
fi
cleanup() {
  local rc=$?
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
    for f in "$WORK"/*.out; do [ -f "$f" ] && { echo "--- $f (tail)"; tail -n 25 "$f"; }; done
    [ -f "$STATE/slurmctld.log" ] && { echo "--- slurmctld.log (tail)"; tail -n 15 "$STATE/slurmctld.log"; }
  fi
  if "$ROOT/hpc/slurm/local/stop.sh" "$STATE"; then
    rm -rf "$STATE"
  else
    echo "warning: stop.sh could not stop everything in $STATE; its pids file is kept"
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
rm -rf "$STATE"

MIXVAE="$WORK/mixvae"
cp "$1" "$MIXVAE"
"$MIXVAE" sweep --help >/dev/null 2>&1 || fail "$1 has no 'sweep' command"
t=$(date +%s)
eval "$("$ROOT/hpc/slurm/local/start.sh" "$STATE")"
ok "local cluster up in $(( $(date +%s) - t )) s (SLURM_CONF=$SLURM_CONF)"

cd "$WORK"
mkdir data
ln -s "$ROOT/configs" configs   # the sweep config names experiment configs by relative path
"$MIXVAE" prepare --dataset synthetic --n 2000 --d 20 --k 4 --seed 0 --out data/smoke.h5 >/dev/null
ok "prepared data/smoke.h5"
export MIXVAE MIXVAE_ROOT="$ROOT"

# job_field ID FIELD: JobState, Restarts, ExitCode... from scontrol (MinJobAge keeps
# finished jobs there for 10 minutes; there is no accounting database).
job_field() { scontrol show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }
# wait_state ID SECONDS STATE...: until the job is in one of STATEs; the state on return.
wait_state() {
  local id="$1" limit="$2" s t0; shift 2
  t0=$(date +%s)
  while :; do
    s="$(job_field "$id" JobState)"
    for want in "$@"; do [ "$s" = "$want" ] && { echo "$s"; return 0; }; done
    case "$s" in FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE) echo "$s"; return 1 ;; esac
    if [ $(( $(date +%s) - t0 )) -ge "$limit" ] || [ "$(left)" -le 0 ]; then echo "timeout($s)"; return 1; fi
    sleep 2
  done
}
# The smoke grid alone trains in ~5 s; 40 epochs per run (~30 s in all on 2 cores) leave
# time to signal mid-training. Both jobs get the same overrides, so the same results.
submit() {  # submit NAME RUNS_DIR: a job id
  sbatch --parsable --ntasks=2 --cpus-per-task=1 --time=30 --output="$WORK/$1.out" \
    "$ROOT/hpc/slurm/sweep.sbatch" --config configs/sweeps/smoke.ini --sweep.runs_dir="$2" \
    --overrides.train.epochs=40
}
results() {  # results RUNS_DIR: the result.json files, sorted
  find "$1" -mindepth 4 -maxdepth 4 -name result.json 2>/dev/null | sort
}
check_table() {  # check_table RUNS_DIR NAME: every planned run finished, the table agrees
  [ -f "$1/sweep.json" ] || fail "$2: no sweep.json in $1"
  python3 - "$1" <<'PY' || fail "$2: sweep.json does not list every run as done with its result.json"
import json, pathlib, sys
d = pathlib.Path(sys.argv[1])
s = json.load(open(d / "sweep.json"))
runs = s["runs"]
assert s["status"] == "done" and len(runs) >= 2, (s["status"], len(runs))
for r in runs:
    assert r["status"] == "done", r
    res = json.load(open(pathlib.Path(r["dir"]) / "result.json"))
    assert all(0 <= res[m] <= 1 for m in ("acc", "nmi", "ari")), res
PY
  local n
  n=$(results "$1" | wc -l)
  if "$MIXVAE" report --help >/dev/null 2>&1; then
    "$MIXVAE" report "$1" --format csv > "$WORK/$2.report.csv" || fail "$2: mixvae report failed"
    python3 - "$WORK/$2.report.csv" "$n" <<'PY' || fail "$2: the report does not count $n finished runs: $(cat "$WORK/$2.report.csv")"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert rows and sum(int(r["finished"]) for r in rows) == int(sys.argv[2]), rows
assert all(int(r["failed"]) == 0 and int(r["unfinished"]) == 0 for r in rows), rows
PY
    ok "$2: $n runs done; mixvae report (ACC %):"
    "$MIXVAE" report "$1" --format md | awk '/^## ACC/ {p = 1; next} /^## / {p = 0} p && /\|/' | sed 's/^/    /'
  else
    ok "$2: $n runs done with result.json (this binary has no 'mixvae report')"
  fi
}

# 1. Straight through.
t=$(date +%s)
a=$(submit plain "$WORK/runs-a")
st=$(wait_state "$a" 60 RUNNING COMPLETED) || fail "job $a did not start: $st"
ok "job $a running $(( $(date +%s) - t )) s after sbatch"
st=$(wait_state "$a" "$(left)" COMPLETED) || fail "job $a ended $st (exit $(job_field "$a" ExitCode))"
[ "$(job_field "$a" ExitCode)" = "0:0" ] || fail "job $a exit code $(job_field "$a" ExitCode)"
plain_s=$(( $(date +%s) - t ))
ok "job $a completed in $plain_s s"
check_table "$WORK/runs-a" plain

# 2. Preempted mid-run: once a few runs have finished, signal the batch shell as
# --signal=B:USR1@120 would; the job must requeue itself and continue.
t=$(date +%s)
b=$(submit preempt "$WORK/runs-b")
st=$(wait_state "$b" 60 RUNNING) || fail "job $b did not start: $st"
t_wait=$(date +%s)
# Mid-run: some runs finished, others training (checked below).
while [ "$(results "$WORK/runs-b" | wc -l)" -lt 3 ]; do
  [ $(( $(date +%s) - t_wait )) -lt 300 ] || fail "job $b finished fewer than 3 runs in 300 s"
  [ "$(job_field "$b" JobState)" = RUNNING ] || fail "job $b ended ($(job_field "$b" JobState)) before it could be signalled"
  sleep 0.5
done
t_sig=$(date +%s)
scancel --batch --signal=USR1 "$b"
ok "signalled job $b (SIGUSR1 to the batch shell) $(( t_sig - t )) s after sbatch"
st=$(wait_state "$b" 180 PENDING) || fail "job $b was not requeued after the signal: $st"
t_req=$(date +%s)
[ "$(job_field "$b" Restarts)" = 1 ] || fail "job $b requeued, but Restarts=$(job_field "$b" Restarts)"
grep -q "step exited with 3" "$WORK/preempt.out" || fail "the preempted step did not exit 3"
done_before=$(results "$WORK/runs-b" | wc -l)
[ "$done_before" -lt "$(results "$WORK/runs-a" | wc -l)" ] \
  || fail "every run had finished before the signal: the smoke grid is too short to test preemption"
grep -l '"preempted"' "$WORK"/runs-b/*/*/seed-*/status.json >/dev/null 2>&1 \
  || fail "no run was stopped mid-training (no status.json says preempted)"
while read -r f; do
  [ -s "$(dirname "$f")/checkpoint.h5" ] || fail "preempted run $(dirname "$f") has no checkpoint"
done < <(grep -l '"preempted"' "$WORK"/runs-b/*/*/seed-*/status.json)
ok "job $b stopped with checkpoints (exit 3) and is pending again $(( t_req - t_sig )) s after the signal ($done_before runs finished before it)"
echo "    $(job_field "$b" JobState) Reason=$(job_field "$b" Reason) EligibleTime=$(job_field "$b" EligibleTime) (now $(date +%FT%T))"
# Slurm makes a requeued job eligible only ~120 s later; start it now, but only once the
# previous instance's slurmstepd processes are gone: a step JOB.0 that is still finishing
# holds its PMIx socket, and the new JOB.0 would fail to launch (docs/hpc.md).
t_wait=$(date +%s)
while pgrep -f "^slurmstepd: \[$b\." >/dev/null; do
  [ $(( $(date +%s) - t_wait )) -lt 60 ] || fail "the slurmstepd of job $b's first run did not exit in 60 s"
  sleep 0.5
done
scontrol update JobId="$b" StartTime=now
st=$(wait_state "$b" 120 RUNNING COMPLETED) || fail "requeued job $b did not start again: $st"
ok "requeued job $b running again $(( $(date +%s) - t_req )) s after the requeue"
st=$(wait_state "$b" "$(left)" COMPLETED) || fail "requeued job $b ended $st (exit $(job_field "$b" ExitCode))"
[ "$(job_field "$b" ExitCode)" = "0:0" ] || fail "requeued job $b exit code $(job_field "$b" ExitCode)"
ok "job $b completed after the requeue; $(( $(date +%s) - t )) s from sbatch in all (uninterrupted: $plain_s s)"
grep -q "restart 1:" "$WORK/preempt.out" || fail "preempt.out lacks the requeued run's lines (--open-mode=append)"
check_table "$WORK/runs-b" preempted

# 3. The same results, exactly.
python3 - "$WORK/runs-a" "$WORK/runs-b" <<'PY' || fail "the preempted sweep's results differ from the uninterrupted one's"
import json, pathlib, sys
a, b = (pathlib.Path(p) for p in sys.argv[1:])
ra = {f.parent.relative_to(a): json.load(open(f)) for f in a.glob("*/*/seed-*/result.json")}
rb = {f.parent.relative_to(b): json.load(open(f)) for f in b.glob("*/*/seed-*/result.json")}
assert ra.keys() == rb.keys(), (sorted(map(str, ra)), sorted(map(str, rb)))
bad = [(str(k), m, ra[k][m], rb[k][m]) for k in ra for m in ("acc", "nmi", "ari") if ra[k][m] != rb[k][m]]
assert not bad, bad
print("    %d runs, acc/nmi/ari identical" % len(ra))
PY
ok "preempted + requeued sweep = uninterrupted sweep"
echo "slurm.sweep: all checks passed"
