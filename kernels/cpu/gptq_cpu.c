/* GPTQ, optimised cpu version: the algorithm of include/tenpak/gptq.h (definition:
 * reference/gptq_ref.c) with GPTQ's lazy batch updates.
 *
 * Work in the permuted column order p (Wp[r][p] = W[r][order[p]]). Columns are taken in blocks
 * [i1, i2) of B = max(TP_GPTQ_BLOCK, g) columns. Inside a block the reference's updates are applied
 * at once, but only to the block's own columns; the block's scaled errors Err[r][p - i1] are kept,
 * and at the block's end the rest of the matrix gets them all in one product
 *     Wp[:, i2:] -= Err (rows x B) * U[i1:i2, i2:]                     (cblas_dgemm)
 * which is the sum of the reference's per-column updates, summed in another order. The one place
 * where a pending update is needed early: a group's parameters are computed when the quantiser
 * enters it, from the group's current weights. Without act_order a group lies inside one block
 * (B is a multiple of g: both powers of two), so its weights are current. With act_order a group's
 * columns may lie in later blocks; their current value is Wp[r][p'] - sum_{t in [i1, p)}
 * Err[r][t - i1] U[t][p'], computed there and then.
 *
 * clip=1: the group's parameters come from tp_int4_clip_ref (weights: diag H of the group's
 * columns, dead channels 1) in place of tp_int4_minmax_ref, at the same moment, on the same values.
 *
 * Precision: double throughout (as the reference), so the only difference from the reference is
 * the summation order of the updates (relative ~1e-15): codes agree except where a weight sits
 * within that of a rounding boundary (then that row's later compensation differs slightly too).
 * Cost: rows x cols^2 multiply-adds in the dgemm, rows x cols x B / 2 in the blocks, cols^3 / 3
 * x 3 in the factorisations; the rows are independent (each row's codes depend only on that row and
 * H), so the in-block work is split into tasks of 16 rows over the worker pool. */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tenpak/gptq.h"

#define ROWS_PER_TASK 16

typedef struct gptq_job {
    tp_qmat *q;
    double *Wp;           /* rows x n, permuted columns */
    const double *U;      /* n x n upper factor, row-major */
    const int64_t *order; /* p -> original column */
    const int64_t *pos;   /* original column -> p */
    double *Err;          /* rows x B */
    int64_t n, B, i1, i2;
    const int64_t *enter; /* per p in the block: 1 when the quantiser enters order[p]'s group there */
    const double *wcol;   /* clip: each original column's weight (diag H, dead channels 1); NULL: min/max */
} gptq_job;

static void put_code(tp_qmat *q, int64_t r, int64_t c, int v) {
    uint8_t *b = &q->codes[r * q->code_stride + (c >> 1)];
    if (c & 1) *b = (uint8_t)((*b & 0x0f) | (v << 4));
    else *b = (uint8_t)((*b & 0xf0) | v);
}

/* one block for rows [task * ROWS_PER_TASK, ...) */
static void block_rows(void *ctx, int task, int ntasks) {
    (void)ntasks;
    const gptq_job *j = ctx;
    tp_qmat *q = j->q;
    const int64_t n = j->n, i1 = j->i1, i2 = j->i2, g = q->g;
    int64_t r0 = (int64_t)task * ROWS_PER_TASK, r1 = r0 + ROWS_PER_TASK < q->rows ? r0 + ROWS_PER_TASK : q->rows;
    float grp[4096]; /* g <= 4096 (the codec's bound; tp_gptq_cpu checks it) */
    for (int64_t r = r0; r < r1; r++) {
        double *w = j->Wp + r * n, *err = j->Err + r * j->B;
        for (int64_t p = i1; p < i2; p++) {
            int64_t col = j->order[p], gi = col / g, c0 = gi * g;
            size_t si = (size_t)(r * q->ngroups + gi);
            if (j->enter[p - i1]) {
                int gn = (int)(n - c0 < g ? n - c0 : g);
                for (int i = 0; i < gn; i++) {
                    int64_t pp = j->pos[c0 + i];
                    double v = w[pp];
                    if (pp >= i2) /* a later block's column: its pending updates from this block */
                        for (int64_t t = i1; t < p; t++) v -= err[t - i1] * j->U[t * n + pp];
                    grp[i] = (float)v;
                }
                if (j->wcol) tp_int4_clip_ref(grp, j->wcol + c0, gn, &q->scale[si], &q->offset[si]);
                else tp_int4_minmax_ref(grp, gn, &q->scale[si], &q->offset[si]);
            }
            float s = tp_f16_to_f32(q->scale[si]), o = tp_f16_to_f32(q->offset[si]);
            int code = tp_int4_code_ref(w[p], s, o);
            put_code(q, r, col, code);
            float qs = (float)code * s;
            float deq = qs + o;
            double e = (w[p] - (double)deq) / j->U[p * n + p];
            err[p - i1] = e;
            const double *u = j->U + p * n;
            for (int64_t p2 = p + 1; p2 < i2; p2++) w[p2] -= e * u[p2];
        }
    }
}

typedef struct { int64_t j; double d; } diag_key;
static int cmp_diag(const void *a, const void *b) {
    const diag_key *x = a, *y = b;
    if (x->d != y->d) return x->d > y->d ? -1 : 1; /* descending diagonal */
    return x->j < y->j ? -1 : x->j > y->j;         /* ties: lower index first (the reference's stable sort) */
}

