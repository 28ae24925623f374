#!/usr/bin/env bash
# Install the Debian packages Atoll needs, only those missing. Needs root (or sudo).
#   scripts/system-deps.sh demo     what `make demo` needs: Python 3.11 and venv
#   scripts/system-deps.sh test     what `make test` needs on top: curl, iproute2 (network namespaces),
#                                   iptables + nftables (the transparent proxy),
#                                   golang-go (the benchmarks' load generator), chromium (the GUI's
#                                   browser tests), postgresql (store tests)
#   scripts/system-deps.sh --list demo|test   print the packages of that set (installed or not)
set -euo pipefail
list=0
if [ "${1:-}" = "--list" ]; then list=1; shift; fi
role="${1:-test}"
case "$role" in demo|test) ;; *) echo "usage: $0 [--list] demo|test" >&2; exit 2;; esac
need=()
want() {  # want PACKAGE CHECK...: PACKAGE is needed unless CHECK succeeds
  local pkg="$1"; shift
  if [ "$list" -eq 1 ]; then echo "$pkg"; elif ! "$@" >/dev/null 2>&1; then need+=("$pkg"); fi
}
want python3.11 command -v python3.11
want python3.11-venv python3.11 -c 'import ensurepip, venv'
if [ "$role" = test ]; then
  want curl command -v curl
  want iproute2 command -v ip
  want iptables command -v iptables-nft  # atoll dp install transparent-proxy (nft backend)
  want nftables command -v nft
  want golang-go command -v go
  want chromium command -v chromium  # the GUI's browser tests: Playwright drives Debian's Chromium
  want postgresql bash -c 'ls /usr/lib/postgresql/*/bin/initdb'
fi
[ "$list" -eq 1 ] && exit 0
[ ${#need[@]} -eq 0 ] && exit 0
echo "installing system packages: ${need[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
