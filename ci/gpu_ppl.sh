#!/usr/bin/env bash
# GPU perplexity check (the same perplexity as the CPU path to a relative 1e-4, tokens/s
# reported): `tenpak ppl --device cpu` and `--device cuda` on both shared models, the first
# N tokens (default 8192) of WikiText-2 test, side by side with the 8192-token goldens of
# datasets/goldens/ (transformers, fp32) when N is 8192.
#
#   TENPAK_SHARED_DIR=.gpu/shared bash ci/gpu_ppl.sh build-gpu/tenpak [--test]
#
# Run after ci/gpu.sh has built build-gpu/tenpak (its private dependency prefix, default
# /tmp/tenpak-deps, is put on LD_LIBRARY_PATH when present). TENPAK_SHARED_DIR holds
# models/{gpt2-mini,llama-mini}/ and datasets/wikitext-2-raw/wiki.test.raw, laid out as ../shared.
# --test also builds and runs the Criterion suite test_pipeline_ppl_cuda in the binary's build
# folder. Also `tenpak eval --device cpu|cuda` of an int4:g=128 llama-mini artifact (2048 tokens):
# the codec's weights must replace the uploaded ones. Results (JSON and console output of every run) in $OUT/ppl (default reports/gpu/out/ppl).
# Exit status 0 only if every run worked and every cuda/cpu relative difference is <= 1e-4.
set -uo pipefail
cd "$(dirname "$0")/.."
T=${1:-}
S=${TENPAK_SHARED_DIR:-}
if [ -z "$T" ] || [ -z "$S" ]; then
    echo "usage: TENPAK_SHARED_DIR=DIR bash ci/gpu_ppl.sh path/to/tenpak [--test]" >&2
    exit 2
fi
[ -x "$T" ] || { echo "gpu_ppl: $T is not an executable: run ci/gpu.sh first" >&2; exit 1; }
DATA=$S/datasets/wikitext-2-raw/wiki.test.raw
[ -r "$DATA" ] || { echo "gpu_ppl: $DATA missing (TENPAK_SHARED_DIR=$S)" >&2; exit 1; }
MAXTOK=${TENPAK_PPL_MAX_TOKENS:-8192}
O=${OUT:-reports/gpu/out}/ppl
mkdir -p "$O"

P=${TENPAK_GPU_PREFIX:-/tmp/tenpak-deps}
L=$P/usr/lib/x86_64-linux-gnu
if [ -d "$L" ]; then # the same environment as ci/gpu.sh's build
    export LD_LIBRARY_PATH=$L:$L/openblas-pthread:$P/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    export PKG_CONFIG_SYSROOT_DIR=$P PKG_CONFIG_LIBDIR=$L/pkgconfig:$P/usr/share/pkgconfig
    export CPATH=$P/usr/include:$P/usr/include/x86_64-linux-gnu${CPATH:+:$CPATH}
fi
export TENPAK_SHARED_DIR=$S

echo "gpu_ppl: $(date -u +%Y-%m-%dT%H:%M:%SZ) $T, $MAXTOK tokens of $DATA"
"$T" list 2>/dev/null | grep '^cuda' || true
fail=0
MODELS=${TENPAK_PPL_MODELS:-gpt2-mini llama-mini} # the models carried to the GPU machine
for m in $MODELS; do
    for dev in cpu cuda; do
        base=$O/ppl_${m}_${dev}
        if ! "$T" ppl --model "$S/models/$m" --data "$DATA" --max-tokens "$MAXTOK" --device "$dev" \
            --json "$base.json" > "$base.txt" 2>&1; then
            echo "FAIL: tenpak ppl --model $m --device $dev:"; tail -n 5 "$base.txt"; fail=1
        fi
    done
done

