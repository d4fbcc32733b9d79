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

#endif
