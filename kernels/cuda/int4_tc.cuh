/* The INT4 family's tensor-core kernels (int4 g32/g64/g128, fp16 activations): qmm_tc (the
 * register-pipelined one, every launch configuration of int4.cu's tables) and qmm_async (cp.async
 * into shared memory, TENPAK_CUDA_V3=1) with its launcher. */
#ifndef TENPAK_CUDA_INT4_TC_CUH
#define TENPAK_CUDA_INT4_TC_CUH

#include "kernels/cuda/int4_args.cuh"

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

/* d = (a & b) | c in one LOP3 (nvcc splits the and-or of two constants into two) */
static __device__ __forceinline__ uint32_t lop3_andor(uint32_t a, uint32_t b, uint32_t c) {
    uint32_t d;
    asm("lop3.b32 %0, %1, %2, %3, 0xEA;\n" : "=r"(d) : "r"(a), "r"(b), "r"(c));
    return d;
}
/* word_pairs with one LOP3 per pair */
static __device__ __forceinline__ void word_pairs3(uint32_t w, uint32_t p[4]) {
    const uint32_t MAGIC = 0x64006400u;
    const uint32_t t0 = lop3_andor(w, 0x000F000Fu, MAGIC), t1 = lop3_andor(w, 0x00F000F0u, MAGIC);
    const uint32_t u = w >> 8;
    const uint32_t t2 = lop3_andor(u, 0x000F000Fu, MAGIC), t3 = lop3_andor(u, 0x00F000F0u, MAGIC);
    const __half2 k1024 = __halves2half2(__ushort_as_half(0x6400), __ushort_as_half(0x6400));
    const __half2 k16th = __halves2half2(__ushort_as_half(0x2C00), __ushort_as_half(0x2C00)); /* 1/16 */
    const __half2 km64 = __halves2half2(__ushort_as_half(0xD400), __ushort_as_half(0xD400));  /* -64 */
    __half2 h0 = __hsub2(*(const __half2 *)&t0, k1024);
    __half2 h1 = __hfma2(*(const __half2 *)&t1, k16th, km64);
    __half2 h2 = __hsub2(*(const __half2 *)&t2, k1024);
    __half2 h3 = __hfma2(*(const __half2 *)&t3, k16th, km64);
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

template <int G, int NT, int MT, bool XPF, bool L3 = false>
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
                if (L3) {
                    word_pairs3(st.c[mt][0][j][i], q[mt][0]);
                    word_pairs3(st.c[mt][1][j][i], q[mt][1]);
                } else {
                    word_pairs(st.c[mt][0][j][i], q[mt][0]);
                    word_pairs(st.c[mt][1][j][i], q[mt][1]);
                }
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

/* The prologue qmm_tc and qmm_async share: blockIdx.x = row tile * nslices + batch slice; the
 * two rows (g, g + 8) of each m-tile this lane's quad feeds (clamped to the last row), the batch
 * columns of its n-tiles (xok false past the batch: their x reads are replaced by zeros) and zeroed
 * accumulators. */
template <int G, int NT, int MT>
static __device__ __forceinline__ void tc_tile(const QArgs &a, const uint16_t *__restrict__ X, int batch, int nslices,
                                               int gq, int tq, long long &rbase, int &nbase, long long (&rows)[MT][2],
                                               const uint16_t *(&xrow)[NT], bool (&xok)[NT], float (&acc)[MT][NT][4]) {
    constexpr int P = G / 4;
    const long long tile = blockIdx.x / nslices;
    const int slice = blockIdx.x % nslices;
    rbase = tile * 16 * MT;
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int h = 0; h < 2; h++) rows[mt][h] = min(rbase + mt * 16 + gq + 8 * h, a.rows - 1);
    nbase = slice * NT * 8;
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        int n = nbase + nt * 8 + gq;
        xok[nt] = n < batch;
        xrow[nt] = X + (long long)(xok[nt] ? n : 0) * a.cols + tq * P;
    }
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[mt][nt][e] = 0.f;
}

/* int4, g in {32, 64, 128}, cols % 128 == 0, fp16 activations. A block of KS warps owns
 * 16*MT rows; its warps take the 128-column k-blocks of those rows in turn (kb = warp, warp+KS,
 * ...) and reduce through shared memory. blockIdx.x = row tile * nslices + batch slice, so the
 * slices of one row tile run side by side and share its codes in L2. D stages of codes and
 * scales in registers: D-1 k-blocks in flight while one is computed (a ring, unrolled so that
 * every stage index is a constant). PDL (common.cuh): the first D-1 stages of codes are loaded
 * before tp_pdl_wait() when the activations are not part of a stage (XPF false). */
