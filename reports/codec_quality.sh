#!/usr/bin/env bash
# The codec quality table: the calibrated codecs against the uncalibrated ones at equal bits, on

# both shared models, WikiText-2 test, llama.cpp protocol, ctx 1024, the first 65,536 tokens.
#
#   bash reports/codec_quality.sh [TENPAK] [OUT_DIR]      (defaults: build/tenpak, reports/codec_quality)
#
# Every row: `tenpak compress` (calibrated codecs on the first 8192 tokens of the training corpus'
# brown.txt.gz, the default) then `tenpak eval --ctx 1024 --protocol llamacpp --max-tokens 65536`
# (paired: KLD and the PPL delta's 95% interval). Writes OUT_DIR/<model>__<codec>.json (eval's
# JSON), OUT_DIR/<model>__<codec>.compress.txt (the compress output, mixed plans included) and
# OUT_DIR/table.md, the table below made from those JSON files alone. gptq rows are added when
# `tenpak codecs` knows gptq. MODELS / CODECS / MAX_TOKENS in the environment override the lists.
set -eu
T="${1:-build/tenpak}"
OUT="${2:-reports/codec_quality}"
SHARED="${TENPAK_SHARED_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/shared}"
DATA="$SHARED/datasets/wikitext-2-raw/wiki.test.raw"
MAX_TOKENS="${MAX_TOKENS:-65536}"
MODELS="${MODELS:-llama-mini gpt2-mini}"
DEFAULT_CODECS="int4:g=128 awq:g=128,search=1 int4:g=64,refine=4 int4:g=32 int4:g=32,refine=4
  mixed:budget=4.5,awq=0 mixed:budget=4.5,awq=1 mixed:budget=5,awq=0 mixed:budget=5,awq=1"
if "$T" codecs 2>/dev/null | grep -q '^gptq'; then DEFAULT_CODECS="$DEFAULT_CODECS gptq:g=128 gptq:g=64 gptq:g=128,act_order=0
  gptq:g=128,act_order=1,damp=0.1 gptq:g=64,act_order=1,damp=0.1 gptq:g=32,act_order=0 nf4:g=32
  gptq:g=128,clip=1 gptq:g=64,clip=1"; fi
CODECS="${CODECS:-$DEFAULT_CODECS}"
mkdir -p "$OUT"
for m in $MODELS; do
  for c in $CODECS; do
    slug=$(echo "$c" | tr -c 'a-z0-9\n' '_')
    art="$OUT/${m}__${slug}.tpk"
    if [ -s "$OUT/${m}__${slug}.json" ]; then echo "$m $c: done before ($OUT/${m}__${slug}.json)"; continue; fi
    echo "$m $c: compress ..."
    start=$(date +%s.%N)
    "$T" compress --model "$SHARED/models/$m" --codec "$c" --out "$art" > "$OUT/${m}__${slug}.compress.txt" 2>&1
    end=$(date +%s.%N)
    echo "compress_seconds $(echo "$end - $start" | bc)" >> "$OUT/${m}__${slug}.compress.txt"
    echo "$m $c: eval ..."
    "$T" eval --artifact "$art" --data "$DATA" --ctx 1024 --protocol llamacpp --max-tokens "$MAX_TOKENS" \
      --json "$OUT/${m}__${slug}.json" > "$OUT/${m}__${slug}.eval.txt" 2>&1
    rm -f "$art"
    grep -E '^(ppl|kld) ' "$OUT/${m}__${slug}.eval.txt" || true
  done
done
python3 - "$OUT" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
rows = []
for f in sorted(glob.glob(os.path.join(out, "*__*.json"))):
    if os.path.basename(f).startswith("calib_check__"): continue
    j = json.load(open(f))
    comp = open(f[:-5] + ".compress.txt").read().split()
    secs = float(comp[comp.index("compress_seconds") + 1]) if "compress_seconds" in comp else float("nan")
    rows.append((os.path.basename(f).split("__")[0], j, secs))
lines = ["| model | codec | bits/weight | PPL | baseline PPL | PPL delta [95% interval] | KLD mean | top-1 % | compress s |",
         "|---|---|---|---|---|---|---|---|---|"]
for m, j, secs in sorted(rows, key=lambda r: (r[0], r[1]["bits_per_weight"], r[1]["ppl_delta_percent"])):
    lo, hi = j.get("ppl_delta_percent_ci95", [float("nan")] * 2)
    lines.append(f"| {m} | `{j['codec']}` | {j['bits_per_weight']:.4f} | {j['ppl']:.4f} | {j['baseline_ppl']:.4f} | "
                 f"{j['ppl_delta_percent']:+.2f}% [{lo:+.2f}, {hi:+.2f}] | {j.get('kld_mean', float('nan')):.5f} | "
                 f"{100 * j.get('top1_agreement', float('nan')):.2f} | {secs:.1f} |")
open(os.path.join(out, "table.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
