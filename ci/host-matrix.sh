#!/usr/bin/env bash
# The test suite under the code paths other CPUs take, on this one machine.
#
#   ci/host-matrix.sh [--full] [BUILD_DIR]     (BUILD_DIR default build/, made by ci/test.sh)
#
# Two things decide which code runs on a user's CPU: tenpak's own dispatch (TENPAK_ISA caps it at
# portable | avx2 | avx512 | avx512vbmi) and OpenBLAS's kernel choice (OPENBLAS_CORETYPE forces
# the kernels of another CPU: Core2's SSE3, Sandybridge's AVX, Haswell's AVX2, SkylakeX's AVX-512).
# A bit-exactness promise that holds only for this host's pair is a bug, so the suites that promise
# exactness across hosts (pipeline, zip, entropy, calibration, int4) run under other pairs:
#   default   three pairs (CI): portable + Core2, avx2 + Sandybridge (or Core2), and this host's best
#             ISA with SkylakeX's kernels where it has AVX-512 (else Haswell's), AMX off where it
#             has AMX: the pairs of an old CPU, of an AVX machine and of an AVX-512 host.
#   --full    every ISA cap below the best, and every core type this CPU can execute, each over the
#             whole suite (about 1.5 min a configuration on 2 cores).
# A core type whose instructions this CPU lacks would die of SIGILL, so only those it can run are used.
set -euo pipefail
cd "$(dirname "$0")/.."
full=0
if [ "${1:-}" = "--full" ]; then full=1; shift; fi
build="${1:-build}"
[ -x "$build/tenpak" ] || { echo "host-matrix: $build/tenpak missing: run ci/test.sh first" >&2; exit 2; }
jobs=$(nproc)

flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
has() { [[ " $flags " == *" $1 "* ]]; }
cores=(Prescott Core2)
has sse4_2 && cores+=(Nehalem)
has avx && cores+=(Sandybridge)
has avx2 && has fma && cores+=(Haswell Zen)
has avx512f && has avx512bw && has avx512vl && has avx512dq && cores+=(SkylakeX)
has avx512_bf16 && cores+=(Cooperlake)
best=$("$build/tenpak" list | sed -n 's/.*best isa \([a-z0-9]*\).*/\1/p' | head -n 1)
isas=()
for i in portable avx2 avx512 avx512vbmi; do
  [ "$i" = "$best" ] && break
  isas+=("$i")
done

configs=()
if [ "$full" = 1 ]; then
  for i in "${isas[@]}"; do configs+=("TENPAK_ISA=$i"); done
  for c in "${cores[@]}"; do configs+=("OPENBLAS_CORETYPE=$c"); done
  regex='.'
else
  configs+=("TENPAK_ISA=portable OPENBLAS_CORETYPE=Core2")
  if has avx; then configs+=("TENPAK_ISA=avx2 OPENBLAS_CORETYPE=Sandybridge"); fi
  # on an AMX host the best-ISA pair runs with AMX off: the other stages run with it on, and this
  # one then takes the prefill path of AVX-512 VNNI hosts without AMX (Ice Lake, Zen 4)
  noamx=""
  has amx_tile && noamx=" TENPAK_AMX=0"
  if [[ " ${cores[*]} " == *" SkylakeX "* ]]; then configs+=("OPENBLAS_CORETYPE=SkylakeX$noamx")
  elif [[ " ${cores[*]} " == *" Haswell "* ]]; then configs+=("OPENBLAS_CORETYPE=Haswell$noamx"); fi
  regex='^(test_pipeline_|cli_zip_cli|test_entropy|test_calib|test_int4|test_artifact)'
fi

echo "host-matrix: best ISA $best; OpenBLAS core types this CPU runs: ${cores[*]}"
failed=()
for cfg in "${configs[@]}"; do
  echo "host-matrix: === $cfg"
  # shellcheck disable=SC2086  # cfg is a list of NAME=VALUE words
  if ! env $cfg ctest --test-dir "$build" --output-on-failure -j "$jobs" --timeout 900 -R "$regex"; then
    failed+=("$cfg")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  printf 'host-matrix: FAILED under: %s\n' "${failed[@]}"
  exit 1
fi
echo "host-matrix: ${#configs[@]} configurations passed"
