#!/usr/bin/env bash
# datasets/fetch.py without the network: --check on a temp layout of local files (good, corrupted,
# wrong size, missing, unpinned), bad manifests, and the download path through a file:// mirror
# (checksum rejection leaves no file behind). Also: the shipped manifest parses and names the
# layout tenpak reads.
set -u
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
cd "$(dirname "$0")/../.." || fail "cd"
F="python3 datasets/fetch.py"
rev=0123456789abcdef0123456789abcdef01234567
# a mirror: $tmp/src/<repo>/resolve/<rev>/<path>, random contents (never zeros)
src="$tmp/src/org/model/resolve/$rev"; mkdir -p "$src/sub"
head -c 5000 /dev/urandom > "$src/weights.bin"
printf 'hello tenpak %s\n' "$RANDOM" > "$src/sub/notes.txt"
printf 'unpinned %s\n' "$RANDOM" > "$src/extra.json"
h1=$(sha256sum "$src/weights.bin" | cut -d' ' -f1); h2=$(sha256sum "$src/sub/notes.txt" | cut -d' ' -f1)
cat > "$tmp/m.json" <<JSON
{"entries": [{"name": "toy", "kind": "model", "repo": "org/model", "revision": "$rev", "dest": "models/toy",
  "files": [{"path": "weights.bin", "bytes": 5000, "sha256": "$h1"}, {"path": "sub/notes.txt", "sha256": "$h2"},
            {"path": "extra.json", "sha256": null}]}]}
JSON
corrupt() { python3 -c 'import sys; p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[int(sys.argv[2])] ^= 0xFF; open(p, "wb").write(b)' "$1" "$2"; }
run() { $F --manifest "$tmp/m.json" "$@" > "$tmp/out" 2> "$tmp/err"; echo $?; }
# download through the mirror into a fresh layout
[ "$(run "$tmp/dl" --base-url "file://$tmp/src")" = 0 ] || { cat "$tmp/err"; fail "download from a good mirror must exit 0"; }
cmp -s "$src/weights.bin" "$tmp/dl/models/toy/weights.bin" || fail "downloaded weights.bin differs"
[ -f "$tmp/dl/models/toy/notes.txt" ] || fail "sub/notes.txt not placed at dest/notes.txt"
grep -q "UNPINNED" "$tmp/err" || fail "an unpinned file must be warned about"
grep -q "2 verified, 1 unpinned, 0 failed" "$tmp/out" || fail "summary: $(cat "$tmp/out")"
# --check: good
[ "$(run --check "$tmp/dl")" = 0 ] || fail "--check on a good layout must exit 0"
[ "$(run --check "$tmp/dl" --strict)" = 1 ] || fail "--strict must fail on an unpinned file"
# corrupted: one byte changed
cp -r "$tmp/dl" "$tmp/bad"; corrupt "$tmp/bad/models/toy/weights.bin" 100
[ "$(run --check "$tmp/bad")" = 1 ] || fail "a corrupted file must exit 1"
grep -q "models/toy/weights.bin: sha256 " "$tmp/err" || fail "corruption message must name the file: $(cat "$tmp/err")"
# wrong size
head -c 4999 "$src/weights.bin" > "$tmp/bad/models/toy/weights.bin"
[ "$(run --check "$tmp/bad")" = 1 ] || fail "a short file must exit 1"
grep -q "weights.bin: size 4999 bytes, manifest says 5000" "$tmp/err" || fail "size message: $(cat "$tmp/err")"
# missing
rm "$tmp/bad/models/toy/notes.txt"
[ "$(run --check "$tmp/bad")" = 1 ] || fail "a missing file must exit 1"
grep -q "models/toy/notes.txt: missing" "$tmp/err" || fail "missing message: $(cat "$tmp/err")"
[ "$(run --check "$tmp/nowhere")" = 1 ] || fail "--check on a missing directory must exit 1"
# a mirror serving a corrupted file: rejected, nothing left under its name or as .part
corrupt "$src/weights.bin" 7
[ "$(run "$tmp/dl2" --base-url "file://$tmp/src")" = 1 ] || fail "a download with a bad checksum must exit 1"
grep -q "downloaded file rejected" "$tmp/err" || fail "rejection message: $(cat "$tmp/err")"
ls "$tmp/dl2/models/toy/" | grep -q "weights.bin" && fail "a rejected download was left behind"
# bad manifests: one line naming the manifest, exit 2
echo '{"entries": [' > "$tmp/broken.json"
$F --manifest "$tmp/broken.json" --check "$tmp/dl" 2> "$tmp/err"; [ $? = 2 ] || fail "invalid JSON manifest must exit 2"
grep -q "broken.json: not valid JSON" "$tmp/err" && [ "$(wc -l < "$tmp/err")" = 1 ] || fail "manifest error: $(cat "$tmp/err")"
sed "s/$rev/main/" "$tmp/m.json" > "$tmp/unpinned-rev.json"
$F --manifest "$tmp/unpinned-rev.json" --check "$tmp/dl" 2> "$tmp/err"; [ $? = 2 ] || fail "a branch name as revision must exit 2"
grep -q "revision must be a 40-hex commit hash" "$tmp/err" || fail "revision message: $(cat "$tmp/err")"
$F --manifest "$tmp/m.json" --check "$tmp/dl" --only nope 2> "$tmp/err"; [ $? = 2 ] || fail "--only unknown must exit 2"
# the shipped manifest: valid, pinned revisions, the layout tenpak's claims and report read
$F --check "$tmp/empty-layout" 2>/dev/null; [ $? = 1 ] || fail "shipped manifest on a missing dir must exit 1"
mkdir "$tmp/empty"
$F --check "$tmp/empty" > "$tmp/out" 2> "$tmp/err"; [ $? = 1 ] || fail "shipped manifest on an empty dir must exit 1"
for p in models/gpt2/model.safetensors models/TinyLlama-1.1B-Chat-v1.0/tokenizer.json datasets/wikitext-2-raw/test-00000-of-00001.parquet; do
  grep -q "$p: missing" "$tmp/err" || fail "shipped manifest does not lay out $p"
done
git ls-files datasets | grep -Eq '\.(safetensors|parquet|raw|gz)$' && fail "data files are committed under datasets/"
echo "datasets_fetch: ok"
