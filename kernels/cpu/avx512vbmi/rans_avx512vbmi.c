/* The gather decoder of the 32-lane rANS for scale_bits 13..15 at the avx512vbmi level: the
 * kernel of kernels/cpu/avx512/rans_avx512_body.h with the renormalisation bytes picked by vpermb
 * from one 64-byte load (the load no longer waits for the group's masks). */
#define TP_RANS_VBMI 1
#define TP_RANS_GATHER_NAME tp_rans32_dec_groups_wide_gather_avx512vbmi
#define TP_RANS_GATHER_NARROW_NAME tp_rans32_dec_groups_gather_avx512vbmi
#include "kernels/cpu/avx512/rans_avx512_body.h"
