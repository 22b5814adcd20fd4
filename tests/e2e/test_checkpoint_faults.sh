#!/usr/bin/env bash
# Crashes while a checkpoint is being written (issue 6), on a 2-rank run:
#  1. rank 0 (the writer) killed with kill -9 at a random moment inside a checkpoint write,
#     MIXVAE_WRITE_KILLS times (default 3; tests/bench/kill_write.sh runs 20);
#  2. the disk filling up during a write (a small tmpfs; needs root or a user namespace,
#     else this part is skipped and says so).
# Either way the checkpoint before stays valid, no rank is left hanging, the next run
# removes the temporary file, and --resume reaches exactly the parameters of an
# uninterrupted run.
source "$(dirname "$0")/common.sh"
# shellcheck source=faults_lib.sh
source "$(dirname "$0")/faults_lib.sh"

# Not root: the whole script in a user namespace, where mounting a tmpfs is allowed.
if [ "$(id -u)" -ne 0 ] && [ -z "${MIXVAE_IN_USERNS:-}" ] && unshare --user --map-root-user --mount true 2>/dev/null; then
  rm -rf "$TMP"
  MIXVAE_IN_USERNS=1 exec unshare --user --map-root-user --mount bash "$0" "$@"
fi
small="$TMP/small"
trap 'umount "$small" 2>/dev/null; rm -rf "$TMP"' EXIT

"$MIXVAE" prepare --dataset synthetic --n 2000 --d 20 --k 4 --seed 0 --out "$TMP/d.h5" >/dev/null \
  && ok "prepare data" || bad "prepare data"

# A model large enough that a checkpoint takes a while to write (about 25 MB with the
# optimiser state), a checkpoint every epoch.
FLAGS=(--model.hidden=1000,1000 --pretrain.epochs=1 --train.epochs=5 --checkpoint.every=1)
run_to_end "$TMP/straight" "${FLAGS[@]}" > "$TMP/straight.log" 2>&1 || bad "straight run: $(tail -3 "$TMP/straight.log")"
want=$(params_sha "$TMP/straight/checkpoint.h5")
[ -n "$want" ] && ok "uninterrupted run: parameters sha256 $want" || bad "no checkpoint from the straight run"

# 1. kill -9 of rank 0 inside a write. The write goes to checkpoint.h5.tmp.<pid>.<token>.<host>; its
#    appearance is the moment to strike (after 0-20 ms more, so that different points of
#    the write are hit: HDF5 data, fsync, the renames).
kills="${MIXVAE_WRITE_KILLS:-3}"
inside=0 exact=0
for ((i = 1; i <= kills; i++)); do
  dir="$TMP/kill$i"
  # Which write to interrupt: one of 3..6, the epochs with the optimiser state (about 25 MB;
  # the run writes 7: after pretraining, after the mixture initialisation, then 5 epochs).
  nth=$((3 + RANDOM % 4))
  start_run "$dir" "${FLAGS[@]}"
  writer=""
  for ((t = 0; t < 600; t++)); do writer=$(rank_pid "$dir" 0); [ -n "$writer" ] && break; sleep 0.1; done
  tmpglob="$dir/checkpoint.h5.tmp.$writer.*"  # a new name (token) per write
  seen=0 present=0 hit=0
  for ((t = 0; t < 60000; t++)); do  # polls every few ms, up to a few minutes
    if compgen -G "$tmpglob" > /dev/null; then
      if [ "$present" = 0 ]; then
        present=1 seen=$((seen + 1))
        if [ "$seen" = "$nth" ]; then
          delay=(0 0.005 0.01 0.02); sleep "${delay[RANDOM % 4]}"
          kill -9 "$writer" 2>/dev/null && hit=1
          break
        fi
      fi
    else
      present=0
      kill -0 "$run_pid" 2>/dev/null || break
    fi
    sleep 0.003
  done
  wait_run 60
  if [ "$hit" != 1 ]; then bad "kill $i: never saw write $nth happen (exit $run_rc): $(tail -3 "$run_log")"; continue; fi
  [ "$run_rc" != 0 ] && [ "$run_rc" != timeout ] && ok "kill $i: rank 0 killed in write $nth, the job ended (exit $run_rc, ${run_secs} s)" \
    || bad "kill $i: exit $run_rc after ${run_secs} s"
  tmpfile=$(compgen -G "$tmpglob" | head -1)
  if [ -n "$tmpfile" ]; then
    inside=$((inside + 1))
    where="inside the write ($(stat -c %s "$tmpfile") bytes of it written)"
  else
    where="just after the write"
  fi
  run_to_end "$dir" "${FLAGS[@]}" --resume > "$dir.resume.log" 2>&1 || bad "kill $i: resume failed: $(tail -3 "$dir.resume.log")"
  got=$(params_sha "$dir/checkpoint.h5")
  if [ "$got" = "$want" ]; then
    exact=$((exact + 1))
    ok "kill $i, $where: resumed to the uninterrupted run's parameters$(grep -o 'falling back to the previous checkpoint' "$dir.resume.log" | head -1 | sed 's/^/ (/;s/$/)/')"
  else
    bad "kill $i, $where: after resume the parameters differ ($got)"
  fi
  leftovers=$(find "$dir" -name '*.tmp.*' | wc -l)
  [ "$leftovers" = 0 ] && ok "kill $i: the resumed run removed the temporary file" || bad "kill $i: $leftovers temporary file(s) left"
