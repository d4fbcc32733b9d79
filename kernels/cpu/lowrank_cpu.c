/* cpu backend of low rank and tenpakx: the product by row blocks (AVX2, bit-identical to the
 * reference), the low-rank GEMV y = L (R x) (k dot products of length cols, then rows dot
 * products of length k, eight rows reduced together: tp_matvec_rows_short_avx2), tenpakx fit / decode / GEMV by composition; all on the worker pool in
 * tasks fixed by the shape. */
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/codecs_cpu.h"
#include "tenpak/lowrank.h"
#include "tenpak/matvec.h"

/* The product in tasks of PR_TASK rows on the worker pool (each row is computed on its own, so any
 * split gives the reference's bits); under TP_CPU_PAR_MIN weights one task on this thread. */
#define PR_TASK 64
typedef struct prjob {
    const tp_lowrank *m;
    float *W;
    int avx2;
} prjob;
static void product_rows(const prjob *j, int64_t i0, int64_t i1) {
    const tp_lowrank *m = j->m;
    if (j->avx2) tp_lr_product_rows_avx2(m->L, m->R, m->rank, m->cols, i0, i1, j->W);
    else {
        tp_lowrank v = *m;
        v.rows = i1 - i0;
        v.L = m->L + i0 * m->rank;
        tp_lowrank_product_ref(&v, j->W + i0 * m->cols);
    }
}
static void product_task(void *vc, int t, int nt) {
    const prjob *j = vc;
    const int64_t rows = j->m->rows, i0 = (int64_t)t * PR_TASK, i1 = i0 + PR_TASK < rows ? i0 + PR_TASK : rows;
    (void)nt;
    product_rows(j, i0, i1);
}

void tp_lowrank_product_cpu(const tp_lowrank *m, float *W) {
    const int64_t rows = m->rows;
    prjob j = {m, W, tp_cpu_isa() >= TP_ISA_AVX2};
    if (rows <= 0) return;
    if (m->rows * m->cols < TP_CPU_PAR_MIN) product_rows(&j, 0, rows);
    else tp_pool_run((int)((rows + PR_TASK - 1) / PR_TASK), product_task, &j);
}

/* The GEMV on the worker pool, t = R x then y = L t, each in tasks of LR_TASK outputs (fixed by the
 * shape, so any thread count gives the same bits; a slow thread holds up one task). The factors are
 * fp32 (tp_lowrank) or binary16 (tp_lowrank16, read where the artifact holds them), the binary16
 * ones widened exactly and summed in the same order: the same bits either way. */
#define LR_TASK 32
typedef struct lrjob {
    int64_t rows, cols;
    int k;
    const void *L, *R; /* fp32 factors, or binary16 ones (a16) */
    int a16;
    const float *x;
    float *t, *y;
    int avx2;
} lrjob;
/* element i of a factor array, as an address */
static const void *lr_at(const lrjob *j, const void *base, int64_t i) {
    return (const char *)base + i * (j->a16 ? (int64_t)sizeof(uint16_t) : (int64_t)sizeof(float));
}
static void lr_t_task(void *vc, int task, int n) {
    const lrjob *j = vc;
    const int64_t cols = j->cols, i1 = (int64_t)(task + 1) * LR_TASK < j->k ? (int64_t)(task + 1) * LR_TASK : j->k;
    (void)n;
    for (int64_t i = (int64_t)task * LR_TASK; i < i1; i++) {
        const void *r = lr_at(j, j->R, i * cols);
        j->t[i] = !j->avx2 ? tp_dot_portable_any(r, j->a16, j->x, cols)
                  : j->a16 ? tp_dot_f16_avx2(r, j->x, cols)
                           : tp_dot_avx2(r, j->x, cols);
    }
}
static void lr_y_task(void *vc, int task, int n) {
    const lrjob *j = vc;
    const int64_t k = j->k, rows = j->rows;
    const int64_t r0 = (int64_t)task * LR_TASK * 4, r1 = r0 + LR_TASK * 4 < rows ? r0 + LR_TASK * 4 : rows;
    (void)n;
    if (!j->avx2)
        for (int64_t i = r0; i < r1; i++) j->y[i] = tp_dot_portable_any(lr_at(j, j->L, i * k), j->a16, j->t, k);
    else if (j->a16)
        tp_matvec_rows_short_f16_avx2(j->L, k, k, j->t, j->y, r0, r1);
    else
        tp_matvec_rows_short_avx2(j->L, k, k, j->t, j->y, r0, r1);
}

static tp_status lr_gemv(lrjob *j) {
    const int64_t rows = j->rows, cols = j->cols;
    const int k = j->k;
    float *t = tp_alloc((size_t)k * sizeof(float));
    if (!t) return TP_ERR_NOMEM;
    j->t = t;
    j->avx2 = tp_cpu_isa() >= TP_ISA_AVX2;
    const int par = (rows + cols) * (int64_t)k >= TP_CPU_PAR_MIN;
    const int nt = (int)((k + LR_TASK - 1) / LR_TASK), ny = (int)((rows + 4 * LR_TASK - 1) / (4 * LR_TASK));
    if (par) {
        tp_pool_run(nt, lr_t_task, j);
        tp_pool_run(ny, lr_y_task, j);
    } else {
        for (int i = 0; i < nt; i++) lr_t_task(j, i, nt);
        for (int i = 0; i < ny; i++) lr_y_task(j, i, ny);
    }
    tp_free(t);
    return TP_OK;
}

