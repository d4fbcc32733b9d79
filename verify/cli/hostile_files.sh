#!/bin/bash
# Hostile files: no command destroys what it reads, none waits on a FIFO, none leaves a
# temporary file behind. An output that is the same file as an input (same path, a hard link or a
# symbolic link) or as another output is refused in one line naming the option and the file, with a
# non-zero exit and the input unchanged; a FIFO given as an input is refused at once; SIGINT or
# SIGTERM during `compress` removes its *.tpk.tmp.* file.
# usage: hostile_files.sh TENPAK_BINARY SHARED_DIR
set -u
TP=$1
SHARED=$2
T=$(mktemp -d /tmp/tenpak-hostile-XXXXXX)
trap 'rm -rf "$T"' EXIT
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
LM=$SHARED/models/llama-mini
fail=0
bad() { echo "FAIL $*"; fail=1; }

printf 'The quick brown fox jumps over the lazy dog. It was the best of times.\n' > "$T/f.txt"
cp "$T/f.txt" "$T/f.txt.orig"

# refused NAME NEEDLE PROTECTED CMD...: non-zero exit (and not a timeout), one stderr line
# containing NEEDLE, PROTECTED still holds the bytes of PROTECTED.orig, no temporary file anywhere
refused() {
    local name=$1 needle=$2 prot=$3
    shift 3
    timeout 30 "$@" > "$T/stdout" 2> "$T/stderr"
    local rc=$? ok=1
    if [ $rc -eq 0 ] || [ $rc -eq 124 ]; then bad "$name: exit $rc"; ok=0; fi
    if [ "$(wc -l < "$T/stderr")" -ne 1 ]; then bad "$name: $(wc -l < "$T/stderr") stderr lines:"; cat "$T/stderr"; ok=0; fi
    if ! grep -qF -- "$needle" "$T/stderr"; then bad "$name: stderr lacks '$needle':"; cat "$T/stderr"; ok=0; fi
    if [ -n "$prot" ] && ! cmp -s "$prot" "$prot.orig"; then bad "$name: $prot was changed"; ok=0; fi
    if [ -n "$(find "$T" -name '*.tmp.*')" ]; then bad "$name: temporary file left: $(find "$T" -name '*.tmp.*')"; ok=0; fi
    [ $ok -eq 1 ] && echo "ok   $name"
}

# ---- an output that is an input ----
refused tokenize_same "--ids-out $T/f.txt is the same file as the input $T/f.txt" "$T/f.txt" \
    "$TP" tokenize --model "$LM" --ids-out "$T/f.txt" "$T/f.txt"
ln "$T/f.txt" "$T/hard.txt"
refused tokenize_hardlink "--ids-out $T/hard.txt is the same file as the input $T/f.txt" "$T/f.txt" \
    "$TP" tokenize --model "$LM" --ids-out "$T/hard.txt" "$T/f.txt"
ln -s f.txt "$T/sym.txt"
refused tokenize_symlink "--ids-out $T/sym.txt is the same file as the input" "$T/f.txt" \
    "$TP" tokenize --model "$LM" --ids-out "$T/sym.txt" "$T/f.txt"
[ -L "$T/sym.txt" ] || bad "tokenize_symlink: the link was replaced"
refused ppl_json_is_data "--json $T/f.txt is the same file as the input $T/f.txt" "$T/f.txt" \
    "$TP" ppl --model "$LM" --data "$T/f.txt" --json "$T/f.txt" --max-tokens 8

