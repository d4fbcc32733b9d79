/* Low rank and tenpakx.
 *
 * Low rank: W (rows x cols) ~= L R with L rows x k, R k x cols, from a truncated SVD (LAPACK
 * sgesdd through LAPACKE): W = U S V^T, L = U_k S_k^(1/2), R = S_k^(1/2) V_k^T (balanced, so both
 * factors round to fp16 alike). Importance-weighted: with per-column importance s_j > 0 the SVD is
 * of W diag(s) (columns scaled), and R is unscaled after: R = S^(1/2) V^T diag(1/s); this
 * minimises the s-weighted Frobenius error. Factors are stored as fp32 holding fp16-representable
 * values and packed as binary16 (2 k (rows + cols) bytes).
 * Product element (the definition, shared bit for bit by every backend):
 *   lr(i, j) = acc with acc = 0; for t = 0..k-1: acc = fmaf(L[i][t], R[t][j], acc).
 * GEMV: y = L (R x).
 *
 * tenpakx: W ~= L R + codebook[codes] + INT4 residual (default rank 32, d4 K256, residual g32),
 * each stage fitted to the remainder of the previous one:
 *   lr = lowrank(W); vq = VQ(W - LR); res = INT4(W - LR - decode(vq)).
 * Decoding (the definition): w = (lr(i, j) + vq(i, j)) + res(i, j), fp32, in that order. */
#ifndef TENPAK_LOWRANK_H
#define TENPAK_LOWRANK_H

#include "tenpak/vq.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tp_lowrank {
    int64_t rows, cols;
    int rank;
    float *L; /* rows x rank */
    float *R; /* rank x cols */
} tp_lowrank;

/* ---- storage, packing and the SVD fit (common/lowrank.c) ---- */
tp_status tp_lowrank_alloc(tp_lowrank *m, int64_t rows, int64_t cols, int rank);
void tp_lowrank_free(tp_lowrank *m);
size_t tp_lowrank_bytes_for(int64_t rows, int64_t cols, int rank);
size_t tp_lowrank_bytes(const tp_lowrank *m);
void tp_lowrank_pack(const tp_lowrank *m, void *dst);   /* L then R, binary16 little-endian */
void tp_lowrank_unpack(tp_lowrank *m, const void *src);

/* Truncated SVD fit (LAPACKE_sgesdd). col_importance: cols floats > 0, or NULL (plain). */
tp_status tp_lowrank_fit(tp_lowrank *m, const float *W, const float *col_importance, tp_err *e);
/* The calibration-free importance proxy: mean |w| of each column (floored above 0).
 * This header's functions that return tp_status and take no tp_err need scratch memory: they
 * return TP_ERR_NOMEM when it cannot be allocated (the output is then incomplete). */
tp_status tp_col_importance(const float *W, int64_t rows, int64_t cols, float *imp);

/* ---- reference (reference/lowrank_ref.c) ---- */
void tp_lowrank_product_ref(const tp_lowrank *m, float *W); /* lr(i, j) for all i, j */
tp_status tp_lowrank_gemv_ref(const tp_lowrank *m, const float *x, float *y); /* double */
/* ---- cpu (kernels/cpu/lowrank_cpu.c): threaded, AVX2 / portable ---- */
void tp_lowrank_product_cpu(const tp_lowrank *m, float *W);
tp_status tp_lowrank_gemv_cpu(const tp_lowrank *m, const float *x, float *y);
/* The GEMV on binary16 factors where they lie (tp_lowrank_pack's image: L rows x rank, then R
 * rank x cols): each factor widened exactly and summed in tp_lowrank_gemv_cpu's order, so y has its
 * bits for the widened factors, from half the bytes and no fp32 copy (the packed model's view). */
typedef struct tp_lowrank16 {
    int64_t rows, cols;
    int rank;
    const uint16_t *L, *R;
} tp_lowrank16;
tp_status tp_lowrank16_gemv_cpu(const tp_lowrank16 *m, const float *x, float *y);

/* ---- tenpakx (storage: common/lowrank.c; decode and GEMV: reference/lowrank_ref.c, kernels/cpu) ---- */
typedef struct tp_tenpakx {
    tp_lowrank lr;
    tp_vqmat vq;
    tp_qmat res; /* INT4 */
} tp_tenpakx;

typedef struct tp_tenpakx_cfg {
    int rank, d, K, g; /* 0: defaults 32, 4, 256, 32 */
    int refine_iters;  /* residual refinement */
    uint64_t seed;
} tp_tenpakx_cfg;

tp_status tp_tenpakx_alloc(tp_tenpakx *m, int64_t rows, int64_t cols, const tp_tenpakx_cfg *cfg);
void tp_tenpakx_free(tp_tenpakx *m);
size_t tp_tenpakx_bytes(const tp_tenpakx *m);
size_t tp_tenpakx_bytes_for(int64_t rows, int64_t cols, const tp_tenpakx_cfg *cfg);
tp_status tp_tenpakx_fit(tp_tenpakx *m, const float *W, const tp_tenpakx_cfg *cfg, tp_err *e);
tp_status tp_tenpakx_decode_ref(const tp_tenpakx *m, float *W);
tp_status tp_tenpakx_decode_cpu(const tp_tenpakx *m, float *W);
tp_status tp_tenpakx_gemv_ref(const tp_tenpakx *m, const float *x, float *y);
tp_status tp_tenpakx_gemv_cpu(const tp_tenpakx *m, const float *x, float *y);


#ifdef __cplusplus
}
#endif
#endif
