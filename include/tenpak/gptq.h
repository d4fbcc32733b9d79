/* GPTQ (Frantar et al. 2022, "GPTQ: Accurate Post-Training Quantization for Generative
 * Pre-trained Transformers") into the int4 g-group format of include/tenpak/quant.h: the same
 * codes / FP16 scale / FP16 offset arrays as tp_quantize_ref's int4, so every int4 kernel (packed
 * GEMV/GEMM, dequant, the GPU path) runs its output unchanged. Only the choice of codes and group
 * parameters differs: GPTQ minimises the layer's output error ||(W - W^) X^T|| on calibration
 * activations X (n x cols) instead of each weight's own rounding error.
 *
 * The algorithm, as both backends implement it (reference/gptq_ref.c is the definition):
 *   H = the cols x cols second moment of the layer input (any positive multiple of X^T X: GPTQ's
 *       2 X^T X / n, or calib's sum; the result does not depend on the multiple).
 *   dead columns: H[j][j] == 0 (an input channel that is always 0) -> H[j][j] = 1, W[:, j] = 0.
 *   order: columns in index order, or with act_order by descending H[j][j] (ties: lower index
 *       first). Groups stay the format's contiguous groups of g original columns.
 *   damping: H += damp * mean_j(H[j][j]) * I, damp in (0, 1].
 *   U = the upper Cholesky factor of (P H P^T)^-1 (P the order), so (P H P^T)^-1 = U^T U.
 *   for p = 0 .. cols-1, j = order[p], for every row r independently:
 *       if j's group has no parameters yet: (scale, offset) = tp_int4_minmax_ref of the group's
 *           current (error-updated) weights rounded to fp32: the moment the quantiser enters the
 *           group, as GPTQ does with a group size (with act_order, at its first column in order);
 *           with clip = 1, tp_int4_clip_ref of those weights with the weights wt_i = H[c][c] (the
 *           undamped diagonal, 1 for a dead channel) of the group's columns c: the clipped range
 *           with the least diag(H)-weighted squared rounding error (GPTQ implementations' "mse"
 *           search of the quantiser's range; min/max's pair is a candidate, so never worse by it);
 *       q = tp_int4_code_ref(W[r][j], s, o), w^ = q*s + o (fp32, the format's dequantised value)
 *       err = (W[r][j] - w^) / U[p][p]
 *       W[r][order[p']] -= err * U[p][p'] for every p' > p      (error compensation)
 * With H = NULL (no calibration) H is the identity: no compensation, and the output equals
 * tp_quantize_ref's int4 bit for bit.
 *
 * Errors (tp_status, one-line message): damp outside (0, 1]; clip not 0 or 1; a non-finite H entry; H + damping not
 * positive definite (a matrix that is not a second moment: X^T X + damping always is); q not an int4
 * matrix of W's shape. No retry with more damping: the caller's damp is what was asked for. */
#ifndef TENPAK_GPTQ_H
#define TENPAK_GPTQ_H

#include "tenpak/quant.h"
#include "tenpak/tenpak.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The plain double-precision definition: one column at a time, every remaining column updated
 * after each. O(rows cols^2 + cols^3), scalar: for tests. q: tp_qmat_alloc(q, TP_Q_INT4, rows, cols, g). */
tp_status tp_gptq_ref(tp_qmat *q, const float *W, const double *H, int act_order, double damp, int clip, tp_err *e);

/* The optimised cpu version (kernels/cpu/gptq_cpu.c): the same algorithm in double precision with
 * GPTQ's lazy batch updates (blocks of TP_GPTQ_BLOCK columns, or g when larger; the trailing update
 * of the not-yet-quantised columns is one dgemm per block through OpenBLAS), LAPACK's Cholesky
 * factorisation and inverse, rows split over threads. Equal to tp_gptq_ref up to double rounding
 * order (~1e-15 relative): a code can differ only where a weight sits that close to a rounding
 * boundary, and then that row's later compensation differs by that code's error. verify/test_gptq.c
 * bounds it at 1 code in 1000 and dequantised rel-L2 1e-3; every code has been equal so far. */
#define TP_GPTQ_BLOCK 128
tp_status tp_gptq_cpu(tp_qmat *q, const float *W, const double *H, int act_order, double damp, int clip, tp_err *e);

#ifdef __cplusplus
}
#endif
#endif
