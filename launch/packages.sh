# Sourced by launch/setup.sh, tests/run.sh and tests/slurm/test_slurm_sweep.sh (not run).
# shellcheck shell=bash

# mixvae_install_missing WHO PACKAGE...: installs those of the Debian packages that are not
# installed yet (apt-get, through sudo when not root), saying so as WHO. Returns apt-get's
# status, 0 when nothing was missing; callers decide whether a failure is fatal.
mixvae_install_missing() {
  local who="$1" p
  shift
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  echo "$who: installing ${missing[*]}"
  local sudo_cmd=()
  [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  # Time limits: an offline machine must fail, not hang (the first libtorch-dev is ~1 GB).
  "${sudo_cmd[@]}" timeout 600 apt-get update -qq &&
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive timeout 3600 \
      apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
