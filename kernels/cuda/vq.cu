/* VQ lookup-GEMV on the GPU: y = decode(m) x for codebooks of K <= 256 (uint8 codes), any d <= 8
 * (include/tenpak/vq.h). fp32 activations, fp32 codebook values (fp16-representable), fp32
 * accumulation.
 *
 * Choice (bytes/flops count, kernels/cuda/NOTES.md): the codebook trick, not the direct gather.
 * Direct gather reads d floats of a random centroid per code (d4: a 16-byte shared load with
 * ~3-4-way bank conflicts) plus d activations, ~1 shared/L1 access per weight; the trick computes,
 * per block of V = 64 vectors of x, the table T[v][k] = x_v . c_k once (V K d FMAs, shared by
 * all the rows of the block) and then needs ONE 4-byte shared load and one add per code, i.e.
 * per d weights, and no activation reads in the inner loop.
 *
 * Grid: (row block of 1024 rows) x (slice of V vectors). A block loads its x slice, builds T in
 * shared memory (thread k owns centroid k), then each thread walks rows tid, tid + 256, ...:
 * 64 codes (4 x 16 bytes when nvec % 64 == 0, else byte loads) -> 64 lookups. The partial sums
 * go to P[slice][row]; the last slice block of a row block to finish (atomic counter, reset by
 * itself) adds the partials in slice order and writes y: deterministic, one launch. */
#include <stdlib.h>

#include "kernels/cuda/fam_common.cuh"

enum { VQ_V = 64, VQ_THREADS = 256, VQ_KMAX = 256, VQ_DMAX = 8 };

struct VArgs {
    const float *cb;      /* K x d */
    const uint8_t *codes; /* rows x nvec */
    const float *x;       /* cols */
    float *P;             /* nslices x rows */
    float *y;
    unsigned *cnt;        /* per row block */
    long long rows, cols, nvec;
    int d, K, nslices, rpb; /* rpb: rows per block */
};

/* T[v][k] = sum_j c_k[j] x[v d + j] (fp32, j in order); x beyond cols is 0 (padding dropped).
 * D > 0: d known at compile time (unrolled); D == 0: d = a.d. cent: centroid k (registers). */
template <int D>
FAM_HD float vq_table_entry(int d, const float *cent, const float *xs, int v) {
    float t = 0.f;
    if (D > 0) {
FAM_UNROLL
        for (int j = 0; j < (D > 0 ? D : 1); j++) t = fmaf(cent[j], xs[v * D + j], t);
    } else {
        for (int j = 0; j < d; j++) t = fmaf(cent[j], xs[v * d + j], t);
    }
    return t;
}

/* the 64 lookups of one row over a full slice: 16 little-endian words of codes (fast path) */
FAM_HD float vq_fast_row(const uint32_t w[16], const float *T) {
    float t0 = 0.f, t1 = 0.f, t2 = 0.f, t3 = 0.f;
FAM_UNROLL
    for (int j = 0; j < 16; j++) {
        const int v = 4 * j;
        t0 += T[(v + 0) * VQ_KMAX + (w[j] & 255u)];
        t1 += T[(v + 1) * VQ_KMAX + ((w[j] >> 8) & 255u)];
        t2 += T[(v + 2) * VQ_KMAX + ((w[j] >> 16) & 255u)];
        t3 += T[(v + 3) * VQ_KMAX + (w[j] >> 24)];
    }
    return (t0 + t1) + (t2 + t3);
}

/* the lookups of one row over one slice (generic: byte loads) */
FAM_HD float vq_row_slice(const VArgs &a, const float *T, long long r, int s) {
    const long long v0 = (long long)s * VQ_V;
    const int nv = (int)(a.nvec - v0 < (long long)VQ_V ? a.nvec - v0 : (long long)VQ_V);
    const uint8_t *c = a.codes + r * a.nvec + v0;
    float acc0 = 0.f, acc1 = 0.f;
    int v = 0;
    for (; v + 1 < nv; v += 2) {
        acc0 += T[v * a.K + c[v]];
        acc1 += T[(v + 1) * a.K + c[v + 1]];
    }
    if (v < nv) acc0 += T[v * a.K + c[v]];
    return acc0 + acc1;
}

