/* 2:4 sparse GEMV / GEMM on the GPU (fp16 values, layout of include/tenpak/sparse.h).
 *
 *   simt: one thread per output element, reading values and 4-bit metadata fields exactly as the
 *         reference does (fp32 accumulation with fmaf). The obviously-right version.
 *   tc  : sparse tensor cores, mma.sp.sync.aligned.m16n8k32.row.col.f32.f16.f16.f32. Block tile
 *         128 rows x 256 batch columns x 64 dense k (32 kept values per row), 8 warps of 64 x 64,
 *         4-stage cp.async pipeline through shared memory (padded rows: conflict-free 32-bit
 *         fragment loads), grouped rasterisation so the tiles in flight share A and X in L2.
 *         prepare repacks once (not timed): values padded to the tile grid; metadata regrouped
 *         per (16 rows, 32 dense columns) mma tile as the 16 words lanes 4g+0 / 4g+1 pass to the
 *         instruction (tp_sp24_tc_meta_word); X zero-padded fp16.
 * The tenpak metadata field of a group (bits [1:0] = kept entry 0, [3:2] = kept entry 1) is the
 * mma.sp 16-bit-operand field; group j of a row sits at bits 4(j%4) of 16-bit word j/4, so four
 * groups (16 dense columns) are one 16-bit half of an instruction metadata word.
 */
#include <cuda_fp16.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/tp_cuda_sparse.h"

/* ---------------------------------------------------------------------------------------------
 * host packing model (shared with prepare)
 * ------------------------------------------------------------------------------------------- */
static int field_or_pad(const tp_sp24 *s, int64_t r, int64_t j) {
    if (r >= s->rows || j >= s->ngroups) return 0x4; /* kept entries 0 and 1 (values 0) */
    return tp_sp24_field(s, r, j);
}
static uint32_t chunk16(const tp_sp24 *s, int64_t r, int64_t j0) {
    uint32_t w = 0;
    for (int q = 0; q < 4; q++) w |= (uint32_t)field_or_pad(s, r, j0 + q) << (4 * q);
    return w;
}

extern "C" uint32_t tp_sp24_tc_meta_word(const tp_sp24 *s, int64_t r0, int64_t k0, int lane, int hyp) {
    const int gid = lane >> 2, tsel = lane & 1;
    const int64_t j0 = k0 / 4;
    if (hyp == 'a') { /* lane 4g: row g, dense 0..31; lane 4g+1: row g+8 */
        const int64_t r = r0 + gid + 8 * tsel;
        return chunk16(s, r, j0) | chunk16(s, r, j0 + 4) << 16;
    }
    /* 'b': lane 4g: dense 0..15 of rows g (low half) and g+8 (high half); lane 4g+1: 16..31 */
    return chunk16(s, r0 + gid, j0 + 4 * tsel) | chunk16(s, r0 + gid + 8, j0 + 4 * tsel) << 16;
}

static int meta_hyp(void) {
    const char *e = getenv("TENPAK_SP24_META");
    return e && e[0] == 'a' ? 'a' : 'b';
}

/* ---------------------------------------------------------------------------------------------
 * simt kernel: the documented layout as stored
 * ------------------------------------------------------------------------------------------- */
template <bool F16X>
__global__ void sp24_simt(const uint16_t *__restrict__ V, const uint16_t *__restrict__ meta,
                          const void *__restrict__ Xv, long long rows, long long cols, long long G,
                          long long mstride, long long batch, float *__restrict__ Y) {
    const long long total = rows * batch;
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < total;
         idx += (long long)gridDim.x * blockDim.x) {
        const long long r = idx % rows, b = idx / rows;
        const uint16_t *vr = V + r * 2 * G;
        const uint16_t *mr = meta + r * mstride;
        float acc = 0.f;
        for (long long j = 0; j < G; j++) {
            const int f = (mr[j >> 2] >> (4 * (j & 3))) & 15;
#pragma unroll
            for (int t = 0; t < 2; t++) {
                const long long c = 4 * j + ((f >> (2 * t)) & 3);
                if (c < cols) {
                    float x;
                    if (F16X) x = __half2float(__ushort_as_half(((const uint16_t *)Xv)[b * cols + c]));
                    else x = ((const float *)Xv)[b * cols + c];
                    acc = fmaf(__half2float(__ushort_as_half(vr[2 * j + t])), x, acc);
                }
            }
        }
        Y[b * rows + r] = acc;
    }
}

