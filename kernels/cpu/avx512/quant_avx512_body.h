/* AVX-512 INT4 GEMV (kinds int4 and int4r2, g a power of two >= 8), the body shared by two ISA levels:
 * kernels/cpu/avx512/quant_avx512.c (F+BW+VL+DQ: vpmaddubsw + vpmaddwd) and
 * kernels/cpu/avx512vbmi/quant_avx512vnni.c (VNNI: vpdpbusd). The includer defines
 *   QX_PAIR(acc, qe, le, qo, lo): acc + per 32-bit lane, the sum of the 8 products of the lane's
 *        4 unsigned bytes of qe and of qo with the signed bytes of le and lo,
 *   QX_PREP / QX_ROWS: the names of the two functions (quant_cpu.h).
 * Both forms compute the same exact integers, so the two levels give the same bits.
 *
 * The product is done in integers, exactly, against x written as 3 signed bytes per element.
 * Per 128-column chunk k, x is scaled by 2^e_k (amax * 2^e_k in [2^21, 2^22)) and rounded to an
 * integer xi (|xi| <= 2^22: an error of at most 2^-22 amax per element, about what fp16
 * activations would cost a thousandth of; the differential bound is 1e-5 relative L2); xi = 65536 c2 + 256 c1 + c0 with c0, c1
 * in [-128, 127] and c2 in [-64, 64]. Code bytes hold element 2i in the low nibble, so the 64
 * code bytes of a chunk split into 64 even and 64 odd codes with two ANDs and a shift; x's
 * limbs are stored per chunk in the same order (even elements, then odd ones), so 32-bit lane j
 * of every vector covers columns 128k + 8j .. 8j+7, inside one group for every g >= 8.
 * Per row and chunk, the lane value V_j = sum_{8 columns} q_i xi_i
 *   = ((A_j * 256) + B_j) * 256 + C_j  (A, B, C: the lane's code-times-limb sums)
 * is exact in int32 (|V| <= 8 * 15 * 2^22 < 2^29), converted once to fp32 and accumulated as
 * acc += V * s_group * 2^-e_k. The offsets add o_g * sum_{i in g} xi_i 2^-e_k, the per-group sum
 * of the same rounded x (computed once per call from the same lane sums, exactly in integers):
 * one FMA per 16 groups and row.
 *
 * int4r2 adds its 2-bit residual as a second integer dot against the same limbs: w = q s + o +
 * (r - 1.5) rs, so a group contributes s * sum q xi + rs * sum r xi (both exact lane sums, the
 * residual codes split into even / odd bytes like the nibbles) + (o - 1.5 rs) * sum xi.
 *
 * Every row is computed by the same instructions in the same order whether it runs in a 4-row
 * pass (which shares the loads of x) or alone, and rows are independent: the result depends on
 * the matrix and x only, never on the thread count or the task split.
 *
 * Tried on a 2-vCPU Intel Xeon guest (2026-12-06; single thread, 64x1024 in L1 and 512x2048 in
 * L2, best of 7; and TinyLlama-shaped decode, `tenpak generate -n 128`, alternating binaries), none
 * kept: the three limbs as three independent chains (65536 A + 256 B + C: the same integers) 4-7%
 * slower; the two limb shifts as byte shuffles (vpshufb, port 5) and the odd nibbles by
 * vpmultishiftqb instead of a shift: no change; the L1 prefetch as NTA, a second L2 prefetch 32 KB
 * ahead, the L2 distance 8 / 32 / 64 KB: no change beyond the host's spread. For scale: the same
 * decode with the kernel replaced by a loop that only reads the codes (no products) ran 46 against
 * 36 tok/s, and dropping the two limb shifts (wrong results) made the L1 case 7% faster: the
 * products, not the memory walk, are what is left to take.
 * Tried the next day on the same guest type (kept neither): (1) the raw code bytes u = qe + 16 qo
 * and u & 0xF0 = 16 qo as the two vpdpbusd operands (no shift, one AND instead of three ops), with
 * limbs of xe and of xo/16 - xe, which needs the odd elements on a 16 times coarser grid (2^-18 of
 * the chunk's largest |x|): 512x2048 in L2 19.6 against 22.4 us, 16384x8192 (L3) 1.38 against
 * 1.57 ms, but TinyLlama-shaped decode 40.4 against 40.0 tok/s (6 alternating rounds), and the
 * error against the reference rose from ~3e-7 to 2-5e-6 (up to 1.9e-5 over 40 seeds of `verify`,
 * past its 1e-5 bound); (2) the high nibble by one vgf2p8affineqb instead of a shift and an AND
 * (same bits): L2 1.5% faster, decode 39.6 against 39.8 tok/s. So 15% fewer vector instructions
 * do not move the decode, while the read-only loop above did: what binds it there is neither the
 * instruction count nor the walk alone (a read-only loop over 1 GiB: 27-31 GB/s with two threads,
 * 15 with one; the decode streams ~23), and stays unidentified without hardware counters. */
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/avx512/hsum_avx512.h"
#include "kernels/cpu/quant_cpu.h"

