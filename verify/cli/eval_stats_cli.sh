#!/usr/bin/env bash
# tenpak eval's paired statistics (KLD, top-1, bootstrap intervals) on a small case: the JSON has
# every field, verify/cli/token_stats.py recomputes all of them from the --dump-tokens file to 1e-9
# relative, and its check fails once one token's value in the dump is changed (self-test); bad
# bootstrap options exit 2; tenpak ppl prints its standard error.
set -u
T="$1"; S="$2"; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
CHECK="$(cd "$(dirname "$0")" && pwd)/token_stats.py"
M="$S/models/gpt2-mini"; W="$S/datasets/wikitext-2-raw/wiki.test.raw"
export OPENBLAS_NUM_THREADS=1
"$T" compress --model "$M" --codec int4:g=64 --out "$tmp/a.tpk" > /dev/null 2>&1 || fail "compress"
"$T" eval --artifact "$tmp/a.tpk" --data "$W" --max-tokens 600 --ctx 256 --stride 128 --bootstrap-block 32 \
  --bootstrap-resamples 1000 --bootstrap-seed 99 --dump-tokens "$tmp/d.tsv" --json "$tmp/e.json" > "$tmp/out" 2>&1 ||
  { cat "$tmp/out"; fail "eval exited $?"; }
for l in "^kld           mean [0-9.]* \[[0-9.]*, [0-9.]*\], median" "^top-1         [0-9.]*% \[" \
         "^ppl           [0-9.]* +/- [0-9.]* (baseline [0-9.]* +/- [0-9.]*, [-+][0-9.]*%, 95% interval \[" \
         "^bootstrap     1000 resamples of 19 blocks of 32 scored tokens, seed 99"; do
  grep -q "$l" "$tmp/out" || fail "eval output lacks '$l': $(cat "$tmp/out")"
done
python3 - "$tmp/e.json" <<'PY' || fail "eval JSON"
import json, sys
j = json.load(open(sys.argv[1]))
for k in ("kld_mean", "kld_median", "kld_p90", "kld_p99", "kld_p999", "kld_max", "top1_agreement",
          "ppl_delta_percent", "logprob_correlation"):
    assert isinstance(j[k], float), k
for k in ("kld_mean", "top1_agreement", "ppl_delta_percent"):
    lo, hi = j[k + "_ci95"]
    assert lo <= j[k] <= hi and lo < hi, (k, lo, j[k], hi)
assert j["paired"] is True and j["scored_tokens"] == 599
assert (j["bootstrap_block_len"], j["bootstrap_seed"], j["bootstrap_resamples"], j["bootstrap_blocks"]) == (32, 99, 1000, 19)
assert 0 < j["kld_mean"] < 0.5 and 0.5 < j["top1_agreement"] < 1 and 0.9 < j["logprob_correlation"] < 1
assert j["kld_median"] <= j["kld_p90"] <= j["kld_p99"] <= j["kld_p999"] <= j["kld_max"]
PY
[ "$(wc -l < "$tmp/d.tsv")" -eq 602 ] || fail "dump: 3 header lines + 599 tokens expected, got $(wc -l < "$tmp/d.tsv")"
# the independent check needs numpy: the first python3 on PATH may lack it, Debian's has it
PY=""
for p in python3 /usr/bin/python3; do
  command -v "$p" >/dev/null && "$p" -c 'import numpy' 2>/dev/null && { PY="$p"; break; }
done
[ -n "$PY" ] || fail "no python3 with numpy (bash ci/install-deps.sh installs python3-numpy)"
"$PY" "$CHECK" "$tmp/d.tsv" --check "$tmp/e.json" > "$tmp/ok" || fail "token_stats.py disagrees: $(cat "$tmp/ok")"
# self-test: one token's value changed (its KL, then its compressed log-prob, then its argmax)
alter() { awk -v c="$1" -v v="$2" 'BEGIN { OFS = "\t" } NR == 200 { $c = v } { print }' "$tmp/d.tsv" > "$tmp/x.tsv"; }
for change in "7 0.5" "4 -0.25" "6 -1"; do
  # shellcheck disable=SC2086
  alter $change
  cmp -s "$tmp/d.tsv" "$tmp/x.tsv" && fail "self-test: column change '$change' changed nothing"
  "$PY" "$CHECK" "$tmp/x.tsv" --check "$tmp/e.json" > "$tmp/chk" && fail "token_stats.py accepted a dump with column change '$change'"
  grep -q MISMATCH "$tmp/chk" || fail "self-test: $(cat "$tmp/chk")"
done
# bad options: exit 2; --dump-tokens needs the paired (cpu) pass
"$T" eval --artifact "$tmp/a.tpk" --data "$W" --bootstrap-resamples 999 > /dev/null 2>&1; [ $? -eq 2 ] || fail "999 resamples accepted"
"$T" eval --artifact "$tmp/a.tpk" --data "$W" --bootstrap-block 0 > /dev/null 2>&1; [ $? -eq 2 ] || fail "block 0 accepted"
"$T" eval --artifact "$tmp/a.tpk" --data "$W" --max-tokens 300 --no-kld --dump-tokens "$tmp/y.tsv" > /dev/null 2> "$tmp/err"
[ $? -eq 1 ] && grep -q "dump-tokens needs the paired" "$tmp/err" || fail "--no-kld --dump-tokens: $(cat "$tmp/err")"
# tenpak ppl: PPL +/- the standard error (ppl x standard error of the mean NLL)
"$T" ppl --model "$M" --data "$W" --max-tokens 300 --ctx 128 --json "$tmp/p.json" > "$tmp/p" 2>&1 || fail "ppl"
grep -q "^ppl          [0-9.]* +/- [0-9.]* (standard error of the mean NLL [0-9.]* nats" "$tmp/p" || fail "ppl line: $(cat "$tmp/p")"
python3 -c "import json,sys; j=json.load(open(sys.argv[1])); assert 0 < j['nll_mean_stderr'] < 1 and abs(j['ppl_stderr'] - j['ppl'] * j['nll_mean_stderr']) < 1e-9 * j['ppl']" "$tmp/p.json" || fail "ppl JSON stderr"
echo "eval_stats_cli: ok ($(cat "$tmp/ok"))"
