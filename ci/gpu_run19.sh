#!/bin/bash
# GPU run 19 (after run18 timed out in its sweep): qmm_x1 with a persistent grid (x staged once a
# block: kernels/cuda/int4_tc.cuh) against qmm_tc's default and its LOP3 decode ('u'), one machine:
#   rm -rf .gpu/src && mkdir -p .gpu/src && git archive HEAD | tar x -C .gpu/src && cp ci/gpu_run19.sh .gpu/run19.sh
#   device run: `TENPAK_GIT_COMMIT=<sha> bash .gpu/run19.sh`, carry .gpu/debs .gpu/cusparselt .gpu/src .gpu/run19.sh
# Results: $OUT/run19.tgz.
set -u
ROOT=$PWD; cd .gpu/src && ln -sfn "$ROOT/.gpu" .gpu
export TENPAK_GIT_COMMIT=${TENPAK_GIT_COMMIT:-unknown} TENPAK_GPU_REPS=3 TENPAK_GPU_MIN_TIME=0.05
R=/tmp/run19; rm -rf $R; mkdir -p $R
G='^gemv/int4_g(32|64|128)_f16a/cuda/(8192x8192|28672x8192)$'
OUT=$R TENPAK_GPU_SKIP_BENCH=1 bash ci/gpu.sh > $R/gpu.log 2>&1
grep -E "^cuda:|verify:|build:|FAIL" $R/gpu.log | head
P=/tmp/tenpak-deps/usr/lib/x86_64-linux-gnu; export LD_LIBRARY_PATH=$P:$P/openblas-pthread
T=build-gpu/tenpak
$T bench --filter '^gemv/f16/cublas/(8192x8192|28672x8192)$|^copy/d2d/' --min-time 0.05 --repetitions 3 > $R/base.txt 2>&1
grep -E "median|^copy|^gemv" $R/base.txt | grep -v -E '_(mean|stddev|cv|min|max)'
tar czf "$OUT/run19.tgz" -C /tmp run19
for c in TENPAK_CUDA_X1=0 TENPAK_CUDA_GEMV_CFG=u TENPAK_CUDA_X1=q TENPAK_CUDA_X1=p TENPAK_CUDA_X1=r TENPAK_CUDA_X1=s \
         TENPAK_CUDA_X1=t TENPAK_CUDA_X1=v TENPAK_CUDA_X1=b; do
  bash ci/gpu_cfgs.sh "$G" $c >> $R/cfgs.txt 2>&1
  tail -n 6 $R/cfgs.txt | awk '/^==/{print; next} /passed|FAIL/{print "   " $0; next} {printf "   %-44s %s\n", $1, $3}'
  tar czf "$OUT/run19.tgz" -C /tmp run19
done
