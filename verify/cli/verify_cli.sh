#!/usr/bin/env bash
# tenpak verify / list / codecs from the outside: exit codes, the closing line, the JSON.
set -u
T="$1"; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

out=$("$T" verify --filter 'gemv/int4_g32/' --seed 7 --json "$tmp/v.json") || fail "verify exited $?"
echo "$out" | tail -n1 | grep -Eq '^[0-9]+ passed, 0 failed$' || fail "closing line: $(echo "$out" | tail -n1)"
echo "$out" | head -n1 | grep -q 'seed 7' || fail "seed not printed"
python3 - "$tmp/v.json" <<'PY' || fail "verify JSON"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["seed"] == "7" and d["failed"] == 0 and d["passed"] == len(d["cases"]) > 0
for c in d["cases"]:
    for k in ("op", "variant", "backend", "shape", "metric", "value", "bound", "result"):
        assert k in c, k
PY
# the same seed gives the same metrics (replayable)
"$T" verify --filter 'gemv/int4_g32/' --seed 7 --json "$tmp/v2.json" >/dev/null || fail "second run"
cmp -s <(grep -v '"date"' "$tmp/v.json") <(grep -v '"date"' "$tmp/v2.json") || fail "--seed does not replay"
"$T" verify --filter 'dequant/nf4' --self-test | tail -n1 | grep -Eq '^[0-9]+ passed, 0 failed$' || fail "self-test"
"$T" verify --filter 'dequant/nf4' --graph | tail -n1 | grep -Eq '^[0-9]+ passed, 0 failed$' || fail "--graph (CPU kernels: run once)"
"$T" verify --filter '(' >/dev/null 2>&1; [ $? -eq 2 ] || fail "bad regex must exit 2"
"$T" verify --bogus >/dev/null 2>&1; [ $? -eq 2 ] || fail "unknown option must exit 2"
"$T" verify --seed x >/dev/null 2>&1; [ $? -eq 2 ] || fail "bad seed must exit 2"
"$T" verify --filter 'no-such-kernel' >/dev/null 2>&1; [ $? -eq 1 ] || fail "no match must exit 1"
"$T" list | grep -q '^gemv .*int4_g128 .*cpu' || fail "list"
"$T" codecs | grep -Eq '^int4:g=128,refine=0 +[0-9]+ +4\.2500' || fail "codecs g128 4.25"
"$T" codecs --json "$tmp/c.json" >/dev/null && python3 -c "import json,sys; assert len(json.load(open(sys.argv[1]))['codecs'])>=7" "$tmp/c.json" || fail "codecs json"
"$T" codecs --model "$tmp/no-such-model" --json "$tmp/m.json" 2>"$tmp/err"; [ $? -eq 1 ] || fail "missing model must exit 1"
grep -q 'no-such-model' "$tmp/err" || fail "error must name the folder: $(cat "$tmp/err")"
[ -e "$tmp/m.json" ] && fail "no JSON may be written for a failed run"
ls "$tmp" | grep -q tmp && fail "temporary file left behind"
echo "verify_cli: ok"
