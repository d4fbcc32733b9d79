#!/bin/bash
# tenpak tokenize / ppl on bad model folders: one line on stderr naming the file and the problem,
# a non-zero exit, and no output file left behind. Bad folders are made here, in a temp dir.
# usage: pipeline_bad_input.sh TENPAK_BINARY SHARED_DIR
set -u
TP=$1
SHARED=$2
T=$(mktemp -d /tmp/tenpak-cli-XXXXXX)
trap 'rm -rf "$T"' EXIT
fail=0
echo "some text" > "$T/in.txt"

# expect_fail NAME NEEDLE OUTFILE CMD...: non-zero exit, one stderr line containing NEEDLE, no OUTFILE
expect_fail() {
    local name=$1 needle=$2 out=$3
    shift 3
    "$@" > "$T/stdout" 2> "$T/stderr"
    local rc=$?
    local lines
    lines=$(wc -l < "$T/stderr")
    if [ $rc -eq 0 ]; then echo "FAIL $name: exit 0"; fail=1; fi
    if [ "$lines" -ne 1 ]; then echo "FAIL $name: $lines stderr lines"; cat "$T/stderr"; fail=1; fi
    if ! grep -qF -- "$needle" "$T/stderr"; then echo "FAIL $name: stderr lacks '$needle':"; cat "$T/stderr"; fail=1; fi
    if [ -e "$out" ] || ls "$out".tmp.* > /dev/null 2>&1; then echo "FAIL $name: $out was written"; fail=1; fi
    [ $fail -eq 0 ] && echo "ok   $name"
}

# a folder whose config and shards are broken in different ways
mk() { rm -rf "$T/m"; mkdir -p "$T/m"; }

mk; printf '{"model_type": "bert"}' > "$T/m/config.json"
expect_fail unknown_model_type "unknown model_type 'bert'" "$T/out.json" \
    "$TP" ppl --model "$T/m" --data "$T/in.txt" --json "$T/out.json"

mk; printf '{"model": {"type": "WordPiece", "vocab": {}}}' > "$T/m/tokenizer.json"
expect_fail unsupported_tokenizer "tokenizer.json: tokenizer model 'WordPiece' is not supported" "$T/ids.u32" \
    "$TP" tokenize --model "$T/m" --ids-out "$T/ids.u32" "$T/in.txt"

mk; printf '{"model": ' > "$T/m/tokenizer.json"
expect_fail malformed_tokenizer "not a well-formed JSON" "$T/ids.u32" \
    "$TP" tokenize --model "$T/m" --ids-out "$T/ids.u32" "$T/in.txt"

mk; cp "$SHARED/models/llama-mini/config.json" "$T/m/"
printf '{"weight_map": {"a": "model-00001-of-00002.safetensors"}}' > "$T/m/model.safetensors.index.json"
expect_fail missing_shard "model-00001-of-00002.safetensors: missing shard" "$T/out.json" \
    "$TP" ppl --model "$T/m" --data "$T/in.txt" --json "$T/out.json"

mk; cp "$SHARED/models/llama-mini/config.json" "$T/m/"
head -c 5000 "$SHARED/models/llama-mini/model-00003-of-00003.safetensors" > "$T/m/model.safetensors"
expect_fail truncated_safetensors "model.safetensors: tensor" "$T/out.json" \
    "$TP" ppl --model "$T/m" --data "$T/in.txt" --json "$T/out.json"

mk; cp "$SHARED/models/llama-mini/config.json" "$T/m/"
printf '\x10\x00\x00\x00\x00\x00\x00\x00{"a": {"dtype"}}' > "$T/m/model.safetensors"
expect_fail bad_header_json "header is not a well-formed JSON" "$T/out.json" \
    "$TP" ppl --model "$T/m" --data "$T/in.txt" --json "$T/out.json"

expect_fail missing_text "cannot open" "$T/ids.u32" \
    "$TP" tokenize --model "$SHARED/models/gpt2-mini" --ids-out "$T/ids.u32" "$T/absent.txt"

# and the good path writes exactly the ids
if "$TP" tokenize --model "$SHARED/models/gpt2-mini" --ids-out "$T/ids.u32" "$T/in.txt" 2> /dev/null &&
   [ "$(od -An -tu4 -w1000 "$T/ids.u32" | tr -s ' ')" = " 11246 2420 198" ]; then
    echo "ok   tokenize_good"
else
    echo "FAIL tokenize_good: $(od -An -tu4 "$T/ids.u32" 2>&1)"; fail=1
fi
exit $fail
