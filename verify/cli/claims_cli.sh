#!/usr/bin/env bash
# tenpak claims verify with claims that name their metric (ppl_delta_percent, kld_mean,
# top1_agreement): VERIFIED only when the whole 95% interval is on the claim's side, FAILED when
# it is wholly on the other side, INCONCLUSIVE when it straddles the bound, the interval printed;
# a claim in the original format (no metric) is still a reproduction check; malformed metric
# claims are refused with one line naming the claim.
set -u
T="$1"; S="$2"; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
export OPENBLAS_NUM_THREADS=1 TMPDIR="$tmp"
W="$S/datasets/wikitext-2-raw/wiki.test.raw"
# the measurement every claim below re-makes (same codec, tokens, protocol and bootstrap)
"$T" compress --model "$S/models/gpt2-mini" --codec int4:g=128 --out "$tmp/a.tpk" > /dev/null 2>&1 || fail "compress"
"$T" eval --artifact "$tmp/a.tpk" --data "$W" --max-tokens 300 --ctx 128 --stride 64 --json "$tmp/e.json" > /dev/null 2>&1 || fail "eval"
python3 - "$tmp/e.json" "$tmp/c.json" <<'PY' || fail "writing the claims file"
import json, sys
e = json.load(open(sys.argv[1]))
base = {"model": "gpt2-mini", "model_dir": "gpt2-mini", "codec": "int4:g=128", "select": "linear",
        "dataset": "WikiText-2 test", "data": "datasets/wikitext-2-raw/wiki.test.raw",
        "protocol": {"name": "hf", "ctx": 128, "stride": 64, "max_tokens": 300}, "source": "claims_cli.sh"}
d = e["ppl_delta_percent"]
rows = [
    ("kld_lenient", {"metric": "kld_mean", "claimed": {"kld_mean": 0.5}}),
    ("kld_tight", {"metric": "kld_mean", "claimed": {"kld_mean": 1e-6}, "tolerance": {"kld_mean_abs": 1e-6}}),
    ("top1_lenient", {"metric": "top1_agreement", "claimed": {"top1_agreement": 0.2, "ratio_fp32": e["ratio_fp32"]}}),
    ("top1_perfect", {"metric": "top1_agreement", "claimed": {"top1_agreement": 1.0}}),
    ("delta_at_point", {"metric": "ppl_delta_percent", "claimed": {"ppl_delta_percent": d}}),
    ("delta_wrong_ratio", {"metric": "ppl_delta_percent", "claimed": {"ppl_delta_percent": 50, "ratio_fp32": 40.0}}),
    ("legacy", {"claimed": {"ratio_fp32": e["ratio_fp32"], "ppl_delta_percent": d},
                "tolerance": {"ratio_rel": 0.01, "ppl_delta_abs": 0.01}}),
]
claims = [dict(base, name=n, **extra) for n, extra in rows]
json.dump({"claims": claims}, open(sys.argv[2], "w"), indent=1)
PY
D=(--models-dir "$S/models" --data-dir "$S")
"$T" claims verify "$tmp/c.json" "${D[@]}" --json "$tmp/r.json" > "$tmp/out" 2> "$tmp/err"; rc=$?
[ $rc -eq 1 ] || fail "a FAILED claim must give exit status 1, got $rc: $(cat "$tmp/out" "$tmp/err")"
python3 - "$tmp/r.json" "$tmp/e.json" <<'PY' || { cat "$tmp/out"; fail "claims results"; }
import json, sys
r = {x["name"]: x for x in json.load(open(sys.argv[1]))["results"]}
e = json.load(open(sys.argv[2]))
want = {"kld_lenient": "VERIFIED", "kld_tight": "FAILED", "top1_lenient": "VERIFIED", "top1_perfect": "FAILED",
        "delta_at_point": "INCONCLUSIVE", "delta_wrong_ratio": "FAILED", "legacy": "VERIFIED"}
for n, st in want.items():
    assert r[n]["status"] == st, (n, r[n]["status"], r[n]["reason"])
for n in ("kld_lenient", "kld_tight", "top1_lenient", "delta_at_point"):
    assert "95% interval [" in r[n]["reason"], r[n]["reason"]
assert "straddles" in r["delta_at_point"]["reason"] and "OUT of tolerance" in r["delta_wrong_ratio"]["reason"]
assert "[95% interval" in r["legacy"]["reason"], r["legacy"]["reason"]
# the claims re-measure eval's numbers (same tokens, protocol, default bootstrap)
k = r["kld_lenient"]
assert abs(k["measured_kld_mean"] - e["kld_mean"]) <= 1e-9 * e["kld_mean"], (k["measured_kld_mean"], e["kld_mean"])
assert k["measured_kld_mean_ci95"] == e["kld_mean_ci95"] and k["measured_top1_agreement_ci95"] == e["top1_agreement_ci95"]
assert k["metric"] == "kld_mean" and k["claimed_value"] == 0.5
PY
grep -q "^3 verified, 3 failed, 1 inconclusive, 0 need a model, 0 unsupported, 0 errors" "$tmp/out" ||
  fail "summary line: $(tail -1 "$tmp/out")"
# malformed metric claims: exit 1, one line naming the claim, nothing run
python3 -c "
import json, sys
c = json.load(open(sys.argv[1]))['claims'][0]
json.dump({'claims': [dict(c, metric='kld_p42')]}, open(sys.argv[2], 'w'))
json.dump({'claims': [dict(c, metric='top1_agreement')]}, open(sys.argv[3], 'w'))" "$tmp/c.json" "$tmp/bad1.json" "$tmp/bad2.json"
"$T" claims verify "$tmp/bad1.json" "${D[@]}" > /dev/null 2> "$tmp/err"; [ $? -eq 1 ] || fail "unknown metric accepted"
grep -q "kld_lenient): metric must be ppl_delta_percent, kld_mean or top1_agreement" "$tmp/err" || fail "message: $(cat "$tmp/err")"
"$T" claims verify "$tmp/bad2.json" "${D[@]}" > /dev/null 2> "$tmp/err"; [ $? -eq 1 ] || fail "a metric without its claimed value accepted"
grep -q "lacks claimed.top1_agreement" "$tmp/err" && [ "$(wc -l < "$tmp/err")" -eq 1 ] || fail "message: $(cat "$tmp/err")"
ls "$tmp" | grep -q 'tenpak-claim' && fail "a claim's artifact was left behind"
echo "claims_cli: ok"
