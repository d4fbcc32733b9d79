#!/usr/bin/env bash
# tenpak entropy encode / decode: round trips for both coders and nibble symbols (and both rANS
# table lookups, TENPAK_RANS_LOOKUP), the JSON fields, and bad input (truncated, corrupted, not a
# block, missing file): one line on stderr naming the file, a non-zero exit, and no output file.
# usage: entropy_cli.sh TENPAK_BINARY SHARED_DIR
set -u
T="$1"; tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
python3 - "$tmp/in.txt" <<'PY'
import random, sys
random.seed(7)
words = "the of and to in is was for on that with as by at from his it an were are which".split()
open(sys.argv[1], "w").write(" ".join(random.choice(words) for _ in range(60000)))
PY
for c in rans ac; do
  for sb in 8 4; do
    "$T" entropy encode --coder $c --sym-bits $sb --repeat 1 --json "$tmp/e.json" "$tmp/in.txt" "$tmp/x.tpec" >/dev/null || fail "encode $c/$sb"
    "$T" entropy decode --json "$tmp/d.json" "$tmp/x.tpec" "$tmp/out.txt" >/dev/null || fail "decode $c/$sb"
    cmp -s "$tmp/in.txt" "$tmp/out.txt" || fail "round trip $c/$sb"
    python3 - "$tmp/e.json" "$c" "$sb" <<'PY' || fail "encode JSON $c/$sb"
import json, sys
d = json.load(open(sys.argv[1]))
for k in ("ratio", "bits_per_byte", "entropy_bits_per_byte", "encode_MBps", "decode_MBps"):
    assert isinstance(d[k], (int, float)) and d[k] > 0, k
assert d["coder"] == sys.argv[2], d["coder"]
assert d["ratio"] > (1.5 if sys.argv[3] == "8" else 1.1), d["ratio"]
PY
  done
done
# the AVX-512 decoder's table lookups forced each way (at scale 15, where they differ; encode
# checks its round trip), the JSON naming the one used
for l in scalar gather; do
  TENPAK_RANS_LOOKUP=$l "$T" entropy encode --coder rans --scale-bits 15 --repeat 1 --json "$tmp/l.json" \
    "$tmp/in.txt" "$tmp/l.tpec" >/dev/null || fail "encode, lookup $l"
  python3 -c "import json, sys; d = json.load(open(sys.argv[1])); assert d['rans_lookup'] == sys.argv[2], d" \
    "$tmp/l.json" $l || fail "rans_lookup $l"
done
# bad input
"$T" entropy encode --coder rans --repeat 1 "$tmp/in.txt" "$tmp/good.tpec" >/dev/null || fail "encode"
n=$(stat -c %s "$tmp/good.tpec")
head -c $((n - 9)) "$tmp/good.tpec" > "$tmp/trunc.tpec"
python3 -c "import sys; b=bytearray(open(sys.argv[1],'rb').read()); b[len(b)//2]^=0x10; open(sys.argv[2],'wb').write(b)" "$tmp/good.tpec" "$tmp/flip.tpec"
python3 -c "import sys; b=bytearray(open(sys.argv[1],'rb').read()); b[7]=13; open(sys.argv[2],'wb').write(b)" "$tmp/good.tpec" "$tmp/scale.tpec"
cp "$tmp/in.txt" "$tmp/notablock.tpec"
for bad in trunc flip scale notablock missing; do
  rm -f "$tmp/bad.out"
  "$T" entropy decode "$tmp/$bad.tpec" "$tmp/bad.out" >/dev/null 2>"$tmp/err.txt" && fail "$bad accepted"
  [ -e "$tmp/bad.out" ] && fail "$bad: output written"
  [ "$(wc -l < "$tmp/err.txt")" -eq 1 ] || fail "$bad: not one line: $(cat "$tmp/err.txt")"
  grep -q "$bad.tpec" "$tmp/err.txt" || fail "$bad: message does not name the file"
done
"$T" entropy encode --coder zz "$tmp/in.txt" "$tmp/o" 2>/dev/null && fail "bad --coder accepted"
# streams on a real model (when the shared models are there): the byte planes of the scales, the
# VQ codes and the 2:4 metadata are reported, with every round trip checked
M="${2:-}/models/llama-mini"
if [ -d "$M" ]; then
  "$T" entropy streams --model "$M" --group 128 --repeat 1 --vq-tensors 2 --vq-iters 2 --json "$tmp/s.json" >/dev/null \
    || fail "streams"
  python3 - "$tmp/s.json" <<'PY' || fail "streams JSON"
import json, sys
d = json.load(open(sys.argv[1]))
rows = d if isinstance(d, list) else next(v for v in d.values() if isinstance(v, list))
seen = {(r["stream"], r["method"]) for r in rows}
for s in ("codes", "scales", "scales.hi", "scales.lo", "vq.codes", "sp24.meta"):
    assert (s, "rans o0 bytes") in seen and (s, "zstd -19") in seen, s
assert ("sp24.meta", "rans o0 nibbles") in seen
for r in rows:
    assert r["bytes_out"] > 0 and r["ratio"] > 0, r
PY
fi
echo "PASS"
