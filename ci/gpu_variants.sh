#!/bin/bash
# Builds of a CUDA source's experiment switches side by side on the GPU machine (run32-run35):
#   bash ci/gpu_variants.sh RUN VARIANT...
# VARIANT is NAME (the tree as it is) or NAME=SED: the sed script applied to SRC (default
# kernels/cuda/lora.cu) before an incremental rebuild into the same folder, e.g.
#   'B=s/^#define TENPAK_LORA_MINB 2$/#define TENPAK_LORA_MINB 1/'
# Each build: `verify --graph` of the kernels VFILTER matches (default: the LoRA kernels); then
# ROUNDS (default 3) alternating rounds, graph-timed, over the benchmarks FILTER (default: the
# fused LoRA, the INT4 GEMV gemv_simt at 4096^2, BGMV 16 columns) in each of MODES (default
# "full base": base = TENPAK_CUDA_LORA_BASE_ONLY, the LoRA's base rows alone, wrong results:
# timing only). Carry .gpu/debs .gpu/cusparselt. Results: $OUT/RUN/.
set -u
run=$1; shift
R=${OUT:-/tmp}/$run; rm -rf $R; mkdir -p $R
OUT=$R/build TENPAK_GPU_SKIP_BENCH=1 bash ci/gpu.sh > $R/gpu.log 2>&1
grep -E "^cuda:|^build" $R/gpu.log
P=/tmp/tenpak-deps/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$P:$P/openblas-pthread
L=${SRC:-kernels/cuda/lora.cu}; cp $L /tmp/src-orig
names=(); dirty=0 # dirty: the build folder holds a changed lora.cu
for spec in "$@"; do
    name=${spec%%=*}; names+=("$name")
    cp /tmp/src-orig $L
    if [ "$name" != "$spec" ]; then
        sed -i "${spec#*=}" $L
        # a sed that matches nothing would time the committed build under another name
        if cmp -s $L /tmp/src-orig; then echo "variant $name: the sed changed nothing in $L" >&2; cp /tmp/src-orig $L; exit 2; fi
    fi
    if [ "$name" != "$spec" ] || [ $dirty = 1 ]; then
        t0=$(date +%s); cmake --build build-gpu -j "$(nproc)" --target tenpak > $R/build-$name.log 2>&1
        echo "build $name: rc=$? in $(( $(date +%s) - t0 )) s"
    fi
    [ "$name" != "$spec" ] && dirty=1 || dirty=0
    cp build-gpu/tenpak /tmp/t-$name
done
cp /tmp/src-orig $L
V=${VFILTER:-'lora_(int4|nf4)_g[0-9]+_r[0-9]+(_a4|_s4)?/cuda'}
for v in "${names[@]}"; do
    /tmp/t-$v verify --graph --filter "$V" > $R/verify-graph-$v.txt 2>&1
    echo "$v verify --graph: $(tail -n1 $R/verify-graph-$v.txt)"; grep FAIL $R/verify-graph-$v.txt | head -3
done
F=${FILTER:-'^gemv/(lora_int4_g128_r16/cuda|int4_g128/cuda)/4096x4096$|^gemm/lora_int4_g128_r16_a4/cuda/4096x4096x16$'}
for i in $(seq ${ROUNDS:-3}); do
    for v in "${names[@]}"; do
        for m in ${MODES:-full base}; do
            if [ $m = base ]; then export TENPAK_CUDA_LORA_BASE_ONLY=1; else unset TENPAK_CUDA_LORA_BASE_ONLY; fi
            echo "== $v $m (round $i)"
            /tmp/t-$v bench --filter "$F" --min-time 0.05 --repetitions 3 2>&1 | grep -E "^(gemv|gemm|copy)/" | awk '{print $1, $3}'
        done
    done
done 2>&1 | tee $R/rounds.txt
