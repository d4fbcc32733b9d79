/* cpu backend of LoRA. GEMV: t = A x once (r short dot products), then the base GEMV and
 * y[i] += s * B[i] . t in row blocks: the adapter adds 2 r (rows + cols) FLOPs and r (rows + cols)
 * floats of traffic to the base product, and BA (rows x cols) is never formed.
 * BGMV: the base GEMM for the whole batch (weights read once), then per column its adapter's
 * t_b = A_idx[b] X[b] and Y[b][i] += s B_idx[b][i] . t_b. SGMV: the same per segment (below).
 * Merge / unmerge: threaded rows, AVX2. */
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/codecs_cpu.h"

static float dot(int avx2, const float *a, const float *b, int64_t n) {
    return avx2 ? tp_dot_avx2(a, b, n) : tp_dot_portable(a, b, n);
}

/* The rows, columns or (column, rank) pairs of each step below are independent: chunks of them
 * on the worker pool (tp_cpu_for), same bits at any thread count. */
typedef struct ljob {
    const tp_lora_base *w;
    const tp_lora *ad;
    const int32_t *idx, *seg, *sad;
    int nseg, rmax, avx2;
    const float *X;
    int64_t batch;
    float *Y, *t;
} ljob;

/* f32 base: Y[b][i] = W[i] . X[b] */
static void base_rows(void *c, int64_t i0, int64_t i1) {
    const ljob *j = c;
    const int64_t rows = j->w->rows, cols = j->w->cols;
    for (int64_t i = i0; i < i1; i++)
        for (int64_t b = 0; b < j->batch; b++) j->Y[b * rows + i] = dot(j->avx2, j->w->W + i * cols, j->X + b * cols, cols);
}

static tp_status base_product(const ljob *j) {
    const tp_lora_base *w = j->w;
    if (w->q) return j->batch == 1 ? tp_qgemv_cpu(w->q, j->X, j->Y) : tp_qgemm_cpu(w->q, j->X, j->batch, j->Y);
    tp_cpu_for(w->rows, 64, w->rows * w->cols >= TP_CPU_PAR_MIN, base_rows, (void *)j);
    return TP_OK;
}

/* BGMV shrink: t[b][k] = A_idx[b][k] . X[b], over the pairs p = b * rmax + k */
static void bgmv_shrink(void *c, int64_t p0, int64_t p1) {
    const ljob *j = c;
    const int64_t cols = j->w->cols;
    for (int64_t p = p0; p < p1; p++) {
        const int64_t b = p / j->rmax;
        const int k = (int)(p % j->rmax);
        const tp_lora *l = &j->ad[j->idx[b]];
        if (k < l->r) j->t[p] = dot(j->avx2, l->A + (int64_t)k * cols, j->X + b * cols, cols);
    }
}

/* BGMV expand: Y[b][i] += s B_idx[b][i] . t_b */
static void bgmv_expand(void *c, int64_t i0, int64_t i1) {
    const ljob *j = c;
    const int64_t rows = j->w->rows;
    for (int64_t i = i0; i < i1; i++)
        for (int64_t b = 0; b < j->batch; b++) {
            const tp_lora *l = &j->ad[j->idx[b]];
            const float *bi = l->B + i * l->r, *tb = j->t + b * j->rmax;
            float acc = 0;
            for (int k = 0; k < l->r; k++) acc += bi[k] * tb[k]; /* r <= 64: the compiler vectorises */
            j->Y[b * rows + i] += tp_lora_scale(l) * acc;
        }
}

tp_status tp_lora_bgmv_cpu(const tp_lora_base *w, const tp_lora *ad, int nad, const int32_t *idx,
                      const float *X, int64_t batch, float *Y) {
    const int64_t rows = w->rows, cols = w->cols;
    int rmax = 1;
    for (int i = 0; i < nad; i++) rmax = ad[i].r > rmax ? ad[i].r : rmax;
    float *t = tp_alloc((size_t)(batch * rmax) * sizeof(float));
    if (!t) return TP_ERR_NOMEM;
    ljob j = {.w = w, .ad = ad, .idx = idx, .rmax = rmax, .avx2 = tp_cpu_isa() >= TP_ISA_AVX2, .X = X, .batch = batch, .Y = Y, .t = t};
    tp_cpu_for(batch * rmax, 4, batch * rmax * cols >= TP_CPU_PAR_MIN, bgmv_shrink, &j);
    tp_status s = base_product(&j);
    if (s == TP_OK) tp_cpu_for(rows, 64, rows * batch * rmax >= TP_CPU_PAR_MIN / 4, bgmv_expand, &j);
    tp_free(t);
    return s;
}

/* SGMV shrink over the pairs p = s * rmax + k: A_i[k] (one row of cols floats) stays in cache
 * across the segment's columns */
