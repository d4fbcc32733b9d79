#!/bin/bash
# GPU run 32: why lora_main's base rows (TENPAK_CUDA_LORA_BASE_ONLY) take 10.7 us where gemv_simt,
# the same decode, takes 9.1 (run30, run31). Four builds of kernels/cuda/lora.cu's experiment
# switches, each rebuilt into the same folder (one file):
#   A: the defaults (TENPAK_LORA_MINB 2: at most 128 registers; scale / offset with the codes)
#   B: TENPAK_LORA_MINB 1 (no register cap: 223 registers, one block an SM)
#   C: TENPAK_LORA_SCALE_AT_USE 1 (scale / offset loaded when used, as gemv_simt)
#   D: B and C
# Each: `verify --graph` of the LoRA kernels; then alternating graph-timed rounds of the whole
# kernel and its base rows beside the INT4 GEMV (gemv_simt), BGMV 16 columns.
#   device run: `TENPAK_GIT_COMMIT=<sha> bash ci/gpu_run32.sh`, carry .gpu/debs .gpu/cusparselt
# Results: $OUT/run32/.
set -u
R=${OUT:-/tmp}/run32; rm -rf $R; mkdir -p $R
OUT=$R/build TENPAK_GPU_SKIP_BENCH=1 bash ci/gpu.sh > $R/gpu.log 2>&1
grep -E "^cuda:|^build" $R/gpu.log
P=/tmp/tenpak-deps/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$P:$P/openblas-pthread
L=kernels/cuda/lora.cu; cp $L /tmp/lora-orig.cu
cp build-gpu/tenpak /tmp/t-A
for v in B C D; do
    cp /tmp/lora-orig.cu $L
    case $v in B|D) sed -i 's/^#define TENPAK_LORA_MINB 2$/#define TENPAK_LORA_MINB 1/' $L ;; esac
    case $v in C|D) sed -i 's/^#define TENPAK_LORA_SCALE_AT_USE 0$/#define TENPAK_LORA_SCALE_AT_USE 1/' $L ;; esac
    t0=$(date +%s); cmake --build build-gpu -j "$(nproc)" --target tenpak > $R/build-$v.log 2>&1
    echo "build $v: rc=$? in $(( $(date +%s) - t0 )) s"; cp build-gpu/tenpak /tmp/t-$v
done
cp /tmp/lora-orig.cu $L
V='lora_(int4|nf4)_g[0-9]+_r[0-9]+(_a4|_s4)?/cuda'
for v in A B C D; do
    /tmp/t-$v verify --graph --filter "$V" > $R/verify-graph-$v.txt 2>&1
    echo "$v verify --graph (LoRA): $(tail -n1 $R/verify-graph-$v.txt)"; grep FAIL $R/verify-graph-$v.txt | head -3
done
F='^gemv/(lora_int4_g128_r16/cuda|int4_g128/cuda)/4096x4096$|^gemm/lora_int4_g128_r16_a4/cuda/4096x4096x16$'
for i in 1 2; do
    for v in A B C D; do
        for m in full base; do
            if [ $m = base ]; then export TENPAK_CUDA_LORA_BASE_ONLY=1; else unset TENPAK_CUDA_LORA_BASE_ONLY; fi
            echo "== $v $m (round $i)"
            /tmp/t-$v bench --filter "$F" --min-time 0.05 --repetitions 3 2>&1 | grep -E "^(gemv|gemm)/" | awk '{print $1, $3}'
        done
    done
done 2>&1 | tee $R/rounds.txt
