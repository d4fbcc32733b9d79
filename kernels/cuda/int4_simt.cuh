/* The INT4 family's CUDA-core kernels (kernels/cuda/int4.cu's header lists what each does):
 * deq_generic, gemm_generic (any shape), deq_fast, gemv_simt, gemm_simt (cols % 32 == 0). */
#ifndef TENPAK_CUDA_INT4_SIMT_CUH
#define TENPAK_CUDA_INT4_SIMT_CUH

#include "kernels/cuda/int4_args.cuh"

/* ---------------------------------------------------------------------------------------------
 * Generic kernels (any shape)
 * ------------------------------------------------------------------------------------------- */
template <int KIND>
__global__ void deq_generic(QArgs a, float *__restrict__ W) {
    long long n = a.rows * a.cols;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        W[i] = deq_elem<KIND>(a, i / a.cols, i % a.cols);
}

/* one warp per (row, batch column) */
template <int KIND, bool XH>
__global__ void gemm_generic(QArgs a, const void *__restrict__ X, int batch, float *__restrict__ Y) {
    long long wid = (blockIdx.x * (long long)blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (wid >= a.rows * batch) return;
    long long r = wid % a.rows, b = wid / a.rows;
    float acc = 0.f;
    for (long long c = lane; c < a.cols; c += 32) acc = fmaf(deq_elem<KIND>(a, r, c), xval<XH>(X, b * a.cols + c), acc);
    for (int o = 16; o; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (!lane) Y[b * a.rows + r] = acc;
}

/* ---------------------------------------------------------------------------------------------
 * Chunk helpers (cols % 32 == 0): 32 columns = 16 bytes of codes = 4 words of 8 nibbles.
 * ------------------------------------------------------------------------------------------- */
template <bool XH>
static __device__ __forceinline__ void load_x32(const void *X, long long off, float x[32]) {
    if (XH) {
        const uint4 *p = (const uint4 *)((const uint16_t *)X + off);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            uint4 u = __ldg(p + i);
            uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
            for (int j = 0; j < 4; j++) {
                float2 f = __half22float2(*(const __half2 *)&w[j]);
                x[8 * i + 2 * j] = f.x;
                x[8 * i + 2 * j + 1] = f.y;
            }
        }
    } else {
        const float4 *p = (const float4 *)((const float *)X + off);
#pragma unroll
        for (int i = 0; i < 8; i++) {
            float4 f = __ldg(p + i);
            x[4 * i] = f.x;
            x[4 * i + 1] = f.y;
            x[4 * i + 2] = f.z;
            x[4 * i + 3] = f.w;
        }
    }
}

/* Exact dequantised values of one row's 32-column chunk (the definition, vectorised). */
template <int KIND, int G>
static __device__ __forceinline__ void decode_chunk(const QArgs &a, long long r, long long ch, uint4 cw,
                                                    const float *nf4, float w[32]) {
    constexpr int NG = G >= 32 ? 1 : 32 / G; /* groups in the chunk */
    const long long g0 = r * a.ngroups + (ch * 32) / G;
    uint32_t words[4] = {cw.x, cw.y, cw.z, cw.w};
    uint2 rw = make_uint2(0, 0);
    if (KIND == TP_Q_INT4R2) rw = __ldg((const uint2 *)(a.rcodes + r * a.rstride) + ch);
#pragma unroll
    for (int gi = 0; gi < NG; gi++) {
        float s = h2f(__ldg(a.scale + g0 + gi));
        float o = KIND == TP_Q_NF4 ? 0.f : h2f(__ldg(a.offset + g0 + gi));
        float rs = KIND == TP_Q_INT4R2 ? h2f(__ldg(a.rscale + g0 + gi)) : 0.f;
#pragma unroll
        for (int e = gi * (32 / NG); e < (gi + 1) * (32 / NG); e++) {
            int q = (words[e >> 3] >> (4 * (e & 7))) & 15;
            float v;
            if (KIND == TP_Q_NF4) v = __fmul_rn(nf4[q], s);
            else {
                v = __fmaf_rn((float)q, s, o);
                if (KIND == TP_Q_INT4R2) {
                    uint32_t rwd = e < 16 ? rw.x : rw.y;
                    int rr = (rwd >> (2 * (e & 15))) & 3;
                    v = __fmaf_rn((float)rr - 1.5f, rs, v);
                }
            }
            w[e] = v;
        }
    }
}

template <int KIND, int G>
__global__ void __launch_bounds__(256) deq_fast(QArgs a, float *__restrict__ W) {
    __shared__ float nf4[16];
    if (threadIdx.x < 16) nf4[threadIdx.x] = c_nf4[threadIdx.x];
    __syncthreads();
    const long long nch = a.cols >> 5, total = a.rows * nch;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
        long long r = i / nch, ch = i % nch;
        uint4 cw = __ldg((const uint4 *)(a.codes + r * a.cstride) + ch);
        float w[32];
        decode_chunk<KIND, G>(a, r, ch, cw, nf4, w);
        float4 *dst = (float4 *)(W + r * a.cols + ch * 32);
#pragma unroll
        for (int j = 0; j < 8; j++) __stcs(dst + j, make_float4(w[4 * j], w[4 * j + 1], w[4 * j + 2], w[4 * j + 3]));
    }
}

