/* AVX2 kernels of the 32-lane rANS (format: include/tenpak/entropy.h). Four vectors of eight
 * 32-bit states; lane j of vector v is rANS lane 8v + j.
 *
 * Decoder, per group: one table lookup per lane (eight scalar loads per vector, see lut8x) gives
 * (freq - 1, slot - cum, sym) for scale_bits <= 12; for 13..15 two L1-resident levels, the
 * symbol from a byte table and (freq, cum) of that symbol (lut8x2); then the two renormalisation
 * rounds, each taking the lanes with x < L in lane order (round 1 of vectors 0..3, then round
 * 2): movemask, an 8-byte load expanded to dwords and permuted so that the k-th needy lane gets
 * the k-th byte; both rounds are merged into one shift-and-or; the pointer moves by the
 * popcounts. That is exactly the reference's order.
 *
 * Encoder, per group (backwards): for each vector the renormalisation masks and bytes are formed,
 * the bytes of the needy lanes are compacted (in lane order) to the top of an 8-byte store that
 * ends at the write pointer; round-2 bytes of vectors 3..0 first, then round-1 bytes of 3..0 (the
 * decoder's read order reversed). C(x) uses the exact reciprocal (two 32x32->64 multiplies). */
#include <immintrin.h>
#include <string.h>

#include "kernels/cpu/rans_cpu.h"
#include "kernels/cpu/rans_lut.h"
#include "tenpak/entropy.h"

/* Both renormalisation rounds at once: after round 1 a lane is >= L unless it was < 2^15 before
 * it (a byte shifts in below), so the round-2 mask is known up front and every byte position
 * follows from popcounts: the loads of a group do not wait for each other. A lane that takes two
 * bytes becomes x << 16 | b1 << 8 | b2, one that takes one x << 8 | b1. */
#define MASKS(X, M1, M2, B1, B2)                                                                   \
    __m256i M1 = _mm256_cmpgt_epi32(vL, X), M2 = _mm256_cmpgt_epi32(vL2, X);                       \
    unsigned B1 = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(M1));                           \
    unsigned B2 = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(M2));
#define BYTES(Q, B)                                                                                \
    _mm256_permutevar8x32_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(Q))),       \
                                _mm256_load_si256((const __m256i *)tp_rans_lut_expand[B]))
#define APPLY(X, M1, M2, Q1, B1, Q2, B2)                                                           \
    {                                                                                              \
        const __m256i c2 = _mm256_and_si256(M2, v8);                                               \
        const __m256i sh = _mm256_add_epi32(_mm256_and_si256(M1, v8), c2);                        \
        const __m256i y1 = _mm256_and_si256(_mm256_sllv_epi32(BYTES(Q1, B1), c2), M1);              \
        const __m256i y2 = _mm256_and_si256(BYTES(Q2, B2), M2);                                    \
        X = _mm256_or_si256(_mm256_sllv_epi32(X, sh), _mm256_or_si256(y1, y2));                    \
    }
#define RENORM_ALL()                                                                               \
    MASKS(X0, m10, m20, b10, b20)                                                                  \
    MASKS(X1, m11, m21, b11, b21)                                                                  \
    MASKS(X2, m12, m22, b12, b22)                                                                  \
    MASKS(X3, m13, m23, b13, b23)                                                                  \
    const unsigned w1 = b10 | b11 << 8 | b12 << 16 | b13 << 24;                                    \
    const unsigned w2 = b20 | b21 << 8 | b22 << 16 | b23 << 24;                                    \
    const uint8_t *q0 = p, *q1 = q0 + __builtin_popcount(b10), *q2 = q0 + __builtin_popcount(w1 & 0xffff); \
    const uint8_t *q3 = q0 + __builtin_popcount(w1 & 0xffffff), *r0 = q0 + __builtin_popcount(w1);  \
    const uint8_t *r1 = r0 + __builtin_popcount(b20), *r2 = r0 + __builtin_popcount(w2 & 0xffff);  \
    const uint8_t *r3 = r0 + __builtin_popcount(w2 & 0xffffff);                                    \
    p = r0 + __builtin_popcount(w2);                                                               \
    APPLY(X0, m10, m20, q0, b10, r0, b20)                                                          \
    APPLY(X1, m11, m21, q1, b11, r1, b21)                                                          \
    APPLY(X2, m12, m22, q2, b12, r2, b22)                                                          \
    APPLY(X3, m13, m23, q3, b13, r3, b23)

