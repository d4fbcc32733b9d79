#!/usr/bin/env bash
# Decode and prefill speed and peak RSS of one shared model compressed by every codec family, in one
# `tenpak bench-model` run (fp32 and fp16 rows beside them), on the machine it runs on:
#
#   bash reports/bench_model_families.sh [MODEL] [OUT.json]
#     MODEL  a folder of ../shared/models (default llama-mini)
#     OUT    the Google Benchmark JSON (default reports/results/bench-model-<model>-families.json)
#
# Artifacts go to $TENPAK_FAMILIES_DIR (default /tmp/tenpak-families-<model>) and are reused when
# they exist (delete the folder to compress again). Every artifact compresses the linear weights and
# the embeddings (--compress-embeddings). Environment: TENPAK (the binary, default build/tenpak),
# REPS (repetitions, default 5), TENPAK_SHARED_DIR (default ../shared beside the checkout).
# Run it on an otherwise idle machine: the rows are timed one after another.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-llama-mini}
SHARED=${TENPAK_SHARED_DIR:-$(cd .. && pwd)/shared}
OUT=${2:-reports/results/bench-model-$MODEL-families.json}
TP=${TENPAK:-build/tenpak}
DIR=${TENPAK_FAMILIES_DIR:-/tmp/tenpak-families-$MODEL}
mkdir -p "$DIR"
CODECS=(
  "int4:g=128"
  "int4:g=32,refine=4"
  "int4r2:g=16"
  "nf4:g=64"
  "awq:g=128,search=1"
  "mixed:budget=4.5"
  "vq:d=4,k=256"
  "vq:d=8,k=256+int4:g=32"
  "lowrank:r=64"
  "tenpakx"
  "sparse24:v=16,g=64"
  "sparse24:v=4,g=128"
)
args=()
for c in "${CODECS[@]}"; do
  f="$DIR/$(printf '%s' "$c" | tr ':,=+' '____').tpk"
  if [ ! -s "$f" ]; then
    echo "compress $c -> $f" >&2
    "$TP" compress --model "$SHARED/models/$MODEL" --codec "$c" --compress-embeddings --out "$f" > "$f.log"
  fi
  args+=(--artifact "$f")
done
"$TP" bench-model --model "$SHARED/models/$MODEL" "${args[@]}" --repetitions "${REPS:-5}" --json "$OUT"