template <bool FAST, int D>
__global__ void __launch_bounds__(VQ_THREADS) vq_gemv(VArgs a) {
    extern __shared__ float sh[]; /* T: VQ_V x K, then xs: VQ_V x d */
    float *T = sh, *xs = sh + VQ_V * a.K;
    __shared__ bool last;
    const int s = blockIdx.x % a.nslices, rb = blockIdx.x / a.nslices;
    const long long c0 = (long long)s * VQ_V * a.d;
    for (int i = threadIdx.x; i < VQ_V * a.d; i += blockDim.x) xs[i] = c0 + i < a.cols ? __ldg(a.x + c0 + i) : 0.f;
    __syncthreads();
    for (int k = threadIdx.x; k < a.K; k += blockDim.x) {
        float cent[VQ_DMAX];
#pragma unroll
        for (int j = 0; j < VQ_DMAX; j++) cent[j] = j < a.d ? __ldg(a.cb + k * a.d + j) : 0.f;
        for (int v = 0; v < VQ_V; v++) T[v * a.K + k] = vq_table_entry<D>(a.d, cent, xs, v);
    }
    __syncthreads();
    const long long r0 = (long long)rb * a.rpb;
    const long long r1 = r0 + a.rpb < a.rows ? r0 + a.rpb : a.rows;
    for (long long r = r0 + threadIdx.x; r < r1; r += blockDim.x) {
        float acc;
        if (FAST) { /* nvec % 64 == 0, K == 256: every slice full, rows 16-byte aligned */
            const uint4 *cp = (const uint4 *)(a.codes + r * a.nvec + (long long)s * VQ_V);
            uint32_t w[16];
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const uint4 c4 = __ldcs(cp + i);
                w[4 * i] = c4.x;
                w[4 * i + 1] = c4.y;
                w[4 * i + 2] = c4.z;
                w[4 * i + 3] = c4.w;
            }
            acc = vq_fast_row(w, T);
        } else {
            acc = vq_row_slice(a, T, r, s);
        }
        a.P[(long long)s * a.rows + r] = acc;
    }
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        const unsigned old = atomicAdd(a.cnt + rb, 1u);
        last = old == (unsigned)a.nslices - 1;
        if (last) a.cnt[rb] = 0; /* every slice of this row block has counted: ready for the next run */
    }
    __syncthreads();
    if (!last) return;
    __threadfence();
    for (long long r = r0 + threadIdx.x; r < r1; r += blockDim.x) {
        float t = 0.f;
        for (int q = 0; q < a.nslices; q++) t += __ldcg(a.P + (long long)q * a.rows + r);
        a.y[r] = t;
    }
}

/* ---------------------------------------------------------------------------------------------
 * K > 256 (uint16 codes, K <= 4096): the direct gather. The table trick needs V x K floats of
 * shared memory (K 4096: 16 KB per vector of x) and V K d FMAs per block, ~K d / rows-per-block
 * per lookup (16 at d4 over 1024 rows), against d FMAs and one random d-float shared load for the
 * gather; so here the codebook (K d floats) and all of x (padded to nvec d) sit in shared memory,
 * a persistent grid of 8-warp blocks walks the rows, a warp per row: lane l takes the 4 vectors
 * 4l..4l+3, then 4l+128.., each code's centroid times its x values (fma in order), and the lanes'
 * sums meet in a fixed xor-shuffle tree (deterministic; the host emulation runs the same order).
 * ------------------------------------------------------------------------------------------- */
enum { VQG_WARPS = 8, VQG_KMAX = 4096 };

struct GArgs {
    const float *cb;       /* K x d */
    const uint16_t *codes; /* rows x nvec */
    const float *x;        /* cols */
    float *y;
    long long rows, cols, nvec;
    int d, K;
};

/* lane's partial sum of row r: vectors lane, lane + 32, ... in that order. Consecutive lanes read
 * consecutive codes (coalesced) and consecutive x vectors (D 4 / 8: 16-byte shared loads, no bank
 * conflicts); the centroids are random 16-byte loads. */
