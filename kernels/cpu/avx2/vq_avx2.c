/* AVX2 + FMA kernels for vector quantisation (called after run-time detection).
 *
 * Nearest centroid: the codebook is transposed in blocks of 8 centroids (cbt: for block b and
 * coordinate j, the 8 centroids' j-th values side by side), so one vector is compared with 8
 * centroids per step: t = x_j - c_j, dist = fma(t, t, dist), in the reference's order of j, which
 * makes every distance bit-identical to tp_vq_dist_ref. Two blocks run in parallel chains; each
 * lane keeps its smallest distance (strict <, so the lowest index on ties) and the final
 * reduction takes the smallest distance over the 16 lanes and the lowest index among equals.
 *
 * Lookup-GEMV (the codebook trick): T[v][k] = x_v . c_k for a block of vectors, then
 * y[r] += sum_v T[v][code(r, v)] with 8 codes gathered per step.
 */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels/cpu/codecs_cpu.h"

float *tp_vq_cbt_make(const float *cb, int K, int d) {
    int nb = (K + 7) / 8;
    float *t = tp_alloc((size_t)nb * (size_t)d * 8 * sizeof(float));
    if (!t) return NULL;
    for (int b = 0; b < nb; b++)
        for (int j = 0; j < d; j++)
            for (int l = 0; l < 8; l++) {
                int k = b * 8 + l;
                /* padding centroids are so far away that their distance is +inf: never strictly
                 * smaller than a real one */
                t[((size_t)b * d + j) * 8 + l] = k < K ? cb[(size_t)k * d + j] : 3.0e38f;
            }
    return t;
}

static inline __m256 block_dist(const __m256 *xb, const float *c, const int d) {
    __m256 t = _mm256_sub_ps(xb[0], _mm256_load_ps(c));
    __m256 dist = _mm256_mul_ps(t, t); /* fma(t, t, 0) rounds exactly like t * t */
    for (int j = 1; j < d; j++) {
        t = _mm256_sub_ps(xb[j], _mm256_load_ps(c + 8 * j));
        dist = _mm256_fmadd_ps(t, t, dist);
    }
    return dist;
}

static inline __attribute__((always_inline)) int nearest_one(const float *x, const int d, int nb,
                                                             const float *cbt) {
    __m256 xb[16];
    for (int j = 0; j < d; j++) xb[j] = _mm256_set1_ps(x[j]);
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256 bd0 = _mm256_set1_ps(INFINITY), bd1 = bd0;
    __m256i bi0 = _mm256_setzero_si256(), bi1 = bi0;
    int b = 0;
    for (; b + 2 <= nb; b += 2) {
        __m256 d0 = block_dist(xb, cbt + (size_t)b * d * 8, d);
        __m256 d1 = block_dist(xb, cbt + (size_t)(b + 1) * d * 8, d);
        __m256 m0 = _mm256_cmp_ps(d0, bd0, _CMP_LT_OQ), m1 = _mm256_cmp_ps(d1, bd1, _CMP_LT_OQ);
        bd0 = _mm256_blendv_ps(bd0, d0, m0);
        bd1 = _mm256_blendv_ps(bd1, d1, m1);
        __m256i i0 = _mm256_add_epi32(iota, _mm256_set1_epi32(8 * b));
        __m256i i1 = _mm256_add_epi32(iota, _mm256_set1_epi32(8 * b + 8));
        bi0 = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(bi0), _mm256_castsi256_ps(i0), m0));
        bi1 = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(bi1), _mm256_castsi256_ps(i1), m1));
    }
    if (b < nb) {
        __m256 d0 = block_dist(xb, cbt + (size_t)b * d * 8, d);
        __m256 m0 = _mm256_cmp_ps(d0, bd0, _CMP_LT_OQ);
        bd0 = _mm256_blendv_ps(bd0, d0, m0);
        __m256i i0 = _mm256_add_epi32(iota, _mm256_set1_epi32(8 * b));
        bi0 = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(bi0), _mm256_castsi256_ps(i0), m0));
    }
    /* smallest distance over 16 lanes, then the lowest index holding it */
    __m256 mn = _mm256_min_ps(bd0, bd1);
    __m256 t = _mm256_min_ps(mn, _mm256_permute2f128_ps(mn, mn, 1));
    t = _mm256_min_ps(t, _mm256_shuffle_ps(t, t, 0x4e));
    t = _mm256_min_ps(t, _mm256_shuffle_ps(t, t, 0xb1));
    const __m256i big = _mm256_set1_epi32(0x7fffffff);
    __m256i c0 = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(big), _mm256_castsi256_ps(bi0), _mm256_cmp_ps(bd0, t, _CMP_EQ_OQ)));
    __m256i c1 = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(big), _mm256_castsi256_ps(bi1), _mm256_cmp_ps(bd1, t, _CMP_EQ_OQ)));
    __m256i c = _mm256_min_epi32(c0, c1);
    __m128i h = _mm_min_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
    h = _mm_min_epi32(h, _mm_shuffle_epi32(h, 0x4e));
    h = _mm_min_epi32(h, _mm_shuffle_epi32(h, 0xb1));
    int k = _mm_cvtsi128_si32(h);
    return k == 0x7fffffff ? 0 : k; /* every distance NaN: the reference keeps index 0 */
}

