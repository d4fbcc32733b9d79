/* The INT4 GEMM of many rows of x (prefill, perplexity windows) on AVX-512 VNNI, for hosts without
 * AMX: Y[t] = W X[t] for W of kind int4 with g 32, 64 or a multiple of 128 and cols a multiple of 128.
 *
 * The products are exact integers, as in the GEMV (kernels/cpu/avx512/quant_avx512_body.h): each
 * token's x is prepared by that kernel's own preparation (tp_qx: per 128-column chunk k an
 * exponent e_k, every element an integer xi = x 2^e_k, |xi| <= 2^22, as three signed bytes c2, c1,
 * c0 stored even elements then odd; gsum, the group sums of the same xi). Here the weights are the
 * vector side: a panel of 16 rows' code dwords is transposed once (lane r = row r, byte i = the
 * code byte 4j + i of the chunk), split into low nibbles (the even columns 8j, 8j + 2, ...) and
 * high nibbles (the odd ones), and every token's limb dword is an embedded broadcast of vpdpbusd:
 * per row, token and group (a chunk for g >= 128) three exact sums A, B, C (one per limb, |.| <
 * 2^18), folded once as
 * V = 65536 A + 256 B + C in fp32 (one rounding of an exact integer, ~2^-24 relative) and added
 * as y += s_g 2^-e_k V after the offsets y = sum_g o_g gsum_g. A row's arithmetic depends on its
 * codes and the token's x only: not on the panel, the token block or the thread count.
 * Why: OpenBLAS's fp32 sgemm on decoded tiles (the path this replaces where it applies) does 16
 * multiply-adds an instruction; vpdpbusd does 64 byte products, 21 per x element over the three
 * limbs, and runs on two ports on the Intel Xeon measured here. */
#include <immintrin.h>
#include <string.h>

#include "kernels/cpu/quant_cpu.h"

#define VG_ROWS 32 /* rows of a panel (a task): two vectors of 16 */
#define VG_TB 2    /* tokens of a register block */

int tp_qgemm_vnni_shape_ok(const tp_qmat *q) {
    return q->kind == TP_Q_INT4 && q->offset && !q->rcodes && (q->g == 32 || q->g == 64 || (q->g >= 128 && q->g % 128 == 0)) && q->cols > 0 &&
           q->cols % 128 == 0 && q->rows > 0 && q->code_stride >= q->cols / 2;
}

/* 16 x 16 transpose of 32-bit elements in place: r[i] lane j -> r[j] lane i */
static inline void vg_transpose16(__m512i r[16]) {
    __m512i t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    /* r[4a + j], 128-bit lane L: rows 4a..4a+3 of column 4L + j */
    for (int j = 0; j < 4; j++) {
        const __m512i a01 = _mm512_shuffle_i32x4(r[j], r[4 + j], 0x44), a23 = _mm512_shuffle_i32x4(r[8 + j], r[12 + j], 0x44);
        const __m512i b01 = _mm512_shuffle_i32x4(r[j], r[4 + j], 0xEE), b23 = _mm512_shuffle_i32x4(r[8 + j], r[12 + j], 0xEE);
        t[j] = _mm512_shuffle_i32x4(a01, a23, 0x88);
        t[4 + j] = _mm512_shuffle_i32x4(a01, a23, 0xDD);
        t[8 + j] = _mm512_shuffle_i32x4(b01, b23, 0x88);
        t[12 + j] = _mm512_shuffle_i32x4(b01, b23, 0xDD);
    }
    for (int i = 0; i < 16; i++) r[i] = t[i];
}

/* 16 rows' fp16 values of groups [g0, g0 + 16) (row-major, ng a row) as T[g][16] fp32; rows past
 * nrow and groups past ng are zero */
static void vg_table16(const uint16_t *src, int64_t ng, int64_t g0, int nrow, float *T) {
    __m512i r[16];
    const int64_t gn = ng - g0 < 16 ? ng - g0 : 16;
    const __mmask16 m = (__mmask16)((1u << gn) - 1);
    for (int i = 0; i < 16; i++)
        r[i] = i < nrow ? _mm512_castps_si512(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, src + i * ng + g0)))
                        : _mm512_setzero_si512();
    vg_transpose16(r);
    for (int j = 0; j < 16; j++) _mm512_storeu_si512(T + j * 16, r[j]);
}

