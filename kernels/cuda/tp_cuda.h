/* The CUDA backend's C interface (kernels/cuda/ (.cu files)), used by the registry entries in
 * kernels/ops_int4.c and kernels/cuda/ops_cuda.c. Every function is callable from C.
 *
 * Device kernels follow the registry's protocol (include/tenpak/registry.h): prepare uploads
 * the case's inputs (not timed) and returns an opaque state, run launches into device memory,
 * sync waits for the device, fetch copies the result into the host buffer, release frees.
 * A CUDA error anywhere is printed once to stderr and makes the state "failed": fetch then
 * writes NaN (float outputs) so the verify driver reports FAIL instead of a wrong PASS.
 *
 * Timing inputs: prepare keeps several copies of the weights (enough to exceed the GPU's L2
 * twice over, at most 8) and run() rotates among them, so repeated runs in `tenpak bench` read
 * device memory rather than the 50 MB L2 (METHOD.md: "rotate among several input sets").
 */
#ifndef TENPAK_CUDA_H
#define TENPAK_CUDA_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tenpak/quant.h"
#include "tenpak/registry.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when a CUDA device this build can run on is present; else 0 and a reason in why
 * ("no CUDA device", ...). Cached after the first call. */
int tp_cuda_available(char *why, size_t n);
/* One line for `tenpak list`: device name, compute capability, memory, SMs, L2, driver and
 * runtime versions; or "cuda: built (sm_90), no CUDA device (...)". */
void tp_cuda_describe(FILE *f);

/* ---- the INT4 family (kernels/cuda/int4.cu) ----
 * op: "dequant" (exact, fp32 out), "gemv" (batch 1) or "gemm" (batch >= 1); X is batch x cols
 * fp32 and f16a says its values are binary16-exact (the *_f16a variants), in which case it is
 * uploaded as fp16 and the kernels read half the activation bytes. allow_tc: the tensor-core
 * kernel may be used (int4 g32/g64/g128 with f16a); 0 keeps the CUDA-core kernels (backend
 * "cuda-simt", for comparison in the same bench run). */
void *tp_cuda_q_prepare(const tp_qmat *q, const float *X, int64_t batch, const char *op, int f16a,
                        int allow_tc);
void tp_cuda_q_run(const tp_case *c, void *state, void *out);
void tp_cuda_q_fetch(const tp_case *c, void *state, void *out);
void tp_cuda_q_release(void *state);

/* ---- baselines (kernels/cuda/baseline.cu) ----
 * Dense fp16 W (rows x cols, binary16 bits) times X (batch x cols, binary16-exact fp32 values):
 * Y (batch x rows, fp32) through cublasGemmEx, fp16 inputs, fp32 accumulation and output. */
void *tp_cuda_dense_prepare(const uint16_t *W, const float *X, int64_t rows, int64_t cols, int64_t batch);
void tp_cuda_dense_run(const tp_case *c, void *state, void *out);
void tp_cuda_dense_fetch(const tp_case *c, void *state, void *out);
void tp_cuda_dense_release(void *state);
/* Device-to-device copy of n floats (cudaMemcpyAsync): the roofline of memory-bound kernels. */
void *tp_cuda_copy_prepare(const float *a, int64_t n);
void tp_cuda_copy_run(const tp_case *c, void *state, void *out);
void tp_cuda_copy_fetch(const tp_case *c, void *state, void *out);
void tp_cuda_copy_release(void *state);

/* Graph timing (`tenpak bench`): `launches` consecutive k->run() calls captured into a CUDA graph;
 * NULL when the kernel's run() cannot be captured (then time it launch by launch). */
void *tp_cuda_graph_make(const tp_kernel *k, const tp_case *c, void *state, void *out, int launches);
int tp_cuda_graph_launch(void *graph); /* asynchronous; 0 on a launch error */
void tp_cuda_graph_free(void *graph);

/* Waits for all work of the state's stream (every cuda kernel's sync). */
void tp_cuda_sync(void *state);

#ifdef __cplusplus
}
#endif
#endif
