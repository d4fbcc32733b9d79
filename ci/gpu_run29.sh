#!/bin/bash
# GPU run 29: the fused LoRA kernel with helper blocks and self-resetting counters
# (kernels/cuda/lora.cu) beside the INT4 GEMV, checked by `verify --graph` (ci/gpu.sh) and timed
# both ways (graph replays: bench's default; stream: TENPAK_BENCH_GRAPH=0); then the kernel of
# 43e3cb6 (carried as .gpu/old/lora.cu) built into a copy of the same tree: its `verify --graph`
# (expected to fail: its run number repeats in a replayed graph) and its stream timing.
#   device run: `TENPAK_GIT_COMMIT=<sha> bash ci/gpu_run29.sh`, carry .gpu/debs .gpu/cusparselt .gpu/old
# Results: $OUT/run29/.
set -u
export TENPAK_GIT_COMMIT=${TENPAK_GIT_COMMIT:-unknown} TENPAK_GPU_REPS=5 TENPAK_GPU_MIN_TIME=0.05
R=${OUT:-/tmp}/run29; rm -rf $R; mkdir -p $R
F='^gemv/(lora_int4_g128_r16/(cuda|cuda-2k)|int4_g128/cuda)/4096x4096$|^gemm/lora_int4_g128_r16_(a4|s4)/cuda/|^copy/d2d/'
FL='^gemv/(lora_int4_g128_r16/(cuda|cuda-2k)|int4_g128/cuda)/4096x4096$|^gemm/lora_int4_g128_r16_a4/cuda/'
OUT=$R bash ci/gpu.sh "$F" > $R/gpu.log 2>&1
grep -E "^cuda:|verify|bench:|build:|FAIL" $R/gpu.log | head -20
grep -E "^\| |^- " $R/summary.md
P=/tmp/tenpak-deps/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$P:$P/openblas-pthread
grep -E "lora" $R/verify-graph.txt | head -20
echo "== new kernel, stream timing"
TENPAK_BENCH_GRAPH=0 build-gpu/tenpak bench --filter "$FL" --min-time 0.05 --repetitions 5 2>&1 | grep -E "_median|^gemv|^gemm" | tee $R/stream-new.txt
if [ -f .gpu/old/lora.cu ]; then
    O=/tmp/oldtree; rm -rf $O; mkdir -p $O
    tar cf - --exclude=./build-gpu --exclude=./build --exclude=./.git . | tar xf - -C $O
    cp .gpu/old/lora.cu $O/kernels/cuda/lora.cu
    (cd $O && OUT=$R/old TENPAK_GPU_BUILD=build-old TENPAK_GPU_SKIP_BENCH=1 bash -c 'mkdir -p $OUT; bash ci/gpu.sh' > $R/old-gpu.log 2>&1)
    grep -E "^build|^verify" $R/old-gpu.log
    $O/build-old/tenpak verify --graph --filter 'lora_int4_g128_r16(_a4)?/cuda/' > $R/old-verify-graph.txt 2>&1
    echo "old kernel, verify --graph: $(tail -n1 $R/old-verify-graph.txt)"
    grep -E "FAIL" $R/old-verify-graph.txt | head -8
    echo "== old kernel, stream timing"
    TENPAK_BENCH_GRAPH=0 $O/build-old/tenpak bench --filter "$FL" --min-time 0.05 --repetitions 5 2>&1 | grep -E "^gemv|^gemm" | tee $R/stream-old.txt
    echo "== old kernel, graph timing"
    $O/build-old/tenpak bench --filter "$FL" --min-time 0.05 --repetitions 5 2>&1 | grep -E "^gemv|^gemm" | tee $R/graph-old.txt
fi
