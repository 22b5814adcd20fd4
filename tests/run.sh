#!/usr/bin/env bash
# README command (2): installs what is missing, builds, and runs every test (unit tests,
# MPI tests under mpirun -np 2, end-to-end CLI scripts, the Slurm test) with CTest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/launch/setup.sh"

# The Slurm test (slurm.sweep) starts a real one-node cluster, which needs root and these
# packages; as root they are installed here when missing (the test would do it too), and
# elsewhere the test says it is skipped. The same for Python's torchvision, which the
# STL-10 extractor test (e2e.test_stl10_backbone: launch/stl10_backbone.py) needs.
if [ "$(id -u)" -eq 0 ]; then
  # shellcheck source=../launch/packages.sh
  source "$root/launch/packages.sh"
  mixvae_install_missing "mixvae tests (for the Slurm test)" slurm-wlm munge libpmix-dev ||
    echo "mixvae tests: warning: could not install slurm-wlm munge libpmix-dev; slurm.sweep will be skipped" >&2
  mixvae_install_missing "mixvae tests (for the STL-10 extractor test)" python3-torchvision python3-numpy ||
    echo "mixvae tests: warning: could not install python3-torchvision; e2e.test_stl10_backbone will be skipped" >&2
fi
build="${MIXVAE_BUILD_DIR:-$root/build}"
cd "$build"
ctest --output-on-failure -j "${MIXVAE_TEST_JOBS:-1}" "$@"
