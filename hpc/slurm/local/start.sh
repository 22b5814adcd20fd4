#!/usr/bin/env bash
# Starts a one-node Slurm cluster on localhost for tests and trials: its own munged (run as
# the munge user, with its own key and socket), slurmctld and slurmd, all started directly
# (no systemd), every file under STATE_DIR. Prints the line to eval so that sbatch/squeue
# talk to this cluster; hpc/slurm/local/stop.sh STATE_DIR stops exactly what it started.
#   eval "$(hpc/slurm/local/start.sh /tmp/mixvae-slurm)"
#   sbatch ...; squeue
#   hpc/slurm/local/stop.sh /tmp/mixvae-slurm
# Needs root and the packages slurm-wlm munge libpmix-dev (srun --mpi=pmix loads
# libpmix.so when slurmd starts, so the library must be there before this runs).
# Environment: MIXVAE_SLURM_CTLD_PORT (16817), MIXVAE_SLURM_SLURMD_PORT (16818),
#              MIXVAE_SLURM_CPUS (nproc).
# Exit codes: 0 the node is idle and takes jobs; 1 a daemon did not come up (its log is
# named); 2 usage, not root, a missing program, or STATE_DIR already in use.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
die() { echo "slurm-local: $2" >&2; exit "$1"; }

[ $# -eq 1 ] || die 2 "usage: hpc/slurm/local/start.sh STATE_DIR"
[ "$(id -u)" -eq 0 ] || die 2 "must run as root (SlurmUser=root, munged is started as the munge user)"
for c in munged slurmctld slurmd sinfo scontrol setpriv munge unmunge; do
  command -v "$c" >/dev/null || die 2 "'$c' not found (apt-get install slurm-wlm munge libpmix-dev)"
done
getent passwd munge >/dev/null || die 2 "no 'munge' user (apt-get install munge)"
ls /usr/lib/x86_64-linux-gnu/libpmix.so >/dev/null 2>&1 || ls /usr/lib/*/libpmix.so >/dev/null 2>&1 \
  || die 2 "libpmix.so not found: srun --mpi=pmix needs libpmix-dev installed before slurmd starts"

mkdir -p "$1"
state="$(cd "$1" && pwd)"
[ -e "$state/pids" ] && die 2 "$state already holds a started cluster (run stop.sh $state first)"
host="$(hostname -s)"
ctld_port="${MIXVAE_SLURM_CTLD_PORT:-16817}"
slurmd_port="${MIXVAE_SLURM_SLURMD_PORT:-16818}"
cpus="${MIXVAE_SLURM_CPUS:-$(nproc)}"
for p in "$ctld_port" "$slurmd_port"; do
  # A port in use means another cluster (or a leftover of ours): refuse instead of mixing.
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then die 2 "port $p is in use (set MIXVAE_SLURM_CTLD_PORT / MIXVAE_SLURM_SLURMD_PORT)"; fi
done

# munged refuses a socket or key whose directories others can write, and runs as the
# munge user, which must be able to reach STATE_DIR.
chmod 755 "$state"
setpriv --reuid=munge --regid=munge --clear-groups test -x "$state" \
  || die 2 "the munge user cannot reach $state (a parent directory is not world-searchable; use e.g. /tmp/NAME)"
mkdir -p "$state/munge" "$state/ctld" "$state/spool"
chown munge:munge "$state/munge"
chmod 755 "$state/munge"  # clients need to reach the socket; the key stays 0400
if [ ! -s "$state/munge/munge.key" ]; then
  head -c 1024 /dev/urandom > "$state/munge/munge.key"
fi
chown munge:munge "$state/munge/munge.key"
chmod 400 "$state/munge/munge.key"

: > "$state/pids"
# Each line: name, pid, and the pid's start time (field 22 of /proc/PID/stat), so that
# stop.sh never signals an unrelated process that reused the pid.
record() {
  local start
  start="$(awk '{print $22}' "/proc/$2/stat" 2>/dev/null || echo 0)"
  echo "$1 $2 $start" >> "$state/pids"
}
fail() {
  echo "slurm-local: $1; log tail:" >&2
  tail -n 15 "$2" >&2 || true
  "$here/stop.sh" "$state" >/dev/null 2>&1 || true
  exit 1
}

# setsid: the daemons must not get the caller's terminal signals (a test's Ctrl-C is
# handled by its EXIT trap, which runs stop.sh). In a non-interactive shell the
# background child is not a group leader, so setsid (and setpriv) exec in place and $! is
# the daemon itself.
setsid setpriv --reuid=munge --regid=munge --init-groups \
  munged -F --socket="$state/munge/munge.socket" --key-file="$state/munge/munge.key" \
  --pid-file="$state/munge/munged.pid" --log-file="$state/munge/munged.log" \
  --seed-file="$state/munge/munged.seed" </dev/null >>"$state/munged.out" 2>&1 &
record munged $!
ok=0
for _ in $(seq 1 50); do
  if munge -n -S "$state/munge/munge.socket" 2>/dev/null | unmunge -S "$state/munge/munge.socket" >/dev/null 2>&1; then ok=1; break; fi
  kill -0 "$(awk '$1 == "munged" {print $2}' "$state/pids")" 2>/dev/null || break
  sleep 0.2
done
[ "$ok" -eq 1 ] || fail "munged did not answer on $state/munge/munge.socket" "$state/munged.out"

sed -e "s|@HOST@|$host|g" -e "s|@STATE@|$state|g" -e "s|@CPUS@|$cpus|g" \
    -e "s|@CTLD_PORT@|$ctld_port|g" -e "s|@SLURMD_PORT@|$slurmd_port|g" \
    "$here/slurm.conf.in" > "$state/slurm.conf"
export SLURM_CONF="$state/slurm.conf"

setsid slurmctld -D -i -f "$SLURM_CONF" </dev/null >>"$state/slurmctld.out" 2>&1 &
record slurmctld $!
setsid slurmd -D -f "$SLURM_CONF" -N "$host" </dev/null >>"$state/slurmd.out" 2>&1 &
record slurmd $!

# Ready = the node is idle (slurmd registered, nothing running). A fresh slurmctld takes a
# few seconds to accept RPCs and slurmd registers right after.
t0=$(date +%s)
while :; do
  st="$(sinfo -h -N -n "$host" -o %t 2>/dev/null || true)"
  [ "$st" = "idle" ] && break
  for d in slurmctld slurmd; do
    pid="$(awk -v d="$d" '$1 == d {print $2}' "$state/pids")"
    kill -0 "$pid" 2>/dev/null || fail "$d exited at start" "$state/$d.log"
  done
  [ $(( $(date +%s) - t0 )) -lt 60 ] || fail "node $host not idle after 60 s (state '$st')" "$state/slurmd.log"
  sleep 1
done
echo "slurm-local: node $host idle with $cpus CPUs after $(( $(date +%s) - t0 )) s; state in $state" >&2
echo "export SLURM_CONF=$state/slurm.conf"
