#!/usr/bin/env python3
"""Recomputes `tenpak eval`'s paired statistics from the per-token file of `eval --dump-tokens`,
independently of the C code (numpy only), and optionally compares them with eval's --json.

    token_stats.py DUMP                 prints the statistics as JSON
    token_stats.py DUMP --check EVAL    exits 1 unless every statistic matches EVAL (eval --json)
                                        to 1e-9 relative (1e-15 absolute for zeros)

Definitions (pipeline/stats.h): KL and log-probs are per scored token as dumped; quantiles are
numpy's default (linear); the bootstrap cuts the tokens, in order, into blocks of block_len, draws
ceil(n / block_len) blocks with replacement per resample from xoshiro256** seeded by splitmix64
(tenpak's tp_rng; a draw below n is ((next >> 32) * n) >> 32), and takes the 2.5% / 97.5% quantiles
of the resampled statistics.
"""
import json
import math
import sys

import numpy as np

M64 = (1 << 64) - 1


class Xoshiro:
    def __init__(self, seed):
        self.s = []
        x = seed & M64
        for _ in range(4):
            x = (x + 0x9E3779B97F4A7C15) & M64
            z = x
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
            self.s.append(z ^ (z >> 31))

    @staticmethod
    def rotl(x, k):
        return ((x << k) | (x >> (64 - k))) & M64

    def next(self):
        s = self.s
        res = (self.rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = self.rotl(s[3], 45)
        return res

    def below(self, n):
        return ((self.next() >> 32) * n) >> 32


def read_dump(path):
    with open(path) as f:
        first = f.readline()
        if not first.startswith("# tenpak eval --dump-tokens"):
            sys.exit(f"{path}: not a tenpak --dump-tokens file")
        meta = json.loads(f.readline())
        cols = f.readline().split()
        data = np.loadtxt(f, dtype=np.float64, ndmin=2)
    want = ["pos", "target", "logprob_base", "logprob_comp", "top1_base", "top1_comp", "kl"]
    if cols != want or data.shape[1] != len(want):
        sys.exit(f"{path}: columns {cols}, expected {want}")
    return meta, {c: data[:, i] for i, c in enumerate(want)}


def bootstrap(columns, n, block_len, resamples, seed, stats):
    nb = (n + block_len - 1) // block_len
    bsum = np.array([[c[b * block_len:(b + 1) * block_len].sum() for c in columns] for b in range(nb)])
    bcnt = np.array([min(block_len, n - b * block_len) for b in range(nb)], dtype=np.float64)
    rng = Xoshiro(seed)
    draws = np.array([[rng.below(nb) for _ in range(nb)] for _ in range(resamples)], dtype=np.int64)
    sums = bsum[draws].sum(axis=1)     # resamples x columns
    count = bcnt[draws].sum(axis=1)
    return [tuple(np.quantile(f(sums.T, count), [0.025, 0.975])) for f in stats]


def statistics(meta, d):
    n = len(d["kl"])
    lpb, lpc, kl = d["logprob_base"], d["logprob_comp"], d["kl"]
    agree = (d["top1_base"] == d["top1_comp"]).astype(np.float64)

    def ppl_delta(s, cnt):
        return 100.0 * np.expm1((s[0] - s[1]) / cnt)

    def kld_mean(s, cnt):
        return s[2] / cnt

    def top1(s, cnt):
        return s[3] / cnt

    cols = [lpb, lpc, kl, agree]
    tot = np.array([c.sum() for c in cols])
    ci = bootstrap(cols, n, int(meta["bootstrap_block_len"]), int(meta["bootstrap_resamples"]),
                   int(meta["bootstrap_seed"]), [ppl_delta, kld_mean, top1])
    corr = np.corrcoef(lpb, lpc)[0, 1] if lpb.std() > 0 and lpc.std() > 0 else None
    q = np.quantile(kl, [0.5, 0.9, 0.99, 0.999])
    return {
        "scored_tokens": n,
        "baseline_ppl": math.exp(-tot[0] / n),
        "ppl": math.exp(-tot[1] / n),
        "ppl_delta_percent": float(ppl_delta(tot, n)),
        "ppl_delta_percent_ci95": list(ci[0]),
        "kld_mean": float(kld_mean(tot, n)),
        "kld_mean_ci95": list(ci[1]),
        "kld_median": q[0], "kld_p90": q[1], "kld_p99": q[2], "kld_p999": q[3],
        "kld_max": float(kl.max()),
        "top1_agreement": float(top1(tot, n)),
        "top1_agreement_ci95": list(ci[2]),
        "logprob_correlation": None if corr is None else float(corr),
    }


def close(a, b):
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-15)


def main():
    args = sys.argv[1:]
    if len(args) not in (1, 3) or (len(args) == 3 and args[1] != "--check"):
        sys.exit(__doc__)
    meta, d = read_dump(args[0])
    got = statistics(meta, d)
    if len(args) == 1:
        json.dump({k: (float(v) if isinstance(v, np.floating) else v) for k, v in got.items()}, sys.stdout, indent=1)
        print()
        return 0
    ev = json.load(open(args[2]))
    bad = [f"{k}: recomputed {got[k]!r}, eval {ev.get(k)!r}" for k in got if not close(got[k], ev.get(k))]
    for k in ("bootstrap_block_len", "bootstrap_resamples", "bootstrap_seed"):
        if ev.get(k) != meta[k]:
            bad.append(f"{k}: dump {meta[k]!r}, eval {ev.get(k)!r}")
    if bad:
        print("token_stats: MISMATCH\n  " + "\n  ".join(bad))
        return 1
    print(f"token_stats: {len(got)} statistics of {got['scored_tokens']} tokens match eval's JSON to 1e-9")
    return 0


if __name__ == "__main__":
    sys.exit(main())