/* ---------------------------------------------------------------------------------------------
 * tensor-core kernel
 * ------------------------------------------------------------------------------------------- */
/* WNT: 8-column mma tiles per warp (warp tile 64 x 8*WNT, block 128 x 32*WNT) */
enum { WNT = 8, BM = 128, BN = 32 * WNT, BK = 64, BKC = 32, STAGES = 4, A_LD = BKC + 8, B_LD = BK + 8, NTHR = 256 };
enum { A_ST = BM * A_LD, B_ST = BN * B_LD, M_ST = (BM / 16) * (BK / 32) * 16 }; /* halves, halves, words */
static const size_t TC_SMEM = (size_t)STAGES * (A_ST * 2 + B_ST * 2 + M_ST * 4);

struct TcArgs {
    const uint16_t *V; /* Mp x Kc kept values */
    const uint32_t *M; /* (Mp/16) x (Kp/32) x 16 metadata words */
    const uint16_t *X; /* Np x Kp */
    float *Y;          /* batch x rows */
    int rows, batch, Mp, Np, Kp;
};

/* The per-thread index math, shared by the kernel and its host emulation (tp_sp24_tc_emulate). */
#define HD static __host__ __device__ __forceinline__
/* grouped rasterisation: 8 row tiles by every column tile */
HD void tc_tile(int pid, int npm, int npn, int *pm, int *pn) {
    const int per_group = 8 * npn, first = pid / per_group * 8;
    const int gsz = npm - first < 8 ? npm - first : 8;
    *pm = first + (pid % per_group) % gsz;
    *pn = (pid % per_group) / gsz;
}
/* copy chunk i (16 bytes) of thread tid: A (i < 2), X (i < 4), metadata (tid < 64) -> smem offset
 * (halves / words) and global offset (halves / words) */
HD void tc_chunk_a(int tid, int i, int m0, int kt, int Kc, int *so, size_t *go) {
    const int c = tid + NTHR * i, row = c >> 2, part = c & 3;
    *so = row * A_LD + part * 8;
    *go = (size_t)(m0 + row) * Kc + kt * BKC + part * 8;
}
HD void tc_chunk_b(int tid, int i, int n0, int kt, int Kp, int *so, size_t *go) {
    const int c = tid + NTHR * i, n = c >> 3, part = c & 7;
    *so = n * B_LD + part * 8;
    *go = (size_t)(n0 + n) * Kp + kt * BK + part * 8;
}
HD void tc_chunk_m(int tid, int m0, int kt, int Kp, int *so, size_t *go) {
    const int mt = tid >> 3, q = tid & 7;
    *so = mt * 32 + q * 4;
    *go = ((size_t)(m0 / 16 + mt) * (Kp / 32) + kt * 2) * 16 + q * 4;
}
/* fragment registers of lane (gid, tig) of warp (wm, wn), k-step ks: smem offsets (halves) of the
 * two fp16 values of A register j of m-tile mt, of B register j of n-tile nt; word of metadata */
HD int tc_frag_a(int wm, int mt, int ks, int gid, int tig, int j) {
    return (wm * 64 + mt * 16 + gid + 8 * (j & 1)) * A_LD + ks * 16 + 2 * tig + 8 * (j >> 1);
}
HD int tc_frag_b(int wn, int nt, int ks, int gid, int tig, int j) {
    return (wn * 8 * WNT + nt * 8 + gid) * B_LD + ks * 32 + 2 * tig + 8 * j;
}
HD int tc_frag_m(int wm, int mt, int ks, int gid, int tig) { return (wm * 4 + mt) * 32 + ks * 16 + gid * 2 + (tig & 1); }
/* accumulator element e of (mt, nt): output row and batch column */
HD void tc_acc_pos(int m0, int n0, int wm, int wn, int mt, int nt, int gid, int tig, int e, int *r, int *n) {
    *r = m0 + wm * 64 + mt * 16 + gid + (e >= 2 ? 8 : 0);
    *n = n0 + wn * 8 * WNT + nt * 8 + 2 * tig + (e & 1);
}