template <int D>
FAM_HD float vqg_lane(const GArgs &a, const float *cb, const float *xs, long long r, int lane) {
    const uint16_t *c = a.codes + r * a.nvec;
    const int d = D > 0 ? D : a.d;
    float acc = 0.f;
    for (long long v = lane; v < a.nvec; v += 32) {
        const float *cent = cb + (size_t)c[v] * d, *xv = xs + v * d;
#ifdef __CUDA_ARCH__
        if (D == 4 || D == 8) {
FAM_UNROLL
            for (int q = 0; q < (D > 0 ? D : 4) / 4; q++) {
                const float4 cc = ((const float4 *)cent)[q], xx = ((const float4 *)xv)[q];
                acc = fam_fma(cc.x, xx.x, acc);
                acc = fam_fma(cc.y, xx.y, acc);
                acc = fam_fma(cc.z, xx.z, acc);
                acc = fam_fma(cc.w, xx.w, acc);
            }
        } else
#endif
        {
            for (int j = 0; j < d; j++) acc = fam_fma(cent[j], xv[j], acc);
        }
    }
    return acc;
}

template <int D>
__global__ void __launch_bounds__(32 * VQG_WARPS) vq_gather(GArgs a) {
    extern __shared__ float sh[]; /* codebook K x d, then x padded to nvec x d */
    float *cb = sh, *xs = sh + (size_t)a.K * a.d;
    for (long long i = threadIdx.x; i < (long long)a.K * a.d; i += blockDim.x) cb[i] = __ldg(a.cb + i);
    for (long long i = threadIdx.x; i < a.nvec * a.d; i += blockDim.x) xs[i] = i < a.cols ? __ldg(a.x + i) : 0.f;
    __syncthreads();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    for (long long r = (long long)blockIdx.x * VQG_WARPS + warp; r < a.rows; r += (long long)gridDim.x * VQG_WARPS) {
        float acc = vqg_lane<D>(a, cb, xs, r, lane);
        for (int o = 16; o; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
        if (!lane) a.y[r] = acc;
    }
}

struct vq_state {
    tp_cu_state base;
    int gather;      /* K > 256: vq_gather (gargs), else vq_gemv (args) */
    GArgs gargs[64];
    int fast, dsel, ncopy, next, nblocks;
    size_t smem;
    VArgs args[64];
    void *blob[64];
    void *work;
    size_t out_count;
};

/* copies of an input of `bytes` so that the rotation exceeds 4x the L2 (at most 64, at most
 * 2 GiB in all): small inputs (a 4096^2 VQ matrix is 4 MB) must not stay in the 60 MB L2 */
static int fam_rotation(size_t bytes) {
    if (!bytes) return 1;
    size_t want = 4 * tp_cu_l2_bytes(), n = (want + bytes - 1) / bytes;
    size_t cap = ((size_t)2 << 30) / bytes;
    if (n > cap) n = cap;
    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

/* Rotated copy c of the matrix: the codebook, then the codes (csz bytes) 256-byte aligned, in one
 * allocation (s->blob[c]); returns where the codes start, NULL after a CUDA error. */
static const void *upload_copy(vq_state *s, int c, const tp_vqmat *m, const void *codes, size_t csz) {
    const size_t cbsz = (size_t)m->K * m->d * 4, cboff = (cbsz + 255) & ~(size_t)255;
    TP_CU(&s->base, cudaMalloc(&s->blob[c], cboff + ((csz + 255) & ~(size_t)255)));
    if (s->base.failed) return NULL;
    char *b = (char *)s->blob[c];
    TP_CU(&s->base, cudaMemcpy(b, m->codebook, cbsz, cudaMemcpyHostToDevice));
    TP_CU(&s->base, cudaMemcpy(b + cboff, codes, csz, cudaMemcpyHostToDevice));
    return s->base.failed ? NULL : b + cboff;
}

static size_t gather_smem(const tp_vqmat *m) { return ((size_t)m->K * m->d + (size_t)(m->nvec * m->d)) * 4; }

static void *prepare_gather(vq_state *s, const tp_vqmat *m, const float *x) {
    s->gather = 1;
    s->smem = gather_smem(m);
    int maxsm = 0;
    TP_CU(&s->base, cudaDeviceGetAttribute(&maxsm, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0));
    if (s->base.failed || s->smem > (size_t)maxsm) {
        fprintf(stderr, "cuda: vq gather needs %zu bytes of shared memory (codebook + x), the device has %d\n",
                s->smem, maxsm);
        s->base.failed = 1;
        return s;
    }
    const size_t cbsz = (size_t)m->K * m->d * 4, csz = (size_t)(m->rows * m->nvec) * 2;
    const size_t total = ((cbsz + 255) & ~(size_t)255) + ((csz + 255) & ~(size_t)255);
    s->ncopy = fam_rotation(total);
    const size_t xb = ((size_t)m->cols * 4 + 255) & ~(size_t)255;
    TP_CU(&s->base, cudaMalloc(&s->work, xb + (size_t)m->rows * 4));
    if (s->base.failed) return s;
    char *w = (char *)s->work;
    TP_CU(&s->base, cudaMemcpy(w, x, (size_t)m->cols * 4, cudaMemcpyHostToDevice));
    TP_CU(&s->base, cudaMemset(w + xb, 0xff, (size_t)m->rows * 4)); /* NaN poison */
    for (int c = 0; c < s->ncopy && !s->base.failed; c++) {
        const void *codes = upload_copy(s, c, m, m->codes16, csz);
        if (!codes) break;
        GArgs &a = s->gargs[c];
        a.cb = (const float *)s->blob[c];
        a.codes = (const uint16_t *)codes;
        a.x = (const float *)w;
        a.y = (float *)(w + xb);
        a.rows = m->rows;
        a.cols = m->cols;
        a.nvec = m->nvec;
        a.d = m->d;
        a.K = m->K;
    }
    void (*kern)(GArgs) = m->d == 4 ? vq_gather<4> : m->d == 8 ? vq_gather<8> : vq_gather<0>;
    if (!s->base.failed)
        TP_CU(&s->base, cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)s->smem));
    int per_sm = 0;
    if (!s->base.failed)
        TP_CU(&s->base, cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kern, 32 * VQG_WARPS, s->smem));
    long long need = (m->rows + VQG_WARPS - 1) / VQG_WARPS, cap = (long long)(per_sm > 0 ? per_sm : 1) * tp_cu_sm_count();
    s->nblocks = (int)(need < cap ? need : cap);
    s->out_count = (size_t)m->rows;
    return s;
}

