#!/usr/bin/env bash
# README's first command: install what is missing, build, and run the main job on the default
# models and data (../shared beside the checkout, or TENPAK_SHARED_DIR).
#
#   bash ci/main.sh          the quick job, about 10 minutes on 2 cores with the build:
#                              1. tenpak verify                  every kernel against its reference
#                              2. tenpak bench, GEMV at 4096^2   every backend beside OpenBLAS and the copy roofline
#                              3. tenpak report, reports/quick.json (12 rows) -> reports/quick/EXPERIMENT_LOG.md
#   bash ci/main.sh --full   the whole matrix, about 35 minutes on 2 cores:
#                              verify, the GEMV / dequant bench matrix, reports/default.json (44 rows on two
#                              datasets) -> reports/EXPERIMENT_LOG.md, the committed experiment log
# Further arguments go to `tenpak report` (e.g. --max-tokens 0 for whole files).
set -euo pipefail
cd "$(dirname "$0")/.."
full=0
if [ "${1:-}" = "--full" ]; then full=1; shift; fi
t0=$(date +%s)
stage() { echo "== main: $1 ($(( $(date +%s) - t0 ))s since start)"; }
stage "dependencies"
bash ci/install-deps.sh
shared="${TENPAK_SHARED_DIR:-$(cd .. && pwd)/shared}"
stage "build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DTENPAK_SHARED_DIR="$shared" >/dev/null
cmake --build build -j "$(nproc)"
if [ "$full" = 1 ]; then
  out=reports
  filter='^(gemv|dequant|copy)/'
  config=reports/default.json
  bench_args=(--min-time 0.2)
else
  out=reports/quick
  filter='^(gemv|copy)/[^/]*/[^/]*/4096x4096$'
  config=reports/quick.json
  bench_args=(--min-time 0.1 --repetitions 3)
fi
mkdir -p "$out/results"
stage "tenpak verify"
./build/tenpak verify --json "$out/results/verify.json" | tail -n 1
stage "tenpak bench --filter '$filter'"
./build/tenpak bench --filter "$filter" "${bench_args[@]}" --json "$out/results/bench.json"
stage "tenpak report --config $config"
./build/tenpak report --config "$config" --out "$out" --bench "$out/results/bench.json" "$@"
stage "done"
echo "report: $out/EXPERIMENT_LOG.md (numbers: $out/results/report.json, plots: $out/plots/)"
