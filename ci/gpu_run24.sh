#!/bin/bash
# GPU machine run 24, its Intel Xeon CPU only (issue 15): is the gather decoder at scale 13 faster than
# scalar loads there? run22 said yes (784 / 765 against 643 / 293 MB/s), run23's rounds disagreed
# (937 against 747, then 442 / 474 against 569 / 669). Here ten rounds alternating the two, --repeat 15
# each, one pinned thread, the load average beside each round; gathers at 12 and scalar loads at 15
# for reference. A CPU-only build (TENPAK_GPU_CUDA=OFF).
#   device run, from the committed tree: `TENPAK_GIT_COMMIT=<sha> bash ci/gpu_run24.sh`, carry .gpu/debs .gpu/wiki.test.raw (a copy of ../shared/datasets/wikitext-2-raw/wiki.test.raw)
# Results: $OUT/run24.tgz.
set -u
ROOT=$PWD

export TENPAK_GIT_COMMIT=${TENPAK_GIT_COMMIT:-unknown}
R=/tmp/run24; rm -rf $R; mkdir -p $R
OUT=$R TENPAK_GPU_CUDA=OFF TENPAK_GPU_SKIP_BENCH=1 bash ci/gpu.sh > $R/gpu.log 2>&1
grep -E "build:|FAIL" $R/gpu.log | head -3
P=/tmp/tenpak-deps/usr/lib/x86_64-linux-gnu; export LD_LIBRARY_PATH=$P:$P/openblas-pthread
T=build-gpu/tenpak
lscpu > $R/lscpu.txt
W="$ROOT/.gpu/wiki.test.raw"
for i in $(seq 1 10); do
  echo -n "round $i load $(cut -d' ' -f1 /proc/loadavg): "
  for cfg in "gather 13" "scalar 13" "gather 12" "scalar 15"; do
    set -- $cfg
    echo -n "$1@$2 "
    TENPAK_RANS_LOOKUP=$1 OMP_NUM_THREADS=1 taskset -c 3 $T entropy encode --coder rans --scale-bits $2 --repeat 15 "$W" /tmp/w.rans 2>&1 | tail -1 | grep -o -E "decode [0-9.]* MB/s" | grep -o -E "[0-9.]+ " | tr -d '\n'
  done
  echo
done | tee $R/intel-rans.txt
tar czf "$OUT/run24.tgz" -C /tmp run24
