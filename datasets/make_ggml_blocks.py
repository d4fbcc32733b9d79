#!/usr/bin/env python3
"""Independent reference data for ggml's block formats, from the `gguf` package (PyPI; numpy, no torch).

Usage: python3 datasets/make_ggml_blocks.py OUT_DIR [--seed N] [--blocks N]

For every type tenpak reads (F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q4_K Q5_K Q6_K) writes
  OUT_DIR/blocks.gguf   one tensor per type ("blocks.<TYPE>", rows of random blocks), written by
                        gguf.GGUFWriter
  OUT_DIR/<TYPE>.bin    the tensor's bytes as gguf.GGUFReader reads them back from blocks.gguf
  OUT_DIR/<TYPE>.f32    gguf.quants.dequantize of those bytes: little-endian float32
  OUT_DIR/manifest.txt  one line per type: "<TYPE> <type id> <elements> <bytes>"
The blocks: random code bytes with every fp16 / bf16 / fp32 field forced finite (any finite value:
negative, subnormal, zero, up to the largest), plus, for the types the package can quantise, a
few rows quantised from normal weights. verify/test_ggml_gguf.c checks tenpak's reference and cpu
dequantisation against the .f32 files to the bit. Exit status 3 when gguf or numpy is missing.
"""
import argparse
import os
import sys

try:
    import numpy as np
    import gguf
    from gguf import GGMLQuantizationType as T
    from gguf.constants import GGML_QUANT_SIZES
except ImportError as exc:  # the C test skips on this status
    print(f"make_ggml_blocks: {exc} (pip install --user --break-system-packages gguf)", file=sys.stderr)
    sys.exit(3)

TYPES = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K"]
# offsets of the fp16 fields inside a block (ggml.h documents the layouts)
F16_FIELDS = {"Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q8_0": [0],
              "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208]}


def random_blocks(rng, name, nblocks):
    qtype = T[name]
    elems, size = GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(nblocks, size), dtype=np.uint8)
    if name == "F32":
        u = raw.view("<u4").copy()
        inf = ((u >> 23) & 0xFF) == 0xFF
        u[inf] ^= np.uint32(1 << 30)
        return u.view(np.uint8).reshape(nblocks, size)
    if name in ("F16", "BF16"):
        u = raw.view("<u2").copy()
        shift, mask = (10, 0x1F) if name == "F16" else (7, 0xFF)
        bad = ((u >> shift) & mask) == mask
        u[bad] ^= np.uint16(1 << 14)
        return u.view(np.uint8).reshape(nblocks, size)
    for off in F16_FIELDS[name]:
        h = raw[:, off:off + 2].copy().view("<u2")
        bad = ((h >> 10) & 0x1F) == 0x1F
        h[bad] ^= np.uint16(1 << 14)
        raw[:, off:off + 2] = h.view(np.uint8)
    return raw


def quantised_rows(rng, name, nblocks):
    """Blocks the package itself quantises from normal weights, where it can."""
    qtype = T[name]
    elems, _ = GGML_QUANT_SIZES[qtype]
    w = (rng.standard_normal(nblocks * elems) * 0.02).astype(np.float32).reshape(1, -1)
    try:
        return gguf.quants.quantize(w, qtype).reshape(nblocks, -1)
    except NotImplementedError:
        return None


def gguf_version():
    try:
        from importlib.metadata import version
        return version("gguf")
    except Exception:  # an unpackaged checkout of gguf-py
        return "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--blocks", type=int, default=96, help="random blocks per type (K-quants: an eighth)")
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, "blocks.gguf")
    wr = gguf.GGUFWriter(path, "tenpak-ggml-blocks")
    made = {}
    for name in TYPES:
        qtype = T[name]
        elems, size = GGML_QUANT_SIZES[qtype]
        nb = a.blocks if elems == 32 else max(a.blocks // 8, 4) if elems == 256 else a.blocks * 32
        parts = [random_blocks(rng, name, nb)]
        if name not in ("F32", "F16", "BF16"):
            q = quantised_rows(rng, name, 8 if elems == 32 else 2)
            if q is not None:
                parts.append(q)
        blocks = np.ascontiguousarray(np.concatenate(parts, axis=0))
        # one row per 4 blocks (K-quants: per block), so the file holds a 2-d tensor
        per_row = 4 if elems == 32 else 1 if elems == 256 else 32
        rows = blocks.shape[0] // per_row
        blocks = blocks[: rows * per_row].reshape(rows, per_row * size)
        wr.add_tensor(f"blocks.{name}", blocks, raw_dtype=qtype)
        made[name] = blocks
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()

    rd = gguf.GGUFReader(path)
    tensors = {t.name: t for t in rd.tensors}
    with open(os.path.join(a.out, "manifest.txt"), "w") as man:
        for name in TYPES:
            t = tensors[f"blocks.{name}"]
            if t.tensor_type != T[name]:
                sys.exit(f"make_ggml_blocks: {name}: read back as {t.tensor_type.name}")
            data = np.ascontiguousarray(t.data).view(np.uint8).reshape(-1)
            if data.tobytes() != made[name].tobytes():
                sys.exit(f"make_ggml_blocks: {name}: bytes read back differ from those written")
            deq = gguf.quants.dequantize(data, T[name]).astype("<f4", copy=False).reshape(-1)
            data.tofile(os.path.join(a.out, f"{name}.bin"))
            deq.tofile(os.path.join(a.out, f"{name}.f32"))
            man.write(f"{name} {int(T[name])} {deq.size} {data.size}\n")
    print(f"make_ggml_blocks: {len(TYPES)} types into {a.out} (seed {a.seed}, gguf {gguf_version()})")


if __name__ == "__main__":
    main()
