/* AVX2 + FMA + F16C kernels for 2:4 sparsity (called after run-time detection).
 *
 * GEMV: one 16-bit metadata word covers 4 groups = 16 dense columns = 8 kept values. With x
 * rearranged once per call (tp_sp24_xr_make: groups 0 and 2 of every 16 columns in one vector,
 * groups 1 and 3 in the next), the word broadcast and shifted by 0, 2, .., 14 is directly the
 * control of two in-lane permutes (vpermilps reads only the low 2 bits of each lane), and one
 * blend lines the 8 activations up with the 8 kept values: no gathers, no cross-lane permutes.
 * Values are read as they are stored (fp32, fp16 through F16C, or INT4 nibbles expanded with a
 * variable shift and converted: q*s + o with the group's scale/offset).
 *
 * GEMM: per row the kept values and their columns are decoded once; the transposed activations
 * XT[col][0..bp) are then streamed with one broadcast and nv FMAs per kept value. */
#include <immintrin.h>
#include <string.h>

#include "kernels/cpu/codecs_cpu.h"

typedef struct lut4 {
    int32_t v[256][4];
} lut4;

static void lut_build(lut4 *t) {
    for (int b = 0; b < 256; b++) {
        int f0 = b & 15, f1 = b >> 4;
        t->v[b][0] = f0 & 3;
        t->v[b][1] = (f0 >> 2) & 3;
        t->v[b][2] = 4 + (f1 & 3);
        t->v[b][3] = 4 + ((f1 >> 2) & 3);
    }
}

static inline __m256i lut_idx(const lut4 *t, unsigned m) {
    __m128i lo = _mm_load_si128((const __m128i *)t->v[m & 255]);
    __m128i hi = _mm_load_si128((const __m128i *)t->v[m >> 8]);
    return _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
}

static const int32_t SH4[8] = {0, 4, 8, 12, 16, 20, 24, 28};

static inline __m256 int4_codes(const uint8_t *p, __m256i sh, __m256i m15) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(v), sh), m15));
}

/* Expand one metadata word into the vpermilps control: lane 2j+t gets the 2-bit field of kept
 * entry t of group j (bits above the low 2 are ignored by vpermilps). */
static const int32_t SH2[8] = {0, 2, 4, 6, 8, 10, 12, 14};
static inline __m256i meta_ctrl(const uint16_t *mp, __m256i sh2) {
    int32_t v; /* 4 bytes: the word and the next (tp_sp24_alloc pads meta), upper half ignored */
    memcpy(&v, mp, 4);
    return _mm256_srlv_epi32(_mm256_set1_epi32(v), sh2);
}
/* controls of words w (low half of the dword) and w + 1 (high half) from one broadcast */
static inline void meta_ctrl2(const uint16_t *mp, __m256i sh2, __m256i sh2h, __m256i *c0, __m256i *c1) {
    int32_t v;
    memcpy(&v, mp, 4);
    __m256i b = _mm256_set1_epi32(v);
    *c0 = _mm256_srlv_epi32(b, sh2);
    *c1 = _mm256_srlv_epi32(b, sh2h);
}
/* xr holds x rearranged per 16 columns as A = [x0..3 | x8..11], B = [x4..7 | x12..15]:
 * groups 0 and 2 in A, groups 1 and 3 in B, so the in-lane permute of A serves lanes 0,1 and
 * 4,5 and that of B lanes 2,3 and 6,7; one blend merges them in kept-value order. */
static inline __m256 gather_xr(const float *xr, __m256i ctrl) {
    __m256 a = _mm256_permutevar_ps(_mm256_loadu_ps(xr), ctrl);
    __m256 b = _mm256_permutevar_ps(_mm256_loadu_ps(xr + 8), ctrl);
    return _mm256_blend_ps(a, b, 0xCC);
}

void tp_sp24_xr_make(const float *xp, int64_t nw, float *xr) {
    for (int64_t w = 0; w < nw; w++) {
        const float *x = xp + 16 * w;
        float *o = xr + 16 * w;
        memcpy(o, x, 16);
        memcpy(o + 4, x + 8, 16);
        memcpy(o + 8, x + 4, 16);
        memcpy(o + 12, x + 12, 16);
    }
}