/* ---------------------------------------------------------------------------------------------
 * GEMV on CUDA cores (cols % 32 == 0, batch 1)
 * ------------------------------------------------------------------------------------------- */
/* nibble k of a word as q * 16^k (k < 5) or, from w >> 20, q * 16^(k-5): exponent trick */
static __device__ __forceinline__ float nib_scaled(uint32_t bits) {
    return __int_as_float(0x4B000000u | bits) - 8388608.0f;
}
/* 16^-k for the positions nib_scaled leaves */
static __device__ __forceinline__ float prescale(int k) {
    const float p[8] = {1.f, 0.0625f, 0.00390625f, 0.000244140625f, 1.52587890625e-05f, 1.f, 0.0625f, 0.00390625f};
    return p[k];
}

template <int KIND, int G, bool XH>
__global__ void __launch_bounds__(256) gemv_simt(QArgs a, const void *__restrict__ X, float *__restrict__ y) {
    constexpr int R = KIND == TP_Q_INT4R2 ? 2 : 4; /* rows per warp */
    constexpr int NG = G >= 32 ? 1 : 32 / G;      /* groups per chunk */
    constexpr int WPG = 4 / NG;                   /* code words per group */
    __shared__ float nf4[16];
    tp_pdl_trigger();
    if (threadIdx.x < 16) nf4[threadIdx.x] = c_nf4[threadIdx.x];
    __syncthreads();
    const int lane = threadIdx.x & 31;
    const long long r0 = ((long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5)) * R;
    if (r0 >= a.rows) return;
    const long long nch = a.cols >> 5;
    const uint4 *rowp[R];
    long long rr[R];
#pragma unroll
    for (int i = 0; i < R; i++) {
        rr[i] = r0 + i < a.rows ? r0 + i : a.rows - 1;
        rowp[i] = (const uint4 *)(a.codes + rr[i] * a.cstride);
    }
    float acc[R];
#pragma unroll
    for (int i = 0; i < R; i++) acc[i] = 0.f;
    uint4 cur[R], nxt[R];
    if (lane < nch) {
#pragma unroll
        for (int i = 0; i < R; i++) cur[i] = __ldcs(rowp[i] + lane);
    }
    tp_pdl_wait(); /* codes first (common.cuh), activations and y after */
    for (long long ch = lane; ch < nch; ch += 32) {
        if (ch + 32 < nch) {
#pragma unroll
            for (int i = 0; i < R; i++) nxt[i] = __ldcs(rowp[i] + ch + 32);
        }
        float x[32];
        load_x32<XH>(X, ch * 32, x);
        float sx[NG];
#pragma unroll
        for (int gi = 0; gi < NG; gi++) {
            float t = 0.f;
#pragma unroll
            for (int e = gi * 8 * WPG; e < (gi + 1) * 8 * WPG; e++) t += x[e];
            sx[gi] = t;
        }
        float xr[KIND == TP_Q_INT4R2 ? 32 : 1];
        if (KIND == TP_Q_INT4R2) {
#pragma unroll
            for (int e = 0; e < 32; e++) xr[e % (KIND == TP_Q_INT4R2 ? 32 : 1)] = x[e];
        }
        if (KIND != TP_Q_NF4) {
#pragma unroll
            for (int e = 0; e < 32; e++) x[e] *= prescale(e & 7);
        }
#pragma unroll
        for (int i = 0; i < R; i++) {
            const long long g0 = rr[i] * a.ngroups + (ch * 32) / G;
            uint32_t wv[4] = {cur[i].x, cur[i].y, cur[i].z, cur[i].w};
            uint2 rw = make_uint2(0, 0);
            if (KIND == TP_Q_INT4R2) rw = __ldg((const uint2 *)(a.rcodes + rr[i] * a.rstride) + ch);
#pragma unroll
            for (int gi = 0; gi < NG; gi++) {
                float dot = 0.f, dot2 = 0.f;
#pragma unroll
                for (int wi = gi * WPG; wi < (gi + 1) * WPG; wi++) {
                    const uint32_t w = wv[wi];
                    const float *xp = x + 8 * wi;
                    if (KIND == TP_Q_NF4) {
#pragma unroll
                        for (int k = 0; k < 8; k += 2) {
                            dot = fmaf(nf4[(w >> (4 * k)) & 15], xp[k], dot);
                            dot2 = fmaf(nf4[(w >> (4 * k + 4)) & 15], xp[k + 1], dot2);
                        }
                    } else {
                        const uint32_t u = w >> 20;
                        dot = fmaf(nib_scaled(w & 0xFu), xp[0], dot);
                        dot2 = fmaf(nib_scaled(w & 0xF0u), xp[1], dot2);
                        dot = fmaf(nib_scaled(w & 0xF00u), xp[2], dot);
                        dot2 = fmaf(nib_scaled(w & 0xF000u), xp[3], dot2);
                        dot = fmaf(nib_scaled(w & 0xF0000u), xp[4], dot);
                        dot2 = fmaf(nib_scaled(u & 0xFu), xp[5], dot2);
                        dot = fmaf(nib_scaled(u & 0xF0u), xp[6], dot);
                        dot2 = fmaf(nib_scaled(u & 0xF00u), xp[7], dot2);
                    }
                }
                dot += dot2;
                const float s = h2f(__ldg(a.scale + g0 + gi));
                if (KIND == TP_Q_NF4) {
                    acc[i] = fmaf(s, dot, acc[i]);
                } else {
                    const float o = h2f(__ldg(a.offset + g0 + gi));
                    float t = fmaf(s, dot, o * sx[gi]);
                    if (KIND == TP_Q_INT4R2) {
                        /* (r - 1.5) rs: sum r x over the group, minus 1.5 sum x */
                        float rd = 0.f;
#pragma unroll
                        for (int e = gi * 8 * WPG; e < (gi + 1) * 8 * WPG; e++) {
                            uint32_t rwd = e < 16 ? rw.x : rw.y;
                            rd = fmaf((float)((rwd >> (2 * (e & 15))) & 3), xr[e % (KIND == TP_Q_INT4R2 ? 32 : 1)], rd);
                        }
                        t = fmaf(h2f(__ldg(a.rscale + g0 + gi)), rd - 1.5f * sx[gi], t);
                    }
                    acc[i] += t;
                }
            }
        }
#pragma unroll
        for (int i = 0; i < R; i++) cur[i] = nxt[i];
    }
#pragma unroll
    for (int i = 0; i < R; i++)
        for (int o = 16; o; o >>= 1) acc[i] += __shfl_xor_sync(0xffffffffu, acc[i], o);
    if (!lane) {
#pragma unroll
        for (int i = 0; i < R; i++)
            if (r0 + i < a.rows) y[r0 + i] = acc[i];
    }
}

