#!/bin/bash
# GPU run 36: the record run of issue 23's targets at one commit, one ci/gpu.sh run: every cuda /
# cuda-simt / cublas / cusparselt kernel verified (stream and graph), then bench over the targets'
# kernels and their baselines (INT4 g32/g64/g128 GEMV and 16-column GEMM at 8192^2 and 28672x8192,
# cuBLAS FP16, the copy roofline, 2:4 GEMM 8192^3 with cuBLAS dense and cuSPARSELt, fused and
# two-kernel LoRA r16, BGMV / SGMV, VQ K4096), summary with the targets (ci/gpu_summary.py).
#   device run: `TENPAK_GIT_COMMIT=<sha> bash ci/gpu_run36.sh`, carry .gpu/debs .gpu/cusparselt
set -u
export TENPAK_GIT_COMMIT=${TENPAK_GIT_COMMIT:-unknown} TENPAK_GPU_REPS=5 TENPAK_GPU_MIN_TIME=0.05
R=${OUT:-/tmp}/run36; rm -rf $R; mkdir -p $R
OUT=$R bash ci/gpu.sh '^(gemv|gemm)/int4_g(32|64|128)_f16a/cuda/(8192x8192|28672x8192)(x16)?$|^(gemv|gemm)/f16/cublas/(8192x8192|28672x8192)(x16)?$|^copy/d2d/|^gemv/(lora_int4_g128_r16/(cuda|cuda-2k)|int4_g128/cuda)/4096x4096$|^gemm/lora_int4_g128_r16_(a4|s4)/cuda/|^gemm/(sparse24_f16_f16a/cuda|sparse24_f16_f16a_o16/cusparselt|f16/cublas)/8192x8192x8192$|^gemv/vq_d[48]k4096/cuda/' > $R/gpu.log 2>&1
rc=$?
grep -E "^cuda:|verify|bench:|build:|FAIL" $R/gpu.log | head -20
grep -E "^\| |^- " $R/summary.md
rm -f $R/verify.json
exit $rc
