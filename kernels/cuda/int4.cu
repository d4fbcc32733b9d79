/* The INT4 family on the GPU: dequantise (exact), fused dequant-GEMV and dequant-GEMM for
 * int4 (g8..g128), int4r2 and nf4, in the layout of include/tenpak/quant.h (read as stored:
 * no repacking at prepare).
 *
 * Kernels (kernels/cuda/NOTES.md has the numbers):
 *   deq_generic / gemv_generic / gemm_generic : any shape, one element at a time (small and odd
 *       verify shapes);
 *   deq_fast    : cols % 32 == 0; one thread decodes 32 columns (16 bytes of codes) exactly;
 *   gemv_simt   : cols % 32 == 0, batch 1, CUDA cores: a warp owns 4 rows, a lane 16-byte
 *       chunks of codes (double-buffered). int4 uses the factored form
 *       y = sum_groups s * sum(q x) + o * sum(x), with the codes turned into floats by the
 *       exponent trick (0x4B000000 | nibble bits) - 2^23, which leaves q * 16^k: the
 *       activations are pre-scaled by 16^-k (exact) once per chunk and reused for the 4 rows;
 *   gemm_simt   : cols % 32 == 0, any batch, CUDA cores: a warp decodes 2 rows x 32 columns
 *       exactly once and applies them to 4 batch columns;
 *   qmm_tc      : int4 with g in {32, 64, 128}, cols % g == 0, fp16 activations (the _f16a
 *       variants), any batch: tensor cores (mma.sync m16n8k16, fp16 x fp16 -> fp32). The A
 *       operand is the raw codes q (0..15, exact in fp16, made with two LOP3 and one HFMA2
 *       per pair), B the activations, so every product q*x is exact and the sum of one group
 *       is accumulated in fp32; per group y += s * sum(q x) + o * sum(x), sum(x) from a second
 *       mma with an all-ones A (it lands in the accumulator layout, no shuffles). The k order
 *       inside a group is permuted (same permutation for A and B) so each thread decodes the
 *       16-byte chunk it loaded. A block of 4 warps owns 16 rows and splits the groups of a row
 *       among its warps (GEMV needs the parallelism), reducing through shared memory.
 */
#include <cuda_fp16.h>
#include <stdlib.h>
#include <string.h>

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

/* ---------------------------------------------------------------------------------------------
 * Tensor-core GEMV/GEMM: int4, g in {32, 64, 128}, cols % g == 0, fp16 activations.
 * ------------------------------------------------------------------------------------------- */
static __device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* One code word (8 nibbles q0..q7) as four fp16 pairs (q0,q4) (q1,q5) (q2,q6) (q3,q7). */
static __device__ __forceinline__ void word_pairs(uint32_t w, uint32_t p[4]) {
    const uint32_t MAGIC = 0x64006400u; /* half 1024 in both lanes */
    uint32_t t0 = (w & 0x000F000Fu) | MAGIC, t1 = (w & 0x00F000F0u) | MAGIC;
    uint32_t u = w >> 8;
    uint32_t t2 = (u & 0x000F000Fu) | MAGIC, t3 = (u & 0x00F000F0u) | MAGIC;
    const __half2 k1024 = __halves2half2(__ushort_as_half(0x6400), __ushort_as_half(0x6400));
    const __half2 k16th = __halves2half2(__ushort_as_half(0x2C00), __ushort_as_half(0x2C00)); /* 1/16 */
    const __half2 km64 = __halves2half2(__ushort_as_half(0xD400), __ushort_as_half(0xD400));  /* -64 */
    __half2 h0 = __hsub2(*(__half2 *)&t0, k1024);
    __half2 h1 = __hfma2(*(__half2 *)&t1, k16th, km64);
    __half2 h2 = __hsub2(*(__half2 *)&t2, k1024);
    __half2 h3 = __hfma2(*(__half2 *)&t3, k16th, km64);
    p[0] = *(uint32_t *)&h0;
    p[1] = *(uint32_t *)&h1;
    p[2] = *(uint32_t *)&h2;
    p[3] = *(uint32_t *)&h3;
}

template <int NB> struct CodeVec;
template <> struct CodeVec<16> {
    static __device__ __forceinline__ void load(const uint8_t *p, uint32_t w[4]) {
        uint4 v = __ldcs((const uint4 *)p);
        w[0] = v.x, w[1] = v.y, w[2] = v.z, w[3] = v.w;
    }
};
template <> struct CodeVec<8> {
    static __device__ __forceinline__ void load(const uint8_t *p, uint32_t w[2]) {
        uint2 v = __ldcs((const uint2 *)p);
        w[0] = v.x, w[1] = v.y;
    }
};
template <> struct CodeVec<4> {
    static __device__ __forceinline__ void load(const uint8_t *p, uint32_t w[1]) { w[0] = __ldcs((const unsigned int *)p); }
};

/* One pipeline stage of qmm_tc: a k-block of 128 columns (GPI groups of G) for MT m-tiles:
 * raw code words, raw fp16 scale/offset bits and (XPF) the activation vectors, all loaded one
 * stage ahead of their use so that no DRAM or L2 latency sits inside an iteration. */
template <int G, int NT, int MT, bool XPF>
struct TcStage {
    static constexpr int GPI = 128 / G, NW = G / 32;
    uint32_t c[MT][2][GPI][NW];
    unsigned short s[MT][2][GPI][2];
    uint4 x[XPF ? NT : 1][GPI][NW];
};