size_t tp_rans32_dec_groups_avx2(uint32_t x[32], const uint8_t **pp, const uint8_t *end,
                                 const uint32_t *tab, int s, int sym_bits, uint8_t *out,
                                 size_t ngroups, uint64_t *hv) {
    const uint8_t *p = *pp;
    __m256i X0 = _mm256_loadu_si256((const __m256i *)(x + 0));
    __m256i X1 = _mm256_loadu_si256((const __m256i *)(x + 8));
    __m256i X2 = _mm256_loadu_si256((const __m256i *)(x + 16));
    __m256i X3 = _mm256_loadu_si256((const __m256i *)(x + 24));
    const __m256i vmask = _mm256_set1_epi32((int)((1u << s) - 1)), v12 = _mm256_set1_epi32(0xfff);
    const __m256i one = _mm256_set1_epi32(1), vL = _mm256_set1_epi32((int)TP_RANS_L);
    const __m256i vL2 = _mm256_set1_epi32((int)(TP_RANS_L >> 8)), v8 = _mm256_set1_epi32(8);
    const __m128i sh = _mm_cvtsi32_si128(s);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    const __m256i nibmul = _mm256_set1_epi16(0x1001); /* bytes (1, 16): lo + 16 * hi */
    size_t g = 0;
    uint64_t hl[4] = {0, 0, 0, 0}; /* the hash stripes (rans_cpu.h), in registers */
    if (hv) memcpy(hl, hv, sizeof hl);
    for (; g < ngroups && end - p >= TP_RANS32_GROUP_BYTES; g++) {
#define DEC(X, S)                                                                               \
    {                                                                                              \
        __m256i e = lut8x(tab, _mm256_and_si256(X, vmask));                                        \
        __m256i f = _mm256_add_epi32(_mm256_and_si256(e, v12), one);                               \
        __m256i b = _mm256_and_si256(_mm256_srli_epi32(e, 12), v12);                               \
        X = _mm256_add_epi32(_mm256_mullo_epi32(f, _mm256_srl_epi32(X, sh)), b);                   \
        S = _mm256_srli_epi32(e, 24);                                                              \
    }
        __m256i S0, S1, S2, S3;
        DEC(X0, S0)
        DEC(X1, S1)
        DEC(X2, S2)
        DEC(X3, S3)
#undef DEC
        RENORM_ALL()
        /* 32 dwords -> 32 bytes in lane order */
        __m256i t01 = _mm256_packus_epi32(S0, S1), t23 = _mm256_packus_epi32(S2, S3);
        __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(t01, t23), order);
        if (sym_bits == 8) _mm256_storeu_si256((__m256i *)(out + 32 * g), bytes);
        else {
            __m256i w = _mm256_maddubs_epi16(bytes, nibmul); /* sym[2i] + 16 sym[2i+1] */
            __m256i pk = _mm256_permute4x64_epi64(_mm256_packus_epi16(w, w), 0x08);
            _mm_storeu_si128((__m128i *)(out + 16 * g), _mm256_castsi256_si128(pk));
        }
        if (hv) tp_xxh64_group(hl, out, g, sym_bits);
    }
    _mm256_storeu_si256((__m256i *)(x + 0), X0);
    _mm256_storeu_si256((__m256i *)(x + 8), X1);
    _mm256_storeu_si256((__m256i *)(x + 16), X2);
    _mm256_storeu_si256((__m256i *)(x + 24), X3);
    if (hv) memcpy(hv, hl, sizeof hl);
    *pp = p;
    return g;
}

size_t tp_rans32_dec_groups_wide_avx2(uint32_t x[32], const uint8_t **pp, const uint8_t *end,
                                      const uint8_t *sym, const uint32_t *fc, int s, int sym_bits,
                                      uint8_t *out, size_t ngroups, uint64_t *hv) {
    const uint8_t *p = *pp;
    __m256i X0 = _mm256_loadu_si256((const __m256i *)(x + 0));
    __m256i X1 = _mm256_loadu_si256((const __m256i *)(x + 8));
    __m256i X2 = _mm256_loadu_si256((const __m256i *)(x + 16));
    __m256i X3 = _mm256_loadu_si256((const __m256i *)(x + 24));
    const __m256i vmask = _mm256_set1_epi32((int)((1u << s) - 1)), v16 = _mm256_set1_epi32(0xffff);
    const __m256i vL = _mm256_set1_epi32((int)TP_RANS_L);
    const __m256i vL2 = _mm256_set1_epi32((int)(TP_RANS_L >> 8)), v8 = _mm256_set1_epi32(8);
    const __m128i sh = _mm_cvtsi32_si128(s);
    uint8_t sy[32];
    size_t g = 0;
    uint64_t hl[4] = {0, 0, 0, 0}; /* the hash stripes (rans_cpu.h), in registers */
    if (hv) memcpy(hl, hv, sizeof hl);
    for (; g < ngroups && end - p >= TP_RANS32_GROUP_BYTES; g++) {
        uint8_t *o = sym_bits == 8 ? out + 32 * g : sy;
#define DEC(X, J)                                                                                  \
    {                                                                                              \
        const __m256i I = _mm256_and_si256(X, vmask);                                              \
        const __m256i e = lut8x2(sym, fc, I, o + (J));                                             \
        X = _mm256_add_epi32(_mm256_mullo_epi32(_mm256_and_si256(e, v16), _mm256_srl_epi32(X, sh)), \
                             _mm256_sub_epi32(I, _mm256_srli_epi32(e, 16)));                       \
    }
        DEC(X0, 0)
        DEC(X1, 8)
        DEC(X2, 16)
        DEC(X3, 24)
#undef DEC
        RENORM_ALL()
        if (sym_bits == 4)
            for (int j = 0; j < 16; j++) out[16 * g + (size_t)j] = (uint8_t)(sy[2 * j] | sy[2 * j + 1] << 4);
        if (hv) tp_xxh64_group(hl, out, g, sym_bits);
    }
    _mm256_storeu_si256((__m256i *)(x + 0), X0);
    _mm256_storeu_si256((__m256i *)(x + 8), X1);
    _mm256_storeu_si256((__m256i *)(x + 16), X2);
    _mm256_storeu_si256((__m256i *)(x + 24), X3);
    if (hv) memcpy(hv, hl, sizeof hl);
    *pp = p;
    return g;
}
#undef MASKS
#undef BYTES
#undef APPLY
#undef RENORM_ALL

