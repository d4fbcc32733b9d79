/* AVX-512 lookup of the VQ lookup-GEMV (K <= 256, codes8): sixteen codes of a row per
 * vpgatherdps from an L1-resident tile of the table, sixteen rows per step (sixteen independent
 * gathers in flight), the sixteen row sums reduced together and added to y as one vector. */
#include <immintrin.h>

#include "kernels/cpu/codecs_cpu.h"

/* lane i of the result = sum of the 16 lanes of a[i] */
static inline __m512 hsum16x16(__m512 a[16]) {
    /* halve the width four times, two vectors per step */
    __m512 b[8], c[4], e[2];
    for (int i = 0; i < 8; i++) {
        /* lanes 0-7 of b[i]: a[2i] (halves added), lanes 8-15: a[2i+1] */
        __m512 lo = _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44); /* a0.q0 a0.q1 a1.q0 a1.q1 */
        __m512 hi = _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xEE); /* a0.q2 a0.q3 a1.q2 a1.q3 */
        b[i] = _mm512_add_ps(lo, hi);
    }
    for (int i = 0; i < 4; i++) {
        /* per 256-bit half: 4 partial lanes each of 2 rows; combine b[2i], b[2i+1] */
        __m512 lo = _mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0x88); /* b0.q0 b0.q2 b1.q0 b1.q2 */
        __m512 hi = _mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0xDD); /* b0.q1 b0.q3 b1.q1 b1.q3 */
        c[i] = _mm512_add_ps(lo, hi); /* quarter q: row 4i + q, 4 partial lanes */
    }
    for (int i = 0; i < 2; i++) {
        __m512 lo = _mm512_shuffle_ps(c[2 * i], c[2 * i + 1], 0x44); /* per quarter: c0[0,1] c1[0,1] */
        __m512 hi = _mm512_shuffle_ps(c[2 * i], c[2 * i + 1], 0xEE); /* c0[2,3] c1[2,3] */
        e[i] = _mm512_add_ps(lo, hi);
    }
    __m512 lo = _mm512_shuffle_ps(e[0], e[1], 0x88); /* e0[0] e0[2] e1[0] e1[2] */
    __m512 hi = _mm512_shuffle_ps(e[0], e[1], 0xDD);
    /* now lane 4q + j holds row 4j + q: transpose the 4x4 back to row order */
    const __m512i ord = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    return _mm512_permutexvar_ps(ord, _mm512_add_ps(lo, hi));
}

void tp_vq_lookup_rows_avx512(const tp_vqmat *m, const float *T, int Kp, int64_t v0, int64_t v1,
                              int64_t r0, int64_t r1, float *y) {
    const int64_t nv = v1 - v0, st = m->nvec;
    const __m512i base = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(Kp));
    int64_t r = r0;
    if (m->codes8)
        for (; r + 16 <= r1; r += 16) {
            const uint8_t *c0 = m->codes8 + r * st + v0;
            __m512 acc[16];
            for (int i = 0; i < 16; i++) acc[i] = _mm512_setzero_ps();
            int64_t v = 0;
            for (; v + 16 <= nv; v += 16) {
                const float *t0 = T + v * Kp;
                for (int i = 0; i < 16; i++) {
                    __m128i c16 = _mm_loadu_si128((const __m128i *)(c0 + i * st + v));
                    __m512i off = _mm512_add_epi32(_mm512_cvtepu8_epi32(c16), base);
                    acc[i] = _mm512_add_ps(acc[i], _mm512_i32gather_ps(off, t0, 4));
                }
            }
            float tl[16];
            _mm512_storeu_ps(tl, hsum16x16(acc));
            for (int i = 0; i < 16; i++) {
                float s = tl[i];
                for (int64_t u = v; u < nv; u++) s += T[u * Kp + c0[i * st + u]];
                y[r + i] += s;
            }
        }
    if (r < r1) tp_vq_lookup_rows_avx2(m, T, Kp, v0, v1, r, r1, y);
}
