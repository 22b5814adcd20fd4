#!/usr/bin/env bash
# Every tracked C++ file of src/ and tests/ is as .clang-format formats it.
#   tests/lint/check_format.sh [REPO]       exit 0: clean, 1: names the files, 77: skipped
# Only Debian 12's clang-format 14 decides: another major version formats some constructs
# differently, so with one the check is skipped rather than failing on the tool's taste.
# Fix:  git ls-files 'src/*.cpp' 'src/*.h' 'tests/*.cpp' 'tests/*.h' | xargs clang-format -i
set -uo pipefail
repo=${1:-$(dirname "${BASH_SOURCE[0]}")/../..}
cd "$repo" || { echo "check_format: no folder $repo"; exit 2; }
cf=$(command -v clang-format-14 || command -v clang-format || true)
if [ -z "$cf" ]; then echo "check_format: skipped (no clang-format; apt-get install clang-format)"; exit 77; fi
major=$("$cf" --version | sed -n 's/.*version \([0-9]*\).*/\1/p')
if [ "$major" != 14 ]; then echo "check_format: skipped ($cf is version $major, the check uses 14)"; exit 77; fi
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files 'src/*.cpp' 'src/*.h' 'tests/*.cpp' 'tests/*.h')
else  # an exported tree without .git
  mapfile -t files < <(find src tests -name '*.cpp' -o -name '*.h' | sort)
fi
[ "${#files[@]}" -gt 0 ] || { echo "check_format: no C++ files under $repo"; exit 1; }
# One clang-format for all files; it reports each difference as "FILE:LINE:COL: error: ...".
out=$("$cf" --dry-run -Werror "${files[@]}" 2>&1)
status=$?
mapfile -t bad < <(sed -n 's/^\(.*\):[0-9]*:[0-9]*: error: .*/\1/p' <<<"$out" | sort -u)
if [ "$status" -ne 0 ] && [ "${#bad[@]}" -eq 0 ]; then  # failed for another reason (a bad .clang-format)
  echo "check_format: $cf failed: $(head -n 1 <<<"$out")"
  exit 1
fi
if [ "${#bad[@]}" -gt 0 ]; then
  echo "check_format: ${#bad[@]} of ${#files[@]} files differ from .clang-format (clang-format -i FILE):"
  printf '  %s\n' "${bad[@]}"
  exit 1
fi
echo "check_format: ${#files[@]} files formatted"
