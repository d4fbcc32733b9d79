/* AVX2 + FMA + F16C kernels for the INT4 family. Compiled with -mavx2 -mfma -mf16c and only
 * called after run-time detection (src/cpu.c).
 *
 * Code expansion: a row's 8 codes for columns c..c+7 (c a multiple of 8) are the 4 bytes at
 * codes + c/2. Broadcast as one dword to all lanes, lane j shifted right by 4j and masked gives
 * element c+j, because element 2i is the low nibble of byte i (little-endian dword).
 * Groups are multiples of 8 wide, so an 8-chunk never straddles two groups.
 *
 * GEMV uses the group identity  sum_i (q_i s + o) x_i = s * sum_i q_i x_i + o * sum_i x_i,
 * with sum_i x_i per group computed once per call (tp_qgemv_xsum): 4 vector ops per 8 weights.
 */
#include <immintrin.h>
#include <string.h>

#include "kernels/cpu/quant_cpu.h"

static const int32_t SH4[8] = {0, 4, 8, 12, 16, 20, 24, 28};
static const int32_t SH2[8] = {0, 2, 4, 6, 8, 10, 12, 14};

static inline __m256i codes8(const uint8_t *p, __m256i sh, __m256i m15) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(v), sh), m15);
}
static inline __m256i rcodes8(const uint8_t *p, __m256i sh, __m256i m3) {
    uint16_t v;
    memcpy(&v, p, 2);
    return _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(v), sh), m3);
}
/* NF4 level of each code: two 8-entry permutes and a blend on bit 3 */
static inline __m256 nf4_lookup(__m256i q, __m256 lo, __m256 hi) {
    __m256 a = _mm256_permutevar8x32_ps(lo, q), b = _mm256_permutevar8x32_ps(hi, q);
    __m256 m = _mm256_castsi256_ps(_mm256_cmpgt_epi32(q, _mm256_set1_epi32(7)));
    return _mm256_blendv_ps(a, b, m);
}

/* fp16 -> fp32 for n values (vectorised by 8) */
static void f16_to_f32_n(const uint16_t *src, float *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = _cvtsh_ss(src[i]);
}

/* Scalar element, identical arithmetic to the reference (q*s is exact in fp32). */
static inline float deq_scalar(const tp_qmat *q, int64_t r, int64_t c, const float *sf,
                               const float *of, const float *rf) {
    int64_t gi = c / q->g;
    int code = tp_qmat_code(q, r, c);
    if (q->kind == TP_Q_NF4) return TP_NF4_LEVELS[code] * sf[gi];
    float base = (float)code * sf[gi] + of[gi];
    if (q->kind == TP_Q_INT4) return base;
    return base + ((float)tp_qmat_rcode(q, r, c) - 1.5f) * rf[gi];
}

