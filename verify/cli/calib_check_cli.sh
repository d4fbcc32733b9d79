#!/usr/bin/env bash
# tenpak calib-check on a small case (gpt2-mini's attention weights, 256 statistics tokens, 128 KLD
# tokens): one row per selected weight with both proxies and a non-negative KLD, the Spearman
# correlations in [-1, 1] and recomputed here from the table; evaluation text and mixed codecs
# refused (exit 1), bad options exit 2.
set -u
T="$1"; S="$2"; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
M="$S/models/gpt2-mini"
"$T" calib-check --model "$M" --codec int4:g=128 --select attn --calib-tokens 256 --kld-tokens 128 --json "$tmp/c.json" \
  > "$tmp/out" 2>&1 || { cat "$tmp/out"; fail "calib-check exited $?"; }
grep -q "Spearman rank correlation with the KLD: diag" "$tmp/out" || fail "no correlation line"
python3 - "$tmp/c.json" <<'PY' || fail "calib-check JSON"
import json, sys
j = json.load(open(sys.argv[1]))
t = j["tensors"]
assert len(t) == 12 and all(".attn." in x["name"] for x in t), [x["name"] for x in t]   # 6 layers x c_attn, c_proj
assert all(x["kld_mean"] >= 0 and x["proxy_diag"] > 0 and x["proxy_full"] > 0 for x in t), t
assert j["kld_tokens"] == 128 and j["calibration"]["tokens"] == 256
def ranks(v):
    o = sorted(range(len(v)), key=lambda i: v[i]); r = [0.0] * len(v); i = 0
    while i < len(v):
        k = i
        while k + 1 < len(v) and v[o[k + 1]] == v[o[i]]: k += 1
        for q in range(i, k + 1): r[o[q]] = (i + k) / 2 + 1
        i = k + 1
    return r
def pearson(a, b):
    n = len(a); ma = sum(a) / n; mb = sum(b) / n
    sab = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    return sab / (sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b)) ** 0.5
for p in ("diag", "full"):
    rho = pearson(ranks([x["proxy_" + p] for x in t]), ranks([x["kld_mean"] for x in t]))
    assert -1 <= j["spearman_" + p] <= 1 and abs(rho - j["spearman_" + p]) < 1e-9, (p, rho, j["spearman_" + p])
PY
"$T" calib-check --model "$M" --codec int4:g=128 --calib "$S/datasets/wikitext-2-raw/wiki.test.raw" 2> "$tmp/err"
[ $? -eq 1 ] || fail "evaluation text as calibration text must exit 1"
grep -q "wiki.test.raw" "$tmp/err" || fail "the refusal must name the file"
"$T" calib-check --model "$M" --codec mixed:budget=5 2> "$tmp/err"; [ $? -eq 1 ] || fail "mixed must be refused (exit 1)"
"$T" calib-check --model "$M" --codec int4:g=128 --kld-tokens 1 2> /dev/null; [ $? -eq 2 ] || fail "--kld-tokens 1 must exit 2"
"$T" calib-check --model "$M" 2> /dev/null; [ $? -eq 2 ] || fail "missing --codec must exit 2"
echo "calib_check_cli: ok"