#define QX_ALWAYS_INLINE static inline __attribute__((always_inline))
/* software prefetch of the codes: into L1 QX_PF_ROWS rows ahead (at least QX_PF_BYTES), and into
 * L2 QX_PF2 bytes ahead. The far L2 stream is what keeps DRAM busy: a matrix larger than the
 * caches (65536x4096, Zen 4, one thread) streamed at 12.4 GB/s with the L1 prefetch alone (8 rows /
 * 8 KB ahead) and at 22.9 GB/s with both (32000x2048: 14.3 -> 22.9; two threads 23 -> 33 and
 * 28 -> 40 GB/s). */
#ifndef QX_PF_ROWS
#define QX_PF_ROWS 4
#define QX_PF_BYTES 2048
#endif
#ifndef QX_PF2
#define QX_PF2 16384
#endif
#ifndef QX_PREFETCH
#define QX_PREFETCH 16
#endif

/* mask of the first n (0..16) lanes */
static inline __mmask16 qx_mask16(int64_t n) {
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/* The lane value V for one chunk: c2 first, times 256, c1, times 256, c0. */
QX_ALWAYS_INLINE __m512i qx_chunk_dot(__m512i qe, __m512i qo, const int8_t *L) {
    __m512i v = QX_PAIR(_mm512_setzero_si512(), qe, _mm512_loadu_si512(L), qo, _mm512_loadu_si512(L + 64));
    v = _mm512_slli_epi32(v, 8);
    v = QX_PAIR(v, qe, _mm512_loadu_si512(L + 128), qo, _mm512_loadu_si512(L + 192));
    v = _mm512_slli_epi32(v, 8);
    return QX_PAIR(v, qe, _mm512_loadu_si512(L + 256), qo, _mm512_loadu_si512(L + 320));
}

int QX_PREP(const tp_qmat *q, const float *x, tp_qx *p) {
    const int64_t cols = q->cols, ng = q->ngroups, nchunk = p->nchunk;
    const int g = q->g;
    /* permutation indices: the even / odd elements of two vectors of 16 */
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));
    const __m512i ones = _mm512_set1_epi8(1);
    const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    memset(p->gsum, 0, (size_t)p->pad * sizeof(float));
    memset(p->xsg, 0, (size_t)p->pad * sizeof(float));
    for (int64_t k = 0; k < nchunk; k++) {
        const int64_t c0 = k * 128, n = cols - c0 < 128 ? cols - c0 : 128;
        __m512 v[8];
        __m512 amax = _mm512_setzero_ps();
        for (int m = 0; m < 8; m++) {
            v[m] = _mm512_maskz_loadu_ps(qx_mask16(n - 16 * m), x + c0 + (n > 16 * m ? 16 * m : 0));
            amax = _mm512_max_ps(amax, _mm512_and_ps(v[m], absmask));
        }
        /* NaN / inf anywhere: the caller takes the fp32 path, which propagates them as the
         * reference does */
        for (int m = 0; m < 8; m++)
            if (_mm512_cmp_ps_mask(_mm512_and_ps(v[m], absmask), _mm512_set1_ps(INFINITY), _CMP_NLT_UQ)) return 0;
        const float am = _mm512_reduce_max_ps(amax);
        int ex = 0;
        float e = 0;
        if (am > 0) {
            (void)frexpf(am, &ex);
            e = (float)(22 - ex);
        }
        p->xs[k] = am > 0 ? ldexpf(1.0f, ex - 22) : 0.0f;
        int8_t *L = p->limbs + k * 384;
        for (int h = 0; h < 8; h++) { /* h < 4: even elements 32h + 2i; h >= 4: odd ones */
            int m = h & 3;
            __m512 t = _mm512_permutex2var_ps(v[2 * m], h < 4 ? ev : od, v[2 * m + 1]);
            __m512i xi = _mm512_cvt_roundps_epi32(_mm512_scalef_ps(t, _mm512_set1_ps(e)),
                                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            __m512i l0 = _mm512_srai_epi32(_mm512_slli_epi32(xi, 24), 24);
            __m512i hi = _mm512_srai_epi32(_mm512_sub_epi32(xi, l0), 8);
            __m512i l1 = _mm512_srai_epi32(_mm512_slli_epi32(hi, 24), 24);
            __m512i l2 = _mm512_srai_epi32(_mm512_sub_epi32(hi, l1), 8);
            int off = (h < 4 ? 0 : 64) + 16 * m;
            _mm_storeu_si128((__m128i *)(L + off), _mm512_cvtepi32_epi8(l2));
            _mm_storeu_si128((__m128i *)(L + 128 + off), _mm512_cvtepi32_epi8(l1));
            _mm_storeu_si128((__m128i *)(L + 256 + off), _mm512_cvtepi32_epi8(l0));
        }
        /* the exact sum of xi over each lane's 8 columns, by the kernel's own dot with codes 1 */
        int32_t lane[16];
        _mm512_storeu_si512(lane, qx_chunk_dot(ones, ones, L));
        if (g <= 128) {
            const int lpg = g / 8, gpc = 16 / lpg; /* lanes per group, groups per chunk */
            for (int gl = 0; gl < gpc; gl++) {
                int64_t gi = k * gpc + gl;
                if (gi >= ng) break;
                int32_t s = 0;
                for (int j = gl * lpg; j < (gl + 1) * lpg; j++) s += lane[j];
                p->gsum[gi] = p->xs[k] * (float)s;
                p->xsg[gi] = p->xs[k];
            }
        } else {
            int32_t s = 0;
            for (int j = 0; j < 16; j++) s += lane[j];
            p->gsum[k / (g / 128)] += p->xs[k] * (float)s;
        }
    }
    return 1;
}

