/* Vector quantisation (PocketLLM-style) and the hybrid codecs built on it:
 *   vq      : W's rows cut into vectors of d consecutive weights, each replaced by the nearest of
 *             K centroids (k-means codebook); d in {4, 8}, K in {256, 4096} (any K >= 1 works).
 *   vq+int4 : VQ, then an INT4 residual of group g on W - decode(VQ) (PocketLLM v1: d8 K256 g32;
 *             v2: d4 K256 g16 with the residual's iterative refinement).
 *
 * Layout: W is rows x cols row-major; each row holds nvec = ceil(cols/d) vectors, vector v covers
 * columns [v*d, v*d + d); a short last vector is zero-padded for training and encoding and its
 * padding is dropped when decoding.
 *   codebook : K x d fp32 whose values are all fp16-representable (rounded after training);
 *              packed as K*d binary16.
 *   codes    : rows x nvec, one uint16 per code in memory (uint8 when K <= 256); packed as
 *              b = ceil(log2 K) bits per code, LSB-first, row-major, the whole matrix as one bit
 *              stream padded to a byte (b = 8 for K = 256: plain bytes; b = 12 for K = 4096).
 * Decoding (the definition): W[r][v*d + j] = codebook[code(r, v) * d + j].
 * Nearest centroid (the definition, shared bit for bit by every backend): for each centroid k,
 * dist = 0; for j = 0..d-1: t = x_j - c_kj (fp32), dist = fmaf(t, t, dist); the smallest dist
 * wins, ties to the lowest k.
 */
#ifndef TENPAK_VQ_H
#define TENPAK_VQ_H

#include "tenpak/quant.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tp_vqmat {
    int64_t rows, cols;
    int d, K;
    int64_t nvec;      /* vectors per row = ceil(cols/d) */
    float *codebook;   /* K x d */
    uint8_t *codes8;   /* rows x nvec, when K <= 256 */
    uint16_t *codes16; /* rows x nvec, when K > 256 */
    /* Optional, made by tp_vq_prepare (K <= 256): the same codes column-major, nvec x rows_t
     * (rows rounded up to 64, the extra rows code 0), which the cpu GEMV's byte-plane lookup
     * reads 64 rows of one vector at a time. A copy: the packed size (tp_vq_bytes) and every
     * other kernel ignore it; anything that rewrites codes8 (encode, unpack) drops it. */
    uint8_t *codes8t;
    int64_t rows_t;
    /* Also made by tp_vq_prepare with codes8t: the codebook for 16-wide table products, blocks of
     * 16 centroids, component-major ([ceil(K/16)][d][16], zero past K). */
    float *cb16;
} tp_vqmat;

static inline int tp_vq_code(const tp_vqmat *m, int64_t r, int64_t v) {
    size_t i = (size_t)(r * m->nvec + v);
    return m->codes8 ? m->codes8[i] : m->codes16[i];
}

/* ---- storage, packing, vectors and importance (common/vq.c) ---- */
tp_status tp_vq_alloc(tp_vqmat *m, int64_t rows, int64_t cols, int d, int K);
void tp_vq_free(tp_vqmat *m);
int tp_vq_code_bits(int K); /* ceil(log2 K), at least 1 */
/* Packed bytes: codebook (fp16) + codes (tp_vq_code_bits each). */
size_t tp_vq_bytes(const tp_vqmat *m);
size_t tp_vq_bytes_for(int64_t rows, int64_t cols, int d, int K);
void tp_vq_pack(const tp_vqmat *m, void *dst);
void tp_vq_unpack(tp_vqmat *m, const void *src);
/* Make m->codes8t from codes8 (no-op for K > 256); call once the codes are final, e.g. after
 * loading. tp_vq_unprepare frees it (encode and unpack call it). */
tp_status tp_vq_prepare(tp_vqmat *m);
void tp_vq_unprepare(tp_vqmat *m);

/* k-means options. Zero-initialised fields take the defaults in brackets. */
typedef struct tp_kmeans_opts {
    uint64_t seed;
    int max_iters;      /* Lloyd iterations [25] */
    double tol;         /* stop when the distortion falls by less than tol (relative) [1e-4] */
    int64_t max_train;  /* train on a seeded sample of at most this many vectors [262144]; <0: all */
    int importance;     /* weight each vector by its mean |w| (calibration-free importance) */
} tp_kmeans_opts;

typedef struct tp_kmeans_stats {
    int iters;           /* Lloyd iterations run */
    int reseeded;        /* empty clusters re-seeded, over all iterations */
    double distortion;   /* weighted mean squared distance on the training sample, last iter */
} tp_kmeans_stats;

