#!/bin/bash
# GPU run 34: the two-kernel LoRA (backend cuda-2k: lora_shrink, then lora_main, PDL: main's base
# rows start while the shrink runs, its only wait is before it sums P) with lora_main uncapped.
# run33: uncapped base rows 9.5 us against the INT4 GEMV's 9.1, but the fused kernel then has room
# for 4 helpers only (one 223-register block an SM) and takes 13.2 us (capped: 12.9); the shrink as
# its own small kernel needs no room beside 1-block-an-SM base blocks.
#   A: the defaults (TENPAK_LORA_MINB 2)      E: TENPAK_LORA_MINB 1
#   F: TENPAK_LORA_MINB 0 (no minimum-blocks hint: ptxas's default heuristics give 127 registers,
#      2 blocks an SM, so 32 helpers still fit; gemv_simt's loop as lora_main's body (a scratch
#      copy) took 116 registers with no hint and 197 with a hint of 1 (alone, 124 with 2), so the registers
#      follow the hint, not the code; whether the speed does is what F measures)
#   device run: `TENPAK_GIT_COMMIT=<sha> bash ci/gpu_run34.sh`, carry .gpu/debs .gpu/cusparselt
FILTER='^gemv/(lora_int4_g128_r16/cuda|lora_int4_g128_r16/cuda-2k|int4_g128/cuda)/4096x4096$|^gemm/lora_int4_g128_r16_a4/cuda/4096x4096x16$' \
    exec bash ci/gpu_variants.sh run34 A 'E=s/^#define TENPAK_LORA_MINB 2$/#define TENPAK_LORA_MINB 1/' \
    'F=s/^#define TENPAK_LORA_MINB 2$/#define TENPAK_LORA_MINB 0/'