/* How a chunk's 16 lane scales come from a row's scale buffer (csc): */
enum {
    QX_BCAST = 0, /* g >= 128: csc[k] for every lane (csc indexed by chunk) */
    QX_DIRECT = 1, /* g == 8: lane j is group 16k + j: csc + 16k */
    QX_PERM = 2,   /* g 16..64: lane j is group k * 128/g + j / (g/8): a permute of csc + k*128/g */
    QX_SMALL = 3   /* g == 128 with at most 4 groups a row (short rows, e.g. 384 columns): as
                      QX_BCAST, but a 4-row pass sets its rows up together, their 4 * ng scales
                      and offsets being adjacent; csc[i] = csc[0] + i * ng */
};

/* csc (pad floats, zero past the groups) and the offset term of one row; lastm masks the groups
 * of the last block of 16. int4r2 (rsc non-NULL): rsc as csc for the residual scales, and the
 * offset term with o - 1.5 rs. */
QX_ALWAYS_INLINE __m512 qx_offs(const tp_qmat *q, const uint16_t *of, const uint16_t *rf, __mmask16 m) {
    __m512 o = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, of));
    if (q->kind == TP_Q_INT4R2)
        o = _mm512_fmadd_ps(_mm512_set1_ps(-1.5f), _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, rf)), o);
    return o;
}
QX_ALWAYS_INLINE void qx_scales(const tp_qmat *q, const tp_qx *p, const uint16_t *sc, float *csc, __mmask16 lastm) {
    const int64_t ng = q->ngroups;
    if (q->g <= 128) {
        int64_t b = 0;
        for (; b + 16 < ng; b += 16)
            _mm512_storeu_ps(csc + b, _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(sc + b))),
                                                    _mm512_loadu_ps(p->xsg + b)));
        _mm512_storeu_ps(csc + b, _mm512_mul_ps(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(lastm, sc + b)),
                                                _mm512_loadu_ps(p->xsg + b)));
        _mm512_storeu_ps(csc + b + 16, _mm512_setzero_ps());
    } else {
        const int64_t cpg = q->g / 128;
        for (int64_t k = 0; k < p->nchunk; k++) csc[k] = _cvtsh_ss(sc[k / cpg]) * p->xs[k];
    }
}
QX_ALWAYS_INLINE __m512 qx_row_setup(const tp_qmat *q, const tp_qx *p, int64_t r, float *csc, float *rsc,
                                     __mmask16 lastm) {
    const int64_t ng = q->ngroups;
    const uint16_t *of = q->offset + r * ng, *rf = rsc ? q->rscale + r * ng : NULL;
    __m512 acc = _mm512_setzero_ps();
    int64_t b = 0;
    for (; b + 16 < ng; b += 16)
        acc = _mm512_fmadd_ps(qx_offs(q, of + b, rf ? rf + b : NULL, 0xFFFF), _mm512_loadu_ps(p->gsum + b), acc);
    acc = _mm512_fmadd_ps(qx_offs(q, of + b, rf ? rf + b : NULL, lastm), _mm512_loadu_ps(p->gsum + b), acc);
    qx_scales(q, p, q->scale + r * ng, csc, lastm);
    if (rsc) qx_scales(q, p, rf, rsc, lastm);
    return acc;
}

