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
