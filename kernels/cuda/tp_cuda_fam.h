/* The CUDA backend's C interface for the LoRA, VQ and low-rank / tenpakx families
 * (kernels/cuda/lora.cu, vq.cu, lowrank.cu), used by the `#ifdef TENPAK_HAVE_CUDA` entries of
 * kernels/ops_lora.c, ops_vq.c and ops_lowrank.c. Same protocol as tp_cuda.h: prepare uploads
 * (weights rotated among copies exceeding the L2, so bench reads device memory), run launches,
 * tp_cuda_sync waits, fetch copies the result (NaN when the state failed), release frees. */
#ifndef TENPAK_CUDA_FAM_H
#define TENPAK_CUDA_FAM_H

#include "kernels/cuda/tp_cuda.h"
#include "tenpak/lora.h"
#include "tenpak/lowrank.h"
#include "tenpak/vq.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- LoRA (kernels/cuda/lora.cu): Y[b] = W X[b] + s_i B_i (A_i X[b]), i = idx[b] ----
 * base: int4 or nf4 (q); ad: nad adapters of one rank. fused = 1: one launch (the shrink
 * t = A x is computed by the first blocks, the others pick it up at their epilogue);
 * fused = 0: two launches (shrink kernel, then base + expand), for comparison. */
void *tp_cuda_lora_prepare(const tp_qmat *q, const tp_lora *ad, int nad, const int32_t *idx, const float *X,
                           int64_t batch, int fused);
tp_status tp_cuda_lora_run(const tp_case *c, void *state, void *out);
void tp_cuda_lora_fetch(const tp_case *c, void *state, void *out);
void tp_cuda_lora_release(void *state);

/* ---- LoRA SGMV (kernels/cuda/lora.cu): segment s = columns [seg[s], seg[s+1]) uses adapter
 * sad[s] (lora.h, tp_lora_sgmv_ref); int4 base, ranks 8 / 16 / 32 / 64. Two launches: the shrink
 * per (segment, 1024-column chunk), then the base kernel (each code word decoded once for up to
 * 16 batch columns) with the expand in its epilogue. Run, fetch, release: the LoRA ones above. */
void *tp_cuda_sgmv_prepare(const tp_qmat *q, const tp_lora *ad, int nad, const int32_t *seg, const int32_t *sad,
                           int nseg, const float *X, int64_t batch);

/* ---- VQ (kernels/cuda/vq.cu): y = decode(m) x (lookup-GEMV), K <= 256 codes (uint8) and
 * K <= 4096 codes (uint16, the codebook and x in shared memory) ---- */
void *tp_cuda_vq_prepare(const tp_vqmat *m, const float *x);
tp_status tp_cuda_vq_run(const tp_case *c, void *state, void *out);
void tp_cuda_vq_fetch(const tp_case *c, void *state, void *out);
void tp_cuda_vq_release(void *state);

/* ---- low rank and tenpakx (kernels/cuda/lowrank.cu) ----
 * lowrank: y = L (R x). tenpakx decode: W = (lr + vq) + res, exact (the definition). */
void *tp_cuda_lowrank_prepare(const tp_lowrank *m, const float *x);
void *tp_cuda_tenpakx_prepare(const tp_tenpakx *m);
tp_status tp_cuda_lowrank_run(const tp_case *c, void *state, void *out);
void tp_cuda_lowrank_fetch(const tp_case *c, void *state, void *out);
void tp_cuda_lowrank_release(void *state);

/* The "cuda-emu" backend's availability: 1 when TENPAK_CUDA_EMU=1, else 0 with the reason. */
int tp_cuda_emu_available(char *why, size_t n);
/* Host emulation of the device per-thread code paths (the __host__ __device__ functions run on
 * the CPU in the kernels' work decomposition), for tests on machines without a GPU. Each
 * writes what the kernel would write; those returning tp_status give TP_ERR_NOMEM when their host
 * scratch cannot be allocated. */
tp_status tp_cuda_lora_emulate(const tp_qmat *q, const tp_lora *ad, int nad, const int32_t *idx, const float *X,
                               int64_t batch, float *Y);
/* SGMV: TP_ERR_ARG for an invalid segment table, base or rank the kernel is not built for */
tp_status tp_cuda_sgmv_emulate(const tp_qmat *q, const tp_lora *ad, int nad, const int32_t *seg, const int32_t *sad,
                               int nseg, const float *X, int64_t batch, float *Y);
tp_status tp_cuda_vq_emulate(const tp_vqmat *m, const float *x, float *y);

void tp_cuda_tenpakx_emulate(const tp_tenpakx *m, float *W);
void tp_cuda_lowrank_emulate(const tp_lowrank *m, const float *x, float *y);

#ifdef __cplusplus
}
#endif
#endif