tp_status tp_gptq_cpu(tp_qmat *q, const float *W, const double *H, int act_order, double damp, int clip, tp_err *e) {
    if (!q || q->kind != TP_Q_INT4 || q->rows <= 0 || q->cols <= 0 || q->g <= 0 || !q->codes || !q->scale || !q->offset)
        return tp_fail(e, TP_ERR_ARG, "gptq: the output must be an allocated int4 matrix");
    if (q->g > 4096) return tp_fail(e, TP_ERR_ARG, "gptq: group size %d above 4096", q->g);
    if (!(damp > 0 && damp <= 1)) return tp_fail(e, TP_ERR_ARG, "gptq: damp must be in (0, 1], got %g", damp);
    if (clip < 0 || clip > 1) return tp_fail(e, TP_ERR_ARG, "gptq: clip is 0 or 1, got %d", clip);
    const int64_t rows = q->rows, n = q->cols, B = q->g > TP_GPTQ_BLOCK ? q->g : TP_GPTQ_BLOCK;
    double *U = tp_alloc((size_t)(n * n) * sizeof *U), *Wp = tp_alloc((size_t)(rows * n) * sizeof *Wp);
    double *Err = tp_alloc((size_t)(rows * B) * sizeof *Err), *diag = malloc((size_t)n * sizeof *diag);
    int64_t *order = malloc((size_t)n * sizeof *order), *pos = malloc((size_t)n * sizeof *pos);
    int64_t *enter = malloc((size_t)B * sizeof *enter);
    unsigned char *entered = calloc((size_t)q->ngroups, 1);
    diag_key *keys = malloc((size_t)n * sizeof *keys);
    tp_status st = TP_OK;
    if (!U || !Wp || !Err || !diag || !order || !pos || !enter || !entered || !keys) {
        st = tp_fail(e, TP_ERR_NOMEM, "gptq: out of memory for a %lldx%lld matrix", (long long)rows, (long long)n);
        goto out;
    }
    for (int64_t j = 0; j < n; j++) {
        double d = H ? H[j * n + j] : 1.0;
        if (!isfinite(d)) {
            st = tp_fail(e, TP_ERR_ARG, "gptq: H[%lld][%lld] is not finite", (long long)j, (long long)j);
            goto out;
        }
        diag[j] = d == 0 ? 1.0 : d; /* a dead channel's diagonal becomes 1 */
    }
    for (int64_t j = 0; j < n; j++) keys[j] = (diag_key){j, diag[j]};
    if (act_order) qsort(keys, (size_t)n, sizeof *keys, cmp_diag);
    double mean = 0;
    for (int64_t j = 0; j < n; j++) {
        order[j] = keys[j].j;
        pos[order[j]] = j;
        mean += diag[j];
    }
    mean /= (double)n;
    /* A = P H P^T + damping (lower triangle is what dpotrf reads; fill all of it) */
    for (int64_t a = 0; a < n; a++)
        for (int64_t b = 0; b < n; b++) {
            int64_t ja = order[a], jb = order[b];
            double v = H ? H[ja * n + jb] : (double)(ja == jb);
            if (!isfinite(v)) {
                st = tp_fail(e, TP_ERR_ARG, "gptq: H[%lld][%lld] is not finite", (long long)ja, (long long)jb);
                goto out;
            }
            U[a * n + b] = ja == jb ? diag[ja] + damp * mean : v;
        }
    lapack_int info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', (lapack_int)n, U, (lapack_int)n);
    if (info != 0) {
        st = tp_fail(e, TP_ERR_ARG, "gptq: H + %g mean(diag H) I is not positive definite (pivot %lld of %lld): not a second moment X^T X",
                     damp, (long long)(info - 1), (long long)n);
        goto out;
    }
    info = LAPACKE_dpotri(LAPACK_ROW_MAJOR, 'L', (lapack_int)n, U, (lapack_int)n); /* lower triangle of A^-1 */
    if (info == 0) info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', (lapack_int)n, U, (lapack_int)n); /* A^-1 = M M^T */
    if (info != 0) {
        st = tp_fail(e, TP_ERR_ARG, "gptq: the inverse of the damped H is not positive definite in double precision (pivot %lld of %lld): raise damp",
                     (long long)(info - 1), (long long)n);
        goto out;
    }
    /* U = M^T: the upper factor, row p holding what the reference reads as M[.][p] */
    for (int64_t a = 0; a < n; a++)
        for (int64_t b = a + 1; b < n; b++) {
            U[a * n + b] = U[b * n + a];
            U[b * n + a] = 0;
        }
    for (int64_t r = 0; r < rows; r++)
        for (int64_t p = 0; p < n; p++) {
            int64_t j = order[p];
            Wp[r * n + p] = (H && H[j * n + j] == 0) ? 0.0 : (double)W[r * n + j]; /* dead channel: weight 0 */
        }
    memset(q->codes, 0, (size_t)(rows * q->code_stride));
    gptq_job job = {q, Wp, U, order, pos, Err, n, B, 0, 0, enter, clip ? diag : NULL};
    for (int64_t i1 = 0; i1 < n; i1 += B) {
        int64_t i2 = i1 + B < n ? i1 + B : n;
        for (int64_t p = i1; p < i2; p++) {
            int64_t gi = order[p] / q->g;
            enter[p - i1] = !entered[gi];
            entered[gi] = 1;
        }
        job.i1 = i1;
        job.i2 = i2;
        tp_pool_run((int)((rows + ROWS_PER_TASK - 1) / ROWS_PER_TASK), block_rows, &job);
        if (i2 < n) /* Wp[:, i2:] -= Err * U[i1:i2, i2:] */
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)(n - i2), (int)(i2 - i1), -1.0, Err,
                        (int)B, U + i1 * n + i2, (int)n, 1.0, Wp + i2, (int)n);
    }
out:
    tp_free(U);
    tp_free(Wp);
    tp_free(Err);
    free(diag);
    free(order);
    free(pos);
    free(enter);
    free(entered);
    free(keys);
    return st;
}
