#!/usr/bin/env bash
# tenpak zip beside the general-purpose compressors on the same bytes, in one run:
#   bench/zip_compare.sh TENPAK MODEL_DIR BYTES OUT.json [FILE...]
# Each FILE is cut to its first BYTES bytes (for the python-docs corpus: the held-out tail, its
# last 500,000 characters, cut the same way). Prints a table; writes OUT.json.
set -euo pipefail
T="$1"; M="$2"; N="$3"; OUTJ="$4"; shift 4
S="${TENPAK_SHARED_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/shared}"
files=("$@")
[ ${#files[@]} -gt 0 ] || files=("$S/datasets/wikitext-2-raw/wiki.test.raw" "$S/datasets/corpus/python-docs.txt.gz")
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
echo "[" > "$tmp/out.json"; first=1
printf '%-36s %8s %10s %10s %10s %8s %8s %8s %8s %8s %9s\n' file bytes tenpak-ac stream bound gap% gzip-9 xz-9 zstd-19 bzip2-9 kB/s
for f in "${files[@]}"; do
  name=$(basename "$f")
  if [[ "$f" == *.gz ]]; then
    # the held-out tail: last 500,000 characters (UTF-8), then the first BYTES bytes of it
    gzip -dc "$f" | python3 -c "import sys; t=sys.stdin.buffer.read().decode('utf-8'); sys.stdout.buffer.write(t[-500000:].encode('utf-8'))" > "$tmp/full"
    name="$name (held-out tail)"
  else cp "$f" "$tmp/full"; fi
  head -c "$N" "$tmp/full" > "$tmp/in"
  n=$(stat -c %s "$tmp/in")
  "$T" zip --model "$M" --coder ac --json "$tmp/z.json" "$tmp/in" "$tmp/in.tpz" > /dev/null
  "$T" unzip --model "$M" "$tmp/in.tpz" "$tmp/back" > /dev/null
  cmp -s "$tmp/in" "$tmp/back" || { echo "round trip failed on $name" >&2; exit 1; }
  gz=$(gzip -9 -c "$tmp/in" | wc -c); xz=$(xz -9 -c "$tmp/in" | wc -c)
  zs=$(zstd -19 --long -q -c "$tmp/in" | wc -c); bz=$(bzip2 -9 -c "$tmp/in" | wc -c)
  read -r bpb pbpb mbpb gap kbps < <(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(d['bits_per_byte'], d['payload_bits_per_byte'], d['model_bits_per_byte'], d['gap_percent'], d['kB_per_s'])" "$tmp/z.json")
  printf '%-36s %8d %10.4f %10.4f %10.4f %8.2f %8.4f %8.4f %8.4f %8.4f %9.2f\n' "$name" "$n" "$bpb" "$pbpb" "$mbpb" "$gap" \
    "$(echo "8*$gz/$n" | bc -l)" "$(echo "8*$xz/$n" | bc -l)" "$(echo "8*$zs/$n" | bc -l)" "$(echo "8*$bz/$n" | bc -l)" "$kbps"
  [ $first -eq 1 ] || echo "," >> "$tmp/out.json"; first=0
  python3 - "$tmp/z.json" "$name" "$n" "$gz" "$xz" "$zs" "$bz" >> "$tmp/out.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); n = int(sys.argv[3])
d.update({"file": sys.argv[2], "bytes": n, "gzip_9_bits_per_byte": 8 * int(sys.argv[4]) / n,
          "xz_9_bits_per_byte": 8 * int(sys.argv[5]) / n, "zstd_19_long_bits_per_byte": 8 * int(sys.argv[6]) / n,
          "bzip2_9_bits_per_byte": 8 * int(sys.argv[7]) / n, "round_trip": "exact"})
print(json.dumps(d, indent=1))
PY
done
echo "]" >> "$tmp/out.json"
cp "$tmp/out.json" "$OUTJ"
