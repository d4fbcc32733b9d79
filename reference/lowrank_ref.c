/* Reference for low rank and tenpakx: the product, GEMV and decode by their definitions
 * (include/tenpak/lowrank.h); storage and the SVD fit: common/lowrank.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reference/vq_internal.h"
#include "tenpak/lowrank.h"

void tp_lowrank_product_ref(const tp_lowrank *m, float *W) {
    for (int64_t i = 0; i < m->rows; i++)
        for (int64_t j = 0; j < m->cols; j++) {
            float acc = 0.0f;
            for (int t = 0; t < m->rank; t++) acc = fmaf(m->L[i * m->rank + t], m->R[t * m->cols + j], acc);
            W[i * m->cols + j] = acc;
        }
}

tp_status tp_lowrank_gemv_ref(const tp_lowrank *m, const float *x, float *y) {
    double *t = malloc((size_t)m->rank * sizeof(double));
    if (!t) return TP_ERR_NOMEM;
    for (int k = 0; k < m->rank; k++) {
        double s = 0;
        for (int64_t c = 0; c < m->cols; c++) s += (double)m->R[k * m->cols + c] * x[c];
        t[k] = s;
    }
    for (int64_t i = 0; i < m->rows; i++) {
        double s = 0;
        for (int k = 0; k < m->rank; k++) s += (double)m->L[i * m->rank + k] * t[k];
        y[i] = (float)s;
    }
    free(t);
    return TP_OK;
}

/* ---- tenpakx ---- */
tp_status tp_tenpakx_decode_ref(const tp_tenpakx *m, float *W) {
    const int64_t n = m->lr.rows * m->lr.cols;
    float *V = malloc((size_t)n * sizeof(float)), *R = malloc((size_t)n * sizeof(float));
    if (!V || !R) {
        free(V);
        free(R);
        return TP_ERR_NOMEM;
    }
    tp_lowrank_product_ref(&m->lr, W);
    tp_vq_decode_ref(&m->vq, V);
    tp_dequantize_ref(&m->res, R);
    for (int64_t i = 0; i < n; i++) W[i] = (W[i] + V[i]) + R[i];
    free(V);
    free(R);
    return TP_OK;
}

static tp_status tenpakx_decode(const void *m, float *W) { return tp_tenpakx_decode_ref(m, W); }
tp_status tp_tenpakx_gemv_ref(const tp_tenpakx *m, const float *x, float *y) {
    return tp_gemv_decoded_ref(tenpakx_decode, m, m->lr.rows, m->lr.cols, x, y);
}
