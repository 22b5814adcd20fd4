#!/usr/bin/env bash
# Each program given has libstdc++ ahead of every LibTorch library in its list of needed
# libraries (CMakeLists.txt, pytorch/pytorch#133437: PyTorch's pip wheels export copies of
# std::filesystem; a program that finds libtorch first calls them and crashes).
#   tests/lint/check_link_order.sh PROGRAM...        exit 0: all good, 1: names the program
set -uo pipefail
command -v readelf >/dev/null || { echo "check_link_order: skipped (no readelf)"; exit 77; }
bad=0
for prog in "$@"; do
  needed=$(readelf -d "$prog" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  cxx=$(grep -n '^libstdc++\.so' <<<"$needed" | head -1 | cut -d: -f1)
  torch=$(grep -nE '^lib(torch|c10)' <<<"$needed" | head -1 | cut -d: -f1)
  if [ -z "$torch" ]; then
    echo "check_link_order: $prog needs no LibTorch library"
  elif [ -z "$cxx" ] || [ "$cxx" -gt "$torch" ]; then
    echo "check_link_order: $prog loads $(sed -n "${torch}p" <<<"$needed") before libstdc++ (line ${cxx:-none} of its needed libraries)"
    bad=1
  fi
done
[ $bad = 0 ] && echo "check_link_order: libstdc++ comes first in $# programs"
exit $bad
