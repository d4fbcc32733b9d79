#!/usr/bin/env bash
# tenpak compress with the calibrated codecs: awq and mixed artifacts compress (calibration on a
# prefix of the training corpus), print the calibration and the mixed plan (with its measured check
# against the uniform candidates), and evaluate; bad calibration input fails with one line naming
# the file and leaves no artifact.
set -u
T="$1"; S="$2"; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
M="$S/models/gpt2-mini"; W="$S/datasets/wikitext-2-raw/wiki.test.raw"
"$T" compress --model "$M" --codec mixed:budget=4.5 --select attn --calib-tokens 256 --mixed-kld-tokens 64 --out "$tmp/m.tpk" --json "$tmp/m.json" > "$tmp/out" 2>&1 \
  || { cat "$tmp/out"; fail "mixed compress exited $?"; }
grep -q "^calibration   256 tokens of .*brown.txt.gz" "$tmp/out" || fail "compress must print the calibration: $(head -3 "$tmp/out")"
grep -q "^mixed plan (mixed:budget=4.5,awq=0, 12 tensors" "$tmp/out" || fail "compress must print the mixed plan"
grep -q "^  measured on 64 calibration tokens" "$tmp/out" && grep -q "^    allocated plan .*" "$tmp/out" \
  || fail "compress must print the measured check of the plan against the uniform candidates"
grep -q "<- written" "$tmp/out" || fail "the measured check must mark the plan written"
[ "$(grep -c '^  transformer\.h\.[0-9]*\.[a-z_.]*weight  *[a-z0-9]*:g=[0-9]*' "$tmp/out")" = 12 ] || fail "the plan must list 12 tensors with their codec"
python3 - "$tmp/m.json" <<'PY' || fail "mixed JSON"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["calib_tokens"] == 256 and len(j["calib_sha256"]) == 64, j
assert 4.25 < j["bits_per_weight"] <= 4.5, j["bits_per_weight"]
PY
"$T" compress --model "$M" --codec awq:g=64,search=1 --calib "$S/datasets/corpus/gcide.txt.gz" --calib-tokens 256 --out "$tmp/a.tpk" > "$tmp/out" 2>&1 \
  || { cat "$tmp/out"; fail "awq compress exited $?"; }
grep -q "^calibration   256 tokens of .*gcide.txt.gz" "$tmp/out" || fail "--calib must be used"
for a in m a; do
  "$T" eval --artifact "$tmp/$a.tpk" --data "$W" --max-tokens 200 --json "$tmp/e$a.json" > /dev/null 2>&1 || fail "eval of $a.tpk failed"
  python3 -c "import json,sys; j=json.load(open(sys.argv[1])); assert j['ppl'] > 0 and abs(j['ppl_delta_percent']) < 50, j" "$tmp/e$a.json" || fail "eval $a"
done
# bad calibration input: exit 1, one line naming the file, no artifact
"$T" compress --model "$M" --codec awq:g=128 --calib "$W" --out "$tmp/x.tpk" > /dev/null 2> "$tmp/err"; [ $? = 1 ] || fail "evaluation text as calibration must exit 1"
grep -q "wiki.test.raw: evaluation text cannot be calibration text" "$tmp/err" && [ "$(wc -l < "$tmp/err")" = 1 ] || fail "message: $(cat "$tmp/err")"
"$T" compress --model "$M" --codec awq:g=128 --calib "$tmp/none.txt.gz" --out "$tmp/x.tpk" > /dev/null 2> "$tmp/err"; [ $? = 1 ] || fail "a missing calibration file must exit 1"
grep -q "none.txt.gz: cannot open calibration text" "$tmp/err" || fail "message: $(cat "$tmp/err")"
head -c 3000 "$S/datasets/corpus/brown.txt.gz" > "$tmp/bad.txt.gz" # a truncated gzip stream
"$T" compress --model "$M" --codec mixed:budget=4.5 --calib "$tmp/bad.txt.gz" --out "$tmp/x.tpk" > /dev/null 2> "$tmp/err"; [ $? = 1 ] || fail "a truncated .gz must exit 1"
grep -q "bad.txt.gz: corrupt gzip stream" "$tmp/err" || fail "message: $(cat "$tmp/err")"
"$T" compress --model "$M" --codec mixed:budget=4 --out "$tmp/x.tpk" > /dev/null 2> "$tmp/err"; [ $? = 1 ] || fail "budget 4 must exit 1"
grep -q "budget" "$tmp/err" || fail "message: $(cat "$tmp/err")"
"$T" compress --model "$M" --codec awq:g=128 --calib-tokens 1 --out "$tmp/x.tpk" > /dev/null 2>&1; [ $? = 2 ] || fail "--calib-tokens 1 must exit 2"
[ -e "$tmp/x.tpk" ] && fail "a failed compress left $tmp/x.tpk"
ls "$tmp" | grep -q '\.tmp' && fail "a temporary file was left"
echo "calib_cli: ok"