/* TENPAK_QMM_HINT1 0 (an experiment switch, ci/gpu_run35.sh): launch bounds of MINB 1 written as
 * no minimum-blocks hint (0), so ptxas uses its default schedule: 79 registers instead of 115 for
 * qmm_x1 't' at g32, 77 / 99 at g64, 112 / 116 for qmm_tc 'u' at g128 (sm_90, nvcc 13); the hint
 * of 1 lets it schedule for up to 255 (lora.cu: 197 against 116 for the same loop). */
#ifndef TENPAK_QMM_HINT1
#define TENPAK_QMM_HINT1 1
#endif
#define TP_QMM_MINB(m) ((m) == 1 && !TENPAK_QMM_HINT1 ? 0 : (m))

template <int G, int NT, int MT, int KS, int MINB = 1, int XP = -1, int D = 2, bool L3 = false>
__global__ void __launch_bounds__(32 * KS, TP_QMM_MINB(MINB)) qmm_tc(QArgs a, const uint16_t *__restrict__ X, int batch, int nslices,
                                                   float *__restrict__ Y) {
    constexpr bool XPF = XP < 0 ? NT <= 2 : XP != 0; /* activations prefetched with the codes */
    static_assert(D >= 2 && D <= 8, "stages");
    tp_pdl_trigger();
    if (XPF) tp_pdl_wait();
    __shared__ float red[KS][MT][NT][4][32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, gq = lane >> 2, tq = lane & 3;
    long long rbase, rows[MT][2];
    int nbase;
    const uint16_t *xrow[NT];
    bool xok[NT];
    float acc[MT][NT][4];
    tc_tile<G, NT, MT>(a, X, batch, nslices, gq, tq, rbase, nbase, rows, xrow, xok, acc);
    const long long nkb = a.cols / 128;
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
                tc_compute<G, NT, MT, XPF, L3>(st[s], kb, xrow, xok, acc);
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
 * Tensor-core GEMV of one activation row (qmm_x1): qmm_tc's arithmetic (tc_compute's mma with
 * the codes as A and the all-ones mma for sum(x)) with a smaller register footprint, so that
 * more warps stay resident (run16's profile of qmm_tc 'k': 113 registers, 4 blocks an SM, 0.93
 * eligible warps a scheduler, DRAM 57% busy: latency-bound for want of warps).
 * - x (one row, fp16) is staged once per block in shared memory (cols * 2 bytes) after the
 *   first code stages are in flight; every lane reads it there (lanes of other n columns read
 *   the same x, so the unused output columns are copies: no predicates, broadcast reads).
 * - A quad's four lanes load one scale-or-offset word each per stage (lane tq: row tq >> 1,
 *   scale when tq is even, offset when odd; GPI consecutive fp16 values as one 2-, 4- or
 *   8-byte load) and pass them round by shuffles: 1 or 2 registers a stage instead of 4 * GPI.
 * - Code addresses: one pointer per row, advanced by the stage's k-blocks.
 * Block = KS warps on 16 rows, warp w takes k-blocks w, w + KS, ... through a D-stage register
 * ring like qmm_tc's; PDL as qmm_tc (codes before tp_pdl_wait(), x after). cols % 128 == 0 and
 * cols * 2 bytes of shared memory (the launcher checks).
 * ------------------------------------------------------------------------------------------- */
template <int G> struct X1Scale;
template <> struct X1Scale<128> { typedef unsigned short T; };
template <> struct X1Scale<64> { typedef unsigned int T; };
template <> struct X1Scale<32> { typedef unsigned long long T; };

template <int G>
struct X1Stage {
    static constexpr int GPI = 128 / G, NW = G / 32;
    uint32_t c[2][GPI][NW];
    typename X1Scale<G>::T s;
};

