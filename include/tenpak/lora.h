/* LoRA matmul: y = W x + (alpha / r) * B (A x), with the base W in fp32, INT4 or NF4 (QLoRA's
 * forward); multi-adapter batches (Punica's BGMV: column b of a batch uses adapter idx[b]); merge
 * (W + s * B A into a new dense or re-quantised weight) and unmerge.
 *
 * Layout: W rows x cols (cols = input dim); A is r x cols, B is rows x r, both row-major fp32;
 * s = alpha / r. X is batch x cols, Y batch x rows (as everywhere in tenpak).
 *
 * Merge (the definition, bit for bit in every backend): for each (i, j),
 *   acc = 0; for k = 0..r-1: acc = fmaf(B[i][k], A[k][j], acc);   d = s * acc (fp32)
 *   merged = W[i][j] + d, unmerged = W'[i][j] - d (one fp32 rounding each).
 * So unmerge(merge(W)) differs from W by the two roundings (of W + d, then of the difference):
 *   |unmerge(merge(W)) - W| <= 2^-24 * (|W + d| + |W|) (round to nearest), checked in
 *   verify/test_lora.c; it is exact whenever W + d is.
 * For a quantised base, merge dequantises, adds d, and re-quantises with tp_quantize_ref (the
 * result is a new tp_qmat of the same kind and group; its error is the quantiser's). */
#ifndef TENPAK_LORA_H
#define TENPAK_LORA_H

#include "tenpak/quant.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tp_lora {
    int64_t rows, cols;
    int r;
    float alpha;
    float *A; /* r x cols */
    float *B; /* rows x r */
} tp_lora;

/* The base weight: exactly one of W (fp32, rows x cols) or q (INT4 / NF4 / INT4R2) is set. */
typedef struct tp_lora_base {
    const float *W;
    const tp_qmat *q;
    int64_t rows, cols;
} tp_lora_base;

static inline float tp_lora_scale(const tp_lora *l) { return l->alpha / (float)l->r; }

/* an SGMV segment table (tp_lora_sgmv_ref) is valid: TP_OK, else TP_ERR_ARG */
static inline tp_status tp_lora_seg_check(int nad, const int32_t *seg, const int32_t *sad, int nseg, int64_t batch) {
    if (nseg < 0 || !seg || (nseg > 0 && !sad) || seg[0] != 0 || seg[nseg] != batch) return TP_ERR_ARG;
    for (int s = 0; s < nseg; s++)
        if (seg[s + 1] < seg[s] || sad[s] < 0 || sad[s] >= nad) return TP_ERR_ARG;
    return TP_OK;
}

tp_status tp_lora_alloc(tp_lora *l, int64_t rows, int64_t cols, int r, float alpha);
void tp_lora_free(tp_lora *l);
/* Packed bytes of one adapter (A and B in fp16, as adapters are shipped). */
size_t tp_lora_bytes(int64_t rows, int64_t cols, int r);

/* ---- reference (reference/lora_ref.c): double accumulation ----
 * The GEMV / BGMV functions return TP_ERR_NOMEM when their scratch cannot be allocated. */
tp_status tp_lora_gemv_ref(const tp_lora_base *w, const tp_lora *l, const float *x, float *y);
/* BGMV: Y[b] = W X[b] + s_i B_i (A_i X[b]) with i = idx[b]; ad: nad adapters of the same shape */
tp_status tp_lora_bgmv_ref(const tp_lora_base *w, const tp_lora *ad, int nad, const int32_t *idx,
                      const float *X, int64_t batch, float *Y);
/* SGMV (Punica's segmented gather matrix-vector): the batch's columns in nseg contiguous
 * segments, segment s = columns [seg[s], seg[s+1]) uses adapter sad[s]; seg has nseg + 1 entries,
 * seg[0] = 0, seg[nseg] = batch, non-decreasing (empty segments allowed), sad[s] in [0, nad)
 * (adapters may repeat). The same product as BGMV with idx[b] = sad[segment of b]; the layout lets
 * a kernel read each segment's A and B once and run the shrink / expand as small dense GEMMs.
 * TP_ERR_ARG when the segment table is invalid (tp_lora_seg_check), TP_ERR_NOMEM as above. */
tp_status tp_lora_sgmv_ref(const tp_lora_base *w, const tp_lora *ad, int nad, const int32_t *seg,
                      const int32_t *sad, int nseg, const float *X, int64_t batch, float *Y);
/* out (rows x cols) = W + s B A / W - s B A, fp32 (definition above) */
void tp_lora_merge_ref(const float *W, const tp_lora *l, float *out);
void tp_lora_unmerge_ref(const float *Wm, const tp_lora *l, float *out);
/* quantised base: out (allocated like q) = quantise(dequant(q) + s B A) */
tp_status tp_lora_merge_q_ref(const tp_qmat *q, const tp_lora *l, tp_qmat *out);

/* ---- cpu backend (kernels/cpu/lora_cpu.c): fused, threaded, AVX2 / portable ---- */
/* t = A x once; then the base GEMV and s * B t per row; BA is never formed. */
tp_status tp_lora_gemv_cpu(const tp_lora_base *w, const tp_lora *l, const float *x, float *y);
/* base GEMM for the whole batch, then per adapter the columns that use it as one skinny GEMM */
tp_status tp_lora_bgmv_cpu(
const tp_lora_base *w, const tp_lora *ad, int nad, const int32_t *idx,
                      const float *X, int64_t batch, float *Y);
/* SGMV (above): the base GEMM for the whole batch, then per segment one skinny shrink
 * T = A_i X_seg and expand Y_seg += s_i B_i T */
tp_status tp_lora_sgmv_cpu(const tp_lora_base *w, const tp_lora *ad, int nad, const int32_t *seg,
                      const int32_t *sad, int nseg, const float *X, int64_t batch, float *Y);
void tp_lora_merge_cpu(const float *W, const tp_lora *l, float *out);
void tp_lora_unmerge_cpu(const float *Wm, const tp_lora *l, float *out);
tp_status tp_lora_merge_q_cpu(const tp_qmat *q, const tp_lora *l, tp_qmat *out);

#ifdef __cplusplus
}
#endif
#endif
