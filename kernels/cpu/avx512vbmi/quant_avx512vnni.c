/* AVX-512 VNNI INT4 GEMV (the avx512vbmi level, which requires VNNI: every CPU with VBMI2 has
 * it): the kernel is kernels/cpu/avx512/quant_avx512_body.h, a lane's 8 byte products by two
 * vpdpbusd. */
#include <immintrin.h>

#define QX_PAIR(acc, qe, le, qo, lo) _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(acc, qe, le), qo, lo)
#define QX_PREP tp_qx_prep_avx512vnni
#define QX_ROWS tp_qgemv_rows_avx512vnni
#include "kernels/cpu/avx512/quant_avx512_body.h"
