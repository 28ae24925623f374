#!/usr/bin/env bash
# Install the Debian packages Atoll's demo and tests need, only those missing. Needs root (or sudo).
set -euo pipefail
need=()
command -v python3.11 >/dev/null || need+=(python3.11)
python3.11 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3.11-venv)
command -v curl >/dev/null || need+=(curl)
command -v ip >/dev/null || need+=(iproute2)
command -v iptables-nft >/dev/null || need+=(iptables)  # atoll dp install transparent-proxy (nft backend)
command -v nft >/dev/null || need+=(nftables)
command -v go >/dev/null || need+=(golang-go)  # builds the benchmarks' load generator (stdlib only)
command -v chromium >/dev/null || need+=(chromium)  # the GUI's browser tests: Playwright drives Debian's Chromium
[ -x /usr/lib/postgresql/15/bin/initdb ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
[ ${#need[@]} -eq 0 ] && exit 0
echo "installing system packages: ${need[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