template <int G>
static __device__ __forceinline__ void x1_load(X1Stage<G> &st, const uint8_t *c0, const uint8_t *c1,
                                               const typename X1Scale<G>::T *sp, int kb) {
    constexpr int GPI = 128 / G, PB = G / 8;
#pragma unroll
    for (int j = 0; j < GPI; j++) {
        CodeVec<PB>::load(c0 + kb * 64 + j * (G / 2), st.c[0][j]);
        CodeVec<PB>::load(c1 + kb * 64 + j * (G / 2), st.c[1][j]);
    }
    st.s = __ldcs(sp + kb);
}

/* the fp16 value v of the GPI packed in word w (as float) */
template <int G>
static __device__ __forceinline__ float x1_half(typename X1Scale<G>::T w, int v) {
    return h2f((unsigned short)(w >> (16 * v)));
}

template <int G>
static __device__ __forceinline__ typename X1Scale<G>::T x1_shfl(typename X1Scale<G>::T w, int src) {
    typedef typename X1Scale<G>::T T;
    if (sizeof(T) == 8) return (T)__shfl_sync(0xffffffffu, (unsigned long long)w, src);
    return (T)__shfl_sync(0xffffffffu, (unsigned)w, src);
}

/* One k-block: xs holds x as B fragments (x1_stage_x), xsum the fp32 sum of every group of x. Two
 * mma chains (word halves A0 / A1) so that each is half as long. */
