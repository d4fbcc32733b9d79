/* The cpu kernels of the ggml block formats (include/tenpak/ggml.h), written once over a small
 * vector vocabulary and compiled three times: portable C (kernels/cpu/ggml_cpu.c, VLEN 1), AVX2
 * (kernels/cpu/avx2/ggml_avx2.c, VLEN 8) and AVX-512 (kernels/cpu/avx512/ggml_avx512.c, VLEN 16).
 * The includer defines GG_SUFFIX, VF, VLEN, VZERO, VSET1, VLOAD, VSTORE, VFMA, VMUL, VADD, VHSUM,
 * VCVT8 (VLEN int8 -> floats), VF16 / VBF16 (VLEN binary16 / bfloat16 -> floats) and F16S (one
 * binary16 bit pattern -> float).
 *
 * Every quantised block is first unpacked (plain loops, which the compiler vectorises for the
 * file's ISA) into one form: int8 codes q[E] and per group of GS elements a scale a[g] and, for
 * the formats with a min, an offset b[g], so that   w = a[g] * q + b[g]   (or a[g] * q):
 *   Q4_0 q = nib - 8, a = d          Q4_1 q = nib, a = d, b = m
 *   Q5_0 q = 5-bit - 16, a = d       Q5_1 q = 5-bit, a = d, b = m
 *   Q8_0 q = qs, a = d               Q4_K / Q5_K q = 4 / 5-bit, a = d*sc, b = -(dmin*mn)  (GS 32)
 *   Q6_K q = 6-bit - 32, a = d*sc (GS 16)
 * a * q is exact in fp32 (ggml.h), so a * q + b rounds once, with or without FMA: the same float
 * as the reference (x - y and x + (-y) are the same IEEE operation).
 *
 * GEMV (one x): 4 rows at a time share x's loads; per group t = sum q*x (VLEN lanes), then
 * acc += a * t, and the offsets use the identity sum (a q + b) x = a sum q x + b sum x with the
 * per-32 sums of x computed once per call (xsum), the codes centred (gg_unpack). A row's arithmetic is the same in a 4-row pass
 * and alone; on AVX-512 the 32-element 4/5-bit formats keep their codes in registers
 * (gg_gemv_q32_reg) and Q8_0 is read in place. GEMM (and the float types' GEMV): 4 rows x 1024
 * columns dequantised into a tile on the stack (F32 rows read in place), then X rows two at a time
 * against it; the partial sums of the chunks are added into Y in order. */
#include <string.h>

#define GG_CAT2(a, b) a##_##b
#define GG_CAT(a, b) GG_CAT2(a, b)
#define GGFN(name) GG_CAT(name, GG_SUFFIX)
#define GG_INLINE static inline __attribute__((always_inline))

typedef struct ggu {
    _Alignas(64) int8_t q[256];
    float a[16], b[16];
    const int8_t *qp; /* the codes: q, or Q8_0's own bytes in the block (nothing to unpack) */
} ggu;

GG_INLINE int gg_elems(int t) { return t == TP_GGML_Q4_K || t == TP_GGML_Q5_K || t == TP_GGML_Q6_K ? 256 : 32; }
GG_INLINE int gg_gs(int t) { return t == TP_GGML_Q6_K ? 16 : 32; }
GG_INLINE int gg_hasb(int t) {
    return t == TP_GGML_Q4_1 || t == TP_GGML_Q5_1 || t == TP_GGML_Q4_K || t == TP_GGML_Q5_K;
}
GG_INLINE size_t gg_bytes(int t) {
    switch (t) {
    case TP_GGML_Q4_0: return 18;
    case TP_GGML_Q4_1: return 20;
    case TP_GGML_Q5_0: return 22;
    case TP_GGML_Q5_1: return 24;
    case TP_GGML_Q8_0: return 34;
    case TP_GGML_Q4_K: return 144;
    case TP_GGML_Q5_K: return 176;
    case TP_GGML_Q6_K: return 210;
    case TP_GGML_F32: return 4;
    default: return 2;
    }
}
GG_INLINE float gg_h(const uint8_t *p) { return F16S((uint16_t)(p[0] | p[1] << 8)); }

