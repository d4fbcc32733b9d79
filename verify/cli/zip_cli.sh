#!/usr/bin/env bash
# tenpak zip / unzip: exact round trips with both coders, text the tokenizer cannot reproduce
# (raw-byte fallback), and bad input: wrong model, truncated and damaged files, empty input.
set -u
T="$1"; S="$2"; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
L="$S/models/llama-mini"; G="$S/models/gpt2-mini"
head -c 700 "$S/datasets/wikitext-2-raw/wiki.test.raw" > "$tmp/a.txt"
for m in "$L" "$G"; do
  for c in ac rans; do
    "$T" zip --model "$m" --coder $c --json "$tmp/z.json" "$tmp/a.txt" "$tmp/a.tpz" >/dev/null || fail "zip $c $m"
    "$T" unzip --model "$m" "$tmp/a.tpz" "$tmp/a.out" >/dev/null || fail "unzip $c $m"
    cmp -s "$tmp/a.txt" "$tmp/a.out" || fail "round trip $c $m differs"
  done
done
python3 -c "
import json,sys; d=json.load(open(sys.argv[1]))
for k in ('bits_per_byte','model_bits_per_byte','gap_percent','kB_per_s','coder'): assert k in d, k
assert d['coder']=='rans' and d['bits_per_byte'] > 0" "$tmp/z.json" || fail "zip JSON"
# determinism across thread counts: compress on one thread, decompress on two
OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 "$T" zip --model "$L" "$tmp/a.txt" "$tmp/t1.tpz" >/dev/null || fail "zip 1 thread"
OPENBLAS_NUM_THREADS=2 OMP_NUM_THREADS=2 "$T" unzip --model "$L" "$tmp/t1.tpz" "$tmp/t1.out" >/dev/null || fail "unzip 2 threads"
cmp -s "$tmp/a.txt" "$tmp/t1.out" || fail "1-thread zip / 2-thread unzip differs"
# the compressed model on its packed kernels (--artifact): the same determinism across threads; a
# file made with the artifact needs the artifact, the plain model is refused
"$T" compress --model "$L" --codec int4:g=32 --compress-embeddings --out "$tmp/l.tpk" >/dev/null || fail "compress"
OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 "$T" zip --artifact "$tmp/l.tpk" "$tmp/a.txt" "$tmp/p1.tpz" >/dev/null || fail "zip --artifact 1 thread"
OPENBLAS_NUM_THREADS=2 OMP_NUM_THREADS=2 "$T" unzip --artifact "$tmp/l.tpk" "$tmp/p1.tpz" "$tmp/p1.out" >/dev/null || fail "unzip --artifact 2 threads"
cmp -s "$tmp/a.txt" "$tmp/p1.out" || fail "artifact 1-thread zip / 2-thread unzip differs"
"$T" unzip --model "$L" "$tmp/p1.tpz" "$tmp/p2.out" 2> "$tmp/err"; [ $? -eq 1 ] || fail "plain model accepted for an artifact's file"
grep -q "another model" "$tmp/err" || fail "artifact/model message: $(cat "$tmp/err")"
[ -e "$tmp/p2.out" ] && fail "output written for a refused artifact file"
# bytes no tokenizer reproduces: invalid UTF-8, NUL, CR, a lone continuation byte
printf 'caf\xc3\xa9 ok\r\nbad \xff\xfe bytes\x00 here\n\x80tail line\n' > "$tmp/b.bin"
"$T" zip --model "$L" "$tmp/b.bin" "$tmp/b.tpz" > "$tmp/b.log" || fail "zip binary"
"$T" unzip --model "$L" "$tmp/b.tpz" "$tmp/b.out" >/dev/null || fail "unzip binary"
cmp -s "$tmp/b.bin" "$tmp/b.out" || fail "binary round trip differs"
# the wrong model is refused, nothing written
"$T" unzip --model "$G" "$tmp/b.tpz" "$tmp/w.out" 2> "$tmp/err"; [ $? -eq 1 ] || fail "wrong model accepted"
grep -q "another" "$tmp/err" || fail "wrong-model message: $(cat "$tmp/err")"
[ -e "$tmp/w.out" ] && fail "output written for a refused file"
# truncated and damaged files
n=$(stat -c %s "$tmp/b.tpz")
for cut in 0 10 100 $((n - 9)) $((n - 1)); do
  head -c $cut "$tmp/b.tpz" > "$tmp/t.tpz"
  "$T" unzip --model "$L" "$tmp/t.tpz" "$tmp/t.out" 2>/dev/null; [ $? -eq 1 ] || fail "truncated to $cut accepted"
  [ -e "$tmp/t.out" ] && fail "output left for a truncated file"
done
python3 -c "
import sys; b=bytearray(open(sys.argv[1],'rb').read()); b[len(b)//2]^=0x40; open(sys.argv[2],'wb').write(b)" "$tmp/b.tpz" "$tmp/d.tpz"
"$T" unzip --model "$L" "$tmp/d.tpz" "$tmp/d.out" 2>/dev/null; [ $? -eq 1 ] || fail "damaged file accepted"
: > "$tmp/empty.txt"
"$T" zip --model "$L" "$tmp/empty.txt" "$tmp/e.tpz" 2>/dev/null; [ $? -eq 1 ] || fail "empty input accepted"
[ -e "$tmp/e.tpz" ] && fail "output written for empty input"
ls "$tmp" | grep -q '\.tmp\.' && fail "temporary file left behind"
echo "zip_cli: ok"
