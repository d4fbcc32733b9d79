/* Reference for vector quantisation: nearest centroid, the k-means hooks that make tp_kmeans_ref
 * (the shared driver, common/kmeans.c, with these), encode, decode and GEMV, and the vq+int4
 * decode and GEMV. Definitions: include/tenpak/vq.h; storage: common/vq.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reference/vq_internal.h"

/* ---- nearest centroid: the definition ---- */
float tp_vq_dist_ref(const float *x, const float *c, int d) {
    float dist = 0.0f;
    for (int j = 0; j < d; j++) {
        float t = x[j] - c[j];
        dist = fmaf(t, t, dist);
    }
    return dist;
}

int tp_vq_nearest_ref(const float *x, const float *codebook, int K, int d) {
    float best = INFINITY;
    int bi = 0;
    for (int k = 0; k < K; k++) {
        float dist = tp_vq_dist_ref(x, codebook + (size_t)k * d, d);
        if (dist < best) {
            best = dist;
            bi = k;
        }
    }
    return bi;
}

static tp_status assign_ref(void *ctx, const float *T, int64_t m, int d, int K, const float *cb,
                            int32_t *code, float *dist) {
    (void)ctx;
    for (int64_t i = 0; i < m; i++) {
        code[i] = tp_vq_nearest_ref(T + i * d, cb, K, d);
        dist[i] = tp_vq_dist_ref(T + i * d, cb + (size_t)code[i] * d, d);
    }
    return TP_OK;
}
static void mindist_ref(void *ctx, const float *T, int64_t m, int d, const float *c, float *D) {
    (void)ctx;
    for (int64_t i = 0; i < m; i++) {
        float t = tp_vq_dist_ref(T + i * d, c, d);
        if (t < D[i]) D[i] = t;
    }
}
/* per-chunk double sums, chunk by chunk in order */
static tp_status sums_ref(void *ctx, const float *T, const float *w, const int32_t *code, const float *dist,
                          int64_t m, int d, int K, double *S, double *Wk, double *distortion) {
    (void)ctx;
    double *cs = calloc((size_t)K * (size_t)(d + 1), sizeof(double));
    if (!cs) return TP_ERR_NOMEM;
    for (int64_t c0 = 0; c0 < m; c0 += TP_KMEANS_CHUNK) {
        int64_t c1 = c0 + TP_KMEANS_CHUNK < m ? c0 + TP_KMEANS_CHUNK : m;
        double dd = tp_kmeans_chunk_sums(T, w, code, dist, c0, c1, d, K, cs);
        tp_kmeans_chunk_add(cs, d, K, S, Wk);
        *distortion += dd;
    }
    free(cs);
    return TP_OK;
}

const tp_kmeans_hooks tp_kmeans_hooks_ref = {assign_ref, mindist_ref, sums_ref, NULL};

tp_status tp_kmeans_ref(const float *V, int64_t n, int d, int K, const float *weights,
                        const tp_kmeans_opts *o, float *codebook, tp_kmeans_stats *st) {
    return tp_kmeans_run(V, n, d, K, weights, o, codebook, st, &tp_kmeans_hooks_ref);
}

/* ---- encode / decode / gemv ---- */
tp_status tp_vq_encode_ref(tp_vqmat *m, const float *W) {
    tp_vq_unprepare(m);
    float x[64];
    const int d = m->d;
    float *xv = d <= 64 ? x : malloc((size_t)d * sizeof(float));
    if (!xv) return TP_ERR_NOMEM;
    for (int64_t r = 0; r < m->rows; r++)
        for (int64_t v = 0; v < m->nvec; v++) {
            for (int j = 0; j < d; j++) {
                int64_t c = v * d + j;
                xv[j] = c < m->cols ? W[r * m->cols + c] : 0.0f;
            }
            int k = tp_vq_nearest_ref(xv, m->codebook, m->K, d);
            size_t i = (size_t)(r * m->nvec + v);
            if (m->codes8) m->codes8[i] = (uint8_t)k;
            else m->codes16[i] = (uint16_t)k;
        }
    if (xv != x) free(xv);
    return TP_OK;
}

void tp_vq_decode_ref(const tp_vqmat *m, float *W) {
    for (int64_t r = 0; r < m->rows; r++)
        for (int64_t c = 0; c < m->cols; c++)
            W[r * m->cols + c] = m->codebook[(size_t)tp_vq_code(m, r, c / m->d) * m->d + c % m->d];
}

void tp_vq_gemv_ref(const tp_vqmat *m, const float *x, float *y) {
    for (int64_t r = 0; r < m->rows; r++) {
        double acc = 0;
        for (int64_t c = 0; c < m->cols; c++)
            acc += (double)m->codebook[(size_t)tp_vq_code(m, r, c / m->d) * m->d + c % m->d] * x[c];
        y[r] = (float)acc;
    }
}

/* ---- vq + INT4 residual ---- */
tp_status tp_vqr_decode_ref(const tp_vqr *m, float *W) {
    const int64_t n = m->vq.rows * m->vq.cols;
    float *R = malloc((size_t)n * sizeof(float));
    if (!R) return TP_ERR_NOMEM;
    tp_vq_decode_ref(&m->vq, W);
    tp_dequantize_ref(&m->res, R);
    for (int64_t i = 0; i < n; i++) W[i] = W[i] + R[i];
    free(R);
    return TP_OK;
}

tp_status tp_gemv_decoded_ref(tp_status (*decode)(const void *m, float *W), const void *m, int64_t rows,
                              int64_t cols, const float *x, float *y) {
    float *D = malloc((size_t)(rows * cols) * sizeof(float));
    if (!D || decode(m, D) != TP_OK) {
        free(D);
        return TP_ERR_NOMEM;
    }
    for (int64_t r = 0; r < rows; r++) {
        double acc = 0;
        for (int64_t c = 0; c < cols; c++) acc += (double)D[r * cols + c] * x[c];
        y[r] = (float)acc;
    }
    free(D);
    return TP_OK;
}

static tp_status vqr_decode(const void *m, float *W) { return tp_vqr_decode_ref(m, W); }
tp_status tp_vqr_gemv_ref(const tp_vqr *m, const float *x, float *y) {
    return tp_gemv_decoded_ref(vqr_decode, m, m->vq.rows, m->vq.cols, x, y);
}

