#!/usr/bin/env bash
# Kill one rank of a 2-rank run at N random moments (issue 6): each time, `kill -9` of a
# random rank at a random time of the run, the job must end within seconds, and
# `--resume` (repeated if needed; from scratch if no checkpoint was written yet) must end
# with exactly the parameters of the uninterrupted run. Prints one line per kill and the
# count recovered exactly. Too slow for CI (about 15 s per kill point on 2 cores).
#   tests/bench/kill_resume.sh [N=20] [SEED=1]
set -uo pipefail
n="${1:-20}"
RANDOM="${2:-1}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# The e2e helpers expect these three and $TMP.
source "$root/tests/e2e/common.sh" "${MIXVAE_BUILD_DIR:-$root/build}/mixvae" "$root"
source "$root/tests/e2e/faults_lib.sh"

epochs=6
"$MIXVAE" prepare --dataset synthetic --n 4000 --d 20 --k 4 --seed 0 --out "$TMP/d.h5" >/dev/null
start=$(date +%s.%N)
run_to_end "$TMP/straight" --train.epochs=$epochs > "$TMP/straight.log" 2>&1 || { echo "straight run failed"; exit 1; }
run_s=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
want=$(params_sha "$TMP/straight/checkpoint.h5")
echo "uninterrupted run: ${run_s} s, parameters sha256 $want"

recovered=0 ended_fast=0
for i in $(seq 1 "$n"); do
  dir="$TMP/k$i"
  rank=$((RANDOM % 2))
  # A kill moment from 0.5 s to 90 % of the run's length (pretraining, GMM fit, training).
  delay=$(awk -v r="$RANDOM" -v s="$run_s" 'BEGIN { printf "%.2f", 0.5 + (r / 32767) * (0.9 * s - 0.5) }')
  start_run "$dir" --train.epochs=$epochs
  sleep "$delay"
  victim=$(rank_pid "$dir" "$rank")
  if [ -z "$victim" ]; then
    wait_run 60
    note="run ended before the kill (exit $run_rc)"
  else
    kill -9 "$victim"
    wait_run 60
    note="killed rank $rank at ${delay} s: job ended in ${run_secs} s (exit $run_rc)"
    [ "$run_rc" != timeout ] && awk -v s="$run_secs" 'BEGIN { exit !(s < 10) }' && ended_fast=$((ended_fast + 1))
  fi
  # Resume until finished (a kill before the first checkpoint: start again).
  for attempt in 1 2 3; do
    if [ -e "$dir/result.json" ] && [ -e "$dir/checkpoint.h5" ]; then break; fi
    if [ -e "$dir/checkpoint.h5" ] || [ -e "$dir/checkpoint.prev.h5" ]; then
      run_to_end "$dir" --train.epochs=$epochs --resume >> "$dir.resume.log" 2>&1
    else
      run_to_end "$dir" --train.epochs=$epochs >> "$dir.resume.log" 2>&1
    fi
  done
  got=$(params_sha "$dir/checkpoint.h5")
  if [ -n "$want" ] && [ "$got" = "$want" ]; then
    recovered=$((recovered + 1)); echo "kill $i: $note; resumed: identical"
  else
    echo "kill $i: $note; resumed: DIFFERENT ($got) $(tail -2 "$dir.resume.log" 2>/dev/null)"
  fi
done
echo "recovered exactly: $recovered / $n; job ended within 10 s of the kill: $ended_fast"