/* Decode one row into dst (cols floats); sf/of/rf are the row's scales as fp32. */
static void decode_row(const tp_qmat *q, int64_t r, const float *sf, const float *of,
                       const float *rf, float *dst, int stream) {
    const __m256i sh4 = _mm256_loadu_si256((const __m256i *)SH4), m15 = _mm256_set1_epi32(15);
    const __m256i sh2 = _mm256_loadu_si256((const __m256i *)SH2), m3 = _mm256_set1_epi32(3);
    const __m256 lo = _mm256_loadu_ps(TP_NF4_LEVELS), hi = _mm256_loadu_ps(TP_NF4_LEVELS + 8);
    const __m256 c15 = _mm256_set1_ps(1.5f);
    const uint8_t *cp = q->codes + r * q->code_stride;
    const uint8_t *rp = q->rcodes ? q->rcodes + r * q->rcode_stride : NULL;
    const int64_t cols = q->cols;
    const int g = q->g;
    /* whole 8-column steps lie in one group only when g is a multiple of 8; otherwise every
     * column goes through the scalar loop below */
    const int64_t full = g % 8 ? 0 : cols & ~(int64_t)7;
    int64_t c = 0;
    if (q->kind == TP_Q_NF4) {
        for (; c < full; c += 8) {
            __m256 w = _mm256_mul_ps(nf4_lookup(codes8(cp + c / 2, sh4, m15), lo, hi),
                                     _mm256_broadcast_ss(sf + c / g));
            if (stream) _mm256_stream_ps(dst + c, w);
            else _mm256_storeu_ps(dst + c, w);
        }
    } else {
        /* group by group: the scales broadcast once a group, no division per 8 columns (llama-mini
         * pp512 on the Intel Xeon, alternating binaries: no change measurable in its noise) */
        for (int64_t gi = 0; c < full; gi++) {
            const __m256 s = _mm256_broadcast_ss(sf + gi), o = _mm256_broadcast_ss(of + gi);
            const __m256 rs = rp ? _mm256_broadcast_ss(rf + gi) : s;
            const int64_t e = c + g < full ? c + g : full;
            for (; c < e; c += 8) {
                __m256 w = _mm256_fmadd_ps(_mm256_cvtepi32_ps(codes8(cp + c / 2, sh4, m15)), s, o);
                if (rp) {
                    __m256 rq = _mm256_sub_ps(_mm256_cvtepi32_ps(rcodes8(rp + c / 4, sh2, m3)), c15);
                    w = _mm256_fmadd_ps(rq, rs, w);
                }
                if (stream) _mm256_stream_ps(dst + c, w);
                else _mm256_storeu_ps(dst + c, w);
            }
        }
    }
    for (; c < cols; c++) dst[c] = deq_scalar(q, r, c, sf, of, rf);
}

/* Per-row fp32 copies of the scales: at most 3 arrays of ngroups floats. */
typedef struct rowscales {
    float *sf, *of, *rf;
} rowscales;
static void load_rowscales(const tp_qmat *q, int64_t r, rowscales *rs) {
    size_t base = (size_t)(r * q->ngroups);
    f16_to_f32_n(q->scale + base, rs->sf, q->ngroups);
    if (q->offset) f16_to_f32_n(q->offset + base, rs->of, q->ngroups);
    if (q->rscale) f16_to_f32_n(q->rscale + base, rs->rf, q->ngroups);
}

#define MAX_STACK_GROUPS 4096
#define ROWSCALES_DECL(q)                                                                      \
    float sbuf_[3 * MAX_STACK_GROUPS];                                                         \
    float *heap_ = (q)->ngroups > MAX_STACK_GROUPS ? tp_alloc(3 * (size_t)(q)->ngroups * 4) : NULL; \
    float *sb_ = heap_ ? heap_ : sbuf_;                                                        \
    rowscales rs = {sb_, sb_ + (q)->ngroups, sb_ + 2 * (q)->ngroups};

void tp_dequant_rows_avx2(const tp_qmat *q, int64_t r0, int64_t r1, float *W) {
    ROWSCALES_DECL(q);
    /* Non-temporal stores when the output is far bigger than the caches and row starts stay
     * 32-byte aligned: the output is write-only, so keeping it out of cache saves the
     * read-for-ownership traffic (as memcpy does for large copies). */
    int stream = (q->cols % 8 == 0) && ((uintptr_t)W % 32 == 0) &&
                 (double)q->rows * (double)q->cols * 4 > 32e6;
    for (int64_t r = r0; r < r1; r++) {
        load_rowscales(q, r, &rs);
        decode_row(q, r, rs.sf, rs.of, rs.rf, W + r * q->cols, stream);
    }
    if (stream) _mm_sfence();
    tp_free(heap_);
}

