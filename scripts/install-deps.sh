#!/usr/bin/env bash
# Installs the Debian packages Attune builds against, only when missing:
# OpenBLAS and LLVM's libomp for the kernels, SQLite for the tuning database (GRDB).
# Swift itself is expected on PATH (https://www.swift.org/install/).
set -euo pipefail
missing=()
for pkg in libopenblas-dev libomp-dev libsqlite3-dev; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