tp_status tp_lowrank_gemv_cpu(const tp_lowrank *m, const float *x, float *y) {
    lrjob j = {.rows = m->rows, .cols = m->cols, .k = m->rank, .L = m->L, .R = m->R, .a16 = 0, .x = x, .y = y};
    return lr_gemv(&j);
}

tp_status tp_lowrank16_gemv_cpu(const tp_lowrank16 *m, const float *x, float *y) {
    lrjob j = {.rows = m->rows, .cols = m->cols, .k = m->rank, .L = m->L, .R = m->R, .a16 = 1, .x = x, .y = y};
    return lr_gemv(&j);
}

tp_status tp_tenpakx_fit(tp_tenpakx *m, const float *W, const tp_tenpakx_cfg *cfg, tp_err *e) {
    const int64_t n = m->lr.rows * m->lr.cols;
    float *P = tp_alloc((size_t)n * sizeof(float));
    if (!P) return tp_fail(e, TP_ERR_NOMEM, "tenpakx: out of memory");
    tp_status st = tp_lowrank_fit(&m->lr, W, NULL, e);
    if (st == TP_OK) {
        tp_lowrank_product_cpu(&m->lr, P);
        for (int64_t i = 0; i < n; i++) P[i] = W[i] - P[i]; /* remainder after low rank */
        tp_kmeans_opts o = {.seed = cfg ? cfg->seed : 0};
        st = tp_vq_fit(&m->vq, P, &o, NULL);
        if (st != TP_OK) tp_fail(e, st, "tenpakx: k-means failed");
    }
    if (st == TP_OK) {
        float *V = tp_alloc((size_t)n * sizeof(float));
        if (!V) st = tp_fail(e, TP_ERR_NOMEM, "tenpakx: out of memory");
        else {
            tp_vq_decode_cpu(&m->vq, V);
            for (int64_t i = 0; i < n; i++) P[i] = P[i] - V[i]; /* remainder after VQ */
            tp_quantize_rows_cpu(&m->res, P, cfg ? cfg->refine_iters : 0);
            tp_free(V);
        }
    }
    tp_free(P);
    return st;
}

/* W = (W + V) + R elementwise, in tasks of SUM_TASK elements (one task: all of them) */
#define SUM_TASK (1 << 16)
typedef struct sumjob {
    float *W;
    const float *V, *R;
    int64_t n;
} sumjob;
static void sum_task(void *vc, int t, int nt) {
    const sumjob *j = vc;
    const int64_t i0 = nt == 1 ? 0 : (int64_t)t * SUM_TASK, i1 = nt == 1 || i0 + SUM_TASK > j->n ? j->n : i0 + SUM_TASK;
    for (int64_t i = i0; i < i1; i++) j->W[i] = (j->W[i] + j->V[i]) + j->R[i];
}

tp_status tp_tenpakx_decode_cpu(const tp_tenpakx *m, float *W) {
    const int64_t n = m->lr.rows * m->lr.cols;
    float *V = tp_alloc((size_t)n * sizeof(float)), *R = tp_alloc((size_t)n * sizeof(float));
    if (!V || !R) {
        tp_free(V);
        tp_free(R);
        return TP_ERR_NOMEM;
    }
    tp_lowrank_product_cpu(&m->lr, W);
    tp_vq_decode_cpu(&m->vq, V);
    tp_dequantize_cpu(&m->res, R);
    sumjob j = {W, V, R, n};
    if (n < TP_CPU_PAR_MIN) sum_task(&j, 0, 1);
    else tp_pool_run((int)((n + SUM_TASK - 1) / SUM_TASK), sum_task, &j);
    tp_free(V);
    tp_free(R);
    return TP_OK;
}

tp_status tp_tenpakx_gemv_cpu(const tp_tenpakx *m, const float *x, float *y) {
    const int64_t rows = m->lr.rows;
    float *y2 = tp_alloc((size_t)rows * sizeof(float)), *y3 = tp_alloc((size_t)rows * sizeof(float));
    tp_status s = y2 && y3 ? TP_OK : TP_ERR_NOMEM;
    if (s == TP_OK) s = tp_lowrank_gemv_cpu(&m->lr, x, y);
    if (s == TP_OK) s = tp_vq_gemv_cpu(&m->vq, x, y2);
    if (s == TP_OK) s = tp_qgemv_cpu(&m->res, x, y3);
    if (s == TP_OK)
        for (int64_t r = 0; r < rows; r++) y[r] += y2[r] + y3[r];
    tp_free(y2);
    tp_free(y3);
    return s;
}

