#!/usr/bin/env python3
"""Write a synthetic Llama checkpoint (TinyLlama-1.1B's shapes by default) for speed and memory
benchmarks at deployment scale.

Usage: python3 datasets/make_synthetic_llama.py OUT_DIR [--layers N] [--hidden N] [--intermediate N]
           [--heads N] [--kv-heads N] [--vocab N] [--ctx N] [--seed N] [--shard-mb MB]
           [--tokenizer-dir DIR] [--force]

The weights are random (perplexity on it is meaningless), but shaped like trained ones: each row of
a matrix is N(0, 1) times a per-row scale exp(N(0, 0.5)) / sqrt(in_features), 1% of the input
columns are scaled x4 (outlier channels), norm weights are 1 + 0.05 N(0, 1). Everything is fp16,
seeded by --seed and byte-reproducible. The output is a Hugging Face folder: config.json,
model-0000i-of-0000N.safetensors + model.safetensors.index.json, and tokenizer.json /
tokenizer_config.json copied from --tokenizer-dir (default: the shared llama-mini,
$TENPAK_SHARED_DIR/models/llama-mini or <repo>/../shared/models/llama-mini).

Tensors are generated a block of rows at a time and streamed into the shard files, so memory stays
around 100 MB whatever the size. Everything is written to OUT_DIR.tmp-<pid> and renamed to OUT_DIR
at the end: an interrupted run leaves no half checkpoint. Numpy and the standard library only.
Never commit the output.
"""
import argparse
import json
import os
import shutil
import signal
import struct
import sys

PROG = "make_synthetic_llama.py"
BLOCK_ELEMS = 1 << 22  # rows generated per block: about this many elements (16 MB of fp32)
OUTLIER_FRAC = 0.01
OUTLIER_GAIN = 4.0
ROW_SCALE_SIGMA = 0.5
NORM_SIGMA = 0.05