/* 32 residual bytes (4 two-bit codes each, column 4b + i in bits 2i of byte b) as the even and
 * odd columns' codes, one per byte, in the order of the limbs: word b of the zero-extended bytes
 * gives even bytes 2b, 2b+1 = bits 0-1, 4-5 and odd bytes 2b, 2b+1 = bits 2-3, 6-7. */
QX_ALWAYS_INLINE void qx_r2_split(__m256i rb, __m512i *re, __m512i *ro) {
    const __m512i w = _mm512_cvtepu8_epi16(rb), lo = _mm512_set1_epi16(3), hi = _mm512_set1_epi16(0x300);
    *re = _mm512_or_si512(_mm512_and_si512(w, lo), _mm512_and_si512(_mm512_slli_epi16(w, 4), hi));
    *ro = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(w, 2), lo), _mm512_and_si512(_mm512_slli_epi16(w, 2), hi));
}

/* R rows from r (R = 4 shares x's loads; R = 2 or 1 where tp_qgemv_set_streaming's measurement
 * found them faster; R = 1 also for the last rows: the same per-row arithmetic). */
QX_ALWAYS_INLINE void qx_rows(const tp_qmat *q, const tp_qx *p, int64_t r, float *y, float *const csc[8],
                              __mmask16 lastm, const __m512 rep[2], const int R, const int mode, const int r2) {
    const int64_t cols = q->cols, nfull = cols / 128;
    const int64_t cpg = q->g <= 128 ? 128 / q->g : 1; /* groups per chunk */
    const __m512i m15 = _mm512_set1_epi8(15);
    const __m512i pidx = _mm512_srlv_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32(__builtin_ctz((unsigned)(q->g / 8 > 0 ? q->g / 8 : 1))));
    /* the L1 prefetch distance (see QX_PF_ROWS) */
    const int64_t pfd = q->code_stride * (QX_PF_ROWS > QX_PF_BYTES / q->code_stride ? QX_PF_ROWS : QX_PF_BYTES / q->code_stride);
    const int64_t rpfd = pfd / 2; /* the residual rows are half as long */
    const uint8_t *cp[4], *rp[4];
    __m512 acc[4];
    float *cs[4], *rs[4];
    for (int i = 0; i < R; i++) {
        cp[i] = q->codes + (r + i) * q->code_stride;
        rp[i] = r2 ? q->rcodes + (r + i) * q->rcode_stride : NULL;
        rs[i] = csc[4 + i];
    }
    if (mode == QX_SMALL && R == 4) {
        /* lane i*ng + g of the 4 rows' vectors is row i's group g: the same products as
         * qx_row_setup's, each row's moved to lanes 0..ng-1 (the rest zero, as there) */
        const int64_t ng = q->ngroups;
        const __mmask16 m4 = qx_mask16(4 * ng);
        const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        __m512 o = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m4, q->offset + r * ng));
        __m512 sv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m4, q->scale + r * ng));
        __m512 prod = _mm512_fmadd_ps(o, rep[0], _mm512_setzero_ps());
        _mm512_storeu_ps(csc[0], _mm512_mul_ps(sv, rep[1]));
        for (int i = 0; i < 4; i++) {
            acc[i] = _mm512_maskz_permutexvar_ps(lastm, _mm512_add_epi32(lane, _mm512_set1_epi32((int)(i * ng))), prod);
            cs[i] = csc[0] + i * ng;
        }
    } else
        for (int i = 0; i < R; i++) {
            acc[i] = qx_row_setup(q, p, r + i, csc[i], r2 ? rs[i] : NULL, lastm);
            cs[i] = csc[i];
        }
