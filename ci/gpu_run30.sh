#!/bin/bash
# GPU run 30: where the fused LoRA's +50% lies. lora_main's base rows alone
# (TENPAK_CUDA_LORA_BASE_ONLY, wrong results: timing only) against the whole kernel and the INT4
# GEMV (gemv_simt), alternating, graph-timed; BGMV 16 columns after the units moved back before the
# base rows for batches; `verify --graph` of the LoRA kernels first (the change's correctness).
# waitfirst: TENPAK_CUDA_LORA_WAIT_FIRST, the PDL wait before the first code loads (as before the
# base blocks loaded their first chunk ahead of it).
# TENPAK_CUDA_LORA_WAIT_FIRST existed from 706e3d4 to f87f038 (removed: no difference measured).
#   device run: `TENPAK_GIT_COMMIT=<sha> bash ci/gpu_run30.sh`, carry .gpu/debs .gpu/cusparselt
# Results: $OUT/run30/.
set -u
R=${OUT:-/tmp}/run30; rm -rf $R; mkdir -p $R
OUT=$R/build TENPAK_GPU_SKIP_BENCH=1 bash ci/gpu.sh > $R/gpu.log 2>&1
grep -E "^cuda:|^build" $R/gpu.log
P=/tmp/tenpak-deps/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$P:$P/openblas-pthread
T=build-gpu/tenpak
$T verify --graph --filter 'lora_(int4|nf4)_g[0-9]+_r[0-9]+(_a4)?/cuda' > $R/verify-graph-lora.txt 2>&1
echo "verify --graph (LoRA): $(tail -n1 $R/verify-graph-lora.txt)"; grep FAIL $R/verify-graph-lora.txt | head -5
F='^gemv/(lora_int4_g128_r16/cuda|int4_g128/cuda)/4096x4096$|^gemm/lora_int4_g128_r16_a4/cuda/4096x4096x16$'
for i in 1 2 3; do
    for m in full full-waitfirst base base-waitfirst; do
        case $m in base*) export TENPAK_CUDA_LORA_BASE_ONLY=1 ;; *) unset TENPAK_CUDA_LORA_BASE_ONLY ;; esac
        case $m in *waitfirst) export TENPAK_CUDA_LORA_WAIT_FIRST=1 ;; *) unset TENPAK_CUDA_LORA_WAIT_FIRST ;; esac
        echo "== $m (round $i)"
        $T bench --filter "$F" --min-time 0.05 --repetitions 3 2>&1 | grep -E "^(gemv|gemm)/" | awk '{print $1, $3}'
    done
done 2>&1 | tee $R/baseonly.txt