/* codes of a 32-element block: q[j] = (low nibble of qs[j] | bit j of qh << 4) - off and
 * q[j + 16] = (high nibble of qs[j] | bit j + 16 of qh << 4) - off, j < 16 (qh = 0: 4-bit codes).
 * With SSSE3 (the AVX files) in vector registers: the loop form makes the compiler assemble the
 * 32 bytes from byte stores, which the vector loads that follow cannot forward from. */
#if defined(__SSSE3__)
#include <immintrin.h>
GG_INLINE void gg_codes32_reg(const uint8_t *qs, uint32_t qh, int off, __m128i *lop, __m128i *hip) {
    const __m128i v = _mm_loadu_si128((const __m128i *)(const void *)qs), m15 = _mm_set1_epi8(15);
    const __m128i o = _mm_set1_epi8((char)off);
    __m128i lo = _mm_and_si128(v, m15), hi = _mm_and_si128(_mm_srli_epi16(v, 4), m15);
    if (qh) {
        /* byte j of h gets byte j / 8 of qh, tested against bit j % 8 */
        const __m128i bits = _mm_set1_epi64x((long long)0x8040201008040201ull), x10 = _mm_set1_epi8(16);
        const __m128i h = _mm_cvtsi32_si128((int)qh);
        const __m128i hl = _mm_shuffle_epi8(h, _mm_set_epi8(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0));
        const __m128i hh = _mm_shuffle_epi8(h, _mm_set_epi8(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2));
        lo = _mm_or_si128(lo, _mm_and_si128(_mm_cmpeq_epi8(_mm_and_si128(hl, bits), bits), x10));
        hi = _mm_or_si128(hi, _mm_and_si128(_mm_cmpeq_epi8(_mm_and_si128(hh, bits), bits), x10));
    }
    *lop = _mm_sub_epi8(lo, o);
    *hip = _mm_sub_epi8(hi, o);
}
GG_INLINE void gg_codes32(const uint8_t *qs, uint32_t qh, int off, int8_t *q) {
    __m128i lo, hi;
    gg_codes32_reg(qs, qh, off, &lo, &hi);
    _mm_storeu_si128((__m128i *)(void *)q, lo);
    _mm_storeu_si128((__m128i *)(void *)(q + 16), hi);
}
#else
GG_INLINE void gg_codes32(const uint8_t *qs, uint32_t qh, int off, int8_t *q) {
    for (int j = 0; j < 16; j++) {
        q[j] = (int8_t)(((qs[j] & 15) | ((qh >> j) & 1) << 4) - off);
        q[j + 16] = (int8_t)(((qs[j] >> 4) | ((qh >> (j + 16)) & 1) << 4) - off);
    }
}
#endif

/* the unpacked form of the block at p (see the top of this file). centre (GEMV only): the codes of
 * the formats with a min are moved to the middle of their range, q - C with b + C a (C = 8 for
 * 4-bit, 16 for 5-bit codes): the same products up to b's rounding, but the two parts of
 * a sum q x + b sum x no longer cancel (b is about -C a in trained weights) */
