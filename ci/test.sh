#!/usr/bin/env bash
# README's test command: install what is missing, build, run every test.
#   ci/test.sh              Release build in build/, ctest
#   ci/test.sh --sanitize   ASan+UBSan build in build-asan/, the same tests
#   ci/test.sh --clang      Release build with clang in build-clang/ (CPU only), the same tests
# TENPAK_SHARED_DIR (default ../shared beside the checkout) points at the read-only test data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/install-deps.sh
jobs=$(nproc)
shared="${TENPAK_SHARED_DIR:-$(cd .. && pwd)/shared}"
if [ "${1:-}" = "--sanitize" ]; then
  dir=build-asan
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTENPAK_SANITIZE=ON -DTENPAK_SHARED_DIR="$shared"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
elif [ "${1:-}" = "--clang" ]; then
  # the CUDA backend's host code is nvcc's (gcc); clang checks every C file of the CPU build
  dir=build-clang
  CC=clang cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DTENPAK_CUDA=OFF -DTENPAK_SHARED_DIR="$shared"
else
  dir=build
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DTENPAK_SHARED_DIR="$shared"
fi
cmake --build "$dir" -j "$jobs"
ctest --test-dir "$dir" --output-on-failure -j "$jobs" --timeout 900
