/* Low rank and tenpakx (definitions in include/tenpak/lowrank.h): storage (alloc / free / byte
 * count / fp16 pack / unpack), the column importance, and the fit (truncated SVD through
 * LAPACKE). The products and decodes are in reference/lowrank_ref.c and kernels/cpu. */
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tenpak/lowrank.h"

tp_status tp_lowrank_alloc(tp_lowrank *m, int64_t rows, int64_t cols, int rank) {
    memset(m, 0, sizeof *m);
    if (rows <= 0 || cols <= 0 || rank <= 0) return TP_ERR_ARG;
    m->rows = rows;
    m->cols = cols;
    m->rank = rank;
    m->L = tp_alloc((size_t)(rows * rank) * sizeof(float));
    m->R = tp_alloc((size_t)(rank * cols) * sizeof(float));
    if (!m->L || !m->R) {
        tp_lowrank_free(m);
        return TP_ERR_NOMEM;
    }
    memset(m->L, 0, (size_t)(rows * rank) * sizeof(float));
    memset(m->R, 0, (size_t)(rank * cols) * sizeof(float));
    return TP_OK;
}

void tp_lowrank_free(tp_lowrank *m) {
    tp_free(m->L);
    tp_free(m->R);
    memset(m, 0, sizeof *m);
}

size_t tp_lowrank_bytes_for(int64_t rows, int64_t cols, int rank) { return 2 * (size_t)rank * (size_t)(rows + cols); }
size_t tp_lowrank_bytes(const tp_lowrank *m) { return tp_lowrank_bytes_for(m->rows, m->cols, m->rank); }

static void put16(uint8_t *o, const float *v, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = tp_f32_to_f16(v[i]);
        o[2 * i] = (uint8_t)h;
        o[2 * i + 1] = (uint8_t)(h >> 8);
    }
}
static void get16(const uint8_t *s, float *v, int64_t n) {
    for (int64_t i = 0; i < n; i++) v[i] = tp_f16_to_f32((uint16_t)(s[2 * i] | s[2 * i + 1] << 8));
}
void tp_lowrank_pack(const tp_lowrank *m, void *dst) {
    put16(dst, m->L, m->rows * m->rank);
    put16((uint8_t *)dst + 2 * m->rows * m->rank, m->R, m->rank * m->cols);
}
void tp_lowrank_unpack(tp_lowrank *m, const void *src) {
    get16(src, m->L, m->rows * m->rank);
    get16((const uint8_t *)src + 2 * m->rows * m->rank, m->R, m->rank * m->cols);
}

tp_status tp_col_importance(const float *W, int64_t rows, int64_t cols, float *imp) {
    double *s = calloc((size_t)cols, sizeof(double));
    if (!s) return TP_ERR_NOMEM;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) s[c] += fabs((double)W[r * cols + c]);
    double mean = 0;
    for (int64_t c = 0; c < cols; c++) mean += s[c] / (double)rows / (double)cols;
    for (int64_t c = 0; c < cols; c++) {
        double v = s[c] / (double)rows;
        /* floor at 1e-3 of the mean column: a dead column must not divide by ~0 when unscaling */
        imp[c] = (float)(v > 1e-3 * mean ? v : 1e-3 * mean + 1e-30);
    }
    free(s);
    return TP_OK;
}

static float round16(float v) { return tp_f16_to_f32(tp_f32_to_f16(v)); }

tp_status tp_lowrank_fit(tp_lowrank *m, const float *W, const float *imp, tp_err *e) {
    const int64_t rows = m->rows, cols = m->cols, mn = rows < cols ? rows : cols;
    const int k = m->rank < mn ? m->rank : (int)mn;
    float *A = malloc((size_t)(rows * cols) * sizeof(float));
    float *S = malloc((size_t)mn * sizeof(float));
    float *U = malloc((size_t)(rows * mn) * sizeof(float));
    float *VT = malloc((size_t)(mn * cols) * sizeof(float));
    tp_status st = TP_OK;
    if (!A || !S || !U || !VT) {
        st = tp_fail(e, TP_ERR_NOMEM, "lowrank: out of memory for a %lldx%lld SVD", (long long)rows, (long long)cols);
        goto done;
    }
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) A[r * cols + c] = W[r * cols + c] * (imp ? imp[c] : 1.0f);
    lapack_int info = LAPACKE_sgesdd(LAPACK_ROW_MAJOR, 'S', (lapack_int)rows, (lapack_int)cols, A,
                                     (lapack_int)cols, S, U, (lapack_int)mn, VT, (lapack_int)cols);
    if (info != 0) {
        st = tp_fail(e, TP_ERR_INTERNAL, "lowrank: sgesdd failed (info %d)", (int)info);
        goto done;
    }
    memset(m->L, 0, (size_t)(rows * m->rank) * sizeof(float));
    memset(m->R, 0, (size_t)(m->rank * cols) * sizeof(float));
    for (int t = 0; t < k; t++) {
        float sq = sqrtf(S[t] > 0 ? S[t] : 0);
        for (int64_t r = 0; r < rows; r++) m->L[r * m->rank + t] = round16(U[r * mn + t] * sq);
        for (int64_t c = 0; c < cols; c++) m->R[t * cols + c] = round16(VT[t * cols + c] * sq / (imp ? imp[c] : 1.0f));
    }
done:
    free(A);
    free(S);
    free(U);
    free(VT);
    return st;
}

/* ---- tenpakx ---- */
static tp_tenpakx_cfg cfg_defaults(const tp_tenpakx_cfg *c) {
    tp_tenpakx_cfg o = c ? *c : (tp_tenpakx_cfg){0};
    if (o.rank <= 0) o.rank = 32;
    if (o.d <= 0) o.d = 4;
    if (o.K <= 0) o.K = 256;
    if (o.g <= 0) o.g = 32;
    return o;
}

tp_status tp_tenpakx_alloc(tp_tenpakx *m, int64_t rows, int64_t cols, const tp_tenpakx_cfg *cfg) {
    tp_tenpakx_cfg c = cfg_defaults(cfg);
    memset(m, 0, sizeof *m);
    tp_status st = tp_lowrank_alloc(&m->lr, rows, cols, c.rank);
    if (st == TP_OK) st = tp_vq_alloc(&m->vq, rows, cols, c.d, c.K);
    if (st == TP_OK) st = tp_qmat_alloc(&m->res, TP_Q_INT4, rows, cols, c.g);
    if (st != TP_OK) tp_tenpakx_free(m);
    return st;
}

void tp_tenpakx_free(tp_tenpakx *m) {
    tp_lowrank_free(&m->lr);
    tp_vq_free(&m->vq);
    if (m->res.codes) tp_qmat_free(&m->res);
    memset(m, 0, sizeof *m);
}

size_t tp_tenpakx_bytes(const tp_tenpakx *m) {
    return tp_lowrank_bytes(&m->lr) + tp_vq_bytes(&m->vq) + tp_qmat_bytes(&m->res);
}
size_t tp_tenpakx_bytes_for(int64_t rows, int64_t cols, const tp_tenpakx_cfg *cfg) {
    tp_tenpakx_cfg c = cfg_defaults(cfg);
    return tp_lowrank_bytes_for(rows, cols, c.rank) + tp_vq_bytes_for(rows, cols, c.d, c.K) +
           (size_t)llround(tp_qkind_bits_per_weight(TP_Q_INT4, c.g, rows, cols) * (double)(rows * cols) / 8.0);
}
