#!/bin/bash
# Hostile integer options: one parser (cli/args.h tp_arg_int) for every integer option. Negative,
# overflowing (4294967360 = 2^32 + 64 once wrapped to ctx 64), non-decimal and out-of-range values
# exit 2 with one line naming the option and its range, instead of falling back to a default or
# wrapping; a hf-protocol stride beyond the window is refused (it left tokens unscored, or failed
# with an internal row range).
# usage: hostile_options.sh TENPAK_BINARY SHARED_DIR
set -u
TP=$1
SHARED=$2
T=$(mktemp -d /tmp/tenpak-options-XXXXXX)
trap 'rm -rf "$T"' EXIT
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
LM=$SHARED/models/llama-mini
fail=0
bad() { echo "FAIL $*"; fail=1; }
printf 'The quick brown fox jumps over the lazy dog. It was the best of times, it was the worst of times.\n' > "$T/f.txt"

# rejected NAME RC NEEDLE CMD...: exit RC, one stderr line containing NEEDLE
rejected() {
    local name=$1 want=$2 needle=$3
    shift 3
    timeout 30 "$@" > "$T/stdout" 2> "$T/stderr"
    local rc=$? ok=1
    if [ $rc -ne "$want" ]; then bad "$name: exit $rc, expected $want"; ok=0; fi
    if [ "$(wc -l < "$T/stderr")" -ne 1 ]; then bad "$name: $(wc -l < "$T/stderr") stderr lines:"; cat "$T/stderr"; ok=0; fi
    if ! grep -qF -- "$needle" "$T/stderr"; then bad "$name: stderr lacks '$needle':"; cat "$T/stderr"; ok=0; fi
    [ $ok -eq 1 ] && echo "ok   $name"
}

"$TP" compress --model "$LM" --codec int4:g=128 --out "$T/a.tpk" > /dev/null 2>&1 || bad "compress a.tpk"
EV=("$TP" eval --artifact "$T/a.tpk" --data "$T/f.txt")
for v in -5 -1 1000000000001 99999999999999999999999 0x10 1e3 " 7" "+7" ""; do
    rejected "eval_max_tokens[$v]" 2 "tenpak eval: --max-tokens needs an integer from 1 to" "${EV[@]}" --max-tokens "$v"
done
rejected eval_ctx_negative 2 "tenpak eval: --ctx needs an integer from 2 to 1048576, got '-1'" "${EV[@]}" --ctx -1
rejected eval_ctx_wraps 2 "tenpak eval: --ctx needs an integer from 2 to 1048576, got '4294967360'" "${EV[@]}" --ctx 4294967360
rejected eval_ctx_equals_form 2 "--ctx needs an integer from 2 to 1048576, got '-1'" "${EV[@]}" --ctx=-1
rejected eval_stride_negative 2 "tenpak eval: --stride needs an integer from 1 to" "${EV[@]}" --stride -1
rejected eval_tail_chars_negative 2 "tenpak eval: --tail-chars needs an integer from 1 to" "${EV[@]}" --tail-chars -1
rejected eval_bootstrap_seed 2 "tenpak eval: --bootstrap-seed needs an integer from 1 to" "${EV[@]}" --bootstrap-seed -3
rejected eval_stride_beyond_ctx 1 "--stride 128 exceeds the window --ctx 64" "${EV[@]}" --ctx 64 --stride 128

PP=("$TP" ppl --model "$LM" --data "$T/f.txt")
rejected ppl_ctx_wraps 2 "tenpak ppl: --ctx needs an integer from 2 to 1048576, got '4294967360'" "${PP[@]}" --ctx 4294967360
rejected ppl_ctx_negative 2 "tenpak ppl: --ctx needs an integer from 2 to" "${PP[@]}" --ctx -1
rejected ppl_max_tokens_negative 2 "tenpak ppl: --max-tokens needs an integer from 1 to" "${PP[@]}" --max-tokens -5
rejected ppl_stride_300_ctx_64 1 "--stride 300 exceeds the window --ctx 64" "${PP[@]}" --ctx 64 --stride 300
rejected ppl_stride_128_ctx_64 1 "--stride 128 exceeds the window --ctx 64" "${PP[@]}" --stride 128 --ctx 64
rejected ppl_stride_beyond_default_ctx 1 "--stride 2000 exceeds the window --ctx 1024" "${PP[@]}" --stride 2000

rejected generate_n_negative 2 "tenpak generate: -n needs an integer from 0 to 2147483647, got '-1'" \
    "$TP" generate --model "$LM" --prompt hi -n -1
rejected generate_n_wraps 2 "tenpak generate: -n needs an integer from 0 to 2147483647, got '4294967360'" \
    "$TP" generate --model "$LM" --prompt hi -n 4294967360
rejected bench_model_pp 2 "tenpak bench-model: --pp needs an integer from 0 to 100000000, got '-1'" \
    "$TP" bench-model --model "$LM" --pp -1
rejected bench_model_tg 2 "tenpak bench-model: --tg needs an integer from 0 to 100000000, got '4294967360'" \
    "$TP" bench-model --model "$LM" --tg 4294967360
rejected compress_calib_tokens 2 "tenpak compress: --calib-tokens needs an integer from 2 to" \
    "$TP" compress --model "$LM" --codec awq:g=128 --out "$T/c.tpk" --calib-tokens -5
rejected entropy_lanes 2 "tenpak entropy encode: --lanes needs an integer from 1 to" "$TP" entropy encode --lanes -1 "$T/f.txt" "$T/e.bin"
rejected claims_max_tokens 2 "tenpak claims: --max-tokens needs an integer from 0 to" \
    "$TP" claims verify --max-tokens -1

# a stride equal to the window, and the defaults, still run
"$TP" ppl --model "$LM" --data "$T/f.txt" --ctx 16 --stride 16 > "$T/out" 2>&1 && grep -q "^scored " "$T/out" ||
    { bad "ppl stride == ctx:"; cat "$T/out"; }
exit $fail
