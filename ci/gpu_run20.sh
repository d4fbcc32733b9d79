#!/bin/bash
# GPU run 20: one ci/gpu.sh run with the batch-1 defaults chosen from run19 (qmm_x1 for g32/g64 and for
# g128 where its row tiles outnumber the resident blocks, qmm_tc 'u' otherwise: kernels/cuda/int4.cu):
#   rm -rf .gpu/src && mkdir -p .gpu/src && git archive HEAD | tar x -C .gpu/src && cp ci/gpu_run20.sh .gpu/run20.sh
#   device run: `TENPAK_GIT_COMMIT=<sha> bash .gpu/run20.sh`, carry .gpu/debs .gpu/cusparselt .gpu/src .gpu/run20.sh
# Results: $OUT/run20.tgz.
set -u
ROOT=$PWD; cd .gpu/src && ln -sfn "$ROOT/.gpu" .gpu
export TENPAK_GIT_COMMIT=${TENPAK_GIT_COMMIT:-unknown} TENPAK_GPU_REPS=3 TENPAK_GPU_MIN_TIME=0.05
R=/tmp/run20; rm -rf $R; mkdir -p $R
OUT=$R bash ci/gpu.sh '^(gemv|gemm)/int4_g(32|64|128)_f16a/cuda/(8192x8192|28672x8192)(x16)?$|^(gemv|gemm)/f16/cublas/(8192x8192|28672x8192)(x16)?$|^copy/d2d/|^gemv/(lora_int4_g128_r16/cuda|int4_g128/cuda)/4096x4096$' > $R/gpu.log 2>&1
grep -E "^cuda:|verify:|bench:|build:|FAIL" $R/gpu.log | head
grep -E "^\| " $R/summary.md
tar czf "$OUT/run20.tgz" -C /tmp run20
