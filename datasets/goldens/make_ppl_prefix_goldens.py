#!/usr/bin/env python3
"""Independent perplexity goldens for tenpak's test suite (verify/test_pipeline_ppl.c).

Runs Hugging Face transformers in float32 (TF32 off, eager attention) over the first N tokens
(default 8192) of each shared model's goldens/wiki.test.ids.u32 with the sliding-window protocol
of Hugging Face's perplexity guide (window = ctx, stride, every token but the first scored once),
and writes datasets/goldens/<model>/ppl_prefix<N>.json:
    {model, data, tokens, ctx, stride, scored_tokens, nll_sum, ppl, ids_sha256, model_sha256, ...}
Per-token NLL is -log_softmax of the fp32 logits taken in float64 and summed in float64.

Usage (from the repository root, on a machine with PyTorch + transformers, GPU or not):
    python3 datasets/goldens/make_ppl_prefix_goldens.py [--shared DIR] [--tokens 8192]
        [--ctx 1024] [--stride 512] [--device cuda|cpu] [--check-full]
--check-full also runs the whole file and compares with the shared goldens/ppl_ctx1024_stride512.json
(a check that this script reproduces the shared reference; slower).
"""
import argparse
import hashlib
import json
import math
import os
import sys

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM

MODELS = ["gpt2-mini", "llama-mini"]


def default_shared():
    env = os.environ.get("TENPAK_SHARED_DIR")
    if env:
        return env
    for cand in ("../shared", "shared"):
        if os.path.isdir(os.path.join(cand, "models")):
            return cand
    return "../shared"


def model_sha256(model_dir):
    """tenpak's definition: the .safetensors files concatenated in file-name (byte) order."""
    h = hashlib.sha256()
    names = sorted((f for f in os.listdir(model_dir) if f.endswith(".safetensors")), key=lambda s: s.encode())
    for name in names:
        with open(os.path.join(model_dir, name), "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


@torch.no_grad()
def sliding_nll(model, ids, ctx, stride, device):
    """Hugging Face perplexity guide protocol; returns (nll_sum, scored, windows)."""
    n = ids.shape[0]
    nll_sum, scored, windows, prev_end = 0.0, 0, 0, 0
    for begin in range(0, n, stride):
        end = min(begin + ctx, n)
        trg = end - prev_end
        window = ids[begin:end].unsqueeze(0).to(device)
        logits = model(window).logits[0].to(torch.float64)  # [L, V]
        L = end - begin
        first = max(L - trg, 1)  # first window position whose token is scored
        logp = torch.log_softmax(logits[first - 1 : L - 1], dim=-1)
        tgt = window[0, first:L]
        nll = -logp.gather(1, tgt.unsqueeze(1)).squeeze(1)
        nll_sum += float(nll.sum().item())
        scored += L - first
        windows += 1
        prev_end = end
        if end == n:
            break
    return nll_sum, scored, windows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=default_shared())
    ap.add_argument("--tokens", type=int, default=8192)
    ap.add_argument("--ctx", type=int, default=1024)
    ap.add_argument("--stride", type=int, default=512)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--check-full", action="store_true")
    a = ap.parse_args()

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    dev_name = torch.cuda.get_device_name(0) if a.device.startswith("cuda") else "cpu"
    status = 0
    for name in a.models.split(","):
        mdir = os.path.join(a.shared, "models", name)
        all_ids = np.fromfile(os.path.join(mdir, "goldens", "wiki.test.ids.u32"), dtype="<u4").astype(np.int64)
        ids = torch.from_numpy(all_ids[: a.tokens])
        try:  # transformers >= 4.56 / 5 spell it dtype, older ones torch_dtype
            model = AutoModelForCausalLM.from_pretrained(mdir, dtype=torch.float32, attn_implementation="eager")
        except TypeError:
            model = AutoModelForCausalLM.from_pretrained(mdir, torch_dtype=torch.float32, attn_implementation="eager")
        model.to(a.device).eval()
        nll_sum, scored, windows = sliding_nll(model, ids, a.ctx, a.stride, a.device)
        ppl = math.exp(nll_sum / scored)
        out = {
            "model": name,
            "data": "wiki.test.raw (first %d ids of goldens/wiki.test.ids.u32)" % ids.shape[0],
            "tokens": int(ids.shape[0]),
            "bos_prepended": bool(all_ids[0] == getattr(model.config, "bos_token_id", -1)),
            "protocol": "hf",
            "ctx": a.ctx,
            "stride": a.stride,
            "windows": windows,
            "scored_tokens": scored,
            "nll_sum": nll_sum,
            "ppl": ppl,
            "ids_sha256": hashlib.sha256(all_ids[: a.tokens].astype("<u4").tobytes()).hexdigest(),
            "model_sha256": model_sha256(mdir),
            "reference": "transformers %s, torch %s, float32, TF32 off, eager attention, %s"
            % (transformers.__version__, torch.__version__, dev_name),
            "generator": "datasets/goldens/make_ppl_prefix_goldens.py",
        }
        odir = os.path.join(a.out, name)
        os.makedirs(odir, exist_ok=True)
        opath = os.path.join(odir, "ppl_prefix%d.json" % a.tokens)
        with open(opath + ".tmp", "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")
        os.replace(opath + ".tmp", opath)
        print("%s: ppl %.6f over %d tokens (%d windows) -> %s" % (name, ppl, scored, windows, opath))
        if a.check_full:
            full = torch.from_numpy(all_ids)
            fs, fn, _ = sliding_nll(model, full, a.ctx, a.stride, a.device)
            with open(os.path.join(mdir, "goldens", "ppl_ctx1024_stride512.json")) as f:
                g = json.load(f)
            rel = abs(math.exp(fs / fn) - g["ppl"]) / g["ppl"]
            print("  full file: ppl %.6f, shared golden %.6f, relative diff %.2e" % (math.exp(fs / fn), g["ppl"], rel))
            if rel > 1e-5:
                status = 1
        del model
        if a.device.startswith("cuda"):
            torch.cuda.empty_cache()
    return status


if __name__ == "__main__":
    sys.exit(main())
