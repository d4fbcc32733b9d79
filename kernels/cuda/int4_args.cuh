/* The arguments every INT4-family kernel takes (kernels/cuda/int4.cu launches them) and the
 * element-by-element definition the generic kernels use. Included by int4.cu only: c_nf4 lives in
 * its translation unit. */
#ifndef TENPAK_CUDA_INT4_ARGS_CUH
#define TENPAK_CUDA_INT4_ARGS_CUH

#include <cuda_fp16.h>

#include "kernels/cuda/common.cuh"

__constant__ float c_nf4[16];

struct QArgs {
    const uint8_t *codes;
    const uint16_t *scale, *offset;
    const uint8_t *rcodes;
    const uint16_t *rscale;
    long long rows, cols, ngroups, cstride, rstride;
    int g;
};

static __device__ __forceinline__ float h2f(uint16_t h) { return __half2float(__ushort_as_half(h)); }

/* x[b][c] as float, from fp32 or fp16 storage */
template <bool XH>
static __device__ __forceinline__ float xval(const void *X, long long i) {
    if (XH) return h2f(((const uint16_t *)X)[i]);
    return ((const float *)X)[i];
}

/* The definition (include/tenpak/quant.h), element by element. The products q*s and
 * (r-1.5)*rs are exact in fp32, so the fused multiply-adds round exactly like the reference's
 * separate multiply and add. */
template <int KIND>
static __device__ __forceinline__ float deq_elem(const QArgs &a, long long r, long long c) {
    uint8_t b = a.codes[r * a.cstride + (c >> 1)];
    int q = (c & 1) ? (b >> 4) : (b & 15);
    long long si = r * a.ngroups + c / a.g;
    float s = h2f(a.scale[si]);
    if (KIND == TP_Q_NF4) return __fmul_rn(c_nf4[q], s);
    float w = __fmaf_rn((float)q, s, h2f(a.offset[si]));
    if (KIND == TP_Q_INT4R2) {
        int rr = (a.rcodes[r * a.rstride + (c >> 2)] >> (2 * (c & 3))) & 3;
        w = __fmaf_rn((float)rr - 1.5f, h2f(a.rscale[si]), w);
    }
    return w;
}

#endif
