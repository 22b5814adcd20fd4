#!/usr/bin/env bash
# Kill rank 0 of a 2-rank run N times at random moments inside a checkpoint write (issue 6):
# the e2e test tests/e2e/test_checkpoint_faults.sh with N kill points instead of 3 (then its
# full-disk part once). Prints one line per kill (inside the write or just after it, and
# whether --resume ended with exactly the uninterrupted run's parameters) and the counts.
# About 10 s per kill point on 2 cores.
#   tests/bench/kill_write.sh [N=20]
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MIXVAE_WRITE_KILLS="${1:-20}" exec bash "$root/tests/e2e/test_checkpoint_faults.sh" \
  "${MIXVAE_BUILD_DIR:-$root/build}/mixvae" "$root"
