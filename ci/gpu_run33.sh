#!/bin/bash
# GPU run 33: lora_main without its register cap (TENPAK_LORA_MINB 1: 223 registers, one block an SM;
# run32: its base rows 9.6 us against 10.6 capped, but the whole kernel 13.4 against 12.9, its
# helpers waiting for SMs) with only as many helpers as fit beside the base blocks (occupancy):
#   A: the defaults (32 helpers at 4096 rows)   E: TENPAK_LORA_MINB 1 (4 helpers on an H100)
#   device run: `TENPAK_GIT_COMMIT=<sha> bash ci/gpu_run33.sh`, carry .gpu/debs .gpu/cusparselt
# (run at 1e6b15f as a script of its own with the same steps)
exec bash ci/gpu_variants.sh run33 A 'E=s/^#define TENPAK_LORA_MINB 2$/#define TENPAK_LORA_MINB 1/'