static __device__ __forceinline__ void cp16(void *smem, const void *g) {
    const unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(g) : "memory");
}
static __device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
static __device__ __forceinline__ void cp_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

static __device__ __forceinline__ void mma_sp(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[4],
                                              uint32_t e) {
    asm volatile(
        "mma.sp.sync.aligned.m16n8k32.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9,%10,%11}, {%0,%1,%2,%3}, %12, 0x0;\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "r"(b[2]), "r"(b[3]), "r"(e));
}

static __device__ __forceinline__ void tc_load(const TcArgs &p, uint16_t *sA, uint16_t *sB, uint32_t *sM,
                                               int m0, int n0, int kt, int tid) {
    int so;
    size_t go;
#pragma unroll
    for (int i = 0; i < 2; i++) { /* A: 128 rows x 4 chunks */
        tc_chunk_a(tid, i, m0, kt, p.Kp / 2, &so, &go);
        cp16(sA + so, p.V + go);
    }
#pragma unroll
    for (int i = 0; i < BN * 8 / NTHR; i++) { /* X: BN columns x 8 chunks */
        tc_chunk_b(tid, i, n0, kt, p.Kp, &so, &go);
        cp16(sB + so, p.X + go);
    }
    if (tid < 64) { /* metadata: 8 row tiles x 2 k-steps x 16 words */
        tc_chunk_m(tid, m0, kt, p.Kp, &so, &go);
        cp16(sM + so, p.M + go);
    }
}

__global__ void __launch_bounds__(NTHR, 1) sp24_tc(TcArgs p) {
    extern __shared__ __align__(16) unsigned char smem[];
    uint16_t *sA = (uint16_t *)smem;
    uint16_t *sB = sA + STAGES * A_ST;
    uint32_t *sM = (uint32_t *)(sB + STAGES * B_ST);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, gid = lane >> 2, tig = lane & 3;
    const int wm = warp & 1, wn = warp >> 1;
    int pm, pn;
    tc_tile(blockIdx.x, p.Mp / BM, p.Np / BN, &pm, &pn);
    const int m0 = pm * BM, n0 = pn * BN, nk = p.Kp / BK;

    float acc[4][WNT][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < WNT; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0.f;

#pragma unroll
    for (int s = 0; s < STAGES - 1; s++) {
        if (s < nk) tc_load(p, sA + s * A_ST, sB + s * B_ST, sM + s * M_ST, m0, n0, s, tid);
        cp_commit();
    }
    for (int kt = 0; kt < nk; kt++) {
        cp_wait<STAGES - 2>();
        __syncthreads();
        {
            const int kn = kt + STAGES - 1, sn = kn % STAGES;
            if (kn < nk) tc_load(p, sA + sn * A_ST, sB + sn * B_ST, sM + sn * M_ST, m0, n0, kn, tid);
            cp_commit();
        }
        const int st = kt % STAGES;
        const uint16_t *a_s = sA + st * A_ST, *b_s = sB + st * B_ST;
        const uint32_t *m_s = sM + st * M_ST;
#pragma unroll
        for (int ks = 0; ks < 2; ks++) {
            uint32_t a[4][4], e[4];
#pragma unroll
            for (int mt = 0; mt < 4; mt++) {
#pragma unroll
                for (int j = 0; j < 4; j++) a[mt][j] = *(const uint32_t *)(a_s + tc_frag_a(wm, mt, ks, gid, tig, j));
                e[mt] = m_s[tc_frag_m(wm, mt, ks, gid, tig)];
            }
#pragma unroll
            for (int nt = 0; nt < WNT; nt++) { /* one B fragment live at a time (registers) */
                uint32_t b[4];
#pragma unroll
                for (int j = 0; j < 4; j++) b[j] = *(const uint32_t *)(b_s + tc_frag_b(wn, nt, ks, gid, tig, j));
#pragma unroll
                for (int mt = 0; mt < 4; mt++) mma_sp(acc[mt][nt], a[mt], b, e[mt]);
            }
        }
    }
    cp_wait<0>();
#pragma unroll
    for (int mt = 0; mt < 4; mt++)
#pragma unroll
        for (int nt = 0; nt < WNT; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int rr, nn;
                tc_acc_pos(m0, n0, wm, wn, mt, nt, gid, tig, e, &rr, &nn);
                if (rr < p.rows && nn < p.batch) p.Y[(size_t)nn * p.rows + rr] = acc[mt][nt][e];
            }
}

/* ---------------------------------------------------------------------------------------------
 * one-time packing for the tensor-core kernel (host), and its host emulation
 * ------------------------------------------------------------------------------------------- */
struct TcHost {
    int Mp, Np, Kp;
    uint16_t *V; /* Mp x Kp/2 */
    uint32_t *M; /* (Mp/16) x (Kp/32) x 16 */
    uint16_t *X; /* Np x Kp */
    size_t vbytes, mbytes, xbytes;
};
static int64_t round_up(int64_t a, int64_t m) { return (a + m - 1) / m * m; }

static void tc_host_free(TcHost *h) {
    free(h->V);
    free(h->M);
    free(h->X);
    memset(h, 0, sizeof *h);
}

/* 0 on allocation failure; X may be NULL (then h->X stays NULL) */
static int tc_pack(const tp_sp24 *s, const float *X, int64_t batch, int hyp, TcHost *h) {
    memset(h, 0, sizeof *h);
    h->Mp = (int)round_up(s->rows, BM);
    h->Kp = (int)round_up(s->cols, BK);
    h->Np = (int)round_up(batch, BN);
    const int64_t Kc = h->Kp / 2;
    h->vbytes = (size_t)(h->Mp * Kc) * 2;
    h->mbytes = (size_t)(h->Mp / 16) * (h->Kp / 32) * 16 * 4;
    h->xbytes = (size_t)h->Np * h->Kp * 2;
    h->V = (uint16_t *)calloc(h->vbytes, 1);
    h->M = (uint32_t *)malloc(h->mbytes);
    if (X) h->X = (uint16_t *)calloc(h->xbytes, 1);
    if (!h->V || !h->M || (X && !h->X)) {
        tc_host_free(h);
        return 0;
    }
    for (int64_t r = 0; r < s->rows; r++) memcpy(h->V + r * Kc, s->vf16 + r * s->nkept, (size_t)s->nkept * 2);
    for (int64_t mt = 0; mt < h->Mp / 16; mt++)
        for (int64_t ks = 0; ks < h->Kp / 32; ks++)
            for (int w = 0; w < 16; w++) /* word gid*2 + tsel = lane 4*gid + tsel */
                h->M[(mt * (h->Kp / 32) + ks) * 16 + w] = tp_sp24_tc_meta_word(s, mt * 16, ks * 32, 4 * (w >> 1) + (w & 1), hyp);
    if (X)
        for (int64_t b = 0; b < batch; b++)
            for (int64_t i = 0; i < s->cols; i++) h->X[b * h->Kp + i] = tp_f32_to_f16(X[b * s->cols + i]);
    return 1;
}

/* The warp-level semantics the kernel assumes of mma.sp m16n8k32 (f16, selector 0), applied to
 * the 32 lanes' registers: A value (lane 4g+t, register j, half h) is row g + 8(j&1), compressed
 * column 2t + 8(j>>1) + h = kept entry h of group t + 4(j>>1); its dense column comes from the
 * metadata (hypothesis hyp, see tp_sp24_tc_meta_word); B (register j, half h) is k = 2t + 8j + h,
 * n = g; accumulator e is row g + 8(e>>1), column 2t + (e&1). */
static void emu_mma(float acc[32][4], const uint32_t a[32][4], const uint32_t b[32][4], const uint32_t e[32], int hyp) {
    float A[16][32], B[32][8];
    memset(A, 0, sizeof A);
    for (int l = 0; l < 32; l++) {
        const int g = l >> 2, t = l & 3;
        for (int j = 0; j < 4; j++)
            for (int h = 0; h < 2; h++) {
                const int row = g + 8 * (j & 1), q = t + 4 * (j >> 1);
                const uint32_t w = hyp == 'a' ? e[4 * (row & 7) + (row >> 3)] : e[4 * (row & 7) + (q >> 2)];
                const int bit = hyp == 'a' ? 4 * q + 2 * h : 16 * (row >> 3) + 4 * (q & 3) + 2 * h;
                const int col = 4 * q + (int)((w >> bit) & 3);
                A[row][col] += tp_f16_to_f32((uint16_t)(a[l][j] >> (16 * h)));
                B[2 * t + 8 * j + h][g] = tp_f16_to_f32((uint16_t)(b[l][j] >> (16 * h)));
            }
    }
    for (int l = 0; l < 32; l++) {
        const int g = l >> 2, t = l & 3;
        for (int k = 0; k < 4; k++) {
            const int row = g + 8 * (k >> 1), col = 2 * t + (k & 1);
            float sum = 0;
            for (int kk = 0; kk < 32; kk++) sum += A[row][kk] * B[kk][col];
            acc[l][k] += sum;
        }
    }
}

extern "C" int tp_sp24_tc_emulate(const tp_sp24 *s, const float *X, int64_t batch, float *Y) {
    const int hyp = meta_hyp();
    TcHost h;
    if (s->vkind != TP_SP_F16 || !tc_pack(s, X, batch, hyp, &h)) return 0;
    uint16_t *sA = (uint16_t *)malloc((size_t)A_ST * 2), *sB = (uint16_t *)malloc((size_t)B_ST * 2);
    uint32_t *sM = (uint32_t *)malloc((size_t)M_ST * 4);
    float(*acc)[4][WNT][32][4] = (float(*)[4][WNT][32][4])malloc(sizeof(float) * 8 * 4 * WNT * 32 * 4);
    if (!sA || !sB || !sM || !acc) {
        free(sA), free(sB), free(sM), free(acc);
        tc_host_free(&h);
        return 0;
    }
    const int npm = h.Mp / BM, npn = h.Np / BN, nk = h.Kp / BK;
    for (int pid = 0; pid < npm * npn; pid++) {
        int pm, pn;
        tc_tile(pid, npm, npn, &pm, &pn);
        const int m0 = pm * BM, n0 = pn * BN;
        memset(acc, 0, sizeof(float) * 8 * 4 * WNT * 32 * 4);
        for (int kt = 0; kt < nk; kt++) {
            for (int tid = 0; tid < NTHR; tid++) {
                int so;
                size_t go;
                for (int i = 0; i < 2; i++) {
                    tc_chunk_a(tid, i, m0, kt, h.Kp / 2, &so, &go);
                    memcpy(sA + so, h.V + go, 16);
                }
                for (int i = 0; i < BN * 8 / NTHR; i++) {
                    tc_chunk_b(tid, i, n0, kt, h.Kp, &so, &go);
                    memcpy(sB + so, h.X + go, 16);
                }
                if (tid < 64) {
                    tc_chunk_m(tid, m0, kt, h.Kp, &so, &go);
                    memcpy(sM + so, h.M + go, 16);
                }
            }
            for (int warp = 0; warp < 8; warp++) {
                const int wm = warp & 1, wn = warp >> 1;
                for (int ks = 0; ks < 2; ks++)
                    for (int mt = 0; mt < 4; mt++)
                        for (int nt = 0; nt < WNT; nt++) {
                            uint32_t a[32][4], b[32][4], e[32];
                            for (int l = 0; l < 32; l++) {
                                const int gid = l >> 2, tig = l & 3;
                                for (int j = 0; j < 4; j++) {
                                    memcpy(&a[l][j], sA + tc_frag_a(wm, mt, ks, gid, tig, j), 4);
                                    memcpy(&b[l][j], sB + tc_frag_b(wn, nt, ks, gid, tig, j), 4);
                                }
                                e[l] = sM[tc_frag_m(wm, mt, ks, gid, tig)];
                            }
                            emu_mma(acc[warp][mt][nt], a, b, e, hyp);
                        }
            }
        }
        for (int warp = 0; warp < 8; warp++)
            for (int mt = 0; mt < 4; mt++)
                for (int nt = 0; nt < WNT; nt++)
                    for (int l = 0; l < 32; l++)
                        for (int k = 0; k < 4; k++) {
                            int rr, nn;
                            tc_acc_pos(m0, n0, warp & 1, warp >> 1, mt, nt, l >> 2, l & 3, k, &rr, &nn);
                            if (rr < s->rows && nn < batch) Y[(size_t)nn * s->rows + rr] = acc[warp][mt][nt][l][k];
                        }
    }
    free(sA), free(sB), free(sM), free(acc);
    tc_host_free(&h);
    return 1;
}

/* ---------------------------------------------------------------------------------------------
 * state and registry glue
 * ------------------------------------------------------------------------------------------- */
struct sp_state {
    tp_cu_state base;
    int mode, f16a;
    int64_t rows, cols, batch, G, mstride;
    int ncopy, next;
    void *wblob[8];  /* per copy: values then metadata */
    size_t voff_m;   /* offset of the metadata inside a blob */
    void *X;
    float *Y;
    size_t out_count;
    int Mp, Np, Kp;
};

static size_t up256(size_t n) { return (n + 255) & ~(size_t)255; }

extern "C" void *tp_cuda_sp24_prepare(const tp_sp24 *s, const float *X, int64_t batch, int f16a, int mode) {
    sp_state *st = (sp_state *)calloc(1, sizeof *st);
    if (!st) return NULL;
    st->mode = mode;
    st->f16a = f16a;
    st->rows = s->rows;
    st->cols = s->cols;
    st->batch = batch;
    st->G = s->ngroups;
    st->mstride = s->meta_stride;
    if (s->vkind != TP_SP_F16 || (mode == 1 && !f16a)) {
        fprintf(stderr, "cuda: sparse24 kernel needs fp16 values%s\n", mode == 1 ? " and fp16 activations" : "");
        st->base.failed = 1;
        return st;
    }
    void *hv = NULL, *hm = NULL;
    size_t vbytes, mbytes;
    if (mode == 0) {
        vbytes = (size_t)(s->rows * s->nkept) * 2;
        mbytes = (size_t)(s->rows * s->meta_stride) * 2;
        hv = s->vf16;
        hm = s->meta;
    } else {
        if (s->rows > (1 << 30) || s->cols > (1 << 30) || batch > (1 << 30)) {
            fprintf(stderr, "cuda: sparse24 tc: shape too large\n");
            st->base.failed = 1;
            return st;
        }
        TcHost h;
        if (!tc_pack(s, NULL, batch, meta_hyp(), &h)) {
            st->base.failed = 1;
            return st;
        }
        st->Mp = h.Mp;
        st->Np = h.Np;
        st->Kp = h.Kp;
        vbytes = h.vbytes;
        mbytes = h.mbytes;
        hv = h.V;
        hm = h.M;
    }
    st->voff_m = up256(vbytes);
    const size_t total = st->voff_m + up256(mbytes);
    st->ncopy = tp_cu_rotation(total);
    for (int c = 0; c < st->ncopy && !st->base.failed; c++) {
        TP_CU(&st->base, cudaMalloc(&st->wblob[c], total));
        if (st->base.failed) break;
        TP_CU(&st->base, cudaMemcpy(st->wblob[c], hv, vbytes, cudaMemcpyHostToDevice));
        TP_CU(&st->base, cudaMemcpy((char *)st->wblob[c] + st->voff_m, hm, mbytes, cudaMemcpyHostToDevice));
    }
    if (mode == 1) {
        free(hv);
        free(hm);
    }
    /* activations */
    const int64_t xr = mode == 1 ? st->Np : batch, xc = mode == 1 ? st->Kp : s->cols;
    const size_t xn = (size_t)(xr * xc), esz = f16a ? 2 : 4;
    void *hx = calloc(xn + 8, esz);
    if (!hx) st->base.failed = 1;
    else {
        for (int64_t b = 0; b < batch; b++)
            for (int64_t i = 0; i < s->cols; i++) {
                const float v = X[b * s->cols + i];
                if (f16a) ((uint16_t *)hx)[b * xc + i] = tp_f32_to_f16(v); /* exact: f16a inputs */
                else ((float *)hx)[b * xc + i] = v;
            }
        TP_CU(&st->base, cudaMalloc(&st->X, xn * esz + 16));
        if (!st->base.failed) TP_CU(&st->base, cudaMemcpy(st->X, hx, xn * esz, cudaMemcpyHostToDevice));
        free(hx);
    }
    st->out_count = (size_t)(batch * s->rows);
    TP_CU(&st->base, cudaMalloc((void **)&st->Y, st->out_count * 4 + 16));
    if (!st->base.failed) TP_CU(&st->base, cudaMemset(st->Y, 0xff, st->out_count * 4)); /* NaN poison */
    if (mode == 1 && !st->base.failed)
        TP_CU(&st->base, cudaFuncSetAttribute(sp24_tc, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)TC_SMEM));
    return st;
}

extern "C" tp_status tp_cuda_sp24_run(const tp_case *c, void *state, void *out) {
    (void)c;
    (void)out;
    sp_state *st = (sp_state *)state;
    if (!st || st->base.failed) return TP_OK;
    char *blob = (char *)st->wblob[st->next];
    st->next = (st->next + 1) % st->ncopy;
    if (st->mode == 0) {
        const long long total = st->rows * st->batch;
        long long blocks = (total + 255) / 256, cap = (long long)tp_cu_sm_count() * 32;
        if (blocks > cap) blocks = cap;
        if (st->f16a)
            sp24_simt<true><<<(unsigned)blocks, 256>>>((const uint16_t *)blob, (const uint16_t *)(blob + st->voff_m),
                                                       st->X, st->rows, st->cols, st->G, st->mstride, st->batch, st->Y);
        else
            sp24_simt<false><<<(unsigned)blocks, 256>>>((const uint16_t *)blob, (const uint16_t *)(blob + st->voff_m),
                                                        st->X, st->rows, st->cols, st->G, st->mstride, st->batch, st->Y);
    } else {
        TcArgs p;
        p.V = (const uint16_t *)blob;
        p.M = (const uint32_t *)(blob + st->voff_m);
        p.X = (const uint16_t *)st->X;
        p.Y = st->Y;
        p.rows = (int)st->rows;
        p.batch = (int)st->batch;
        p.Mp = st->Mp;
        p.Np = st->Np;
        p.Kp = st->Kp;
        const unsigned blocks = (unsigned)((st->Mp / BM) * (st->Np / BN));
        sp24_tc<<<blocks, NTHR, TC_SMEM>>>(p);
    }
    TP_CU_LAUNCHED(&st->base);
    return TP_OK;
}

extern "C" void tp_cuda_sp24_fetch(const tp_case *c, void *state, void *out) {
    sp_state *st = (sp_state *)state;
    if (st && !st->base.failed) TP_CU(&st->base, cudaMemcpy(out, st->Y, st->out_count * 4, cudaMemcpyDeviceToHost));
    if (!st || st->base.failed) tp_cu_nan_fill((float *)out, c->out_count);
}

extern "C" void tp_cuda_sp24_release(void *state) {
    sp_state *st = (sp_state *)state;
    if (!st) return;
    for (int i = 0; i < st->ncopy; i++) cudaFree(st->wblob[i]);
    cudaFree(st->X);
    cudaFree(st->Y);
    free(st);
}