GG_INLINE void gg_unpack(const int t, const int centre, const uint8_t *p, ggu *u) {
    int8_t *q = u->q;
    u->qp = q;
    switch (t) {
    case TP_GGML_Q4_0:
    case TP_GGML_Q4_1: {
        const int off = t == TP_GGML_Q4_0 || centre ? 8 : 0;
        gg_codes32(p + (t == TP_GGML_Q4_0 ? 2 : 4), 0, off, q);
        u->a[0] = gg_h(p);
        if (t == TP_GGML_Q4_1) u->b[0] = centre ? gg_h(p + 2) + 8.0f * u->a[0] : gg_h(p + 2);
        return;
    }
    case TP_GGML_Q5_0:
    case TP_GGML_Q5_1: {
        const int m = t == TP_GGML_Q5_1, off = m && !centre ? 0 : 16;
        const uint8_t *hp = p + 2 + 2 * m, *qs = hp + 4;
        uint32_t qh;
        memcpy(&qh, hp, 4);
        gg_codes32(qs, qh, off, q);
        u->a[0] = gg_h(p);
        if (m) u->b[0] = centre ? gg_h(p + 2) + 16.0f * u->a[0] : gg_h(p + 2);
        return;
    }
    case TP_GGML_Q8_0:
        u->qp = (const int8_t *)(const void *)(p + 2);
        u->a[0] = gg_h(p);
        return;
    case TP_GGML_Q4_K:
    case TP_GGML_Q5_K: {
        const int five = t == TP_GGML_Q5_K;
        const uint8_t *sc = p + 4, *qh = p + 16, *qs = p + 16 + 32 * five;
        const float d = gg_h(p), dmin = gg_h(p + 2);
        const int off = centre ? (five ? 16 : 8) : 0;
        for (int c = 0; c < 4; c++) {
            int8_t *o = q + 64 * c;
            const uint8_t *s = qs + 32 * c;
            if (five)
                for (int j = 0; j < 32; j++) {
                    o[j] = (int8_t)(((s[j] & 15) | ((qh[j] >> (2 * c)) & 1) << 4) - off);
                    o[j + 32] = (int8_t)(((s[j] >> 4) | ((qh[j] >> (2 * c + 1)) & 1) << 4) - off);
                }
            else
                for (int j = 0; j < 32; j++) {
                    o[j] = (int8_t)((s[j] & 15) - off);
                    o[j + 32] = (int8_t)((s[j] >> 4) - off);
                }
        }
        for (int k = 0; k < 4; k++) {
            u->a[k] = d * (float)(sc[k] & 63);
            u->b[k] = -(dmin * (float)(sc[k + 4] & 63));
            u->a[k + 4] = d * (float)((sc[k + 8] & 15) | (sc[k] >> 6) << 4);
            u->b[k + 4] = -(dmin * (float)((sc[k + 8] >> 4) | (sc[k + 4] >> 6) << 4));
        }
        if (off)
            for (int g = 0; g < 8; g++) u->b[g] += (float)off * u->a[g];
        return;
    }
    case TP_GGML_Q6_K: {
        const uint8_t *ql = p, *qh = p + 128;
        for (int h = 0; h < 2; h++) {
            int8_t *o = q + 128 * h;
            const uint8_t *l = ql + 64 * h, *hb = qh + 32 * h;
            for (int j = 0; j < 32; j++) {
                o[j] = (int8_t)(((l[j] & 15) | (hb[j] & 3) << 4) - 32);
                o[j + 32] = (int8_t)(((l[j + 32] & 15) | ((hb[j] >> 2) & 3) << 4) - 32);
                o[j + 64] = (int8_t)(((l[j] >> 4) | ((hb[j] >> 4) & 3) << 4) - 32);
                o[j + 96] = (int8_t)(((l[j + 32] >> 4) | (hb[j] >> 6) << 4) - 32);
            }
        }
        const float d = gg_h(p + 208);
        for (int k = 0; k < 16; k++) u->a[k] = d * (float)(int8_t)p[192 + k];
        return;
    }
    }
}

/* k elements of a float type (F32 / F16 / BF16) starting at element 0 of p, into out */
GG_INLINE void gg_convert(const int t, const uint8_t *p, int64_t k, float *out) {
    int64_t i = 0;
    if (t == TP_GGML_F32) {
        memcpy(out, p, (size_t)k * 4);
        return;
    }
    if (t == TP_GGML_F16) {
        for (; i + VLEN <= k; i += VLEN) VSTORE(out + i, VF16(p + 2 * i));
        for (; i < k; i++) out[i] = gg_h(p + 2 * i);
    } else {
        for (; i + VLEN <= k; i += VLEN) VSTORE(out + i, VBF16(p + 2 * i));
        for (; i < k; i++) out[i] = tp_bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
    }
}

