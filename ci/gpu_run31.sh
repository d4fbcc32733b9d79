#!/bin/bash
# GPU run 31: the fused LoRA after run30, two versions side by side in one call:
#   new = this tree (T published by the block that completes the units, tagged with the run, and
#         read by every warp's expand straight from L2; base blocks that need not claim learn
#         their run from an entry counter);
#   old = .gpu/old/lora.cu (beab9fc: run30's kernel plus the group index by a shift, T summed by
#         every thread, 1024-column units for batches), rebuilt into the same build folder.
# Both: the plain self-tested verify and `verify --graph` of the LoRA kernels, then alternating
# graph-timed rounds of the whole kernel and its base rows alone (TENPAK_CUDA_LORA_BASE_ONLY, wrong
# results: timing only) beside the INT4 GEMV (gemv_simt) and BGMV 16 columns.
#   device run: `TENPAK_GIT_COMMIT=<sha> bash ci/gpu_run31.sh`, carry .gpu/debs .gpu/cusparselt .gpu/old
# Results: $OUT/run31/.
set -u
R=${OUT:-/tmp}/run31; rm -rf $R; mkdir -p $R
OUT=$R/build TENPAK_GPU_SKIP_BENCH=1 bash ci/gpu.sh > $R/gpu.log 2>&1
grep -E "^cuda:|^build" $R/gpu.log
P=/tmp/tenpak-deps/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$P:$P/openblas-pthread
cp build-gpu/tenpak /tmp/t-new
if [ -f .gpu/old/lora.cu ]; then
    cp kernels/cuda/lora.cu /tmp/lora-new.cu; cp .gpu/old/lora.cu kernels/cuda/lora.cu
    t0=$(date +%s); cmake --build build-gpu -j "$(nproc)" --target tenpak > $R/build-old.log 2>&1; echo "old build: rc=$? in $(( $(date +%s) - t0 )) s"
    cp build-gpu/tenpak /tmp/t-old; cp /tmp/lora-new.cu kernels/cuda/lora.cu
fi
V='lora_(int4|nf4)_g[0-9]+_r[0-9]+(_a4|_s4)?/cuda'
for v in new old; do
    [ -x /tmp/t-$v ] || continue
    /tmp/t-$v verify --self-test --filter "$V" > $R/verify-$v.txt 2>&1
    echo "$v verify --self-test (LoRA): $(tail -n1 $R/verify-$v.txt)"; grep FAIL $R/verify-$v.txt | head -5
    /tmp/t-$v verify --graph --filter "$V" > $R/verify-graph-$v.txt 2>&1
    echo "$v verify --graph (LoRA): $(tail -n1 $R/verify-graph-$v.txt)"; grep FAIL $R/verify-graph-$v.txt | head -5
done
F='^gemv/(lora_int4_g128_r16/cuda|int4_g128/cuda)/4096x4096$|^gemm/lora_int4_g128_r16_a4/cuda/4096x4096x16$'
for i in 1 2 3; do
    for v in new old; do
        [ -x /tmp/t-$v ] || continue
        for m in full base; do
            if [ $m = base ]; then export TENPAK_CUDA_LORA_BASE_ONLY=1; else unset TENPAK_CUDA_LORA_BASE_ONLY; fi
            echo "== $v $m (round $i)"
            /tmp/t-$v bench --filter "$F" --min-time 0.05 --repetitions 3 2>&1 | grep -E "^(gemv|gemm)/" | awk '{print $1, $3}'
        done
    done
done 2>&1 | tee $R/rounds.txt
