/* Low rank and tenpakx on the GPU (include/tenpak/lowrank.h).
 *
 * lowrank GEMV y = L (R x), fp32 factors and activations: two launches,
 *   shrink: units of 1024 columns; a block computes the k partial dots of its unit into P[u][*];
 *   expand: a warp per 8 rows, lanes over the rank: y[i] = sum_t L[i][t] T[t], T = sum_u P[u]
 *           (summed in unit order into shared memory by every block).
 * The op moves 4 k (rows + cols) bytes (1 MB at 4096^2 r32): launch-bound, kept simple.
 *
 * tenpakx decode (exact, the definition): W = (lr + vq) + res with lr(i, j) the fmaf chain over
 * t = 0..k-1 of L[i][t] R[t][j] from 0, vq the codebook value, res the int4 value fmaf(q, s, o).
 * Fast kernel (cols % 128 == 0, vq d4, K <= 256, rank <= 32): a block computes a 64 x 128 tile of L R as a
 * small GEMM (k = rank, L and R tiles in shared memory, 8 x 4 outputs per thread, each one
 * accumulated in t order so it is the definition's value bit for bit), then adds the VQ value
 * (codebook in shared memory, one code per 4 columns) and the int4 value, and stores float4s
 * (streaming). Other shapes: one thread per element by the definition. */
#include <stdlib.h>

#include "kernels/cuda/fam_common.cuh"

enum { LRK_CHUNK = 1024, LRK_THREADS = 256, LRK_RPW = 8, TXT_R = 64, TXT_C = 128, TXT_K = 32, TX_KMAX = 64 };

struct LrArgs {
    const float *L, *R, *x;
    float *P, *y;
    long long rows, cols;
    int k, nunits;
};

/* one thread's share of shrink unit u (columns c0 + tid, c0 + tid + nt, ...) for rank index t */
FAM_HD float lr_unit_acc(const LrArgs &a, int u, int t, int tid, int nt) {
    const long long c0 = (long long)u * LRK_CHUNK;
    const long long c1 = c0 + LRK_CHUNK < a.cols ? c0 + LRK_CHUNK : a.cols;
    float acc = 0.f;
    for (long long c = c0 + tid; c < c1; c += nt) acc = fmaf(a.R[t * a.cols + c], a.x[c], acc);
    return acc;
}