done
echo "write kills: $inside of $kills inside a write, $exact of $kills resumed exactly"
[ "$inside" -ge 1 ] && ok "at least one kill landed inside a write" || bad "no kill landed inside a write ($kills tried)"

# 2. A full disk: a tmpfs holding about 2.5 checkpoints. A save needs room for the new
#    checkpoint beside the current and the previous one, so the fifth write fails.
mounted=0
if [ "$(id -u)" -eq 0 ]; then
  # checkpoint.prev.h5 is the last epoch's with the optimiser state (the final one has none).
  size=$(($(stat -c %s "$TMP/straight/checkpoint.prev.h5") * 5 / 2 + 256 * 1024))
  mkdir -p "$small"
  mount -t tmpfs -o "size=$size" tmpfs "$small" 2>/dev/null && mounted=1
fi
if [ "$mounted" = 1 ]; then
  dir="$small/run"
  start_run "$dir" "${FLAGS[@]}"
  wait_run 300
  [ "$run_rc" = 2 ] && ok "full disk: exit 2 after ${run_secs} s, no rank left waiting" \
    || bad "full disk: exit $run_rc after ${run_secs} s, expected 2: $(tail -5 "$run_log")"
  errs=$(grep -c "error" "$run_log")
  line=$(grep "error" "$run_log" | head -1)
  if [ "$errs" = 1 ] && echo "$line" | grep -qE "^mixvae: error: .*checkpoint.*No space left on device"; then
    ok "one line: $line"
  else
    bad "full disk: $errs error line(s): $(grep error "$run_log" | head -3)"
  fi
  leftovers=$(find "$dir" -name '*.tmp.*' | wc -l)
  [ "$leftovers" = 0 ] && ok "full disk: no temporary file left" || bad "full disk: $leftovers temporary file(s) left"
  mount -o remount,size=$((size * 2)) "$small" || bad "remount"
  run_to_end "$dir" "${FLAGS[@]}" --resume > "$TMP/full.resume.log" 2>&1 || bad "full disk: resume failed: $(tail -3 "$TMP/full.resume.log")"
  got=$(params_sha "$dir/checkpoint.h5")
  [ "$got" = "$want" ] && ok "full disk: with room again, --resume reached the uninterrupted run's parameters" \
    || bad "full disk: after resume the parameters differ ($got)"
  grep -q "resuming from $dir/checkpoint.h5 " "$TMP/full.resume.log" && ok "resumed from the last complete checkpoint" \
    || bad "resume did not start from checkpoint.h5: $(grep resuming "$TMP/full.resume.log")"
  umount "$small"
else
  echo "skip: full-disk part (needs root or user namespaces to mount a small tmpfs)"
fi

finish