void tp_sp24_gemv_rows_avx2(const tp_sp24 *s, const float *xp, const float *xr, int64_t r0,
                            int64_t r1, float *y) {
    const int64_t N = s->nkept, nw = s->ngroups / 4;
    const __m256i sh = _mm256_loadu_si256((const __m256i *)SH4), m15 = _mm256_set1_epi32(15);
    const __m256i sh2 = _mm256_loadu_si256((const __m256i *)SH2);
    const __m256i sh2h = _mm256_add_epi32(sh2, _mm256_set1_epi32(16));
    const int g = s->vkind == TP_SP_INT4 ? s->q.g : 0;
    const int int4_vec = g > 0 && g % 8 == 0;
    for (int64_t r = r0; r < r1; r++) {
        const uint16_t *mp = s->meta + r * s->meta_stride;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        int64_t w = 0;
        if (s->vkind == TP_SP_F32) {
            const float *v = s->vf32 + r * N;
            for (; w + 2 <= nw; w += 2) {
                __m256i c0, c1;
                meta_ctrl2(mp + w, sh2, sh2h, &c0, &c1);
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(v + 8 * w), gather_xr(xr + 16 * w, c0), a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(v + 8 * w + 8), gather_xr(xr + 16 * w + 16, c1), a1);
            }
            for (; w < nw; w++)
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(v + 8 * w), gather_xr(xr + 16 * w, meta_ctrl(mp + w, sh2)), a0);
        } else if (s->vkind == TP_SP_F16) {
            const uint16_t *v = s->vf16 + r * N;
            for (; w + 2 <= nw; w += 2) {
                __m256 v0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v + 8 * w)));
                __m256 v1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v + 8 * w + 8)));
                __m256i c0, c1;
                meta_ctrl2(mp + w, sh2, sh2h, &c0, &c1);
                a0 = _mm256_fmadd_ps(v0, gather_xr(xr + 16 * w, c0), a0);
                a1 = _mm256_fmadd_ps(v1, gather_xr(xr + 16 * w + 16, c1), a1);
            }
            for (; w < nw; w++)
                a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v + 8 * w))),
                                     gather_xr(xr + 16 * w, meta_ctrl(mp + w, sh2)), a0);
        } else if (int4_vec) {
            const tp_qmat *q = &s->q;
            const uint8_t *cp = q->codes + r * q->code_stride;
            const uint16_t *sc = q->scale + r * q->ngroups, *of = q->offset + r * q->ngroups;
            /* per quantisation group: sum (q s + o) x = s * sum q x + o * sum x */
            for (int64_t gi = 0; gi * g < 8 * nw; gi++) {
                int64_t we = (gi + 1) * g / 8 < nw ? (gi + 1) * g / 8 : nw;
                __m256 qx0 = _mm256_setzero_ps(), qx1 = _mm256_setzero_ps();
                __m256 qx2 = _mm256_setzero_ps(), qx3 = _mm256_setzero_ps();
                __m256 sx0 = _mm256_setzero_ps(), sx1 = _mm256_setzero_ps();
                /* 4 words per step, 4 FMA chains: the FMA latency would otherwise bound the loop */
                for (w = gi * g / 8; w + 4 <= we; w += 4) {
                    __m256i c0, c1, c2, c3;
                    meta_ctrl2(mp + w, sh2, sh2h, &c0, &c1);
                    meta_ctrl2(mp + w + 2, sh2, sh2h, &c2, &c3);
                    __m256 x0 = gather_xr(xr + 16 * w, c0);
                    __m256 x1 = gather_xr(xr + 16 * w + 16, c1);
                    qx0 = _mm256_fmadd_ps(int4_codes(cp + 4 * w, sh, m15), x0, qx0);
                    qx1 = _mm256_fmadd_ps(int4_codes(cp + 4 * w + 4, sh, m15), x1, qx1);
                    sx0 = _mm256_add_ps(sx0, _mm256_add_ps(x0, x1));
                    __m256 x2 = gather_xr(xr + 16 * w + 32, c2);
                    __m256 x3 = gather_xr(xr + 16 * w + 48, c3);
                    qx2 = _mm256_fmadd_ps(int4_codes(cp + 4 * w + 8, sh, m15), x2, qx2);
                    qx3 = _mm256_fmadd_ps(int4_codes(cp + 4 * w + 12, sh, m15), x3, qx3);
                    sx1 = _mm256_add_ps(sx1, _mm256_add_ps(x2, x3));
                }
                qx0 = _mm256_add_ps(qx0, qx2);
                qx1 = _mm256_add_ps(qx1, qx3);
                for (; w < we; w++) {
                    __m256 x0 = gather_xr(xr + 16 * w, meta_ctrl(mp + w, sh2));
                    qx0 = _mm256_fmadd_ps(int4_codes(cp + 4 * w, sh, m15), x0, qx0);
                    sx0 = _mm256_add_ps(sx0, x0);
                }
                __m256 sv = _mm256_set1_ps(_cvtsh_ss(sc[gi])), ov = _mm256_set1_ps(_cvtsh_ss(of[gi]));
                a0 = _mm256_fmadd_ps(sv, _mm256_add_ps(qx0, qx1), a0);
                a1 = _mm256_fmadd_ps(ov, _mm256_add_ps(sx0, sx1), a1);
            }
            w = nw;
        } else
            w = 0;
        y[r] = tp_hsum8(_mm256_add_ps(a0, a1)) + tp_sp24_tail_row(s, xp, r, 4 * w);
    }
}

