#!/usr/bin/env bash
# Build, verify and benchmark the CUDA backend on a GPU machine, in one call.
#
#   bash ci/gpu.sh [bench-filter]        results in $OUT (default reports/gpu/out)
#
# The GPU machine is bare (CUDA 13 and PyTorch, no Debian -dev packages): the libraries the build
# needs travel as Debian .deb files in .gpu/debs/ (git-ignored; fetch them on a Debian 12 machine
# with ci/gpu.sh --fetch-debs) and are unpacked with dpkg -x into a private prefix, never into /.
# Then: configure with the backend ON, build the CLI, `tenpak list`, `tenpak verify --self-test` on
# every cuda / cuda-simt / cublas kernel, `tenpak bench` on the GPU kernels and their baselines in
# one run (JSON), and a summary table against the GPU targets (ci/gpu_summary.py).
set -uo pipefail
cd "$(dirname "$0")/.."
DEBS=(libcjson1 libcjson-dev libzstd-dev libzstd1 libxxhash0 libxxhash-dev libpcre2-dev libpcre2-8-0
      libpcre2-16-0 libpcre2-32-0 libpcre2-posix3 libopenblas0 libopenblas0-pthread libopenblas-dev
      libopenblas-pthread-dev liblapacke liblapacke-dev libtmglib3 libgfortran5 libquadmath0
      libcriterion3 libcriterion-dev libnanomsg5 libgit2-1.5 libhttp-parser2.9 libmbedtls14
      libmbedx509-1 libmbedcrypto7 libssh2-1 pkgconf pkgconf-bin pkg-config libpkgconf3 zlib1g zlib1g-dev)
