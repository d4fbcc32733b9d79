#!/usr/bin/env python3
"""Write a Hugging Face llama or gpt2 checkpoint (the shared llama-mini / gpt2-mini) as a GGUF file
the way llama.cpp's convert_hf_to_gguf.py lays it out, with the `gguf` package (PyPI) and numpy
only (no torch): test data for tenpak's GGUF reader (`--model FILE.gguf`).

Usage: python3 datasets/make_gguf.py MODEL_DIR OUT.gguf [--type f32|f16|q8_0|q4_0|q4_1|q5_0|q5_1]

- Tensors get llama.cpp's names (token_embd, blk.N.attn_q, ..., output_norm); 2-D weights are
  written in --type (f32 or f16), 1-D tensors (norms, biases) always in f32, as convert_hf_to_gguf
  does. The fp16 checkpoint's values are exact in both. The q* types quantise every 2-D weight with
  the gguf package's own quantiser (gguf.quants.quantize, llama.cpp's reference rounding): test data
  for `tenpak eval --artifact FILE.gguf --model DIR`.
- llama: q_proj / k_proj rows are permuted for llama.cpp's rotary layout (within each head, the
  rows of the first and second halves are interleaved: GGUF row h*hd + 2j + s holds HF row
  h*hd + s*hd/2 + j), k_proj with the KV head count.
- gpt2: Conv1D weights ([in, out] in the checkpoint) are transposed to [out, in]; the tied
  lm_head is not written (llama.cpp reuses token_embd).
- Tokenizer: llama: tokenizer.ggml.model "llama" with tokens / scores / token_type read from
  tokenizer.model (its protobuf parsed here, no sentencepiece needed); gpt2: "gpt2" with tokens
  and merges from tokenizer.json. BOS/EOS/UNK ids and add_bos_token from the checkpoint's files.
The file is written to OUT.tmp-<pid> and renamed: an interrupted run leaves nothing. Never commit
the output.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

try:
    import gguf
except ImportError:  # the caller (a test) skips visibly
    sys.stderr.write("make_gguf.py: the gguf package is not installed (pip install gguf)\n")
    sys.exit(77)


def read_safetensors(model_dir):
    """name -> numpy array (fp16/fp32/bf16 widened to f32 where bf16), from every shard."""
    files = sorted(f for f in os.listdir(model_dir) if f.endswith(".safetensors"))
    out = {}
    for f in files:
        with open(os.path.join(model_dir, f), "rb") as fh:
            data = fh.read()
        (hlen,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + hlen])
        base = 8 + hlen
        for name, info in header.items():
            if name == "__metadata__":
                continue
            b, e = info["data_offsets"]
            raw = data[base + b:base + e]
            dt = info["dtype"]
            if dt == "F16":
                a = np.frombuffer(raw, dtype="<f2")
            elif dt == "F32":
                a = np.frombuffer(raw, dtype="<f4")
            elif dt == "BF16":
                a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
            else:
                raise SystemExit(f"make_gguf.py: {f}: tensor {name} has dtype {dt}")
            out[name] = a.reshape(info["shape"])
    return out


def permute_rows(w, n_head):
    """llama.cpp's rotary layout: within each head, interleave the halves' rows."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def sp_pieces(path):
    """(piece, score, type) of a SentencePiece tokenizer.model: ModelProto field 1 = repeated
    SentencePiece {1: piece, 2: score (float), 3: type (enum, default NORMAL = 1)}."""
    buf = open(path, "rb").read()

    def varint(b, i):
        v, s = 0, 0
        while True:
            c = b[i]
            i += 1
            v |= (c & 0x7F) << s
            s += 7
            if c < 0x80:
                return v, i

    def fields(b):
        i = 0
        while i < len(b):
            key, i = varint(b, i)
            f, wt = key >> 3, key & 7
            if wt == 0:
                v, i = varint(b, i)
            elif wt == 1:
                v, i = b[i:i + 8], i + 8
            elif wt == 2:
                n, i = varint(b, i)
                v, i = b[i:i + n], i + n
            elif wt == 5:
                v, i = b[i:i + 4], i + 4
            else:
                raise SystemExit(f"make_gguf.py: {path}: unsupported protobuf wire type {wt}")
            yield f, v

    out = []
    for f, v in fields(buf):
        if f != 1:
            continue
        piece, score, typ = "", 0.0, 1
        for g, w in fields(v):
            if g == 1:
                piece = w.decode("utf-8")
            elif g == 2:
                (score,) = struct.unpack("<f", w)
            elif g == 3:
                typ = w
        out.append((piece, score, typ))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("out")
    ap.add_argument("--type", choices=["f32", "f16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1"], default="f32")
    a = ap.parse_args()
    cfg = json.load(open(os.path.join(a.model_dir, "config.json")))
    arch = cfg["model_type"]
    if arch not in ("llama", "gpt2"):
        raise SystemExit(f"make_gguf.py: {a.model_dir}: model_type {arch!r} is not supported (llama, gpt2)")
    st = read_safetensors(a.model_dir)
    wdt = np.float32 if a.type == "f32" else np.float16
    qtype = None if a.type in ("f32", "f16") else getattr(gguf.GGMLQuantizationType, a.type.upper())
    tmp = f"{a.out}.tmp-{os.getpid()}"
    w = gguf.GGUFWriter(tmp, arch)
    w.add_name(os.path.basename(os.path.normpath(a.model_dir)))
    # ALL_F32 / MOSTLY_F16 / MOSTLY_Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 (llama_ftype)
    w.add_file_type({"f32": 0, "f16": 1, "q8_0": 7, "q4_0": 2, "q4_1": 3, "q5_0": 8, "q5_1": 9}[a.type])
    tensors = []  # (gguf name, array)
    tok = json.load(open(os.path.join(a.model_dir, "tokenizer.json")))
    tcfg_path = os.path.join(a.model_dir, "tokenizer_config.json")
    tcfg = json.load(open(tcfg_path)) if os.path.exists(tcfg_path) else {}
    if arch == "llama":
        H, KVH = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
        d = cfg["hidden_size"]
        hd = cfg.get("head_dim") or d // H
        theta = cfg.get("rope_theta", (cfg.get("rope_parameters") or {}).get("rope_theta", 10000.0))
        w.add_context_length(cfg["max_position_embeddings"])
        w.add_embedding_length(d)
        w.add_block_count(cfg["num_hidden_layers"])
        w.add_feed_forward_length(cfg["intermediate_size"])
        w.add_rope_dimension_count(hd)
        w.add_head_count(H)
        w.add_head_count_kv(KVH)
        w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
        w.add_rope_freq_base(float(theta))
        w.add_vocab_size(cfg["vocab_size"])
        names = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
                 "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
                 "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                 "mlp.down_proj": "ffn_down"}
        for name, t in st.items():
            if name == "model.embed_tokens.weight":
                g = "token_embd.weight"
            elif name == "model.norm.weight":
                g = "output_norm.weight"
            elif name == "lm_head.weight":
                if cfg.get("tie_word_embeddings"):
                    continue
                g = "output.weight"
            elif name.startswith("model.layers."):
                rest = name[len("model.layers."):]
                li, _, sub = rest.partition(".")
                base, _, kind = sub.rpartition(".")
                if base not in names:
                    raise SystemExit(f"make_gguf.py: {a.model_dir}: unexpected tensor {name}")
                g = f"blk.{li}.{names[base]}.{kind}"
                if base == "self_attn.q_proj":
                    t = permute_rows(t, H)
                elif base == "self_attn.k_proj":
                    t = permute_rows(t, KVH)
            else:
                raise SystemExit(f"make_gguf.py: {a.model_dir}: unexpected tensor {name}")
            tensors.append((g, t))
        # tokenizer: SentencePiece pieces with scores and types, as llama.cpp's _set_vocab_sentencepiece
        pieces = sp_pieces(os.path.join(a.model_dir, "tokenizer.model"))
        if len(pieces) != cfg["vocab_size"]:
            raise SystemExit(f"make_gguf.py: tokenizer.model has {len(pieces)} pieces, config says {cfg['vocab_size']}")
        w.add_tokenizer_model("llama")
        w.add_tokenizer_pre("default")
        w.add_token_list([p[0].encode("utf-8") for p in pieces])
        w.add_token_scores([p[1] for p in pieces])
        w.add_token_types([p[2] for p in pieces])
        w.add_bos_token_id(cfg.get("bos_token_id", 1))
        w.add_eos_token_id(cfg.get("eos_token_id", 2))
        w.add_unk_token_id(0)
        w.add_add_bos_token(bool(tcfg.get("add_bos_token", True)))
        w.add_add_eos_token(bool(tcfg.get("add_eos_token", False)))
    else:
        d = cfg["n_embd"]
        w.add_context_length(cfg.get("n_ctx", cfg["n_positions"]))
        w.add_embedding_length(d)
        w.add_feed_forward_length(cfg.get("n_inner") or 4 * d)
        w.add_block_count(cfg["n_layer"])
        w.add_head_count(cfg["n_head"])
        w.add_layer_norm_eps(cfg["layer_norm_epsilon"])
        conv = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
        names = {"ln_1": "attn_norm", "attn.c_attn": "attn_qkv", "attn.c_proj": "attn_output", "ln_2": "ffn_norm",
                 "mlp.c_fc": "ffn_up", "mlp.c_proj": "ffn_down"}
        for name, t in st.items():
            n = name[len("transformer."):] if name.startswith("transformer.") else name
            if n.endswith((".attn.bias", ".attn.masked_bias")) or n == "lm_head.weight":
                continue  # causal-mask buffers; the tied lm_head
            if n == "wte.weight":
                g = "token_embd.weight"
            elif n == "wpe.weight":
                g = "position_embd.weight"
            elif n.startswith("ln_f."):
                g = "output_norm." + n[len("ln_f."):]
            elif n.startswith("h."):
                li, _, sub = n[2:].partition(".")
                base, _, kind = sub.rpartition(".")
                if base not in names:
                    raise SystemExit(f"make_gguf.py: {a.model_dir}: unexpected tensor {name}")
                g = f"blk.{li}.{names[base]}.{kind}"
                if base in conv and kind == "weight":
                    t = np.ascontiguousarray(t.T)
            else:
                raise SystemExit(f"make_gguf.py: {a.model_dir}: unexpected tensor {name}")
            tensors.append((g, t))
        m = tok["model"]
        vocab = {k: v for k, v in m["vocab"].items()}
        for at in tok.get("added_tokens", []):
            vocab[at["content"]] = at["id"]
        n = max(vocab.values()) + 1
        toks = [None] * n
        for k, v in vocab.items():
            toks[v] = k
        if any(t is None for t in toks):
            raise SystemExit("make_gguf.py: tokenizer.json vocab has holes")
        special = {at["id"] for at in tok.get("added_tokens", []) if at.get("special")}
        merges = [mg if isinstance(mg, str) else " ".join(mg) for mg in m["merges"]]
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("gpt-2")
        w.add_token_list([t.encode("utf-8") for t in toks])
        w.add_token_types([3 if i in special else 1 for i in range(n)])  # CONTROL / NORMAL
        w.add_token_merges([mg.encode("utf-8") for mg in merges])
        w.add_bos_token_id(cfg.get("bos_token_id", 50256))
        w.add_eos_token_id(cfg.get("eos_token_id", 50256))
        w.add_add_bos_token(False)
    for g, t in sorted(tensors, key=lambda x: x[0]):
        if qtype is not None and t.ndim == 2:
            w.add_tensor(g, gguf.quants.quantize(np.ascontiguousarray(t.astype(np.float32)), qtype), raw_dtype=qtype)
            continue
        arr = np.ascontiguousarray(t.astype(np.float32 if t.ndim == 1 else wdt))
        w.add_tensor(g, arr)
    try:
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        os.replace(tmp, a.out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


if __name__ == "__main__":
    main()
