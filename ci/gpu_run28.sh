#!/bin/bash
# GPU run 28: the fused LoRA kernel with 128-column shrink units and L2 prefetch of its first code
# chunks (kernels/cuda/lora.cu) beside the INT4 GEMV it is measured against, then a sweep of the
# batch-1 qmm_x1 configurations (TENPAK_CUDA_X1) for g32 / g64 at 8192^2 (bench only; the
# defaults' verify is ci/gpu.sh's).
#   device run, from the committed tree: `TENPAK_GIT_COMMIT=<sha> bash ci/gpu_run28.sh`, carry .gpu/debs .gpu/cusparselt
# Results: $OUT/run28/.
set -u
export TENPAK_GIT_COMMIT=${TENPAK_GIT_COMMIT:-unknown} TENPAK_GPU_REPS=3 TENPAK_GPU_MIN_TIME=0.05
R=${OUT:-/tmp}/run28; rm -rf $R; mkdir -p $R  # straight under $OUT: a run cut short still returns what it wrote
OUT=$R bash ci/gpu.sh '^(gemv|gemm)/int4_g(32|64|128)_f16a/cuda/8192x8192$|^gemv/f16/cublas/8192x8192$|^copy/d2d/|^gemv/(lora_int4_g128_r16/(cuda|cuda-2k)|int4_g128/cuda)/4096x4096$|^gemm/lora_int4_g128_r16_(a4|s4)/cuda/' > $R/gpu.log 2>&1
grep -E "^cuda:|verify:|bench:|build:|FAIL" $R/gpu.log | head
grep -E "^\| |^- " $R/summary.md
P=/tmp/tenpak-deps/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$P:$P/openblas-pthread
for l in a b c d e f g h i j k l m n o p q r s t u v; do
    echo "== TENPAK_CUDA_X1=$l"
    TENPAK_CUDA_X1=$l build-gpu/tenpak bench --filter '^gemv/int4_g(32|64)_f16a/cuda/8192x8192$' --min-time 0.05 --repetitions 3 2>&1 |
        grep -E '^gemv/' | grep -E '_median'
done > $R/x1sweep.txt 2>&1
cat $R/x1sweep.txt | paste - - - | awk '{print $2, $3, $4, $11, $12}'
true
