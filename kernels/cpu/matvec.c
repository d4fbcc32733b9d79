/* Fixed-order fp32 matrix-vector products: portable path and ISA dispatch (matvec.h). */
#include "tenpak/matvec.h"
#include "tenpak/tenpak.h"

void tp_matvec_rows(const float *A, int64_t lda, int64_t K, const float *x, float alpha, float beta, float *y,
                    int64_t r0, int64_t r1) {
    if (tp_cpu_isa() >= TP_ISA_AVX2) { tp_matvec_rows_avx2(A, lda, K, x, alpha, beta, y, r0, r1); return; }
    for (int64_t r = r0; r < r1; r++) {
        float s[8] = {0}, t = 0;
        int64_t k = 0;
        for (; k + 8 <= K; k += 8)
            for (int j = 0; j < 8; j++) s[j] += A[r * lda + k + j] * x[k + j];
        for (; k < K; k++) t += A[r * lda + k] * x[k];
        t += ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
        y[r] = beta == 0.0f ? alpha * t : alpha * t + beta * y[r];
    }
}

void tp_matvec_cols(const float *B, int64_t ldb, int64_t K, const float *x, float alpha, float beta, float *y,
                    int64_t n0, int64_t n1) {
    if (tp_cpu_isa() >= TP_ISA_AVX2) { tp_matvec_cols_avx2(B, ldb, K, x, alpha, beta, y, n0, n1); return; }
    for (int64_t n = n0; n < n1; n++) {
        float t = 0;
        for (int64_t k = 0; k < K; k++) t += x[k] * B[k * ldb + n];
        y[n] = beta == 0.0f ? alpha * t : alpha * t + beta * y[n];
    }
}

void tp_matvec_rows_f16(const uint16_t *A, int64_t lda, int64_t K, const float *x, float alpha, float beta, float *y,
                        int64_t r0, int64_t r1) {
    if (tp_cpu_isa() >= TP_ISA_AVX2) { tp_matvec_rows_f16_avx2(A, lda, K, x, alpha, beta, y, r0, r1); return; }
    for (int64_t r = r0; r < r1; r++) {
        float s[8] = {0}, t = 0;
        int64_t k = 0;
        for (; k + 8 <= K; k += 8)
            for (int j = 0; j < 8; j++) s[j] += tp_f16_to_f32(A[r * lda + k + j]) * x[k + j];
        for (; k < K; k++) t += tp_f16_to_f32(A[r * lda + k]) * x[k];
        t += ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
        y[r] = beta == 0.0f ? alpha * t : alpha * t + beta * y[r];
    }
}
