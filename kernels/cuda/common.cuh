/* Internal helpers of the CUDA backend (C++ side only). */
#ifndef TENPAK_CUDA_COMMON_CUH
#define TENPAK_CUDA_COMMON_CUH

#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>

#include "kernels/cuda/tp_cuda.h"

/* Every state struct starts with this, so tp_cuda_sync can mark any of them failed. */
struct tp_cu_state {
    int failed;
};

/* Prints the first few CUDA errors (with the call and place); returns 1 when e is cudaSuccess. */
int tp_cu_ok(cudaError_t e, const char *what, const char *file, int line);
#define TP_CU(st, call) ((st)->failed |= !tp_cu_ok((call), #call, __FILE__, __LINE__))
/* After a launch: the launch error (bad configuration, no kernel image). */
#define TP_CU_LAUNCHED(st) TP_CU(st, cudaGetLastError())

/* Multiprocessors and L2 bytes of the current device (cached). */
int tp_cu_sm_count(void);
size_t tp_cu_l2_bytes(void);
/* How many copies of an input of `bytes` to rotate through so that repeated runs read device
 * memory, not L2: enough for 4x the L2, between 1 and 8. */
int tp_cu_rotation(size_t bytes);
/* Fills n floats of host memory with NaN (a failed state's fetch). */
void tp_cu_nan_fill(float *out, size_t n);

/* Programmatic dependent launch (PDL, sm_90). A kernel started by tp_cu_launch may begin while the
 * kernel before it in the stream is still finishing, so it may read before tp_pdl_wait() only what
 * no kernel writes (the weights); it calls tp_pdl_wait() before it reads activations or anything an
 * earlier kernel produced, and before its first store to global memory. tp_pdl_wait() returns once
 * the previous kernel has completed and its writes are visible; in a kernel launched without the
 * attribute it returns at once. tp_pdl_trigger() lets the next kernel's blocks be scheduled (as
 * this grid's blocks retire): call it at the start of a block, or after tp_pdl_wait() in a kernel
 * whose dependents read, before their own wait, what its predecessor writes. */
static __device__ __forceinline__ void tp_pdl_wait(void) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
static __device__ __forceinline__ void tp_pdl_trigger(void) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}
/* TENPAK_CUDA_PDL: which launches carry the attribute. 0: none (every kernel waits for the previous
 * one to finish, as a plain <<<>>> launch does); 1 (default): the tensor-core INT4 kernels (qmm_tc),
 * where it was measured faster; 2: also the CUDA-core INT4 and the LoRA kernels, measured slower
 * with it (reports/gpu/run8: gemv_simt 9.1 -> 10.9-12.0 us, LoRA 12.4 -> 13.8-14.6 us). */
int tp_cu_pdl(void);
/* kernel<<<grid, block, smem, the thread's default stream>>>(args), with the PDL attribute when
 * tp_cu_pdl() >= level (1 or 2, above); returns the launch's error. The kernel must follow
 * tp_pdl_wait()'s rule. */
template <typename... KP, typename... A>
static inline cudaError_t tp_cu_launch(int level, void (*kernel)(KP...), dim3 grid, dim3 block, size_t smem, A... args) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = cudaStreamPerThread;
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = at;
    cfg.numAttrs = tp_cu_pdl() >= level ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, kernel, args...);
}

#endif
