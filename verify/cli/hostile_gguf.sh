#!/usr/bin/env bash
# GGUF files that lie: each of verify/cli/gguf_lies.py's files (wrong magic, version 1,
# absurd tensor and array counts, truncated, tensors past the end / misaligned / overlapping,
# unknown and unsupported type ids, a block count that does not fit the shape, an absurd shape,
# metadata of the wrong type for known keys, an unsupported architecture) makes `tenpak ppl`,
# `tokenize` and `eval --artifact` exit 1 with one line on stderr naming the file and the problem
# (no crash, nothing written); the valid tiny file beside them runs.
set -u
T="$1"; S="$2"; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
export TENPAK_SHARED_DIR="$S" OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
here="$(cd "$(dirname "$0")" && pwd)"
python3 "$here/gguf_lies.py" "$tmp/g" > "$tmp/lies" || fail "gguf_lies.py"
printf 'Hello world\n' > "$tmp/t.txt"
"$T" tokenize --model "$tmp/g/ok.gguf" "$tmp/t.txt" > /dev/null 2>&1 || fail "the valid tiny GGUF: tokenize"
"$T" ppl --model "$tmp/g/ok.gguf" --data "$tmp/t.txt" > /dev/null 2>&1 || fail "the valid tiny GGUF: ppl"
n=0
while IFS=$'\t' read -r name want; do
  f="$tmp/g/$name.gguf"
  tok="tokenize --model $f $tmp/t.txt"
  # tokenize reads only the tokenizer keys: lies about the model's keys do not concern it
  case "$name" in keytype|arch) tok="ppl --model $f --data $tmp/t.txt" ;; esac
  for cmd in "$tok" "ppl --model $f --data $tmp/t.txt --json $tmp/o.json" \
             "eval --artifact $f --model $S/models/llama-mini --data $tmp/t.txt --json $tmp/o.json"; do
    # shellcheck disable=SC2086
    "$T" $cmd > /dev/null 2> "$tmp/err"; rc=$?
    [ $rc -eq 1 ] || fail "$name: '$cmd' exited $rc: $(cat "$tmp/err")"
    [ "$(wc -l < "$tmp/err")" -eq 1 ] || fail "$name: not one line: $(cat "$tmp/err")"
    grep -qF "$f" "$tmp/err" || fail "$name: the message does not name the file: $(cat "$tmp/err")"
    grep -qF "$want" "$tmp/err" || fail "$name: '$cmd' said '$(cat "$tmp/err")', wanted '$want'"
    [ ! -e "$tmp/o.json" ] || fail "$name: output written"
  done
  n=$((n + 1))
done < "$tmp/lies"
[ $n -ge 15 ] || fail "only $n lying files"
echo "hostile_gguf: $n lying files refused by tokenize, ppl and eval"
