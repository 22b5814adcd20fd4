# Shared by the batch scripts in hpc/slurm/ (sourced by them, not run): world checks,
# threads, launching the srun step, forwarding the preemption signal to it, and the
# requeue. docs/hpc.md explains the whole path; the facts below were measured on the
# local cluster of hpc/slurm/local/ (Slurm 22.05, srun --mpi=pmix):
#  - `--signal=B:USR1@T` signals only the batch shell. Bash runs a trap only between
#    commands, so the step runs in the background and the shell sits in `wait`.
#  - `kill -USR1 <srun>` makes srun forward USR1 to every task of the step (all nodes).
#  - A cancel or a time limit sends SIGTERM to every task *and* to the batch shell.
#    mixvae ends at once on a second SIGTERM that comes 5 s or more after the first, so
#    the shell forwards USR1, never TERM
#    (USR1 means the same to mixvae: checkpoint at the next step boundary, exit 3).
#  - `scontrol requeue` succeeds even on a job that is being cancelled, so a requeue
#    after SIGTERM is limited to time limits (a user's scancel must stay a cancel).
# shellcheck shell=bash

mixvae_t0=$(date +%s)
mixvae_signal=""        # USR1 or TERM once the batch shell got one
mixvae_step_pid=""
mixvae_launch_failed=0

mixvae_log() { echo "mixvae-slurm: [$(date +%H:%M:%S)] $*"; }
# One line on stderr and a non-zero exit: 2 = the job cannot run as submitted.
mixvae_die() { echo "mixvae-slurm: error: $1" >&2; exit "${2:-2}"; }

mixvae_on_signal() {
  mixvae_signal="$1"
  if [ -n "$mixvae_step_pid" ] && kill -0 "$mixvae_step_pid" 2>/dev/null; then
    mixvae_log "got SIG$1: forwarding SIGUSR1 to the step (srun $mixvae_step_pid); every run checkpoints and stops"
    kill -USR1 "$mixvae_step_pid" 2>/dev/null || true
  else
    mixvae_log "got SIG$1 before the step started"
  fi
}
# Installed first thing: a signal that came before the trap would end the shell.
trap 'mixvae_on_signal USR1' USR1
trap 'mixvae_on_signal TERM' TERM

