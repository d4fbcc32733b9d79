/* fp32 matrix-vector products with a fixed summation order: each output's sum is computed by one
 * thread in an order that depends only on the ISA level, never on the thread count, so a result
 * is reproducible bit for bit at any number of threads (what `tenpak zip` needs from the model's
 * one-token steps). Work is split by output ranges [o0, o1); callers thread over them.
 *   tp_matvec_rows: y[r] = alpha * dot(A[r, 0..K), x) + beta * y[r]       (A row-major, lda)
 *   tp_matvec_cols: y[n] = alpha * sum_k x[k] B[k, n] + beta * y[n]       (B row-major K x N, ldb)
 * beta == 0 ignores y's old contents. */
#ifndef TENPAK_MATVEC_H
#define TENPAK_MATVEC_H

#include <stdint.h>

void tp_matvec_rows(const float *A, int64_t lda, int64_t K, const float *x, float alpha, float beta, float *y,
                    int64_t r0, int64_t r1);
void tp_matvec_cols(const float *B, int64_t ldb, int64_t K, const float *x, float alpha, float beta, float *y,
                    int64_t n0, int64_t n1);
/* The same as tp_matvec_rows with A in IEEE binary16 (a checkpoint's fp16 data as stored): each
 * weight widened to fp32 exactly, then the fp32 sum in the same fixed order. The fp16-weights
 * model (TP_WEIGHTS_F16) decodes with it; `gemv/f16/cpu` verifies and times it. */
void tp_matvec_rows_f16(const uint16_t *A, int64_t lda, int64_t K, const float *x, float alpha, float beta, float *y,
                        int64_t r0, int64_t r1);
void tp_matvec_rows_f16_avx2(const uint16_t *A, int64_t lda, int64_t K, const float *x, float alpha, float beta,
                             float *y, int64_t r0, int64_t r1);
void tp_matvec_rows_avx2(const float *A, int64_t lda, int64_t K, const float *x, float alpha, float beta, float *y,
                         int64_t r0, int64_t r1);
void tp_matvec_cols_avx2(const float *B, int64_t ldb, int64_t K, const float *x, float alpha, float beta, float *y,
                         int64_t n0, int64_t n1);
/* y[r] = dot(A[r, 0..K), x) for short rows (K up to a few hundred: a low-rank factor's rank): eight
 * rows' sums reduced together (one transposed tree instead of eight horizontal sums). Per row:
 * lanes accumulate 8-column chunks in order, the lanes' tree, then the scalar tail; a row's bits do
 * not depend on which rows share its block (the rows past r1 of the last block sum zeros). */
void tp_matvec_rows_short_avx2(const float *A, int64_t lda, int64_t K, const float *x, float *y, int64_t r0,
                               int64_t r1);
/* The same with binary16 A, widened exactly: the bits of tp_matvec_rows_short_avx2 on the widened
 * values; and tp_dot_avx2's order (tp_dot_fma8x4) with a binary16 a. */
void tp_matvec_rows_short_f16_avx2(const uint16_t *A, int64_t lda, int64_t K, const float *x, float *y, int64_t r0,
                                   int64_t r1);
float tp_dot_f16_avx2(const uint16_t *a, const float *b, int64_t n);

#endif
