#!/usr/bin/env bash
# tenpak with the gptq codec: listed by `tenpak codecs` at int4:g=128's size, compresses gpt2-mini
# with its calibration (X^T X collected), records int4-format blobs that eval runs packed, and a bad
# damp fails with one line naming it.
set -u
T="$1"; S="$2"; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
M="$S/models/gpt2-mini"; W="$S/datasets/wikitext-2-raw/wiki.test.raw"
"$T" codecs > "$tmp/codecs" || fail "tenpak codecs exited $?"
g=$(grep '^gptq:g=128,act_order=1,damp=0.01 ' "$tmp/codecs" | awk '{print $2}')
i=$(grep '^int4:g=128,refine=0 ' "$tmp/codecs" | awk '{print $2}')
[ -n "$g" ] && [ "$g" = "$i" ] || fail "codecs must list gptq:g=128 at int4:g=128's bytes ($g vs $i)"
"$T" compress --model "$M" --codec gptq:g=128,act_order=1 --calib-tokens 512 --out "$tmp/g.tpk" --json "$tmp/g.json" > "$tmp/out" 2>&1 \
  || { cat "$tmp/out"; fail "gptq compress exited $?"; }
grep -q "^calibration   512 tokens of .*brown.txt.gz" "$tmp/out" || fail "compress must print the calibration: $(head -3 "$tmp/out")"
python3 - "$tmp/g.json" <<'PY' || fail "gptq JSON"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["calib_tokens"] == 512 and abs(j["bits_per_weight"] - 4.25) < 1e-9, j
PY
"$T" eval --artifact "$tmp/g.tpk" --data "$W" --max-tokens 200 --exec packed --json "$tmp/e.json" > /dev/null 2>&1 || fail "eval of g.tpk failed"
python3 -c "import json,sys; j=json.load(open(sys.argv[1])); assert j['ppl'] > 0 and abs(j['ppl_delta_percent']) < 50, j" "$tmp/e.json" || fail "eval"
# clip=1: the searched group ranges, recorded in the spec (clip=0, the default, is left out of it)
"$T" compress --model "$M" --codec gptq:g=128,clip=1 --calib-tokens 512 --out "$tmp/c.tpk" > "$tmp/out" 2>&1 \
  || { cat "$tmp/out"; fail "gptq clip=1 compress exited $?"; }
"$T" eval --artifact "$tmp/c.tpk" --data "$W" --max-tokens 200 --exec packed --json "$tmp/c.json" > /dev/null 2>&1 || fail "eval of c.tpk failed"
python3 -c "import json,sys; j=json.load(open(sys.argv[1])); assert j['codec'] == 'gptq:g=128,act_order=1,damp=0.01,clip=1' and j['ppl'] > 0 and abs(j['ppl_delta_percent']) < 50, j" "$tmp/c.json" || fail "clip=1 eval"
python3 -c "import json,sys; j=json.load(open(sys.argv[1])); assert j['codec'] == 'gptq:g=128,act_order=1,damp=0.01', j" "$tmp/e.json" || fail "clip=0 must stay out of the spec"
"$T" compress --model "$M" --codec gptq:clip=2 --out "$tmp/x.tpk" > /dev/null 2> "$tmp/err"; [ $? = 1 ] || fail "clip=2 must exit 1"
grep -q "clip is 0 or 1" "$tmp/err" && [ "$(wc -l < "$tmp/err")" = 1 ] || fail "message: $(cat "$tmp/err")"
"$T" compress --model "$M" --codec gptq:damp=0 --out "$tmp/x.tpk" > /dev/null 2> "$tmp/err"; [ $? = 1 ] || fail "damp=0 must exit 1"
grep -q "damp must be in (0, 1]" "$tmp/err" && [ "$(wc -l < "$tmp/err")" = 1 ] || fail "message: $(cat "$tmp/err")"
[ -e "$tmp/x.tpk" ] && fail "a failed compress left $tmp/x.tpk"
echo "gptq_cli: ok"
