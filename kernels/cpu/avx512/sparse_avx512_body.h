/* The AVX-512 GEMV of 2:4 sparse matrices (format: include/tenpak/sparse.h), included by
 * kernels/cpu/avx512/sparse_avx512.c (F+BW+VL+DQ) and kernels/cpu/avx512vbmi/sparse_avx512vbmi.c
 * (TP_SP24_VBMI: the nibbles spread by one vpmultishiftqb instead of an unpack, a widening move
 * and a shift; Zen 4, one thread, 4096x4096 INT4 g64: 0.72 vs 0.84 ms); TP_SP24_GEMV_NAME names
 * the function. Called after run-time detection.
 *
 * One step covers two metadata words: 8 groups = 32 dense columns = 16 kept values. The 32
 * activations sit in two vectors; the dword broadcast of the two words shifted by 2l (lane l)
 * holds the field of kept value l in its low 2 bits, and (field | 4 (l / 2)) is directly the
 * index of one two-source permute (vpermt2ps) that lines the 16 activations up with the 16 kept
 * values: no gathers, no blends, no rearranged copy of x.
 *
 * Values: fp32 as stored; INT4: the 16 nibbles (8 bytes, element 2i the low nibble of byte i)
 * spread to dwords, and a 16-entry table of q*s + o for the quantisation
 * group (one FMA per group, exact: q*s is exact in fp32, so the one rounding is the reference's)
 * read with one in-register permute (vpermps uses the low 4 bits of the index): the dequantised
 * weight costs three shuffles and no conversion. Four accumulators per row.
 *
 * Groups past the last whole step (ngroups % 8) and INT4 groups that are not a multiple of 16
 * kept values are left to the AVX2 kernel's code path (the caller's fallback). */
#include <immintrin.h>
#include <string.h>

#include "kernels/cpu/codecs_cpu.h"

/* the permute index of a step's 16 kept values: (field | 4 (l / 2)) */
static inline __m512i xidx(const uint16_t *mp, __m512i sh2, __m512i base, __m512i three) {
    int32_t m;
    memcpy(&m, mp, 4);
    const __m512i f = _mm512_srlv_epi32(_mm512_set1_epi32(m), sh2);
    return _mm512_ternarylogic_epi32(f, three, base, 0xEA); /* (f & 3) | base */
}
static inline __m512 xg16(const float *x32, const uint16_t *mp, __m512i sh2, __m512i base, __m512i three) {
    return _mm512_permutex2var_ps(_mm512_loadu_ps(x32), xidx(mp, sh2, base, three), _mm512_loadu_ps(x32 + 16));
}

/* dword l = the byte holding nibble l, shifted so that nibble l is in bits 0..3 (the rest is
 * ignored by the table permute) */
static inline __m512i nib16(const uint8_t *p, __m512i sh4) {
#ifdef TP_SP24_VBMI
    int64_t c; /* byte 0 of dword l = bits 4l.. of the 8 code bytes (sh4 = 4l) */
    memcpy(&c, p, 8);
    return _mm512_multishift_epi64_epi8(sh4, _mm512_set1_epi64(c));
#else
    const __m128i b = _mm_loadl_epi64((const __m128i *)p); /* sh4 = 4 (l & 1) */
    return _mm512_srlv_epi32(_mm512_cvtepu8_epi32(_mm_unpacklo_epi8(b, b)), sh4);
#endif
}

