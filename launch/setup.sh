#!/usr/bin/env bash
# Installs what mixvae needs on Debian 12 (only the packages that are missing) and builds
# it into build/. Safe to re-run: a built tree is reused and only changed files rebuild.
#   launch/setup.sh            # Release build with tests
# Environment: MIXVAE_BUILD_DIR (default <repo>/build), MIXVAE_JOBS (default: cores),
#              MIXVAE_CMAKE_ARGS (extra cmake arguments, e.g. -DMIXVAE_SANITIZE=ON).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${MIXVAE_BUILD_DIR:-$root/build}"
jobs="${MIXVAE_JOBS:-$(nproc)}"

packages=(build-essential cmake pkg-config libtorch-dev libopenblas0-openmp libopenmpi-dev openmpi-bin
          libhdf5-dev libboost-program-options-dev libgtest-dev googletest libbenchmark-dev zlib1g-dev libpng-dev
          libssl-dev nlohmann-json3-dev libnanoflann-dev python3 hdf5-tools gnuplot-nox)
# shellcheck source=packages.sh
source "$root/launch/packages.sh"
mixvae_install_missing "mixvae setup" "${packages[@]}"

# Debian's LibTorch falls back to the reference BLAS (~40x slower) unless the OpenMP
# OpenBLAS is the selected libblas.so.3.
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)
case "$blas" in
  *openblas*) ;;
  *) echo "mixvae setup: warning: libblas.so.3 is $blas, not OpenBLAS; run: update-alternatives --config libblas.so.3-x86_64-linux-gnu" >&2 ;;
esac

if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release ${MIXVAE_CMAKE_ARGS:-} >/dev/null
fi
[ -x "$build/mixvae" ] || echo "mixvae setup: building into $build (a clean build takes about 10 minutes on 2 cores)"
start=$(date +%s)
if ! cmake --build "$build" -j "$jobs" > "$build/build.log" 2>&1; then
  grep -E "error|Error" "$build/build.log" | head -20 >&2
  echo "mixvae setup: build failed; full log in $build/build.log" >&2
  exit 1
fi
echo "mixvae setup: built $build/mixvae ($(( $(date +%s) - start )) s)"
