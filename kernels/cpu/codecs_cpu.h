/* Internal interface between the cpu dispatchers of the VQ / 2:4 / LoRA / low-rank families
 * (kernels/cpu/{vq,sparse,lora,lowrank}_cpu.c) and their AVX2 kernels (kernels/cpu/avx2/).
 * Row kernels work on rows [r0, r1) so the dispatchers can thread over row blocks. */
#ifndef TENPAK_KERNELS_CPU_CODECS_CPU_H
#define TENPAK_KERNELS_CPU_CODECS_CPU_H

#include "kernels/cpu/cpu_common.h"
#include "tenpak/lora.h"
#include "tenpak/sparse.h"
#include "tenpak/vq.h"

/* tp_quantize_ref over row blocks in parallel (identical output: rows are independent). */
void tp_quantize_rows_cpu(tp_qmat *q, const float *W, int refine_iters);

/* ---- 2:4 ---- */
/* xp: x zero-padded to 4*ngroups (+16) floats; xr: xp rearranged by tp_sp24_xr_make for the
 * ngroups/4 full metadata words. */
void tp_sp24_xr_make(const float *xp, int64_t nw, float *xr);
/* sum over groups [j0, ngroups) of row r of value * x (scalar, fp32): the SIMD kernels' tails */
float tp_sp24_tail_row(const tp_sp24 *s, const float *xp, int64_t r, int64_t j0);
void tp_sp24_gemv_rows_avx2(const tp_sp24 *s, const float *xp, const float *xr, int64_t r0,
                            int64_t r1, float *y);
/* AVX-512 (kernels/cpu/avx512/sparse_avx512.c): xp as above, no rearranged copy; only where
 * tp_sp24_gemv_avx512_ok (fp32 values, or INT4 with groups a multiple of 16 kept values) */
int tp_sp24_gemv_avx512_ok(const tp_sp24 *s);
void tp_sp24_gemv_rows_avx512(const tp_sp24 *s, const float *xp, int64_t r0, int64_t r1, float *y);
void tp_sp24_gemv_rows_avx512vbmi(const tp_sp24 *s, const float *xp, int64_t r0, int64_t r1, float *y);
/* XT: (4*ngroups) x bp transposed activations (bp = 8*nv, zero padded), out: rows x bp */
void tp_sp24_gemm_rows_avx2(const tp_sp24 *s, const float *XT, int nv, int64_t r0, int64_t r1,
                            float *vals, int32_t *idx, float *out);

/* ---- VQ ---- */
/* Nearest centroid of n vectors (d <= 16 floats each, stride d); cbt is the codebook transposed
 * in blocks of 8 centroids (tp_vq_cbt_make, K rounded up to 8). Same numbers as the reference. */
void tp_vq_nearest_avx2(const float *V, int64_t n, int d, int K, const float *cbt, int32_t *code);
float *tp_vq_cbt_make(const float *cb, int K, int d); /* tp_alloc'ed */
void tp_vq_mindist_avx2(const float *T, int64_t m, int d, const float *c, float *D);
/* T[(v - v0) * Kp + k] = x_v . c_k for v in [v0, v1), Kp = K rounded up to 8 */
void tp_vq_table_avx2(const float *cbt, int d, int K, const float *xp, int64_t v0, int64_t v1, float *T);
/* y[r] += sum over v in [v0, v1) of T[(v - v0) * Kp + code(r, v)], r in [r0, r1) */
void tp_vq_lookup_rows_avx2(const tp_vqmat *m, const float *T, int Kp, int64_t v0, int64_t v1,
                            int64_t r0, int64_t r1, float *y);
/* the same with AVX-512 gathers (kernels/cpu/avx512/vq_avx512.c); rows of codes16 go to AVX2 */
void tp_vq_lookup_rows_avx512(const tp_vqmat *m, const float *T, int Kp, int64_t v0, int64_t v1,
                              int64_t r0, int64_t r1, float *y);

/* The byte-plane lookup (kernels/cpu/avx512vbmi/vq_avx512vbmi.c; m->codes8t of tp_vq_prepare).
 * table_planes: the tables of v1 - v0 <= TP_VQ_PCHUNK vectors (into T, stride 16 ceil(K/16), K <= 256
 * entries, from m->cb16) as four byte planes of 32-bit integers, 1024 bytes a vector, scale 2^e;
 * 0 where an entry is not finite.
 * lookup: y (rt floats, 64-byte aligned, tile order of tp_vq_planes_row) += 2^-e times the exact
 * integer sum of the entries of the codes of nb vectors (ct: nb x rt). */
#define TP_VQ_PCHUNK 16
int tp_vq_table_planes_avx512vbmi(const float *cb16, int d, int K, const float *xp, int64_t v0, int64_t v1,
                                  float *T, uint8_t *P, int *e);
void tp_vq_lookup_planes_avx512vbmi(const uint8_t *ct, int64_t rt, const uint8_t *P, int64_t nb, int e, float *y);
/* y (row order) of the full 64-row tiles of [r0, r1), r0 a multiple of 64, from np partial ys in
 * tile order (part i at yp + i rt, added in part order); returns the first row not done */
int64_t tp_vq_planes_reduce_avx512vbmi(const float *yp, int64_t rt, int np, int64_t r0, int64_t r1, float *y);
/* row (within its 64-row tile) of tile position q: the unpacks' order (q = 16 i + 4 l + e holds
 * row 16 l + 4 i + e, so the map is its own inverse) */
static inline int tp_vq_planes_row(int q) { return 16 * ((q & 15) >> 2) + 4 * (q >> 4) + (q & 3); }

/* ---- LoRA ---- */
/* rows [i0, i1) of out = W + sign * s B A (sign +1 merge, -1 unmerge), lora.h's definition */
void tp_lora_merge_rows_avx2(const float *W, const tp_lora *l, float sign, int64_t i0, int64_t i1,
                             float *out);

/* rows [i0, i1) of the low-rank product (lowrank.h's definition) */
void tp_lr_product_rows_avx2(const float *L, const float *R, int rank, int64_t cols, int64_t i0,
                             int64_t i1, float *out);

#endif
