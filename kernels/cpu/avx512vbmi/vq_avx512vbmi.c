/* The VQ lookup-GEMV's byte-plane lookup (AVX-512 + VBMI), for K <= 256 codes in the
 * column-major copy tp_vq_prepare makes (codes8t: 64 rows of one vector per 64-byte load).
 *
 * Scalar lookups cost about one FP load per code (0.7 cycles on Zen 4, whatever the code
 * extraction: the load path is the limit). Here the table of a vector is read into registers
 * (from L1, once per 64-row tile): each entry, x_v . c_k scaled by 2^e and rounded to a 32-bit integer, split into four
 * byte planes of 256 bytes. One vpermi2b looks 64 codes up in 128 entries of a plane, so a plane
 * costs two of them and a blend on the code's top bit; the four bytes are put back together into
 * 32-bit lanes by four byte and four word unpacks and added to integer accumulators, exactly.
 * The unpacks leave the rows of a 64-row tile in a fixed order (tp_vq_planes_row).
 *
 * The scale: one power of two per chunk of at most 16 vectors (TP_VQ_PCHUNK), from the chunk's
 * largest |entry| (|entry| 2^e < 2^26), so an entry is rounded to 2^-27 of that largest entry
 * (the float table itself is rounded to 2^-24 of each entry) and a chunk's sums stay under 2^30.
 * Three planes (24-bit entries, 32-vector chunks) measured 0.22 cycles a code on Zen 4 but
 * 1-2e-6 relative error against the double reference, ten times the float path's. */
#include <immintrin.h>
#include <math.h>

#include "kernels/cpu/codecs_cpu.h"

/* The tables of vectors v0..v1 (at most TP_VQ_PCHUNK) from cb16 (tp_vq_prepare) in 16-wide blocks
 * into T (stride 16 * ceil(K/16)), their largest |entry| found on the way, then the byte planes as
 * below: each entry is the same float as tp_vq_table_avx2's (x_0 c_0, then one FMA per component
 * in order). Each entry scaled by 2^e and rounded to a 32-bit integer, its four bytes stored as
 * four planes of 256. The maximum is taken as the table is made, and the table is 16 wide: on
 * llama-mini's 1024x384 (K256, d4) the separate AVX2 table, maximum pass and planes took about 35%
 * of the GEMV. */