/* 4 limb bytes as every dword of a vector (memcpy: the bytes are int8_t; an embedded broadcast) */
static inline __m512i vg_bcast(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

typedef struct {
    const tp_qmat *q;
    const tp_qx *x; /* tokens, padded to a multiple of VG_TB (the padding repeats the last token) */
    int64_t batch, tpad;
    float *Y;
    int nomem;
} vg_job;

static void vg_task(void *vc, int task, int ntasks) {
    vg_job *jb = vc;
    const tp_qmat *q = jb->q;
    const int64_t nchunk = q->cols / 128, ng = q->ngroups, cpg = q->g / 128, cs = q->code_stride;
    const int64_t ngp = (ng + 15) / 16 * 16, rb = (int64_t)task * VG_ROWS;
    const int jg = q->g >= 128 ? 16 : q->g / 8; /* code dwords of a group within a chunk */
    (void)ntasks;
    /* the panel's codes per chunk and row vector: 16 low-nibble vectors, then 16 high-nibble ones */
    __m512i *P = tp_alloc((size_t)nchunk * 2 * 32 * 64);
    float *tab = tp_alloc((size_t)ngp * 64 * sizeof(float)); /* [rv][scale, offset][ngp][16] */
    if (!P || !tab) {
        tp_free(P);
        tp_free(tab);
        __atomic_store_n(&jb->nomem, 1, __ATOMIC_RELAXED);
        return;
    }
    const __m512i m0f = _mm512_set1_epi8(0x0f);
    for (int rv = 0; rv < 2; rv++) {
        const int64_t r0 = rb + 16 * rv;
        const int nrow = q->rows - r0 <= 0 ? 0 : q->rows - r0 < 16 ? (int)(q->rows - r0) : 16;
        float *st = tab + (size_t)rv * 2 * ngp * 16, *ot = st + ngp * 16;
        for (int64_t g0 = 0; g0 < ng; g0 += 16) {
            vg_table16(q->scale + (nrow ? r0 * ng : 0), ng, g0, nrow, st + g0 * 16);
            vg_table16(q->offset + (nrow ? r0 * ng : 0), ng, g0, nrow, ot + g0 * 16);
        }
        for (int64_t k = 0; k < nchunk; k++) {
            __m512i r[16];
            for (int i = 0; i < 16; i++)
                r[i] = i < nrow ? _mm512_loadu_si512(q->codes + (r0 + i) * cs + k * 64) : _mm512_setzero_si512();
            vg_transpose16(r);
            __m512i *d = P + (k * 2 + rv) * 32;
            for (int j = 0; j < 16; j++) {
                d[j] = _mm512_and_si512(r[j], m0f);
                d[16 + j] = _mm512_and_si512(_mm512_srli_epi16(r[j], 4), m0f);
            }
        }
    }
    const float *st0 = tab, *ot0 = tab + ngp * 16, *st1 = tab + 2 * ngp * 16, *ot1 = st1 + ngp * 16;
    for (int64_t t0 = 0; t0 < jb->tpad; t0 += VG_TB) {
        __m512 F[2][VG_TB];
        for (int t = 0; t < VG_TB; t++) {
            const float *gs = jb->x[t0 + t].gsum;
            __m512 f0 = _mm512_setzero_ps(), f1 = _mm512_setzero_ps();
            for (int64_t gi = 0; gi < ng; gi++) {
                const __m512 s = _mm512_set1_ps(gs[gi]);
                f0 = _mm512_fmadd_ps(_mm512_loadu_ps(ot0 + gi * 16), s, f0);
                f1 = _mm512_fmadd_ps(_mm512_loadu_ps(ot1 + gi * 16), s, f1);
            }
            F[0][t] = f0;
            F[1][t] = f1;
        }
        const int8_t *X0 = jb->x[t0].limbs, *X1 = jb->x[t0 + 1].limbs;
        for (int64_t k = 0; k < nchunk; k++) {
            const __m512i *c0 = P + (k * 2) * 32, *c1 = P + (k * 2 + 1) * 32;
            const int8_t *L0 = X0 + k * 384, *L1 = X1 + k * 384;
            /* a group's j range (dword j covers columns 8j .. 8j + 7): the whole chunk for g >= 128 */
            for (int j0 = 0; j0 < 16; j0 += jg) {
                /* accumulators a<row vector><token><limb>, named so that the compiler keeps all
                 * twelve in registers (an array of them was spilled) */
                __m512i a000 = _mm512_setzero_si512(), a001 = a000, a002 = a000, a010 = a000, a011 = a000, a012 = a000;
                __m512i a100 = a000, a101 = a000, a102 = a000, a110 = a000, a111 = a000, a112 = a000;
#define VG_B(L, off) vg_bcast((L) + (off))
#define VG_STEP(acc0, acc1, L, l)                                                                  \
    do {                                                                                           \
        const __m512i be = VG_B(L, 128 * (l) + 4 * j), bo = VG_B(L, 128 * (l) + 64 + 4 * j);       \
        acc0 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(acc0, lo0, be), hi0, bo);                   \
        acc1 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(acc1, lo1, be), hi1, bo);                   \
    } while (0)
                for (int j = j0; j < j0 + jg; j++) {
                    const __m512i lo0 = c0[j], hi0 = c0[16 + j], lo1 = c1[j], hi1 = c1[16 + j];
                    VG_STEP(a000, a100, L0, 0);
                    VG_STEP(a001, a101, L0, 1);
                    VG_STEP(a002, a102, L0, 2);
                    VG_STEP(a010, a110, L1, 0);
                    VG_STEP(a011, a111, L1, 1);
                    VG_STEP(a012, a112, L1, 2);
                }
#undef VG_STEP
#undef VG_B
                const __m512i A[2][VG_TB][3] = {{{a000, a001, a002}, {a010, a011, a012}},
                                                {{a100, a101, a102}, {a110, a111, a112}}};
                const int64_t gi = q->g >= 128 ? k / cpg : k * (128 / q->g) + j0 / jg;
                const __m512 s0 = _mm512_loadu_ps(st0 + gi * 16), s1 = _mm512_loadu_ps(st1 + gi * 16);
                for (int t = 0; t < VG_TB; t++) {
                    const __m512 xs = _mm512_set1_ps(jb->x[t0 + t].xs[k]);
                    for (int rv = 0; rv < 2; rv++) {
                        __m512 v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(A[rv][t][0]), _mm512_set1_ps(65536.0f),
                                                   _mm512_mul_ps(_mm512_cvtepi32_ps(A[rv][t][1]), _mm512_set1_ps(256.0f)));
                        v = _mm512_add_ps(v, _mm512_cvtepi32_ps(A[rv][t][2]));
                        F[rv][t] = _mm512_fmadd_ps(v, _mm512_mul_ps(rv ? s1 : s0, xs), F[rv][t]);
                    }
                }
            }
        }
        for (int t = 0; t < VG_TB && t0 + t < jb->batch; t++)
            for (int rv = 0; rv < 2; rv++) {
                const int64_t r0 = rb + 16 * rv, n = q->rows - r0;
                if (n <= 0) continue;
                _mm512_mask_storeu_ps(jb->Y + (t0 + t) * q->rows + r0, n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1),
                                      F[rv][t]);
            }
    }
    tp_free(P);
    tp_free(tab);
}

