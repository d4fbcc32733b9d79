/* Reference for vector quantisation: storage and packing, the k-means codebook trainer, nearest
 * centroid, decode and GEMV, and the vq+int4 residual codec. Definitions: include/tenpak/vq.h.
 *
 * The k-means driver (tp_kmeans_run) is shared with the cpu backend, which plugs in its threaded
 * SIMD assignment through tp_kmeans_hooks; every hook computes exactly the reference's numbers
 * (same fp32 operations, sums in double in a fixed order), so the trained codebook is the same
 * bit for bit whichever backend and however many threads ran it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reference/vq_internal.h"

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
    m->codes8t = NULL;
    m->rows_t = 0;
}

tp_status tp_vq_prepare(tp_vqmat *m) {
    tp_vq_unprepare(m);
    if (!m->codes8) return TP_OK;
    const int64_t rt = (m->rows + 63) / 64 * 64, nvec = m->nvec;
    m->codes8t = tp_alloc((size_t)(nvec * rt));
    if (!m->codes8t) return TP_ERR_NOMEM;
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

/* Sums of chunk [c0, c1) into cs (K x (d+1): d weighted coordinate sums then the weight);
 * returns the chunk's weighted distortion. cs is zeroed first. */
double tp_kmeans_chunk_sums(const float *T, const float *w, const int32_t *code, const float *dist,
                            int64_t c0, int64_t c1, int d, int K, double *cs) {
    memset(cs, 0, (size_t)K * (size_t)(d + 1) * sizeof(double));
    double dd = 0;
    for (int64_t i = c0; i < c1; i++) {
        double wi = w ? w[i] : 1.0;
        double *s = cs + (size_t)code[i] * (size_t)(d + 1);
        for (int j = 0; j < d; j++) s[j] += wi * T[i * d + j];
        s[d] += wi;
        dd += wi * dist[i];
    }
    return dd;
}
void tp_kmeans_chunk_add(const double *cs, int d, int K, double *S, double *Wk) {
    for (int k = 0; k < K; k++) {
        for (int j = 0; j < d; j++) S[(size_t)k * d + j] += cs[(size_t)k * (d + 1) + j];
        Wk[k] += cs[(size_t)k * (d + 1) + d];
    }
}

