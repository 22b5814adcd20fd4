# Shared by the end-to-end scripts: $MIXVAE is the binary, $ROOT the source tree, $TMP a
# scratch directory removed on exit. Not a test itself (CTest runs test_*.sh only).
set -uo pipefail
MIXVAE="$1"
ROOT="$2"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
failures=0
passes=0
MPIRUN=(mpirun -np 2 --oversubscribe --quiet)
[ "$(id -u)" -eq 0 ] && MPIRUN+=(--allow-run-as-root)

ok() { passes=$((passes + 1)); echo "ok: $1"; }
bad() { failures=$((failures + 1)); echo "FAIL: $1"; }

# expect_error CODE PATTERN -- command...: exit code CODE, stderr exactly one line that
# matches PATTERN.
expect_error() {
  local code="$1" pattern="$2"; shift 3
  local err rc
  err="$("$@" 2>&1 >/dev/null)"; rc=$?
  local lines
  lines=$(printf '%s' "$err" | grep -c '' || true)
  if [ "$rc" -ne "$code" ]; then bad "$* -> exit $rc, expected $code (stderr: $err)"; return; fi
  if [ "$lines" -ne 1 ]; then bad "$* -> $lines stderr lines, expected 1: $err"; return; fi
  if ! printf '%s' "$err" | grep -qE -- "$pattern"; then bad "$* -> '$err' lacks /$pattern/"; return; fi
  ok "$* -> exit $code: $err"
}

finish() {
  echo "$passes passed, $failures failed"
  [ "$failures" -eq 0 ]
}
