#!/bin/bash
# GPU run 22: (1) one ci/gpu.sh run with the model stage (bench-model --device cuda on llama-mini and on
# the synthetic TinyLlama-shaped checkpoint with the batch-1 defaults of 78bc4ae), benches of the INT4
# g128 GEMV/GEMM x16 against cuBLAS; (2) the Intel Xeon CPU's rANS decode of wiki.test.raw at scales
# 12..15 with scalar loads and with gathers (issue 15: the per-slot table at 13 is 32 KB, inside its
# 48 KB L1); (3) the GEMM x16 configurations with the LOP3 decode (TENPAK_CUDA_GEMM_CFG j..m) against
# 'a' (the default) and 'h'. Each setting verified before its bench (ci/gpu_cfgs.sh).
#   tar cf - -C .gpu/shared models datasets | xz -9 -T2 > .gpu/shared.tar.xz   (.gpu/shared as in ci/gpu.sh
#   --copy-shared; packed so that it fits the device tool's 64 MiB carry beside the tree and the debs)
#   device run, from the committed tree: `TENPAK_GIT_COMMIT=<sha> bash ci/gpu_run22.sh`, carry .gpu/debs .gpu/shared.tar.xz
# Results: $OUT/run22.tgz (written again after each part).
set -u
ROOT=$PWD
mkdir -p .gpu/shared && tar xJf .gpu/shared.tar.xz -C .gpu/shared
export TENPAK_GIT_COMMIT=${TENPAK_GIT_COMMIT:-unknown} TENPAK_GPU_REPS=3 TENPAK_GPU_MIN_TIME=0.05
R=/tmp/run22; rm -rf $R; mkdir -p $R
pack() { tar czf "$OUT/run22.tgz" -C /tmp run22; }
t0=$(date +%s)
OUT=$R TENPAK_SHARED_DIR="$ROOT/.gpu/shared" TENPAK_GPU_MODEL=1 TENPAK_GPU_TESTS='ppl_cuda/!(*gpt2*)' \
  bash ci/gpu.sh '^(gemv|gemm)/(int4_g128_f16a/cuda|f16/cublas)/(8192x8192|28672x8192)(x16)?$|^copy/d2d/' > $R/gpu.log 2>&1
echo "gpu.sh done at $(( $(date +%s) - t0 )) s"
grep -E "^cuda:|verify:|bench:|build:|FAIL|model tests|bench-model|tok|decode speed|vs fp" $R/gpu.log | head -40
grep -E "^\| " $R/summary.md
pack
P=/tmp/tenpak-deps/usr/lib/x86_64-linux-gnu; export LD_LIBRARY_PATH=$P:$P/openblas-pthread
T=build-gpu/tenpak
lscpu > $R/lscpu.txt; grep -E "Model name|^CPU\(s\)|L1d|L2" $R/lscpu.txt | head -4
W="$ROOT/.gpu/shared/datasets/wikitext-2-raw/wiki.test.raw"
for i in 1 2; do
  for s in 0 12 13 14 15; do
    for l in scalar gather; do
      sb=(); [ "$s" != 0 ] && sb=(--scale-bits $s)
      echo -n "round $i lookup $l scale ${s/#0/auto}: "
      TENPAK_RANS_LOOKUP=$l OMP_NUM_THREADS=1 taskset -c 2 $T entropy encode --coder rans "${sb[@]}" --repeat 5 "$W" /tmp/w.rans 2>&1 | tail -1 | grep -o -E "scale [0-9]+|[0-9]+ bytes, ratio [0-9.]+|decode [0-9.]* MB/s" | tr '\n' ' '; echo
    done
  done
done | tee $R/intel-rans.txt
echo "rans done at $(( $(date +%s) - t0 )) s"
pack
G='^gemm/int4_g128_f16a/cuda/(8192x8192|28672x8192)x16$'
for c in TENPAK_CUDA_GEMM_CFG=j TENPAK_CUDA_GEMM_CFG=k TENPAK_CUDA_GEMM_CFG=h TENPAK_CUDA_GEMM_CFG=l TENPAK_CUDA_GEMM_CFG=m; do
  bash ci/gpu_cfgs.sh "$G" $c >> $R/cfgs.txt 2>&1
  tail -n 4 $R/cfgs.txt | awk '/^==/{print; next} /passed|FAIL/{print "   " $0; next} {printf "   %-44s %s\n", $1, $3}'
  pack
done
echo "all done at $(( $(date +%s) - t0 )) s"