/* one unpacked block into out (E floats) */
GG_INLINE void gg_emit(const int t, const ggu *u, float *out) {
    const int E = gg_elems(t), GS = gg_gs(t);
    for (int g = 0; g < E / GS; g++) {
        const VF a = VSET1(u->a[g]);
        if (gg_hasb(t)) {
            const VF b = VSET1(u->b[g]);
            for (int i = 0; i < GS; i += VLEN) VSTORE(out + g * GS + i, VFMA(a, VCVT8(u->qp + g * GS + i), b));
        } else
            for (int i = 0; i < GS; i += VLEN) VSTORE(out + g * GS + i, VMUL(a, VCVT8(u->qp + g * GS + i)));
    }
}

/* nb blocks (elements, for the float types) of src into dst */
GG_INLINE void gg_dequant_t(const int t, const uint8_t *src, int64_t nb, float *dst) {
    if (t == TP_GGML_F32 || t == TP_GGML_F16 || t == TP_GGML_BF16) {
        gg_convert(t, src, nb, dst);
        return;
    }
    const int E = gg_elems(t);
    const size_t bb = gg_bytes(t);
    ggu u;
    for (int64_t b = 0; b < nb; b++) {
        gg_unpack(t, 0, src + (size_t)b * bb, &u);
        gg_emit(t, &u, dst + b * E);
    }
}

void GGFN(tp_ggml_dequant_blocks)(int type, const uint8_t *src, int64_t nb, float *dst) {
    switch (type) {
#define GG_CASE(T) case T: gg_dequant_t(T, src, nb, dst); return;
    GG_CASE(TP_GGML_F32) GG_CASE(TP_GGML_F16) GG_CASE(TP_GGML_BF16) GG_CASE(TP_GGML_Q4_0)
    GG_CASE(TP_GGML_Q4_1) GG_CASE(TP_GGML_Q5_0) GG_CASE(TP_GGML_Q5_1) GG_CASE(TP_GGML_Q8_0)
    GG_CASE(TP_GGML_Q4_K) GG_CASE(TP_GGML_Q5_K) GG_CASE(TP_GGML_Q6_K)
#undef GG_CASE
    }
}

/* GEMV of rows r .. r + NR - 1 (NR <= 4, a constant after inlining) of a quantised type */
GG_INLINE void gg_gemv_q(const int t, const int NR, const uint8_t *W, size_t rb, int64_t cols, const float *x,
                         const float *xsum, int64_t r, float *y) {
    const int E = gg_elems(t), GS = gg_gs(t), NG = E / GS;
    const size_t bb = gg_bytes(t);
    VF acc[4];
    float bacc[4] = {0, 0, 0, 0};
    ggu u[4];
    for (int k = 0; k < NR; k++) acc[k] = VZERO();
    const int64_t nb = cols / E;
    for (int64_t blk = 0; blk < nb; blk++) {
        for (int k = 0; k < NR; k++) gg_unpack(t, 1, W + (size_t)(r + k) * rb + (size_t)blk * bb, &u[k]);
        const float *xb = x + blk * E;
        for (int g = 0; g < NG; g++) {
            VF s[4];
            for (int k = 0; k < NR; k++) s[k] = VZERO();
            for (int i = 0; i < GS; i += VLEN) {
                const VF xv = VLOAD(xb + g * GS + i);
                for (int k = 0; k < NR; k++) s[k] = VFMA(VCVT8(u[k].qp + g * GS + i), xv, s[k]);
            }
            for (int k = 0; k < NR; k++) acc[k] = VFMA(VSET1(u[k].a[g]), s[k], acc[k]);
            if (gg_hasb(t)) {
                const float xs = xsum[blk * NG + g];
                for (int k = 0; k < NR; k++) bacc[k] += u[k].b[g] * xs;
            }
        }
    }
    for (int k = 0; k < NR; k++) y[r + k] = VHSUM(acc[k]) + bacc[k];
}

