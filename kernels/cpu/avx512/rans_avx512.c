/* AVX-512 decoder of the 32-lane rANS (format: include/tenpak/entropy.h) for scale_bits 13..15:
 * two vectors of sixteen 32-bit states, lane j of vector v is rANS lane 16v + j. The same steps
 * and byte order as the AVX2 decoder (kernels/cpu/avx2/rans_avx2.c, which has the description):
 *   - the lookups stay scalar loads, eight lanes at a time (rans_lut.h's lut8x2: the symbol from
 *     a byte table, then its freq | cum << 16; gathers are slow on AMD cores);
 *   - renormalisation: the round-1 and round-2 masks are mask registers, known up front; each
 *     round's bytes are one 16-byte load widened to dwords and spread to the needy lanes in lane
 *     order by one vpexpandd (no permute tables); the pointer moves by the popcounts.
 * wiki.test.raw (scale 15), Zen 4, one thread, four alternating runs of 41: 1.03-1.05 GB/s
 * against AVX2's 0.97-1.01. The same scheme for scale_bits <= 12 (one packed table, symbols by
 * vpmovdb) was slower than AVX2 (1.08-1.12 vs 1.17-1.23 GB/s) and is not kept.
 * A group reads at most 64 payload bytes (the 16-byte loads start at most 48 bytes in), inside
 * the caller's TP_RANS32_GROUP_BYTES (72) margin. */
#include <immintrin.h>
#include <string.h>

#include "kernels/cpu/rans_cpu.h"
#include "kernels/cpu/rans_lut.h"
#include "tenpak/entropy.h"

static inline __m512i lut16x2(const uint8_t *sym, const uint32_t *fc, __m512i I, uint8_t *o) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(lut8x2(sym, fc, _mm512_castsi512_si256(I), o)),
                              lut8x2(sym, fc, _mm512_extracti64x4_epi64(I, 1), o + 8), 1);
}

/* x << 8 (n1 + n2) | b1 << 8 n2 | b2: lanes of m1 take one byte from q1 (in lane order), lanes
 * of m2 (a subset) a second one from q2 */
static inline __m512i renorm1(__m512i X, __mmask16 m1, __mmask16 m2, const uint8_t *q1,
                              const uint8_t *q2, __m512i v8) {
    const __m512i b1 = _mm512_maskz_expand_epi32(m1, _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)q1)));
    const __m512i b2 = _mm512_maskz_expand_epi32(m2, _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)q2)));
    const __m512i s2 = _mm512_maskz_mov_epi32(m2, v8);
    const __m512i sh = _mm512_add_epi32(_mm512_maskz_mov_epi32(m1, v8), s2);
    return _mm512_or_si512(_mm512_sllv_epi32(X, sh), _mm512_or_si512(_mm512_sllv_epi32(b1, s2), b2));
}

/* both renormalisation rounds of the two vectors (round 1 of A then B, round 2 of A then B) */
#define RENORM16()                                                                                 \
    {                                                                                              \
        const __mmask16 m1a = _mm512_cmplt_epu32_mask(XA, vL), m1b = _mm512_cmplt_epu32_mask(XB, vL); \
        const __mmask16 m2a = _mm512_cmplt_epu32_mask(XA, vL2), m2b = _mm512_cmplt_epu32_mask(XB, vL2); \
        const uint8_t *q1a = p, *q1b = q1a + __builtin_popcount(m1a);                             \
        const uint8_t *q2a = q1b + __builtin_popcount(m1b), *q2b = q2a + __builtin_popcount(m2a);  \
        p = q2b + __builtin_popcount(m2b);                                                         \
        XA = renorm1(XA, m1a, m2a, q1a, q2a, v8);                                                  \
        XB = renorm1(XB, m1b, m2b, q1b, q2b, v8);                                                  \
    }

/* scale_bits 13..15: sym[slot], fc[sym] = freq | cum << 16 (lut8x2) */
size_t tp_rans32_dec_groups_wide_avx512(uint32_t x[32], const uint8_t **pp, const uint8_t *end,
                                        const uint8_t *sym, const uint32_t *fc, int s, int sym_bits,
                                        uint8_t *out, size_t ngroups) {
    const uint8_t *p = *pp;
    __m512i XA = _mm512_loadu_si512(x), XB = _mm512_loadu_si512(x + 16);
    const __m512i vmask = _mm512_set1_epi32((int)((1u << s) - 1)), v8 = _mm512_set1_epi32(8);
    const __m512i vL = _mm512_set1_epi32((int)TP_RANS_L), vL2 = _mm512_set1_epi32((int)(TP_RANS_L >> 8));
    const __m512i v16 = _mm512_set1_epi32(0xffff);
    const __m128i sh = _mm_cvtsi32_si128(s);
    size_t g = 0;
    uint8_t sy[32];
    for (; g < ngroups && end - p >= TP_RANS32_GROUP_BYTES; g++) {
        uint8_t *o = sym_bits == 8 ? out + 32 * g : sy;
        const __m512i ia = _mm512_and_si512(XA, vmask), ib = _mm512_and_si512(XB, vmask);
        const __m512i ea = lut16x2(sym, fc, ia, o), eb = lut16x2(sym, fc, ib, o + 16);
        XA = _mm512_add_epi32(_mm512_mullo_epi32(_mm512_and_si512(ea, v16), _mm512_srl_epi32(XA, sh)),
                              _mm512_sub_epi32(ia, _mm512_srli_epi32(ea, 16)));
        XB = _mm512_add_epi32(_mm512_mullo_epi32(_mm512_and_si512(eb, v16), _mm512_srl_epi32(XB, sh)),
                              _mm512_sub_epi32(ib, _mm512_srli_epi32(eb, 16)));
        RENORM16()
        if (sym_bits == 4)
            for (int j = 0; j < 16; j++) out[16 * g + (size_t)j] = (uint8_t)(sy[2 * j] | sy[2 * j + 1] << 4);
    }
    _mm512_storeu_si512(x, XA);
    _mm512_storeu_si512(x + 16, XB);
    *pp = p;
    return g;
}