def die(msg):
    print(f"{PROG}: error: {msg}", file=sys.stderr)
    sys.exit(1)


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 1 (argparse's default is usage + exit 2)
        die(message)


def parse_args(argv):
    p = Parser(prog=PROG, description="Write a synthetic fp16 Llama checkpoint (TinyLlama-1.1B shapes "
               "by default) for speed and memory benchmarks; the weights are random.")
    p.add_argument("out_dir", metavar="OUT_DIR", help="folder to create (refused if it exists, unless --force)")
    p.add_argument("--layers", type=int, default=22)
    p.add_argument("--hidden", type=int, default=2048)
    p.add_argument("--intermediate", type=int, default=5632)
    p.add_argument("--heads", type=int, default=32)
    p.add_argument("--kv-heads", type=int, default=4)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--ctx", type=int, default=2048, help="max_position_embeddings")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shard-mb", type=float, default=1000.0,
                   help="shard size limit in MB (10^6 bytes); a larger tensor gets a shard of its own")
    p.add_argument("--tokenizer-dir", default=None,
                   help="folder with tokenizer.json and tokenizer_config.json to copy "
                        "(default: $TENPAK_SHARED_DIR/models/llama-mini or <repo>/../shared/models/llama-mini)")
    p.add_argument("--force", action="store_true", help="replace an existing OUT_DIR")
    a = p.parse_args(argv)
    for name in ("layers", "hidden", "intermediate", "heads", "kv_heads", "vocab", "ctx"):
        if getattr(a, name) <= 0:
            die(f"--{name.replace('_', '-')} must be positive (got {getattr(a, name)})")
    if not a.shard_mb > 0:
        die(f"--shard-mb must be positive (got {a.shard_mb})")
    if a.seed < 0 or a.seed >= 2 ** 63:
        die(f"--seed must be in [0, 2^63) (got {a.seed})")
    if a.hidden % a.heads:
        die(f"--hidden {a.hidden} is not divisible by --heads {a.heads}")
    if a.heads % a.kv_heads:
        die(f"--heads {a.heads} is not divisible by --kv-heads {a.kv_heads}")
    if (a.hidden // a.heads) % 2:
        die(f"head_dim {a.hidden // a.heads} (hidden / heads) must be even for RoPE")
    return a


def tensor_specs(a):
    """(name, shape, kind) in transformers' state_dict order; kind is 'linear' or 'norm'."""
    hd = a.hidden // a.heads
    specs = [("model.embed_tokens.weight", (a.vocab, a.hidden), "linear")]
    for l in range(a.layers):
        p = f"model.layers.{l}."
        specs += [
            (p + "self_attn.q_proj.weight", (a.heads * hd, a.hidden), "linear"),
            (p + "self_attn.k_proj.weight", (a.kv_heads * hd, a.hidden), "linear"),
            (p + "self_attn.v_proj.weight", (a.kv_heads * hd, a.hidden), "linear"),
            (p + "self_attn.o_proj.weight", (a.hidden, a.heads * hd), "linear"),
            (p + "mlp.gate_proj.weight", (a.intermediate, a.hidden), "linear"),
            (p + "mlp.up_proj.weight", (a.intermediate, a.hidden), "linear"),
            (p + "mlp.down_proj.weight", (a.hidden, a.intermediate), "linear"),
            (p + "input_layernorm.weight", (a.hidden,), "norm"),
            (p + "post_attention_layernorm.weight", (a.hidden,), "norm"),
        ]
    specs += [("model.norm.weight", (a.hidden,), "norm"), ("lm_head.weight", (a.vocab, a.hidden), "linear")]
    return specs


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def plan_shards(specs, limit_bytes):
    """Greedy split as transformers' save_pretrained does: a shard takes tensors while it stays under
    the limit; a tensor larger than the limit gets a shard of its own."""
    shards, cur, cur_bytes = [], [], 0
    for i, (name, shape, kind) in enumerate(specs):
        nb = numel(shape) * 2
        if cur and cur_bytes + nb > limit_bytes:
            shards.append(cur)
            cur, cur_bytes = [], 0
        cur.append(i)
        cur_bytes += nb
    if cur:
        shards.append(cur)
    return shards


def shard_header(specs, idx):
    hdr = {"__metadata__": {"format": "pt"}}
    off = 0
    for i in idx:
        name, shape, _ = specs[i]
        nb = numel(shape) * 2
        hdr[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [off, off + nb]}
        off += nb
    raw = json.dumps(hdr, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw, off


def write_tensor(f, np, seed, index, shape, kind):
    # One generator per tensor (seed, tensor index): tensors are independent of each other and of
    # the shard layout, so --shard-mb does not change the weights.
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, index])))
    if kind == "norm":
        w = 1.0 + NORM_SIGMA * rng.standard_normal(shape[0], dtype=np.float32)
        f.write(w.astype("<f2").tobytes())
        return
    rows, cols = shape
    row_scale = (np.exp(ROW_SCALE_SIGMA * rng.standard_normal(rows, dtype=np.float32))
                 / np.float32(np.sqrt(cols))).astype(np.float32)
    col_gain = np.ones(cols, dtype=np.float32)
    n_out = max(1, int(round(cols * OUTLIER_FRAC)))
    col_gain[rng.choice(cols, size=n_out, replace=False)] = OUTLIER_GAIN
    step = max(1, BLOCK_ELEMS // cols)
    for r0 in range(0, rows, step):
        r1 = min(rows, r0 + step)
        blk = rng.standard_normal((r1 - r0, cols), dtype=np.float32)
        blk *= row_scale[r0:r1, None]
        blk *= col_gain[None, :]
        f.write(blk.astype("<f2").tobytes())


def default_tokenizer_dir():
    shared = os.environ.get("TENPAK_SHARED_DIR")
    if not shared:
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        shared = os.path.join(repo, "..", "shared")
    return os.path.normpath(os.path.join(shared, "models", "llama-mini"))


def tokenizer_vocab(path):
    """Number of ids the tokenizer can emit (1 + the largest id), or None if it cannot tell."""
    try:
        with open(path, encoding="utf-8") as fh:
            t = json.load(fh)
        ids = list((t.get("model") or {}).get("vocab", {}).values())
        ids += [x.get("id", 0) for x in t.get("added_tokens") or []]
        ids = [i for i in ids if isinstance(i, int)]
        return max(ids) + 1 if ids else None
    except (OSError, ValueError, AttributeError, TypeError):
        return None


def config_json(a):
    return {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "head_dim": a.hidden // a.heads,
        "hidden_act": "silu",
        "hidden_size": a.hidden,
        "initializer_range": 0.02,
        "intermediate_size": a.intermediate,
        "max_position_embeddings": a.ctx,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": a.heads,
        "num_hidden_layers": a.layers,
        "num_key_value_heads": a.kv_heads,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "float16",
        "use_cache": True,
        "vocab_size": a.vocab,
    }


def on_sigterm(signum, frame):
    raise SystemExit(143)


def main(argv):
    a = parse_args(argv)
    try:
        import numpy as np
    except ImportError:
        die(f"numpy is required ({sys.executable} has none: pip install numpy, or apt-get install "
            "python3-numpy and run /usr/bin/python3)")

    out = os.path.abspath(a.out_dir.rstrip("/") or a.out_dir)
    if os.path.lexists(out):
        if not os.path.isdir(out) or os.path.islink(out):
            die(f"{out} exists and is not a folder; not touching it")
        if not a.force:
            die(f"{out} already exists (use --force to replace it)")
    parent = os.path.dirname(out)
    if not os.path.isdir(parent):
        die(f"{parent}: no such folder")

    tok_dir = a.tokenizer_dir or default_tokenizer_dir()
    tok_files = ["tokenizer.json", "tokenizer_config.json"]
    for fn in tok_files:
        if not os.path.isfile(os.path.join(tok_dir, fn)):
            die(f"{os.path.join(tok_dir, fn)}: not found (give --tokenizer-dir or set TENPAK_SHARED_DIR)")
    tv = tokenizer_vocab(os.path.join(tok_dir, "tokenizer.json"))
    if tv is not None and a.vocab < tv:
        die(f"--vocab {a.vocab} is smaller than the tokenizer's {tv} ids")

    specs = tensor_specs(a)
    shards = plan_shards(specs, int(a.shard_mb * 1e6))
    n_shards = len(shards)
    data_bytes = sum(numel(s[1]) * 2 for s in specs)
    n_params = sum(numel(s[1]) for s in specs)
    free = shutil.disk_usage(parent).free
    if free < data_bytes + (64 << 20):
        die(f"{parent}: {free} bytes free, the checkpoint needs {data_bytes}")

    tmp = f"{out}.tmp-{os.getpid()}"
    signal.signal(signal.SIGTERM, on_sigterm)
    progress = sys.stderr.isatty()
    try:
        os.mkdir(tmp)
        weight_map = {}
        for si, idx in enumerate(shards):
            fname = f"model-{si + 1:05d}-of-{n_shards:05d}.safetensors"
            head, nbytes = shard_header(specs, idx)
            with open(os.path.join(tmp, fname), "wb") as f:
                f.write(head)
                for i in idx:
                    name, shape, kind = specs[i]
                    write_tensor(f, np, a.seed, i, shape, kind)
                    weight_map[name] = fname
                if f.tell() != len(head) + nbytes:
                    raise RuntimeError(f"{fname}: wrote {f.tell()} bytes, expected {len(head) + nbytes}")
            if progress:
                print(f"\r{PROG}: shard {si + 1}/{n_shards}", end="", file=sys.stderr, flush=True)
        if progress:
            print(file=sys.stderr)
        index = {"metadata": {"total_parameters": n_params, "total_size": data_bytes},
                 "weight_map": dict(sorted(weight_map.items()))}
        with open(os.path.join(tmp, "model.safetensors.index.json"), "w", encoding="utf-8") as fh:
            json.dump(index, fh, indent=2)
            fh.write("\n")
        with open(os.path.join(tmp, "config.json"), "w", encoding="utf-8") as fh:
            json.dump(config_json(a), fh, indent=2, sort_keys=True)
            fh.write("\n")
        for fn in tok_files:
            shutil.copyfile(os.path.join(tok_dir, fn), os.path.join(tmp, fn))
        old = None
        if os.path.lexists(out):  # --force: swap the old folder out, the new one in, then delete the old
            old = f"{out}.old-{os.getpid()}"
            os.rename(out, old)
        os.rename(tmp, out)
        tmp = None
        if old:
            shutil.rmtree(old, ignore_errors=True)
    except KeyboardInterrupt:
        die("interrupted; nothing written")
    except OSError as ex:
        die(f"{ex.filename or out}: {ex.strerror or ex}")
    finally:
        if tmp and os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)

    total = sum(os.path.getsize(os.path.join(out, fn)) for fn in os.listdir(out))
    print(f"{out}: {total} bytes, {n_params} parameters ({a.layers} layers, hidden {a.hidden}, "
          f"{n_shards} shard{'s' if n_shards != 1 else ''}, seed {a.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
