#!/usr/bin/env python3
"""Writes a tiny valid llama GGUF (ok.gguf) and files that lie in each way tenpak's GGUF reader
checks (one per name below), for verify/cli/hostile_gguf.sh and the fuzz seeds. Standard library
only: the bytes are laid out here from the format (pipeline/gguf.h), not by the gguf package.

Usage: gguf_lies.py OUT_DIR   (prints one line per file: NAME<TAB>what the error must say)
       gguf_lies.py OUT_DIR --seed   (only OUT_DIR/tiny-llama, a small valid file)
"""
import os
import struct
import sys

U32, I32, F32, BOOL, STR, ARR, U64 = 4, 5, 6, 7, 8, 9, 10


def s(x):
    b = x.encode() if isinstance(x, str) else x
    return struct.pack("<Q", len(b)) + b


def kv(key, t, payload):
    return s(key) + struct.pack("<I", t) + payload


def u32(key, v):
    return kv(key, U32, struct.pack("<I", v))


def f32(key, v):
    return kv(key, F32, struct.pack("<f", v))


def arr(key, et, items):
    if et == STR:
        body = b"".join(s(i) for i in items)
    else:
        body = b"".join(struct.pack({F32: "<f", I32: "<i", U32: "<I"}[et], i) for i in items)
    return kv(key, ARR, struct.pack("<IQ", et, len(items)) + body)


D, H, KVH, HD, FF, CTX = 8, 2, 1, 4, 16, 16


def build(lie=None, version=3, align=32, nbytes=256):
    """nbytes: how many <0xNN> byte pieces the vocabulary has (fewer: a small fuzz seed)"""
    toks = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(nbytes)] + ["\u2581", "a", "b", "\u2581a", "ab"]
    types = [2, 3, 3] + [6] * nbytes + [1] * 5
    scores = [0.0] * (3 + nbytes) + [0.0, -1.0, -2.0, -3.0, -4.0]
    V = len(toks)
    meta = [kv("general.architecture", STR, s("falcon" if lie == "arch" else "llama")),
            u32("llama.context_length", CTX), u32("llama.embedding_length", D),
            kv("llama.block_count", STR, s("1")) if lie == "keytype" else u32("llama.block_count", 1),
            u32("llama.feed_forward_length", FF), u32("llama.attention.head_count", H),
            u32("llama.attention.head_count_kv", KVH), u32("llama.rope.dimension_count", HD),
            f32("llama.attention.layer_norm_rms_epsilon", 1e-5), f32("llama.rope.freq_base", 10000.0),
            kv("tokenizer.ggml.model", STR, s("llama")),
            arr("tokenizer.ggml.tokens", I32 if lie == "tokentype" else STR, types if lie == "tokentype" else toks),
            arr("tokenizer.ggml.scores", F32, scores), arr("tokenizer.ggml.token_type", I32, types),
            u32("tokenizer.ggml.bos_token_id", 1), u32("tokenizer.ggml.eos_token_id", 2),
            u32("tokenizer.ggml.unknown_token_id", 0)]
    if lie == "align":
        meta.append(kv("general.alignment", U64, struct.pack("<Q", 32)))
    if lie == "bigarray":
        meta.append(kv("general.lie", ARR, struct.pack("<IQ", F32, 1 << 61)))
    shapes = [("token_embd.weight", [D, V]), ("blk.0.attn_norm.weight", [D]), ("blk.0.attn_q.weight", [D, H * HD]),
              ("blk.0.attn_k.weight", [D, KVH * HD]), ("blk.0.attn_v.weight", [D, KVH * HD]),
              ("blk.0.attn_output.weight", [H * HD, D]), ("blk.0.ffn_norm.weight", [D]),
              ("blk.0.ffn_gate.weight", [D, FF]), ("blk.0.ffn_up.weight", [D, FF]), ("blk.0.ffn_down.weight", [FF, D]),
              ("output_norm.weight", [D])]
    infos, data = b"", b""
    for i, (name, ne) in enumerate(shapes):
        typ = 0
        n = 1
        for x in ne:
            n *= x
        blob = b"".join(struct.pack("<f", ((j * 7919 + i * 31) % 200 - 100) / 400.0 + (1.0 if len(ne) == 1 else 0.0))
                        for j in range(n))
        off = len(data)
        last = i == len(shapes) - 1
        if last and lie == "typeid":
            typ = 99
        if last and lie == "q2k":
            typ = 10
        if last and lie == "blocks":
            typ, ne = 2, [40]  # Q4_0 needs rows of a multiple of 32 elements
        if last and lie == "past":
            ne = [1 << 20]
        if last and lie == "misaligned":
            off += 4
        if last and lie == "overlap":
            off -= 32
        if last and lie == "hugedim":
            ne = [1 << 40, 1 << 40]
        infos += s(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", x) for x in ne)
        infos += struct.pack("<IQ", typ, off)
        data += blob
        data += b"\0" * (-len(data) % align)
    head = b"GGUF" + struct.pack("<IQQ", version, len(shapes), len(meta)) + b"".join(meta) + infos
    head += b"\0" * (-len(head) % align)
    out = head + data
    if lie == "magic":
        out = b"GGML" + out[4:]
    if lie == "ntensors":
        out = out[:8] + struct.pack("<Q", 1 << 60) + out[16:]
    if lie == "truncated":
        out = out[:len(head) + len(data) // 2]
    if lie == "truncated_header":
        out = out[:1500]  # inside the token list
    return out


LIES = [
    ("magic", 'not a GGUF file (no "GGUF" magic)'),
    ("version1", "GGUF version 1 is not supported"),
    ("ntensors", "header claims 1152921504606846976 tensors, more than the file can hold"),
    ("bigarray", "metadata 'general.lie' claims 2305843009213693952 elements, more than the file holds"),
    ("truncated", "runs past the end of the file"),
    ("truncated_header", "claims 264 elements, more than the file holds"),
    ("past", "runs past the end of the file"),
    ("misaligned", "is not a multiple of the alignment 32"),
    ("overlap", "overlap"),
    ("typeid", "ggml type 99 (unknown), not supported"),
    ("q2k", "ggml type 10 (Q2_K), not supported"),
    ("blocks", "rows of 40 elements, not a multiple of its block of 32"),
    ("hugedim", "(empty or too large)"),
    ("align", "metadata 'general.alignment' is u64, expected u32"),
    ("keytype", "metadata 'llama.block_count' is string, expected an unsigned integer"),
    ("tokentype", "'tokenizer.ggml.tokens' is an array of i32, expected an array of string"),
    ("arch", "general.architecture 'falcon' is not supported (llama, gpt2)"),
]


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    if len(sys.argv) > 2 and sys.argv[2] == "--seed":  # a small valid file for fuzz/seeds/fuzz_gguf
        with open(os.path.join(out, "tiny-llama"), "wb") as f:
            f.write(build(nbytes=4))
        return
    with open(os.path.join(out, "ok.gguf"), "wb") as f:
        f.write(build())
    for name, want in LIES:
        b = build(version=1) if name == "version1" else build(name)
        with open(os.path.join(out, name + ".gguf"), "wb") as f:
            f.write(b)
        print(f"{name}\t{want}")


if __name__ == "__main__":
    main()
