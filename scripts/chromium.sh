#!/usr/bin/env bash
# Headless Chromium and ChromeDriver for the triage page's browser test
# (tests/api.rs): Debian's `chromium` and `chromium-driver` packages,
# installed with apt-get (through sudo when not root) when missing.
#
#   scripts/chromium.sh path     # install if needed, print chromium's path
#   scripts/chromium.sh driver   # install if needed, print chromedriver's path
#   scripts/chromium.sh env      # install if needed, print the tests' exports:
#                                #   FAULTLINE_CHROMIUM, FAULTLINE_CHROMEDRIVER
#
# No browser download by a test tool (npx playwright install and the like
# fail on closed networks): the distribution's packages only. On a machine
# without apt-get, set FAULTLINE_CHROMIUM and FAULTLINE_CHROMEDRIVER to an
# installed pair yourself.
set -euo pipefail

say() { echo "chromium: $*" >&2; }
die() { echo "chromium: error: $*" >&2; exit 1; }

find_bin() {
  local b
  for b in "$@"; do
    if command -v "$b" >/dev/null 2>&1; then command -v "$b"; return 0; fi
  done
  return 1
}

chromium_bin() { find_bin chromium chromium-browser; }
driver_bin() { find_bin chromedriver; }

install() {
  if chromium_bin >/dev/null && driver_bin >/dev/null; then return 0; fi
  command -v apt-get >/dev/null 2>&1 \
    || die "chromium/chromedriver missing and no apt-get: install them, or set FAULTLINE_CHROMIUM and FAULTLINE_CHROMEDRIVER"
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "not root and no sudo: install chromium and chromium-driver yourself"
    sudo=(sudo -n)
  fi
  # One install at a time (tests and scripts/test may call this together).
  local lock="${TMPDIR:-/tmp}/faultline-chromium-install.lock"
  exec 9>"$lock"
  flock 9
  if chromium_bin >/dev/null && driver_bin >/dev/null; then exec 9>&-; return 0; fi
  say "installing Debian's chromium and chromium-driver (apt-get)"
  local t0=$SECONDS
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      chromium chromium-driver >&2 \
    || { "${sudo[@]}" apt-get update -q >&2 \
         && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
              chromium chromium-driver >&2; } \
    || die "apt-get install chromium chromium-driver failed"
  say "installed in $((SECONDS - t0)) s"
  exec 9>&-
  chromium_bin >/dev/null && driver_bin >/dev/null || die "installed, but chromium or chromedriver is not on PATH"
}

case "${1:-path}" in
  path)   install; chromium_bin ;;
  driver) install; driver_bin ;;
  env)
    install
    echo "export FAULTLINE_CHROMIUM=$(chromium_bin)"
    echo "export FAULTLINE_CHROMEDRIVER=$(driver_bin)"
    ;;
  *) die "usage: $0 path|driver|env" ;;
esac
