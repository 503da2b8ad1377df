#!/usr/bin/env bash
# The Debian packages csctoken needs, installed when missing.
#   deps.sh build   building and using it (make deps, make demo, the README's path)
#   deps.sh test    everything make test runs (make test-deps; make test checks
#                   it first); the list is .ci/run's PACKAGES, the one CI installs
# As root, missing packages are installed (waiting for another apt or dpkg
# to finish); otherwise they are named with the command that installs them,
# and the script fails before anything else runs. CSCTOKEN_DEPS=skip skips it.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "${CSCTOKEN_DEPS:-}" = skip ] && exit 0
BUILD=(make gcc pkg-config git ca-certificates libp11-kit-dev p11-kit opensc openssl softhsm2 curl jq)
case "${1:-build}" in
build) want=("${BUILD[@]}") target="make deps" ;;
test)
  eval "$(sed -n '/^PACKAGES=(/,/^)/p' .ci/run)"
  want=("${PACKAGES[@]}") target="make test-deps"
  ;;
*) echo "usage: $0 build|test" >&2; exit 2 ;;
esac
if ! command -v dpkg-query >/dev/null; then
  echo "not a Debian system: install the equivalents of ${want[*]}" >&2
  exit 0
fi
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
((${#missing[@]})) || exit 0
if [ "$(id -u)" != 0 ]; then
  echo "missing Debian packages: ${missing[*]}" >&2
  echo "install them with: sudo $target   (or: sudo apt-get install -y ${missing[*]})" >&2
  echo "(CSCTOKEN_DEPS=skip runs anyway; tests that need a missing program then skip)" >&2
  exit 1
fi
echo "== installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Another apt or dpkg (unattended upgrades, a second install) holds the
# locks: wait for it rather than fail.
lock=(-o DPkg::Lock::Timeout=900)
if ! apt-get "${lock[@]}" install -y -qq "${missing[@]}" >/dev/null 2>&1; then
  apt-get "${lock[@]}" update -qq
  apt-get "${lock[@]}" install -y -qq "${missing[@]}" >/dev/null
fi
