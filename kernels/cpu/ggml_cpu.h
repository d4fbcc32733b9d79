/* Internal interface between the ggml cpu dispatcher (kernels/cpu/ggml_cpu.c) and its ISA-specific
 * kernels: kernels/cpu/ggml_body.h compiled as _portable (ggml_cpu.c), _avx2
 * (kernels/cpu/avx2/ggml_avx2.c) and _avx512 (kernels/cpu/avx512/ggml_avx512.c). */
#ifndef TENPAK_KERNELS_CPU_GGML_CPU_H
#define TENPAK_KERNELS_CPU_GGML_CPU_H

#include "tenpak/ggml.h"

/* nb blocks of src (elements, for F32 / F16 / BF16) into dst */
#define TP_GGML_ISA_DECL(S)                                                                           \
    void tp_ggml_dequant_blocks_##S(int type, const uint8_t *src, int64_t nb, float *dst);               \
    /* y[r], r in [r0, r1), of a quantised type; xsum[j] = sum of x[32j .. 32j + 31] */                  \
    void tp_ggml_gemv_rows_##S(int type, const uint8_t *W, size_t rb, int64_t cols, const float *x,     \
                               const float *xsum, int64_t r0, int64_t r1, float *y);                   \
    /* Y[i][r], r in [r0, r1), i < n (any type) */                                                      \
    void tp_ggml_gemm_rows_##S(int type, const uint8_t *W, size_t rb, int64_t rows, int64_t cols,       \
                               const float *X, int64_t n, int64_t r0, int64_t r1, float *Y);
TP_GGML_ISA_DECL(portable)
TP_GGML_ISA_DECL(avx2)
TP_GGML_ISA_DECL(avx512)

#endif