#ifdef VCVT8R
/* GEMV of a 32-element quantised type with 16 lanes: the codes stay in registers (no unpacked
 * copy); the same operations in the same order as gg_gemv_q, so the same bits */
GG_INLINE void gg_gemv_q32_reg(const int t, const int NR, const uint8_t *W, size_t rb, int64_t cols,
                               const float *x, const float *xsum, int64_t r, float *y) {
    const size_t bb = gg_bytes(t);
    const int m = t == TP_GGML_Q4_1 || t == TP_GGML_Q5_1, five = t == TP_GGML_Q5_0 || t == TP_GGML_Q5_1;
    const int off = five ? 16 : 8; /* centred, as gg_unpack(t, 1, ...) */
    VF acc[4];
    float bacc[4] = {0, 0, 0, 0};
    for (int k = 0; k < NR; k++) acc[k] = VZERO();
    for (int64_t blk = 0; blk < cols / 32; blk++) {
        const VF x0 = VLOAD(x + 32 * blk), x1 = VLOAD(x + 32 * blk + 16);
        for (int k = 0; k < NR; k++) {
            const uint8_t *p = W + (size_t)(r + k) * rb + (size_t)blk * bb;
            uint32_t qh = 0;
            if (five) memcpy(&qh, p + 2 + 2 * m, 4);
            __m128i lo, hi;
            gg_codes32_reg(p + 2 + 2 * m + 4 * five, qh, off, &lo, &hi);
            const float a = gg_h(p);
            VF s = VFMA(VCVT8R(lo), x0, VZERO());
            s = VFMA(VCVT8R(hi), x1, s);
            acc[k] = VFMA(VSET1(a), s, acc[k]);
            if (m) bacc[k] += (gg_h(p + 2) + (float)off * a) * xsum[blk];
        }
    }
    for (int k = 0; k < NR; k++) y[r + k] = VHSUM(acc[k]) + bacc[k];
}
#endif

GG_INLINE void gg_gemv_t(const int t, const uint8_t *W, size_t rb, int64_t cols, const float *x, const float *xsum,
                         int64_t r0, int64_t r1, float *y) {
    int64_t r = r0;
#ifdef VCVT8R
    if (gg_elems(t) == 32 && t != TP_GGML_Q8_0) {
        for (; r + 4 <= r1; r += 4) gg_gemv_q32_reg(t, 4, W, rb, cols, x, xsum, r, y);
        for (; r < r1; r++) gg_gemv_q32_reg(t, 1, W, rb, cols, x, xsum, r, y);
        return;
    }
#endif
    for (; r + 4 <= r1; r += 4) gg_gemv_q(t, 4, W, rb, cols, x, xsum, r, y);
    for (; r < r1; r++) gg_gemv_q(t, 1, W, rb, cols, x, xsum, r, y);
}

/* y[r] for r in [r0, r1) of a quantised type (xsum: sums of x per 32 columns) */
void GGFN(tp_ggml_gemv_rows)(int type, const uint8_t *W, size_t rb, int64_t cols, const float *x,
                             const float *xsum, int64_t r0, int64_t r1, float *y) {
    switch (type) {
#define GG_CASE(T) case T: gg_gemv_t(T, W, rb, cols, x, xsum, r0, r1, y); return;
    GG_CASE(TP_GGML_Q4_0) GG_CASE(TP_GGML_Q4_1) GG_CASE(TP_GGML_Q5_0) GG_CASE(TP_GGML_Q5_1)
    GG_CASE(TP_GGML_Q8_0) GG_CASE(TP_GGML_Q4_K) GG_CASE(TP_GGML_Q5_K) GG_CASE(TP_GGML_Q6_K)
#undef GG_CASE
    }
}

