/* Reference GPTQ into the int4 g-group format: the definition (include/tenpak/gptq.h states the
 * algorithm), written as plainly as possible in double precision. One column at a time; after each,
 * every not-yet-quantised column of the row is updated at once (no lazy batches, no BLAS).
 *
 * Why the update is right (GPTQ's Optimal Brain Quantization step, Frantar et al. 2022, eq. 3 and
 * section 3.3): with H the Hessian of ||(W - W^) X^T||^2 in one row's weights, quantising weight p to
 * w^ and letting the remaining weights F absorb the error optimally moves them by
 *     delta_F = -(w_p - w^) / [H_F^-1]_pp * [H_F^-1]_{p, F}
 * where H_F^-1 is the inverse Hessian of the columns still free. Removing column p from H_F^-1 is a
 * step of Gaussian elimination, so row p of the upper Cholesky factor U of H^-1 (H^-1 = U^T U) holds
 * exactly [H_F^-1]_{p, p..} / sqrt([H_F^-1]_pp), and the update becomes err = (w_p - w^) / U_pp,
 * w_{p'} -= err * U_{p p'} for p' > p: the loop below. */
/* clip=1: a group's (scale, offset) from tp_int4_clip_ref with the diagonal of H (dead channels 1)
 * as the weights of its columns, in place of tp_int4_minmax_ref (include/tenpak/gptq.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tenpak/gptq.h"

static void put_code(tp_qmat *q, int64_t r, int64_t c, int v) {
    uint8_t *b = &q->codes[r * q->code_stride + (c >> 1)];
    if (c & 1) *b = (uint8_t)((*b & 0x0f) | (v << 4));
    else *b = (uint8_t)((*b & 0xf0) | v);
}

/* Lower Cholesky factor of the n x n symmetric A in place (A = L L^T, upper part zeroed); returns
 * the first column whose pivot is not positive (or not finite), or -1. */
static int64_t chol_lower(double *A, int64_t n) {
    for (int64_t j = 0; j < n; j++) {
        double d = A[j * n + j];
        for (int64_t k = 0; k < j; k++) d -= A[j * n + k] * A[j * n + k];
        if (!(d > 0) || !isfinite(d)) return j;
        double l = sqrt(d);
        A[j * n + j] = l;
        for (int64_t i = j + 1; i < n; i++) {
            double s = A[i * n + j];
            for (int64_t k = 0; k < j; k++) s -= A[i * n + k] * A[j * n + k];
            A[i * n + j] = s / l;
        }
        for (int64_t i = 0; i < j; i++) A[i * n + j] = 0;
    }
    return -1;
}

