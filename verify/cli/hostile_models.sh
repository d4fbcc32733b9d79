#!/bin/bash
# Hostile checkpoints, configs and codec specs: refused in one line with a non-zero exit and no
# artifact, where they used to run and report nonsense with exit 0:
#  - a NaN or Inf weight (compress reported relative error 0 and PPL nan), named by its tensor;
#  - config.json with rms_norm_eps <= 0, rope_theta 0, a string where a number belongs, or
#    num_hidden_layers 3 over a 6-layer checkpoint (loaded and ignored the rest);
#  - codec specs with a stray '+' or ',', a key twice (aliases too), a hex value; a low-rank r above
#    min(rows, cols) or huge, a vq codebook larger than the tensor's vectors; an --override that
#    matches no tensor.
# usage: hostile_models.sh TENPAK_BINARY SHARED_DIR
set -u
TP=$1
SHARED=$2
T=$(mktemp -d /tmp/tenpak-models-XXXXXX)
trap 'rm -rf "$T"' EXIT
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
LM=$SHARED/models/llama-mini
fail=0
bad() { echo "FAIL $*"; fail=1; }
printf 'The quick brown fox jumps over the lazy dog.\n' > "$T/f.txt"

# refused NAME NEEDLE CMD...: non-zero exit (not a timeout), one stderr line containing NEEDLE,
# and no artifact or temporary file in $T
refused() {
    local name=$1 needle=$2
    shift 2
    rm -f "$T"/out.tpk*
    timeout 60 "$@" > "$T/stdout" 2> "$T/stderr"
    local rc=$? ok=1
    if [ $rc -eq 0 ] || [ $rc -eq 124 ]; then bad "$name: exit $rc"; ok=0; fi
    if [ "$(wc -l < "$T/stderr")" -ne 1 ]; then bad "$name: $(wc -l < "$T/stderr") stderr lines:"; cat "$T/stderr"; ok=0; fi
    if ! grep -qF -- "$needle" "$T/stderr"; then bad "$name: stderr lacks '$needle':"; cat "$T/stderr"; ok=0; fi
    if ls "$T"/out.tpk* > /dev/null 2>&1; then bad "$name: an artifact was written"; ok=0; fi
    [ $ok -eq 1 ] && echo "ok   $name"
}

