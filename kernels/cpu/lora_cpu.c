/* cpu backend of LoRA. GEMV: t = A x once (r short dot products), then the base GEMV and
 * y[i] += s * B[i] . t in row blocks: the adapter adds 2 r (rows + cols) FLOPs and r (rows + cols)
 * floats of traffic to the base product, and BA (rows x cols) is never formed.
 * BGMV: the base GEMM for the whole batch (weights read once), then per column its adapter's
 * t_b = A_idx[b] X[b] and Y[b][i] += s B_idx[b][i] . t_b. SGMV: the same per segment (below).
 * Merge / unmerge: threaded rows, AVX2. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/codecs_cpu.h"

static float dot(int avx2, const float *a, const float *b, int64_t n) {
    return avx2 ? tp_dot_avx2(a, b, n) : tp_dot_portable(a, b, n);
}

/* f32 base: Y[b][i] = W[i] . X[b] for rows in parallel */
static void base_f32(const tp_lora_base *w, const float *X, int64_t batch, float *Y, int avx2) {
    const int64_t rows = w->rows, cols = w->cols;
#pragma omp parallel for schedule(static) if (rows * cols >= TP_CPU_PAR_MIN)
    for (int64_t i = 0; i < rows; i++)
        for (int64_t b = 0; b < batch; b++) Y[b * rows + i] = dot(avx2, w->W + i * cols, X + b * cols, cols);
}

tp_status tp_lora_bgmv_cpu(const tp_lora_base *w, const tp_lora *ad, int nad, const int32_t *idx,
                      const float *X, int64_t batch, float *Y) {
    const int avx2 = tp_cpu_isa() >= TP_ISA_AVX2;
    const int64_t rows = w->rows, cols = w->cols;
    int rmax = 1;
    for (int i = 0; i < nad; i++) rmax = ad[i].r > rmax ? ad[i].r : rmax;
    float *t = tp_alloc((size_t)(batch * rmax) * sizeof(float));
    if (!t) return TP_ERR_NOMEM;
    /* t_b = A_idx[b] X[b]: batch * r short dot products */
#pragma omp parallel for collapse(2) schedule(static) if (batch * rmax * cols >= TP_CPU_PAR_MIN)
    for (int64_t b = 0; b < batch; b++)
        for (int k = 0; k < rmax; k++) {
            const tp_lora *l = &ad[idx[b]];
            if (k < l->r) t[b * rmax + k] = dot(avx2, l->A + (int64_t)k * cols, X + b * cols, cols);
        }
    if (w->q) {
        tp_status s = batch == 1 ? tp_qgemv_cpu(w->q, X, Y) : tp_qgemm_cpu(w->q, X, batch, Y);
        if (s != TP_OK) {
            tp_free(t);
            return s;
        }
    } else
        base_f32(w, X, batch, Y, avx2);
#pragma omp parallel for schedule(static) if (rows * batch * rmax >= TP_CPU_PAR_MIN / 4)
    for (int64_t i = 0; i < rows; i++)
        for (int64_t b = 0; b < batch; b++) {
            const tp_lora *l = &ad[idx[b]];
            const float *bi = l->B + i * l->r, *tb = t + b * rmax;
            float acc = 0;
            for (int k = 0; k < l->r; k++) acc += bi[k] * tb[k]; /* r <= 64: the compiler vectorises */
            Y[b * rows + i] += tp_lora_scale(l) * acc;
        }
    tp_free(t);
    return TP_OK;
}

/* SGMV: the base GEMM once for the batch; per segment the shrink T = A_i X_seg with k outermost
 * (A_i[k], one row of cols floats, stays in cache across the segment's columns: A read once per
 * segment) and the expand with B_i[row] loaded once per segment for all its columns. Each output
 * is summed by one thread in a fixed order: the same bits at any thread count. */