template <int G, int NT, int MT, bool XPF>
static __device__ __forceinline__ void tc_load(TcStage<G, NT, MT, XPF> &st, const QArgs &a, long long kb,
                                               const long long (&rows)[MT][2], const uint16_t *const (&xrow)[NT],
                                               const bool (&xok)[NT], int tq) {
    constexpr int GPI = 128 / G, P = G / 4, PB = P / 2;
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int h = 0; h < 2; h++)
#pragma unroll
            for (int j = 0; j < GPI; j++) {
                CodeVec<PB>::load(a.codes + rows[mt][h] * a.cstride + kb * 64 + j * (G / 2) + tq * PB, st.c[mt][h][j]);
                const long long si = rows[mt][h] * a.ngroups + kb * GPI + j;
                st.s[mt][h][j][0] = __ldcs(a.scale + si);
                st.s[mt][h][j][1] = __ldcs(a.offset + si);
            }
    if (XPF) {
#pragma unroll
        for (int nt = 0; nt < (XPF ? NT : 1); nt++)
#pragma unroll
            for (int j = 0; j < GPI; j++)
#pragma unroll
                for (int i = 0; i < G / 32; i++)
                    st.x[nt][j][i] = xok[nt] ? __ldg((const uint4 *)(xrow[nt] + kb * 128 + j * G) + i) : make_uint4(0, 0, 0, 0);
    }
}

template <int G, int NT, int MT, bool XPF>
static __device__ __forceinline__ void tc_compute(const TcStage<G, NT, MT, XPF> &st, long long kb,
                                                  const uint16_t *const (&xrow)[NT], const bool (&xok)[NT],
                                                  float (&acc)[MT][NT][4]) {
    constexpr int GPI = 128 / G, NW = G / 32;
    const uint32_t ONES[4] = {0x3C003C00u, 0x3C003C00u, 0x3C003C00u, 0x3C003C00u};
#pragma unroll
    for (int j = 0; j < GPI; j++) {
        float cg[MT][NT][4], sm[NT][4];
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
#pragma unroll
            for (int e = 0; e < 4; e++) sm[nt][e] = 0.f;
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int e = 0; e < 4; e++) cg[mt][nt][e] = 0.f;
        }
#pragma unroll
        for (int i = 0; i < NW; i++) {
            uint32_t q[MT][2][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                word_pairs(st.c[mt][0][j][i], q[mt][0]);
                word_pairs(st.c[mt][1][j][i], q[mt][1]);
            }
#pragma unroll
            for (int nt = 0; nt < NT; nt++) {
                uint4 xv;
                if (XPF) xv = st.x[XPF ? nt : 0][j][i];
                else xv = xok[nt] ? __ldg((const uint4 *)(xrow[nt] + kb * 128 + j * G) + i) : make_uint4(0, 0, 0, 0);
                /* k-step 0: slots (2t,2t+1) = word columns (0,4), (2t+8,2t+9) = (1,5);
                 * k-step 1: (2,6) and (3,7) */
                const uint32_t b00 = __byte_perm(xv.x, xv.z, 0x5410), b01 = __byte_perm(xv.x, xv.z, 0x7632);
                const uint32_t b10 = __byte_perm(xv.y, xv.w, 0x5410), b11 = __byte_perm(xv.y, xv.w, 0x7632);
                mma16816(sm[nt], ONES, b00, b01);
                mma16816(sm[nt], ONES, b10, b11);
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    /* A regs: {row g, slots lo}, {row g+8, lo}, {g, hi}, {g+8, hi} */
                    const uint32_t A0[4] = {q[mt][0][0], q[mt][1][0], q[mt][0][1], q[mt][1][1]};
                    const uint32_t A1[4] = {q[mt][0][2], q[mt][1][2], q[mt][0][3], q[mt][1][3]};
                    mma16816(cg[mt][nt], A0, b00, b01);
                    mma16816(cg[mt][nt], A1, b10, b11);
                }
            }
        }
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            const float sa = h2f(st.s[mt][0][j][0]), oa = h2f(st.s[mt][0][j][1]);
            const float sb = h2f(st.s[mt][1][j][0]), ob = h2f(st.s[mt][1][j][1]);
#pragma unroll
            for (int nt = 0; nt < NT; nt++) {
                acc[mt][nt][0] += fmaf(sa, cg[mt][nt][0], oa * sm[nt][0]);
                acc[mt][nt][1] += fmaf(sa, cg[mt][nt][1], oa * sm[nt][1]);
                acc[mt][nt][2] += fmaf(sb, cg[mt][nt][2], ob * sm[nt][2]);
                acc[mt][nt][3] += fmaf(sb, cg[mt][nt][3], ob * sm[nt][3]);
            }
        }
    }
}

/* int4, g in {32, 64, 128}, cols % 128 == 0, fp16 activations. A block of KS warps owns
 * 16*MT rows; its warps take the 128-column k-blocks of those rows in turn (kb = warp, warp+KS,
 * ...) and reduce through shared memory. blockIdx.x = row tile * nslices + batch slice, so the
 * slices of one row tile run side by side and share its codes in L2. D stages of codes and
 * scales in registers: D-1 k-blocks in flight while one is computed (a ring, unrolled so that
 * every stage index is a constant). PDL (common.cuh): the first D-1 stages of codes are loaded
 * before tp_pdl_wait() when the activations are not part of a stage (XPF false). */
