#!/bin/bash
# GPU run 33: lora_main without its register cap (TENPAK_LORA_MINB 1: 223 registers, one block an SM;
# run32: its base rows 9.6 us against 10.6 capped, but the whole kernel 13.4 against 12.9, its
# helpers waiting for SMs) with only as many helpers as fit beside the base blocks (occupancy):
#   A: the defaults (TENPAK_LORA_MINB 2: 32 helpers at 4096 rows)
#   E: TENPAK_LORA_MINB 1 (4 helpers on the 4 SMs 128 base blocks leave free on an H100)
# Each: `verify --graph` of the LoRA kernels; then alternating graph-timed rounds of the whole
# kernel and its base rows beside the INT4 GEMV (gemv_simt), BGMV 16 columns.
#   device run: `TENPAK_GIT_COMMIT=<sha> bash ci/gpu_run33.sh`, carry .gpu/debs .gpu/cusparselt
# Results: $OUT/run33/.
set -u
R=${OUT:-/tmp}/run33; rm -rf $R; mkdir -p $R
OUT=$R/build TENPAK_GPU_SKIP_BENCH=1 bash ci/gpu.sh > $R/gpu.log 2>&1
grep -E "^cuda:|^build" $R/gpu.log
P=/tmp/tenpak-deps/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$P:$P/openblas-pthread
L=kernels/cuda/lora.cu; cp $L /tmp/lora-orig.cu
cp build-gpu/tenpak /tmp/t-A
for v in E; do
    cp /tmp/lora-orig.cu $L
    case $v in E) sed -i 's/^#define TENPAK_LORA_MINB 2$/#define TENPAK_LORA_MINB 1/' $L ;; esac
    t0=$(date +%s); cmake --build build-gpu -j "$(nproc)" --target tenpak > $R/build-$v.log 2>&1
    echo "build $v: rc=$? in $(( $(date +%s) - t0 )) s"; cp build-gpu/tenpak /tmp/t-$v
done
cp /tmp/lora-orig.cu $L
V='lora_(int4|nf4)_g[0-9]+_r[0-9]+(_a4|_s4)?/cuda'
for v in A E; do
    /tmp/t-$v verify --graph --filter "$V" > $R/verify-graph-$v.txt 2>&1
    echo "$v verify --graph (LoRA): $(tail -n1 $R/verify-graph-$v.txt)"; grep FAIL $R/verify-graph-$v.txt | head -3
done
F='^gemv/(lora_int4_g128_r16/cuda|int4_g128/cuda)/4096x4096$|^gemm/lora_int4_g128_r16_a4/cuda/4096x4096x16$'
for i in 1 2 3; do
    for v in A E; do
        for m in full base; do
            if [ $m = base ]; then export TENPAK_CUDA_LORA_BASE_ONLY=1; else unset TENPAK_CUDA_LORA_BASE_ONLY; fi
            echo "== $v $m (round $i)"
            /tmp/t-$v bench --filter "$F" --min-time 0.05 --repetitions 3 2>&1 | grep -E "^(gemv|gemm)/" | awk '{print $1, $3}'
        done
    done
done 2>&1 | tee $R/rounds.txt
