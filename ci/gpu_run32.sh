#!/bin/bash
# GPU run 32: why lora_main's base rows (TENPAK_CUDA_LORA_BASE_ONLY) take 10.7 us where gemv_simt,
# the same decode, takes 9.1 (run30, run31). Four builds of lora.cu's experiment switches:
#   A: the defaults (TENPAK_LORA_MINB 2: at most 128 registers; scale / offset with the codes)
#   B: TENPAK_LORA_MINB 1 (no register cap)   C: TENPAK_LORA_SCALE_AT_USE 1 (as gemv_simt)   D: B and C
#   device run: `TENPAK_GIT_COMMIT=<sha> bash ci/gpu_run32.sh`, carry .gpu/debs .gpu/cusparselt
# (run at 00144c5 as a script of its own with the same steps, 2 rounds; TENPAK_LORA_SCALE_AT_USE
# was removed after it, so variants C and D need that commit: gpu_variants.sh stops on a no-op sed)
ROUNDS=2 exec bash ci/gpu_variants.sh run32 A 'B=s/^#define TENPAK_LORA_MINB 2$/#define TENPAK_LORA_MINB 1/' 'C=s/^#define TENPAK_LORA_SCALE_AT_USE 0$/#define TENPAK_LORA_SCALE_AT_USE 1/' 'D=s/^#define TENPAK_LORA_MINB 2$/#define TENPAK_LORA_MINB 1/;s/^#define TENPAK_LORA_SCALE_AT_USE 0$/#define TENPAK_LORA_SCALE_AT_USE 1/'