template <int G, int NT, int MT, int KS, int MINB = 1, int XP = -1, int D = 2>
__global__ void __launch_bounds__(32 * KS, MINB) qmm_tc(QArgs a, const uint16_t *__restrict__ X, int batch, int nslices,
                                                   float *__restrict__ Y) {
    constexpr bool XPF = XP < 0 ? NT <= 2 : XP != 0; /* activations prefetched with the codes */
    static_assert(D >= 2 && D <= 8, "stages");
    tp_pdl_trigger();
    if (XPF) tp_pdl_wait();
    constexpr int P = G / 4;
    __shared__ float red[KS][MT][NT][4][32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, gq = lane >> 2, tq = lane & 3;
    const long long tile = blockIdx.x / nslices;
    const int slice = blockIdx.x % nslices;
    const long long rbase = tile * 16 * MT;
    long long rows[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int h = 0; h < 2; h++) rows[mt][h] = min(rbase + mt * 16 + gq + 8 * h, a.rows - 1);
    const long long nkb = a.cols / 128;
    const int nbase = slice * NT * 8;
    const uint16_t *xrow[NT];
    bool xok[NT];
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        int n = nbase + nt * 8 + gq;
        xok[nt] = n < batch;
        xrow[nt] = X + (long long)(xok[nt] ? n : 0) * a.cols + tq * P;
    }
    float acc[MT][NT][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[mt][nt][e] = 0.f;
    TcStage<G, NT, MT, XPF> st[D];
#pragma unroll
    for (int i = 0; i < D - 1; i++)
        if (warp + i * KS < nkb) tc_load(st[i], a, warp + i * KS, rows, xrow, xok, tq);
    if (!XPF) tp_pdl_wait();
    for (long long kb0 = warp; kb0 < nkb; kb0 += D * KS) { /* stage s computes while the D-1 after it are in flight */
#pragma unroll
        for (int s = 0; s < D; s++) {
            const long long kb = kb0 + s * KS;
            if (kb < nkb) {
                if (kb + (D - 1) * KS < nkb) tc_load(st[(s + D - 1) % D], a, kb + (D - 1) * KS, rows, xrow, xok, tq);
                tc_compute(st[s], kb, xrow, xok, acc);
            }
        }
    }
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) red[warp][mt][nt][e][lane] = acc[mt][nt][e];
    __syncthreads();
    if (warp) return;
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float t = red[0][mt][nt][e][lane];
#pragma unroll
                for (int w = 1; w < KS; w++) t += red[w][mt][nt][e][lane];
                const long long r = rbase + mt * 16 + gq + (e >= 2 ? 8 : 0);
                const int n = nbase + nt * 8 + 2 * tq + (e & 1);
                if (r < a.rows && n < batch) Y[(long long)n * a.rows + r] = t;
            }
}

/* ---------------------------------------------------------------------------------------------
 * Tensor-core GEMV/GEMM v3 (qmm_async): the arithmetic of qmm_tc (tc_compute), fed through a
 * D-stage cp.async pipeline in shared memory instead of registers. Every thread copies exactly
 * the 16 code bytes per row it will decode (so codes need no barrier: cp.async.wait_group makes
 * a thread's own copies visible to it) and one scale-or-offset word per m-tile, which the four
 * lanes of a quad share (a __syncwarp orders those). D stages in flight per warp without holding
 * registers: the bytes in flight per SM no longer depend on the register count (NOTES.md, v3).
 * Conditions: int4 g32/g64/g128, cols % 128 == 0, and for g128 an even number of groups per row
 * (the 4-byte copy of a scale takes the aligned pair that holds it).
 * ------------------------------------------------------------------------------------------- */
template <int N>
static __device__ __forceinline__ void cp_async(void *dst, const void *src) {
    const unsigned s = (unsigned)__cvta_generic_to_shared(dst);
    if (N == 16) asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(src) : "memory");
    else asm volatile("cp.async.ca.shared.global [%0], [%1], %2;\n" ::"r"(s), "l"(src), "n"(N) : "memory");
}
static __device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
static __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

template <int G, int NT, int MT, int KS, int D>
struct AsyncLayout {
    static constexpr int NTHR = 32 * KS;
    static constexpr size_t codes = (size_t)D * MT * 2 * NTHR * 16; /* [D][MT][2][thread] x 16 B */
    static constexpr size_t scales = (size_t)D * MT * NTHR * 8;     /* [D][MT][thread] x 8 B */
    static constexpr size_t red = (size_t)KS * MT * NT * 4 * 32 * 4;
    static constexpr size_t bytes = codes + scales + red;
};

template <int G, int NT, int MT, int KS, int D>
__global__ void __launch_bounds__(32 * KS) qmm_async(QArgs a, const uint16_t *__restrict__ X, int batch, int nslices,
                                                     float *__restrict__ Y) {
    typedef AsyncLayout<G, NT, MT, KS, D> L;
    constexpr int GPI = 128 / G, NW = G / 32, P = G / 4, PB = P / 2; /* PB code bytes a thread takes per row per group */
    constexpr int SB = G == 32 ? 8 : 4;                                 /* scale bytes one copy takes */
    constexpr int NTHR = L::NTHR;
    extern __shared__ __align__(16) unsigned char smem[];
    uint4 *sC = (uint4 *)smem;
    uint2 *sS = (uint2 *)(smem + L::codes);
    float *red = (float *)(smem + L::codes + L::scales);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, gq = lane >> 2, tq = lane & 3;
    const long long tile = blockIdx.x / nslices;
    const int slice = blockIdx.x % nslices;
    const long long rbase = tile * 16 * MT;
    long long rows[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int h = 0; h < 2; h++) rows[mt][h] = min(rbase + mt * 16 + gq + 8 * h, a.rows - 1);
    const long long nkb = a.cols / 128;
    const int nbase = slice * NT * 8;
    const uint16_t *xrow[NT];
    bool xok[NT];
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        int n = nbase + nt * 8 + gq;
        xok[nt] = n < batch;
        xrow[nt] = X + (long long)(xok[nt] ? n : 0) * a.cols + tq * P;
    }
    float acc[MT][NT][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[mt][nt][e] = 0.f;
    /* this warp's k-blocks: warp, warp + KS, ... */
    const int nj = nkb > warp ? (int)((nkb - warp + KS - 1) / KS) : 0;
    /* quad lane tq copies the scale (tq even) or offset (tq odd) words of row h = tq >> 1 */
    const uint16_t *sarr = (tq & 1) ? a.offset : a.scale;
    auto issue = [&](int j) {
        const int slot = j % D;
        const long long kb = warp + (long long)KS * j;
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const uint8_t *src = a.codes + rows[mt][h] * a.cstride + kb * 64 + tq * PB;
                unsigned char *dst = (unsigned char *)(sC + ((slot * MT + mt) * 2 + h) * NTHR + tid);
#pragma unroll
                for (int p = 0; p < GPI; p++) cp_async<PB>(dst + p * PB, src + p * (G / 2));
            }
            const long long si = rows[mt][tq >> 1] * a.ngroups + (G == 128 ? (kb & ~1LL) : kb * GPI);
            cp_async<SB>(sS + (slot * MT + mt) * NTHR + tid, sarr + si);
        }
    };
