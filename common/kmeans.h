/* Internal to the VQ family: the k-means driver (common/kmeans.c) shared by the reference and the
 * cpu backend. The driver owns the algorithm (sampling, k-means++, Lloyd, re-seeding, stop rule);
 * the hooks only compute, and every hook must produce the reference's numbers exactly. */
#ifndef TENPAK_COMMON_KMEANS_H
#define TENPAK_COMMON_KMEANS_H

#include "tenpak/vq.h"

/* assign and sums return TP_ERR_NOMEM when their scratch cannot be allocated; the driver stops
 * with it. */
typedef struct tp_kmeans_hooks {
    /* code[i] = nearest centroid of T[i], dist[i] = its distance (vq.h's definition) */
    tp_status (*assign)(void *ctx, const float *T, int64_t m, int d, int K, const float *cb,
                   int32_t *code, float *dist);
    /* D[i] = min(D[i], dist(T[i], c)) */
    void (*mindist)(void *ctx, const float *T, int64_t m, int d, const float *c, float *D);
    /* S (K x d) += weighted coordinate sums, Wk += weights, *distortion += weighted distances;
     * per chunk of TP_KMEANS_CHUNK vectors (tp_kmeans_chunk_sums), chunks added in order */
    tp_status (*sums)(
void *ctx, const float *T, const float *w, const int32_t *code, const float *dist,
                 int64_t m, int d, int K, double *S, double *Wk, double *distortion);
    void *ctx;
} tp_kmeans_hooks;

tp_status tp_kmeans_run(const float *V, int64_t n, int d, int K, const float *weights,
                        const tp_kmeans_opts *o, float *codebook, tp_kmeans_stats *st,
                        const tp_kmeans_hooks *h);
double tp_kmeans_chunk_sums(const float *T, const float *w, const int32_t *code, const float *dist,
                            int64_t c0, int64_t c1, int d, int K, double *cs);
void tp_kmeans_chunk_add(const double *cs, int d, int K, double *S, double *Wk);

#endif
