#!/usr/bin/env bash
# README's first command: install what is missing, build, and run the main job on the default
# models and data (../shared beside the checkout, or TENPAK_SHARED_DIR):
#   1. tenpak verify                      every kernel against its reference
#   2. tenpak bench (GEMV / dequant)      kernel throughput, Google Benchmark JSON
#   3. tenpak report                      codecs x models x datasets -> reports/EXPERIMENT_LOG.md
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/install-deps.sh
shared="${TENPAK_SHARED_DIR:-$(cd .. && pwd)/shared}"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DTENPAK_SHARED_DIR="$shared"
cmake --build build -j "$(nproc)"
mkdir -p reports/results
./build/tenpak verify --json reports/results/verify.json | tail -n 1
./build/tenpak bench --filter '^(gemv|dequant|copy)/' --min-time 0.2 --json reports/results/bench.json
./build/tenpak report "$@"
echo "report: reports/EXPERIMENT_LOG.md (numbers: reports/results/report.json, plots: reports/plots/)"