/* ---------------------------------------------------------------------------------------------
 * GEMM on CUDA cores (cols % 32 == 0): a warp owns 2 rows and 4 batch columns; blockIdx.x is
 * the batch tile (fastest), so the blocks sharing rows run together and share them in L2.
 * ------------------------------------------------------------------------------------------- */
template <int KIND, int G, bool XH>
__global__ void __launch_bounds__(256) gemm_simt(QArgs a, const void *__restrict__ X, int batch, float *__restrict__ Y) {
    constexpr int R = 2, NB = 4;
    __shared__ float nf4[16];
    tp_pdl_trigger();
    tp_pdl_wait();
    if (threadIdx.x < 16) nf4[threadIdx.x] = c_nf4[threadIdx.x];
    __syncthreads();
    const int lane = threadIdx.x & 31;
    const long long r0 = ((long long)blockIdx.y * (blockDim.x >> 5) + (threadIdx.x >> 5)) * R;
    const int b0 = blockIdx.x * NB;
    if (r0 >= a.rows) return;
    const long long nch = a.cols >> 5;
    long long rr[R];
#pragma unroll
    for (int i = 0; i < R; i++) rr[i] = r0 + i < a.rows ? r0 + i : a.rows - 1;
    float acc[R][NB];
#pragma unroll
    for (int i = 0; i < R; i++)
#pragma unroll
        for (int j = 0; j < NB; j++) acc[i][j] = 0.f;
    for (long long ch = lane; ch < nch; ch += 32) {
        float w[R][32];
#pragma unroll
        for (int i = 0; i < R; i++) {
            uint4 cw = __ldcs((const uint4 *)(a.codes + rr[i] * a.cstride) + ch);
            decode_chunk<KIND, G>(a, rr[i], ch, cw, nf4, w[i]);
        }
#pragma unroll
        for (int j = 0; j < NB; j++) {
            if (b0 + j >= batch) break;
            float x[32];
            load_x32<XH>(X, (long long)(b0 + j) * a.cols + ch * 32, x);
#pragma unroll
            for (int i = 0; i < R; i++) {
                float d0 = 0.f, d1 = 0.f;
#pragma unroll
                for (int e = 0; e < 32; e += 2) {
                    d0 = fmaf(w[i][e], x[e], d0);
                    d1 = fmaf(w[i][e + 1], x[e + 1], d1);
                }
                acc[i][j] += d0 + d1;
            }
        }
    }
#pragma unroll
    for (int i = 0; i < R; i++)
#pragma unroll
        for (int j = 0; j < NB; j++)
            for (int o = 16; o; o >>= 1) acc[i][j] += __shfl_xor_sync(0xffffffffu, acc[i][j], o);
    if (!lane) {
#pragma unroll
        for (int i = 0; i < R; i++)
#pragma unroll
            for (int j = 0; j < NB; j++)
                if (r0 + i < a.rows && b0 + j < batch) Y[(long long)(b0 + j) * a.rows + r0 + i] = acc[i][j];
    }
}

#endif