static __device__ __forceinline__ float lr_warp_sum(float v) {
#pragma unroll
    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* grid (nunits, k): block (u, t) computes P[u][t] */
__global__ void __launch_bounds__(LRK_THREADS) lr_shrink(LrArgs a) {
    __shared__ float red[LRK_THREADS / 32];
    const int u = blockIdx.x, t = blockIdx.y;
    float v = lr_warp_sum(lr_unit_acc(a, u, t, threadIdx.x, blockDim.x));
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
    __syncthreads();
    if (threadIdx.x == 0) {
        float s = 0.f;
        for (int w = 0; w < LRK_THREADS / 32; w++) s += red[w];
        a.P[(long long)u * a.k + t] = s;
    }
}

/* y[row] = sum_t L[row][t] T[t]: lane part (t = lane, lane + 32) */
FAM_HD float lr_expand_lane(const LrArgs &a, const float *T, long long row, int lane) {
    float s = 0.f;
    for (int t = lane; t < a.k; t += 32) s = fmaf(a.L[row * a.k + t], T[t], s);
    return s;
}

__global__ void __launch_bounds__(LRK_THREADS) lr_expand(LrArgs a) {
    __shared__ float T[TX_KMAX];
    for (int t = threadIdx.x; t < a.k; t += blockDim.x) {
        float s = 0.f;
        for (int u = 0; u < a.nunits; u++) s += a.P[(long long)u * a.k + t];
        T[t] = s;
    }
    __syncthreads();
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const long long r0 = ((long long)blockIdx.x * (LRK_THREADS / 32) + warp) * LRK_RPW;
#pragma unroll
    for (int i = 0; i < LRK_RPW; i++) {
        const long long row = r0 + i;
        if (row >= a.rows) break;
        const float v = lr_warp_sum(lr_expand_lane(a, T, row, lane));
        if (!lane) a.y[row] = v;
    }
}

/* ---- tenpakx decode ---- */
struct TxArgs {
    const float *L, *R, *cb;
    const uint8_t *vcodes; /* rows x nvec (uint8: K <= 256) */
    const uint8_t *rcodes; /* int4 codes */
    const uint16_t *rscale, *roffset;
    float *W;
    long long rows, cols, nvec, cstride, ngroups;
    int k, d, K, g;
};

/* lr(i, j) by the definition */
FAM_HD float tx_lr(const TxArgs &a, long long i, long long j) {
    float acc = 0.f;
    for (int t = 0; t < a.k; t++) acc = fmaf(a.L[i * a.k + t], a.R[t * a.cols + j], acc);
    return acc;
}
/* (lr + vq) + res for element (i, j), given lr and the codebook (global or shared) */
FAM_HD float tx_finish(const TxArgs &a, const float *cb, long long i, long long j, float lr) {
    const float vq = cb[(int)a.vcodes[i * a.nvec + j / a.d] * a.d + (int)(j % a.d)];
    const float res = fam_int4_elem(a.rcodes, a.rscale, a.roffset, a.cstride, a.ngroups, a.g, i, j);
    return (lr + vq) + res;
}

/* the fast kernel's epilogue for columns j..j+3 of row r (j % 4 == 0, d4, g % 4 == 0): one VQ
 * vector, one int4 group, two bytes of codes */
FAM_HD void tx_finish4(const TxArgs &a, const float *cb, long long r, long long j, const float lr[4], float w[4]) {
    const float *cv = cb + (int)a.vcodes[r * a.nvec + j / 4] * 4;
    const unsigned qb = (unsigned)a.rcodes[r * a.cstride + j / 2] | ((unsigned)a.rcodes[r * a.cstride + j / 2 + 1] << 8);
    const long long gi = r * a.ngroups + j / a.g;
    const float s = fam_h2f(a.rscale[gi]), o = fam_h2f(a.roffset[gi]);
FAM_UNROLL
    for (int e = 0; e < 4; e++) w[e] = (lr[e] + cv[e]) + fam_fma((float)((qb >> (4 * e)) & 15u), s, o);
}

__global__ void __launch_bounds__(256) tx_decode_generic(TxArgs a) {
    const long long n = a.rows * a.cols;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n; e += (long long)gridDim.x * blockDim.x) {
        const long long i = e / a.cols, j = e % a.cols;
        a.W[e] = tx_finish(a, a.cb, i, j, tx_lr(a, i, j));
    }
}

/* cols % 128 == 0, d == 4, K <= 256, k <= 32: 64 x 128 tiles, thread (ty, tx) = 8 rows x 4 cols */
__global__ void __launch_bounds__(256) tx_decode_tile(TxArgs a) {
    __shared__ float Ls[TXT_R][TXT_K + 1];
    __shared__ __align__(16) float Rs[TXT_K][TXT_C];
    __shared__ __align__(16) float cbs[256 * 4];
    const int tid = threadIdx.x, ty = tid >> 5, tx = tid & 31;
    const long long ntc = a.cols / TXT_C;
    const long long i0 = (blockIdx.x / ntc) * TXT_R, j0 = (blockIdx.x % ntc) * TXT_C;
    for (int e = tid; e < TXT_R * a.k; e += 256) {
        const int r = e / a.k, t = e % a.k;
        Ls[r][t] = i0 + r < a.rows ? a.L[(i0 + r) * a.k + t] : 0.f;
    }
    for (int e = tid; e < a.k * TXT_C; e += 256) {
        const int t = e / TXT_C, c = e % TXT_C;
        Rs[t][c] = a.R[t * a.cols + j0 + c];
    }
    for (int e = tid; e < a.K * 4; e += 256) cbs[e] = a.cb[e];
    __syncthreads();
    float acc[8][4];
#pragma unroll
    for (int i = 0; i < 8; i++)
#pragma unroll
        for (int c = 0; c < 4; c++) acc[i][c] = 0.f;
    for (int t = 0; t < a.k; t++) { /* t in order: each output is the definition's fmaf chain */
        const float4 b = *(const float4 *)&Rs[t][tx * 4];
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const float l = Ls[ty * 8 + i][t];
            acc[i][0] = fmaf(l, b.x, acc[i][0]);
            acc[i][1] = fmaf(l, b.y, acc[i][1]);
            acc[i][2] = fmaf(l, b.z, acc[i][2]);
            acc[i][3] = fmaf(l, b.w, acc[i][3]);
        }
    }
    const long long j = j0 + tx * 4;