/* Direct form for one 8-chunk at column c (any kind): dequantise, then multiply by x. */
static inline __m256 deq8(const tp_qmat *q, const uint8_t *cp, const uint8_t *rp, uint64_t c,
                          uint64_t gi, const rowscales *rs) {
    const __m256i sh4 = _mm256_loadu_si256((const __m256i *)SH4), m15 = _mm256_set1_epi32(15);
    __m256i qi = codes8(cp + (c >> 1), sh4, m15);
    if (q->kind == TP_Q_NF4)
        return _mm256_mul_ps(nf4_lookup(qi, _mm256_loadu_ps(TP_NF4_LEVELS), _mm256_loadu_ps(TP_NF4_LEVELS + 8)),
                             _mm256_broadcast_ss(rs->sf + gi));
    __m256 w = _mm256_fmadd_ps(_mm256_cvtepi32_ps(qi), _mm256_broadcast_ss(rs->sf + gi),
                               _mm256_broadcast_ss(rs->of + gi));
    if (rp) {
        const __m256i sh2 = _mm256_loadu_si256((const __m256i *)SH2), m3 = _mm256_set1_epi32(3);
        __m256 rq = _mm256_sub_ps(_mm256_cvtepi32_ps(rcodes8(rp + (c >> 2), sh2, m3)), _mm256_set1_ps(1.5f));
        w = _mm256_fmadd_ps(rq, _mm256_broadcast_ss(rs->rf + gi), w);
    }
    return w;
}

/* One row of y = W x.
 * Full groups of int4/nf4 with g >= 32 use the group identity (codes times x summed per group,
 * scaled once per group, offsets through the per-group sums of x): 4 vector ops per 8 weights,
 * 4 independent accumulators so the FMA latency is hidden. Everything else (g8/g16, int4r2,
 * the short last group) uses the direct form with 4 rotating accumulators. */