#define QX_SCALE(c)                                                                                \
    (mode == QX_BCAST || mode == QX_SMALL ? _mm512_set1_ps((c)[k])                                 \
     : mode == QX_DIRECT                  ? _mm512_loadu_ps((c) + 16 * k)                          \
                                          : _mm512_permutexvar_ps(pidx, _mm512_loadu_ps((c) + cpg * k)))
#define QX_CHUNK(LOAD, RLOAD)                                                                      \
    do {                                                                                           \
        const int8_t *L = p->limbs + k * 384;                                                      \
        for (int i = 0; i < R; i++) {                                                              \
            _mm_prefetch((const char *)(cp[i] + pfd + k * 64), _MM_HINT_T0);                      \
            _mm_prefetch((const char *)(cp[i] + QX_PF2 + k * 64), _MM_HINT_T1);                   \
            __m512i v = LOAD;                                                                      \
            __m512i qe = _mm512_and_si512(v, m15), qo = _mm512_and_si512(_mm512_srli_epi16(v, 4), m15); \
            __m512 d = _mm512_cvtepi32_ps(qx_chunk_dot(qe, qo, L));                                \
            acc[i] = _mm512_fmadd_ps(d, QX_SCALE(cs[i]), acc[i]);                                  \
            if (r2) {                                                                              \
                _mm_prefetch((const char *)(rp[i] + rpfd + k * 32), _MM_HINT_T0);                 \
                __m512i re, ro;                                                                    \
                qx_r2_split(RLOAD, &re, &ro);                                                      \
                __m512 d2 = _mm512_cvtepi32_ps(qx_chunk_dot(re, ro, L));                           \
                acc[i] = _mm512_fmadd_ps(d2, QX_SCALE(rs[i]), acc[i]);                             \
            }                                                                                      \
        }                                                                                          \
    } while (0)
    int64_t k = 0;
    for (; k < nfull; k++) QX_CHUNK(_mm512_loadu_si512(cp[i] + k * 64), _mm256_loadu_si256((const __m256i *)(rp[i] + k * 32)));
    /* a short last chunk: its code bytes only (x's limbs are zero past cols) */
    const int64_t nb = (cols - nfull * 128 + 1) / 2;
    if (nb > 0) {
        const __mmask64 cm = nb >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << nb) - 1);
        const int64_t nr = (cols - nfull * 128 + 3) / 4;
        const __mmask32 rm = nr >= 32 ? ~(__mmask32)0 : (((__mmask32)1 << nr) - 1);
        QX_CHUNK(_mm512_maskz_loadu_epi8(cm, cp[i] + k * 64), _mm256_maskz_loadu_epi8(rm, rp[i] + k * 32));
    }
#undef QX_CHUNK
#undef QX_SCALE
    if (R == 4) _mm_storeu_ps(y + r, tp_hsum4_512(acc[0], acc[1], acc[2], acc[3]));
    else
        for (int i = 0; i < R; i++) y[r + i] = _mm_cvtss_f32(tp_hsum4_512(acc[i], acc[i], acc[i], acc[i]));
}