#define GG_TILE_COLS 1024 /* a multiple of 256 */

/* the dots of 4 tile rows with NX (1 or 2) activation rows over w columns: out[k * 2 + i] */
GG_INLINE void gg_dot4(const int NX, const float *const t[4], const float *x0, const float *x1, int64_t w,
                       float *out) {
    VF acc[4][2];
    for (int k = 0; k < 4; k++) acc[k][0] = acc[k][1] = VZERO();
    int64_t c = 0;
    for (; c + VLEN <= w; c += VLEN) {
        const VF xa = VLOAD(x0 + c), xb = NX > 1 ? VLOAD(x1 + c) : VZERO();
        for (int k = 0; k < 4; k++) {
            const VF wv = VLOAD(t[k] + c);
            acc[k][0] = VFMA(wv, xa, acc[k][0]);
            if (NX > 1) acc[k][1] = VFMA(wv, xb, acc[k][1]);
        }
    }
    for (int k = 0; k < 4; k++) {
        float s0 = 0, s1 = 0;
        for (int64_t j = c; j < w; j++) {
            s0 += t[k][j] * x0[j];
            if (NX > 1) s1 += t[k][j] * x1[j];
        }
        out[2 * k] = VHSUM(acc[k][0]) + s0;
        if (NX > 1) out[2 * k + 1] = VHSUM(acc[k][1]) + s1;
    }
}

/* Y[i][r] for r in [r0, r1), every i < n: 4 rows x GG_TILE_COLS columns dequantised at a time,
 * then each pair of X rows against them (8 independent sums; a short group of rows repeats its
 * first row in the spare slots, never stored). A row's result depends on the columns only. */
void GGFN(tp_ggml_gemm_rows)(int type, const uint8_t *W, size_t rb, int64_t rows, int64_t cols, const float *X,
                             int64_t n, int64_t r0, int64_t r1, float *Y) {
    _Alignas(64) float tile[4][GG_TILE_COLS];
    const int64_t E = type == TP_GGML_F32 || type == TP_GGML_F16 || type == TP_GGML_BF16 ? 1 : gg_elems(type);
    const size_t bb = gg_bytes(type);
    const int f32_direct = type == TP_GGML_F32 && ((uintptr_t)(const void *)W & 3) == 0;
    for (int64_t r = r0; r < r1; r += 4) {
        const int nr = r1 - r < 4 ? (int)(r1 - r) : 4;
        const float *t[4];
        for (int64_t c0 = 0; c0 < cols; c0 += GG_TILE_COLS) {
            const int64_t w = cols - c0 < GG_TILE_COLS ? cols - c0 : GG_TILE_COLS;
            for (int k = 0; k < 4; k++) {
                const uint8_t *src = W + (size_t)(r + (k < nr ? k : 0)) * rb + (size_t)(c0 / E) * bb;
                if (f32_direct) t[k] = (const float *)(const void *)src; /* F32 rows are read in place */
                else {
                    t[k] = tile[k < nr ? k : 0];
                    if (k < nr) GGFN(tp_ggml_dequant_blocks)(type, src, w / E, tile[k]);
                }
            }
            for (int64_t i = 0; i < n; i += 2) {
                const int nx = n - i < 2 ? 1 : 2;
                float d[8];
                if (nx == 2) gg_dot4(2, t, X + i * cols + c0, X + (i + 1) * cols + c0, w, d);
                else gg_dot4(1, t, X + i * cols + c0, NULL, w, d);
                for (int j = 0; j < nx; j++) {
                    float *yi = Y + (i + j) * rows + r;
                    for (int k = 0; k < nr; k++) yi[k] = c0 ? yi[k] + d[2 * k + j] : d[2 * k + j];
                }
            }
        }
    }
}
