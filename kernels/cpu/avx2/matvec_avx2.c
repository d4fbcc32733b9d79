/* AVX2 fixed-order matrix-vector products (see include/tenpak/matvec.h). */
#include <immintrin.h>

#include "kernels/cpu/cpu_common.h"
#include "tenpak/matvec.h"

void tp_matvec_rows_avx2(const float *A, int64_t lda, int64_t K, const float *x, float alpha, float beta, float *y,
                         int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
        const float t = tp_dot_fma8x4(A + r * lda, x, K);
        y[r] = beta == 0.0f ? alpha * t : alpha * t + beta * y[r];
    }
}

/* fp16 rows: _mm256_cvtph_ps widens 8 weights exactly (F16C); the sum as tp_matvec_rows_avx2. */
static inline __m256 ld16(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p)); }
void tp_matvec_rows_f16_avx2(const uint16_t *A, int64_t lda, int64_t K, const float *x, float alpha, float beta,
                             float *y, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
        const uint16_t *a = A + r * lda;
        __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
        int64_t k = 0;
        for (; k + 32 <= K; k += 32) {
            s0 = _mm256_fmadd_ps(ld16(a + k), _mm256_loadu_ps(x + k), s0);
            s1 = _mm256_fmadd_ps(ld16(a + k + 8), _mm256_loadu_ps(x + k + 8), s1);
            s2 = _mm256_fmadd_ps(ld16(a + k + 16), _mm256_loadu_ps(x + k + 16), s2);
            s3 = _mm256_fmadd_ps(ld16(a + k + 24), _mm256_loadu_ps(x + k + 24), s3);
        }
        for (; k + 8 <= K; k += 8) s0 = _mm256_fmadd_ps(ld16(a + k), _mm256_loadu_ps(x + k), s0);
        float t = tp_hsum8(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
        for (; k < K; k++) t += _cvtsh_ss(a[k]) * x[k];
        y[r] = beta == 0.0f ? alpha * t : alpha * t + beta * y[r];
    }
}

/* Columns in blocks of 32 outputs: for each k, acc += x[k] * B[k, n..n+31]. Per output the sum
 * runs over k in order, whatever the block boundaries. */
void tp_matvec_cols_avx2(const float *B, int64_t ldb, int64_t K, const float *x, float alpha, float beta, float *y,
                         int64_t n0, int64_t n1) {
    int64_t n = n0;
    for (; n + 32 <= n1; n += 32) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t k = 0; k < K; k++) {
            const float *b = B + k * ldb + n;
            __m256 xv = _mm256_broadcast_ss(x + k);
            a0 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(b), a0);
            a1 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(b + 8), a1);
            a2 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(b + 16), a2);
            a3 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(b + 24), a3);
        }
        __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
        __m256 *acc[4] = {&a0, &a1, &a2, &a3};
        for (int j = 0; j < 4; j++) {
            __m256 r = _mm256_mul_ps(*acc[j], va);
            if (beta != 0.0f) r = _mm256_fmadd_ps(vb, _mm256_loadu_ps(y + n + 8 * j), r);
            _mm256_storeu_ps(y + n + 8 * j, r);
        }
    }
    for (; n < n1; n++) {
        float t = 0;
        for (int64_t k = 0; k < K; k++) t = __builtin_fmaf(x[k], B[k * ldb + n], t);
        y[n] = beta == 0.0f ? alpha * t : alpha * t + beta * y[n];
    }
}

/* Rows of A (fp32, or binary16 widened exactly: a16) in blocks of 8, tp_matvec_rows_short_avx2's
 * order for both, so a binary16 A gives the bits of its widened copy. */
static inline __attribute__((always_inline)) void rows_short(const void *A, int a16, int64_t lda, int64_t K,
                                                             const float *x, float *y, int64_t r0, int64_t r1) {
    const int64_t K8 = K & ~(int64_t)7;
    for (int64_t r = r0; r < r1; r += 8) {
        const int nr = r1 - r >= 8 ? 8 : (int)(r1 - r);
        __m256 acc[8];
        for (int i = 0; i < 8; i++) acc[i] = _mm256_setzero_ps();
        for (int64_t k = 0; k < K8; k += 8) {
            const __m256 xv = _mm256_loadu_ps(x + k);
            for (int i = 0; i < nr; i++) acc[i] = _mm256_fmadd_ps(tp_ld8(A, a16, (r + i) * lda + k), xv, acc[i]);
        }
        float s[8];
        _mm256_storeu_ps(s, tp_hsum8x8(acc));
        for (int i = 0; i < nr; i++) {
            float t = s[i];
            for (int64_t k = K8; k < K; k++) {
                const float a = tp_elem(A, a16, (r + i) * lda + k);
                t += a * x[k];
            }
            y[r + i] = t;
        }
    }
}
void tp_matvec_rows_short_avx2(const float *A, int64_t lda, int64_t K, const float *x, float *y, int64_t r0,
                               int64_t r1) {
    rows_short(A, 0, lda, K, x, y, r0, r1);
}
void tp_matvec_rows_short_f16_avx2(const uint16_t *A, int64_t lda, int64_t K, const float *x, float *y, int64_t r0,
                                   int64_t r1) {
    rows_short(A, 1, lda, K, x, y, r0, r1);
}
float tp_dot_f16_avx2(const uint16_t *a, const float *b, int64_t n) { return tp_dot_fma8x4_any(a, 1, b, n); }