/* One function per mode runs a whole row range (4-row passes, or the 2- or 1-row ones that
 * tp_qx.rpp asks for, then single rows): the row loop
 * inside it, so the loop-invariant set-up is hoisted and no indirect call is made per 4 rows
 * (with one call per pass, llama-mini's 384-column rows spent ~10% of a decoding step on the
 * call and its frame). */
#define QX_DEFINE_MODE(MODE, R2, SUF)                                                              \
    static void qx_range_##MODE##SUF(const tp_qmat *q, const tp_qx *p, int64_t r0, int64_t r1, float *y, \
                                     float *const csc[8], __mmask16 lastm, const __m512 rep[2]) {  \
        int64_t r = r0;                                                                            \
        if (MODE != QX_SMALL && p->rpp == 2) /* tp_qgemv_set_streaming */                          \
            for (; r + 2 <= r1; r += 2) qx_rows(q, p, r, y, csc, lastm, rep, 2, MODE, R2);        \
        else if (MODE == QX_SMALL || p->rpp != 1)                                                  \
            for (; r + 4 <= r1; r += 4) qx_rows(q, p, r, y, csc, lastm, rep, 4, MODE, R2);        \
        for (; r < r1; r++) qx_rows(q, p, r, y, csc, lastm, rep, 1, MODE, R2);                    \
    }
QX_DEFINE_MODE(QX_BCAST, 0, )
QX_DEFINE_MODE(QX_DIRECT, 0, )
QX_DEFINE_MODE(QX_PERM, 0, )
QX_DEFINE_MODE(QX_SMALL, 0, ) /* always 4 rows a pass (rows of <= 512 columns) */
QX_DEFINE_MODE(QX_BCAST, 1, _r2)
QX_DEFINE_MODE(QX_DIRECT, 1, _r2)
QX_DEFINE_MODE(QX_PERM, 1, _r2)

tp_status QX_ROWS(const tp_qmat *q, const tp_qx *p, int64_t r0, int64_t r1, float *y) {
    /* four rows' scale buffers (eight for int4r2: its residual scales): on the stack for up to
     * 1024 groups a row */
    float stack[8 * (1024 + 32)];
    const size_t per = (size_t)p->pad;
    const int r2 = q->kind == TP_Q_INT4R2;
    float *heap = per > 1024 + 32 ? tp_alloc(8 * per * sizeof(float)) : NULL;
    float *base = heap ? heap : stack;
    if (per > 1024 + 32 && !heap) return TP_ERR_NOMEM;
    float *const csc[8] = {base,           base + per,     base + 2 * per, base + 3 * per,
                           base + 4 * per, base + 5 * per, base + 6 * per, base + 7 * per};
    typedef void (*range_fn)(const tp_qmat *, const tp_qx *, int64_t, int64_t, float *, float *const[8], __mmask16,
                             const __m512[2]);
    range_fn f;
    const int64_t ng = q->ngroups;
    const __mmask16 lastm = qx_mask16(ng - (ng - 1) / 16 * 16);
    __m512 rep[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    if (r2) {
        if (q->g >= 128) f = qx_range_QX_BCAST_r2;
        else if (q->g == 8) f = qx_range_QX_DIRECT_r2;
        else f = qx_range_QX_PERM_r2;
    } else if (q->g == 128 && ng <= 4) {
        /* gsum and xsg repeated for 4 rows: lane l holds group l % ng */
        int32_t ri[16];
        for (int l = 0; l < 16; l++) ri[l] = (int32_t)(l % ng);
        const __m512i rl = _mm512_loadu_si512(ri);
        rep[0] = _mm512_permutexvar_ps(rl, _mm512_loadu_ps(p->gsum));
        rep[1] = _mm512_permutexvar_ps(rl, _mm512_loadu_ps(p->xsg));
        f = qx_range_QX_SMALL;
    } else if (q->g >= 128) f = qx_range_QX_BCAST;
    else if (q->g == 8) f = qx_range_QX_DIRECT;
    else f = qx_range_QX_PERM;
    f(q, p, r0, r1, y, csc, lastm, rep);
    tp_free(heap);
    return TP_OK;
}
