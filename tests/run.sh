#!/usr/bin/env bash
# README command (2): installs what is missing, builds, and runs every test (unit tests,
# MPI tests under mpirun -np 2, end-to-end CLI scripts) with CTest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/launch/setup.sh"
build="${MIXVAE_BUILD_DIR:-$root/build}"
cd "$build"
ctest --output-on-failure -j "${MIXVAE_TEST_JOBS:-1}" "$@"
