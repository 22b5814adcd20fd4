#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan, torch-free) into build-fuzz/ and runs
# each for SECONDS (default 600) from a small seed corpus of valid inputs, one after the
# other. Prints executions and findings per target; crash inputs land in
# build-fuzz/findings/<target>/ (keep them as regression cases in tests/fuzz/regressions/).
# An input that takes longer than MIXVAE_FUZZ_TIMEOUT seconds (default 30) counts as a
# finding too (libFuzzer's own default, 1200 s, would hide a slow input inside the run).
#   tests/fuzz/run.sh [SECONDS] [TARGET...]      targets: idx har npy ini
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${MIXVAE_FUZZ_BUILD_DIR:-$root/build-fuzz}"
seconds="${1:-600}"; shift || true
timeout="${MIXVAE_FUZZ_TIMEOUT:-30}"
targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=(idx har npy ini)
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "fuzz: SECONDS must be a whole number, not '$seconds'" >&2; exit 2; }
for t in "${targets[@]}"; do
  case "$t" in idx|har|npy|ini) ;; *) echo "fuzz: unknown target '$t' (targets: idx har npy ini)" >&2; exit 2 ;; esac
done
command -v clang++ >/dev/null || { echo "fuzz: clang++ is needed (apt-get install clang)" >&2; exit 2; }
if [ ! -f "$build/CMakeCache.txt" ]; then
  CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DMIXVAE_FUZZ=ON -DMIXVAE_WITH_NCCL=OFF \
    -DMIXVAE_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build" -j "$(nproc)" >/dev/null
seeds="$build/seeds"
python3 - "$seeds" <<'PY'
import os, struct, sys, gzip
d = sys.argv[1]
def put(t, name, data):
    os.makedirs(f"{d}/{t}", exist_ok=True)
    open(f"{d}/{t}/{name}", "wb").write(data)
put("idx", "labels", struct.pack(">IIbbb", 0x801, 3, 1, 2, 3)[:8] + bytes([1, 2, 3]))
put("idx", "images", struct.pack(">IIII", 0x803, 2, 2, 2) + bytes(range(8)))
put("idx", "images.gz", gzip.compress(struct.pack(">IIII", 0x803, 1, 2, 2) + bytes(4)))
put("har", "rows", b"  2.8858451e-001 -2.0294171e-002 -1.3290514e-001\n  2.7841883e-001 -1.6410568e-002 -1.2352019e-001\n")
put("har", "csv", b"a,b,label\n1.5,2,cat\n3,4e-3,dog\n")
def npy(descr, shape, payload, fortran=False):
    h = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, shape)
    h = h + " " * (63 - (10 + len(h)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + payload
put("npy", "f4", npy("<f4", "(2, 3)", struct.pack("<6f", *range(6))))
put("npy", "i8", npy("<i8", "(3,)", struct.pack("<3q", 0, 1, 2)))
put("npy", "u1F", npy("|u1", "(2, 2)", bytes(4), True))
put("ini", "run", b"[data]\npath = data/x.h5\n[model]\nclusters = 4\n[train]\nepochs = 3\nlr = 0.001\n")
put("ini", "sweep", b"[sweep]\ndatasets = a\nmodels = vade\nseeds = 0-3\n[overrides]\ntrain.epochs = 2\n")
PY
status=0
for t in "${targets[@]}"; do
  corpus="$build/corpus/$t"; findings="$build/findings/$t"
  mkdir -p "$corpus" "$findings"
  log="$build/fuzz_$t.log"
  "$build/tests/fuzz/fuzz_$t" "$corpus" "$seeds/$t" -max_total_time="$seconds" -max_len=4096 \
    -timeout="$timeout" -artifact_prefix="$findings/" -print_final_stats=1 > "$log" 2>&1 || status=1
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  found=$(ls "$findings" | wc -l)
  echo "fuzz_$t: $execs executions in ${seconds}s, corpus $(ls "$corpus" | wc -l) inputs, findings: $found"
  [ "$found" -eq 0 ] || { status=1; grep -E "ERROR|SUMMARY|uncaught|terminate" "$log" | head -5; }
done
exit $status