python3 - "$O" "$MAXTOK" $MODELS <<'PY' || fail=1
import json, os, sys
out, maxtok = sys.argv[1], int(sys.argv[2])
bad, dev_name, threads = 0, "?", "?"
print(f"| model | cpu ppl | cuda ppl | rel diff (bound 1e-4) | golden rel (cuda) | cpu tok/s | cuda tok/s | cuda/cpu |")
print("|---|---|---|---|---|---|---|---|")
for m in sys.argv[3:]:
    try:
        c = json.load(open(f"{out}/ppl_{m}_cpu.json"))
        g = json.load(open(f"{out}/ppl_{m}_cuda.json"))
    except (OSError, ValueError) as e:
        print(f"| {m} | missing result: {e} |"); bad = 1; continue
    dev_name, threads = g.get("device_name", "?"), c.get("threads", "?")
    rel = abs(g["ppl"] - c["ppl"]) / c["ppl"]
    gold = "-"
    gp = f"datasets/goldens/{m}/ppl_prefix8192.json"
    if maxtok == 8192 and os.path.exists(gp):
        gppl = json.load(open(gp))["ppl"]
        gold = f"{abs(g['ppl'] - gppl) / gppl:.2e}"
    ok = rel <= 1e-4 and g["scored_tokens"] == c["scored_tokens"]
    bad |= not ok
    print(f"| {m} | {c['ppl']:.6f} | {g['ppl']:.6f} | {rel:.2e} {'ok' if ok else 'FAIL'} | {gold} | "
          f"{c['tokens_per_s']:.0f} | {g['tokens_per_s']:.0f} | {g['tokens_per_s'] / c['tokens_per_s']:.1f}x |")
print(f"cuda device: {dev_name}; cpu threads: {threads}; tok/s = scored tokens / wall seconds of the windows "
      "(weights uploaded before the clock starts)")
sys.exit(1 if bad else 0)
PY

# tenpak eval --device: the compressed weights replace the uploaded ones (re-upload after overrides)
ART=$O/llama-mini-int4g128.tpk
if "$T" compress --model "$S/models/llama-mini" --codec int4:g=128 --out "$ART" > "$O/compress.txt" 2>&1; then
    for dev in cpu cuda; do
        "$T" eval --artifact "$ART" --model "$S/models/llama-mini" --data "$DATA" --max-tokens 2048 --device "$dev" \
            --json "$O/eval_${dev}.json" > "$O/eval_${dev}.txt" 2>&1 || { echo "FAIL: tenpak eval --device $dev"; tail -n 5 "$O/eval_${dev}.txt"; fail=1; }
    done
    python3 - "$O" <<'PY' || fail=1
import json, sys
try:
    c, g = (json.load(open(f"{sys.argv[1]}/eval_{d}.json")) for d in ("cpu", "cuda"))
except (OSError, ValueError) as e:
    print(f"eval: missing result: {e}"); sys.exit(1)
rel = max(abs(g[k] - c[k]) / c[k] for k in ("ppl", "baseline_ppl"))
print(f"eval llama-mini int4:g=128, 2048 tokens: ppl cpu {c['ppl']:.6f} cuda {g['ppl']:.6f}, baseline cpu "
      f"{c['baseline_ppl']:.6f} cuda {g['baseline_ppl']:.6f}: max rel diff {rel:.2e} {'ok' if rel <= 1e-4 else 'FAIL'}")
sys.exit(0 if rel <= 1e-4 else 1)
PY
    rm -f "$ART"
else
    echo "FAIL: tenpak compress (see $O/compress.txt)"; fail=1
fi

if [ "${2:-}" = "--test" ]; then
    B=$(dirname "$T")
    if cmake --build "$B" --target test_pipeline_ppl_cuda > "$O/test_build.log" 2>&1; then
        "$B/test_pipeline_ppl_cuda" --jobs 1 --verbose > "$O/test.txt" 2>&1 || fail=1
        grep -E '^\[(PASS|FAIL|SKIP|----)\]|Synthesis|ppl cpu|first window' "$O/test.txt"
    else
        echo "FAIL: building test_pipeline_ppl_cuda (see $O/test_build.log)"; tail -n 20 "$O/test_build.log"; fail=1
    fi
fi
exit $fail
