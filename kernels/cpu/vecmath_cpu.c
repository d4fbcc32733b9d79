/* See vecmath_cpu.h. The exp is Cephes' single-precision polynomial (about 1 ulp on the reduced
 * range), vectorised; arguments below -87.3 give 0, as expf underflows there too. */
#include "kernels/cpu/vecmath_cpu.h"

#include <cblas.h>
#include <immintrin.h>
#include <math.h>
#include <pthread.h>

#include "tenpak/tenpak.h"

/* The level the cpu backend uses now (tp_cpu_isa: TENPAK_ISA and tp_cpu_set_isa cap it), as the
 * kernels dispatch, so a capped run takes the portable path here too. */
static int have_avx2(void) { return tp_cpu_isa() >= TP_ISA_AVX2; }

__attribute__((target("avx2,fma"))) static inline __m256 exp8(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.33654f), hi = _mm256_set1_ps(88.3762626647949f);
    __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500E-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    p = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    return _mm256_andnot_ps(under, p);
}

__attribute__((target("avx2,fma"))) static float vmax_avx2(const float *x, size_t n) {
    size_t i = 0;
    __m256 m = _mm256_set1_ps(-INFINITY);
    for (; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
    float t[8], r = -INFINITY;
    _mm256_storeu_ps(t, m);
    for (int k = 0; k < 8; k++) r = t[k] > r ? t[k] : r;
    for (; i < n; i++) r = x[i] > r ? x[i] : r;
    return r;
}
float tp_vmax(const float *x, size_t n) {
    if (have_avx2()) return vmax_avx2(x, n);
    float r = -INFINITY;
    for (size_t i = 0; i < n; i++) r = x[i] > r ? x[i] : r;
    return r;
}

__attribute__((target("avx2,fma"))) static double sumexp_avx2(const float *x, size_t n, float m) {
    size_t i = 0;
    __m256 mm = _mm256_set1_ps(m);
    __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
    for (; i + 8 <= n; i += 8) {
        __m256 v = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), mm));
        acc0 = _mm256_add_pd(acc0, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
        acc1 = _mm256_add_pd(acc1, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    }
    double t[4], s = 0;
    _mm256_storeu_pd(t, _mm256_add_pd(acc0, acc1));
    s = t[0] + t[1] + t[2] + t[3];
    for (; i < n; i++) s += expf(x[i] - m);
    return s;
}
double tp_vsumexp(const float *x, size_t n, float m) {
    if (have_avx2()) return sumexp_avx2(x, n, m);
    double s = 0;
    for (size_t i = 0; i < n; i++) s += expf(x[i] - m);
    return s;
}

__attribute__((target("avx2,fma"))) static float expip_avx2(float *x, size_t n, float m) {
    size_t i = 0;
    __m256 mm = _mm256_set1_ps(m), acc = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
        __m256 v = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), mm));
        _mm256_storeu_ps(x + i, v);
        acc = _mm256_add_ps(acc, v);
    }
    float t[8], s = 0;
    _mm256_storeu_ps(t, acc);
    for (int k = 0; k < 8; k++) s += t[k];
    for (; i < n; i++) { x[i] = expf(x[i] - m); s += x[i]; }
    return s;
}
float tp_vexp_inplace(float *x, size_t n, float m) {
    if (have_avx2()) return expip_avx2(x, n, m);
    float s = 0;
    for (size_t i = 0; i < n; i++) { x[i] = expf(x[i] - m); s += x[i]; }
    return s;
}

static inline float gelu1(float x) {
    float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
    return x / (1.0f + expf(-2.0f * u));
}
__attribute__((target("avx2,fma"))) static void gelu_avx2(float *x, size_t n) {
    size_t i = 0;
    const __m256 c0 = _mm256_set1_ps(-2.0f * 0.7978845608028654f), c1 = _mm256_set1_ps(0.044715f),
                 one = _mm256_set1_ps(1.0f);
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 u = _mm256_mul_ps(c0, _mm256_fmadd_ps(_mm256_mul_ps(c1, v), _mm256_mul_ps(v, v), v));
        _mm256_storeu_ps(x + i, _mm256_div_ps(v, _mm256_add_ps(one, exp8(u))));
    }
    for (; i < n; i++) x[i] = gelu1(x[i]);
}
void tp_vgelu_new(float *x, size_t n) {
    if (have_avx2()) { gelu_avx2(x, n); return; }
    for (size_t i = 0; i < n; i++) x[i] = gelu1(x[i]);
}

__attribute__((target("avx2,fma"))) static void swiglu_avx2(float *g, const float *u, size_t n) {
    size_t i = 0;
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(g + i);
        __m256 s = _mm256_div_ps(v, _mm256_add_ps(one, exp8(_mm256_sub_ps(zero, v))));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(s, _mm256_loadu_ps(u + i)));
    }
    for (; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}
void tp_vswiglu(float *g, const float *u, size_t n) {
    if (have_avx2()) { swiglu_avx2(g, u, n); return; }
    for (size_t i = 0; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* ---- parallel loops: the process's worker pool (src/pool.c) ---- */
int tp_par_threads(void) { return tp_pool_threads(); }
void tp_par_run(int n, void (*fn)(void *ctx, int i, int n), void *ctx) { tp_pool_run(n, fn, ctx); }