static void nearest_d4(const float *V, int64_t n, int nb, const float *cbt, int32_t *code) {
    for (int64_t i = 0; i < n; i++) code[i] = nearest_one(V + i * 4, 4, nb, cbt);
}
static void nearest_d8(const float *V, int64_t n, int nb, const float *cbt, int32_t *code) {
    for (int64_t i = 0; i < n; i++) code[i] = nearest_one(V + i * 8, 8, nb, cbt);
}
static void nearest_gen(const float *V, int64_t n, int d, int nb, const float *cbt, int32_t *code) {
    for (int64_t i = 0; i < n; i++) code[i] = nearest_one(V + i * d, d, nb, cbt);
}

void tp_vq_nearest_avx2(const float *V, int64_t n, int d, int K, const float *cbt, int32_t *code) {
    int nb = (K + 7) / 8;
    if (d == 4) nearest_d4(V, n, nb, cbt, code);
    else if (d == 8) nearest_d8(V, n, nb, cbt, code);
    else nearest_gen(V, n, d, nb, cbt, code); /* d <= 16: checked by the caller */
}

void tp_vq_table_avx2(const float *cbt, int d, int K, const float *xp, int64_t v0, int64_t v1, float *T) {
    const int nb = (K + 7) / 8, Kp = 8 * nb;
    for (int64_t v = v0; v < v1; v++) {
        __m256 xb[16];
        for (int j = 0; j < d; j++) xb[j] = _mm256_set1_ps(xp[v * d + j]);
        float *t = T + (v - v0) * Kp;
        for (int b = 0; b < nb; b++) {
            const float *c = cbt + (size_t)b * d * 8;
            __m256 acc = _mm256_mul_ps(xb[0], _mm256_load_ps(c));
            for (int j = 1; j < d; j++) acc = _mm256_fmadd_ps(xb[j], _mm256_load_ps(c + 8 * j), acc);
            _mm256_storeu_ps(t + 8 * b, acc);
        }
    }
}