extern "C" void *tp_cuda_vq_prepare(const tp_vqmat *m, const float *x) {
    vq_state *s = (vq_state *)calloc(1, sizeof *s);
    if (!s) return NULL;
    if (m->codes16 && m->K <= VQG_KMAX && m->d <= VQ_DMAX) return prepare_gather(s, m, x);
    if (!m->codes8 || m->K > VQ_KMAX || m->d > VQ_DMAX) {
        fprintf(stderr, "cuda: vq gemv built for K <= 4096 and d <= 8 (got d%d K%d)\n", m->d, m->K);
        s->base.failed = 1;
        return s;
    }
    const long long rows = m->rows, cols = m->cols, nvec = m->nvec;
    s->fast = nvec % VQ_V == 0 && m->K == VQ_KMAX;
    const int nslices = (int)((nvec + VQ_V - 1) / VQ_V);
    /* 1024 rows per block amortise the table (V K d FMAs) over 1024 x 64 lookups; fewer when
     * that leaves under 2 blocks per SM */
    int rpb = 1024;
    while (rpb > 256 && (long long)nslices * ((rows + rpb - 1) / rpb) < 2LL * tp_cu_sm_count()) rpb /= 2;
    const int nrb = (int)((rows + rpb - 1) / rpb);
    s->nblocks = nslices * nrb;
    s->smem = (size_t)(VQ_V * m->K + VQ_V * m->d) * 4;
    const size_t cbsz = (size_t)m->K * m->d * 4, csz = (size_t)(rows * nvec);
    const size_t total = ((cbsz + 255) & ~(size_t)255) + ((csz + 255) & ~(size_t)255);
    s->ncopy = fam_rotation(total);
    /* work: x | P | y | counters */
    const size_t wsz[4] = {(size_t)cols * 4, (size_t)nslices * rows * 4, (size_t)rows * 4, (size_t)nrb * 4};
    size_t woff[4], wtotal = 0;
    for (int i = 0; i < 4; i++) {
        woff[i] = wtotal;
        wtotal += (wsz[i] + 255) & ~(size_t)255;
    }
    TP_CU(&s->base, cudaMalloc(&s->work, wtotal));
    if (s->base.failed) return s;
    char *w = (char *)s->work;
    TP_CU(&s->base, cudaMemset(w, 0, wtotal));
    TP_CU(&s->base, cudaMemset(w + woff[2], 0xff, wsz[2])); /* NaN poison */
    TP_CU(&s->base, cudaMemcpy(w + woff[0], x, wsz[0], cudaMemcpyHostToDevice));
    for (int c = 0; c < s->ncopy && !s->base.failed; c++) {
        const void *codes = upload_copy(s, c, m, m->codes8, csz);
        if (!codes) break;
        VArgs &a = s->args[c];
        a.cb = (const float *)s->blob[c];
        a.codes = (const uint8_t *)codes;
        a.x = (const float *)(w + woff[0]);
        a.P = (float *)(w + woff[1]);
        a.y = (float *)(w + woff[2]);
        a.cnt = (unsigned *)(w + woff[3]);
        a.rows = rows;
        a.cols = cols;
        a.nvec = nvec;
        a.d = m->d;
        a.K = m->K;
        a.nslices = nslices;
        a.rpb = rpb;
    }
    s->dsel = s->fast && m->d == 4 ? 4 : s->fast && m->d == 8 ? 8 : 0;
    if (!s->base.failed) {
        cudaError_t e = cudaSuccess;
        if (s->dsel == 4) e = cudaFuncSetAttribute(vq_gemv<true, 4>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)s->smem);
        else if (s->dsel == 8) e = cudaFuncSetAttribute(vq_gemv<true, 8>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)s->smem);
        else e = cudaFuncSetAttribute(vq_gemv<false, 0>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)s->smem);
        TP_CU(&s->base, e);
    }
    s->out_count = (size_t)rows;
    return s;
}

