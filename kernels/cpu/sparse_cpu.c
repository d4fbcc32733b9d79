/* cpu backend of 2:4 sparsity: pruning and compress / decompress in row tasks with the
 * reference's arithmetic (so bit-identical), sparse GEMV / GEMM in row tasks dispatched to AVX2
 * (tp_cpu_isa()) or the portable loops; all on the worker pool in tasks fixed by the shape. */
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/codecs_cpu.h"

static int big(int64_t rows, int64_t cols) { return rows * cols >= TP_CPU_PAR_MIN; }

/* Row jobs on the worker pool: tasks of ROW_BLK rows, fixed by the shape (each row is computed on
 * its own, so the reference's bits at any thread count); under TP_CPU_PAR_MIN weights one task of
 * all rows on the calling thread. */
#define ROW_BLK 64
typedef struct rowjob {
    void (*rows)(struct rowjob *j, int64_t r0, int64_t r1);
    int64_t nrows;
    tp_qmat *q;
    tp_sp24 *s;
    const tp_sp24 *cs;
    const float *in, *importance;
    float *out;
    int64_t cols;
    int refine_iters;
    int bad; /* set by a task whose block the reference refused */
} rowjob;

static void row_task(void *vc, int t, int nt) {
    rowjob *j = vc;
    const int64_t r0 = (int64_t)t * ROW_BLK, r1 = r0 + ROW_BLK < j->nrows ? r0 + ROW_BLK : j->nrows;
    (void)nt;
    j->rows(j, r0, r1);
}

static void row_run(rowjob *j, int64_t cols) {
    if (j->nrows <= 0) return;
    if (!big(j->nrows, cols)) j->rows(j, 0, j->nrows);
    else tp_pool_run((int)((j->nrows + ROW_BLK - 1) / ROW_BLK), row_task, j);
}

static void quantize_rows(rowjob *j, int64_t r0, int64_t r1) {
    tp_qmat v = tp_qmat_rows(j->q, r0, r1);
    tp_quantize_ref(&v, j->in + r0 * j->q->cols, j->refine_iters);
}

void tp_quantize_rows_cpu(tp_qmat *q, const float *W, int refine_iters) {
    rowjob j = {.rows = quantize_rows, .nrows = q->rows, .q = q, .in = W, .refine_iters = refine_iters};
    row_run(&j, q->cols);
}

static void prune_rows(rowjob *j, int64_t r0, int64_t r1) {
    tp_prune24_ref(j->in + r0 * j->cols, r1 - r0, j->cols, j->importance, j->out + r0 * j->cols);
}

void tp_prune24_cpu(const float *W, int64_t rows, int64_t cols, const float *importance, float *P) {
    rowjob j = {.rows = prune_rows, .nrows = rows, .in = W, .importance = importance, .out = P, .cols = cols};
    row_run(&j, cols);
}

/* Row-block view of a compressed matrix (meta and values of rows [r0, r1)). */
static tp_sp24 sp_rows(const tp_sp24 *s, int64_t r0, int64_t r1) {
    tp_sp24 v = *s;
    v.rows = r1 - r0;
    v.meta = s->meta + r0 * s->meta_stride;
    if (s->vf32) v.vf32 = s->vf32 + r0 * s->nkept;
    if (s->vf16) v.vf16 = s->vf16 + r0 * s->nkept;
    if (s->vkind == TP_SP_INT4) v.q = tp_qmat_rows(&s->q, r0, r1);
    return v;
}

static void compress_rows(rowjob *j, int64_t r0, int64_t r1) {
    tp_sp24 v = sp_rows(j->s, r0, r1);
    if (tp_sp24_compress_ref(&v, j->in + r0 * j->s->cols, j->refine_iters) != TP_OK)
        __atomic_store_n(&j->bad, 1, __ATOMIC_RELAXED);
}

tp_status tp_sp24_compress_cpu(tp_sp24 *s, const float *P, int refine_iters) {
    rowjob j = {.rows = compress_rows, .nrows = s->rows, .s = s, .in = P, .refine_iters = refine_iters};
    row_run(&j, s->cols);
    return j.bad ? TP_ERR_ARG : TP_OK;
}

static void decompress_rows(rowjob *j, int64_t r0, int64_t r1) {
    tp_sp24 v = sp_rows(j->cs, r0, r1);
    tp_sp24_decompress_ref(&v, j->out + r0 * j->cs->cols);
}

