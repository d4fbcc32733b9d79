#!/usr/bin/env bash
# Installs the Debian packages tenpak needs, only those that are missing.
# Usage: ci/install-deps.sh   (as root, or with sudo available)
set -euo pipefail
pkgs=(build-essential cmake pkg-config libopenblas-dev liblapacke-dev libcjson-dev libzstd-dev
      libxxhash-dev libpcre2-dev zlib1g-dev libcriterion-dev gnuplot-nox python3 python3-numpy python3-scipy libbenchmark-tools clang libclang-rt-dev zstd xz-utils bzip2 gzip
      slurm-wlm munge)  # slurm-wlm + munge: the SLURM CI stage (ci/slurm/test.sh) starts a one-node cluster
pkgs+=(python3-pip)  # pip for the gguf package below
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all Debian packages present"
else
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The gguf package (PyPI, numpy only: no torch) for Debian's /usr/bin/python3, whose numpy is the
# Debian package: the independent reference of verify/test_ggml_gguf.c. Installed per user
# (~/.local; --break-system-packages is pip's PEP 668 opt-in, it touches no Debian file). Without
# network the suite still runs: that test reports itself Skipped.
if ! /usr/bin/python3 -c 'import gguf.quants' 2>/dev/null; then
  echo "install-deps: pip install --user gguf (for /usr/bin/python3)"
  /usr/bin/python3 -m pip install -q --user --break-system-packages 'gguf>=0.10' ||
    echo "install-deps: could not install gguf: test_ggml_gguf will be skipped" >&2
fi