#pragma unroll
    for (int p = 0; p < D - 1; p++) {
        if (p < nj) issue(p);
        cp_async_commit(); /* empty groups keep the count uniform */
    }
    for (int j = 0; j < nj; j++) {
        if (j + D - 1 < nj) issue(j + D - 1); /* the slot of j - 1: every lane is done with it */
        cp_async_commit();
        cp_async_wait<D - 1>(); /* stage j has landed */
        __syncwarp();           /* ... and the quad's scale words are visible to its four lanes */
        const int slot = j % D;
        const long long kb = warp + (long long)KS * j;
        TcStage<G, NT, MT, false> st;
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const uint4 v = sC[((slot * MT + mt) * 2 + h) * NTHR + tid];
                const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
                for (int p = 0; p < GPI; p++)
#pragma unroll
                    for (int i = 0; i < NW; i++) st.c[mt][h][p][i] = w[p * NW + i];
                const uint2 sv = sS[(slot * MT + mt) * NTHR + (tid & ~3) + 2 * h];
                const uint2 ov = sS[(slot * MT + mt) * NTHR + (tid & ~3) + 2 * h + 1];
#pragma unroll
                for (int p = 0; p < GPI; p++) {
                    const int idx = G == 128 ? (int)(kb & 1) : p;
                    const uint32_t sw = idx < 2 ? sv.x : sv.y, ow = idx < 2 ? ov.x : ov.y;
                    st.s[mt][h][p][0] = (unsigned short)(sw >> (16 * (idx & 1)));
                    st.s[mt][h][p][1] = (unsigned short)(ow >> (16 * (idx & 1)));
                }
            }
        }
        tc_compute(st, kb, xrow, xok, acc);
        __syncwarp(); /* every lane has read this slot before the next issue refills it */
    }
    cp_async_wait<0>();
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) red[(((warp * MT + mt) * NT + nt) * 4 + e) * 32 + lane] = acc[mt][nt][e];
    __syncthreads();
    if (warp) return;
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float t = 0.f;
#pragma unroll
                for (int w = 0; w < KS; w++) t += red[(((w * MT + mt) * NT + nt) * 4 + e) * 32 + lane];
                const long long r = rbase + mt * 16 + gq + (e >= 2 ? 8 : 0);
                const int n = nbase + nt * 8 + 2 * tq + (e & 1);
                if (r < a.rows && n < batch) Y[(long long)n * a.rows + r] = t;
            }
}

/* Launches qmm_async<G, NT, MT, KS, D> over every row tile (x nslices); raises the kernel's
 * dynamic shared-memory limit once. Returns 0 when the launch could not be configured. */
template <int G, int NT, int MT, int KS, int D>
static int launch_async(const QArgs &a, const uint16_t *X, int batch, int nslices, float *Y) {
    typedef AsyncLayout<G, NT, MT, KS, D> L;
    static int configured = 0;
    if (!configured) {
        if (cudaFuncSetAttribute(qmm_async<G, NT, MT, KS, D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 (int)L::bytes) != cudaSuccess)
            return 0;
        configured = 1;
    }
    const long long blocks = (a.rows + 16 * MT - 1) / (16 * MT) * nslices;
    qmm_async<G, NT, MT, KS, D><<<(unsigned)blocks, 32 * KS, L::bytes>>>(a, X, batch, nslices, Y);
    return 1;
}

/* ---------------------------------------------------------------------------------------------
 * State, dispatch, registry glue
 * ------------------------------------------------------------------------------------------- */
enum { OP_DEQ = 0, OP_GEMV = 1, OP_GEMM = 2 };

struct q_state {
    tp_cu_state base;
    int op, kind, g, f16a, allow_tc, batch;
    int ncopy, next;
    QArgs args[8]; /* one per rotated copy of the weights */
    void *blob[8];
    void *X;  /* batch x cols, fp32 or fp16 */
    float *Y; /* output: rows x cols (dequant) or batch x rows */
    size_t out_count;
};

/* The packed arrays of q on the device, each 256-byte aligned inside one allocation: copy c of
 * the state's rotation (s->blob[c], s->args[c]). */