# a model folder: links to llama-mini's files, then the named files replaced by copies to damage
mkmodel() {
    rm -rf "$T/m"
    mkdir "$T/m"
    for f in "$LM"/*; do ln -s "$f" "$T/m/"; done
    for f in "$@"; do rm "$T/m/$f"; cp "$LM/$f" "$T/m/$f"; chmod u+w "$T/m/$f"; done
}
# poke FILE ELEMENT BYTES: overwrite fp16 element ELEMENT of model.layers.0.mlp.down_proj.weight
# (shard 2 of llama-mini: data at byte 768 of the payload) with the two bytes given (printf escapes)
poke() {
    local f=$T/m/model-00002-of-00003.safetensors
    local hl
    hl=$(od -An -tu8 -N8 "$f" | tr -d ' ')
    printf "$2" | dd of="$f" bs=1 seek=$((8 + hl + 768 + 2 * $1)) conv=notrunc status=none
}

# ---- non-finite weights ----
mkmodel model-00002-of-00003.safetensors
poke 5 '\x00\x7e' # fp16 NaN
refused compress_nan "tensor model.layers.0.mlp.down_proj.weight holds a non-finite value (NaN or Inf) at element 5" \
    "$TP" compress --model "$T/m" --codec int4:g=128 --out "$T/out.tpk"
mkmodel model-00002-of-00003.safetensors
poke 7 '\x00\xfc' # fp16 -Inf
refused compress_inf "tensor model.layers.0.mlp.down_proj.weight holds a non-finite value (NaN or Inf) at element 7" \
    "$TP" compress --model "$T/m" --codec int4:g=128 --out "$T/out.tpk"

# ---- config.json ----
cfg() { mkmodel config.json; sed -i "$1" "$T/m/config.json"; }
cfg 's/"rms_norm_eps": 1e-05/"rms_norm_eps": -1/'
refused config_eps_negative "rms_norm_eps) must be > 0, got -1" "$TP" ppl --model "$T/m" --data "$T/f.txt"
refused config_eps_negative_compress "rms_norm_eps) must be > 0, got -1" \
    "$TP" compress --model "$T/m" --codec int4:g=128 --out "$T/out.tpk"
cfg 's/"rms_norm_eps": 1e-05/"rms_norm_eps": "x"/'
refused config_eps_string '"rms_norm_eps" must be a finite number' "$TP" ppl --model "$T/m" --data "$T/f.txt"
cfg 's/"rope_theta": 10000.0/"rope_theta": 0/'
refused config_rope_theta_zero "rope_theta must be > 0, got 0" "$TP" ppl --model "$T/m" --data "$T/f.txt"
cfg 's/"max_position_embeddings": 1024/"max_position_embeddings": "1024"/'
refused config_ctx_string '"max_position_embeddings" must be an integer' "$TP" ppl --model "$T/m" --data "$T/f.txt"
cfg 's/"num_hidden_layers": 6/"num_hidden_layers": 3/'
refused config_fewer_layers "config.json: 3 layers, but the checkpoint beside it has 6" \
    "$TP" ppl --model "$T/m" --data "$T/f.txt"
refused config_fewer_layers_compress "config.json: 3 layers, but the checkpoint beside it has 6" \
    "$TP" compress --model "$T/m" --codec int4:g=128 --out "$T/out.tpk"

# ---- codec specs ----
C=("$TP" compress --model "$LM" --out "$T/out.tpk" --codec)
refused spec_trailing_plus "empty stage (a stray '+')" "${C[@]}" "int4:g=32+"
refused spec_leading_plus "empty stage (a stray '+')" "${C[@]}" "+int4:g=32"
refused spec_double_plus "empty stage (a stray '+')" "${C[@]}" "int4:g=32++int4:g=32"
refused spec_key_twice "g is given twice" "${C[@]}" "int4:g=16,g=32"
refused spec_hex "g needs a plain decimal number, got '0x10'" "${C[@]}" "int4:g=0x10"
refused spec_exponent "g needs a plain decimal number, got '1e2'" "${C[@]}" "int4:g=1e2"
refused spec_trailing_comma "empty parameter" "${C[@]}" "int4:g=32,"
refused spec_empty_params "empty parameter" "${C[@]}" "int4:"
refused lowrank_rank_above_shape "r=2000 exceeds min(rows, cols) = 384 of tensor" "${C[@]}" "lowrank:r=2000"
refused lowrank_rank_huge "r must be in 1..16384" "${C[@]}" "lowrank:r=100000"
refused vq_k_above_vectors "k=65536 exceeds the 24576 vectors of tensor" "${C[@]}" "vq:d=16,k=65536"
refused alias_key_twice "a malformed alias" "${C[@]}" "tenpakx:rank=8,rank=16"
refused override_matches_nothing "--override nothing_here=int4:g=32 matches no tensor" \
    "$TP" compress --model "$LM" --codec int4:g=128 --override "nothing_here=int4:g=32" --out "$T/out.tpk"

# ---- eval checks the config.json and tokenizer.json the artifact was made with ----
mkmodel config.json tokenizer.json
"$TP" compress --model "$T/m" --codec int4:g=128 --out "$T/a.tpk" > /dev/null 2> "$T/err" || { bad "compress a.tpk:"; cat "$T/err"; }
"$TP" eval --artifact "$T/a.tpk" --data "$T/f.txt" --no-kld > /dev/null 2> "$T/err" || { bad "eval a.tpk:"; cat "$T/err"; }
echo " " >> "$T/m/tokenizer.json" # the same JSON, other bytes: any change is refused
refused eval_tokenizer_changed "was made with tokenizer.json of sha256" \
    "$TP" eval --artifact "$T/a.tpk" --data "$T/f.txt" --no-kld
refused zip_artifact_tokenizer_changed "was made with tokenizer.json of sha256" \
    "$TP" zip --artifact "$T/a.tpk" "$T/f.txt" "$T/out.tpz"
cp "$LM/tokenizer.json" "$T/m/tokenizer.json"
sed -i 's/"rms_norm_eps": 1e-05/"rms_norm_eps": 2e-05/' "$T/m/config.json"
refused eval_config_changed "rms_norm_eps 1e-05, now 2e-05: it changed since" \
    "$TP" eval --artifact "$T/a.tpk" --data "$T/f.txt" --no-kld
cp "$LM/config.json" "$T/m/config.json"
echo " " >> "$T/m/config.json" # the same fields, other bytes: the sha256 still tells
refused eval_config_bytes_changed "was made with config.json of sha256" \
    "$TP" eval --artifact "$T/a.tpk" --data "$T/f.txt" --no-kld

# the good path: a spec with every key once, an override that matches, a lowrank of a fitting rank
"$TP" compress --model "$LM" --codec "int4:g=64,refine=0" --override "down_proj=lowrank:r=8" --out "$T/good.tpk" \
    > /dev/null 2> "$T/err" || { bad "good compress:"; cat "$T/err"; }
exit $fail
