# Sourced by the benchmarks: paths to the build, the reference script and MNIST, the
# prepared data/mnist.h5 (made if missing), and a scratch folder removed on exit.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
mixvae="${MIXVAE_BUILD_DIR:-$root/build}/mixvae"
ref="$root/../shared/bench/ref_models.py"
raw="$root/../shared/data/mnist"
h5="$root/data/mnist.h5"
[ -f "$h5" ] || "$mixvae" prepare --dataset mnist --raw "$raw" --out "$h5"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
# median of the numbers on stdin, one per line.
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# mpi_launch N: sets `launch` to the mpirun command for N ranks on this machine.
mpi_launch() {
  launch=(mpirun -np "$1" --oversubscribe --quiet)
  [ "$(id -u)" -eq 0 ] && launch+=(--allow-run-as-root)
  return 0
}
