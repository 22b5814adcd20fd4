#!/usr/bin/env bash
# Runs a command on N local MPI ranks: wraps mpirun with what a laptop or a single node
# needs (oversubscription allowed, consent to run as root, one OpenMP/BLAS pool per rank
# sized cores / ranks so ranks do not fight over cores, no core binding so those threads
# can spread). mixvae itself also sets its intra-op threads to cores / local ranks.
#   launch/mpirun.sh -np 2 build/mixvae train --config configs/experiments/mnist-vade-quick.ini
set -euo pipefail
np=1
if [ "${1:-}" = "-np" ] || [ "${1:-}" = "-n" ]; then np="$2"; shift 2; fi
[ $# -gt 0 ] || { echo "usage: launch/mpirun.sh -np N COMMAND..." >&2; exit 2; }
cores=$(nproc)
threads=$(( cores / np )); [ "$threads" -ge 1 ] || threads=1
extra=()
[ "$(id -u)" -eq 0 ] && extra+=(--allow-run-as-root)
exec mpirun -np "$np" --oversubscribe --quiet --bind-to none "${extra[@]}" \
  -x OMP_NUM_THREADS="$threads" "$@"
