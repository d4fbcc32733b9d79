/* The horizontal sums of four AVX-512 vectors, [a, b, c, d], each by the same tree of additions
 * (so one row's sum is the same bits whether it is reduced with three others or alone, passed
 * four times): the reduction of the AVX-512 GEMVs (quant_avx512_body.h, nf4_avx512.c). */
#ifndef TENPAK_KERNELS_CPU_AVX512_HSUM_H
#define TENPAK_KERNELS_CPU_AVX512_HSUM_H

#include <immintrin.h>

static inline __m128 tp_hsum4_512(__m512 a, __m512 b, __m512 c, __m512 d) {
#define TP_HALF512(v) \
    _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)))
    __m256 ab = _mm256_hadd_ps(TP_HALF512(a), TP_HALF512(b)), cd = _mm256_hadd_ps(TP_HALF512(c), TP_HALF512(d));
#undef TP_HALF512
    __m256 abcd = _mm256_hadd_ps(ab, cd);
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

#endif
