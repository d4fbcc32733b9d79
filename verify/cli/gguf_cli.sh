#!/usr/bin/env bash
# GGUF models: datasets/make_gguf.py (the `gguf` package) writes both shared models as F32 GGUF
# (llama-mini also as F16); `--model FILE.gguf` then gives the same token ids as the checkpoint's
# tokenizer.json (on the first 300 lines of WikiText-2 test here; the whole file matched the
# goldens when checked by hand) and the same perplexity (first 256 tokens) as
# `--model DIR`, bit for bit (the fp16 weights are exact in both; Q/K un-permuted exactly; the f32
# epsilons read back as the checkpoint's decimals). generate runs on a GGUF too, and eval measures
# a Q8_0 GGUF (the gguf package's quantiser) against the checkpoint.
# Skipped, saying so, when no python3 has numpy and gguf.
set -u
T="$1"; S="$2"; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
G="$(cd "$(dirname "$0")/../.." && pwd)/datasets/make_gguf.py"
PY=""
for p in python3 /usr/bin/python3; do
  command -v "$p" >/dev/null && "$p" -c 'import numpy, gguf' 2>/dev/null && { PY="$p"; break; }
done
[ -n "$PY" ] || { echo "SKIPPED: gguf_cli: no python3 with numpy and the gguf package (pip install gguf)"; exit 0; }
export TENPAK_SHARED_DIR="$S" OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
W="$S/datasets/wikitext-2-raw/wiki.test.raw"
head -300 "$S/datasets/wikitext-2-raw/wiki.test.raw" > "$tmp/wiki300"
ppl() { "$T" ppl --model "$1" --data "$tmp/wiki300" --max-tokens 256 --json "$2" > /dev/null || fail "ppl --model $1"; }
field() { "$PY" -c "import json,sys; print(repr(json.load(open(sys.argv[1]))[sys.argv[2]]))" "$1" "$2"; }
for m in llama-mini gpt2-mini; do
  D="$S/models/$m"
  [ -d "$D" ] || { echo "note: $D missing, $m skipped"; continue; }
  ppl "$D" "$tmp/$m.dir.json"
  types="f32 f16"
  [ "$m" = gpt2-mini ] && types=f32 # F16 is llama's test; gpt2's transposed Conv1D copies are tested in F32
  for ty in $types; do
    f="$tmp/$m-$ty.gguf"
    "$PY" "$G" "$D" "$f" --type "$ty" || fail "make_gguf.py $m $ty"
    [ -f "$f" ] && ! ls "$tmp" | grep -q "tmp-" || fail "make_gguf.py left a temporary file"
    ppl "$f" "$tmp/$m.$ty.json"
    for k in nll_sum ppl scored_tokens; do
      a=$(field "$tmp/$m.dir.json" $k); b=$(field "$tmp/$m.$ty.json" $k)
      [ "$a" = "$b" ] || fail "$m $ty: $k $b from the GGUF, $a from the checkpoint"
    done
  done
  ty=${types##* }
  "$T" tokenize --model "$tmp/$m-$ty.gguf" --ids-out "$tmp/ids.u32" "$tmp/wiki300" > /dev/null 2>&1 || fail "tokenize $m gguf"
  "$T" tokenize --model "$D" --ids-out "$tmp/ids-dir.u32" "$tmp/wiki300" > /dev/null 2>&1 || fail "tokenize $m dir"
  cmp -s "$tmp/ids.u32" "$tmp/ids-dir.u32" || fail "$m: GGUF tokenizer ids differ from tokenizer.json's"
  # the files written are the ones llama.cpp expects: names, permuted Q, the tokenizer keys
  "$PY" - "$tmp/$m-$ty.gguf" "$m" <<'EOF' || fail "$m: GGUF contents"
import sys, gguf
r = gguf.GGUFReader(sys.argv[1])
names = {t.name: t for t in r.tensors}
assert "token_embd.weight" in names and "output_norm.weight" in names
if sys.argv[2] == "llama-mini":
    assert r.fields["general.file_type"].parts[-1][0] == 1
    assert names["blk.0.attn_q.weight"].tensor_type == gguf.GGMLQuantizationType.F16
    assert names["blk.0.attn_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    assert bytes(r.fields["tokenizer.ggml.model"].parts[-1]) == b"llama"
    assert "tokenizer.ggml.scores" in r.fields
else:
    assert bytes(r.fields["tokenizer.ggml.model"].parts[-1]) == b"gpt2"
    assert len(r.fields["tokenizer.ggml.merges"].data) == 50000
EOF
done
# a llama.cpp quantisation measured against its checkpoint: Q8_0 by the gguf package's quantiser
if [ -d "$S/models/llama-mini" ]; then
  "$PY" "$G" "$S/models/llama-mini" "$tmp/q8.gguf" --type q8_0 || fail "make_gguf.py q8_0"
  "$T" eval --artifact "$tmp/q8.gguf" --model "$S/models/llama-mini" --data "$tmp/wiki300" --max-tokens 256 \
    --json "$tmp/q8.json" > /dev/null 2>&1 || fail "eval --artifact q8.gguf"
  "$PY" - "$tmp/q8.json" <<'EOF' || fail "eval of the Q8_0 GGUF: $(cat "$tmp/q8.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["codec"] == "gguf:F32x13+Q8_0x43", d["codec"]
assert 0 < d["kld_mean"] < 0.01 and d["top1_agreement"] > 0.9 and abs(d["ppl_delta_percent"]) < 3, d
EOF
fi
# generate from a GGUF: the same greedy text as from the checkpoint
if [ -f "$tmp/llama-mini-f16.gguf" ]; then
  "$T" generate --model "$tmp/llama-mini-f16.gguf" --prompt "The history of" -n 8 > "$tmp/g1" 2>/dev/null || fail "generate gguf"
  "$T" generate --model "$S/models/llama-mini" --prompt "The history of" -n 8 > "$tmp/g2" 2>/dev/null || fail "generate dir"
  cmp -s "$tmp/g1" "$tmp/g2" || fail "generate: GGUF text differs: $(cat "$tmp/g1") / $(cat "$tmp/g2")"
fi
echo "gguf_cli: ok"