void tp_vq_lookup_rows_avx2(const tp_vqmat *m, const float *T, int Kp, int64_t v0, int64_t v1,
                            int64_t r0, int64_t r1, float *y) {
    const int64_t nv = v1 - v0;
    const __m256i base = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(Kp));
    const __m256i step8 = _mm256_set1_epi32(8 * Kp), step16 = _mm256_set1_epi32(16 * Kp);
    int64_t r = r0;
    if (m->codes8)
        /* eight rows per step: 16 independent gathers in flight (from an L1-resident tile), one
         * accumulator per row, the eight sums reduced together and added to y as one vector */
        for (; r + 8 <= r1; r += 8) {
            const uint8_t *c0 = m->codes8 + r * m->nvec + v0;
            const int64_t st = m->nvec;
            __m256 acc[8];
            for (int i = 0; i < 8; i++) acc[i] = _mm256_setzero_ps();
            int64_t v = 0;
            for (; v + 16 <= nv; v += 16) {
                const float *t0 = T + v * Kp, *t1 = t0 + 8 * Kp;
                for (int i = 0; i < 8; i++) {
                    __m128i c16 = _mm_loadu_si128((const __m128i *)(c0 + i * st + v));
                    __m256 g0 = _mm256_i32gather_ps(t0, _mm256_add_epi32(_mm256_cvtepu8_epi32(c16), base), 4);
                    __m256 g1 = _mm256_i32gather_ps(t1, _mm256_add_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(c16, 8)), base), 4);
                    acc[i] = _mm256_add_ps(acc[i], _mm256_add_ps(g0, g1));
                }
            }
            for (; v + 8 <= nv; v += 8) {
                const float *t0 = T + v * Kp;
                for (int i = 0; i < 8; i++) {
                    __m128i c8 = _mm_loadl_epi64((const __m128i *)(c0 + i * st + v));
                    acc[i] = _mm256_add_ps(acc[i], _mm256_i32gather_ps(t0, _mm256_add_epi32(_mm256_cvtepu8_epi32(c8), base), 4));
                }
            }
            __m256 sum = tp_hsum8x8(acc);
            if (v < nv) {
                float tl[8];
                for (int i = 0; i < 8; i++) {
                    float s = 0;
                    for (int64_t u = v; u < nv; u++) s += T[u * Kp + c0[i * st + u]];
                    tl[i] = s;
                }
                sum = _mm256_add_ps(sum, _mm256_loadu_ps(tl));
            }
            _mm256_storeu_ps(y + r, _mm256_add_ps(_mm256_loadu_ps(y + r), sum));
        }
    if (m->codes8)
        /* two rows per step: four independent gathers in flight, shared offsets */
        for (; r + 2 <= r1; r += 2) {
            const uint8_t *c0 = m->codes8 + r * m->nvec + v0, *c1 = c0 + m->nvec;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, b0 = a0, b1 = a0;
            __m256i off = base;
            int64_t v = 0;
            for (; v + 16 <= nv; v += 16) {
                __m128i p16 = _mm_loadu_si128((const __m128i *)(c0 + v));
                __m128i q16 = _mm_loadu_si128((const __m128i *)(c1 + v));
                __m256i off8 = _mm256_add_epi32(off, step8);
                a0 = _mm256_add_ps(a0, _mm256_i32gather_ps(T, _mm256_add_epi32(_mm256_cvtepu8_epi32(p16), off), 4));
                b0 = _mm256_add_ps(b0, _mm256_i32gather_ps(T, _mm256_add_epi32(_mm256_cvtepu8_epi32(q16), off), 4));
                a1 = _mm256_add_ps(a1, _mm256_i32gather_ps(T, _mm256_add_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(p16, 8)), off8), 4));
                b1 = _mm256_add_ps(b1, _mm256_i32gather_ps(T, _mm256_add_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(q16, 8)), off8), 4));
                off = _mm256_add_epi32(off, step16);
            }
            float s0 = 0, s1 = 0;
            for (; v < nv; v++) {
                s0 += T[v * Kp + c0[v]];
                s1 += T[v * Kp + c1[v]];
            }
            y[r] += tp_hsum8(_mm256_add_ps(a0, a1)) + s0;
            y[r + 1] += tp_hsum8(_mm256_add_ps(b0, b1)) + s1;
        }
    for (; r < r1; r++) {
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        __m256i off = base;
        int64_t v = 0;
        if (m->codes8) {
            const uint8_t *cp = m->codes8 + r * m->nvec + v0;
            for (; v + 16 <= nv; v += 16) {
                __m128i c16 = _mm_loadu_si128((const __m128i *)(cp + v));
                __m256i i0 = _mm256_add_epi32(_mm256_cvtepu8_epi32(c16), off);
                __m256i i1 = _mm256_add_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(c16, 8)), _mm256_add_epi32(off, step8));
                a0 = _mm256_add_ps(a0, _mm256_i32gather_ps(T, i0, 4));
                a1 = _mm256_add_ps(a1, _mm256_i32gather_ps(T, i1, 4));
                off = _mm256_add_epi32(off, step16);
            }
            float s = 0;
            for (; v < nv; v++) s += T[v * Kp + cp[v]];
            y[r] += tp_hsum8(_mm256_add_ps(a0, a1)) + s;
        } else {
            const uint16_t *cp = m->codes16 + r * m->nvec + v0;
            for (; v + 16 <= nv; v += 16) {
                __m256i i0 = _mm256_add_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(cp + v))), off);
                __m256i i1 = _mm256_add_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(cp + v + 8))),
                                              _mm256_add_epi32(off, step8));
                a0 = _mm256_add_ps(a0, _mm256_i32gather_ps(T, i0, 4));
                a1 = _mm256_add_ps(a1, _mm256_i32gather_ps(T, i1, 4));
                off = _mm256_add_epi32(off, step16);
            }
            float s = 0;
            for (; v < nv; v++) s += T[v * Kp + cp[v]];
            y[r] += tp_hsum8(_mm256_add_ps(a0, a1)) + s;
        }
    }
}

/* D[i] = min(D[i], dist(T[i], c)), scalar with hardware FMA (same rounding as fmaf) */
void tp_vq_mindist_avx2(const float *T, int64_t m, int d, const float *c, float *D) {
    for (int64_t i = 0; i < m; i++) {
        const float *x = T + i * d;
        float t = x[0] - c[0], dist = t * t;
        for (int j = 1; j < d; j++) {
            t = x[j] - c[j];
            dist = fmaf(t, t, dist);
        }
        if (dist < D[i]) D[i] = dist;
    }
}

float tp_dot_avx2(const float *a, const float *b, int64_t n) { return tp_dot_fma8x4(a, b, n); }
