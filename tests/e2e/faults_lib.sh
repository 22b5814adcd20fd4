# Helpers for the process-fault tests (tests/e2e/test_faults.sh, tests/bench/kill_resume.sh):
# a 2-rank VaDE run on small synthetic data ($TMP/d.h5) started in the background, its
# ranks' process ids, and the digest of a checkpoint's parameters. Needs common.sh first
# (MIXVAE, ROOT, TMP, MPIRUN). Not a test itself (CTest runs test_*.sh only).

FAULT_CONFIG="$ROOT/configs/experiments/smoke-vade.ini"
# Not --quiet: mpirun's own line naming a rank that died is part of what is checked.
FAULT_MPIRUN=(mpirun -np 2 --oversubscribe)
[ "$(id -u)" -eq 0 ] && FAULT_MPIRUN+=(--allow-run-as-root)
run_pid=""
run_log=""

# start_run DIR [flags]: a 2-rank training run in the background, log in DIR.log.
start_run() {
  local dir="$1"; shift
  run_log="$dir.log"
  "${FAULT_MPIRUN[@]}" "$MIXVAE" train --config "$FAULT_CONFIG" --data.path="$TMP/d.h5" --output.dir="$dir" \
    --output.progress=false "$@" > "$run_log" 2>&1 &
  run_pid=$!
}

# run_to_end DIR [flags]: the same in the foreground.
run_to_end() {
  local dir="$1"; shift
  "${MPIRUN[@]}" "$MIXVAE" train --config "$FAULT_CONFIG" --data.path="$TMP/d.h5" --output.dir="$dir" \
    --output.progress=false "$@"
}

# wait_run SECONDS: sets run_rc to the background run's exit code, or "timeout" (then kills
# it), and run_secs to how long it took.
wait_run() {
  local limit="$1" i t0
  t0=$(date +%s.%N)
  run_rc=timeout
  for ((i = 0; i < limit * 10; i++)); do
    if ! kill -0 "$run_pid" 2>/dev/null; then
      wait "$run_pid"; run_rc=$?
      break
    fi
    sleep 0.1
  done
  if [ "$run_rc" = timeout ]; then kill -9 "$run_pid" 2>/dev/null; wait "$run_pid" 2>/dev/null; fi
  run_secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
}

wait_for_file() {
  local i
  for ((i = 0; i < $2 * 10; i++)); do [ -e "$1" ] && return 0; sleep 0.1; done
  return 1
}

# wait_for_metrics DIR N SECONDS: until metrics.jsonl has N lines.
wait_for_metrics() {
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    [ "$(cat "$1/metrics.jsonl" 2>/dev/null | wc -l)" -ge "$2" ] && return 0
    sleep 0.1
  done
  return 1
}

# rank_pid DIR R: the process id of world rank R of the run writing to DIR.
rank_pid() {
  local p
  for p in $(pgrep -f -- "--output.dir=$1( |$)"); do
    tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2" && { echo "$p"; return; }
  done
}

# params_sha CHECKPOINT: the SHA-256 the checkpoint stores over its tensors.
params_sha() {
  h5dump -a /sha256 "$1" 2>/dev/null | grep -oE '[0-9a-f]{64}' | head -1
}
