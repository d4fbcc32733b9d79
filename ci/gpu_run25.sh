#!/bin/bash
# GPU machine run 25, its Intel Xeon CPU only (issue 15): the rANS decoders with the XXH64 of the output
# fused into them (kernels/cpu/rans_cpu.h; on Zen 4 +10% at the default scale), ten rounds alternating
# the default (auto: scale 13, gathers on Intel), scalar loads at 13 and the old default (scale 15, scalar
# loads), --repeat 15 each, one pinned thread. A CPU-only build (TENPAK_GPU_CUDA=OFF).
#   device run, from the committed tree: `TENPAK_GIT_COMMIT=<sha> bash ci/gpu_run25.sh`, carry .gpu/debs .gpu/wiki.test.raw (a copy of ../shared/datasets/wikitext-2-raw/wiki.test.raw)
# Results: $OUT/run25.tgz.
set -u
ROOT=$PWD

export TENPAK_GIT_COMMIT=${TENPAK_GIT_COMMIT:-unknown}
R=/tmp/run25; rm -rf $R; mkdir -p $R
OUT=$R TENPAK_GPU_CUDA=OFF TENPAK_GPU_SKIP_BENCH=1 bash ci/gpu.sh > $R/gpu.log 2>&1
grep -E "build:|FAIL" $R/gpu.log | head -3
P=/tmp/tenpak-deps/usr/lib/x86_64-linux-gnu; export LD_LIBRARY_PATH=$P:$P/openblas-pthread
T=build-gpu/tenpak
lscpu > $R/lscpu.txt
cmake --build build-gpu -j 16 --target test_entropy > $R/build-test.log 2>&1 && build-gpu/test_entropy -j4 > $R/test_entropy.txt 2>&1
echo "test_entropy on this CPU: rc=$? $(grep Synthesis $R/test_entropy.txt)"
W="$ROOT/.gpu/wiki.test.raw"
for i in $(seq 1 10); do
  echo -n "round $i load $(cut -d' ' -f1 /proc/loadavg): "
  for cfg in "auto 0" "scalar 13" "scalar 15" "gather 12"; do
    set -- $cfg
    echo -n "$1@$2 "; sb=(); [ "$2" != 0 ] && sb=(--scale-bits $2)
    TENPAK_RANS_LOOKUP=$1 OMP_NUM_THREADS=1 taskset -c 3 $T entropy encode --coder rans "${sb[@]}" --repeat 15 "$W" /tmp/w.rans 2>&1 | tail -1 | grep -o -E "decode [0-9.]* MB/s" | grep -o -E "[0-9.]+ " | tr -d '\n'
  done
  echo
done | tee $R/intel-rans.txt
tar czf "$OUT/run25.tgz" -C /tmp run25