extern "C" tp_status tp_cuda_vq_run(const tp_case *c, void *state, void *out) {
    (void)c;
    (void)out;
    vq_state *s = (vq_state *)state;
    if (!s || s->base.failed) return TP_OK;
    if (s->gather) {
        const GArgs &g = s->gargs[s->next];
        s->next = (s->next + 1) % s->ncopy;
        if (g.d == 4) vq_gather<4><<<s->nblocks, 32 * VQG_WARPS, s->smem>>>(g);
        else if (g.d == 8) vq_gather<8><<<s->nblocks, 32 * VQG_WARPS, s->smem>>>(g);
        else vq_gather<0><<<s->nblocks, 32 * VQG_WARPS, s->smem>>>(g);
        TP_CU_LAUNCHED(&s->base);
        return TP_OK;
    }
    const VArgs &a = s->args[s->next];
    s->next = (s->next + 1) % s->ncopy;
    if (s->dsel == 4) vq_gemv<true, 4><<<s->nblocks, VQ_THREADS, s->smem>>>(a);
    else if (s->dsel == 8) vq_gemv<true, 8><<<s->nblocks, VQ_THREADS, s->smem>>>(a);
    else vq_gemv<false, 0><<<s->nblocks, VQ_THREADS, s->smem>>>(a);
    TP_CU_LAUNCHED(&s->base);
    return TP_OK;
}

extern "C" void tp_cuda_vq_fetch(const tp_case *c, void *state, void *out) {
    vq_state *s = (vq_state *)state;
    if (s && !s->base.failed)
        TP_CU(&s->base, cudaMemcpy(out, s->gather ? s->gargs[0].y : s->args[0].y, s->out_count * 4, cudaMemcpyDeviceToHost));
    if (!s || s->base.failed) tp_cu_nan_fill((float *)out, c->out_count);
}

