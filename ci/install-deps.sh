#!/usr/bin/env bash
# Installs the Debian packages tenpak needs, only those that are missing.
# Usage: ci/install-deps.sh   (as root, or with sudo available)
set -euo pipefail
pkgs=(build-essential cmake pkg-config libopenblas-dev liblapacke-dev libcjson-dev libzstd-dev
      libxxhash-dev libpcre2-dev zlib1g-dev libcriterion-dev gnuplot-nox python3 python3-numpy python3-scipy libbenchmark-tools clang libclang-rt-dev zstd xz-utils bzip2 gzip
      slurm-wlm munge)  # slurm-wlm + munge: the SLURM CI stage (ci/slurm/test.sh) starts a one-node cluster
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all Debian packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