int tp_vq_table_planes_avx512vbmi(const float *cb16, int d, int K, const float *xp, int64_t v0, int64_t v1,
                                  float *T, uint8_t *P, int *e_out) {
    const int nb16 = (K + 15) / 16, Ks = 16 * nb16;
    const __m512 absm = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff)), inf = _mm512_set1_ps(INFINITY);
    __m512 mx = _mm512_setzero_ps();
    __mmask16 bad = 0;
    for (int64_t v = v0; v < v1; v++) {
        __m512 xb[16];
        for (int j = 0; j < d; j++) xb[j] = _mm512_set1_ps(xp[v * d + j]);
        float *t = T + (v - v0) * Ks;
        for (int b = 0; b < nb16; b++) {
            const float *c = cb16 + (size_t)b * (size_t)d * 16;
            __m512 acc = _mm512_mul_ps(xb[0], _mm512_loadu_ps(c));
            for (int j = 1; j < d; j++) acc = _mm512_fmadd_ps(xb[j], _mm512_loadu_ps(c + 16 * j), acc);
            _mm512_storeu_ps(t + 16 * b, acc);
            const int n = K - 16 * b;
            const __mmask16 km = n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
            const __m512 a = _mm512_maskz_and_ps(km, acc, absm);
            bad |= _mm512_cmp_ps_mask(a, inf, _CMP_NLT_UQ);
            mx = _mm512_max_ps(mx, a);
        }
    }
    if (bad) return 0;
    const float maxabs = _mm512_reduce_max_ps(mx);
    int ex = 0;
    if (maxabs > 0) frexpf(maxabs, &ex);
    const int e = 26 - ex;
    const __m512 sc = _mm512_set1_ps((float)e);
    /* 64 entries at a time, as four vectors of 32-bit integers q0..q3: byte j of each entry is
     * gathered by two vpermt2b (q0:q1 into the low 32 bytes, q2:q3 into the high 32, one index for
     * both) and a blend, where one vpmovdb a plane and 16 entries cost 4x the instructions (the
     * table step was 14% of llama-mini's tenpakx decode). Entries past K are zero. */
    const __m512i ix = _mm512_set_epi8(124, 120, 116, 112, 108, 104, 100, 96, 92, 88, 84, 80, 76, 72, 68, 64, 60, 56, 52,
                                       48, 44, 40, 36, 32, 28, 24, 20, 16, 12, 8, 4, 0, 124, 120, 116, 112, 108, 104,
                                       100, 96, 92, 88, 84, 80, 76, 72, 68, 64, 60, 56, 52, 48, 44, 40, 36, 32, 28, 24,
                                       20, 16, 12, 8, 4, 0);
    const __m512i one = _mm512_set1_epi8(1);
    const __mmask64 upper = 0xFFFFFFFF00000000ull;
    for (int64_t b = 0; b < v1 - v0; b++) {
        uint8_t *p = P + b * 1024;
        for (int k = 0; k < 256; k += 64) {
            __m512i q[4];
            for (int i = 0; i < 4; i++) {
                const int n = K - k - 16 * i;
                const __mmask16 km = n >= 16 ? (__mmask16)0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1);
                const __m512 t = n > 0 ? _mm512_maskz_loadu_ps(km, T + b * Ks + k + 16 * i) : _mm512_setzero_ps();
                q[i] = _mm512_cvtps_epi32(_mm512_scalef_ps(t, sc));
            }
            __m512i idx = ix;
            for (int j = 0; j < 4; j++, idx = _mm512_add_epi8(idx, one)) {
                const __m512i lo = _mm512_permutex2var_epi8(q[0], idx, q[1]);
                const __m512i hi = _mm512_permutex2var_epi8(q[2], idx, q[3]);
                _mm512_storeu_si512(p + 256 * j + k, _mm512_mask_blend_epi8(upper, lo, hi));
            }
        }
    }
    *e_out = e;
    return 1;
}

/* y (rows in tp_vq_planes_row's order, rt of them) += the chunk's lookups of nb vectors, scaled
 * by 2^-e. Per 64-row tile the integer sums stay in four registers over the chunk's vectors, the
 * tile's 16 plane vectors of each vector reloaded from P (L1: 1 KB a vector), and go to y once:
 * with the sums in memory (rt 32-bit words, read and written for every vector, then a pass to
 * flush them) the lm_head's 32000 rows streamed 256 KB through L2 per vector. The integer sums are
 * exact, so their order does not change y. */
