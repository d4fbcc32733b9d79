/* Reference for LoRA: the product in double, merge / unmerge by the definition in lora.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tenpak/lora.h"

tp_status tp_lora_alloc(tp_lora *l, int64_t rows, int64_t cols, int r, float alpha) {
    memset(l, 0, sizeof *l);
    if (rows <= 0 || cols <= 0 || r <= 0) return TP_ERR_ARG;
    l->rows = rows;
    l->cols = cols;
    l->r = r;
    l->alpha = alpha;
    l->A = tp_alloc((size_t)r * (size_t)cols * sizeof(float));
    l->B = tp_alloc((size_t)rows * (size_t)r * sizeof(float));
    if (!l->A || !l->B) {
        tp_lora_free(l);
        return TP_ERR_NOMEM;
    }
    return TP_OK;
}

void tp_lora_free(tp_lora *l) {
    tp_free(l->A);
    tp_free(l->B);
    memset(l, 0, sizeof *l);
}

size_t tp_lora_bytes(int64_t rows, int64_t cols, int r) { return 2 * (size_t)r * (size_t)(rows + cols); }

/* one base weight, as fp32 (reference: from the quantised definition) */
static void base_row(const tp_lora_base *w, int64_t r, float *row) {
    if (w->W) {
        memcpy(row, w->W + r * w->cols, (size_t)w->cols * sizeof(float));
        return;
    }
    /* dequantise one row through a one-row view of q */
    tp_qmat v = *w->q;
    v.rows = 1;
    v.codes = w->q->codes + r * w->q->code_stride;
    v.scale = w->q->scale + r * w->q->ngroups;
    if (v.offset) v.offset = w->q->offset + r * w->q->ngroups;
    if (v.rcodes) v.rcodes = w->q->rcodes + r * w->q->rcode_stride;
    if (v.rscale) v.rscale = w->q->rscale + r * w->q->ngroups;
    tp_dequantize_ref(&v, row);
}

tp_status tp_lora_bgmv_ref(const tp_lora_base *w, const tp_lora *ad, int nad, const int32_t *idx,
                      const float *X, int64_t batch, float *Y) {
    const int64_t rows = w->rows, cols = w->cols;
    float *row = malloc((size_t)cols * sizeof(float));
    int rmax = 0;
    for (int i = 0; i < nad; i++) rmax = ad[i].r > rmax ? ad[i].r : rmax;
    double *tt = malloc((size_t)batch * (size_t)(rmax > 0 ? rmax : 1) * sizeof(double));
    if (!row || !tt) {
        free(row);
        free(tt);
        return TP_ERR_NOMEM;
    }
    /* A x per column, in double */
    for (int64_t b = 0; b < batch; b++) {
        const tp_lora *l = &ad[idx[b]];
        for (int k = 0; k < l->r; k++) {
            double s = 0;
            for (int64_t c = 0; c < cols; c++) s += (double)l->A[k * cols + c] * X[b * cols + c];
            tt[b * rmax + k] = s;
        }
    }
    for (int64_t r = 0; r < rows; r++) {
        base_row(w, r, row);
        for (int64_t b = 0; b < batch; b++) {
            const tp_lora *l = &ad[idx[b]];
            double acc = 0, la = 0;
            for (int64_t c = 0; c < cols; c++) acc += (double)row[c] * X[b * cols + c];
            for (int k = 0; k < l->r; k++) la += (double)l->B[r * l->r + k] * tt[b * rmax + k];
            Y[b * rows + r] = (float)(acc + (double)l->alpha / l->r * la);
        }
    }
    free(row);
    free(tt);
    return TP_OK;
}

/* SGMV by its definition: BGMV with each column's adapter taken from its segment */
tp_status tp_lora_sgmv_ref(const tp_lora_base *w, const tp_lora *ad, int nad, const int32_t *seg,
                      const int32_t *sad, int nseg, const float *X, int64_t batch, float *Y) {
    if (batch < 0 || tp_lora_seg_check(nad, seg, sad, nseg, batch) != TP_OK) return TP_ERR_ARG;
    if (batch == 0) return TP_OK;
    int32_t *idx = malloc((size_t)batch * sizeof(int32_t));
    if (!idx) return TP_ERR_NOMEM;
    for (int s = 0; s < nseg; s++)
        for (int64_t b = seg[s]; b < seg[s + 1]; b++) idx[b] = sad[s];
    tp_status st = tp_lora_bgmv_ref(w, ad, nad, idx, X, batch, Y);
    free(idx);
    return st;
}

tp_status tp_lora_gemv_ref(const tp_lora_base *w, const tp_lora *l, const float *x, float *y) {
    int32_t zero = 0;
    return tp_lora_bgmv_ref(w, l, 1, &zero, x, 1, y);
}


/* d = s * (B A)[i][j] by the definition (fmaf chain over k) */
static inline float merge_delta(const tp_lora *l, int64_t i, int64_t j, float s) {
    float acc = 0.0f;
    for (int k = 0; k < l->r; k++) acc = fmaf(l->B[i * l->r + k], l->A[k * l->cols + j], acc);
    return s * acc;
}

void tp_lora_merge_ref(const float *W, const tp_lora *l, float *out) {
    const float s = tp_lora_scale(l);
    for (int64_t i = 0; i < l->rows; i++)
        for (int64_t j = 0; j < l->cols; j++) out[i * l->cols + j] = W[i * l->cols + j] + merge_delta(l, i, j, s);
}

void tp_lora_unmerge_ref(const float *Wm, const tp_lora *l, float *out) {
    const float s = tp_lora_scale(l);
    for (int64_t i = 0; i < l->rows; i++)
        for (int64_t j = 0; j < l->cols; j++) out[i * l->cols + j] = Wm[i * l->cols + j] - merge_delta(l, i, j, s);
}

tp_status tp_lora_merge_q_ref(const tp_qmat *q, const tp_lora *l, tp_qmat *out) {
    const size_t n = (size_t)(q->rows * q->cols);
    float *D = malloc(n * sizeof(float)), *M = malloc(n * sizeof(float));
    if (!D || !M) {
        free(D);
        free(M);
        return TP_ERR_NOMEM;
    }
    tp_dequantize_ref(q, D);
    tp_lora_merge_ref(D, l, M);
    tp_quantize_ref(out, M, 0);
    free(D);
    free(M);
    return TP_OK;
}
