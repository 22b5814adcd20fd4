#!/usr/bin/env bash
# Stops the cluster hpc/slurm/local/start.sh STATE_DIR started: cancels its jobs (so no
# slurmstepd is left behind), then ends exactly the daemons recorded in STATE_DIR/pids
# (pid and start time must both match), SIGTERM first and SIGKILL after 20 s.
#   hpc/slurm/local/stop.sh /tmp/mixvae-slurm
# Exit codes: 0 nothing of ours is left running; 1 something would not stop; 2 usage.
set -euo pipefail
die() { echo "slurm-local: $2" >&2; exit "$1"; }
[ $# -eq 1 ] || die 2 "usage: hpc/slurm/local/stop.sh STATE_DIR"
state="$1"
[ -f "$state/pids" ] || { echo "slurm-local: nothing started in $state" >&2; exit 0; }

ours() {  # name pid start: is that pid still the process we started?
  [ -r "/proc/$2/stat" ] && [ "$(awk '{print $22}' "/proc/$2/stat" 2>/dev/null)" = "$3" ]
}
alive() {
  local name pid start
  while read -r name pid start; do
    [ "$name" = "${1:-$name}" ] && ours "$name" "$pid" "$start" && return 0
  done < "$state/pids"
  return 1
}

# Jobs first, while slurmctld and slurmd still run: their steps end through Slurm
# (SIGTERM, then SIGKILL after KillWait), which also ends their slurmstepd processes.
if [ -f "$state/slurm.conf" ] && alive slurmctld; then
  export SLURM_CONF="$state/slurm.conf"
  jobs="$(squeue -h -o %A 2>/dev/null || true)"
  if [ -n "$jobs" ]; then
    # shellcheck disable=SC2086
    scancel --full $jobs 2>/dev/null || true
    for _ in $(seq 1 45); do
      [ -z "$(squeue -h -o %A 2>/dev/null || true)" ] && break
      sleep 1
    done
  fi
fi

# slurmd, then slurmctld, then munged (the others authenticate through it).
rc=0
for name in slurmd slurmctld munged; do
  while read -r n pid start; do
    [ "$n" = "$name" ] || continue
    ours "$n" "$pid" "$start" || continue
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do ours "$n" "$pid" "$start" || break; sleep 0.2; done
    if ours "$n" "$pid" "$start"; then
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      ours "$n" "$pid" "$start" && { echo "slurm-local: $n ($pid) will not stop" >&2; rc=1; }
    fi
  done < "$state/pids"
done
[ "$rc" -eq 0 ] && rm -f "$state/pids"
exit "$rc"
