/* The k-means codebook trainer (algorithm in include/tenpak/vq.h, tp_kmeans_ref), shared by the
 * reference and the cpu backend, which plug in their assignment through tp_kmeans_hooks
 * (common/kmeans.h); every hook computes exactly the reference's numbers (same fp32 operations,
 * sums in double in a fixed order), so the trained codebook is the same bit for bit whichever
 * backend and however many threads ran it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/kmeans.h"

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
