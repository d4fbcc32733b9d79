#!/bin/bash
# The GPU run prepared for the next lent machine (run16, never started in the session that wrote it):
# SGMV on the GPU, the INT4 GEMV defaults, an ncu profile of qmm_tc at 28672x8192, and the GPU host's
# Intel Xeon CPU for the Intel speed figures (INT4 g128 GEMV vs OpenBLAS sgemv on 2 pinned threads with
# SkylakeX kernels, rANS decode of wiki.test.raw). It builds a snapshot of the tree, so that a working
# tree being edited meanwhile does not travel:
#   rm -rf .gpu/src && mkdir -p .gpu/src && git archive HEAD | tar x -C .gpu/src
#   cp ../shared/datasets/wikitext-2-raw/wiki.test.raw .gpu/ && cp ci/gpu_run16.sh .gpu/run16.sh
#   device run: `bash .gpu/run16.sh`, carry .gpu/debs .gpu/cusparselt .gpu/src .gpu/wiki.test.raw .gpu/run16.sh
# Results: $OUT/run16.tgz (the device tool returns at most 8 files).
set -u
ROOT=$PWD; cd .gpu/src && ln -sfn "$ROOT/.gpu" .gpu
export TENPAK_GIT_COMMIT=${TENPAK_GIT_COMMIT:-unknown} TENPAK_GPU_MIN_TIME=0.05 TENPAK_GPU_REPS=3 TENPAK_GPU_MIN_TIME=0.03
R=/tmp/run16; rm -rf $R; mkdir -p $R
OUT=$R bash ci/gpu.sh '^gemv/int4_g128_f16a/cuda/(8192x8192|28672x8192)$|^gemv/f16/cublas/(8192x8192|28672x8192)$|^copy/d2d/|^gemv/(lora_int4_g128_r16/cuda|int4_g128/cuda)/4096x4096$|^gemm/lora_int4_g128_r16_(a4|s4)/cuda/' > $R/gpu.log 2>&1
grep -E "^cuda:|verify:|bench:|build:|FAIL" $R/gpu.log | head
grep -E "^\| |^- " $R/summary.md
grep -E "_s4/" $R/verify.txt | head -12
grep -E "lora" $R/bench.txt | grep median
tar czf "$OUT/run16.tgz" -C /tmp run16
P=/tmp/tenpak-deps/usr/lib/x86_64-linux-gnu; export LD_LIBRARY_PATH=$P:$P/openblas-pthread
T=build-gpu/tenpak
lscpu > $R/lscpu.txt; grep -E "Model name|^CPU\(s\)|L2|L3" $R/lscpu.txt; grep -o -E 'avx512[a-z_0-9]*|amx[a-z_0-9]*' /proc/cpuinfo | sort -u | tr '\n' ' '; echo
$T list | head -3
for i in 1 2 3; do
  OPENBLAS_CORETYPE=SkylakeX OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 taskset -c 2,3 $T bench --filter '^gemv/(f32/openblas|int4_g128/cpu)/4096x4096$' --repetitions 5 --json $R/intel-gemv-$i.json > $R/intel-gemv-$i.txt 2>&1
  grep median $R/intel-gemv-$i.txt
done
for i in 1 2 3; do OMP_NUM_THREADS=2 taskset -c 2,3 $T entropy encode --coder rans --repeat 5 "$ROOT/.gpu/wiki.test.raw" /tmp/w.rans 2>&1 | tail -1; done | tee $R/intel-rans.txt
tar czf "$OUT/run16.tgz" -C /tmp run16
N=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null); echo "ncu: $N"
if [ -n "$N" ]; then
  TENPAK_BENCH_GRAPH=0 timeout 45 $N -k regex:qmm_tc -c 1 --section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats --section Occupancy --section LaunchStats --section SchedulerStats $T bench --filter '^gemv/int4_g128_f16a/cuda/28672x8192$' --min-time 0.001 --repetitions 1 > $R/ncu.txt 2>&1
  grep -E "Throughput|Duration|Stall|Achieved Occupancy|Theoretical Occupancy|Registers|Warp Cycles|Eligible|Issued Warp|L2 Hit|Mem Busy|Max Bandwidth|DRAM" $R/ncu.txt | head -40
fi
tar czf "$OUT/run16.tgz" -C /tmp run16
