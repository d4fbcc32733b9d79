#!/usr/bin/env bash
# datasets/make_synthetic_llama.py: a tiny synthetic Llama (several shards) loads in tenpak
# (tokenize, ppl), its index and headers list every tensor as fp16, the same seed gives the same
# bytes and another seed other bytes, an existing folder is refused without --force, bad arguments
# fail in one line, and an interrupted run leaves nothing behind.
set -u
T="$1"; S="$2"; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
G="$(cd "$(dirname "$0")/../.." && pwd)/datasets/make_synthetic_llama.py"
# the script needs numpy: the first python3 on PATH may lack it, Debian's has it (python3-numpy)
PY=""
for p in python3 /usr/bin/python3; do
  command -v "$p" >/dev/null && "$p" -c 'import numpy' 2>/dev/null && { PY="$p"; break; }
done
[ -n "$PY" ] || { echo "note: no python3 with numpy, synthetic_llama check skipped"; exit 0; }
export TENPAK_SHARED_DIR="$S" OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
tiny=(--layers 2 --hidden 128 --intermediate 352 --heads 4 --kv-heads 2 --vocab 32000 --ctx 256 --shard-mb 1)
"$PY" "$G" "$tmp/m" "${tiny[@]}" > "$tmp/out" || fail "generation"
grep -q "$tmp/m: [0-9]* bytes, [0-9]* parameters" "$tmp/out" || fail "summary line: $(cat "$tmp/out")"
[ "$(wc -l < "$tmp/out")" -eq 1 ] || fail "more than one line printed"
# the index names every tensor once, each shard's header agrees with it, all fp16, sizes consistent
"$PY" - "$tmp/m" <<'EOF' || fail "index / shard headers"
import json, os, struct, sys
d = sys.argv[1]
cfg = json.load(open(os.path.join(d, "config.json")))
assert cfg["architectures"] == ["LlamaForCausalLM"] and cfg["model_type"] == "llama"
assert cfg["tie_word_embeddings"] is False and cfg["num_key_value_heads"] == 2 and cfg["hidden_size"] == 128
idx = json.load(open(os.path.join(d, "model.safetensors.index.json")))
wm = idx["weight_map"]
L, H, I, V, KV = 2, 128, 352, 32000, 64
want = {"model.embed_tokens.weight": [V, H], "model.norm.weight": [H], "lm_head.weight": [V, H]}
for l in range(L):
    p = f"model.layers.{l}."
    want.update({p + "input_layernorm.weight": [H], p + "post_attention_layernorm.weight": [H],
                 p + "self_attn.q_proj.weight": [H, H], p + "self_attn.k_proj.weight": [KV, H],
                 p + "self_attn.v_proj.weight": [KV, H], p + "self_attn.o_proj.weight": [H, H],
                 p + "mlp.gate_proj.weight": [I, H], p + "mlp.up_proj.weight": [I, H],
                 p + "mlp.down_proj.weight": [H, I]})
assert set(wm) == set(want), sorted(set(wm) ^ set(want))
shards = sorted(set(wm.values()))
n = len(shards)
assert n >= 3, shards
assert shards == [f"model-{i:05d}-of-{n:05d}.safetensors" for i in range(1, n + 1)], shards
seen, total = {}, 0
for s in shards:
    b = open(os.path.join(d, s), "rb").read()
    hl = struct.unpack("<Q", b[:8])[0]
    assert hl % 8 == 0
    h = json.loads(b[8:8 + hl])
    assert h.pop("__metadata__") == {"format": "pt"}
    end = 0
    for k, v in sorted(h.items(), key=lambda kv: kv[1]["data_offsets"]):
        assert wm[k] == s and v["dtype"] == "F16" and v["shape"] == want[k], (k, v)
        a, e = v["data_offsets"]
        assert a == end and e - a == 2 * (want[k][0] * (want[k][1] if len(want[k]) > 1 else 1)), (k, v)
        end = e
        seen[k] = s
    assert len(b) == 8 + hl + end, s
    total += end