static size_t q_array_sizes(const tp_qmat *q, size_t sz[5]) {
    const size_t nsc = (size_t)(q->rows * q->ngroups);
    sz[0] = (size_t)(q->rows * q->code_stride);
    sz[1] = nsc * 2;
    sz[2] = q->offset ? nsc * 2 : 0;
    sz[3] = q->rcodes ? (size_t)(q->rows * q->rcode_stride) : 0;
    sz[4] = q->rscale ? nsc * 2 : 0;
    size_t total = 0;
    for (int i = 0; i < 5; i++) total += (sz[i] + 255) & ~(size_t)255;
    return total;
}
static size_t q_device_bytes(const tp_qmat *q) {
    size_t sz[5];
    return q_array_sizes(q, sz);
}
static void upload_copy(q_state *s, const tp_qmat *q, int c) {
    size_t sz[5];
    const size_t total = q_array_sizes(q, sz);
    const void *src[5] = {q->codes, q->scale, q->offset, q->rcodes, q->rscale};
    TP_CU(&s->base, cudaMemcpyToSymbol(c_nf4, TP_NF4_LEVELS, sizeof(float) * 16));
    TP_CU(&s->base, cudaMalloc(&s->blob[c], total));
    if (s->base.failed) return;
    char *b = (char *)s->blob[c];
    const void *at[5];
    size_t off = 0;
    for (int i = 0; i < 5; i++) {
        at[i] = sz[i] ? b + off : NULL;
        if (sz[i]) TP_CU(&s->base, cudaMemcpy(b + off, src[i], sz[i], cudaMemcpyHostToDevice));
        off += (sz[i] + 255) & ~(size_t)255;
    }
    QArgs &a = s->args[c];
    a.codes = (const uint8_t *)at[0];
    a.scale = (const uint16_t *)at[1];
    a.offset = (const uint16_t *)at[2];
    a.rcodes = (const uint8_t *)at[3];
    a.rscale = (const uint16_t *)at[4];
    a.rows = q->rows;
    a.cols = q->cols;
    a.ngroups = q->ngroups;
    a.cstride = q->code_stride;
    a.rstride = q->rcode_stride;
    a.g = q->g;
}

extern "C" void *tp_cuda_q_prepare(const tp_qmat *q, const float *X, int64_t batch, const char *op, int f16a,
                                   int allow_tc) {
    q_state *s = (q_state *)calloc(1, sizeof *s);
    if (!s) return NULL;
    s->op = !strcmp(op, "dequant") ? OP_DEQ : !strcmp(op, "gemv") ? OP_GEMV : OP_GEMM;
    s->kind = q->kind;
    s->g = q->g;
    s->f16a = f16a;
    s->allow_tc = allow_tc;
    s->batch = (int)batch;
    s->ncopy = s->op == OP_DEQ ? 1 : tp_cu_rotation(q_device_bytes(q));
    for (int c = 0; c < s->ncopy && !s->base.failed; c++) upload_copy(s, q, c);
    if (s->op != OP_DEQ) {
        size_t n = (size_t)(batch * q->cols);
        if (f16a) {
            uint16_t *xh = (uint16_t *)malloc(n * 2 + 2);
            if (!xh) s->base.failed = 1;
            else {
                for (size_t i = 0; i < n; i++) xh[i] = tp_f32_to_f16(X[i]); /* exact: f16a inputs */
                TP_CU(&s->base, cudaMalloc(&s->X, n * 2 + 16));
                if (!s->base.failed) TP_CU(&s->base, cudaMemcpy(s->X, xh, n * 2, cudaMemcpyHostToDevice));
                free(xh);
            }
        } else {
            TP_CU(&s->base, cudaMalloc(&s->X, n * 4 + 16));
            if (!s->base.failed) TP_CU(&s->base, cudaMemcpy(s->X, X, n * 4, cudaMemcpyHostToDevice));
        }
    }
    s->out_count = s->op == OP_DEQ ? (size_t)(q->rows * q->cols) : (size_t)(batch * q->rows);
    TP_CU(&s->base, cudaMalloc((void **)&s->Y, s->out_count * 4 + 16));
    if (!s->base.failed) TP_CU(&s->base, cudaMemset(s->Y, 0xff, s->out_count * 4)); /* NaN poison */
    return s;
}

static int grid_for(long long work, int threads) {
    long long b = (work + threads - 1) / threads;
    long long cap = (long long)tp_cu_sm_count() * 32;
    return (int)(b < 1 ? 1 : b > cap ? cap : b);
}

/* TENPAK_CUDA_TC_MT=1: one m-tile per warp for batch 9..16 too (an experiment switch; see NOTES.md) */
static int tc_mt1(void) {
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("TENPAK_CUDA_TC_MT");
        v = e && atoi(e) == 1;
    }
    return v;
}

static int gemm_cfg(void) {
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("TENPAK_CUDA_GEMM_CFG");
        v = e && *e ? e[0] : 'a';
    }
    return v;
}

static int gemv_cfg(void) {
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("TENPAK_CUDA_GEMV_CFG");
        v = e && *e ? e[0] : 0; /* 0: the default of the group size (launch_kind_g) */
    }
    return v;
}

/* TENPAK_CUDA_V3=1: qmm_async instead of the register-pipelined qmm_tc (off by default: slower on
 * the H200, NOTES.md v3);
 * TENPAK_CUDA_V3_CFG=<letter>: another qmm_async configuration (NOTES.md lists them). */
static int env_char(const char *name, int dflt) {
    const char *e = getenv(name);
    return e && *e ? e[0] : dflt;
}
static int v3_on(void) {
    static int v = -1;
    if (v < 0) v = env_char("TENPAK_CUDA_V3", '0') != '0';
    return v;
}
static int v3_cfg(void) {
    static int v = -1;
    if (v < 0) v = env_char("TENPAK_CUDA_V3_CFG", 'a');
    return v;
}

