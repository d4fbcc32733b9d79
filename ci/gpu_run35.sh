#!/bin/bash
# GPU run 35: the INT4 tensor-core GEMVs without the minimum-blocks hint of 1 (TENPAK_QMM_HINT1 0,
# kernels/cuda/int4_tc.cuh): ptxas's default schedule takes 79 registers instead of 115 for qmm_x1
# 't' at g32 (3 blocks an SM instead of 2; the persistent grid follows the occupancy), 77 / 99 at
# g64, 112 / 116 for qmm_tc 'u' at g128. Targets in play: GEMV 8192^2 80% of copy (75.4%, run28),
# g32 within 15% of g128's fraction (0.83).
#   A: as committed    H: TENPAK_QMM_HINT1 0
#   device run: `TENPAK_GIT_COMMIT=<sha> bash ci/gpu_run35.sh`, carry .gpu/debs .gpu/cusparselt
SRC=kernels/cuda/int4_tc.cuh VFILTER='_f16a/cuda' MODES=full \
FILTER='^(gemv|gemm)/int4_g(32|64|128)_f16a/cuda/(8192x8192|28672x8192)(x16)?$|^(gemv|gemm)/f16/cublas/(8192x8192|28672x8192)(x16)?$|^copy/d2d/' \
    exec bash ci/gpu_variants.sh run35 A 'H=s/^#define TENPAK_QMM_HINT1 1$/#define TENPAK_QMM_HINT1 0/'
