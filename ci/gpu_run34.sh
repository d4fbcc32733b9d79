#!/bin/bash
# GPU run 34: the two-kernel LoRA (backend cuda-2k: lora_shrink, then lora_main, PDL: main's base
# rows start while the shrink runs, its only wait is before it sums P) with lora_main uncapped.
# run33: uncapped base rows 9.5 us against the INT4 GEMV's 9.1, but the fused kernel then has room
# for 4 helpers only (one 223-register block an SM) and takes 13.2 us (capped: 12.9); the shrink as
# its own small kernel needs no room beside 1-block-an-SM base blocks.
#   A: the defaults (TENPAK_LORA_MINB 2)      E: TENPAK_LORA_MINB 1
# Each: `verify --graph` of the LoRA kernels; then alternating graph-timed rounds of the whole
# kernel and its base rows beside the INT4 GEMV (gemv_simt), BGMV 16 columns.
#   device run: `TENPAK_GIT_COMMIT=<sha> bash ci/gpu_run34.sh`, carry .gpu/debs .gpu/cusparselt
# Results: $OUT/run34/.
set -u
R=${OUT:-/tmp}/run34; rm -rf $R; mkdir -p $R
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
F='^gemv/(lora_int4_g128_r16/cuda|lora_int4_g128_r16/cuda-2k|int4_g128/cuda)/4096x4096$|^gemm/lora_int4_g128_r16_a4/cuda/4096x4096x16$'
for i in 1 2 3; do
    for v in A E; do
        for m in full base; do
            if [ $m = base ]; then export TENPAK_CUDA_LORA_BASE_ONLY=1; else unset TENPAK_CUDA_LORA_BASE_ONLY; fi
            echo "== $v $m (round $i)"
            /tmp/t-$v bench --filter "$F" --min-time 0.05 --repetitions 3 2>&1 | grep -E "^(gemv|gemm)/" | awk '{print $1, $3}'
        done
    done
done 2>&1 | tee $R/rounds.txt