typedef struct {
    const tp_qmat *q;
    const float *X;
    tp_qx *x;
    uint8_t *mem;
    size_t per; /* tp_qx_data_bytes */
    int64_t batch;
    int bad; /* a token's x holds a NaN or an infinity */
} vg_prep_job;

/* tokens [batch task / ntasks, batch (task + 1) / ntasks) prepared as the GEMV prepares x */
static void vg_prep_task(void *vc, int task, int ntasks) {
    vg_prep_job *pj = vc;
    for (int64_t t = pj->batch * task / ntasks; t < pj->batch * (task + 1) / ntasks; t++) {
        tp_qx_layout(pj->q, pj->mem + (size_t)t * pj->per, &pj->x[t]);
        if (!tp_qx_prep_avx512vnni(pj->q, pj->X + t * pj->q->cols, &pj->x[t])) __atomic_store_n(&pj->bad, 1, __ATOMIC_RELAXED);
    }
}

/* 1: done; 0: x holds a NaN or an infinity (the caller takes another path); -1: out of memory */
int tp_qgemm_vnni(const tp_qmat *q, const float *X, int64_t batch, float *Y) {
    const int64_t tpad = (batch + VG_TB - 1) / VG_TB * VG_TB;
    const size_t per = tp_qx_data_bytes(q);
    tp_qx *x = tp_alloc((size_t)tpad * sizeof *x);
    uint8_t *mem = tp_alloc((size_t)batch * per);
    if (!x || !mem) {
        tp_free(x);
        tp_free(mem);
        return -1;
    }
    vg_prep_job pj = {q, X, x, mem, per, batch, 0};
    tp_pool_run((int)(batch < 64 ? batch : 64), vg_prep_task, &pj);
    if (pj.bad) {
        tp_free(x);
        tp_free(mem);
        return 0;
    }
    for (int64_t t = batch; t < tpad; t++) x[t] = x[batch - 1];
    vg_job jb = {q, x, batch, tpad, Y, 0};
    tp_pool_run((int)((q->rows + VG_ROWS - 1) / VG_ROWS), vg_task, &jb);
    tp_free(x);
    tp_free(mem);
    return jb.nomem ? -1 : 1;
}
