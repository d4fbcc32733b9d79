#!/bin/bash
# GPU machine run 21, its Intel Xeon CPU only (issue 15): the rANS decoders of wiki.test.raw at the
# auto scale (15: two-level scalar lookups or the per-slot gather) and at scale 12 (the AVX2
# decoder's scalar loads or the new one-vpgatherdd-per-vector decoder, kernels/cpu/avx512/
# rans_avx512_body.h), one pinned thread; and the registry's rans_dec cpu-scalar / cpu-gather
# benches. A CPU-only build (TENPAK_GPU_CUDA=OFF) to fit the session's last device minutes:
#   rm -rf .gpu/src && mkdir -p .gpu/src && git archive HEAD | tar x -C .gpu/src
#   cp ../shared/datasets/wikitext-2-raw/wiki.test.raw .gpu/ && cp ci/gpu_run21.sh .gpu/run21.sh
#   device run: `TENPAK_GIT_COMMIT=<sha> bash .gpu/run21.sh`, carry .gpu/debs .gpu/src .gpu/wiki.test.raw .gpu/run21.sh
# Results: $OUT/run21.tgz.
set -u
ROOT=$PWD; cd .gpu/src && ln -sfn "$ROOT/.gpu" .gpu
export TENPAK_GIT_COMMIT=${TENPAK_GIT_COMMIT:-unknown}
R=/tmp/run21; rm -rf $R; mkdir -p $R
OUT=$R TENPAK_GPU_CUDA=OFF TENPAK_GPU_SKIP_BENCH=1 bash ci/gpu.sh > $R/gpu.log 2>&1
grep -E "build:|FAIL" $R/gpu.log | head -5
P=/tmp/tenpak-deps/usr/lib/x86_64-linux-gnu; export LD_LIBRARY_PATH=$P:$P/openblas-pthread
T=build-gpu/tenpak
lscpu > $R/lscpu.txt; grep -E "Model name|^CPU\(s\)|MHz" $R/lscpu.txt | head -4
W="$ROOT/.gpu/wiki.test.raw"
for i in 1 2; do
  for cfg in "scalar 0 -" "gather 0 -" "scalar 12 -" "gather 12 -" "scalar 12 1"; do
    set -- $cfg
    sb=(); [ "$2" != 0 ] && sb=(--scale-bits $2)
    echo -n "round $i lookup $1 scale ${2/0/auto} narrow512 $3: "
    n512=; [ "$3" = 1 ] && n512=1
    TENPAK_RANS_NARROW512=$n512 TENPAK_RANS_LOOKUP=$1 OMP_NUM_THREADS=1 taskset -c 2 $T entropy encode --coder rans "${sb[@]}" --repeat 5 "$W" /tmp/w.rans 2>&1 | tail -1 | grep -o -E "scale [0-9]+|[0-9]+ bytes, ratio [0-9.]+|decode [0-9.]* MB/s" | tr '\n' ' '; echo
  done
done | tee $R/intel-rans.txt
tar czf "$OUT/run21.tgz" -C /tmp run21
OMP_NUM_THREADS=1 taskset -c 2 $T bench --filter '^rans_dec/o0_(bytes|nib)(_s15)?/cpu(-scalar|-gather)?/1048576$' --repetitions 3 > $R/intel-rans-bench.txt 2>&1
grep -E "^rans" $R/intel-rans-bench.txt | grep -v -E "_(mean|stddev|cv|min|max)"
tar czf "$OUT/run21.tgz" -C /tmp run21
