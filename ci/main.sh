#!/usr/bin/env bash
# README's first command: install what is missing, build, and run the main job on the default
# data (../shared beside the checkout): verify every kernel, then benchmark the GEMV matrix.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$(nproc)"
mkdir -p reports/results
./build/tenpak verify --json reports/results/verify.json
./build/tenpak bench --filter gemv --json reports/results/bench-gemv.json
echo "results: reports/results/verify.json reports/results/bench-gemv.json"