static float gemv_row(const tp_qmat *q, int64_t r, const float *x, const float *xsum,
                      const rowscales *rs) {
    const __m256i sh4 = _mm256_loadu_si256((const __m256i *)SH4), m15 = _mm256_set1_epi32(15);
    const __m256 lo = _mm256_loadu_ps(TP_NF4_LEVELS), hi = _mm256_loadu_ps(TP_NF4_LEVELS + 8);
    const uint8_t *cp = q->codes + r * q->code_stride;
    const uint8_t *rp = q->rcodes ? q->rcodes + r * q->rcode_stride : NULL;
    const uint64_t cols = (uint64_t)q->cols, g = (uint64_t)q->g;
    const uint64_t nfull = cols / g;            /* groups of exactly g elements */
    __m256 r0 = _mm256_setzero_ps(), r1 = _mm256_setzero_ps();
    __m256 a0 = r0, a1 = r0, a2 = r0, a3 = r0;
    float yo = 0;
    uint64_t c = 0;
    if (g >= 32 && g % 32 == 0 && !rp) {
        const int nf4 = q->kind == TP_Q_NF4;
        for (uint64_t gi = 0; gi < nfull; gi++) {
            __m256 b0 = _mm256_setzero_ps(), b1 = b0, b2 = b0, b3 = b0;
            for (uint64_t e = c + g; c < e; c += 32) {
                const uint8_t *p = cp + (c >> 1);
                __m256 q0, q1, q2, q3;
                if (nf4) {
                    q0 = nf4_lookup(codes8(p, sh4, m15), lo, hi);
                    q1 = nf4_lookup(codes8(p + 4, sh4, m15), lo, hi);
                    q2 = nf4_lookup(codes8(p + 8, sh4, m15), lo, hi);
                    q3 = nf4_lookup(codes8(p + 12, sh4, m15), lo, hi);
                } else {
                    q0 = _mm256_cvtepi32_ps(codes8(p, sh4, m15));
                    q1 = _mm256_cvtepi32_ps(codes8(p + 4, sh4, m15));
                    q2 = _mm256_cvtepi32_ps(codes8(p + 8, sh4, m15));
                    q3 = _mm256_cvtepi32_ps(codes8(p + 12, sh4, m15));
                }
                b0 = _mm256_fmadd_ps(q0, _mm256_loadu_ps(x + c), b0);
                b1 = _mm256_fmadd_ps(q1, _mm256_loadu_ps(x + c + 8), b1);
                b2 = _mm256_fmadd_ps(q2, _mm256_loadu_ps(x + c + 16), b2);
                b3 = _mm256_fmadd_ps(q3, _mm256_loadu_ps(x + c + 24), b3);
            }
            __m256 t = _mm256_add_ps(_mm256_add_ps(b0, b1), _mm256_add_ps(b2, b3));
            /* two result accumulators, swapped each group, halve the FMA chain */
            __m256 prev = r0;
            r0 = r1;
            r1 = _mm256_fmadd_ps(_mm256_broadcast_ss(rs->sf + gi), t, prev);
            if (!nf4) yo += rs->of[gi] * xsum[gi];
        }
    } else if (g % 8 == 0 && (g & (g - 1)) == 0) {
        const uint64_t gshift = (uint64_t)__builtin_ctzll(g);
        for (; c + 32 <= cols; c += 32) {
            a0 = _mm256_fmadd_ps(deq8(q, cp, rp, c, c >> gshift, rs), _mm256_loadu_ps(x + c), a0);
            a1 = _mm256_fmadd_ps(deq8(q, cp, rp, c + 8, (c + 8) >> gshift, rs), _mm256_loadu_ps(x + c + 8), a1);
            a2 = _mm256_fmadd_ps(deq8(q, cp, rp, c + 16, (c + 16) >> gshift, rs), _mm256_loadu_ps(x + c + 16), a2);
            a3 = _mm256_fmadd_ps(deq8(q, cp, rp, c + 24, (c + 24) >> gshift, rs), _mm256_loadu_ps(x + c + 24), a3);
        }
    }
    /* what is left: whole 8-chunks in the direct form (one group each: g a multiple of 8), then
     * single elements; any other g runs element by element (an 8-chunk could straddle groups) */
    for (; g % 8 == 0 && c + 8 <= cols; c += 8)
        a0 = _mm256_fmadd_ps(deq8(q, cp, rp, c, c / g, rs), _mm256_loadu_ps(x + c), a0);
    for (; c < cols; c++) yo += deq_scalar(q, r, (int64_t)c, rs->sf, rs->of, rs->rf) * x[c];
    __m256 s = _mm256_add_ps(_mm256_add_ps(r0, r1), _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    return tp_hsum8(s) + yo;
}

void tp_qgemv_rows_avx2(const tp_qmat *q, const float *x, const float *xsum, int64_t r0,
                        int64_t r1, float *y) {
    ROWSCALES_DECL(q);
    for (int64_t r = r0; r < r1; r++) {
        load_rowscales(q, r, &rs);
        y[r] = gemv_row(q, r, x, xsum, &rs);
    }
    tp_free(heap_);
}

/* Micro-kernel: R rows of the decoded tile (stride cols) times B activation rows. The dot-product
 * form keeps R*B accumulators in registers and reduces them once at the end of the row. */
#define DEFINE_MK(R, B)                                                                         \
    static void mk_##R##x##B(const float *t, int64_t cols, const float *X, float out[R][B]) {   \
        __m256 acc[R][B];                                                                        \
        for (int i = 0; i < R; i++)                                                              \
            for (int j = 0; j < B; j++) acc[i][j] = _mm256_setzero_ps();                         \
        int64_t c = 0, full = cols & ~(int64_t)7;                                                \
        for (; c < full; c += 8) {                                                               \
            __m256 xv[B];                                                                        \
            for (int j = 0; j < B; j++) xv[j] = _mm256_loadu_ps(X + j * cols + c);               \
            for (int i = 0; i < R; i++) {                                                        \
                __m256 w = _mm256_loadu_ps(t + i * cols + c);                                    \
                for (int j = 0; j < B; j++) acc[i][j] = _mm256_fmadd_ps(w, xv[j], acc[i][j]);    \
            }                                                                                    \
        }                                                                                        \
        for (int i = 0; i < R; i++)                                                              \
            for (int j = 0; j < B; j++) {                                                        \
                float s = tp_hsum8(acc[i][j]);                                                      \
                for (int64_t k = c; k < cols; k++) s += t[i * cols + k] * X[j * cols + k];      \
                out[i][j] = s;                                                                   \
            }                                                                                    \
    }
DEFINE_MK(4, 3)
DEFINE_MK(4, 2)
DEFINE_MK(4, 1)
DEFINE_MK(1, 3)
DEFINE_MK(1, 2)
DEFINE_MK(1, 1)