#pragma unroll
    for (int i = 0; i < 8; i++) {
        const long long r = i0 + ty * 8 + i;
        if (r >= a.rows) break;
        float wv[4];
        tx_finish4(a, cbs, r, j, acc[i], wv);
        const float4 w = make_float4(wv[0], wv[1], wv[2], wv[3]);
        __stcs((float4 *)(a.W + r * a.cols + j), w);
    }
}

/* ---- state ---- */
struct lr_state {
    tp_cu_state base;
    int tenpakx, fast, ncopy, next;
    LrArgs la[64];
    TxArgs ta[64];
    void *blob[64];
    void *work;
    size_t out_count;
};

static int lr_rotation(size_t bytes) {
    if (!bytes) return 1;
    size_t want = 4 * tp_cu_l2_bytes(), n = (want + bytes - 1) / bytes;
    size_t cap = ((size_t)2 << 30) / bytes;
    if (n > cap) n = cap;
    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

static size_t up256(size_t n) { return (n + 255) & ~(size_t)255; }

extern "C" void *tp_cuda_lowrank_prepare(const tp_lowrank *m, const float *x) {
    lr_state *s = (lr_state *)calloc(1, sizeof *s);
    if (!s) return NULL;
    if (m->rank > TX_KMAX) {
        fprintf(stderr, "cuda: lowrank gemv built for rank <= %d (got %d)\n", TX_KMAX, m->rank);
        s->base.failed = 1;
        return s;
    }
    const size_t lsz = (size_t)m->rows * m->rank * 4, rsz = (size_t)m->rank * m->cols * 4;
    const size_t total = up256(lsz) + up256(rsz);
    const int nunits = (int)((m->cols + LRK_CHUNK - 1) / LRK_CHUNK);
    const size_t wsz[3] = {(size_t)m->cols * 4, (size_t)nunits * m->rank * 4, (size_t)m->rows * 4};
    TP_CU(&s->base, cudaMalloc(&s->work, up256(wsz[0]) + up256(wsz[1]) + up256(wsz[2])));
    if (s->base.failed) return s;
    char *w = (char *)s->work;
    TP_CU(&s->base, cudaMemcpy(w, x, wsz[0], cudaMemcpyHostToDevice));
    TP_CU(&s->base, cudaMemset(w + up256(wsz[0]) + up256(wsz[1]), 0xff, wsz[2])); /* NaN poison */
    s->ncopy = lr_rotation(total);
    for (int c = 0; c < s->ncopy && !s->base.failed; c++) {
        TP_CU(&s->base, cudaMalloc(&s->blob[c], total));
        if (s->base.failed) break;
        char *b = (char *)s->blob[c];
        TP_CU(&s->base, cudaMemcpy(b, m->L, lsz, cudaMemcpyHostToDevice));
        TP_CU(&s->base, cudaMemcpy(b + up256(lsz), m->R, rsz, cudaMemcpyHostToDevice));
        LrArgs &a = s->la[c];
        a.L = (const float *)b;
        a.R = (const float *)(b + up256(lsz));
        a.x = (const float *)w;
        a.P = (float *)(w + up256(wsz[0]));
        a.y = (float *)(w + up256(wsz[0]) + up256(wsz[1]));
        a.rows = m->rows;
        a.cols = m->cols;
        a.k = m->rank;
        a.nunits = nunits;
    }
    s->out_count = (size_t)m->rows;
    return s;
}

extern "C" void *tp_cuda_tenpakx_prepare(const tp_tenpakx *m) {
    lr_state *s = (lr_state *)calloc(1, sizeof *s);
    if (!s) return NULL;
    s->tenpakx = 1;
    const tp_vqmat *v = &m->vq;
    const tp_qmat *q = &m->res;
    if (!v->codes8 || m->lr.rank > TX_KMAX || q->kind != TP_Q_INT4) {
        fprintf(stderr, "cuda: tenpakx decode built for K <= 256, rank <= %d, int4 residual\n", TX_KMAX);
        s->base.failed = 1;
        return s;
    }
    const long long rows = m->lr.rows, cols = m->lr.cols;
    s->fast = cols % TXT_C == 0 && v->d == 4 && q->g % 4 == 0 && m->lr.rank <= TXT_K;
    const size_t nsc = (size_t)(rows * q->ngroups);
    const size_t sz[7] = {(size_t)rows * m->lr.rank * 4, (size_t)m->lr.rank * cols * 4, (size_t)v->K * v->d * 4,
                          (size_t)(rows * v->nvec), (size_t)(rows * q->code_stride), nsc * 2, nsc * 2};
    const void *src[7] = {m->lr.L, m->lr.R, v->codebook, v->codes8, q->codes, q->scale, q->offset};
    size_t off[7], total = 0;
    for (int i = 0; i < 7; i++) {
        off[i] = total;
        total += up256(sz[i]);
    }
    s->out_count = (size_t)(rows * cols);
    TP_CU(&s->base, cudaMalloc(&s->work, s->out_count * 4 + 16));
    if (s->base.failed) return s;
    TP_CU(&s->base, cudaMemset(s->work, 0xff, s->out_count * 4)); /* NaN poison */
    s->ncopy = lr_rotation(total); /* the 14 MB of inputs at 4096^2 would otherwise stay in L2 */
    for (int c = 0; c < s->ncopy && !s->base.failed; c++) {
        TP_CU(&s->base, cudaMalloc(&s->blob[c], total));
        if (s->base.failed) break;
        char *b = (char *)s->blob[c];
        for (int i = 0; i < 7; i++) TP_CU(&s->base, cudaMemcpy(b + off[i], src[i], sz[i], cudaMemcpyHostToDevice));
        TxArgs &a = s->ta[c];
        a.L = (const float *)(b + off[0]);
        a.R = (const float *)(b + off[1]);
        a.cb = (const float *)(b + off[2]);
        a.vcodes = (const uint8_t *)(b + off[3]);
        a.rcodes = (const uint8_t *)(b + off[4]);
        a.rscale = (const uint16_t *)(b + off[5]);
        a.roffset = (const uint16_t *)(b + off[6]);
        a.W = (float *)s->work;
        a.rows = rows;
        a.cols = cols;
        a.nvec = v->nvec;
        a.cstride = q->code_stride;
        a.ngroups = q->ngroups;
        a.k = m->lr.rank;
        a.d = v->d;
        a.K = v->K;
        a.g = q->g;
    }
    return s;
}

extern "C" tp_status tp_cuda_lowrank_run(const tp_case *c, void *state, void *out) {
    (void)c;
    (void)out;
    lr_state *s = (lr_state *)state;
    if (!s || s->base.failed) return TP_OK;
    const int i = s->next;
    s->next = (s->next + 1) % s->ncopy;
    if (s->tenpakx) {
        const TxArgs &a = s->ta[i];
        if (s->fast) {
            const long long blocks = (a.rows + TXT_R - 1) / TXT_R * (a.cols / TXT_C);
            tx_decode_tile<<<(unsigned)blocks, 256>>>(a);
        } else {
            long long b = (a.rows * a.cols + 255) / 256, cap = (long long)tp_cu_sm_count() * 16;
            tx_decode_generic<<<(unsigned)(b < 1 ? 1 : b > cap ? cap : b), 256>>>(a);
        }
    } else {
        const LrArgs &a = s->la[i];
        lr_shrink<<<dim3((unsigned)a.nunits, (unsigned)a.k), LRK_THREADS>>>(a);
        const long long rpb = (LRK_THREADS / 32) * LRK_RPW;
        lr_expand<<<(unsigned)((a.rows + rpb - 1) / rpb), LRK_THREADS>>>(a);
    }
    TP_CU_LAUNCHED(&s->base);
    return TP_OK;
}

extern "C" void tp_cuda_lowrank_fetch(const tp_case *c, void *state, void *out) {
    lr_state *s = (lr_state *)state;
    if (s && !s->base.failed) {
        const float *y = s->tenpakx ? s->ta[0].W : s->la[0].y;
        TP_CU(&s->base, cudaMemcpy(out, y, s->out_count * 4, cudaMemcpyDeviceToHost));
    }
    if (!s || s->base.failed) tp_cu_nan_fill((float *)out, c->out_count);
}

extern "C" void tp_cuda_lowrank_release(void *state) {
    lr_state *s = (lr_state *)state;
    if (!s) return;
    for (int i = 0; i < s->ncopy; i++) cudaFree(s->blob[i]);
    cudaFree(s->work);
    free(s);
}

/* ---- host emulations ---- */
extern "C" void tp_cuda_lowrank_emulate(const tp_lowrank *m, const float *x, float *y) {
    LrArgs a;
    memset(&a, 0, sizeof a);
    a.L = m->L;
    a.R = m->R;
    a.x = x;
    a.rows = m->rows;
    a.cols = m->cols;
    a.k = m->rank;
    a.nunits = (int)((m->cols + LRK_CHUNK - 1) / LRK_CHUNK);
    if (a.k > TX_KMAX) {
        tp_cu_nan_fill(y, (size_t)m->rows);
        return;
    }
    float T[TX_KMAX];
    for (int t = 0; t < a.k; t++) {
        float s = 0.f;
        for (int u = 0; u < a.nunits; u++) {
            float p = 0.f;
            for (int tid = 0; tid < LRK_THREADS; tid++) p += lr_unit_acc(a, u, t, tid, LRK_THREADS);
            s += p;
        }
        T[t] = s;
    }
    for (long long r = 0; r < a.rows; r++) {
        float v = 0.f;
        for (int lane = 0; lane < 32; lane++) v += lr_expand_lane(a, T, r, lane);
        y[r] = v;
    }
}

extern "C" void tp_cuda_tenpakx_emulate(const tp_tenpakx *m, float *W) {
    TxArgs a;
    memset(&a, 0, sizeof a);
    a.L = m->lr.L;
    a.R = m->lr.R;
    a.cb = m->vq.codebook;
    a.vcodes = m->vq.codes8;
    a.rcodes = m->res.codes;
    a.rscale = m->res.scale;
    a.roffset = m->res.offset;
    a.rows = m->lr.rows;
    a.cols = m->lr.cols;
    a.nvec = m->vq.nvec;
    a.cstride = m->res.code_stride;
    a.ngroups = m->res.ngroups;
    a.k = m->lr.rank;
    a.d = m->vq.d;
    a.K = m->vq.K;
    a.g = m->res.g;
    if (!a.vcodes) {
        tp_cu_nan_fill(W, (size_t)(a.rows * a.cols));
        return;
    }
    const int fast = a.cols % TXT_C == 0 && a.d == 4 && a.g % 4 == 0 && a.k <= TXT_K && a.K <= 256;
    for (long long i = 0; i < a.rows; i++)
        for (long long j = 0; j < a.cols; j++) {
            if (fast) { /* the tile kernel's epilogue, 4 columns at a time */
                if (j % 4) continue;
                float lr[4];
                for (int e = 0; e < 4; e++) lr[e] = tx_lr(a, i, j + e);
                tx_finish4(a, a.cb, i, j, lr, W + i * a.cols + j);
            } else {
                W[i * a.cols + j] = tx_finish(a, a.cb, i, j, tx_lr(a, i, j));
            }
        }
}