assert seen == wm and idx["metadata"]["total_size"] == total
EOF
# tenpak reads it: tokenizer, config, sharded fp16 weights; perplexity is finite (and huge)
head -c 3000 "$S/datasets/wikitext-2-raw/wiki.test.raw" > "$tmp/a.txt"
"$T" tokenize --model "$tmp/m" "$tmp/a.txt" > "$tmp/ids" || fail "tokenize"
[ "$(wc -w < "$tmp/ids")" -gt 200 ] || fail "tokenize gave too few ids"
"$T" ppl --model "$tmp/m" --data "$tmp/a.txt" --ctx 64 --stride 32 --max-tokens 200 --threads 1 \
  > "$tmp/ppl" 2>&1 || fail "ppl: $(cat "$tmp/ppl")"
awk '$1 == "ppl" { v = $2 + 0; ok = ($2 ~ /^[0-9.eE+]+$/ && v > 1 && v < 1e30) } END { exit !ok }' "$tmp/ppl" ||
  fail "perplexity not finite: $(grep '^ppl' "$tmp/ppl")"
# same seed: the same bytes; an existing folder is refused and left as it was
"$PY" "$G" "$tmp/m2" "${tiny[@]}" > /dev/null || fail "second generation"
for f in "$tmp"/m/*; do cmp -s "$f" "$tmp/m2/$(basename "$f")" || fail "same seed, $(basename "$f") differs"; done
"$PY" "$G" "$tmp/m2" "${tiny[@]}" --seed 1 > /dev/null 2> "$tmp/err"; [ $? -eq 1 ] || fail "existing folder overwritten"
grep -q "already exists" "$tmp/err" || fail "refusal message: $(cat "$tmp/err")"
cmp -s "$tmp/m/model-00002-of-00003.safetensors" "$tmp/m2/model-00002-of-00003.safetensors" || fail "refused run changed the folder"
# --force replaces it; another seed gives other weights (headers and sizes the same)
"$PY" "$G" "$tmp/m2" "${tiny[@]}" --seed 1 --force > /dev/null || fail "--force"
for f in "$tmp"/m/model-*.safetensors; do
  cmp -s "$f" "$tmp/m2/$(basename "$f")" && fail "seed 1 gives the same $(basename "$f")"
  [ "$(stat -c %s "$f")" -eq "$(stat -c %s "$tmp/m2/$(basename "$f")")" ] || fail "seed changed a shard's size"
done
# bad arguments: exit 1, one line on stderr, nothing created
for bad in "--hidden 130 --heads 4" "--heads 6 --kv-heads 4" "--layers 0" "--vocab -5" "--shard-mb 0" \
           "--layers x" "--bogus" "--vocab 1000"; do
  # shellcheck disable=SC2086
  "$PY" "$G" "$tmp/bad" $bad > /dev/null 2> "$tmp/err"; rc=$?
  [ $rc -eq 1 ] || fail "'$bad' exited $rc"
  [ "$(wc -l < "$tmp/err")" -eq 1 ] || fail "'$bad': not one line: $(cat "$tmp/err")"
  [ -e "$tmp/bad" ] && fail "'$bad' created the folder"
done
"$PY" "$G" > /dev/null 2>&1 && fail "no OUT_DIR accepted"
# an interrupted (default-size) run leaves neither the folder nor its .tmp-<pid>
"$PY" "$G" "$tmp/big" > /dev/null 2>&1 & pid=$!
for _ in $(seq 100); do compgen -G "$tmp/big.tmp-*/model-00001-*" > /dev/null && break; sleep 0.1; done
compgen -G "$tmp/big.tmp-*/model-00001-*" > /dev/null || { kill -TERM $pid; fail "no .tmp-<pid> folder while writing"; }
kill -TERM $pid; wait $pid; rc=$?
[ $rc -ne 0 ] || fail "interrupted run exited 0"
[ -e "$tmp/big" ] && fail "interrupted run left $tmp/big"
compgen -G "$tmp/*.tmp-*" > /dev/null && fail "temporary folder left behind"
echo "synthetic_llama: ok"