if [ "${1:-}" = "--fetch-debs" ]; then
    # the -dev packages are repacked without their static .a libraries (the build links shared), so
    # that .gpu and a model fit the device tool's 64 MiB carry
    set -e
    mkdir -p .gpu/debs && (cd .gpu/debs && apt-get download "${DEBS[@]}")
    t=$(mktemp -d)
    for f in .gpu/debs/*-dev_*.deb; do
        rm -rf "$t/x" && dpkg-deb -R "$f" "$t/x" && find "$t/x" -name '*.a' -delete && dpkg-deb -Zxz -b "$t/x" "$f" > /dev/null
    done
    rm -rf "$t"
    du -sh .gpu/debs
    exit 0
fi
# a copy of what the model stage needs from ../shared (llama-mini without goldens, WikiText-2 test),
# in its layout, to carry as .gpu/shared (TENPAK_SHARED_DIR=.gpu/shared on the GPU machine)
if [ "${1:-}" = "--copy-shared" ]; then
    set -e
    src=${TENPAK_SHARED_DIR:-../shared}
    mkdir -p .gpu/shared/models/llama-mini .gpu/shared/datasets/wikitext-2-raw
    cp "$src"/models/llama-mini/*.json "$src"/models/llama-mini/*.safetensors .gpu/shared/models/llama-mini/
    cp "$src"/datasets/wikitext-2-raw/wiki.test.raw .gpu/shared/datasets/wikitext-2-raw/
    du -sh .gpu/shared
    exit 0
fi
# cuSPARSELt header for the cusparselt baseline (the library itself is dlopen'ed from the GPU
# machine's PyTorch install): fetch on a machine with PyPI access, then carry .gpu
if [ "${1:-}" = "--fetch-cusparselt" ]; then
    set -e
    mkdir -p .gpu/cusparselt/include .gpu/cusparselt/whl
    pip download --no-deps -d .gpu/cusparselt/whl nvidia-cusparselt-cu13 ||
        pip download --no-deps -d .gpu/cusparselt/whl nvidia-cusparselt-cu12
    for w in .gpu/cusparselt/whl/*.whl; do
        python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); [open(sys.argv[2] + "/" + n.rsplit("/", 1)[1], "wb").write(z.read(n)) for n in z.namelist() if n.endswith(".h")]' "$w" .gpu/cusparselt/include
    done
    rm -rf .gpu/cusparselt/whl
    ls .gpu/cusparselt/include
    exit 0
fi
FILTER=${1:-'^(gemv|gemm)/[a-z0-9_]*_f16a/|/cublas/|^copy/d2d/|^(dequant|gemv)/int4_g128/cuda/'}
OUT=${OUT:-reports/gpu/out}
mkdir -p "$OUT"
exec > >(tee "$OUT/run.log") 2>&1
# the device machine gets the working tree without .git: pass TENPAK_GIT_COMMIT for provenance
commit=${TENPAK_GIT_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
echo "ci/gpu.sh: $(date -u +%Y-%m-%dT%H:%M:%SZ) commit $commit; bench filter '$FILTER'"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader || true
[ -d /usr/local/cuda/bin ] && export PATH=/usr/local/cuda/bin:$PATH
nvcc --version | tail -1

# ---- dependencies: system ones if present, else the carried .deb files ----
CMAKE_EXTRA=()
if [ -n "${TENPAK_GPU_FORCE_DEBS:-}" ] || ! pkg-config --exists libcjson libzstd libxxhash libpcre2-8 openblas lapacke criterion zlib 2>/dev/null; then
    P=${TENPAK_GPU_PREFIX:-/tmp/tenpak-deps}
    L=$P/usr/lib/x86_64-linux-gnu
    ls .gpu/debs/*.deb >/dev/null 2>&1 || { echo "no .gpu/debs/*.deb: run ci/gpu.sh --fetch-debs on Debian 12 and carry .gpu"; exit 1; }
    mkdir -p "$P"
    for f in .gpu/debs/*.deb; do dpkg -x "$f" "$P"; done
    # Criterion's own .pc lists private requirements (libgit2, nanomsg, ...) that only matter for
    # static links; the GPU run builds the CLI, not the suites.
    cat > "$L/pkgconfig/criterion.pc" <<PC
prefix=/usr
includedir=\${prefix}/include
libdir=\${prefix}/lib/x86_64-linux-gnu
Name: criterion
Description: Criterion (carried .deb, private requirements dropped)
Version: 2.4.1
Libs: -L\${libdir} -lcriterion
Cflags: -I\${includedir}
PC
    # Debian names BLAS/LAPACK through alternatives, which dpkg -x does not set up
    ln -sf ../openblas-pthread/pkgconfig/openblas.pc "$L/pkgconfig/openblas.pc"
    ln -sf ../openblas-pthread/pkgconfig/lapack-openblas.pc "$L/pkgconfig/lapack.pc"
    ln -sf ../openblas-pthread/pkgconfig/blas-openblas.pc "$L/pkgconfig/blas.pc"
    export PKG_CONFIG_SYSROOT_DIR=$P
    export PKG_CONFIG_LIBDIR=$L/pkgconfig:$P/usr/share/pkgconfig
    export LD_LIBRARY_PATH=$L:$L/openblas-pthread:$P/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    export CPATH=$P/usr/include:$P/usr/include/x86_64-linux-gnu${CPATH:+:$CPATH}
    PKGCONF=$P/usr/bin/pkgconf
    CMAKE_EXTRA+=(-DPKG_CONFIG_EXECUTABLE=$PKGCONF)
    echo "deps: $(ls .gpu/debs/*.deb | wc -l) .deb files unpacked into $P"
fi

if [ -f .gpu/cusparselt/include/cusparseLt.h ]; then echo "cusparselt: header carried (.gpu/cusparselt/include)"
else echo "cusparselt: no .gpu/cusparselt/include/cusparseLt.h (ci/gpu.sh --fetch-cusparselt): baseline not built"; fi

# ---- build ----
B=${TENPAK_GPU_BUILD:-build-gpu}
t0=$(date +%s)
mkdir -p "$B"
# TENPAK_GPU_CUDA=OFF: the CPU build alone (the GPU machine's CPU measured by itself, e.g. run21)
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release -DTENPAK_CUDA=${TENPAK_GPU_CUDA:-ON} "${CMAKE_EXTRA[@]}" > "$B/build.log" 2>&1 &&
    cmake --build "$B" -j "$(nproc)" --target tenpak >> "$B/build.log" 2>&1
rc=$?
echo "build: rc=$rc in $(( $(date +%s) - t0 )) s"
if [ $rc -ne 0 ]; then cp "$B/build.log" "$OUT/"; tail -n 40 "$B/build.log"; exit $rc; fi
T=$B/tenpak

# ---- list, verify, bench ----
$T list > "$OUT/list.txt"; grep '^cuda' "$OUT/list.txt"
vrc=0; brc=0
if [ -z "${TENPAK_GPU_SKIP_BENCH:-}" ]; then # TENPAK_GPU_SKIP_BENCH=1: the model stage only
t0=$(date +%s)
$T verify --self-test --filter '/(cuda[a-z0-9-]*|cublas|cusparselt)/' --json "$OUT/verify.json" > "$OUT/verify.txt" 2>&1
vrc=$?
echo "verify: rc=$vrc in $(( $(date +%s) - t0 )) s; $(grep -c PASS "$OUT/verify.txt") PASS, $(grep -c FAIL "$OUT/verify.txt") FAIL"
grep -E 'FAIL|skipped|ACCEPTED' "$OUT/verify.txt" | head -n 30
# the same kernels as bench times them: the output of a replayed graph (state kept across runs)
t0=$(date +%s)
$T verify --graph --filter '/(cuda[a-z0-9-]*|cublas|cusparselt)/' > "$OUT/verify-graph.txt" 2>&1
r=$?; vrc=$(( vrc || r ))
echo "verify --graph: rc=$r in $(( $(date +%s) - t0 )) s; $(grep -c PASS "$OUT/verify-graph.txt") PASS, $(grep -c FAIL "$OUT/verify-graph.txt") FAIL, $(grep -c 'no graph' "$OUT/verify-graph.txt") without a graph"
grep -E 'FAIL' "$OUT/verify-graph.txt" | head -n 30
t0=$(date +%s)
$T bench --filter "$FILTER" --min-time ${TENPAK_GPU_MIN_TIME:-0.1} --repetitions ${TENPAK_GPU_REPS:-5} \
    --json "$OUT/bench.json" > "$OUT/bench.txt" 2>&1
brc=$?
echo "bench: rc=$brc in $(( $(date +%s) - t0 )) s"
python3 ci/gpu_summary.py "$OUT/bench.json" "$OUT/verify.txt" > "$OUT/summary.md"
cat "$OUT/summary.md"
fi

# ---- the model on the GPU (TENPAK_GPU_MODEL=1): the device tests of the model path, then
# bench-model --device cuda on llama-mini (fp32, fp16, int4 g128 packed) and, when numpy is there,
# on a synthetic checkpoint of TinyLlama-1.1B's shapes (datasets/make_synthetic_llama.py) ----
mrc=0
if [ -n "${TENPAK_GPU_MODEL:-}" ]; then
    S=${TENPAK_SHARED_DIR:-../shared}
    export TENPAK_SHARED_DIR=$S
    t0=$(date +%s)
    cmake --build "$B" -j "$(nproc)" --target test_pipeline_ppl_cuda >> "$B/build.log" 2>&1 &&
        "$B/test_pipeline_ppl_cuda" --verbose -j1 --filter "${TENPAK_GPU_TESTS:-*}" > "$OUT/model_tests.txt" 2>&1
    mrc=$?
    echo "model tests: rc=$mrc in $(( $(date +%s) - t0 )) s"
    grep -E '^\[(PASS|FAIL|SKIP|----)\]|Synthesis|info' "$OUT/model_tests.txt" | grep -v '^\[----\] *$' | head -n 60
    W=${TENPAK_GPU_WORK:-/tmp/tenpak-gpu-model}
    mkdir -p "$W"
    L=$S/models/llama-mini
    if [ -f "$L/config.json" ]; then
        $T compress --model "$L" --codec int4:g=128 --compress-embeddings --out "$W/llama-int4.tpk" > "$OUT/compress-llama.txt" 2>&1 &&
            $T bench-model --model "$L" --artifact "$W/llama-int4.tpk" --device cuda --repetitions 3 \
                --json "$OUT/bench-model-llama-mini.json" > "$OUT/bench-model-llama-mini.txt" 2>&1
        r=$?; mrc=$(( mrc || r )); echo "bench-model llama-mini --device cuda: rc=$r"; cat "$OUT/bench-model-llama-mini.txt"
    fi
    if [ -z "${TENPAK_GPU_NO_SYNTH:-}" ] && python3 -c 'import numpy' 2>/dev/null; then
        t0=$(date +%s)
        python3 datasets/make_synthetic_llama.py "$W/tinyllama-synth" --tokenizer-dir "$L" --force > "$OUT/synth.txt" 2>&1 &&
            echo "synthetic checkpoint written in $(( $(date +%s) - t0 )) s" &&
            $T compress --model "$W/tinyllama-synth" --codec int4:g=128 --compress-embeddings --out "$W/tl-int4.tpk" \
                > "$OUT/compress-tinyllama.txt" 2>&1 &&
            echo "compressed (int4 g128) by $(( $(date +%s) - t0 )) s" &&
            $T bench-model --model "$W/tinyllama-synth" --artifact "$W/tl-int4.tpk" --device cuda --repetitions 3 \
                --json "$OUT/bench-model-tinyllama-synth.json" > "$OUT/bench-model-tinyllama-synth.txt" 2>&1
        r=$?; mrc=$(( mrc || r )); echo "bench-model tinyllama-synth --device cuda: rc=$r in $(( $(date +%s) - t0 )) s"
        cat "$OUT/bench-model-tinyllama-synth.txt"
    else
        echo "bench-model tinyllama-synth: skipped (TENPAK_GPU_NO_SYNTH or no numpy)"
    fi
fi
exit $(( vrc || brc || mrc ))