# mixvae_require VAR...: each SLURM_* variable set, and a positive integer where it is a
# count. Missing ones mean the script is not running under sbatch, or the #SBATCH lines
# lost a resource request.
mixvae_require() {
  local v
  for v in "$@"; do
    [ -n "${!v:-}" ] || mixvae_die "$v is not set (run this script with sbatch, and keep its #SBATCH resource lines)"
  done
}
mixvae_require_count() {
  local v
  mixvae_require "$@"
  for v in "$@"; do
    [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || mixvae_die "$v='${!v}' is not a positive integer"
  done
}

# mixvae_check_world RANKS_PER_RUN: the allocation can be cut into whole groups.
mixvae_check_world() {
  local rpr="$1"
  mixvae_require SLURM_JOB_ID SLURM_JOB_NODELIST
  mixvae_require_count SLURM_NTASKS SLURM_CPUS_PER_TASK SLURM_JOB_NUM_NODES
  [[ "$rpr" =~ ^[1-9][0-9]*$ ]] || mixvae_die "ranks_per_run='$rpr' is not a positive integer"
  [ "$SLURM_NTASKS" -ge "$SLURM_JOB_NUM_NODES" ] \
    || mixvae_die "SLURM_NTASKS=$SLURM_NTASKS is less than SLURM_JOB_NUM_NODES=$SLURM_JOB_NUM_NODES (a node would idle)"
  [ $(( SLURM_NTASKS % rpr )) -eq 0 ] \
    || mixvae_die "SLURM_NTASKS=$SLURM_NTASKS is not a multiple of ranks_per_run=$rpr (ask for --ntasks=$(( (SLURM_NTASKS / rpr + 1) * rpr )) or change ranks_per_run)"
  if [ -n "${SLURM_GPUS_PER_TASK:-}" ] && [ "${SLURM_GPUS_PER_TASK}" != "0" ]; then
    [ "${SLURM_GPUS_PER_TASK}" = "1" ] \
      || mixvae_die "SLURM_GPUS_PER_TASK=$SLURM_GPUS_PER_TASK: mixvae drives one GPU per rank (use --gpus-per-task=1)"
  fi
}

# mixvae_find_binary: $MIXVAE, else mixvae on PATH, else build/mixvae of the submit dir.
mixvae_find_binary() {
  local b="${MIXVAE:-}"
  if [ -z "$b" ]; then
    if command -v mixvae >/dev/null 2>&1; then b="$(command -v mixvae)"; else b="$SLURM_SUBMIT_DIR/build/mixvae"; fi
  fi
  [ -x "$b" ] || mixvae_die "mixvae binary '$b' is not executable (set MIXVAE=/path/to/mixvae)"
  MIXVAE="$b"
}

# Intra-op threads = CPUs of the task. OpenMP/OpenBLAS read OMP_NUM_THREADS; mixvae's own
# pool is sized from train.threads (the callers pass it), because with TaskPlugin=task/none
# (no CPU binding) mixvae cannot tell its share of the node from its affinity mask.
mixvae_threads() {
  export OMP_NUM_THREADS="$SLURM_CPUS_PER_TASK"
  export OPENBLAS_NUM_THREADS="$SLURM_CPUS_PER_TASK"
  export MKL_NUM_THREADS="$SLURM_CPUS_PER_TASK"
}

mixvae_describe() {
  mixvae_log "job ${SLURM_ARRAY_JOB_ID:+${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID} (}$SLURM_JOB_ID${SLURM_ARRAY_JOB_ID:+)}," \
    "restart ${SLURM_RESTART_COUNT:-0}: $SLURM_NTASKS tasks on $SLURM_JOB_NUM_NODES node(s) ($SLURM_JOB_NODELIST)," \
    "$SLURM_CPUS_PER_TASK CPU(s)/task, GPUs/task ${SLURM_GPUS_PER_TASK:-0}, binary $MIXVAE"
}

# mixvae_step CMD...: runs CMD on every task with srun --mpi=pmix and waits for it, passing
# the preemption signal on. Sets mixvae_rc to the step's exit code.
mixvae_step() {
  local attempt
  for attempt in 1 2 3; do
    mixvae_step_once "$@"
    # srun exits 0 when its tasks never started: seen on the local cluster when a requeued
    # job starts again within ~2 s, while the previous instance's step (same id, JOB.0) still
    # holds its PMIx socket. Slurm's ~120 s delay before a requeued job is eligible normally
    # prevents it; when the delay is cut short, waiting a little and launching again works.
    [ "$mixvae_rc" -eq 0 ] && [ "$mixvae_launch_failed" -eq 1 ] || return 0
    [ -z "$mixvae_signal" ] || { mixvae_rc=3; return 0; }
    mixvae_log "the step's tasks did not start (srun: launch failed); retrying in 10 s ($attempt/3)"
    sleep 10
  done
  mixvae_die "the tasks of the step never started (srun: launch failed, 3 times); see the slurmd log of $SLURM_JOB_NODELIST" 1
}

mixvae_step_once() {
  mixvae_launch_failed=0
  if [ -n "$mixvae_signal" ]; then
    # Signalled while still setting up: there is nothing to checkpoint; hand the job
    # back as a preempted one.
    mixvae_rc=3
    return
  fi
  # srun's stderr goes through tee into a file, only to spot a launch failure afterwards
  # (a FIFO, so that the shell can wait for tee to have read everything).
  local dir fifo tee_pid
  dir="$(mktemp -d "${TMPDIR:-/tmp}/mixvae-step.XXXXXX")"
  fifo="$dir/stderr.fifo"
  mkfifo "$fifo"
  # tee ignores the signals a cancel or --signal sends to the batch step: were it to die,
  # srun would die of SIGPIPE on its next message and take the step down with it.
  (trap '' TERM INT HUP USR1 USR2; exec tee "$dir/stderr" < "$fifo" >&2) &
  tee_pid=$!
  # --cpus-per-task again: from 22.05 on srun does not inherit it from sbatch.
  # --kill-on-bad-exit: one rank failing hard (killed, crashed) ends the others rather
  # than leaving them blocked in a collective until the time limit.
  srun --mpi=pmix --ntasks="$SLURM_NTASKS" --cpus-per-task="$SLURM_CPUS_PER_TASK" \
    --kill-on-bad-exit=1 "$@" 2> "$fifo" &
  mixvae_step_pid=$!
  local seen=""
  while :; do
    seen="$mixvae_signal"
    set +e
    wait "$mixvae_step_pid"
    mixvae_rc=$?
    set -e
    # `wait` returns >128 when a trapped signal interrupts it; the step is still running
    # then (bash keeps the status of a finished child, so waiting again is exact).
    if [ "$mixvae_rc" -gt 128 ] && [ "$mixvae_signal" != "$seen" ]; then continue; fi
    if [ "$mixvae_rc" -gt 128 ] && kill -0 "$mixvae_step_pid" 2>/dev/null; then continue; fi
    break
  done
  mixvae_step_pid=""
  while ! wait "$tee_pid"; do kill -0 "$tee_pid" 2>/dev/null || break; done
  if grep -qE "launch failed|aborted before step completely launched" "$dir/stderr"; then mixvae_launch_failed=1; fi
  rm -rf "$dir"
  mixvae_log "step exited with $mixvae_rc after $(( $(date +%s) - mixvae_t0 )) s in this job"
}

# mixvae_finish: exit with the step's code; on 3 (every run checkpointed after a stop
# signal) requeue this job (or array task) so that it continues, unless the job is
# ending for good (scancel) or MIXVAE_REQUEUE=0.
mixvae_finish() {
  local rc="$mixvae_rc" id="$SLURM_JOB_ID"
  [ -n "${SLURM_ARRAY_JOB_ID:-}" ] && id="${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
  if [ "$rc" -ne 3 ]; then
    case "$rc" in
      0) mixvae_log "done" ;;
      2) mixvae_log "mixvae refused the config or flags (exit 2; see the error above)" ;;
      5) mixvae_log "finished, but some runs failed (exit 5; see sweep.json)" ;;
      *) mixvae_log "failed with exit code $rc" ;;
    esac
    exit "$rc"
  fi
  if [ "${MIXVAE_REQUEUE:-1}" = "0" ]; then
    mixvae_log "stopped with checkpoints (exit 3); MIXVAE_REQUEUE=0, so not requeued: resubmit to continue"
    exit 3
  fi
  if [ "$mixvae_signal" = "TERM" ]; then
    # Slurm is ending the job. Continue it only when the time ran out; a scancel
    # (reason None) or a preemption that Slurm requeues itself is left as it is.
    local reason
    reason="$(squeue -h -j "$SLURM_JOB_ID" -o %r 2>/dev/null || true)"
    if [ "$reason" != "TimeLimit" ]; then
      mixvae_log "stopped with checkpoints after SIGTERM (reason '${reason:-gone}'): not requeued; resubmit to continue"
      exit 3
    fi
  fi
  trap '' USR1 TERM  # from here the job is Slurm's: it ends this shell on requeue
  if scontrol requeue "$id"; then
    mixvae_log "stopped with checkpoints (exit 3); requeued $id: it continues when it starts again"
  else
    mixvae_log "stopped with checkpoints (exit 3), but 'scontrol requeue $id' failed: resubmit to continue"
  fi
  exit 3
}

# mixvae_ini_value FILE SECTION KEY: the value of KEY in [SECTION] of an INI file (empty
# when absent); comments (# ;) and surrounding blanks dropped.
mixvae_ini_value() {
  awk -v sec="$2" -v key="$3" '
    /^[ \t]*[#;]/ { next }
    /^[ \t]*\[/ { s = $0; gsub(/^[ \t]*\[|\][ \t]*$/, "", s); insec = (s == sec); next }
    insec {
      line = $0; sub(/[ \t]+[#;].*$/, "", line)
      n = index(line, "="); if (n == 0) next
      k = substr(line, 1, n - 1); v = substr(line, n + 1)
      gsub(/^[ \t]+|[ \t]+$/, "", k); gsub(/^[ \t]+|[ \t]+$/, "", v)
      if (k == key) val = v
    }
    END { print val }' "$1"
}