static void sgmv_shrink(void *c, int64_t p0, int64_t p1) {
    const ljob *j = c;
    const int64_t cols = j->w->cols;
    for (int64_t p = p0; p < p1; p++) {
        const int s = (int)(p / j->rmax), k = (int)(p % j->rmax);
        const tp_lora *l = &j->ad[j->sad[s]];
        if (k >= l->r) continue;
        const float *ak = l->A + (int64_t)k * cols;
        for (int64_t b = j->seg[s]; b < j->seg[s + 1]; b++) j->t[b * j->rmax + k] = dot(j->avx2, ak, j->X + b * cols, cols);
    }
}

/* SGMV expand: per segment B_i[i] loaded once for its columns */
static void sgmv_expand(void *c, int64_t i0, int64_t i1) {
    const ljob *j = c;
    const int64_t rows = j->w->rows;
    for (int64_t i = i0; i < i1; i++)
        for (int s = 0; s < j->nseg; s++) {
            const tp_lora *l = &j->ad[j->sad[s]];
            const float *bi = l->B + i * l->r, sc = tp_lora_scale(l);
            for (int64_t b = j->seg[s]; b < j->seg[s + 1]; b++) {
                const float *tb = j->t + b * j->rmax;
                float acc = 0;
                for (int k = 0; k < l->r; k++) acc += bi[k] * tb[k];
                j->Y[b * rows + i] += sc * acc;
            }
        }
}

/* SGMV: the base GEMM once for the batch; per segment the shrink T = A_i X_seg with k outermost
 * (A_i[k], one row of cols floats, stays in cache across the segment's columns: A read once per
 * segment) and the expand with B_i[row] loaded once per segment for all its columns. Each output
 * is summed by one thread in a fixed order: the same bits at any thread count. */
tp_status tp_lora_sgmv_cpu(const tp_lora_base *w, const tp_lora *ad, int nad, const int32_t *seg,
                      const int32_t *sad, int nseg, const float *X, int64_t batch, float *Y) {
    if (batch < 0 || tp_lora_seg_check(nad, seg, sad, nseg, batch) != TP_OK) return TP_ERR_ARG;
    if (batch == 0) return TP_OK;
    const int64_t rows = w->rows, cols = w->cols;
    int rmax = 1;
    for (int i = 0; i < nad; i++) rmax = ad[i].r > rmax ? ad[i].r : rmax;
    float *t = tp_alloc((size_t)(batch * rmax) * sizeof(float));
    if (!t) return TP_ERR_NOMEM;
    ljob j = {.w = w, .ad = ad, .seg = seg, .sad = sad, .nseg = nseg, .rmax = rmax, .avx2 = tp_cpu_isa() >= TP_ISA_AVX2,
              .X = X, .batch = batch, .Y = Y, .t = t};
    tp_cpu_for((int64_t)nseg * rmax, 4, batch * rmax * cols >= TP_CPU_PAR_MIN, sgmv_shrink, &j);
    tp_status st = base_product(&j);
    if (st == TP_OK) tp_cpu_for(rows, 64, rows * batch * rmax >= TP_CPU_PAR_MIN / 4, sgmv_expand, &j);
    tp_free(t);
    return st;
}

tp_status tp_lora_gemv_cpu(const tp_lora_base *w, const tp_lora *l, const float *x, float *y) {
    int32_t zero = 0;
    return tp_lora_bgmv_cpu(w, l, 1, &zero, x, 1, y);
}


typedef struct mjob {
    const float *W;
    const tp_lora *l;
    float sign, *out;
    int avx2;
} mjob;

static void merge_rows(void *c, int64_t i0, int64_t i1) {
    const mjob *m = c;
    const tp_lora *l = m->l;
    if (m->avx2) { tp_lora_merge_rows_avx2(m->W, l, m->sign, i0, i1, m->out); return; }
    /* the reference's definition on the row block, through a row view of B */
    tp_lora v = *l;
    v.rows = i1 - i0;
    v.B = l->B + i0 * l->r;
    if (m->sign > 0) tp_lora_merge_ref(m->W + i0 * l->cols, &v, m->out + i0 * l->cols);
    else tp_lora_unmerge_ref(m->W + i0 * l->cols, &v, m->out + i0 * l->cols);
}

static void merge_cpu(const float *W, const tp_lora *l, float sign, float *out) {
    mjob m = {W, l, sign, out, tp_cpu_isa() >= TP_ISA_AVX2};
    tp_cpu_for(l->rows, 64, l->rows * l->cols >= TP_CPU_PAR_MIN, merge_rows, &m);
}

void tp_lora_merge_cpu(const float *W, const tp_lora *l, float *out) { merge_cpu(W, l, 1.0f, out); }
void tp_lora_unmerge_cpu(const float *Wm, const tp_lora *l, float *out) { merge_cpu(Wm, l, -1.0f, out); }

tp_status tp_lora_merge_q_cpu(const tp_qmat *q, const tp_lora *l, tp_qmat *out) {
    const size_t n = (size_t)(q->rows * q->cols);
    float *D = tp_alloc(n * sizeof(float));
    if (!D) return TP_ERR_NOMEM;
    tp_dequantize_cpu(q, D);
    merge_cpu(D, l, 1.0f, D); /* in place: each element reads W before writing it */
    tp_quantize_rows_cpu(out, D, 0);
    tp_free(D);
    return TP_OK;
}
