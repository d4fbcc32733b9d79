#!/usr/bin/env bash
# Fuzz the entropy decoders: builds fuzz/ with clang (libFuzzer + ASan + UBSan) and runs each
# target for FUZZ_SECONDS (default 60). Standalone: ci/fuzz.sh [TARGET...]
# Env: FUZZ_SECONDS, FUZZ_BUILD_DIR (default build-fuzz), FUZZ_JOBS (build parallelism, default 2).
# Exit status: non-zero if the build fails or any target finds a crash (artifacts in the build dir).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
secs=${FUZZ_SECONDS:-60}
targets=${*:-fuzz_decode_ref fuzz_decode_cpu fuzz_adaptive}
command -v clang >/dev/null || { echo "ci/fuzz.sh: clang not found (apt-get install clang)" >&2; exit 2; }
CC=clang cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DTENPAK_FUZZ=ON >/dev/null
# shellcheck disable=SC2086
cmake --build "$build" -j"${FUZZ_JOBS:-2}" --target $targets
rc=0
passed=0
failed=0
for t in $targets; do
  corpus="$build/corpus/$t"
  mkdir -p "$corpus" "$build/artifacts"
  echo "== $t: ${secs}s"
  if ! "$build/$t" -max_total_time="$secs" -max_len=8192 -rss_limit_mb=2048 -timeout=10 \
       -artifact_prefix="$build/artifacts/$t-" -print_final_stats=1 "$corpus" 2>"$build/$t.log"; then
    echo "FAIL: $t (log: $build/$t.log, artifacts: $build/artifacts/)"; tail -30 "$build/$t.log"; rc=1
    failed=$((failed + 1))
  else
    grep -E "stat::number_of_executed_units|cov:" "$build/$t.log" | tail -2
    passed=$((passed + 1))
  fi
done
echo "fuzz: $passed passed, $failed failed"
exit $rc
