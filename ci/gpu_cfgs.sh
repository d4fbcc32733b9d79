#!/bin/bash
# Launch-configuration sweep on a GPU machine, after ci/gpu.sh has built build-gpu (same session):
#   bash ci/gpu_cfgs.sh 'BENCH-FILTER' 'ENV=V [ENV2=V2]' ...
# For each setting: `tenpak verify --self-test` of the INT4 _f16a and LoRA cuda kernels under it,
# then `tenpak bench` of BENCH-FILTER (median lines); to stdout. The settings are the knobs of
# kernels/cuda/int4.cu and common.cuh (TENPAK_CUDA_GEMV_CFG, TENPAK_CUDA_GEMM_CFG, TENPAK_CUDA_PDL).
F=$1; shift
T=${TENPAK_GPU_BUILD:-build-gpu}/tenpak
[ -x "$T" ] || { echo "ci/gpu_cfgs.sh: no $T: run ci/gpu.sh first"; exit 1; }
P=${TENPAK_GPU_PREFIX:-/tmp/tenpak-deps}/usr/lib/x86_64-linux-gnu
[ -d "$P" ] && export LD_LIBRARY_PATH=$P:$P/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
for c in "$@"; do
    echo "== $c"
    env $c "$T" verify --self-test --filter '_f16a/cuda/|lora_int4_g128_r16/cuda' 2>&1 | grep -E 'passed|FAIL' | head -n 5
    env $c "$T" bench --filter "$F" --min-time ${TENPAK_GPU_MIN_TIME:-0.05} --repetitions ${TENPAK_GPU_REPS:-5} 2>&1 |
        grep -E '^(gemv|gemm)/' | grep -v -E '_(mean|stddev|cv|min|max)'
done