void tp_qgemm_rows_avx2(const tp_qmat *q, const float *X, int64_t batch, int64_t r0, int64_t r1,
                        float *Y, float *tile) {
    ROWSCALES_DECL(q);
    const int64_t cols = q->cols;
    for (int64_t r = r0; r < r1; r += 4) {
        int R = r1 - r >= 4 ? 4 : 1;
        for (int i = 0; i < R; i++) {
            load_rowscales(q, r + i, &rs);
            decode_row(q, r + i, rs.sf, rs.of, rs.rf, tile + i * cols, 0);
        }
        for (int64_t b = 0; b < batch;) {
            int B = batch - b >= 3 ? 3 : (int)(batch - b);
            const float *Xb = X + b * cols;
            float o4[4][3], o1[1][3];
            if (R == 4) {
                if (B == 3) mk_4x3(tile, cols, Xb, (float(*)[3])o4);
                else if (B == 2) { float t[4][2]; mk_4x2(tile, cols, Xb, t); for (int i = 0; i < 4; i++) for (int j = 0; j < 2; j++) o4[i][j] = t[i][j]; }
                else { float t[4][1]; mk_4x1(tile, cols, Xb, t); for (int i = 0; i < 4; i++) o4[i][0] = t[i][0]; }
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < B; j++) Y[(b + j) * q->rows + r + i] = o4[i][j];
            } else {
                if (B == 3) mk_1x3(tile, cols, Xb, o1);
                else if (B == 2) { float t[1][2]; mk_1x2(tile, cols, Xb, t); o1[0][0] = t[0][0]; o1[0][1] = t[0][1]; }
                else { float t[1][1]; mk_1x1(tile, cols, Xb, t); o1[0][0] = t[0][0]; }
                for (int j = 0; j < B; j++) Y[(b + j) * q->rows + r] = o1[0][j];
            }
            b += B;
        }
        if (R == 1) r -= 3; /* advance by one row */
    }
    tp_free(heap_);
}

/* W4A8 GEMV: 64 weights per step. 32 code bytes split into low nibbles (even elements) and
 * high nibbles (odd elements); maddubs multiplies them with the matching permuted int8
 * activations and adds pairs into int16. A group adds at most g/64 * 2 pair sums of at most
 * 2*15*127 = 3810 each, so g <= 256 cannot saturate int16 (g64, g128 here). */
void tp_qgemv_a8_rows_avx2(const tp_qmat *q, const int8_t *xqp, const int8_t *xq, const float *xs,
                           const float *xsum, const int32_t *xqsum, int64_t r0, int64_t r1, float *y) {
    ROWSCALES_DECL(q);
    const __m256i m15 = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
    const uint64_t cols = (uint64_t)q->cols, g = (uint64_t)q->g, nfull = cols / g;
    for (int64_t r = r0; r < r1; r++) {
        load_rowscales(q, r, &rs);
        const uint8_t *cp = q->codes + r * q->code_stride;
        __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
        float yo = 0;
        uint64_t c = 0;
        for (uint64_t gi = 0; gi < nfull; gi++) {
            __m256i s16 = _mm256_setzero_si256();
            for (uint64_t e = c + g; c < e; c += 64) {
                __m256i v = _mm256_loadu_si256((const __m256i *)(cp + (c >> 1)));
                __m256i lo = _mm256_and_si256(v, m15), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m15);
                s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(xqp + c))));
                s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(xqp + c + 32))));
            }
            /* sum (q - 8) xq = sum q xq - 8 sum xq: lane 0 carries the centring term */
            __m256i d32 = _mm256_sub_epi32(_mm256_madd_epi16(s16, ones), _mm256_setr_epi32(8 * xqsum[gi], 0, 0, 0, 0, 0, 0, 0));
            __m256 d = _mm256_cvtepi32_ps(d32);
            __m256 prev = acc0;
            acc0 = acc1;
            acc1 = _mm256_fmadd_ps(_mm256_set1_ps(rs.sf[gi] * xs[gi]), d, prev);
            yo += (rs.of[gi] + 8.0f * rs.sf[gi]) * xsum[gi];
        }
        /* a short last group: scalar, same arithmetic as the reference */
        if (c < cols) {
            uint64_t gi = nfull;
            int32_t dot = 0;
            for (; c < cols; c++) dot += (tp_qmat_code(q, r, (int64_t)c) - 8) * xq[c];
            yo += rs.sf[gi] * xs[gi] * (float)dot + (rs.of[gi] + 8.0f * rs.sf[gi]) * xsum[gi];
        }
        y[r] = tp_hsum8(_mm256_add_ps(acc0, acc1)) + yo;
    }
    tp_free(heap_);
}

