/* The small helpers every cpu kernel family shares (one home each): the parallel threshold, the
 * portable fp32 dot product and, in files compiled with AVX2 (kernels/cpu/avx2/), the horizontal
 * sum and the fixed-order AVX2 dot product. */
#ifndef TENPAK_KERNELS_CPU_CPU_COMMON_H
#define TENPAK_KERNELS_CPU_CPU_COMMON_H

#include <stdint.h>

#include "tenpak/tenpak.h"

/* Work below this many weights (times columns for a batch) runs on one thread: starting threads
 * costs more than it saves. */
#define TP_CPU_PAR_MIN (1 << 16)

/* body(ctx, i0, i1) over [0, n) in chunks of `chunk` indices on the worker pool (tenpak.h). The
 * chunks follow n and chunk alone, so a body whose indices are independent gives the same bits at
 * any thread count; par == 0 (work under TP_CPU_PAR_MIN) runs [0, n) as one call, here. */
typedef struct tp_cpu_range {
    void (*body)(void *ctx, int64_t i0, int64_t i1);
    void *ctx;
    int64_t n, chunk;
} tp_cpu_range;
static inline void tp_cpu_range_task(void *c, int t, int nt) {
    const tp_cpu_range *r = (const tp_cpu_range *)c;
    (void)nt;
    const int64_t i0 = (int64_t)t * r->chunk, i1 = i0 + r->chunk < r->n ? i0 + r->chunk : r->n;
    r->body(r->ctx, i0, i1);
}
static inline void tp_cpu_for(int64_t n, int64_t chunk, int par, void (*body)(void *ctx, int64_t i0, int64_t i1), void *ctx) {
    if (n <= 0) return;
    if (!par || n <= chunk) { body(ctx, 0, n); return; }
    tp_cpu_range r = {body, ctx, n, chunk};
    tp_pool_run((int)((n + chunk - 1) / chunk), tp_cpu_range_task, &r);
}

/* element i of a: fp32, or binary16 widened exactly (a16) */
static inline __attribute__((always_inline)) float tp_elem(const void *a, int a16, int64_t i) {
    return a16 ? tp_f16_to_f32(((const uint16_t *)a)[i]) : ((const float *)a)[i];
}
/* a . b with 8 partial sums: vectorisable without -ffast-math, and better rounded than one chain.
 * a16: a is binary16, widened exactly, so the bits are those of the widened row. */
static inline __attribute__((always_inline)) float tp_dot_portable_any(const void *a, int a16, const float *b, int64_t n) {
    float s[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) {
            const float ak = tp_elem(a, a16, i + k);
            s[k] += ak * b[i + k];
        }
    float t = 0;
    for (; i < n; i++) {
        const float ai = tp_elem(a, a16, i);
        t += ai * b[i];
    }
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])) + t;
}
static inline float tp_dot_portable(const float *a, const float *b, int64_t n) { return tp_dot_portable_any(a, 0, b, n); }

/* a . b by the AVX2 loop below, for dispatchers compiled without AVX2 (kernels/cpu/avx2/vq_avx2.c) */
float tp_dot_avx2(const float *a, const float *b, int64_t n);

#ifdef __AVX2__
#include <immintrin.h>

/* the 8 lanes of v added: (lo + hi) halves, then pairs, then the last two */
static inline float tp_hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* the eight lanes' sums of a[0..7] as one vector: output i is a[i]'s tree of additions alone, so a
 * row's sum does not depend on the rows reduced beside it (the VQ gather lookup, short matvec rows) */
static inline __m256 tp_hsum8x8(const __m256 a[8]) {
    __m256 t0 = _mm256_hadd_ps(a[0], a[1]), t1 = _mm256_hadd_ps(a[2], a[3]);
    __m256 t2 = _mm256_hadd_ps(a[4], a[5]), t3 = _mm256_hadd_ps(a[6], a[7]);
    __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

/* 8 elements of a (fp32, or binary16 widened exactly by F16C) from element i */
static inline __attribute__((always_inline)) __m256 tp_ld8(const void *a, int a16, int64_t i) {
#ifdef __F16C__
    if (a16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)((const uint16_t *)a + i)));
#endif
    return _mm256_loadu_ps((const float *)a + i);
}

/* a . b in a fixed order (four 8-wide FMA accumulators over 32 elements a step, then 8 a step into
 * the first, their sum, then the scalar tail): tp_dot_avx2 and every row of tp_matvec_rows_avx2.
 * a16: a is binary16 (F16C builds), widened exactly, so the bits are those of the widened row. */
static inline __attribute__((always_inline)) float tp_dot_fma8x4_any(const void *a, int a16, const float *b, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(tp_ld8(a, a16, i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(tp_ld8(a, a16, i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(tp_ld8(a, a16, i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(tp_ld8(a, a16, i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(tp_ld8(a, a16, i), _mm256_loadu_ps(b + i), s0);
    float s = tp_hsum8(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) {
        const float ai = tp_elem(a, a16, i);
        s += ai * b[i];
    }
    return s;
}
static inline float tp_dot_fma8x4(const float *a, const float *b, int64_t n) { return tp_dot_fma8x4_any(a, 0, b, n); }
#endif

#endif
