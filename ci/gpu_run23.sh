#!/bin/bash
# GPU run 23: (1) one ci/gpu.sh run of the INT4 benches with the defaults of 9ffd0b2 (GEMM x16 'k');
# (2) the Intel Xeon CPU's rANS decode of wiki.test.raw with the new auto scale (13) and lookup (gathers
# at <= 13 on Intel) against scalar loads, three rounds; (3) GEMV g128 8192^2 configurations with the
# LOP3 decode (TENPAK_CUDA_GEMV_CFG u, x, y, z) and GEMM x16 'n', each verified first (ci/gpu_cfgs.sh).
#   tar cf - -C .gpu/shared models datasets | xz -9 -T2 > .gpu/shared.tar.xz   (as for run22)
#   device run, from the committed tree: `TENPAK_GIT_COMMIT=<sha> bash ci/gpu_run23.sh`, carry .gpu/debs .gpu/shared.tar.xz .gpu/cusparselt
# Results: $OUT/run23.tgz (written again after each part).
set -u
ROOT=$PWD
mkdir -p .gpu/shared && tar xJf .gpu/shared.tar.xz -C .gpu/shared
export TENPAK_GIT_COMMIT=${TENPAK_GIT_COMMIT:-unknown} TENPAK_GPU_REPS=3 TENPAK_GPU_MIN_TIME=0.05
R=/tmp/run23; rm -rf $R; mkdir -p $R
pack() { tar czf "$OUT/run23.tgz" -C /tmp run23; }
t0=$(date +%s)
OUT=$R bash ci/gpu.sh '^(gemv|gemm)/int4_g(32|64|128)_f16a/cuda/(8192x8192|28672x8192)(x16)?$|^(gemv|gemm)/f16/cublas/(8192x8192|28672x8192)(x16)?$|^copy/d2d/|^gemv/(lora_int4_g128_r16/cuda|int4_g128/cuda)/4096x4096$' > $R/gpu.log 2>&1
echo "gpu.sh done at $(( $(date +%s) - t0 )) s"
grep -E "^cuda:|verify:|bench:|build:|FAIL" $R/gpu.log | head
grep -E "^\| |^- " $R/summary.md
pack
P=/tmp/tenpak-deps/usr/lib/x86_64-linux-gnu; export LD_LIBRARY_PATH=$P:$P/openblas-pthread
T=build-gpu/tenpak
lscpu > $R/lscpu.txt; grep -E "Model name|L1d" $R/lscpu.txt | head -2
W="$ROOT/.gpu/shared/datasets/wikitext-2-raw/wiki.test.raw"
for i in 1 2 3; do
  for cfg in "auto 0" "scalar 0" "scalar 15" "gather 12"; do
    set -- $cfg
    sb=(); [ "$2" != 0 ] && sb=(--scale-bits $2)
    echo -n "round $i lookup $1 scale ${2/#0/auto}: "
    TENPAK_RANS_LOOKUP=$1 OMP_NUM_THREADS=1 taskset -c 2 $T entropy encode --coder rans "${sb[@]}" --repeat 5 --json $R/e.json "$W" /tmp/w.rans 2>&1 | tail -1 | grep -o -E "scale [0-9]+|[0-9]+ bytes, ratio [0-9.]+|decode [0-9.]* MB/s" | tr '\n' ' '
    grep -o -E '"rans_lookup":[[:space:]]*"[a-z]+"' $R/e.json | tr '\n' ' '; echo
  done
done | tee $R/intel-rans.txt
echo "rans done at $(( $(date +%s) - t0 )) s"
pack
for c in TENPAK_CUDA_GEMV_CFG=u TENPAK_CUDA_GEMV_CFG=x TENPAK_CUDA_GEMV_CFG=y TENPAK_CUDA_GEMV_CFG=z; do
  bash ci/gpu_cfgs.sh '^gemv/int4_g128_f16a/cuda/8192x8192$' "TENPAK_CUDA_X1=0 $c" >> $R/cfgs.txt 2>&1
  tail -n 3 $R/cfgs.txt | awk '/^==/{print; next} /passed|FAIL/{print "   " $0; next} {printf "   %-44s %s\n", $1, $3}'
  pack
done
bash ci/gpu_cfgs.sh '^gemm/int4_g128_f16a/cuda/(8192x8192|28672x8192)x16$' TENPAK_CUDA_GEMM_CFG=n >> $R/cfgs.txt 2>&1
tail -n 4 $R/cfgs.txt | awk '/^==/{print; next} /passed|FAIL/{print "   " $0; next} {printf "   %-44s %s\n", $1, $3}'
pack
echo "all done at $(( $(date +%s) - t0 )) s"