/* W4A8 GEMM: a group's codes are split into nibbles once and used by every activation column;
 * per column the arithmetic is exactly the GEMV's (same sums, same order). */
void tp_qgemm_a8_rows_avx2(const tp_qmat *q, const int8_t *xqp, const int8_t *xq, const float *xs,
                           const float *xsum, const int32_t *xqsum, int64_t batch, int64_t r0, int64_t r1,
                           float *Y) {
    ROWSCALES_DECL(q);
    const __m256i m15 = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
    const uint64_t cols = (uint64_t)q->cols, g = (uint64_t)q->g, nfull = cols / g, nb = g / 64, ng = (uint64_t)q->ngroups;
    __m256 acc[64][2];
    float yo[64];
    for (int64_t r = r0; r < r1; r++) {
        load_rowscales(q, r, &rs);
        const uint8_t *cp = q->codes + r * q->code_stride;
        for (int64_t b = 0; b < batch; b++) {
            acc[b][0] = acc[b][1] = _mm256_setzero_ps();
            yo[b] = 0;
        }
        uint64_t c = 0;
        for (uint64_t gi = 0; gi < nfull; gi++, c += g) {
            __m256i lo[4], hi[4];
            for (uint64_t j = 0; j < nb; j++) {
                __m256i v = _mm256_loadu_si256((const __m256i *)(cp + ((c + 64 * j) >> 1)));
                lo[j] = _mm256_and_si256(v, m15);
                hi[j] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m15);
            }
            const float sc = rs.sf[gi], oc = rs.of[gi] + 8.0f * rs.sf[gi];
            for (int64_t b = 0; b < batch; b++) {
                const int8_t *xb = xqp + b * (int64_t)cols + c;
                __m256i s16 = _mm256_setzero_si256();
                for (uint64_t j = 0; j < nb; j++) {
                    s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(lo[j], _mm256_loadu_si256((const __m256i *)(xb + 64 * j))));
                    s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(hi[j], _mm256_loadu_si256((const __m256i *)(xb + 64 * j + 32))));
                }
                __m256i d32 = _mm256_sub_epi32(_mm256_madd_epi16(s16, ones),
                                               _mm256_setr_epi32(8 * xqsum[b * ng + gi], 0, 0, 0, 0, 0, 0, 0));
                /* the same two alternating accumulators as the GEMV, so each column's sum matches it */
                __m256 prev = acc[b][0];
                acc[b][0] = acc[b][1];
                acc[b][1] = _mm256_fmadd_ps(_mm256_set1_ps(sc * xs[b * ng + gi]), _mm256_cvtepi32_ps(d32), prev);
                yo[b] += oc * xsum[b * ng + gi];
            }
        }
        if (c < cols) { /* a short last group: scalar, as the GEMV */
            uint64_t gi = nfull;
            for (int64_t b = 0; b < batch; b++) {
                int32_t dot = 0;
                for (uint64_t k = c; k < cols; k++) dot += (tp_qmat_code(q, r, (int64_t)k) - 8) * xq[b * (int64_t)cols + (int64_t)k];
                yo[b] += rs.sf[gi] * xs[b * ng + gi] * (float)dot + (rs.of[gi] + 8.0f * rs.sf[gi]) * xsum[b * ng + gi];
            }
        }
        for (int64_t b = 0; b < batch; b++) Y[b * q->rows + r] = tp_hsum8(_mm256_add_ps(acc[b][0], acc[b][1])) + yo[b];
    }
    tp_free(heap_);
}
