/* The CUDA backend's 2:4 sparse GEMV / GEMM (kernels/cuda/sparse24.cu) and the cuSPARSELt
 * baseline (kernels/cuda/sparse24_cusparselt.cu). C interface, used by kernels/ops_sparse.c.
 * Protocol as tp_cuda.h: prepare uploads (not timed), run launches, tp_cuda_sync waits, fetch
 * copies back (NaN when anything failed), release frees. Weights are rotated among copies.
 *
 * Y (batch x rows, fp32) = X (batch x cols) W^T with W the tp_sp24 matrix (fp16 values, layout
 * of include/tenpak/sparse.h). f16a: X holds binary16-exact values and is uploaded as fp16.
 *   mode 0 "simt": one thread per output, reads the documented layout as stored (fp32 or fp16 X).
 *   mode 1 "tc"  : mma.sp m16n8k32 (sparse tensor cores, fp32 accumulation), f16a only. prepare
 *                  repacks once (one-time packing, not timed): values padded to 128-row x 64-col
 *                  tiles, metadata regrouped per 16-row x 32-col mma tile into the per-thread
 *                  register order, X padded to 128 x 64 tiles with zeros.
 */
#ifndef TENPAK_CUDA_SPARSE_H
#define TENPAK_CUDA_SPARSE_H

#include <stddef.h>
#include <stdint.h>

#include "tenpak/registry.h"
#include "tenpak/sparse.h"

#ifdef __cplusplus
extern "C" {
#endif

void *tp_cuda_sp24_prepare(const tp_sp24 *s, const float *X, int64_t batch, int f16a, int mode);
tp_status tp_cuda_sp24_run(const tp_case *c, void *state, void *out);
void tp_cuda_sp24_fetch(const tp_case *c, void *state, void *out);
void tp_cuda_sp24_release(void *state);

/* Host model of the tensor-core kernel's packing (the same code prepare uses): the 32-bit
 * metadata word lane `lane` passes to mma.sp for rows r0..r0+15, dense columns k0..k0+31
 * (groups past the matrix read as field 0x4: kept entries 0 and 1, values 0). hyp: 'b'
 * (default) or 'a', the two readings of the PTX metadata figure (NOTES.md). */
uint32_t tp_sp24_tc_meta_word(const tp_sp24 *s, int64_t r0, int64_t k0, int lane, int hyp);
/* Host emulation of the tensor-core kernel: the same packing, tile order, cp.async chunk map,
 * fragment offsets and epilogue (shared __host__ __device__ functions), with mma.sp replaced by
 * the semantics the kernel assumes (fp32 sums). Y: batch x rows. 0 when out of memory. Slow:
 * small shapes only. Honours TENPAK_SP24_META like prepare. */
int tp_sp24_tc_emulate(const tp_sp24 *s, const float *X, int64_t batch, float *Y);

/* cuSPARSELt baseline: the dense pruned fp16 matrix (decompressed from s) is compressed by
 * cusparseLtSpMMACompress at prepare; run is cusparseLtMatmul (plan chosen by
 * cusparseLtMatmulSearch at prepare). available: 0 with "cuSPARSELt not found: ..." (or not
 * built) when the header was absent at build time or libcusparseLt.so.0 cannot be loaded. */
int tp_cusparselt_available(char *why, size_t n);
void *tp_cusparselt_prepare(const tp_sp24 *s, const float *X, int64_t batch);
tp_status tp_cusparselt_run(const tp_case *c, void *state, void *out);
void tp_cusparselt_fetch(const tp_case *c, void *state, void *out);
void tp_cusparselt_release(void *state);

#ifdef __cplusplus
}
#endif
#endif