/* qmm_async for batch <= 16; 0 when it does not apply (the caller falls back to qmm_tc) */
template <int G>
static int launch_v3(q_state *s, const QArgs &a) {
    const int batch = s->batch, tiles8 = (batch + 7) / 8;
    if (!v3_on() || tiles8 > 2 || (G == 128 && (a.ngroups & 1))) return 0;
    const uint16_t *X = (const uint16_t *)s->X;
    const int cfg = v3_cfg();
    if (tiles8 == 1) {
        switch (cfg) {
        case 'b': return launch_async<G, 1, 1, 4, 4>(a, X, batch, 1, s->Y);
        case 'c': return launch_async<G, 1, 1, 4, 8>(a, X, batch, 1, s->Y);
        case 'd': return launch_async<G, 1, 1, 8, 4>(a, X, batch, 1, s->Y);
        default: return launch_async<G, 1, 1, 4, 6>(a, X, batch, 1, s->Y);
        }
    }
    switch (cfg) {
    case 'b': return launch_async<G, 2, 4, 4, 3>(a, X, batch, 1, s->Y);
    case 'c': return launch_async<G, 2, 1, 4, 6>(a, X, batch, 1, s->Y);
    case 'd': return launch_async<G, 2, 4, 8, 3>(a, X, batch, 1, s->Y);
    default: return launch_async<G, 2, 2, 4, 4>(a, X, batch, 1, s->Y);
    }
}

template <int KIND, int G>
static void launch_kind_g(q_state *s, const QArgs &a) {
    const bool fast = (a.cols & 31) == 0;
    if (s->op == OP_DEQ) {
        if (fast) deq_fast<KIND, G><<<grid_for(a.rows * (a.cols >> 5), 256), 256>>>(a, s->Y);
        else deq_generic<KIND><<<grid_for(a.rows * a.cols, 256), 256>>>(a, s->Y);
        return;
    }
    const int batch = s->batch;
    if (KIND == TP_Q_INT4 && (G == 32 || G == 64 || G == 128) && s->f16a && s->allow_tc && a.cols % 128 == 0) {
        constexpr int GG = G == 32 || G == 64 || G == 128 ? G : 128;
        constexpr int MT2 = GG == 128 ? 2 : 1; /* m-tiles per warp when x is re-used (batch 9..16) */
        const int tiles8 = (batch + 7) / 8;
        const uint16_t *X = (const uint16_t *)s->X;
        if (launch_v3<GG>(s, a)) return;
/* qmm_tc<GG, NT, MT, KS, MINB, XP, D> over row tiles of 16*MT rows (x ns batch slices), launched
 * with PDL (tp_cu_launch) */
#define QTC(NT, MT, KS, MINB, XP, D, NS)                                                                      \
    TP_CU(&s->base, tp_cu_launch(1, qmm_tc<GG, NT, MT, KS, MINB, XP, D>,                                       \
                                 dim3((unsigned)((a.rows + 16 * (MT) - 1) / (16 * (MT)) * (NS))), dim3(32 * (KS)), 0, a, X, \
                                 batch, (int)(NS), s->Y))
        if (tiles8 == 1) {
            /* GEMV: occupancy decides (NOTES.md); TENPAK_CUDA_GEMV_CFG picks another for experiments */
            /* defaults, the fastest measured on the H200 (reports/gpu/run8): 'k' for g128 (4 warps,
             * 4 register stages), 'o' for g64, 'e' for g32 (run7) */
            const int cfg = gemv_cfg() ? gemv_cfg() : GG == 128 ? 'k' : GG == 64 ? 'o' : 'e';
            switch (cfg) {
            case 'a': QTC(1, 1, 8, 1, -1, 2, 1); break;
            case 'b': QTC(1, 1, 4, 1, -1, 2, 1); break;
            case 'c': QTC(1, 1, 4, 6, -1, 2, 1); break;
            case 'd': QTC(1, 1, 8, 3, -1, 2, 1); break;
            case 'f': QTC(1, 1, 8, 1, 0, 2, 1); break;
            /* g, h: 2 m-tiles per warp (32 rows a block): the all-ones sum(x) mma and the x loads
             * shared by two row tiles, two independent mma chains per warp (NOTES.md, v3) */
            case 'g': QTC(1, 2, 4, 1, 0, 2, 1); break;
            case 'h': QTC(1, 2, 8, 1, 0, 2, 1); break;
            /* i..n: 3 or 4 register stages (2 or 3 k-blocks in flight per warp) */
            case 'i': QTC(1, 2, 8, 1, 0, 3, 1); break;
            case 'j': QTC(1, 1, 8, 1, 0, 4, 1); break;
            case 'k': QTC(1, 1, 4, 1, 0, 4, 1); break;
            case 'l': QTC(1, 2, 4, 1, 0, 3, 1); break;
            case 'm': QTC(1, 1, 8, 1, 0, 3, 1); break;
            case 'n': QTC(1, 1, 16, 1, 0, 3, 1); break;
            case 'o': QTC(1, 1, 4, 1, 0, 3, 1); break;
            case 'p': QTC(1, 1, 8, 3, 0, 3, 1); break;
            /* q..t: deeper rings (5..7 k-blocks in flight per warp), 2 or 4 warps a block */
            case 'q': QTC(1, 1, 4, 1, 0, 6, 1); break;
            case 'r': QTC(1, 1, 4, 1, 0, 8, 1); break;
            case 's': QTC(1, 1, 2, 1, 0, 4, 1); break;
            case 't': QTC(1, 1, 2, 1, 0, 8, 1); break;
            default: /* 'e' */
                QTC(1, 1, 4, 1, 0, 2, 1); break;
            }
        } else if (tiles8 == 2 && (MT2 == 1 || tc_mt1())) {
            QTC(2, 1, 4, 1, -1, 2, 1);
        } else if (tiles8 == 2 && gemm_cfg() != 'a') {
            /* experiments (TENPAK_CUDA_GEMM_CFG): b = 4 m-tiles x 8 warps (x not prefetched), c = 2 m-tiles
             * x 8 warps, d..f: 3 register stages */
            switch (gemm_cfg()) {
            case 'b': QTC(2, 4, 8, 1, 0, 2, 1); break;
            case 'd': QTC(2, 2, 4, 1, 0, 3, 1); break;
            case 'e': QTC(2, 2, 8, 1, 0, 3, 1); break;
            case 'f': QTC(2, 1, 8, 1, 0, 3, 1); break;
            case 'g': QTC(2, 1, 4, 1, 0, 4, 1); break;
            case 'h': QTC(2, 2, 4, 1, 0, 4, 1); break;
            case 'i': QTC(2, 1, 4, 1, 0, 6, 1); break;
            default: QTC(2, 2, 8, 1, -1, 2, 1); break;
            }
        } else if (tiles8 == 2) {
            QTC(2, MT2, 4, 1, -1, 2, 1);
        } else {
            const int ns = (tiles8 + 3) / 4;
            QTC(4, 1, 4, 1, -1, 2, ns);
        }
#undef QTC
        return;
    }
    if (fast && batch == 1) {
        constexpr int R = KIND == TP_Q_INT4R2 ? 2 : 4;
        const unsigned blocks = (unsigned)((a.rows + 8 * R - 1) / (8 * R));
        if (s->f16a) TP_CU(&s->base, tp_cu_launch(2, gemv_simt<KIND, G, true>, dim3(blocks), dim3(256), 0, a, (const void *)s->X, s->Y));
        else TP_CU(&s->base, tp_cu_launch(2, gemv_simt<KIND, G, false>, dim3(blocks), dim3(256), 0, a, (const void *)s->X, s->Y));
    } else if (fast) {
        dim3 grid((unsigned)((batch + 3) / 4), (unsigned)((a.rows + 15) / 16));
        if (s->f16a) TP_CU(&s->base, tp_cu_launch(2, gemm_simt<KIND, G, true>, grid, dim3(256), 0, a, (const void *)s->X, batch, s->Y));
        else TP_CU(&s->base, tp_cu_launch(2, gemm_simt<KIND, G, false>, grid, dim3(256), 0, a, (const void *)s->X, batch, s->Y));
    } else {
        const long long warps = a.rows * batch;
        const unsigned blocks = (unsigned)((warps * 32 + 255) / 256);
        if (s->f16a) gemm_generic<KIND, true><<<blocks, 256>>>(a, s->X, batch, s->Y);
        else gemm_generic<KIND, false><<<blocks, 256>>>(a, s->X, batch, s->Y);
    }
}

