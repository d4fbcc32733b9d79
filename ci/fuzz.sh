#!/usr/bin/env bash
# Fuzz the entropy decoders and the parsers (config.json, safetensors, .tpk, tokenizer.json, GGUF,
# the .tpz container, codec specs): builds fuzz/ with clang (libFuzzer + ASan + UBSan) and runs each
# decoder target for FUZZ_SECONDS (default 60) and the parser targets for 4/3 FUZZ_SECONDS in all,
# shared evenly (FUZZ_PARSER_SECONDS sets each one's instead), seeded from fuzz/seeds/TARGET/ and
# the shared models' config.json. Standalone: ci/fuzz.sh [TARGET...]
# Env: FUZZ_SECONDS, FUZZ_PARSER_SECONDS, FUZZ_BUILD_DIR (default build-fuzz), FUZZ_JOBS (build
# parallelism, default 2), FUZZ_PAR (targets run at once, default the cores), TENPAK_SHARED_DIR.
# Exit status: non-zero if the build fails or any target finds a crash (artifacts in the build dir).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
secs=${FUZZ_SECONDS:-60}
parsers="fuzz_config fuzz_safetensors fuzz_artifact fuzz_tokenizer fuzz_gguf fuzz_tpz fuzz_codec_spec"
targets=${*:-fuzz_decode_ref fuzz_decode_cpu fuzz_adaptive $parsers}
# the parser targets share 4/3 FUZZ_SECONDS (CI's time budget: what four parsers had at a third
# each), FUZZ_PARSER_SECONDS each when set
nparsers=$(wc -w <<< "$parsers")
psecs=${FUZZ_PARSER_SECONDS:-$(( 4 * secs / (3 * nparsers) > 5 ? 4 * secs / (3 * nparsers) : 5 ))}
shared=${TENPAK_SHARED_DIR:-$(cd "$root/.." && pwd)/shared}
command -v clang >/dev/null || { echo "ci/fuzz.sh: clang not found (apt-get install clang)" >&2; exit 2; }
CC=clang cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DTENPAK_FUZZ=ON >/dev/null
# shellcheck disable=SC2086
cmake --build "$build" -j"${FUZZ_JOBS:-2}" --target $targets
# one target: its summary lines into $build/$t.out, its status into $build/$t.rc
run_one() {
  local t=$1 corpus="$build/corpus/$1" tsecs=$secs
  mkdir -p "$corpus" "$build/artifacts"
  case " $parsers " in *" $t "*) tsecs=$psecs ;; esac
  # seeds: the committed small ones, and the shared models' small files where they exist
  [ -d "$root/fuzz/seeds/$t" ] && { cp -n "$root/fuzz/seeds/$t"/* "$corpus"/ 2>/dev/null || true; }
  if [ "$t" = fuzz_config ]; then
    for m in "$shared"/models/*/; do [ -f "$m/config.json" ] && { cp -n "$m/config.json" "$corpus/shared-$(basename "$m")" || true; }; done
  fi
  {
    echo "== $t: ${tsecs}s"
    if ! "$build/$t" -max_total_time="$tsecs" -max_len=8192 -rss_limit_mb=2048 -timeout=10 \
         -artifact_prefix="$build/artifacts/$t-" -print_final_stats=1 "$corpus" 2>"$build/$t.log"; then
      echo "FAIL: $t (log: $build/$t.log, artifacts: $build/artifacts/)"; tail -30 "$build/$t.log"; echo 1 > "$build/$t.rc"
    else
      { grep -E "stat::number_of_executed_units|cov:" "$build/$t.log" | tail -2; } || true; echo 0 > "$build/$t.rc"
    fi
  } > "$build/$t.out"
}
# a fuzzer is one process on one core: FUZZ_PAR targets at once (default: the cores), each for its
# full time, so CI's fuzz stage takes 1 / FUZZ_PAR of the sum of the targets' times
par=${FUZZ_PAR:-$(nproc)}
for t in $targets; do
  rm -f "$build/$t.rc" "$build/$t.out"
  while [ "$(jobs -rp | wc -l)" -ge "$par" ]; do wait -n || true; done
  run_one "$t" &
done
wait
rc=0
passed=0
failed=0
for t in $targets; do
  cat "$build/$t.out" 2>/dev/null || true
  if [ "$(cat "$build/$t.rc" 2>/dev/null)" = 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); rc=1; fi
done
echo "fuzz: $passed passed, $failed failed"
exit $rc
