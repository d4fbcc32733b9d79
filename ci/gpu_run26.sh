#!/bin/bash
# GPU machine run 26, its Intel Xeon CPU only (issue 15): the fused XXH64 of the rANS decoders (3e29787)
# against the build before it (39bb3df, a snapshot in .gpu/old), same machine, ten rounds alternating
# the two binaries, each at the default (auto) and at the old default (scale 15, scalar loads),
# --repeat 15, one pinned thread. CPU-only builds (TENPAK_GPU_CUDA=OFF).
#   rm -rf .gpu/old && mkdir -p .gpu/old && git archive 39bb3df | tar x -C .gpu/old && rm -rf .gpu/old/reports
#   device run, from the committed tree: `TENPAK_GIT_COMMIT=<sha> bash ci/gpu_run26.sh`, carry .gpu/debs .gpu/wiki.test.raw .gpu/old
# Results: $OUT/run26.tgz.
set -u
ROOT=$PWD
export TENPAK_GIT_COMMIT=${TENPAK_GIT_COMMIT:-unknown}
R=/tmp/run26; rm -rf $R; mkdir -p $R/old
OUT=$R TENPAK_GPU_CUDA=OFF TENPAK_GPU_SKIP_BENCH=1 bash ci/gpu.sh > $R/gpu.log 2>&1
(cd .gpu/old && ln -sfn "$ROOT/.gpu" .gpu && OUT=$R/old TENPAK_GIT_COMMIT=39bb3df TENPAK_GPU_CUDA=OFF TENPAK_GPU_SKIP_BENCH=1 bash ci/gpu.sh > $R/old/gpu.log 2>&1)
grep -E "build:|FAIL" $R/gpu.log $R/old/gpu.log | head -4
P=/tmp/tenpak-deps/usr/lib/x86_64-linux-gnu; export LD_LIBRARY_PATH=$P:$P/openblas-pthread
lscpu > $R/lscpu.txt
W="$ROOT/.gpu/wiki.test.raw"
for i in $(seq 1 10); do
  echo -n "round $i load $(cut -d' ' -f1 /proc/loadavg): "
  for cfg in "new auto 0" "old auto 0" "new scalar 15" "old scalar 15"; do
    set -- $cfg
    T=build-gpu/tenpak; [ "$1" = old ] && T=.gpu/old/build-gpu/tenpak
    echo -n "$1:$2@$3 "; sb=(); [ "$3" != 0 ] && sb=(--scale-bits $3)
    TENPAK_RANS_LOOKUP=$2 OMP_NUM_THREADS=1 taskset -c 3 $T entropy encode --coder rans "${sb[@]}" --repeat 15 "$W" /tmp/w.rans 2>&1 | tail -1 | grep -o -E "decode [0-9.]* MB/s" | grep -o -E "[0-9.]+ " | tr -d '\n'
  done
  echo
done | tee $R/intel-rans.txt
tar czf "$OUT/run26.tgz" -C /tmp run26