void TP_SP24_GEMV_NAME(const tp_sp24 *s, const float *xp, int64_t r0, int64_t r1, float *y) {
    const int64_t N = s->nkept, ns = s->ngroups / 8; /* whole steps per row */
    __m512i sh2, sh4, base;
    {
        int32_t a[16], b[16], c[16];
        for (int l = 0; l < 16; l++) {
            a[l] = 2 * l;
#ifdef TP_SP24_VBMI
            b[l] = 4 * l;
#else
            b[l] = 4 * (l & 1);
#endif
            c[l] = 4 * (l >> 1);
        }
        sh2 = _mm512_loadu_si512(a);
        sh4 = _mm512_loadu_si512(b);
        base = _mm512_loadu_si512(c);
    }
    const __m512i three = _mm512_set1_epi32(3);
    const __m512 iota = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    int64_t r = r0;
    if (s->vkind == TP_SP_INT4)
        /* two rows per pass: one load of each activation pair serves both (Zen 4, one thread,
         * 4096x4096 g64: 0.72-0.74 ms against 0.75-0.79 one row at a time). The scales and
         * offsets of 16 groups at a time are converted to fp32 into a stack buffer first, so a
         * group's table costs two broadcast loads and an FMA per row instead of four scalar
         * half loads, conversions and broadcasts; the steps of a group go in pairs with no
         * branch (Zen 4, one thread, 4096x4096 g64: 0.65 -> 0.60 ms; fewer broadcasts per step,
         * through the code and metadata words of two steps loaded at once and spread by
         * vpmultishiftqb, measured slower: 0.69 ms, vpmultishiftqb issues on one pipe only) */
        for (; r + 2 <= r1; r += 2) {
            const tp_qmat *q = &s->q;
            const uint16_t *m0 = s->meta + r * s->meta_stride, *m1 = m0 + s->meta_stride;
            const uint8_t *c0 = q->codes + r * q->code_stride, *c1 = c0 + q->code_stride;
            const uint16_t *sc = q->scale + r * q->ngroups, *of = q->offset + r * q->ngroups;
            const int64_t sg = q->g / 16, ng = (ns + sg - 1) / sg; /* groups that hold steps */
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, b0 = a0, b1 = a0;
            float so[4][16]; /* s, o of row r, then s, o of row r + 1, for 16 groups */
            for (int64_t g0 = 0; g0 < ng; g0 += 16) {
                const int64_t gn = ng - g0 < 16 ? ng - g0 : 16;
                const __mmask16 gm = (__mmask16)((1u << gn) - 1);
                _mm512_storeu_ps(so[0], _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(gm, sc + g0)));
                _mm512_storeu_ps(so[1], _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(gm, of + g0)));
                _mm512_storeu_ps(so[2], _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(gm, sc + q->ngroups + g0)));
                _mm512_storeu_ps(so[3], _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(gm, of + q->ngroups + g0)));
                for (int64_t gj = 0; gj < gn; gj++) {
                    const __m512 l0 = _mm512_fmadd_ps(iota, _mm512_set1_ps(so[0][gj]), _mm512_set1_ps(so[1][gj]));
                    const __m512 l1 = _mm512_fmadd_ps(iota, _mm512_set1_ps(so[2][gj]), _mm512_set1_ps(so[3][gj]));
                    int64_t k = (g0 + gj) * sg;
                    const int64_t ke = k + sg < ns ? k + sg : ns;
#define STEP2(A, B, K)                                                                             \
    {                                                                                              \
        const __m512 xl = _mm512_loadu_ps(xp + 32 * (K)), xh = _mm512_loadu_ps(xp + 32 * (K) + 16);  \
        A = _mm512_fmadd_ps(_mm512_permutexvar_ps(nib16(c0 + 8 * (K), sh4), l0),                   \
                            _mm512_permutex2var_ps(xl, xidx(m0 + 2 * (K), sh2, base, three), xh), A); \
        B = _mm512_fmadd_ps(_mm512_permutexvar_ps(nib16(c1 + 8 * (K), sh4), l1),                   \
                            _mm512_permutex2var_ps(xl, xidx(m1 + 2 * (K), sh2, base, three), xh), B); \
    }
                    for (; k + 2 <= ke; k += 2) {
                        STEP2(a0, b0, k);
                        STEP2(a1, b1, k + 1);
                    }
                    if (k < ke) STEP2(a0, b0, k);
#undef STEP2
                }
            }
            const float t0 = tp_sp24_tail_row(s, xp, r, 8 * ns);
            const float t1 = tp_sp24_tail_row(s, xp, r + 1, 8 * ns);
            y[r] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) + t0;
            y[r + 1] = _mm512_reduce_add_ps(_mm512_add_ps(b0, b1)) + t1;
        }
    for (; r < r1; r++) {
        const uint16_t *mp = s->meta + r * s->meta_stride;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        int64_t k = 0;
#define STEP(A, W, K) A = _mm512_fmadd_ps((W), xg16(xp + 32 * (K), mp + 2 * (K), sh2, base, three), A)
#define STEP4(V)                                                                                   \
    {                                                                                              \
        STEP(a0, V(k), k);                                                                         \
        STEP(a1, V(k + 1), k + 1);                                                                 \
        STEP(a2, V(k + 2), k + 2);                                                                 \
        STEP(a3, V(k + 3), k + 3);                                                                 \
    }
        if (s->vkind == TP_SP_F32) {
            const float *v = s->vf32 + r * N;
#define F(k) _mm512_loadu_ps(v + 16 * (k))
            for (; k + 4 <= ns; k += 4) STEP4(F)
            for (; k < ns; k++) STEP(a0, F(k), k);
#undef F
        } else {
            const tp_qmat *q = &s->q;
            const uint8_t *cp = q->codes + r * q->code_stride;
            const uint16_t *sc = q->scale + r * q->ngroups, *of = q->offset + r * q->ngroups;
            const int64_t sg = q->g / 16; /* steps per quantisation group */
            for (int64_t gi = 0; gi * sg < ns; gi++) {
                const __m512 lut = _mm512_fmadd_ps(iota, _mm512_set1_ps(_cvtsh_ss(sc[gi])),
                                                   _mm512_set1_ps(_cvtsh_ss(of[gi])));
                const int64_t ke = (gi + 1) * sg < ns ? (gi + 1) * sg : ns;
#define Q(k) _mm512_permutexvar_ps(nib16(cp + 8 * (k), sh4), lut)
                for (; k + 4 <= ke; k += 4) STEP4(Q)
                for (; k < ke; k++) STEP(a0, Q(k), k);
#undef Q
            }
        }
#undef STEP4
#undef STEP
        const float t = tp_sp24_tail_row(s, xp, r, 8 * ns);
        y[r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3))) + t;
    }
}