/* The vectors of W (rows*nvec x d, zero-padded). V is caller-allocated. */
void tp_vq_vectors(const float *W, int64_t rows, int64_t cols, int d, float *V);
/* Importance of each vector: mean |w| over its real (unpadded) entries. */
void tp_vq_importance(const float *W, int64_t rows, int64_t cols, int d, float *imp);

/* ---- reference (reference/vq_ref.c; the k-means driver: common/kmeans.c) ---- */
/* Codebook training on n vectors V (n x d); weights: n floats or NULL. Algorithm: training
 * sample (seeded partial Fisher-Yates when n > max_train), k-means++ initialisation (seeded;
 * D^2 * weight sampling), Lloyd iterations (sums accumulated in double per chunk of
 * TP_KMEANS_CHUNK vectors, chunks added in order, so the result does not depend on the number of
 * threads), empty clusters re-seeded with the training vector farthest from its centroid, stop
 * on the tolerance or when no assignment changes; finally the codebook is rounded to fp16. */
#define TP_KMEANS_CHUNK 16384
tp_status tp_kmeans_ref(const float *V, int64_t n, int d, int K, const float *weights,
                        const tp_kmeans_opts *o, float *codebook, tp_kmeans_stats *st);
int tp_vq_nearest_ref(const float *x, const float *codebook, int K, int d);
/* codes of W's vectors against m->codebook. This header's functions that return tp_status and
 * take no tp_err return TP_ERR_NOMEM when their scratch cannot be allocated. */
tp_status tp_vq_encode_ref(tp_vqmat *m, const float *W);
void tp_vq_decode_ref(const tp_vqmat *m, float *W);
/* y = W x (W decoded), double accumulation */
void tp_vq_gemv_ref(const tp_vqmat *m, const float *x, float *y);

/* ---- cpu backend (kernels/cpu/vq_cpu.c): threaded, SIMD; bit-identical to the reference for
 * kmeans / encode / decode ---- */
tp_status tp_kmeans_cpu(const float *V, int64_t n, int d, int K, const float *weights,
                        const tp_kmeans_opts *o, float *codebook, tp_kmeans_stats *st);
tp_status tp_vq_encode_cpu(tp_vqmat *m, const float *W);
void tp_vq_decode_cpu(const tp_vqmat *m, float *W);
/* Lookup-GEMV with the codebook trick: per block of columns, the dot products of x's d-pieces
 * with every centroid are computed once (a nvec x K table), then gathered by code. With
 * m->codes8t (tp_vq_prepare) and AVX-512 VBMI the lookup runs in registers, 64 rows at a time;
 * otherwise it is scalar over the row-major codes. */
tp_status tp_vq_gemv_cpu(const tp_vqmat *m, const float *x, float *y);
/* The same with SIMD gathers for the lookup (AVX-512 or AVX2; the "cpu-gather" backend). */
tp_status tp_vq_gemv_cpu_gather(const tp_vqmat *m, const float *x, float *y);
/* The scalar lookup over the row-major codes whatever m holds (the "cpu-rowmajor" backend: what
 * the layout buys, measured side by side). */
tp_status tp_vq_gemv_cpu_rowmajor(const tp_vqmat *m, const float *x, float *y);

/* Whole codec: train on W (tp_kmeans_cpu), encode (tp_vq_encode_cpu). m allocated by the caller. */
tp_status tp_vq_fit(tp_vqmat *m, const float *W, const tp_kmeans_opts *o, tp_kmeans_stats *st);

/* ---- vq + INT4 residual ---- */
typedef struct tp_vqr {
    tp_vqmat vq;
    tp_qmat res; /* INT4, group g, on W - decode(vq) */
} tp_vqr;
tp_status tp_vqr_alloc(tp_vqr *m, int64_t rows, int64_t cols, int d, int K, int g);
void tp_vqr_free(tp_vqr *m);
size_t tp_vqr_bytes(const tp_vqr *m);
size_t tp_vqr_bytes_for(int64_t rows, int64_t cols, int d, int K, int g);
/* Fit: VQ on W, then the INT4 residual with tp_quantize_ref(refine_iters) (threaded over rows). */
tp_status tp_vqr_fit(tp_vqr *m, const float *W, const tp_kmeans_opts *o, int refine_iters);
/* The INT4 residual stage alone, for a VQ part already encoded: res = quantise(W - decode(vq)). */
tp_status tp_vqr_residual(tp_vqr *m, const float *W, int refine_iters);
/* Decoding (the definition): W = vq_value + int4_value, one fp32 addition. */
tp_status tp_vqr_decode_ref(const tp_vqr *m, float *W);
tp_status tp_vqr_decode_cpu(const tp_vqr *m, float *W);
tp_status tp_vqr_gemv_ref(const tp_vqr *m, const float *x, float *y);
tp_status tp_vqr_gemv_cpu(const tp_vqr *m, const float *x, float *y);

#ifdef __cplusplus
}
#endif
#endif