void tp_sp24_decompress_cpu(const tp_sp24 *s, float *W) {
    rowjob j = {.rows = decompress_rows, .nrows = s->rows, .cs = s, .out = W};
    row_run(&j, s->cols);
}

/* ---- portable products: decode a row's kept values and columns, then plain loops ---- */
static void decode_row(const tp_sp24 *s, int64_t r, float *vals, int32_t *idx) {
    for (int64_t j = 0; j < s->ngroups; j++) {
        int f = tp_sp24_field(s, r, j);
        idx[2 * j] = (int32_t)(4 * j + (f & 3));
        idx[2 * j + 1] = (int32_t)(4 * j + ((f >> 2) & 3));
    }
    for (int64_t k = 0; k < s->nkept; k++) vals[k] = tp_sp24_value(s, r, k);
}

float tp_sp24_tail_row(const tp_sp24 *s, const float *xp, int64_t r, int64_t j0) {
    float acc = 0;
    for (int64_t j = j0; j < s->ngroups; j++) {
        int f = tp_sp24_field(s, r, j);
        acc += tp_sp24_value(s, r, 2 * j) * xp[4 * j + (f & 3)];
        acc += tp_sp24_value(s, r, 2 * j + 1) * xp[4 * j + ((f >> 2) & 3)];
    }
    return acc;
}

/* x padded with zeros to the 4*G columns the metadata can address (+16 for the vector loop) */
static float *pad_x(const tp_sp24 *s, const float *x) {
    size_t n = (size_t)(4 * s->ngroups + 16);
    float *xp = tp_alloc(n * sizeof(float));
    if (!xp) return NULL;
    memset(xp, 0, n * sizeof(float));
    memcpy(xp, x, (size_t)s->cols * sizeof(float));
    return xp;
}

/* GEMV and GEMM run on the worker pool (tenpak.h) in tasks of SP_TASK rows: the tasks depend on
 * the shape only, so the result is the same at any thread count, and a thread slowed by another
 * process holds up one task, not a fixed half of the matrix. */
#define SP_TASK 64

typedef struct spjob {
    const tp_sp24 *s;
    const float *xp, *xr; /* GEMV: padded x (and its AVX2 rearrangement) */
    const float *XT;      /* GEMM: the batch slice transposed */
    int64_t b0, nb;
    int nv;
    float *y;
    int avx512, vbmi, avx2;
    int nomem; /* set by a task whose scratch allocation failed: its rows are left */
} spjob;

static void sp_run(spjob *j, int64_t work, void (*fn)(void *, int, int)) {
    int n = (int)((j->s->rows + SP_TASK - 1) / SP_TASK);
    if (big(work, 1)) tp_pool_run(n, fn, j);
    else
        for (int t = 0; t < n; t++) fn(j, t, n);
}

static void sp_gemv_task(void *vc, int t, int nt) {
    spjob *j = vc;
    const tp_sp24 *s = j->s;
    const int64_t r0 = (int64_t)t * SP_TASK, r1 = r0 + SP_TASK < s->rows ? r0 + SP_TASK : s->rows, N = s->nkept;
    const float *xp = j->xp;
    float *y = j->y;
    (void)nt;
    if (j->avx512) {
        if (j->vbmi) tp_sp24_gemv_rows_avx512vbmi(s, xp, r0, r1, y);
        else tp_sp24_gemv_rows_avx512(s, xp, r0, r1, y);
        return;
    }
    if (j->avx2) {
        tp_sp24_gemv_rows_avx2(s, xp, j->xr, r0, r1, y);
        return;
    }
    float *vals = tp_alloc((size_t)N * sizeof(float));
    int32_t *idx = tp_alloc((size_t)N * sizeof(int32_t));
    if (!vals || !idx) __atomic_store_n(&j->nomem, 1, __ATOMIC_RELAXED);
    for (int64_t r = r0; r < r1 && vals && idx; r++) {
        decode_row(s, r, vals, idx);
        float acc[4] = {0, 0, 0, 0};
        int64_t k = 0;
        for (; k + 4 <= N; k += 4)
            for (int u = 0; u < 4; u++) acc[u] += vals[k + u] * xp[idx[k + u]];
        for (; k < N; k++) acc[0] += vals[k] * xp[idx[k]];
        y[r] = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    }
    tp_free(vals);
    tp_free(idx);
}