/* kept values of row r as fp32 and their columns */
static void decode_row(const tp_sp24 *s, const lut4 *t, int64_t r, float *vals, int32_t *idx) {
    const int64_t N = s->nkept, nw = s->ngroups / 4;
    const uint16_t *mp = s->meta + r * s->meta_stride;
    for (int64_t w = 0; w < nw; w++) {
        __m256i base = _mm256_set_epi32((int)(16 * w + 8), (int)(16 * w + 8), (int)(16 * w + 8), (int)(16 * w + 8),
                                        (int)(16 * w), (int)(16 * w), (int)(16 * w), (int)(16 * w));
        _mm256_storeu_si256((__m256i *)(idx + 8 * w), _mm256_add_epi32(lut_idx(t, mp[w]), base));
    }
    for (int64_t j = 4 * nw; j < s->ngroups; j++) {
        int f = tp_sp24_field(s, r, j);
        idx[2 * j] = (int32_t)(4 * j + (f & 3));
        idx[2 * j + 1] = (int32_t)(4 * j + ((f >> 2) & 3));
    }
    int64_t k = 0;
    if (s->vkind == TP_SP_F32) {
        memcpy(vals, s->vf32 + r * N, (size_t)N * sizeof(float));
        return;
    }
    if (s->vkind == TP_SP_F16)
        for (; k + 8 <= N; k += 8)
            _mm256_storeu_ps(vals + k, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s->vf16 + r * N + k))));
    if (s->vkind == TP_SP_INT4 && s->q.g % 8 == 0) {
        /* q * s + o: q * s is exact, so the FMA equals the definition's multiply-then-add */
        const tp_qmat *q = &s->q;
        const __m256i sh = _mm256_loadu_si256((const __m256i *)SH4), m15 = _mm256_set1_epi32(15);
        const uint8_t *cp = q->codes + r * q->code_stride;
        for (; k + 8 <= N; k += 8) {
            int64_t gi = k / q->g;
            __m256 sv = _mm256_set1_ps(_cvtsh_ss(q->scale[r * q->ngroups + gi]));
            __m256 ov = _mm256_set1_ps(_cvtsh_ss(q->offset[r * q->ngroups + gi]));
            _mm256_storeu_ps(vals + k, _mm256_fmadd_ps(int4_codes(cp + k / 2, sh, m15), sv, ov));
        }
    }
    for (; k < N; k++) vals[k] = tp_sp24_value(s, r, k);
}

static inline __attribute__((always_inline)) void gemm_row(const float *vals, const int32_t *idx,
                                                           int64_t N, const float *XT, const int nv,
                                                           float *o) {
    __m256 acc[8];
    for (int i = 0; i < nv; i++) acc[i] = _mm256_setzero_ps();
    for (int64_t k = 0; k < N; k++) {
        const __m256 v = _mm256_broadcast_ss(vals + k);
        const float *xt = XT + (int64_t)idx[k] * (8 * nv);
        for (int i = 0; i < nv; i++) acc[i] = _mm256_fmadd_ps(v, _mm256_loadu_ps(xt + 8 * i), acc[i]);
    }
    for (int i = 0; i < nv; i++) _mm256_storeu_ps(o + 8 * i, acc[i]);
}

#define GEMM_NV(NV)                                                                              \
    static void gemm_rows_##NV(const tp_sp24 *s, const lut4 *t, const float *XT, int64_t r0,     \
                               int64_t r1, float *vals, int32_t *idx, float *out) {              \
        for (int64_t r = r0; r < r1; r++) {                                                      \
            decode_row(s, t, r, vals, idx);                                                      \
            gemm_row(vals, idx, s->nkept, XT, NV, out + (r - r0) * 8 * NV);                      \
        }                                                                                        \
    }
GEMM_NV(1)
GEMM_NV(2)
GEMM_NV(3)
GEMM_NV(4)
GEMM_NV(5)
GEMM_NV(6)
GEMM_NV(7)
GEMM_NV(8)

void tp_sp24_gemm_rows_avx2(const tp_sp24 *s, const float *XT, int nv, int64_t r0, int64_t r1,
                            float *vals, int32_t *idx, float *out) {
    lut4 t __attribute__((aligned(16)));
    lut_build(&t);
    switch (nv) {
    case 1: gemm_rows_1(s, &t, XT, r0, r1, vals, idx, out); break;
    case 2: gemm_rows_2(s, &t, XT, r0, r1, vals, idx, out); break;
    case 3: gemm_rows_3(s, &t, XT, r0, r1, vals, idx, out); break;
    case 4: gemm_rows_4(s, &t, XT, r0, r1, vals, idx, out); break;
    case 5: gemm_rows_5(s, &t, XT, r0, r1, vals, idx, out); break;
    case 6: gemm_rows_6(s, &t, XT, r0, r1, vals, idx, out); break;
    case 7: gemm_rows_7(s, &t, XT, r0, r1, vals, idx, out); break;
    default: gemm_rows_8(s, &t, XT, r0, r1, vals, idx, out); break;
    }
}
