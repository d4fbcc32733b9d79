/* The VQ format (definitions in include/tenpak/vq.h): storage, the column-major copy of the codes
 * (tp_vq_prepare), packing, the vectors and importance of a matrix, and the vq+int4 storage. The
 * k-means trainer is in common/kmeans.c, nearest centroid / decode / GEMV in reference/vq_ref.c
 * and kernels/cpu. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tenpak/vq.h"

/* ---- storage ---- */
tp_status tp_vq_alloc(tp_vqmat *m, int64_t rows, int64_t cols, int d, int K) {
    memset(m, 0, sizeof *m);
    if (rows <= 0 || cols <= 0 || d <= 0 || K <= 0 || K > 65536) return TP_ERR_ARG;
    m->rows = rows;
    m->cols = cols;
    m->d = d;
    m->K = K;
    m->nvec = (cols + d - 1) / d;
    size_t nc = (size_t)(rows * m->nvec);
    m->codebook = tp_alloc((size_t)K * (size_t)d * sizeof(float));
    if (K <= 256) m->codes8 = tp_alloc(nc + 8);
    else m->codes16 = tp_alloc(2 * nc + 16);
    if (!m->codebook || (!m->codes8 && !m->codes16)) {
        tp_vq_free(m);
        return TP_ERR_NOMEM;
    }
    memset(m->codebook, 0, (size_t)K * (size_t)d * sizeof(float));
    if (m->codes8) memset(m->codes8, 0, nc + 8);
    else memset(m->codes16, 0, 2 * nc + 16);
    return TP_OK;
}

void tp_vq_free(tp_vqmat *m) {
    tp_vq_unprepare(m);
    tp_free(m->codebook);
    tp_free(m->codes8);
    tp_free(m->codes16);
    memset(m, 0, sizeof *m);
}

void tp_vq_unprepare(tp_vqmat *m) {
    tp_free(m->codes8t);
    tp_free(m->cb16);
    m->codes8t = NULL;
    m->cb16 = NULL;
    m->rows_t = 0;
}

tp_status tp_vq_prepare(tp_vqmat *m) {
    tp_vq_unprepare(m);
    if (!m->codes8) return TP_OK;
    const int64_t rt = (m->rows + 63) / 64 * 64, nvec = m->nvec;
    m->codes8t = tp_alloc((size_t)(nvec * rt));
    if (!m->codes8t) return TP_ERR_NOMEM;
    const int nb16 = (m->K + 15) / 16;
    m->cb16 = tp_alloc((size_t)nb16 * (size_t)m->d * 16 * sizeof(float));
    if (!m->cb16) {
        tp_vq_unprepare(m);
        return TP_ERR_NOMEM;
    }
    for (int b = 0; b < nb16; b++)
        for (int j = 0; j < m->d; j++)
            for (int l = 0; l < 16; l++) {
                const int k = 16 * b + l;
                m->cb16[((size_t)b * m->d + j) * 16 + l] = k < m->K ? m->codebook[(size_t)k * m->d + j] : 0.0f;
            }
    m->rows_t = rt;
    memset(m->codes8t, 0, (size_t)(nvec * rt));
    /* in 64 x 64 tiles, so both sides stay in cache */
    for (int64_t r0 = 0; r0 < m->rows; r0 += 64)
        for (int64_t v0 = 0; v0 < nvec; v0 += 64) {
            const int64_t r1 = r0 + 64 < m->rows ? r0 + 64 : m->rows, v1 = v0 + 64 < nvec ? v0 + 64 : nvec;
            for (int64_t v = v0; v < v1; v++)
                for (int64_t r = r0; r < r1; r++) m->codes8t[v * rt + r] = m->codes8[r * nvec + v];
        }
    return TP_OK;
}

int tp_vq_code_bits(int K) {
    int b = 1;
    while ((1 << b) < K) b++;
    return b;
}

size_t tp_vq_bytes_for(int64_t rows, int64_t cols, int d, int K) {
    int64_t nvec = (cols + d - 1) / d;
    uint64_t bits = (uint64_t)(rows * nvec) * (uint64_t)tp_vq_code_bits(K);
    return (size_t)K * (size_t)d * 2 + (size_t)((bits + 7) / 8);
}
size_t tp_vq_bytes(const tp_vqmat *m) { return tp_vq_bytes_for(m->rows, m->cols, m->d, m->K); }