template <int KIND>
static void launch_kind(q_state *s, const QArgs &a) {
    switch (a.g) {
    case 8: launch_kind_g<KIND, 8>(s, a); break;
    case 16: launch_kind_g<KIND, 16>(s, a); break;
    case 32: launch_kind_g<KIND, 32>(s, a); break;
    case 64: launch_kind_g<KIND, 64>(s, a); break;
    case 128: launch_kind_g<KIND, 128>(s, a); break;
    default:
        fprintf(stderr, "cuda: int4 group size %d not built\n", a.g);
        s->base.failed = 1;
    }
}

extern "C" tp_status tp_cuda_q_run(const tp_case *c, void *state, void *out) {
    (void)c;
    (void)out;
    q_state *s = (q_state *)state;
    if (!s || s->base.failed) return TP_OK;
    const QArgs &a = s->args[s->next];
    s->next = (s->next + 1) % s->ncopy;
    switch (s->kind) {
    case TP_Q_INT4: launch_kind<TP_Q_INT4>(s, a); break;
    case TP_Q_INT4R2: launch_kind<TP_Q_INT4R2>(s, a); break;
    default: launch_kind<TP_Q_NF4>(s, a); break;
    }
    TP_CU_LAUNCHED(&s->base);
    return TP_OK;
}

extern "C" void tp_cuda_q_fetch(const tp_case *c, void *state, void *out) {
    q_state *s = (q_state *)state;
    if (s && !s->base.failed) TP_CU(&s->base, cudaMemcpy(out, s->Y, s->out_count * 4, cudaMemcpyDeviceToHost));
    if (!s || s->base.failed) tp_cu_nan_fill((float *)out, c->out_count);
}

extern "C" void tp_cuda_q_release(void *state) {
    q_state *s = (q_state *)state;
    if (!s) return;
    for (int i = 0; i < s->ncopy; i++) cudaFree(s->blob[i]);
    cudaFree(s->X);
    cudaFree(s->Y);
    free(s);
}

/* ---------------------------------------------------------------------------------------------
 * A packed matrix resident on the device for the model (tp_cuda.h, tp_cuda_qdev_*): the same
 * launch choices as the registry's ops with fp16 activations (the _f16a variants: qmm_tc where it
 * applies, gemv_simt / gemm_simt / gemm_generic elsewhere), into the caller's buffers, on the
 * per-thread default stream.
 * ------------------------------------------------------------------------------------------- */
struct tp_cuda_qdev {
    q_state s;
    float *part;      /* column-slice partial products (slices x rows), allocated on first use */
    int part_slices;
};

/* Y[r] = sum over slices of P[s * rows + r], in slice order */
__global__ void slice_sum(const float *__restrict__ P, int slices, long long rows, float *__restrict__ Y) {
    for (long long r = blockIdx.x * (long long)blockDim.x + threadIdx.x; r < rows; r += (long long)gridDim.x * blockDim.x) {
        float t = 0.f;
        for (int q = 0; q < slices; q++) t += P[q * rows + r];
        Y[r] = t;
    }
}

