#!/bin/bash
# GPU run 27: one ci/gpu.sh run of the INT4 benches on an H100 with the defaults of this
# session (GEMM x16 'k', the batch-1 GEMV defaults of 78bc4ae): the figures beside run20's.
#   device run, from the committed tree: `TENPAK_GIT_COMMIT=<sha> bash ci/gpu_run27.sh`, carry .gpu/debs .gpu/cusparselt
# Results: $OUT/run27.tgz.
set -u
export TENPAK_GIT_COMMIT=${TENPAK_GIT_COMMIT:-unknown} TENPAK_GPU_REPS=3 TENPAK_GPU_MIN_TIME=0.05
R=/tmp/run27; rm -rf $R; mkdir -p $R
OUT=$R bash ci/gpu.sh '^(gemv|gemm)/int4_g(32|64|128)_f16a/cuda/(8192x8192|28672x8192)(x16)?$|^(gemv|gemm)/f16/cublas/(8192x8192|28672x8192)(x16)?$|^copy/d2d/|^gemv/(lora_int4_g128_r16/cuda|int4_g128/cuda)/4096x4096$' > $R/gpu.log 2>&1
grep -E "^cuda:|verify:|bench:|build:|FAIL" $R/gpu.log | head
grep -E "^\| |^- " $R/summary.md
tar czf "$OUT/run27.tgz" -C /tmp run27
