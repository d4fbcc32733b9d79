/* AVX-512 (F+BW+VL+DQ) INT4 GEMV: the kernel is kernels/cpu/avx512/quant_avx512_body.h. Without
 * VNNI, a lane's 8 byte products are vpmaddubsw (pairs into int16: at most 2 * 15 * 128 each,
 * the even and odd sums together at most 7680, no saturation) and vpmaddwd by 1: the same
 * integers as vpdpbusd, so this level and the VNNI one agree bit for bit. */
#include <immintrin.h>

static inline __m512i qx_pair_bw(__m512i acc, __m512i qe, __m512i le, __m512i qo, __m512i lo) {
    __m512i s16 = _mm512_add_epi16(_mm512_maddubs_epi16(qe, le), _mm512_maddubs_epi16(qo, lo));
    return _mm512_add_epi32(acc, _mm512_madd_epi16(s16, _mm512_set1_epi16(1)));
}
#define QX_PAIR(acc, qe, le, qo, lo) qx_pair_bw(acc, qe, le, qo, lo)
#define QX_PREP tp_qx_prep_avx512
#define QX_ROWS tp_qgemv_rows_avx512
#include "kernels/cpu/avx512/quant_avx512_body.h"
