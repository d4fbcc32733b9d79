#!/usr/bin/env bash
# tenpak export: llama-mini compressed with int4:g=32, exported to GGUF; the `gguf`
# package (PyPI) reads the file back and dequantises every Q4_1 tensor to exactly the floats of
# tenpak's int4 definition (w = q*s + o, fp32, read from the .tpk by numpy here), bit for bit,
# raw tensors carry the checkpoint's bytes (q/k rows permuted for llama.cpp); `--model F.gguf`
# gives the .tpk's perplexity; another codec is refused in one line naming the tensor and codec,
# leaving no file, and --allow-f16 writes it. The package part is skipped, saying so, without gguf.
set -u
T="$1"; S="$2"; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
export TENPAK_SHARED_DIR="$S" OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
M="$S/models/llama-mini"
[ -d "$M" ] || { echo "note: $M missing, gguf_export_cli skipped"; exit 0; }
head -200 "$S/datasets/wikitext-2-raw/wiki.test.raw" > "$tmp/w"
"$T" compress --model "$M" --codec int4:g=32 --out "$tmp/a.tpk" > /dev/null 2>&1 || fail "compress"
"$T" export --artifact "$tmp/a.tpk" --out "$tmp/a.gguf" > "$tmp/out" || fail "export"
grep -q "42 Q4_1 from int4:g=32, 14 uncompressed" "$tmp/out" || fail "export summary: $(cat "$tmp/out")"
# the exported model runs: the same perplexity as the artifact (Q4_1 kernels vs int4 kernels)
"$T" ppl --model "$tmp/a.gguf" --data "$tmp/w" --max-tokens 256 --json "$tmp/g.json" > /dev/null || fail "ppl --model a.gguf"
"$T" eval --artifact "$tmp/a.tpk" --data "$tmp/w" --max-tokens 256 --no-kld --json "$tmp/t.json" > /dev/null 2>&1 || fail "eval a.tpk"
python3 - "$tmp/g.json" "$tmp/t.json" <<'EOF' || fail "ppl of the GGUF differs from the .tpk's"
import json, sys
a, b = (json.load(open(p))["ppl"] for p in sys.argv[1:3])
assert abs(a - b) <= 1e-6 * b, (a, b)
EOF
# another codec: refused in one line, nothing written; --allow-f16 decodes it
"$T" compress --model "$M" --codec nf4:g=64 --select mlp --out "$tmp/n.tpk" > /dev/null 2>&1 || fail "compress nf4"
"$T" export --artifact "$tmp/n.tpk" --out "$tmp/n.gguf" > /dev/null 2> "$tmp/err"; rc=$?
[ $rc -eq 1 ] || fail "nf4 export exit $rc"
[ "$(wc -l < "$tmp/err")" -eq 1 ] && grep -q "tensor model.layers.0.mlp.down_proj.weight has codec nf4:g=64" "$tmp/err" ||
  fail "nf4 message: $(cat "$tmp/err")"
[ ! -e "$tmp/n.gguf" ] && ! ls "$tmp" | grep -q "n.gguf.tmp" || fail "a refused export left a file"
"$T" export --artifact "$tmp/n.tpk" --out "$tmp/n.gguf" --allow-f16 > /dev/null || fail "--allow-f16"
"$T" export --artifact "$tmp/n.tpk" --out "$tmp/n.tpk" > /dev/null 2>&1 && fail "export over its own input"
[ -s "$tmp/n.tpk" ] || fail "the input was damaged"
PY=""
for p in python3 /usr/bin/python3; do
  command -v "$p" >/dev/null && "$p" -c 'import numpy, gguf' 2>/dev/null && { PY="$p"; break; }
done
[ -n "$PY" ] || { echo "SKIPPED: gguf_export_cli: the gguf package check (no python3 with numpy and gguf)"; echo "gguf_export_cli: ok"; exit 0; }
"$PY" - "$tmp/a.tpk" "$tmp/a.gguf" "$M/config.json" <<'EOF' || fail "gguf package read-back"
import json, struct, sys
import numpy as np, gguf
tpk, gf, cfgp = sys.argv[1:4]
cfg = json.load(open(cfgp))
H, KVH = cfg["num_attention_heads"], cfg["num_key_value_heads"]
raw = open(tpk, "rb").read()
ho, hl = struct.unpack("<QQ", raw[-40:-24])
hdr = json.loads(raw[ho:ho + hl])
r = gguf.GGUFReader(gf)
gt = {t.name: t for t in r.tensors}
names = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
         "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
         "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
def gname(n):
    if n == "model.embed_tokens.weight": return "token_embd.weight"
    if n == "model.norm.weight": return "output_norm.weight"
    li, _, sub = n[len("model.layers."):].partition(".")
    base, _, kind = sub.rpartition(".")
    return f"blk.{li}.{names[base]}.{kind}"
def permute(w, nh):  # llama.cpp's rotary layout, as convert_hf_to_gguf.py
    return w.reshape(nh, 2, w.shape[0] // nh // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
nq = nraw = 0
for rec in hdr["tensors"]:
    blob = raw[rec["offset"]:rec["offset"] + rec["length"]]
    assert rec["lossless"] == "none"
    t = gt[gname(rec["name"])]
    heads = H if ".q_proj." in rec["name"] else KVH if ".k_proj." in rec["name"] else None
    if rec["codec"] == "raw":
        a = np.frombuffer(blob, dtype="<f2").reshape(rec["shape"])
        if a.ndim == 1:
            want = a.astype(np.float32)
            assert t.tensor_type == gguf.GGMLQuantizationType.F32
        else:
            want = permute(a, heads) if heads else a
            assert t.tensor_type == gguf.GGMLQuantizationType.F16
        got = np.asarray(t.data).reshape(want.shape)
        assert got.tobytes() == want.tobytes(), rec["name"]
        nraw += 1
        continue
    assert rec["codec"].startswith("int4:g=32"), rec["codec"]
    R, C = rec["rows"], rec["cols"]
    ng, cs = C // 32, (C + 1) // 2
    codes = np.frombuffer(blob, np.uint8, R * cs).reshape(R, cs)
    q = np.empty((R, C), np.uint8)
    q[:, 0::2] = codes & 15   # element 2i: LOW nibble of byte i
    q[:, 1::2] = codes >> 4
    s = np.frombuffer(blob, "<f2", R * ng, R * cs).astype(np.float32).reshape(R, ng)
    o = np.frombuffer(blob, "<f2", R * ng, R * cs + 2 * R * ng).astype(np.float32).reshape(R, ng)
    # tenpak's int4 definition (include/tenpak/quant.h): w = q*s + o in fp32
    w = (q.astype(np.float32).reshape(R, ng, 32) * s[:, :, None] + o[:, :, None]).reshape(R, C)
    if heads:
        w = permute(w, heads)
    assert t.tensor_type == gguf.GGMLQuantizationType.Q4_1
    d = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).reshape(R, C)
    assert d.dtype == np.float32
    bad = np.count_nonzero(d.view(np.uint32) != w.view(np.uint32))
    assert bad == 0, f"{rec['name']}: {bad} of {R * C} floats differ"
    nq += 1
assert nq == 42 and nraw == 14, (nq, nraw)
assert r.fields["general.file_type"].parts[-1][0] == 3  # MOSTLY_Q4_1
assert bytes(r.fields["tokenizer.ggml.model"].parts[-1]) == b"llama"
EOF
echo "gguf_export_cli: ok"
