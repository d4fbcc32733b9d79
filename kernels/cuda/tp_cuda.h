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
 * device memory rather than the 50 MB L2.
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
tp_status tp_cuda_q_run(const tp_case *c, void *state, void *out);
void tp_cuda_q_fetch(const tp_case *c, void *state, void *out);
void tp_cuda_q_release(void *state);

/* A packed INT4-family matrix (int4 g8..g128, int4r2, nf4) resident on the device, for the model's
 * packed path (kernels/cuda/model.cu). Every call launches on the calling thread's default stream
 * and returns 1, or 0 after a CUDA error (printed once to stderr). X16 and Y are device memory.
 *   upload   copies q's arrays to the device (NULL on failure);
 *   mul      Y[b * rows + r] = sum_c W[r][c] X16[b * cols + c], b < batch: the fp32 products of
 *            the exact dequantised weights and binary16 activations (the _f16a ops' kernels);
 *   dequant  W (rows x cols fp32) = the exact dequantised matrix;
 *   rows     X[i * cols + c] = W[ids[i]][c], i < n (ids in device memory): embedding lookups. */
typedef struct tp_cuda_qdev tp_cuda_qdev;
tp_cuda_qdev *tp_cuda_qdev_upload(const tp_qmat *q);
int tp_cuda_qdev_mul(tp_cuda_qdev *d, const uint16_t *X16, int batch, float *Y);
int tp_cuda_qdev_dequant(tp_cuda_qdev *d, float *W);
int tp_cuda_qdev_rows(tp_cuda_qdev *d, const int32_t *ids, int n, float *X);
void tp_cuda_qdev_free(tp_cuda_qdev *d);

/* The device a GPU result came from, for the `context` of bench JSON (0 without a usable device);
 * driver / runtime: cudaDriverGetVersion / cudaRuntimeGetVersion. The drivers reach it, and the
 * graph timing below, through tp_registry_device() (include/tenpak/registry.h). */
typedef tp_device_info tp_cuda_info;
int tp_cuda_info_get(tp_cuda_info *i);

/* ---- baselines (kernels/cuda/baseline.cu) ----
 * Dense fp16 W (rows x cols, binary16 bits) times X (batch x cols, binary16-exact fp32 values):
 * Y (batch x rows, fp32) through cublasGemmEx, fp16 inputs, fp32 accumulation and output. */
void *tp_cuda_dense_prepare(const uint16_t *W, const float *X, int64_t rows, int64_t cols, int64_t batch);
tp_status tp_cuda_dense_run(const tp_case *c, void *state, void *out);
void tp_cuda_dense_fetch(const tp_case *c, void *state, void *out);
void tp_cuda_dense_release(void *state);
/* Device-to-device copy of n floats (cudaMemcpyAsync): the roofline of memory-bound kernels. */
void *tp_cuda_copy_prepare(const float *a, int64_t n);
tp_status tp_cuda_copy_run(const tp_case *c, void *state, void *out);
void tp_cuda_copy_fetch(const tp_case *c, void *state, void *out);
void tp_cuda_copy_release(void *state);

/* Device-to-device copy bandwidth (bytes read + written per second, the fastest of 10 copies of
 * 256 MiB): the roofline of `tenpak bench-model --device cuda`; 0 without a device. */
double tp_cuda_copy_bandwidth(void);

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
