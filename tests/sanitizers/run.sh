#!/usr/bin/env bash
# The unit and MPI tests under AddressSanitizer + UndefinedBehaviorSanitizer (issue 6):
# builds everything with -DMIXVAE_SANITIZE=ON into build-asan/ (RelWithDebInfo), then runs
# the unit tests in one process and the MPI tests on 1 and 2 ranks. Any sanitizer report
# fails the run (halt_on_error for UBSan too). Leak reports from the uninstrumented
# third-party libraries are suppressed by lsan.supp (each entry says why).
#   tests/sanitizers/run.sh [GTEST_FILTER]
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${MIXVAE_ASAN_BUILD_DIR:-$root/build-asan}"
filter="${1:-*}"
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMIXVAE_SANITIZE=ON >/dev/null || exit 1
fi
cmake --build "$build" -j "${MIXVAE_JOBS:-$(nproc)}" > "$build/build.log" 2>&1 \
  || { grep -E "error" "$build/build.log" | head; echo "sanitizer build failed ($build/build.log)"; exit 1; }
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:detect_odr_violation=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$root/tests/sanitizers/lsan.supp:print_suppressions=0"
# Open MPI unloads its plugins (MCA components) at MPI_Finalize, so their allocations
# would show as "<unknown module>" and escape lsan.supp: keep them loaded.
export OMPI_MCA_mca_base_component_disable_dlclose=1
mpi=(mpirun --oversubscribe --quiet -x ASAN_OPTIONS -x UBSAN_OPTIONS -x LSAN_OPTIONS
     -x OMPI_MCA_mca_base_component_disable_dlclose)
[ "$(id -u)" -eq 0 ] && mpi+=(--allow-run-as-root)
fail=0
"$build/tests/mixvae_unit_tests" --gtest_filter="$filter" --gtest_color=no > "$build/unit.log" 2>&1 || fail=1
echo "unit tests: $(grep -E '^\[  (PASSED|FAILED)' "$build/unit.log" | tr '\n' ' ') (log $build/unit.log)"
"$build/tests/mixvae_mpi_tests" --gtest_color=no > "$build/mpi1.log" 2>&1 || fail=1
echo "MPI tests, 1 rank: $(grep -E '^\[  (PASSED|FAILED)' "$build/mpi1.log" | tr '\n' ' ')"
# On 2 ranks leak checking is off: the leaks LSan reports there come from Open MPI's and
# PMIx's plugins for the inter-process transports, unloaded before the report (frames
# "<unknown module>", so no suppression can name them; keeping them loaded did not help).
# Memory errors (ASan) and undefined behaviour (UBSan) stay checked; leaks are checked in
# the unit tests and on 1 rank.
ASAN_OPTIONS="${ASAN_OPTIONS/detect_leaks=1/detect_leaks=0}" \
  "${mpi[@]}" -np 2 "$build/tests/mixvae_mpi_tests" --gtest_color=no > "$build/mpi2.log" 2>&1 || fail=1
echo "MPI tests, 2 ranks: $(grep -E '^\[  (PASSED|FAILED)' "$build/mpi2.log" | tr '\n' ' ')"
reports=$(cat "$build"/unit.log "$build"/mpi1.log "$build"/mpi2.log | grep -cE "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:")
echo "sanitizer reports: $reports"
[ "$fail" -eq 0 ] && [ "$reports" -eq 0 ]
