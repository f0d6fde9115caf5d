#!/usr/bin/env bash
# Install the Debian packages srv needs to build (and, with --test, to run its test suite).
# Does nothing when they are all present; needs root otherwise.
set -euo pipefail

build_pkgs=(cmake make gcc g++ pkg-config liburing-dev libwslay-dev node-llhttp libssl-dev
            libhiredis-dev libtomlplusplus-dev zlib1g-dev libnghttp2-dev)
test_pkgs=(curl openssl python3 python3-websockets nginx-light redis-server netcat-openbsd wrk procps
           nghttp2-client python3-h2 clang python3-prometheus-client logrotate chromium
           supervisor systemd)
# Node.js may come from elsewhere than Debian (the machine image ships its own node and npm,
# which Debian's npm package conflicts with): only ask apt for it when there is none.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    test_pkgs+=(nodejs npm)
fi

pkgs=("${build_pkgs[@]}")
if [ "${1:-}" = "--test" ]; then
    pkgs+=("${test_pkgs[@]}")
fi

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "srv: missing packages: ${missing[*]}" >&2
    echo "srv: run as root (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
fi
echo "srv: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# nginx-light, redis-server and supervisor start system services on install; the tests run their
# own (systemd is there for systemd-analyze: nothing of it runs in a container).
if command -v systemctl >/dev/null 2>&1; then
    systemctl stop nginx redis-server supervisor >/dev/null 2>&1 || true
    systemctl disable supervisor >/dev/null 2>&1 || true
fi
service nginx stop >/dev/null 2>&1 || true
service redis-server stop >/dev/null 2>&1 || true
service supervisor stop >/dev/null 2>&1 || true