tp_status tp_gptq_ref(tp_qmat *q, const float *W, const double *H, int act_order, double damp, int clip, tp_err *e) {
    if (!q || q->kind != TP_Q_INT4 || q->rows <= 0 || q->cols <= 0 || q->g <= 0 || !q->codes || !q->scale || !q->offset)
        return tp_fail(e, TP_ERR_ARG, "gptq: the output must be an allocated int4 matrix");
    if (!(damp > 0 && damp <= 1)) return tp_fail(e, TP_ERR_ARG, "gptq: damp must be in (0, 1], got %g", damp);
    if (clip < 0 || clip > 1) return tp_fail(e, TP_ERR_ARG, "gptq: clip is 0 or 1, got %d", clip);
    const int64_t rows = q->rows, n = q->cols;
    double *A = malloc((size_t)(n * n) * sizeof *A), *Wd = malloc((size_t)(rows * n) * sizeof *Wd);
    int64_t *order = malloc((size_t)n * sizeof *order);
    unsigned char *entered = calloc((size_t)q->ngroups, 1);
    float *grp = malloc((size_t)q->g * sizeof *grp);
    double *wcol = malloc((size_t)n * sizeof *wcol); /* clip: each column's weight, diag H (dead: 1) */
    tp_status st = TP_OK;
    if (!A || !Wd || !order || !entered || !grp || !wcol) {
        st = tp_fail(e, TP_ERR_NOMEM, "gptq: out of memory for a %lldx%lld matrix", (long long)rows, (long long)n);
        goto out;
    }
    double *Hd = malloc((size_t)(n * n) * sizeof *Hd);
    if (!Hd) { st = tp_fail(e, TP_ERR_NOMEM, "gptq: out of memory"); goto out; }
    for (int64_t i = 0; i < n * n; i++) {
        Hd[i] = H ? H[i] : (i / n == i % n);
        if (!isfinite(Hd[i])) {
            free(Hd);
            st = tp_fail(e, TP_ERR_ARG, "gptq: H[%lld][%lld] is not finite", (long long)(i / n), (long long)(i % n));
            goto out;
        }
    }
    for (int64_t i = 0; i < rows * n; i++) Wd[i] = W[i];
    /* dead input channels: nothing to preserve, their weights become 0 */
    for (int64_t j = 0; j < n; j++)
        if (Hd[j * n + j] == 0) {
            Hd[j * n + j] = 1;
            for (int64_t r = 0; r < rows; r++) Wd[r * n + j] = 0;
        }
    /* the order: stable insertion sort by descending diagonal (act_order), else the identity */
    for (int64_t p = 0; p < n; p++) {
        int64_t j = p, k = p;
        while (act_order && k > 0 && Hd[order[k - 1] * n + order[k - 1]] < Hd[j * n + j]) {
            order[k] = order[k - 1];
            k--;
        }
        order[k] = j;
    }
    double mean = 0;
    for (int64_t j = 0; j < n; j++) wcol[j] = Hd[j * n + j];
    for (int64_t j = 0; j < n; j++) mean += Hd[j * n + j];
    mean /= (double)n;
    for (int64_t a = 0; a < n; a++)
        for (int64_t b = 0; b < n; b++) A[a * n + b] = Hd[order[a] * n + order[b]] + (a == b ? damp * mean : 0.0);
    free(Hd);
    /* U: A = L L^T, A^-1 = L^-T L^-1, then A^-1 = M M^T (lower M) and U = M^T */
    int64_t bad = chol_lower(A, n);
    if (bad >= 0) {
        st = tp_fail(e, TP_ERR_ARG, "gptq: H + %g mean(diag H) I is not positive definite (pivot %lld of %lld): not a second moment X^T X",
                     damp, (long long)bad, (long long)n);
        goto out;
    }
    double *Li = calloc((size_t)(n * n), sizeof *Li); /* L^-1, lower, by forward substitution */
    if (!Li) { st = tp_fail(e, TP_ERR_NOMEM, "gptq: out of memory"); goto out; }
    for (int64_t c = 0; c < n; c++)
        for (int64_t i = c; i < n; i++) {
            double s = i == c ? 1.0 : 0.0;
            for (int64_t k = c; k < i; k++) s -= A[i * n + k] * Li[k * n + c];
            Li[i * n + c] = s / A[i * n + i];
        }
    for (int64_t a = 0; a < n; a++) /* A <- A^-1 = Li^T Li */
        for (int64_t b = 0; b < n; b++) {
            double s = 0;
            for (int64_t k = a > b ? a : b; k < n; k++) s += Li[k * n + a] * Li[k * n + b];
            A[a * n + b] = s;
        }
    free(Li);
    bad = chol_lower(A, n);
    if (bad >= 0) {
        st = tp_fail(e, TP_ERR_ARG, "gptq: the inverse of the damped H is not positive definite in double precision (pivot %lld of %lld): raise damp",
                     (long long)bad, (long long)n);
        goto out;
    }
    /* U[p][p'] = M[p'][p] */
    memset(q->codes, 0, (size_t)(rows * q->code_stride));
    for (int64_t p = 0; p < n; p++) {
        int64_t j = order[p], gi = j / q->g, c0 = gi * q->g;
        int gn = (int)(n - c0 < q->g ? n - c0 : q->g);
        if (!entered[gi]) { /* the group's parameters, from its current weights */
            entered[gi] = 1;
            for (int64_t r = 0; r < rows; r++) {
                for (int i = 0; i < gn; i++) grp[i] = (float)Wd[r * n + c0 + i];
                if (clip) tp_int4_clip_ref(grp, wcol + c0, gn, &q->scale[r * q->ngroups + gi], &q->offset[r * q->ngroups + gi]);
                else tp_int4_minmax_ref(grp, gn, &q->scale[r * q->ngroups + gi], &q->offset[r * q->ngroups + gi]);
            }
        }
        double upp = A[p * n + p];
        for (int64_t r = 0; r < rows; r++) {
            float s = tp_f16_to_f32(q->scale[r * q->ngroups + gi]), o = tp_f16_to_f32(q->offset[r * q->ngroups + gi]);
            int code = tp_int4_code_ref(Wd[r * n + j], s, o);
            put_code(q, r, j, code);
            float qs = (float)code * s;
            float deq = qs + o; /* the format's value: one fp32 rounding (quant.h) */
            double err = (Wd[r * n + j] - (double)deq) / upp;
            for (int64_t p2 = p + 1; p2 < n; p2++) Wd[r * n + order[p2]] -= err * A[p2 * n + p];
        }
    }
out:
    free(A);
    free(Wd);
    free(order);
    free(entered);
    free(grp);
    free(wcol);
    return st;
}