template <int G>
static __device__ __forceinline__ void x1_compute(const X1Stage<G> &st, const uint4 *__restrict__ xs,
                                                  const float *__restrict__ xsum, int kb, bool ok, int tq, int quad,
                                                  float (&acc)[4]) {
    constexpr int GPI = 128 / G, NW = G / 32, P = G / 4;
    typedef typename X1Scale<G>::T ST;
    const ST s0 = x1_shfl<G>(st.s, quad), o0 = x1_shfl<G>(st.s, quad + 1);
    const ST s1 = x1_shfl<G>(st.s, quad + 2), o1 = x1_shfl<G>(st.s, quad + 3);
#pragma unroll
    for (int j = 0; j < GPI; j++) {
        float ca[4] = {0.f, 0.f, 0.f, 0.f}, cb[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
        for (int i = 0; i < NW; i++) {
            uint32_t q0[4], q1[4];
            word_pairs3(st.c[0][j][i], q0);
            word_pairs3(st.c[1][j][i], q1);
            const uint4 b = xs[(kb * 128 + j * G + tq * P) / 8 + i];
            const uint32_t A0[4] = {q0[0], q1[0], q0[1], q1[1]};
            const uint32_t A1[4] = {q0[2], q1[2], q0[3], q1[3]};
            mma16816(ca, A0, b.x, b.y);
            mma16816(cb, A1, b.z, b.w);
        }
        const float sx = xsum[kb * GPI + j];
        const float sa = x1_half<G>(s0, j), oa = x1_half<G>(o0, j) * sx;
        const float sb = x1_half<G>(s1, j), ob = x1_half<G>(o1, j) * sx;
        const float t0 = acc[0] + fmaf(sa, ca[0] + cb[0], oa), t2 = acc[2] + fmaf(sb, ca[2] + cb[2], ob);
        acc[0] = ok ? t0 : acc[0];
        acc[2] = ok ? t2 : acc[2];
    }
}

/* PERS: a persistent grid (blocks loop over row tiles tile, tile + gridDim.x, ...), so x is staged
 * once per block rather than once per 16 rows; the next tile's first stages are loaded before the
 * reduction of the current one. Without PERS, one tile per block. */
template <int G, int KS, int D, int MINB, bool PERS = false>
__global__ void __launch_bounds__(32 * KS, TP_QMM_MINB(MINB)) qmm_x1(QArgs a, const uint16_t *__restrict__ X, float *__restrict__ Y) {
    static_assert(D >= 2 && D <= 8, "stages");
    typedef typename X1Scale<G>::T ST;
    extern __shared__ __align__(16) unsigned char x1_smem[];
    uint4 *xs = (uint4 *)x1_smem;                      /* cols / 8 B fragments */
    float *xsum = (float *)(x1_smem + a.cols * 2);    /* a.ngroups sums */
    __shared__ float red[KS][2][32];
    tp_pdl_trigger();
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, gq = lane >> 2, tq = lane & 3, quad = lane & ~3;
    const int nkb = (int)(a.cols / 128);
    const long long ntiles = (a.rows + 15) / 16;
    long long tile = blockIdx.x;
    const uint8_t *c0, *c1;
    const ST *sp;
    X1Stage<G> st[D];
    /* the row pointers of a tile and its first D - 1 stages */
    auto start = [&](long long t) {
        const long long r0 = min(t * 16 + gq, a.rows - 1), r1 = min(t * 16 + gq + 8, a.rows - 1);
        c0 = a.codes + r0 * a.cstride + tq * (G / 8);
        c1 = a.codes + r1 * a.cstride + tq * (G / 8);
        sp = (const ST *)(((tq & 1) ? a.offset : a.scale) + ((tq >> 1) ? r1 : r0) * a.ngroups);
#pragma unroll
        for (int i = 0; i < D - 1; i++)
            if (warp + i * KS < nkb) x1_load<G>(st[i], c0, c1, sp, warp + i * KS);
    };
    start(tile);
    tp_pdl_wait();
    /* x in shared memory as the mma's B fragments: 8 halves h0..h7 -> (h0,h4) (h1,h5) (h2,h6)
     * (h3,h7) (tc_compute's byte_perm done once), and the fp32 sum of every group (a group is G / 8
     * consecutive chunks: consecutive threads, summed by shuffles within aligned lane groups) */
    for (int i0 = 0; i0 < nkb * 16; i0 += 32 * KS) {
        const int i = i0 + threadIdx.x;
        float t = 0.f;
        if (i < nkb * 16) {
            const uint4 v = __ldg((const uint4 *)X + i);
            xs[i] = make_uint4(__byte_perm(v.x, v.z, 0x5410), __byte_perm(v.x, v.z, 0x7632), __byte_perm(v.y, v.w, 0x5410),
                               __byte_perm(v.y, v.w, 0x7632));
            const float2 f0 = __half22float2(*(const __half2 *)&v.x), f1 = __half22float2(*(const __half2 *)&v.y);
            const float2 f2 = __half22float2(*(const __half2 *)&v.z), f3 = __half22float2(*(const __half2 *)&v.w);
            t = ((f0.x + f0.y) + (f1.x + f1.y)) + ((f2.x + f2.y) + (f3.x + f3.y));
        }
#pragma unroll
        for (int m = 1; m < G / 8; m <<= 1) t += __shfl_xor_sync(0xffffffffu, t, m);
        if (i < nkb * 16 && (i & (G / 8 - 1)) == 0) xsum[i / (G / 8)] = t;
    }
    __syncthreads();
    for (;;) {
        float acc[4] = {0.f, 0.f, 0.f, 0.f};
        /* every lane runs every stage of the ring (a stage past the row's end computes on stale
         * registers and x of k-block 0, and is not accumulated): the shuffles stay convergent,
         * without the collective emulation nvcc adds to shuffles under a branch it cannot prove
         * uniform */
        for (int kb0 = warp; kb0 < nkb; kb0 += D * KS) {
#pragma unroll
            for (int s = 0; s < D; s++) {
                const int kb = kb0 + s * KS;
                const bool ok = kb < nkb;
                if (kb + (D - 1) * KS < nkb) x1_load<G>(st[(s + D - 1) % D], c0, c1, sp, kb + (D - 1) * KS);
                x1_compute<G>(st[s], xs, xsum, ok ? kb : 0, ok, tq, quad, acc);
            }
        }
        const long long rbase = tile * 16;
        tile = PERS ? tile + gridDim.x : ntiles;
        const bool more = tile < ntiles;
        if (more) start(tile);
        /* column 0 (batch 1) lives in lanes with tq == 0: acc[0] row gq, acc[2] row gq + 8 */
        red[warp][0][lane] = acc[0];
        red[warp][1][lane] = acc[2];
        __syncthreads();
        if (warp == 0 && tq == 0) {
#pragma unroll
            for (int h = 0; h < 2; h++) {
                float t = red[0][h][lane];
#pragma unroll
                for (int w = 1; w < KS; w++) t += red[w][h][lane];
                const long long r = rbase + gq + 8 * h;
                if (r < a.rows) Y[r] = t;
            }
        }
        if (!more) break;
        __syncthreads(); /* red is written again */
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
    long long rbase, rows[MT][2];
    int nbase;
    const uint16_t *xrow[NT];
    bool xok[NT];
    float acc[MT][NT][4];
    tc_tile<G, NT, MT>(a, X, batch, nslices, gq, tq, rbase, nbase, rows, xrow, xok, acc);
    const long long nkb = a.cols / 128;
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

#endif