extern "C" void tp_cuda_vq_release(void *state) {
    vq_state *s = (vq_state *)state;
    if (!s) return;
    for (int i = 0; i < s->ncopy; i++) cudaFree(s->blob[i]);
    cudaFree(s->work);
    free(s);
}

/* host emulation of vq_gather: each row's 32 lane sums, then the xor-shuffle tree in its order */
static tp_status emulate_gather(const tp_vqmat *m, const float *x, float *y) {
    GArgs a;
    memset(&a, 0, sizeof a);
    a.codes = m->codes16;
    a.rows = m->rows;
    a.cols = m->cols;
    a.nvec = m->nvec;
    a.d = m->d;
    a.K = m->K;
    float *xs = (float *)calloc((size_t)(m->nvec * m->d) + 1, 4);
    if (!xs) return TP_ERR_NOMEM;
    memcpy(xs, x, (size_t)m->cols * 4);
    for (long long r = 0; r < a.rows; r++) {
        float v[32], t[32];
        for (int l = 0; l < 32; l++) v[l] = vqg_lane<0>(a, m->codebook, xs, r, l);
        for (int o = 16; o; o >>= 1) {
            for (int l = 0; l < 32; l++) t[l] = v[l] + v[l ^ o];
            memcpy(v, t, sizeof v);
        }
        y[r] = v[0];
    }
    free(xs);
    return TP_OK;
}

/* host emulation: the same slices, table entries, per-row lookups and slice-order reduction */
extern "C" tp_status tp_cuda_vq_emulate(const tp_vqmat *m, const float *x, float *y) {
    if (m->codes16 && m->K <= VQG_KMAX && m->d <= VQ_DMAX) return emulate_gather(m, x, y);
    if (!m->codes8 || m->K > VQ_KMAX || m->d > VQ_DMAX) {
        tp_cu_nan_fill(y, (size_t)m->rows);
        return TP_OK;
    }
    VArgs a;
    memset(&a, 0, sizeof a);
    a.cb = m->codebook;
    a.codes = m->codes8;
    a.rows = m->rows;
    a.cols = m->cols;
    a.nvec = m->nvec;
    a.d = m->d;
    a.K = m->K;
    a.nslices = (int)((m->nvec + VQ_V - 1) / VQ_V);
    const int fast = m->nvec % VQ_V == 0 && m->K == VQ_KMAX;
    float *T = (float *)malloc((size_t)VQ_V * m->K * 4), xs[VQ_V * VQ_DMAX];
    float *P = (float *)malloc((size_t)a.nslices * m->rows * 4);
    if (!T || !P) {
        free(T);
        free(P);
        return TP_ERR_NOMEM;
    }
    for (int s = 0; s < a.nslices; s++) {
        const long long c0 = (long long)s * VQ_V * a.d;
        for (int i = 0; i < VQ_V * a.d; i++) xs[i] = c0 + i < a.cols ? x[c0 + i] : 0.f;
        for (int k = 0; k < a.K; k++) {
            const float *cent = a.cb + k * a.d;
            for (int v = 0; v < VQ_V; v++)
                T[v * a.K + k] = a.d == 4 ? vq_table_entry<4>(4, cent, xs, v) : vq_table_entry<0>(a.d, cent, xs, v);
        }
        for (long long r = 0; r < a.rows; r++) {
            if (fast) {
                uint32_t w[16];
                memcpy(w, a.codes + r * a.nvec + (long long)s * VQ_V, sizeof w);
                P[(long long)s * a.rows + r] = vq_fast_row(w, T);
            } else {
                P[(long long)s * a.rows + r] = vq_row_slice(a, T, r, s);
            }
        }
    }
    for (long long r = 0; r < a.rows; r++) {
        float t = 0.f;
        for (int q = 0; q < a.nslices; q++) t += P[(long long)q * a.rows + r];
        y[r] = t;
    }
    free(T);
    free(P);
    return TP_OK;
}