tp_status tp_sp24_gemv_cpu(const tp_sp24 *s, const float *x, float *y) {
    const int avx512 = tp_cpu_isa() >= TP_ISA_AVX512 && tp_sp24_gemv_avx512_ok(s);
    const int vbmi = tp_cpu_isa() >= TP_ISA_AVX512VBMI;
    const int avx2 = tp_cpu_isa() >= TP_ISA_AVX2;
    float *xp = pad_x(s, x), *xr = NULL;
    if (!xp) return TP_ERR_NOMEM;
    if (avx2 && !avx512) {
        if (!(xr = tp_alloc((size_t)(4 * s->ngroups + 16) * sizeof(float)))) {
            tp_free(xp);
            return TP_ERR_NOMEM;
        }
        tp_sp24_xr_make(xp, s->ngroups / 4, xr);
    }
    spjob j = {.s = s, .xp = xp, .xr = xr, .y = y, .avx512 = avx512, .vbmi = vbmi, .avx2 = avx2};
    sp_run(&j, s->rows * s->cols, sp_gemv_task);
    tp_free(xp);
    tp_free(xr);
    return j.nomem ? TP_ERR_NOMEM : TP_OK;
}

static void sp_gemm_task(void *vc, int t, int nt) {
    spjob *j = vc;
    const tp_sp24 *s = j->s;
    const int64_t rows = s->rows, N = s->nkept, nb = j->nb, b0 = j->b0;
    const int64_t rb = (int64_t)t * SP_TASK, re = rb + SP_TASK < rows ? rb + SP_TASK : rows;
    const int bp = 8 * j->nv;
    (void)nt;
    float *vals = tp_alloc((size_t)N * sizeof(float));
    int32_t *idx = tp_alloc((size_t)N * sizeof(int32_t));
    float *out = tp_alloc((size_t)(SP_TASK * bp) * sizeof(float));
    if (vals && idx && out) {
        if (j->avx2) tp_sp24_gemm_rows_avx2(s, j->XT, j->nv, rb, re, vals, idx, out);
        else
            for (int64_t r = rb; r < re; r++) {
                decode_row(s, r, vals, idx);
                float *o = out + (r - rb) * bp;
                for (int b = 0; b < bp; b++) o[b] = 0;
                for (int64_t k = 0; k < N; k++) {
                    const float v = vals[k], *xt = j->XT + (int64_t)idx[k] * bp;
                    for (int b = 0; b < bp; b++) o[b] += v * xt[b];
                }
            }
        for (int64_t r = rb; r < re; r++)
            for (int64_t b = 0; b < nb; b++) j->y[(b0 + b) * rows + r] = out[(r - rb) * bp + b];
    } else {
        __atomic_store_n(&j->nomem, 1, __ATOMIC_RELAXED);
    }
    tp_free(vals);
    tp_free(idx);
    tp_free(out);
}

/* GEMM: X transposed into XT (4G x bp, zero padded) so each kept value meets one contiguous
 * run of the batch: acc[0..bp) += v * XT[col][0..bp). Batches wider than 64 go in slices. */
tp_status tp_sp24_gemm_cpu(const tp_sp24 *s, const float *X, int64_t batch, float *Y) {
    if (batch == 1) return tp_sp24_gemv_cpu(s, X, Y);
    const int avx2 = tp_cpu_isa() >= TP_ISA_AVX2;
    const int64_t cols = s->cols, C4 = 4 * s->ngroups;
    for (int64_t b0 = 0; b0 < batch; b0 += 64) {
        int64_t nb = batch - b0 < 64 ? batch - b0 : 64;
        int nv = (int)((nb + 7) / 8), bp = 8 * nv;
        float *XT = tp_alloc((size_t)(C4 * bp) * sizeof(float));
        if (!XT) return TP_ERR_NOMEM;
        memset(XT, 0, (size_t)(C4 * bp) * sizeof(float));
        for (int64_t b = 0; b < nb; b++)
            for (int64_t c = 0; c < cols; c++) XT[c * bp + b] = X[(b0 + b) * cols + c];
        spjob j = {.s = s, .XT = XT, .b0 = b0, .nb = nb, .nv = nv, .y = Y, .avx2 = avx2};
        sp_run(&j, s->rows * cols * nb, sp_gemm_task);
        tp_free(XT);
        if (j.nomem) return TP_ERR_NOMEM;
    }
    return TP_OK;
}

