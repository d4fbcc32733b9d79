#!/usr/bin/env bash
# tenpak generate: streamed text and JSON on llama-mini, greedy reproducibility, -n 0, and the
# refusals: an empty prompt on gpt2-mini (no BOS: 0 tokens), an unknown flag, a missing
# --prompt-file, an over-long request.
set -u
T="$1"; S="$2"; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
L="$S/models/llama-mini"; G="$S/models/gpt2-mini"
"$T" generate --model "$L" --prompt "The history of the city" -n 8 --json "$tmp/g.json" \
  > "$tmp/out" 2> "$tmp/err" || fail "generate -n 8: $(cat "$tmp/err")"
[ -s "$tmp/out" ] || fail "no text on stdout"
for k in prefill decode ttft "peak RSS"; do grep -q "^$k" "$tmp/err" || fail "no '$k' line on stderr"; done
python3 -c "
import json,sys; d=json.load(open(sys.argv[1])); out=open(sys.argv[2],encoding='utf-8').read()
for k in ('model','artifact','codec','exec','prompt_tokens','generated_tokens','ids','text',
          'prefill_tokens_per_second','decode_tokens_per_second','ttft_seconds','peak_rss_bytes',
          'temp','top_k','seed'): assert k in d, k
assert d['generated_tokens'] == len(d['ids']) and 1 <= len(d['ids']) <= 8, d['ids']
assert d['prompt_tokens'] == 6 and d['artifact'] is None
assert d['prefill_tokens_per_second'] > 0 and d['ttft_seconds'] > 0 and d['peak_rss_bytes'] > 0
assert out == d['text'] + '\n', (out, d['text'])" "$tmp/g.json" "$tmp/out" || fail "generate JSON"
# greedy is deterministic
"$T" generate --model "$L" --prompt "The history of the city" -n 8 > "$tmp/out2" 2>/dev/null || fail "second run"
cmp -s "$tmp/out" "$tmp/out2" || fail "greedy output differs between runs"
# sampled: the same seed, the same text
for r in 1 2; do
  "$T" generate --model "$G" --prompt "Once" -n 12 --temp 0.9 --top-k 40 --seed 7 > "$tmp/s$r" 2>/dev/null || fail "sampled run $r"
done
cmp -s "$tmp/s1" "$tmp/s2" || fail "same seed, different text"
# -n 0: prefill only, stats printed, no text
"$T" generate --model "$L" --prompt "Hello" -n 0 --json "$tmp/z.json" > "$tmp/out" 2> "$tmp/err" || fail "-n 0"
[ -s "$tmp/out" ] && fail "-n 0 printed text"
grep -q "^prefill" "$tmp/err" || fail "-n 0: no prefill line"
python3 -c "
import json,sys; d=json.load(open(sys.argv[1])); assert d['generated_tokens']==0 and d['ids']==[] and d['text']==''" \
  "$tmp/z.json" || fail "-n 0 JSON"
# an empty prompt on gpt2-mini is 0 tokens: exit 1, one line
"$T" generate --model "$G" --prompt "" -n 4 > "$tmp/out" 2> "$tmp/err"; rc=$?; [ $rc -eq 1 ] || fail "empty prompt: exit $rc"
[ "$(wc -l < "$tmp/err")" -eq 1 ] || fail "empty prompt: $(cat "$tmp/err")"
grep -q "^tenpak generate: empty prompt" "$tmp/err" || fail "empty prompt message: $(cat "$tmp/err")"
# over-long: prompt + n beyond the context, both numbers named
"$T" generate --model "$G" --prompt "Hello" -n 5000 2> "$tmp/err" >/dev/null; [ $? -eq 1 ] || fail "over-long accepted"
grep -q "5000" "$tmp/err" && grep -q "1024" "$tmp/err" || fail "over-long message: $(cat "$tmp/err")"
# bad usage: exit 2
"$T" generate --model "$L" --prompt x -n 2 --nope 2> "$tmp/err" >/dev/null; [ $? -eq 2 ] || fail "unknown flag not exit 2"
[ "$(wc -l < "$tmp/err")" -eq 1 ] || fail "unknown flag: $(cat "$tmp/err")"
"$T" generate --model "$L" --prompt x 2>/dev/null >/dev/null; [ $? -eq 2 ] || fail "missing -n not exit 2"
"$T" generate --model "$L" --prompt x -n 2 --temp -1 2>/dev/null >/dev/null; [ $? -eq 2 ] || fail "--temp -1 not exit 2"
# a missing prompt file: runtime failure, exit 1
"$T" generate --model "$L" --prompt-file "$tmp/none.txt" -n 2 2> "$tmp/err" >/dev/null; [ $? -eq 1 ] || fail "missing prompt file"
grep -q "^tenpak generate: .*none.txt" "$tmp/err" || fail "missing file message: $(cat "$tmp/err")"
"$T" generate --help | grep -q -- "--prompt-file" || fail "--help"
echo "generate_cli: ok"