void tp_vq_pack(const tp_vqmat *m, void *dst) {
    uint8_t *o = dst;
    for (int64_t i = 0; i < (int64_t)m->K * m->d; i++) {
        uint16_t h = tp_f32_to_f16(m->codebook[i]);
        o[2 * i] = (uint8_t)h;
        o[2 * i + 1] = (uint8_t)(h >> 8);
    }
    o += (size_t)m->K * (size_t)m->d * 2;
    const int b = tp_vq_code_bits(m->K);
    const int64_t n = m->rows * m->nvec;
    size_t nbytes = (size_t)(((uint64_t)n * (uint64_t)b + 7) / 8);
    memset(o, 0, nbytes);
    uint64_t pos = 0;
    for (int64_t i = 0; i < n; i++, pos += (uint64_t)b) {
        uint32_t c = m->codes8 ? m->codes8[i] : m->codes16[i];
        for (int k = 0; k < b; k++)
            if (c >> k & 1) o[(pos + (uint64_t)k) >> 3] |= (uint8_t)(1u << ((pos + (uint64_t)k) & 7));
    }
}

void tp_vq_unpack(tp_vqmat *m, const void *src) {
    tp_vq_unprepare(m);
    const uint8_t *s = src;
    for (int64_t i = 0; i < (int64_t)m->K * m->d; i++)
        m->codebook[i] = tp_f16_to_f32((uint16_t)(s[2 * i] | s[2 * i + 1] << 8));
    s += (size_t)m->K * (size_t)m->d * 2;
    const int b = tp_vq_code_bits(m->K);
    const int64_t n = m->rows * m->nvec;
    uint64_t pos = 0;
    for (int64_t i = 0; i < n; i++, pos += (uint64_t)b) {
        uint32_t c = 0;
        for (int k = 0; k < b; k++) c |= (uint32_t)(s[(pos + (uint64_t)k) >> 3] >> ((pos + (uint64_t)k) & 7) & 1) << k;
        if (m->codes8) m->codes8[i] = (uint8_t)c;
        else m->codes16[i] = (uint16_t)c;
    }
}

/* ---- vectors and importance ---- */
void tp_vq_vectors(const float *W, int64_t rows, int64_t cols, int d, float *V) {
    int64_t nvec = (cols + d - 1) / d;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t v = 0; v < nvec; v++)
            for (int j = 0; j < d; j++) {
                int64_t c = v * d + j;
                V[(r * nvec + v) * d + j] = c < cols ? W[r * cols + c] : 0.0f;
            }
}

void tp_vq_importance(const float *W, int64_t rows, int64_t cols, int d, float *imp) {
    int64_t nvec = (cols + d - 1) / d;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t v = 0; v < nvec; v++) {
            double s = 0;
            int n = 0;
            for (int j = 0; j < d && v * d + j < cols; j++, n++) s += fabs((double)W[r * cols + v * d + j]);
            /* floor: an all-zero vector still counts a little, so no cluster weighs exactly 0 */
            imp[r * nvec + v] = (float)(s / n) + 1e-20f;
        }
}

/* ---- vq + INT4 residual ---- */
tp_status tp_vqr_alloc(tp_vqr *m, int64_t rows, int64_t cols, int d, int K, int g) {
    memset(m, 0, sizeof *m);
    tp_status st = tp_vq_alloc(&m->vq, rows, cols, d, K);
    if (st == TP_OK) st = tp_qmat_alloc(&m->res, TP_Q_INT4, rows, cols, g);
    if (st != TP_OK) tp_vqr_free(m);
    return st;
}
void tp_vqr_free(tp_vqr *m) {
    tp_vq_free(&m->vq);
    if (m->res.codes) tp_qmat_free(&m->res);
    memset(m, 0, sizeof *m);
}
size_t tp_vqr_bytes(const tp_vqr *m) { return tp_vq_bytes(&m->vq) + tp_qmat_bytes(&m->res); }
size_t tp_vqr_bytes_for(int64_t rows, int64_t cols, int d, int K, int g) {
    return tp_vq_bytes_for(rows, cols, d, K) +
           (size_t)llround(tp_qkind_bits_per_weight(TP_Q_INT4, g, rows, cols) * (double)(rows * cols) / 8.0);
}
