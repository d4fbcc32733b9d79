#!/bin/bash
# The GPU machine's Intel Xeon CPU for issue 15 (run17): the rANS decoder's two lookups (scalar, the
# AMD default; gather, the Intel default; gather at the plain AVX-512 level, without the vpermb
# renormalisation), the INT4 g128 GEMV against OpenBLAS sgemv (SkylakeX kernels) after the
# prefetch and row-range changes, and whether the kernel mitigates Gather Data Sampling (which
# makes gathers slow). Builds a snapshot of the tree with ci/gpu.sh's dependency prefix, the
# model stage and GPU bench skipped:
#   rm -rf .gpu/src && mkdir -p .gpu/src && git archive HEAD | tar x -C .gpu/src
#   cp ../shared/datasets/wikitext-2-raw/wiki.test.raw .gpu/ && cp ci/gpu_run17.sh .gpu/run17.sh
#   device run: `TENPAK_GIT_COMMIT=<sha> bash .gpu/run17.sh`, carry .gpu/debs .gpu/cusparselt .gpu/src
#   .gpu/wiki.test.raw .gpu/run17.sh
# Results: $OUT/run17.tgz.
set -u
ROOT=$PWD; cd .gpu/src && ln -sfn "$ROOT/.gpu" .gpu
export TENPAK_GIT_COMMIT=${TENPAK_GIT_COMMIT:-unknown}
R=/tmp/run17; rm -rf $R; mkdir -p $R
OUT=$R TENPAK_GPU_SKIP_BENCH=1 bash ci/gpu.sh > $R/gpu.log 2>&1
grep -E "^cuda:|build:|FAIL" $R/gpu.log | head -5
P=/tmp/tenpak-deps/usr/lib/x86_64-linux-gnu; export LD_LIBRARY_PATH=$P:$P/openblas-pthread
T=build-gpu/tenpak
lscpu > $R/lscpu.txt; grep -E "Model name|^CPU\(s\)" $R/lscpu.txt
for f in gather_data_sampling; do echo "$f: $(cat /sys/devices/system/cpu/vulnerabilities/$f 2>/dev/null)"; done | tee $R/vuln.txt
W="$ROOT/.gpu/wiki.test.raw"
for i in 1 2 3; do
  for cfg in "scalar avx512vbmi" "gather avx512vbmi" "gather avx512"; do
    set -- $cfg
    echo -n "$1@$2: "; TENPAK_RANS_LOOKUP=$1 TENPAK_ISA=$2 OMP_NUM_THREADS=1 taskset -c 2 $T entropy encode --coder rans --repeat 7 "$W" /tmp/w.rans 2>&1 | tail -1 | grep -o "decode [0-9.]* MB/s"
  done
done | tee $R/intel-rans.txt
tar czf "$OUT/run17.tgz" -C /tmp run17
for i in 1 2 3; do
  OPENBLAS_CORETYPE=SkylakeX OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 taskset -c 2,3 $T bench --filter '^gemv/(f32/openblas|int4_g128/cpu)/4096x4096$' --repetitions 5 --json $R/intel-gemv-$i.json > $R/intel-gemv-$i.txt 2>&1
  grep -E "^gemv|x vs" $R/intel-gemv-$i.txt
done
OMP_NUM_THREADS=1 taskset -c 2 $T bench --filter '^rans_dec/o0_(bytes|nib)_s15/cpu' --repetitions 3 > $R/intel-rans-bench.txt 2>&1; grep -E "^rans" $R/intel-rans-bench.txt
tar czf "$OUT/run17.tgz" -C /tmp run17