void tp_vq_lookup_planes_avx512vbmi(const uint8_t *ct, int64_t rt, const uint8_t *P, int64_t nb, int e, float *y) {
    const __m512 sc = _mm512_set1_ps((float)-e);
    for (int64_t r = 0; r < rt; r += 64) {
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
        const uint8_t *cp = ct + r;
        for (int64_t b = 0; b < nb; b++, cp += rt) {
            const __m512i *t = (const __m512i *)(const void *)(P + b * 1024); /* plane j, entries 64 i..: t[4 j + i] */
            const __m512i c = _mm512_loadu_si512(cp);
            const __mmask64 hi = _mm512_movepi8_mask(c); /* entries 128..255 */
#define PLANE(j) _mm512_mask_blend_epi8(hi, _mm512_permutex2var_epi8(_mm512_loadu_si512(t + 4 * (j)), c, \
                                                                     _mm512_loadu_si512(t + 4 * (j) + 1)),  \
                                        _mm512_permutex2var_epi8(_mm512_loadu_si512(t + 4 * (j) + 2), c,   \
                                                                 _mm512_loadu_si512(t + 4 * (j) + 3)))
            const __m512i p0 = PLANE(0), p1 = PLANE(1), p2 = PLANE(2), p3 = PLANE(3);
#undef PLANE
            const __m512i wl = _mm512_unpacklo_epi8(p0, p1), wh = _mm512_unpackhi_epi8(p0, p1);
            const __m512i vl = _mm512_unpacklo_epi8(p2, p3), vh = _mm512_unpackhi_epi8(p2, p3);
            a0 = _mm512_add_epi32(a0, _mm512_unpacklo_epi16(wl, vl));
            a1 = _mm512_add_epi32(a1, _mm512_unpackhi_epi16(wl, vl));
            a2 = _mm512_add_epi32(a2, _mm512_unpacklo_epi16(wh, vh));
            a3 = _mm512_add_epi32(a3, _mm512_unpackhi_epi16(wh, vh));
        }
        float *yr = y + r;
        _mm512_store_ps(yr, _mm512_add_ps(_mm512_load_ps(yr), _mm512_scalef_ps(_mm512_cvtepi32_ps(a0), sc)));
        _mm512_store_ps(yr + 16, _mm512_add_ps(_mm512_load_ps(yr + 16), _mm512_scalef_ps(_mm512_cvtepi32_ps(a1), sc)));
        _mm512_store_ps(yr + 32, _mm512_add_ps(_mm512_load_ps(yr + 32), _mm512_scalef_ps(_mm512_cvtepi32_ps(a2), sc)));
        _mm512_store_ps(yr + 48, _mm512_add_ps(_mm512_load_ps(yr + 48), _mm512_scalef_ps(_mm512_cvtepi32_ps(a3), sc)));
    }
}

/* y[r] for the full 64-row tiles of [r0, r1) (r0 a multiple of 64): the parts' partial ys (tile
 * order, part i at yp + i * rt) added in part order as planes_reduce_task adds them (each part's
 * value plus 0, then into the sum), and moved to row order: position q = 16 k + 4 a + b of a tile
 * holds row 16 a + 4 k + b (tp_vq_planes_row), i.e. 128-bit block a of vector k is block k of the
 * rows' vector a, a 4 x 4 transpose of blocks. Returns the first row not done (a short last tile
 * is left to the caller). */
int64_t tp_vq_planes_reduce_avx512vbmi(const float *yp, int64_t rt, int np, int64_t r0, int64_t r1, float *y) {
    const __m512 z = _mm512_setzero_ps();
    int64_t p = r0;
    for (; p + 64 <= r1; p += 64) {
        __m512 s0 = z, s1 = z, s2 = z, s3 = z;
        for (int i = 0; i < np; i++) {
            const float *t = yp + (size_t)i * (size_t)rt + p;
            s0 = _mm512_add_ps(s0, _mm512_add_ps(_mm512_loadu_ps(t), z));
            s1 = _mm512_add_ps(s1, _mm512_add_ps(_mm512_loadu_ps(t + 16), z));
            s2 = _mm512_add_ps(s2, _mm512_add_ps(_mm512_loadu_ps(t + 32), z));
            s3 = _mm512_add_ps(s3, _mm512_add_ps(_mm512_loadu_ps(t + 48), z));
        }
        const __m512 t0 = _mm512_shuffle_f32x4(s0, s1, 0x44), t1 = _mm512_shuffle_f32x4(s0, s1, 0xEE);
        const __m512 t2 = _mm512_shuffle_f32x4(s2, s3, 0x44), t3 = _mm512_shuffle_f32x4(s2, s3, 0xEE);
        _mm512_storeu_ps(y + p, _mm512_shuffle_f32x4(t0, t2, 0x88));
        _mm512_storeu_ps(y + p + 16, _mm512_shuffle_f32x4(t0, t2, 0xDD));
        _mm512_storeu_ps(y + p + 32, _mm512_shuffle_f32x4(t1, t3, 0x88));
        _mm512_storeu_ps(y + p + 48, _mm512_shuffle_f32x4(t1, t3, 0xDD));
    }
    return p;
}
