/* Helpers shared by kernels/cuda/lora.cu, vq.cu, lowrank.cu (C++ side only). The per-thread
 * arithmetic is written as __host__ __device__ functions so the host emulations
 * (tp_cuda_*_emulate, tests without a GPU) run the same code the kernels run. */
#ifndef TENPAK_CUDA_FAM_COMMON_CUH
#define TENPAK_CUDA_FAM_COMMON_CUH

#include <cuda_fp16.h>
#include <stdint.h>
#include <string.h>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/tp_cuda_fam.h"

#define FAM_HD __host__ __device__ __forceinline__
/* #pragma unroll inside __host__ __device__ code (the host compiler does not know it) */
#ifdef __CUDA_ARCH__
#define FAM_UNROLL _Pragma("unroll")
#else
#define FAM_UNROLL
#endif

FAM_HD float fam_bits_f(uint32_t u) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float f;
    memcpy(&f, &u, 4);
    return f;
#endif
}

FAM_HD float fam_h2f(uint16_t h) {
#ifdef __CUDA_ARCH__
    return __half2float(__ushort_as_half(h));
#else
    return tp_f16_to_f32(h);
#endif
}

FAM_HD float fam_fma(float a, float b, float c) {
#ifdef __CUDA_ARCH__
    return __fmaf_rn(a, b, c);
#else
    return fmaf(a, b, c);
#endif
}

/* int4 dequantised value by the definition (quant.h): q*s is exact, one rounding in the fma */
FAM_HD float fam_int4_elem(const uint8_t *codes, const uint16_t *scale, const uint16_t *offset, long long cstride,
                           long long ngroups, int g, long long r, long long c) {
    uint8_t b = codes[r * cstride + (c >> 1)];
    int q = (c & 1) ? (b >> 4) : (b & 15);
    long long si = r * ngroups + c / g;
    return fam_fma((float)q, fam_h2f(scale[si]), fam_h2f(offset[si]));
}

/* 32 activations of a chunk, pre-scaled in place by 16^-(e & 7) for the exponent trick below
 * (exact: powers of two); returns their plain sum (for the offset term). */
FAM_HD float fam_prep_x32(float x[32]) {
    float s0 = 0.f, s1 = 0.f;
FAM_UNROLL
    for (int e = 0; e < 32; e += 2) {
        s0 += x[e];
        s1 += x[e + 1];
    }
FAM_UNROLL
    for (int e = 0; e < 32; e++) {
        const int k = e & 7;
        const float p = k == 0 || k == 5 ? 1.f : k == 1 || k == 6 ? 0.0625f : k == 2 || k == 7 ? 0.00390625f
                        : k == 3 ? 0.000244140625f : 1.52587890625e-05f;
        x[e] *= p;
    }
    return s0 + s1;
}

/* nibble bits (q << 4k) as the float q * 16^k: (0x4B000000 | bits) - 2^23 */
FAM_HD float fam_nib(uint32_t bits) { return fam_bits_f(0x4B000000u | bits) - 8388608.0f; }

/* sum_e q_e x_e over one 32-column chunk (4 words of 8 nibbles, element 8i + k in bits 4k of
 * word i), with xs pre-scaled by fam_prep_x32 */
FAM_HD float fam_int4_dot32(const uint32_t w[4], const float xs[32]) {
    float d0 = 0.f, d1 = 0.f;
FAM_UNROLL
    for (int i = 0; i < 4; i++) {
        const uint32_t v = w[i], u = v >> 20;
        const float *x = xs + 8 * i;
        d0 = fmaf(fam_nib(v & 0xFu), x[0], d0);
        d1 = fmaf(fam_nib(v & 0xF0u), x[1], d1);
        d0 = fmaf(fam_nib(v & 0xF00u), x[2], d0);
        d1 = fmaf(fam_nib(v & 0xF000u), x[3], d1);
        d0 = fmaf(fam_nib(v & 0xF0000u), x[4], d0);
        d1 = fmaf(fam_nib(u & 0xFu), x[5], d1);
        d0 = fmaf(fam_nib(u & 0xF0u), x[6], d0);
        d1 = fmaf(fam_nib(u & 0xF00u), x[7], d1);
    }
    return d0 + d1;
}

/* sum_e levels[q_e] x_e (nf4), x not pre-scaled */
FAM_HD float fam_nf4_dot32(const uint32_t w[4], const float x[32], const float *levels) {
    float d0 = 0.f, d1 = 0.f;
FAM_UNROLL
    for (int i = 0; i < 4; i++) {
FAM_UNROLL
        for (int k = 0; k < 8; k += 2) {
            d0 = fmaf(levels[(w[i] >> (4 * k)) & 15], x[8 * i + k], d0);
            d1 = fmaf(levels[(w[i] >> (4 * k + 4)) & 15], x[8 * i + k + 1], d1);
        }
    }
    return d0 + d1;
}

/* one bounded spin on a device counter: stop waiting after ~1 s and report it (no hang) */
#define FAM_SPIN_LIMIT (1u << 24)

#endif