/* ---- the k-means driver ---- */
tp_status tp_kmeans_run(const float *V, int64_t n, int d, int K, const float *weights,
                        const tp_kmeans_opts *o, float *codebook, tp_kmeans_stats *st,
                        const tp_kmeans_hooks *h) {
    tp_kmeans_opts opt = o ? *o : (tp_kmeans_opts){0};
    if (opt.max_iters <= 0) opt.max_iters = 25;
    if (opt.tol <= 0) opt.tol = 1e-4;
    if (opt.max_train == 0) opt.max_train = 262144;
    tp_kmeans_stats stats = {0, 0, 0};
    if (n <= 0 || d <= 0 || K <= 0) return TP_ERR_ARG;
    tp_rng rng;
    tp_rng_seed(&rng, opt.seed ^ 0x6b6d65616e73ull);
    int64_t m = opt.max_train < 0 || n < opt.max_train ? n : opt.max_train;

    /* training sample, in a seeded random order (partial Fisher-Yates) */
    int64_t *idx = malloc((size_t)n * sizeof *idx);
    float *T = malloc((size_t)(m * d) * sizeof(float));
    float *w = weights ? malloc((size_t)m * sizeof(float)) : NULL;
    int32_t *code = malloc((size_t)m * sizeof(int32_t)), *prev = malloc((size_t)m * sizeof(int32_t));
    float *dist = malloc((size_t)m * sizeof(float));
    double *S = malloc((size_t)K * (size_t)d * sizeof(double)), *Wk = malloc((size_t)K * sizeof(double));
    tp_status rc = TP_OK;
    if (!idx || !T || (weights && !w) || !code || !prev || !dist || !S || !Wk) {
        rc = TP_ERR_NOMEM;
        goto done;
    }
    for (int64_t i = 0; i < n; i++) idx[i] = i;
    for (int64_t i = 0; i < m; i++) {
        int64_t j = i + (int64_t)(tp_rng_next(&rng) % (uint64_t)(n - i));
        int64_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
        memcpy(T + i * d, V + idx[i] * d, (size_t)d * sizeof(float));
        if (w) w[i] = weights[idx[i]];
    }

    if (m <= K) {
        /* no more vectors than centroids: the vectors are the codebook */
        for (int k = 0; k < K; k++) memcpy(codebook + (size_t)k * d, T + (k % m) * d, (size_t)d * sizeof(float));
        goto round;
    }

    /* k-means++ on the first mi vectors of the sample: D^2 (x weight) sampling */
    {
        int64_t mi = m < 65536 ? m : 65536;
        if (mi < 16 * (int64_t)K) mi = m < 16 * (int64_t)K ? m : 16 * (int64_t)K;
        double tot = 0;
        for (int64_t i = 0; i < mi; i++) tot += w ? w[i] : 1.0;
        double u = tp_rng_uniform(&rng) * tot, acc = 0;
        int64_t pick = mi - 1;
        for (int64_t i = 0; i < mi; i++) {
            acc += w ? w[i] : 1.0;
            if (acc > u) { pick = i; break; }
        }
        memcpy(codebook, T + pick * d, (size_t)d * sizeof(float));
        for (int64_t i = 0; i < mi; i++) dist[i] = INFINITY;
        h->mindist(h->ctx, T, mi, d, codebook, dist);
        for (int k = 1; k < K; k++) {
            tot = 0;
            for (int64_t i = 0; i < mi; i++) tot += (w ? w[i] : 1.0) * dist[i];
            pick = -1;
            if (tot > 0) {
                u = tp_rng_uniform(&rng) * tot;
                acc = 0;
                for (int64_t i = 0; i < mi; i++) {
                    acc += (w ? w[i] : 1.0) * dist[i];
                    if (acc > u && dist[i] > 0) { pick = i; break; }
                }
                if (pick < 0) /* rounding at the very end of the sum: the last positive one */
                    for (int64_t i = mi - 1; i >= 0 && pick < 0; i--)
                        if (dist[i] > 0) pick = i;
            }
            if (pick < 0) pick = (int64_t)(tp_rng_next(&rng) % (uint64_t)mi); /* all covered */
            memcpy(codebook + (size_t)k * d, T + pick * d, (size_t)d * sizeof(float));
            h->mindist(h->ctx, T, mi, d, codebook + (size_t)k * d, dist);
        }
    }

    /* Lloyd */
    {
        double prev_dist = INFINITY;
        for (int64_t i = 0; i < m; i++) prev[i] = -1;
        for (int it = 0; it < opt.max_iters; it++) {
            if ((rc = h->assign(h->ctx, T, m, d, K, codebook, code, dist)) != TP_OK) goto done;
            int64_t changed = 0;
            for (int64_t i = 0; i < m; i++) changed += code[i] != prev[i];
            memcpy(prev, code, (size_t)m * sizeof(int32_t));
            memset(S, 0, (size_t)K * (size_t)d * sizeof(double));
            memset(Wk, 0, (size_t)K * sizeof(double));
            double dd = 0, wsum = 0;
            if ((rc = h->sums(h->ctx, T, w, code, dist, m, d, K, S, Wk, &dd)) != TP_OK) goto done;
            for (int k = 0; k < K; k++) wsum += Wk[k];
            double cur = wsum > 0 ? dd / wsum : 0;
            stats.iters = it + 1;
            stats.distortion = cur;
            for (int k = 0; k < K; k++)
                if (Wk[k] > 0)
                    for (int j = 0; j < d; j++) codebook[(size_t)k * d + j] = (float)(S[(size_t)k * d + j] / Wk[k]);
            /* empty clusters: re-seed each with the vector farthest from its centroid (weighted),
             * each vector used once */
            for (int k = 0; k < K; k++) {
                if (Wk[k] > 0) continue;
                int64_t far = -1;
                double fd = -1;
                for (int64_t i = 0; i < m; i++) {
                    double e = (w ? w[i] : 1.0) * dist[i];
                    if (dist[i] >= 0 && e > fd) { fd = e; far = i; }
                }
                if (far < 0) break;
                memcpy(codebook + (size_t)k * d, T + far * d, (size_t)d * sizeof(float));
                dist[far] = -1.0f;
                stats.reseeded++;
            }
            if (changed == 0) break;
            if (prev_dist - cur <= opt.tol * cur) break;
            prev_dist = cur;
        }
    }

round:
    for (int64_t i = 0; i < (int64_t)K * d; i++) codebook[i] = tp_f16_to_f32(tp_f32_to_f16(codebook[i]));
done:
    free(idx);
    free(T);
    free(w);
    free(code);
    free(prev);
    free(dist);
    free(S);
    free(Wk);
    if (st) *st = stats;
    return rc;
}

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