# compress --out naming one of the model's own files (a folder of links to the shared model)
mkdir "$T/m"
for f in "$LM"/*; do ln -s "$f" "$T/m/"; done
shard=$T/m/model-00001-of-00003.safetensors
refused compress_out_is_shard "--out $shard is the same file as the input" "" \
    "$TP" compress --model "$T/m" --codec int4:g=128 --out "$shard"
[ -L "$shard" ] || bad "compress_out_is_shard: the shard was replaced"
refused compress_out_is_config "--out $T/m/config.json is the same file as the input" "" \
    "$TP" compress --model "$T/m" --codec int4:g=128 --out "$T/m/config.json"
[ -L "$T/m/config.json" ] || bad "compress_out_is_config: config.json was replaced"
refused compress_out_is_json "--json $T/x.tpk is the same file as --out $T/x.tpk" "" \
    "$TP" compress --model "$LM" --codec int4:g=128 --out "$T/x.tpk" --json "$T/x.tpk"
[ -e "$T/x.tpk" ] && bad "compress_out_is_json: $T/x.tpk was written"

# an artifact to evaluate, zip with and protect
"$TP" compress --model "$LM" --codec int4:g=128 --out "$T/a.tpk" > /dev/null 2>&1 || bad "compress a.tpk"
cp "$T/a.tpk" "$T/a.tpk.orig"
refused eval_json_is_artifact "--json $T/a.tpk is the same file as the input $T/a.tpk" "$T/a.tpk" \
    "$TP" eval --artifact "$T/a.tpk" --data "$T/f.txt" --max-tokens 8 --json "$T/a.tpk"
refused eval_dump_is_data "--dump-tokens $T/f.txt is the same file as the input $T/f.txt" "$T/f.txt" \
    "$TP" eval --artifact "$T/a.tpk" --data "$T/f.txt" --max-tokens 8 --dump-tokens "$T/f.txt"

# zip / unzip / entropy: OUT equal to IN, --json equal to OUT
refused zip_out_is_in "OUT $T/f.txt is the same file as the input $T/f.txt" "$T/f.txt" \
    "$TP" zip --model "$LM" "$T/f.txt" "$T/f.txt"
refused zip_json_is_out "--json $T/o.tpz is the same file as OUT $T/o.tpz" "$T/f.txt" \
    "$TP" zip --model "$LM" --json "$T/o.tpz" "$T/f.txt" "$T/o.tpz"
[ -e "$T/o.tpz" ] && bad "zip_json_is_out: $T/o.tpz was written"
"$TP" zip --model "$LM" "$T/f.txt" "$T/z.tpz" > /dev/null 2>&1 || bad "zip z.tpz"
cp "$T/z.tpz" "$T/z.tpz.orig"
refused unzip_out_is_in "OUT $T/z.tpz is the same file as the input $T/z.tpz" "$T/z.tpz" \
    "$TP" unzip --model "$LM" "$T/z.tpz" "$T/z.tpz"
refused entropy_encode_same "OUT $T/f.txt is the same file as the input $T/f.txt" "$T/f.txt" \
    "$TP" entropy encode "$T/f.txt" "$T/f.txt"
refused entropy_encode_json_is_in "--json $T/f.txt is the same file as the input $T/f.txt" "$T/f.txt" \
    "$TP" entropy encode --json "$T/f.txt" "$T/f.txt" "$T/e.bin"
"$TP" entropy encode "$T/f.txt" "$T/e.bin" > /dev/null 2>&1 || bad "entropy encode e.bin"
cp "$T/e.bin" "$T/e.bin.orig"
refused entropy_decode_same "OUT $T/e.bin is the same file as the input $T/e.bin" "$T/e.bin" \
    "$TP" entropy decode "$T/e.bin" "$T/e.bin"

# ---- FIFOs are refused, not waited on ----
mkfifo "$T/fifo"
refused fifo_text "$T/fifo: not a regular file" "" "$TP" tokenize --model "$LM" "$T/fifo"
mkdir "$T/mf"
cp "$LM/config.json" "$LM/tokenizer.json" "$T/mf/"
mkfifo "$T/mf/model.safetensors"
refused fifo_shard "$T/mf/model.safetensors: not a regular file" "" \
    "$TP" ppl --model "$T/mf" --data "$T/f.txt"
refused fifo_artifact "$T/fifo: not a regular file" "" \
    "$TP" eval --artifact "$T/fifo" --data "$T/f.txt"
refused fifo_calib "$T/fifo: not a regular file" "" \
    "$TP" compress --model "$LM" --codec awq:g=128 --calib "$T/fifo" --out "$T/c.tpk"

# ---- a signal during compress removes the temporary file ----
set -m # job control: a background job of a script would otherwise ignore SIGINT
for sig in INT TERM; do
    rm -f "$T"/s.tpk*
    "$TP" compress --model "$LM" --codec int4:g=128 --lossless zstd --out "$T/s.tpk" > /dev/null 2>&1 &
    pid=$!
    for _ in $(seq 1 300); do
        [ -n "$(find "$T" -name 's.tpk.tmp.*')" ] && break
        sleep 0.1
    done
    if [ -z "$(find "$T" -name 's.tpk.tmp.*')" ]; then
        bad "signal_$sig: no temporary file appeared"
        kill "$pid" 2> /dev/null
        wait "$pid"
        continue
    fi
    kill -"$sig" "$pid"
    wait "$pid"
    rc=$?
    left=$(find "$T" -name 's.tpk*')
    if [ $rc -eq 0 ] || [ -n "$left" ]; then bad "signal_$sig: exit $rc, left: $left"
    else echo "ok   signal_$sig (exit $rc)"; fi
done
set +m

# ---- report merge --out: its outputs are claimed (an input among them is refused before any
# work) and written through registered temporaries (a signal while gnuplot draws leaves none) ----
mkdir -p "$T/rm" "$T/bin"
printf '%s\n' '{"context": {"host_name": "h", "tenpak_version": "0.1.0", "library_build": "Release", "isa": "avx2"},' \
    ' "benchmarks": [{"name": "copy/f32/memcpy/1024", "op": "copy", "variant": "f32", "backend": "memcpy",' \
    '  "shape": "1024", "baseline": true, "run_type": "iteration", "real_time": 1000.0, "time_unit": "ns",' \
    '  "bytes_per_second": 8.0e9}]}' > "$T/b.json"
cp "$T/b.json" "$T/rm/merged.json"
cp "$T/b.json" "$T/rm/merged.json.orig"
refused merge_input_is_output "--out $T/rm/merged.json is the same file as the input $T/rm/merged.json" \
    "$T/rm/merged.json" "$TP" report merge --out "$T/rm" "$T/b.json" "$T/rm/merged.json"
rm -f "$T/rm/merged.json.orig"
# a gnuplot that starts the first image it is told to write, then hangs
printf '#!/bin/sh\nf=$(sed -n "s/^set output .\\(.*\\).$/\\1/p" "$1" | head -n 1)\nprintf PNG > "$f"\necho $$ > "%s/gp.pid"\nexec sleep 30\n' \
    "$T" > "$T/bin/gnuplot"
chmod +x "$T/bin/gnuplot"
set -m
PATH="$T/bin:$PATH" "$TP" report merge --out "$T/rm" "$T/b.json" > /dev/null 2>&1 &
pid=$!
for _ in $(seq 1 100); do [ -s "$T/gp.pid" ] && break; sleep 0.1; done
if [ -s "$T/gp.pid" ]; then
    kill -TERM "$pid"
    wait "$pid"
    rc=$?
    kill "$(cat "$T/gp.pid")" 2> /dev/null
    left=$(find "$T/rm" -name '*.tmp.*' -o -name 'merged.png' -o -name 'merged.svg')
    if [ $rc -eq 0 ] || [ -n "$left" ]; then bad "merge_signal: exit $rc, left: $left"
    else echo "ok   merge_signal (exit $rc)"; fi
else
    bad "merge_signal: the fake gnuplot never ran"
    kill "$pid" 2> /dev/null
    wait "$pid"
fi
set +m

# and the good paths still work: distinct outputs are written
"$TP" tokenize --model "$LM" --ids-out "$T/ids.u32" "$T/f.txt" 2> /dev/null && [ -s "$T/ids.u32" ] ||
    bad "tokenize_good"
cmp -s "$T/f.txt" "$T/f.txt.orig" || bad "f.txt changed"
exit $fail