/* The low bytes of the lanes selected by bits, in lane order, stored so that they end at p. */
static inline uint8_t *put_bytes(uint8_t *p, __m256i v, unsigned bits) {
    const __m256i pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                          0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    __m256i idx = _mm256_load_si256((const __m256i *)tp_rans_lut_compact[bits]);
    __m256i t = _mm256_shuffle_epi8(_mm256_permutevar8x32_epi32(v, idx), pick);
    __m128i b8 = _mm_unpacklo_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
    _mm_storel_epi64((__m128i *)(p - 8), b8);
    return p - __builtin_popcount(bits);
}

void tp_rans32_enc_groups_avx2(uint32_t x[32], uint8_t **pp, const tp_rans_esym *tab,
                               const uint8_t *syms, size_t ngroups) {
    uint8_t *p = *pp;
    __m256i X[4];
    for (int v = 0; v < 4; v++) X[v] = _mm256_loadu_si256((const __m256i *)(x + 8 * v));
    const __m256i lo32 = _mm256_set1_epi64x(0xffffffff), lo16 = _mm256_set1_epi32(0xffff);
    for (size_t g = ngroups; g-- > 0;) {
        const uint8_t *sy = syms + 32 * g;
        __m256i R1[4];
        unsigned B1[4];
        for (int v = 3; v >= 0; v--) {
            const uint8_t *q = sy + 8 * v;
#define LD(a, b)                                                                                   \
    _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)&tab[q[a]])),  \
                            _mm_loadu_si128((const __m128i *)&tab[q[b]]), 1)
            __m256i r0 = LD(0, 4), r1 = LD(1, 5), r2 = LD(2, 6), r3 = LD(3, 7);
#undef LD
            __m256i t0 = _mm256_unpacklo_epi32(r0, r1), t1 = _mm256_unpackhi_epi32(r0, r1);
            __m256i t2 = _mm256_unpacklo_epi32(r2, r3), t3 = _mm256_unpackhi_epi32(r2, r3);
            __m256i xm = _mm256_unpacklo_epi64(t0, t2), rcp = _mm256_unpackhi_epi64(t0, t2);
            __m256i shf = _mm256_unpacklo_epi64(t1, t3), bc = _mm256_unpackhi_epi64(t1, t3);
            __m256i x0 = X[v];
            __m256i n1 = _mm256_cmpgt_epi32(x0, xm);                         /* x >= x_max */
            __m256i n2 = _mm256_cmpgt_epi32(_mm256_srli_epi32(x0, 8), xm);   /* x >> 8 >= x_max */
            /* round-2 byte: the low byte (only for two-byte lanes); round-1: the next one out */
            p = put_bytes(p, x0, (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(n2)));
            R1[v] = _mm256_srlv_epi32(x0, _mm256_and_si256(n2, _mm256_set1_epi32(8)));
            B1[v] = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(n1));
            __m256i cnt = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_add_epi32(n1, n2));
            __m256i xv = _mm256_srlv_epi32(x0, _mm256_slli_epi32(cnt, 3));
            /* q = (xv * rcp) >> shift, even and odd lanes as 64-bit products */
            __m256i qe = _mm256_srlv_epi64(_mm256_mul_epu32(xv, rcp), _mm256_and_si256(shf, lo32));
            __m256i qo = _mm256_srlv_epi64(_mm256_mul_epu32(_mm256_srli_epi64(xv, 32), _mm256_srli_epi64(rcp, 32)),
                                           _mm256_srli_epi64(shf, 32));
            __m256i qq = _mm256_blend_epi32(qe, _mm256_slli_epi64(qo, 32), 0xAA);
            X[v] = _mm256_add_epi32(_mm256_add_epi32(xv, _mm256_and_si256(bc, lo16)),
                                    _mm256_mullo_epi32(qq, _mm256_srli_epi32(bc, 16)));
        }
        for (int v = 3; v >= 0; v--) p = put_bytes(p, R1[v], B1[v]);
    }
    for (int v = 0; v < 4; v++) _mm256_storeu_si256((__m256i *)(x + 8 * v), X[v]);
    *pp = p;
}
