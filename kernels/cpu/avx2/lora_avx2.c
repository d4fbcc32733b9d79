/* AVX2 + FMA kernels for LoRA merge / unmerge (called after run-time detection). Each output
 * (i, j) accumulates acc = fma(B[i][k], A[k][j], acc) for k = 0..r-1 in order, exactly the
 * reference's fmaf chain, 8 columns per vector and 4 vectors per step; then W +/- s * acc with
 * one multiply and one add (no contraction), as the definition. */
#include <immintrin.h>
#include <math.h>

#include "kernels/cpu/codecs_cpu.h"

void tp_lora_merge_rows_avx2(const float *W, const tp_lora *l, float sign, int64_t i0, int64_t i1,
                             float *out) {
    const int64_t cols = l->cols;
    const int r = l->r;
    const float s = tp_lora_scale(l);
    const __m256 sv = _mm256_set1_ps(s);
    for (int64_t i = i0; i < i1; i++) {
        const float *b = l->B + i * r;
        const float *w = W + i * cols;
        float *o = out + i * cols;
        int64_t j = 0;
        for (; j + 32 <= cols; j += 32) {
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int k = 0; k < r; k++) {
                const __m256 bk = _mm256_broadcast_ss(b + k);
                const float *ak = l->A + (int64_t)k * cols + j;
                a0 = _mm256_fmadd_ps(bk, _mm256_loadu_ps(ak), a0);
                a1 = _mm256_fmadd_ps(bk, _mm256_loadu_ps(ak + 8), a1);
                a2 = _mm256_fmadd_ps(bk, _mm256_loadu_ps(ak + 16), a2);
                a3 = _mm256_fmadd_ps(bk, _mm256_loadu_ps(ak + 24), a3);
            }
            __m256 d[4] = {_mm256_mul_ps(sv, a0), _mm256_mul_ps(sv, a1), _mm256_mul_ps(sv, a2), _mm256_mul_ps(sv, a3)};
            for (int u = 0; u < 4; u++) {
                __m256 wv = _mm256_loadu_ps(w + j + 8 * u);
                _mm256_storeu_ps(o + j + 8 * u, sign > 0 ? _mm256_add_ps(wv, d[u]) : _mm256_sub_ps(wv, d[u]));
            }
        }
        for (; j + 8 <= cols; j += 8) {
            __m256 a0 = _mm256_setzero_ps();
            for (int k = 0; k < r; k++) a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(b + k), _mm256_loadu_ps(l->A + (int64_t)k * cols + j), a0);
            __m256 d = _mm256_mul_ps(sv, a0), wv = _mm256_loadu_ps(w + j);
            _mm256_storeu_ps(o + j, sign > 0 ? _mm256_add_ps(wv, d) : _mm256_sub_ps(wv, d));
        }
        for (; j < cols; j++) {
            float acc = 0.0f;
            for (int k = 0; k < r; k++) acc = fmaf(b[k], l->A[(int64_t)k * cols + j], acc);
            float d = s * acc;
            o[j] = sign > 0 ? w[j] + d : w[j] - d;
        }
    }
}

/* rows [i0, i1) of the low-rank product lr(i, j) = fmaf chain over t of L[i][t] R[t][j]
 * (lowrank.h's definition), 8 columns per vector */
void tp_lr_product_rows_avx2(const float *L, const float *R, int rank, int64_t cols, int64_t i0,
                             int64_t i1, float *out) {
    for (int64_t i = i0; i < i1; i++) {
        const float *l = L + i * rank;
        float *o = out + i * cols;
        int64_t j = 0;
        for (; j + 32 <= cols; j += 32) {
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int k = 0; k < rank; k++) {
                const __m256 lk = _mm256_broadcast_ss(l + k);
                const float *rk = R + (int64_t)k * cols + j;
                a0 = _mm256_fmadd_ps(lk, _mm256_loadu_ps(rk), a0);
                a1 = _mm256_fmadd_ps(lk, _mm256_loadu_ps(rk + 8), a1);
                a2 = _mm256_fmadd_ps(lk, _mm256_loadu_ps(rk + 16), a2);
                a3 = _mm256_fmadd_ps(lk, _mm256_loadu_ps(rk + 24), a3);
            }
            _mm256_storeu_ps(o + j, a0);
            _mm256_storeu_ps(o + j + 8, a1);
            _mm256_storeu_ps(o + j + 16, a2);
            _mm256_storeu_ps(o + j + 24, a3);
        }
        for (; j < cols; j++) {
            float acc = 0.0f;
            for (int k = 0; k < rank; k++) acc = fmaf(l[k], R[(int64_t)k * cols + j], acc);
            o[j] = acc;
        }
    }
}