/* Column slices for one-row products of narrow matrices (a model's decode step): qmm_tc gives a
 * block 16 rows, so a 256 x 2048 or 2048 x 2048 matrix occupies 16 or 128 blocks of a 132-SM GPU
 * and the product takes one block's latency through its whole row. Splitting the columns into S
 * slices (each a multiple of 128 columns, on group boundaries) gives S times the blocks; the
 * partial products are added in slice order (deterministic). 1 where it does not apply. */
static int qdev_slices(const tp_cuda_qdev *d, int batch) {
    const QArgs &a = d->s.args[0];
    if (batch != 1 || d->s.kind != TP_Q_INT4 || (a.g != 32 && a.g != 64 && a.g != 128) || a.cols % 128) return 1;
    const long long blocks = (a.rows + 15) / 16, want = 2LL * tp_cu_sm_count();
    int S = 1;
    while (blocks * S < want && (a.cols / (2 * S)) % 128 == 0 && a.cols / (2 * S) >= 512 && S < 16) S *= 2;
    return S;
}

/* W[ids[i]][c] for i < n, c < cols: the rows of an embedding, exact (deq_elem) */
template <int KIND>
__global__ void deq_rows(QArgs a, const int32_t *__restrict__ ids, float *__restrict__ X) {
    const long long r = ids[blockIdx.x];
    for (long long c = threadIdx.x; c < a.cols; c += blockDim.x) X[blockIdx.x * a.cols + c] = deq_elem<KIND>(a, r, c);
}

extern "C" tp_cuda_qdev *tp_cuda_qdev_upload(const tp_qmat *q) {
    tp_cuda_qdev *d = (tp_cuda_qdev *)calloc(1, sizeof *d);
    if (!d) return NULL;
    d->s.kind = q->kind;
    d->s.g = q->g;
    d->s.f16a = 1;
    d->s.allow_tc = 1;
    d->s.ncopy = 1;
    upload_copy(&d->s, q, 0);
    if (d->s.base.failed) { tp_cuda_qdev_free(d); return NULL; }
    return d;
}

static int qdev_launch(tp_cuda_qdev *d) {
    q_state *s = &d->s;
    switch (s->kind) {
    case TP_Q_INT4: launch_kind<TP_Q_INT4>(s, s->args[0]); break;
    case TP_Q_INT4R2: launch_kind<TP_Q_INT4R2>(s, s->args[0]); break;
    default: launch_kind<TP_Q_NF4>(s, s->args[0]); break;
    }
    TP_CU_LAUNCHED(&s->base);
    return !s->base.failed;
}

extern "C" int tp_cuda_qdev_mul(tp_cuda_qdev *d, const uint16_t *X16, int batch, float *Y) {
    q_state *s = &d->s;
    s->op = batch == 1 ? OP_GEMV : OP_GEMM;
    s->batch = batch;
    /* TENPAK_CUDA_QDEV_SLICES=auto turns the column slices on: measured slower in a decode step
     * (reports/gpu/run14: 535 vs 730 tok/s at TinyLlama's shapes), so off by default */
    static int sliced = -1;
    if (sliced < 0) sliced = getenv("TENPAK_CUDA_QDEV_SLICES") && !strcmp(getenv("TENPAK_CUDA_QDEV_SLICES"), "auto");
    const int S = sliced ? qdev_slices(d, batch) : 1;
    if (S == 1) {
        s->X = (void *)X16;
        s->Y = Y;
        return qdev_launch(d);
    }
    const QArgs whole = s->args[0];
    const long long cw = whole.cols / S;
    if (d->part_slices < S) {
        cudaFree(d->part);
        d->part = NULL;
        d->part_slices = 0;
        TP_CU(&s->base, cudaMalloc((void **)&d->part, (size_t)S * (size_t)whole.rows * 4));
        if (s->base.failed) return 0;
        d->part_slices = S;
    }
    for (int q = 0; q < S && !s->base.failed; q++) {
        QArgs a = whole;
        a.cols = cw;
        a.codes = whole.codes + q * cw / 2;
        a.scale = whole.scale + q * cw / whole.g;
        a.offset = whole.offset + q * cw / whole.g;
        s->X = (void *)(X16 + q * cw);
        s->Y = d->part + (size_t)q * whole.rows;
        launch_kind<TP_Q_INT4>(s, a);
        TP_CU_LAUNCHED(&s->base);
    }
    if (!s->base.failed) {
        slice_sum<<<grid_for(whole.rows, 256), 256>>>(d->part, S, whole.rows, Y);
        TP_CU_LAUNCHED(&s->base);
    }
    return !s->base.failed;
}

extern "C" int tp_cuda_qdev_dequant(tp_cuda_qdev *d, float *W) {
    d->s.op = OP_DEQ;
    d->s.Y = W;
    return qdev_launch(d);
}

extern "C" int tp_cuda_qdev_rows(tp_cuda_qdev *d, const int32_t *ids, int n, float *X) {
    q_state *s = &d->s;
    if (n <= 0) return !s->base.failed;
    switch (s->kind) {
    case TP_Q_INT4: deq_rows<TP_Q_INT4><<<n, 256>>>(s->args[0], ids, X); break;
    case TP_Q_INT4R2: deq_rows<TP_Q_INT4R2><<<n, 256>>>(s->args[0], ids, X); break;
    default: deq_rows<TP_Q_NF4><<<n, 256>>>(s->args[0], ids, X); break;
    }
    TP_CU_LAUNCHED(&s->base);
    return !s->base.failed;
}

extern "C" void tp_cuda_qdev_free(tp_cuda_qdev *d) {
    if (!d) return;
    cudaFree(d->part);
    cudaFree(d->s.blob[0]);
    free(d);
}