tp_status tp_lora_sgmv_cpu(const tp_lora_base *w, const tp_lora *ad, int nad, const int32_t *seg,
                      const int32_t *sad, int nseg, const float *X, int64_t batch, float *Y) {
    if (batch < 0 || tp_lora_seg_check(nad, seg, sad, nseg, batch) != TP_OK) return TP_ERR_ARG;
    if (batch == 0) return TP_OK;
    const int avx2 = tp_cpu_isa() >= TP_ISA_AVX2;
    const int64_t rows = w->rows, cols = w->cols;
    int rmax = 1;
    for (int i = 0; i < nad; i++) rmax = ad[i].r > rmax ? ad[i].r : rmax;
    float *t = tp_alloc((size_t)(batch * rmax) * sizeof(float));
    if (!t) return TP_ERR_NOMEM;
#pragma omp parallel for collapse(2) schedule(static) if (batch * rmax * cols >= TP_CPU_PAR_MIN)
    for (int s = 0; s < nseg; s++)
        for (int k = 0; k < rmax; k++) {
            const tp_lora *l = &ad[sad[s]];
            if (k >= l->r) continue;
            const float *ak = l->A + (int64_t)k * cols;
            for (int64_t b = seg[s]; b < seg[s + 1]; b++) t[b * rmax + k] = dot(avx2, ak, X + b * cols, cols);
        }
    tp_status st = TP_OK;
    if (w->q) st = batch == 1 ? tp_qgemv_cpu(w->q, X, Y) : tp_qgemm_cpu(w->q, X, batch, Y);
    else base_f32(w, X, batch, Y, avx2);
    if (st != TP_OK) {
        tp_free(t);
        return st;
    }
#pragma omp parallel for schedule(static) if (rows * batch * rmax >= TP_CPU_PAR_MIN / 4)
    for (int64_t i = 0; i < rows; i++)
        for (int s = 0; s < nseg; s++) {
            const tp_lora *l = &ad[sad[s]];
            const float *bi = l->B + i * l->r, sc = tp_lora_scale(l);
            for (int64_t b = seg[s]; b < seg[s + 1]; b++) {
                const float *tb = t + b * rmax;
                float acc = 0;
                for (int k = 0; k < l->r; k++) acc += bi[k] * tb[k];
                Y[b * rows + i] += sc * acc;
            }
        }
    tp_free(t);
    return TP_OK;
}

tp_status tp_lora_gemv_cpu(const tp_lora_base *w, const tp_lora *l, const float *x, float *y) {
    int32_t zero = 0;
    return tp_lora_bgmv_cpu(w, l, 1, &zero, x, 1, y);
}


static void merge_cpu(const float *W, const tp_lora *l, float sign, float *out) {
    const int avx2 = tp_cpu_isa() >= TP_ISA_AVX2;
    const int64_t rows = l->rows;
#pragma omp parallel if (rows * l->cols >= TP_CPU_PAR_MIN)
    {
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
        int64_t i0 = rows * t / nt, i1 = rows * (t + 1) / nt;
        if (i0 < i1) {
            if (avx2) tp_lora_merge_rows_avx2(W, l, sign, i0, i1, out);
            else {
                /* the reference's definition on the row block, through a row view of B */
                tp_lora v = *l;
                v.rows = i1 - i0;
                v.B = l->B + i0 * l->r;
                if (sign > 0) tp_lora_merge_ref(W + i0 * l->cols, &v, out + i0 * l->cols);
                else tp_lora_unmerge_ref(W + i0 * l->cols, &v, out + i0 * l->cols);
            }
        }
    }
}

void tp_lora_merge_cpu(const float *W, const tp_lora *l, float *out) { merge_cpu(W, l, 1.0f, out); }
void tp_lora_unmerge_cpu(const float *Wm, const tp_lora *l, float *out) { merge_cpu(Wm, l, -1.0f, out); }

tp_status tp_lora_merge_q_cpu(const tp_qmat *q, const tp_lora *l, tp_qmat *out) {
    const size_t n = (size_t)(q->rows * q->cols);
    float *D = tp_alloc(n * sizeof(float));
    if (!D) return TP_ERR_NOMEM;
    tp_dequantize_cpu(q, D);
    merge_cpu(D, l, 1.0f, D); /* in place: each element reads W before writing it */
    tp_k3_quantize_rows(out, D, 0);
    tp_free(D);
    return TP_OK;
}
