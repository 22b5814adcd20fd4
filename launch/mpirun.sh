#!/usr/bin/env bash
# Runs a command on N local MPI ranks: wraps mpirun with what a laptop or a single node
# needs (oversubscription allowed, consent to run as root, one OpenMP/BLAS pool per rank
# sized cores / ranks so ranks do not fight over cores, no core binding so those threads
# can spread). mixvae itself also sets its intra-op threads to cores / local ranks
# (OMPI_COMM_WORLD_LOCAL_SIZE), and on a GPU machine each rank takes GPU
# (local rank % visible GPUs), local rank = OMPI_COMM_WORLD_LOCAL_RANK (SLURM_LOCALID
# under srun): one GPU per rank when N <= GPUs. Every rank is shown every GPU on purpose:
# NCCL needs to see its peers' devices, and mixvae keeps the MPI path when ranks would
# share a GPU. Set CUDA_VISIBLE_DEVICES to choose which GPUs are used.
#   launch/mpirun.sh -np 2 build/mixvae train --config configs/experiments/mnist-vade-quick.ini
set -euo pipefail
np=1
if [ "${1:-}" = "-np" ] || [ "${1:-}" = "-n" ]; then np="$2"; shift 2; fi
[ $# -gt 0 ] || { echo "usage: launch/mpirun.sh -np N COMMAND..." >&2; exit 2; }
[[ "$np" =~ ^[1-9][0-9]*$ ]] || { echo "launch/mpirun.sh: -np '$np' is not a positive integer" >&2; exit 2; }
cores=$(nproc)
threads=$(( cores / np )); [ "$threads" -ge 1 ] || threads=1

# GPUs the ranks will see: CUDA_VISIBLE_DEVICES when set, else what the driver lists.
gpus=0
if [ -n "${CUDA_VISIBLE_DEVICES+x}" ]; then
  case "$CUDA_VISIBLE_DEVICES" in
    ""|-1|none|NoDevFiles) gpus=0 ;;
    *) gpus=$(( $(tr -cd ',' <<<"$CUDA_VISIBLE_DEVICES" | wc -c) + 1 )) ;;
  esac
elif command -v nvidia-smi >/dev/null 2>&1; then
  gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
fi
if [ "$gpus" -gt 0 ]; then
  if [ "$np" -le "$gpus" ]; then
    echo "launch/mpirun.sh: $np rank(s), $gpus GPU(s): rank r uses GPU r, $threads thread(s) each" >&2
  else
    echo "launch/mpirun.sh: warning: $np ranks share $gpus GPU(s) (rank r uses GPU r % $gpus; NCCL is off then)" >&2
  fi
fi

extra=()
[ "$(id -u)" -eq 0 ] && extra+=(--allow-run-as-root)
exec mpirun -np "$np" --oversubscribe --quiet --bind-to none "${extra[@]}" \
  -x OMP_NUM_THREADS="$threads" -x OPENBLAS_NUM_THREADS="$threads" "$@"
