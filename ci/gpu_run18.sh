#!/bin/bash
# GPU run 18: the batch-1 INT4 GEMV kernel qmm_x1 (x staged in shared memory as B fragments, group
# sums of x precomputed, one LOP3 per nibble pair, a quad's scale words passed by shuffles:
# kernels/cuda/int4_tc.cuh) against qmm_tc's defaults, in one session on one machine:
#   rm -rf .gpu/src && mkdir -p .gpu/src && git archive HEAD | tar x -C .gpu/src && cp ci/gpu_run18.sh .gpu/run18.sh
#   device run: `TENPAK_GIT_COMMIT=<sha> bash .gpu/run18.sh`, carry .gpu/debs .gpu/cusparselt .gpu/src .gpu/run18.sh
# Results: $OUT/run18.tgz.
set -u
ROOT=$PWD; cd .gpu/src && ln -sfn "$ROOT/.gpu" .gpu
export TENPAK_GIT_COMMIT=${TENPAK_GIT_COMMIT:-unknown} TENPAK_GPU_REPS=5 TENPAK_GPU_MIN_TIME=0.05
R=/tmp/run18; rm -rf $R; mkdir -p $R
G='^gemv/int4_g(32|64|128)_f16a/cuda/(8192x8192|28672x8192)$'
OUT=$R bash ci/gpu.sh "$G|^gemv/f16/cublas/(8192x8192|28672x8192)$|^copy/d2d/" > $R/gpu.log 2>&1
grep -E "^cuda:|verify:|bench:|build:|FAIL" $R/gpu.log | head
grep -E "^\| " $R/summary.md
tar czf "$OUT/run18.tgz" -C /tmp run18
# every setting: verify of the _f16a and LoRA cuda kernels under it, then the six GEMVs (median us)
bash ci/gpu_cfgs.sh "$G" TENPAK_CUDA_X1=0 TENPAK_CUDA_X1=a TENPAK_CUDA_X1=b TENPAK_CUDA_X1=c TENPAK_CUDA_X1=d \
  TENPAK_CUDA_X1=e TENPAK_CUDA_X1=f TENPAK_CUDA_X1=l TENPAK_CUDA_X1=m TENPAK_CUDA_X1=n TENPAK_CUDA_X1=o \
  TENPAK_CUDA_X1=p TENPAK_CUDA_X1=i TENPAK_CUDA_GEMV_CFG=u TENPAK_CUDA_GEMV_CFG=v TENPAK_CUDA_GEMV_CFG=w \
  TENPAK_CUDA_X1=0 > $R/cfgs.txt 2>&1
cat $R/cfgs.txt | awk '/^==/{print; next} /passed|FAIL/{print "   " $0; next} {printf "   %-44s %s\n", $1, $3}'
tar czf "$OUT/run18.tgz" -C /tmp run18
P=/tmp/tenpak-deps/usr/lib/x86_64-linux-gnu; export LD_LIBRARY_PATH=$P:$P/openblas-pthread
T=build-gpu/tenpak
N=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null); echo "ncu: $N"
if [ -n "$N" ]; then
  for c in o p; do
    TENPAK_CUDA_X1=$c TENPAK_BENCH_GRAPH=0 timeout 60 $N -k regex:qmm_x1 -c 1 --section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats --section Occupancy --section LaunchStats --section SchedulerStats $T bench --filter '^gemv/int4_g128_f16a/cuda/28672x8192$' --min-time 0.001 --repetitions 1 > $R/ncu-x1$c.txt 2>&1
    echo "-- ncu x1 $c"; grep -E "Duration|DRAM Throughput|Theoretical Occupancy|Achieved Occupancy|Registers Per|Eligible Warps|Issued Warp|Warp Cycles Per Issued" $R/ncu-x1$c.txt | head -12
  done
fi
tar czf "$OUT/run18.tgz" -C /tmp run18
