/* LoRA on the GPU: Y[b] = W X[b] + s_i B_i (A_i X[b]), i = idx[b] (include/tenpak/lora.h), with an
 * int4 (g128) or nf4 (g64) base read as stored (quant.h) and fp32 activations and adapters.
 * BA is never formed.
 *
 * One launch (fused = 1). Work of a run:
 *   shrink: T[b][k] = sum_c A_i[k][c] X[b][c], cut into units (b, 128-column chunk); a unit's r
 *           partial dots go to P[unit][k] (no atomics on data: T is summed in a fixed order);
 *   base  : a warp owns 4 rows, a lane 32-column chunks (16 bytes of codes, int4.cu's decoding
 *           idea re-written here: the exponent trick turns nibbles into q*16^k, activations are
 *           pre-scaled by 16^-k once per chunk and shared by the 4 rows; y = sum_groups
 *           s * sum(q x) + o * sum(x));
 *   expand: after its base rows a block sums P into T (shared memory) and adds s B[row] . T[b].
 * The units are claimed from a counter (atomicAdd) by up to NHELP extra blocks that do nothing
 * else (blockIdx >= the base blocks: they run beside the base blocks, on the SMs a grid of less
 * than a wave leaves idle or as a second block of an SM; only as many as the occupancy leaves room
 * for, so none waits for a base block's SM), and by every base block when it reaches the
 * expand: it first claims and works any unit still unclaimed, then waits for "all units done".
 * A claimed unit belongs to a running block that never waits before finishing it, so the wait
 * cannot deadlock whether or not the helpers are scheduled. That is for one column (GEMV, 2 blocks
 * an SM); with several (BGMV, 1 block an SM, no room for helpers) every block claims units
 * before its base rows instead. The counters are never reset: every call of a block's claim loop
 * ends with exactly one claim that finds no unit, so a run makes a fixed number of claims
 * (p.claims: the units and one per call) and run k's are k claims .. (k + 1) claims - 1 (runs do
 * not overlap: a block claims only after its tp_pdl_wait, which returns once the run before has
 * finished); unit = claim mod p.claims, and the run's units take `done` to (k + 1) units. So the
 * blocks leave without a last atomic (until 706e3d4 the last block to leave, found by a third
 * counter, set the counters back to zero: one more L2 round trip at every block's end). The wait
 * is bounded (~1 s): past it, or with `done` past its run's count, the state is marked failed and
 * fetch writes NaN.
 * Until run28 the first blocks to start did the units before their own base rows, every block
 * took a ticket first, and the counters carried a run number (epoch) passed as an argument: a
 * graph replays its captured arguments, so from the second replay on every ticket was out of
 * range, the blocks skipped their units and the wait passed on the earlier runs' count; the
 * bench's graph-timed figures of the fused kernel (run5-run28: +43-55% over the INT4 GEMV) timed
 * runs without their shrink. The verify runs were single stream launches, correct.
 * fused = 0: the same code as two launches (shrink kernel, then base + expand), for comparison.
 * Batches (BGMV): the warp's rows are applied to 4 batch columns per pass (codes re-read from
 * L1 for the next 4). SGMV (segments of columns, one adapter each): its own two kernels,
 * sgmv_shrink and sgmv_main (codes decoded once per 16 columns), described above them. */
#include <stdlib.h>

#include "kernels/cuda/fam_common.cuh"

__constant__ float c_lora_nf4[16];

/* LR_CHUNK: SGMV's shrink chunk; LR_UCHUNK: the fused kernel's shrink unit (b, 128 columns) for one
 * column, LR_CHUNK for batches (lora_uchunk). For batches every block claims units before its base
 * rows, one claim (an L2 round trip) and a unit's loads after another: 128-column units made 512
 * units of 16 columns at 4096 columns, ~4 in a row per block (run30: BGMV 102.6 us against 80.2 for
 * its base rows alone); 1024-column units make 64, at most one a block. */
enum { LR_WARPS = 8, LR_R = 4, LR_THREADS = 256, LR_CHUNK = 1024, LR_UCHUNK = 128, LR_NHELP = 32, LR_PST = 1024 };

struct LArgs {
    const uint8_t *codes;
    const uint16_t *scale, *offset;
    const float *A; /* nad x r x cols */
    const float *B; /* nad x rows x r */
    long long rows, cols, cstride, ngroups;
    int g;
    int cpg_shift; /* log2(g / 32) when g / 32 is a power of two (a chunk's group by a shift, not a
                      64-bit division in the load path: run30, the base rows 16% over gemv_simt), else -1 */
};

/* the fused kernel's shrink unit in columns (LR_UCHUNK / LR_CHUNK above) */
FAM_HD int lora_uchunk(long long batch) { return batch == 1 ? LR_UCHUNK : LR_CHUNK; }

/* LArgs.cpg_shift for group size g */
FAM_HD int lora_cpg_shift(int g) {
    if (g < 32 || g % 32) return -1;
    const int c = g / 32;
    if (c & (c - 1)) return -1;
    int s = 0;
    while ((1 << s) < c) s++;
    return s;
}

struct LRun {
    const float *X; /* batch x cols */
    const int *idx; /* batch */
    float *P;       /* units x r */
    float *Y;       /* batch x rows */
    unsigned long long *claim, *done; /* claims made, units done: over all runs (never reset) */
    int *err;
    float sc[8];    /* alpha / r per adapter */
    int batch, nchunk, units, nblocks, nhelp, fused; /* nblocks: base blocks; nhelp: shrink-only blocks */
    int claims; /* claims a run makes: units + one that finds none per call of lora_claim_units */
    int uchunk; /* columns of a shrink unit: lora_uchunk(batch) */
    int base_only; /* TENPAK_CUDA_LORA_BASE_ONLY (a measurement knob, wrong results): the base rows alone */
};

template <int KIND>
FAM_HD float lora_elem(const LArgs &a, const float *nf4, long long r, long long c) {
    if (KIND == TP_Q_NF4) {
        uint8_t b = a.codes[r * a.cstride + (c >> 1)];
        int q = (c & 1) ? (b >> 4) : (b & 15);
        return nf4[q] * fam_h2f(a.scale[r * a.ngroups + c / a.g]);
    }
    return fam_int4_elem(a.codes, a.scale, a.offset, a.cstride, a.ngroups, a.g, r, c);
}

/* one thread's share of shrink unit u: columns c0 + tid, c0 + tid + nt, ... of the unit's chunk */
template <int RK>
FAM_HD void lora_unit_acc(const LArgs &a, const LRun &p, int u, int tid, int nt, float acc[RK]) {
    const int b = u / p.nchunk, ch = u % p.nchunk;
    const long long c0 = (long long)ch * p.uchunk;
    const long long c1 = c0 + p.uchunk < a.cols ? c0 + p.uchunk : a.cols;
    const float *A = a.A + (long long)p.idx[b] * RK * a.cols;
    const float *x = p.X + (long long)b * a.cols;
FAM_UNROLL
    for (int k = 0; k < RK; k++) acc[k] = 0.f;
    for (long long c = c0 + tid; c < c1; c += nt) {
        const float xv = x[c];
FAM_UNROLL
        for (int k = 0; k < RK; k++) acc[k] = fmaf(A[k * a.cols + c], xv, acc[k]);
    }
}

/* s_i B_i[row] . T[b] with bv[k] = B_i[row][k]: a pointer into B, or the row in registers */
template <int RK, class BV>
FAM_HD float lora_expand_with(const LRun &p, const BV &bv, const float *T, int b) {
    const int ad = p.idx[b];
    float e0 = 0.f, e1 = 0.f;
FAM_UNROLL
    for (int k = 0; k < RK; k += 2) {
        e0 = fmaf(bv[k], T[(long long)b * RK + k], e0);
        e1 = fmaf(bv[k + 1], T[(long long)b * RK + k + 1], e1);
    }
    /* p.sc[ad] by selection: a kernel parameter indexed by a register is copied to the stack
     * (the whole LRun, 128 bytes a thread, at every block's start) */
    float sc = p.sc[0];
FAM_UNROLL
    for (int i = 1; i < 8; i++)
        if (ad == i) sc = p.sc[i];
    return sc * (e0 + e1);
}

/* s_i B_i[row] . T[b], B read from memory */
template <int RK>
FAM_HD float lora_expand(const LArgs &a, const LRun &p, const float *T, long long row, int b) {
    const float *Bp = a.B + ((long long)p.idx[b] * a.rows + row) * RK;
    return lora_expand_with<RK>(p, Bp, T, b);
}

static __device__ __forceinline__ void lr_prefetch_l2(const void *ptr) {
    asm volatile("prefetch.global.L2 [%0];" ::"l"(ptr));
}

static __device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* the block computes unit u into P[u][*]; red: LR_WARPS * RK floats of shared memory */
template <int RK>
static __device__ void lora_unit(const LArgs &a, const LRun &p, int u, float *red) {
    float acc[RK];
    lora_unit_acc<RK>(a, p, u, threadIdx.x, blockDim.x, acc);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
    for (int k = 0; k < RK; k++) {
        float v = warp_sum(acc[k]);
        if (!lane) red[warp * RK + k] = v;
    }
    __syncthreads();
    for (int k = threadIdx.x; k < RK; k += blockDim.x) {
        float t = 0.f;
        for (int w = 0; w < (int)(blockDim.x >> 5); w++) t += red[w * RK + k];
        p.P[(long long)u * RK + k] = t;
    }
    __syncthreads();
}

/* The fused kernel's shrink: the block claims units until none is left and works them; its last
 * claim finds none (claim mod p.claims >= units). Returns that claim (its run: / p.claims). With
 * d_out, thread 0 also reads `done` as it makes its first claim (both in flight at once) and
 * *d_out is that value: the caller's wait can skip its first poll. */
template <int RK>
static __device__ unsigned long long lora_claim_units(const LArgs &a, const LRun &p, float *red, unsigned long long *s_v,
                                                      unsigned long long *d_out) {
    int ndone = 0;
    unsigned long long v;
    for (bool first = true;; first = false) {
        if (threadIdx.x == 0) {
            s_v[0] = atomicAdd(p.claim, 1ULL);
            if (first && d_out) s_v[1] = *(volatile unsigned long long *)p.done;
        }
        __syncthreads();
        v = s_v[0];
        if (first && d_out) *d_out = s_v[1];
        __syncthreads(); /* every thread has read s_v before thread 0 writes the next claim */
        const unsigned long long u = v % (unsigned long long)p.claims;
        if (u >= (unsigned long long)p.units) break;
        lora_unit<RK>(a, p, (int)u, red);
        ndone++;
    }
    if (ndone) {
        __threadfence(); /* this thread's P writes visible before the count */
        __syncthreads();
        if (threadIdx.x == 0) atomicAdd(p.done, (unsigned long long)ndone);
    }
    return v;
}

template <int RK>
__global__ void __launch_bounds__(LR_THREADS) lora_shrink(LArgs a, LRun p) {
    __shared__ float red[LR_WARPS * RK];
    /* PDL (common.cuh): X may come from the kernel before; lora_main, which reads X before its own
     * wait, may start only once this grid is past that point */
    tp_pdl_wait();
    tp_pdl_trigger();
    lora_unit<RK>(a, p, blockIdx.x, red);
}

/* Experiment switch (ci/gpu_run34.sh rebuilds with it changed; the default is the kernel):
 * TENPAK_LORA_MINB: __launch_bounds__' blocks an SM for one column (2: at most 128 registers; 0:
 * no hint, ptxas's default heuristics: 127 registers for int4 r16, where a hint of 1 gives 223 and
 * of 2 128 with another schedule; gemv_simt, with no hint, 116 and 9.1 us against 10.6 for
 * lora_main's base rows with a hint of 2, run32). Two other switches measured no difference and
 * were removed: TENPAK_LORA_SCALE_AT_USE (scale / offset loaded at use, run32: 10.8 against 10.6
 * us) and TENPAK_CUDA_LORA_WAIT_FIRST (the PDL wait before the first codes, run30: 12.8 both). */
#ifndef TENPAK_LORA_MINB
#define TENPAK_LORA_MINB 2
#endif

/* the group of chunk ch (32 columns) within a row */
static __device__ __forceinline__ long long lora_chunk_group(const LArgs &a, long long ch) {
    return a.cpg_shift >= 0 ? ch >> a.cpg_shift : (long long)((unsigned)ch / (unsigned)(a.g >> 5));
}

/* codes (16 bytes per row), scale and offset bits of chunk ch of the warp's rows */
template <int KIND, int NB>
static __device__ __forceinline__ void lora_load_chunk(const LArgs &a, const long long (&rr)[LR_R], long long ch,
                                                       uint4 (&c)[LR_R], uint16_t (&sc)[LR_R], uint16_t (&of)[LR_R]) {
    const long long cg = lora_chunk_group(a, ch);
#pragma unroll
    for (int i = 0; i < LR_R; i++) {
        const uint4 *p = (const uint4 *)(a.codes + rr[i] * a.cstride) + ch;
        c[i] = NB == 1 ? __ldcs(p) : __ldg(p); /* streamed once (GEMV) / re-read per batch tile */
        const long long gi = rr[i] * a.ngroups + cg;
        sc[i] = __ldg(a.scale + gi);
        of[i] = KIND == TP_Q_NF4 ? (uint16_t)0 : __ldg(a.offset + gi);
    }
}

/* T[b][k] = sum over chunks u of P[b][u][k] in a fixed order, every thread at work: outputs o =
 * b RK + k in passes of up to blockDim; in a pass of oc outputs, thread t sums output t % oc over
 * chunks u = q, q + nq, ... (q = t / oc, nq = blockDim / oc), straight from L2 (its loads all
 * in flight together), into pst[t]; then thread o sums its nq partials in q order. Until run30
 * one thread per k summed the chunks from shared memory in a serial chain, per batch column
 * (BGMV 16 columns: 16 such chains). pst: blockDim floats. */
template <int RK>
static __device__ void lora_sum_T(const LRun &p, float *Tsh, float *pst) {
    const int O = p.batch * RK, nt = blockDim.x, t = threadIdx.x;
    for (int o0 = 0; o0 < O; o0 += nt) {
        const int oc = O - o0 < nt ? O - o0 : nt, nq = nt / oc, q = t / oc, o = o0 + t % oc;
        if (q < nq) {
            const int b = o / RK, k = o % RK;
            const float *Pb = p.P + (long long)b * p.nchunk * RK + k;
            float sum = 0.f;
#pragma unroll 8
            for (int u = q; u < p.nchunk; u += nq) sum += __ldcg(Pb + (long long)u * RK);
            pst[t] = sum;
        }
        __syncthreads();
        if (t < oc) {
            float sum = 0.f;
            for (int j = 0; j < nq; j++) sum += pst[j * oc + t];
            Tsh[o0 + t] = sum;
        }
        __syncthreads();
    }
}

template <int KIND, int RK, int NB, bool FAST>
__global__ void __launch_bounds__(LR_THREADS, NB == 1 ? TENPAK_LORA_MINB : 1) lora_main(LArgs a, LRun p) {
    extern __shared__ float Tsh[]; /* batch x RK */
    __shared__ float red[LR_WARPS * RK];
    __shared__ float nf4[16];
    __shared__ float pst[LR_PST];
    __shared__ unsigned long long s_claim[2];
    tp_pdl_trigger();
    /* PDL: the fused kernel's helpers and batches read X at once; its base blocks of one column
     * (early) load their first code chunk, weights no kernel writes, before the wait, as
     * gemv_simt does; the two-kernel one (after lora_shrink, whose wait covers X) waits only
     * before it reads the partials P */
    const bool fused0 = p.fused != 0;
    const bool helper = p.fused && !p.base_only && blockIdx.x >= p.nblocks;
    const bool early = fused0 && NB == 1 && FAST && !helper;
    if (fused0 && !early) tp_pdl_wait();
    /* fused: not p.fused = 0 (a written parameter is copied to the stack, and the p.sc[ad] read
     * then indexes that copy) */
    const bool fused = fused0 && !p.base_only;
    if (helper) { /* a helper: shrink units only */
        lora_claim_units<RK>(a, p, red, s_claim, NULL);
        return;
    }
    if (threadIdx.x < 16) nf4[threadIdx.x] = c_lora_nf4[threadIdx.x];
    /* several columns (BGMV): every block claims units before its base rows (as before ea8865e),
     * so their shrink runs on all SMs at once; its claims end with one past the end, as at the
     * expand, which then finds none */
    if (fused && NB > 1) lora_claim_units<RK>(a, p, red, s_claim, NULL);
    if (fused && NB == 1 && (threadIdx.x & 31) < LR_R) { /* the expand's B rows on their way to L2 */
        const long long row = ((long long)blockIdx.x * LR_WARPS + (threadIdx.x >> 5)) * LR_R + (threadIdx.x & 31);
        if (row < a.rows) lr_prefetch_l2(a.B + ((long long)p.idx[0] * a.rows + row) * RK);
    }
    __syncthreads();

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const long long r0 = ((long long)blockIdx.x * LR_WARPS + warp) * LR_R;
    long long rr[LR_R];
#pragma unroll
    for (int i = 0; i < LR_R; i++) rr[i] = r0 + i < a.rows ? r0 + i : a.rows - 1;
    const int ntiles = (p.batch + NB - 1) / NB;
    for (int bt = 0; bt < ntiles; bt++) {
        const int b0 = bt * NB;
        float acc[LR_R][NB];
#pragma unroll
        for (int i = 0; i < LR_R; i++)
#pragma unroll
            for (int nb = 0; nb < NB; nb++) acc[i][nb] = 0.f;
        if (FAST) {
            /* codes, scales and offsets of the next chunk are loaded before this one is used
             * (two chunks in flight per lane) */
            const long long nch = a.cols >> 5;
            uint4 cur[LR_R], nxt[LR_R];
            uint16_t cs[LR_R], co[LR_R], ns[LR_R], no[LR_R];
#pragma unroll
            for (int i = 0; i < LR_R; i++) {
                cur[i] = nxt[i] = make_uint4(0, 0, 0, 0);
                cs[i] = co[i] = ns[i] = no[i] = 0;
            }
            if (lane < nch) lora_load_chunk<KIND, NB>(a, rr, lane, cur, cs, co);
            if (early && bt == 0) tp_pdl_wait(); /* X, P and Y from here on */
            for (long long ch = lane; ch < nch; ch += 32) {
                if (ch + 32 < nch) lora_load_chunk<KIND, NB>(a, rr, ch + 32, nxt, ns, no);
                uint32_t w[LR_R][4];
                float s[LR_R], o[LR_R];
#pragma unroll
                for (int i = 0; i < LR_R; i++) {
                    w[i][0] = cur[i].x;
                    w[i][1] = cur[i].y;
                    w[i][2] = cur[i].z;
                    w[i][3] = cur[i].w;
                    s[i] = fam_h2f(cs[i]);
                    o[i] = fam_h2f(co[i]);
                    cur[i] = nxt[i];
                    cs[i] = ns[i];
                    co[i] = no[i];
                }
#pragma unroll
                for (int nb = 0; nb < NB; nb++) {
                    const int b = b0 + nb;
                    if (b >= p.batch) break;
                    float x[32];
                    const float4 *xp = (const float4 *)(p.X + (long long)b * a.cols + ch * 32);
#pragma unroll
                    for (int j = 0; j < 8; j++) {
                        const float4 f = __ldg(xp + j);
                        x[4 * j] = f.x;
                        x[4 * j + 1] = f.y;
                        x[4 * j + 2] = f.z;
                        x[4 * j + 3] = f.w;
                    }
                    if (KIND == TP_Q_NF4) {
#pragma unroll
                        for (int i = 0; i < LR_R; i++) acc[i][nb] = fmaf(s[i], fam_nf4_dot32(w[i], x, nf4), acc[i][nb]);
                    } else {
                        const float sx = fam_prep_x32(x);
#pragma unroll
                        for (int i = 0; i < LR_R; i++) acc[i][nb] += fmaf(s[i], fam_int4_dot32(w[i], x), o[i] * sx);
                    }
                }
            }
        } else {
            for (long long c = lane; c < a.cols; c += 32) {
#pragma unroll
                for (int i = 0; i < LR_R; i++) {
                    const float wv = lora_elem<KIND>(a, nf4, rr[i], c);
#pragma unroll
                    for (int nb = 0; nb < NB; nb++)
                        if (b0 + nb < p.batch) acc[i][nb] = fmaf(wv, p.X[(long long)(b0 + nb) * a.cols + c], acc[i][nb]);
                }
            }
        }
#pragma unroll
        for (int i = 0; i < LR_R; i++)
#pragma unroll
            for (int nb = 0; nb < NB; nb++) acc[i][nb] = warp_sum(acc[i][nb]);
        /* one column, rank <= 16: lane i < LR_R loads its row of B into registers now, so the
         * loads are in flight with the claim and the wait below, not after them */
        constexpr bool BREG = NB == 1 && RK <= 16;
        float bq[BREG ? RK : 1];
        if (BREG && fused && lane < LR_R) {
            const float4 *bp = (const float4 *)(a.B + ((long long)p.idx[0] * a.rows + (r0 + lane < a.rows ? r0 + lane : a.rows - 1)) * RK);
#pragma unroll
            for (int j = 0; j < (BREG ? RK : 4) / 4; j++) {
                const float4 f = __ldg(bp + j);
                bq[(4 * j) % (BREG ? RK : 1)] = f.x;
                bq[(4 * j + 1) % (BREG ? RK : 1)] = f.y;
                bq[(4 * j + 2) % (BREG ? RK : 1)] = f.z;
                bq[(4 * j + 3) % (BREG ? RK : 1)] = f.w;
            }
        }
        if (bt == 0 && !p.base_only) { /* T for the whole batch, once */
            if (!fused) tp_pdl_wait();
            if (fused) {
                /* any unit no helper has taken yet; then this run's units done */
                unsigned long long d = 0;
                const unsigned long long v = lora_claim_units<RK>(a, p, red, s_claim, &d);
                if (threadIdx.x == 0) {
                    const unsigned long long target = (v / (unsigned long long)p.claims + 1) * (unsigned long long)p.units;
                    unsigned it = 0;
                    while (d < target) {
                        if (*(volatile int *)p.err || ++it > FAM_SPIN_LIMIT) {
                            atomicExch(p.err, 1);
                            break;
                        }
                        __nanosleep(64);
                        d = *(volatile unsigned long long *)p.done;
                    }
                    if (d > target) atomicExch(p.err, 1); /* out of step */
                    __threadfence();
                }
                __syncthreads();
            }
            lora_sum_T<RK>(p, Tsh, pst);
        }
        float v = 0.f;
        int mi = 0, mnb = 0;
#pragma unroll
        for (int i = 0; i < LR_R; i++)
#pragma unroll
            for (int nb = 0; nb < NB; nb++)
                if (lane == i * NB + nb) {
                    v = acc[i][nb];
                    mi = i;
                    mnb = nb;
                }
        const long long row = r0 + mi;
        const int b = b0 + mnb;
        if (lane < LR_R * NB && row < a.rows && b < p.batch)
            p.Y[(long long)b * a.rows + row] = p.base_only ? v
                                               : BREG && fused ? v + lora_expand_with<BREG ? RK : 1>(p, bq, Tsh, b)
                                                               : v + lora_expand<RK>(a, p, Tsh, row, b);
    }
}

/* ---------------------------------------------------------------------------------------------
 * SGMV (lora.h, tp_lora_sgmv_ref): segment s = columns [seg[s], seg[s+1]) uses adapter sad[s].
 * Two launches:
 *   sgmv_shrink, block (chunk ch of 1024 columns, segment s): the segment's columns in tiles of
 *     64 / RK; a thread loads A_i[*][c] once per column c it owns and applies it to the tile's
 *     columns (acc: 64 floats); the block sums each tile's partial dots in a fixed order into
 *     P[ch][b][k] (no atomics: deterministic). A_i comes from DRAM once per (s, ch).
 *   sgmv_main, block = 32 rows x all columns: thread = (row quad, k lane): 4 rows, and the code
 *     words (8 columns, 4 bytes a row) kl, kl + 32, ... of them. A step covers 256 columns: the
 *     block stages x[256 columns][16 batch columns] in shared memory (prefetched into registers
 *     a step ahead, like the step's code words), each thread decodes its 4 words (4 rows x 8
 *     weights: w = fma(q 16^p, s 16^-p, o) = the definition's fmaf(q, s, o), exactly) once and
 *     applies every weight to the 16 columns (16 FMAs per decoded weight, 4 rows per broadcast
 *     float4 of x). So the codes are read once per 16 batch columns (once for batch <= 16).
 *     Reduction: the 8 k lanes of a warp by a reduce-scatter butterfly (xor 4, 2, 1: each lane
 *     ends with 2 of the 16 columns), then the 4 warps of k lanes summed in order in shared
 *     memory; the epilogue adds s_i B_i[row] . T[b] with T = sum over chunks of P (fixed order).
 * Words need cols % 8 == 0 and g % 8 == 0 (FAST); otherwise each weight is decoded by the
 * definition (fam_int4_elem) in the same decomposition. INT4 bases only.
 * ------------------------------------------------------------------------------------------- */
enum { SG_THREADS = 256, SG_ROWS = 32, SG_RPT = 4, SG_KL = 32, SG_NB = 16, SG_STEP = SG_KL * 8, SG_WPAD = 8 * SG_NB + 4 };

struct SRun {
    const float *X;           /* batch x cols */
    const int *seg, *sad;     /* nseg + 1, nseg */
    float *P;                 /* nchunk x batch x r */
    float *Y;                 /* batch x rows */
    float sc[8];              /* alpha / r per adapter */
    int batch, nseg, nchunk;
};

/* the thread's row quad (0..7: rows 4 rq .. 4 rq + 3 of the block) and k lane (0..31): a warp is
 * 4 row quads x 8 k lanes, so its 8 distinct x addresses are one shared-memory wavefront */
FAM_HD int sg_rq(int tid) { return ((tid >> 5) & 1) * 4 + ((tid & 31) >> 3); }
FAM_HD int sg_kl(int tid) { return (tid >> 6) * 8 + (tid & 7); }

/* the adapter of batch column b (b < batch): its segment's */
FAM_HD int sg_adapter(const SRun &p, int b) {
    int s = 0;
    while (s + 1 < p.nseg && p.seg[s + 1] <= b) s++;
    return p.sad[s];
}

/* one thread's share of shrink tile (columns b0 .. b0 + n - 1 of one segment, adapter A) over
 * chunk ch: columns c0 + tid, c0 + tid + nt, ...; acc[nb * RK + k] */
template <int RK>
FAM_HD void sg_shrink_acc(const LArgs &a, const SRun &p, const float *A, int b0, int n, int ch, int tid, int nt,
                          float acc[64]) {
    const int NBS = 64 / RK;
    const long long c0 = (long long)ch * LR_CHUNK;
    const long long c1 = c0 + LR_CHUNK < a.cols ? c0 + LR_CHUNK : a.cols;
FAM_UNROLL
    for (int j = 0; j < 64; j++) acc[j] = 0.f;
    for (long long c = c0 + tid; c < c1; c += nt) {
        float av[RK];
FAM_UNROLL
        for (int k = 0; k < RK; k++) av[k] = A[k * a.cols + c];
FAM_UNROLL
        for (int nb = 0; nb < NBS; nb++) {
            if (nb >= n) break;
            const float xv = p.X[(long long)(b0 + nb) * a.cols + c];
FAM_UNROLL
            for (int k = 0; k < RK; k++) acc[nb * RK + k] = fmaf(av[k], xv, acc[nb * RK + k]);
        }
    }
}

/* x tile element i (0..1023) of the step at column k0, pass b0: X[b0 + (i & 15)][k0 + 4 (i >> 4) + t],
 * t < 4, zero outside; stored at xs[word * SG_WPAD + (k & 7) * 16 + column] (the pad puts the 8
 * k lanes' words in distinct banks) */
FAM_HD void sg_load_x(const SRun &p, long long cols, int b0, long long k0, int i, float v[4]) {
    const int b = b0 + (i & 15);
    const long long c = k0 + 4 * (i >> 4);
FAM_UNROLL
    for (int t = 0; t < 4; t++) v[t] = b < p.batch && c + t < cols ? p.X[(long long)b * cols + c + t] : 0.f;
}
FAM_HD void sg_store_x(int i, const float v[4], float *xs) {
    const int bb = i & 15, kk = 4 * (i >> 4);
FAM_UNROLL
    for (int t = 0; t < 4; t++) xs[((kk + t) >> 3) * SG_WPAD + ((kk + t) & 7) * SG_NB + bb] = v[t];
}

/* the code word wi (columns 8 wi .. 8 wi + 7) of the thread's rows, with its group's scale and
 * offset bits; zero past the last column (FAST only) */
FAM_HD void sg_load_codes(const LArgs &a, const long long (&rr)[SG_RPT], long long wi, uint32_t (&wd)[SG_RPT],
                          uint16_t (&sc)[SG_RPT], uint16_t (&of)[SG_RPT]) {
    const bool in = 8 * wi < a.cols;
FAM_UNROLL
    for (int i = 0; i < SG_RPT; i++) {
        const long long gi = rr[i] * a.ngroups + (8 * wi) / a.g;
#ifdef __CUDA_ARCH__
        wd[i] = in ? __ldg((const uint32_t *)(a.codes + rr[i] * a.cstride) + wi) : 0u;
#else
        wd[i] = 0u;
        if (in) memcpy(&wd[i], a.codes + rr[i] * a.cstride + 4 * wi, 4);
#endif
        sc[i] = in ? a.scale[gi] : (uint16_t)0;
        of[i] = in ? a.offset[gi] : (uint16_t)0;
    }
}

/* one step of one thread: word wi of its 4 rows against x tile row (the thread's word) xw:
 * acc[i][b] += sum_j w[i][j] x[j][b] */
template <bool FAST>
FAM_HD void sg_step(const LArgs &a, const long long (&rr)[SG_RPT], long long wi, const uint32_t (&wd)[SG_RPT],
                    const uint16_t (&sc)[SG_RPT], const uint16_t (&of)[SG_RPT], const float *xw,
                    float (&acc)[SG_RPT][SG_NB]) {
    float sk[SG_RPT][5], o[SG_RPT];
    if (FAST) {
FAM_UNROLL
        for (int i = 0; i < SG_RPT; i++) {
            const float s = fam_h2f(sc[i]);
            sk[i][0] = s;
            sk[i][1] = s * 0.0625f;
            sk[i][2] = s * 0.00390625f;
            sk[i][3] = s * 0.000244140625f;
            sk[i][4] = s * 1.52587890625e-05f;
            o[i] = fam_h2f(of[i]);
        }
    }
FAM_UNROLL
    for (int j = 0; j < 8; j++) {
        float w[SG_RPT];
FAM_UNROLL
        for (int i = 0; i < SG_RPT; i++) {
            if (FAST) {
                /* nibble j at bits 4j (j < 5) or 4 (j - 5) of w >> 20: q 16^p as a float, exact */
                const int pj = j < 5 ? j : j - 5;
                const uint32_t v = j < 5 ? wd[i] : wd[i] >> 20;
                w[i] = fmaf(fam_nib(v & (0xFu << (4 * pj))), sk[i][pj], o[i]);
            } else {
                const long long c = 8 * wi + j;
                w[i] = c < a.cols ? fam_int4_elem(a.codes, a.scale, a.offset, a.cstride, a.ngroups, a.g, rr[i], c) : 0.f;
            }
        }
        const float *xr = xw + j * SG_NB;
FAM_UNROLL
        for (int q = 0; q < SG_NB / 4; q++) {
#ifdef __CUDA_ARCH__
            const float4 x4 = *(const float4 *)(xr + 4 * q);
            const float xq[4] = {x4.x, x4.y, x4.z, x4.w};
#else
            const float *xq = xr + 4 * q;
#endif
FAM_UNROLL
            for (int i = 0; i < SG_RPT; i++)
FAM_UNROLL
                for (int t = 0; t < 4; t++) acc[i][4 * q + t] = fmaf(w[i], xq[t], acc[i][4 * q + t]);
        }
    }
}

/* s_i B_i[row] . T (T: the column's r sums) */
template <int RK>
FAM_HD float sg_expand(const LArgs &a, const SRun &p, int ad, long long row, const float *T) {
    const float *Bp = a.B + ((long long)ad * a.rows + row) * RK;
    float e0 = 0.f, e1 = 0.f;
FAM_UNROLL
    for (int k = 0; k < RK; k += 2) {
        e0 = fmaf(Bp[k], T[k], e0);
        e1 = fmaf(Bp[k + 1], T[k + 1], e1);
    }
    /* p.sc[ad] by selects: a dynamic index would copy the kernel's SRun to the stack */
    float sc = p.sc[0];
FAM_UNROLL
    for (int i = 1; i < 8; i++) sc = ad == i ? p.sc[i] : sc;
    return sc * (e0 + e1);
}

template <int RK>
__global__ void __launch_bounds__(SG_THREADS) sgmv_shrink(LArgs a, SRun p) {
    __shared__ float red[(SG_THREADS / 32) * 64];
    tp_pdl_wait(); /* X may come from the kernel before; P is read by the one before (last run) */
    tp_pdl_trigger();
    const int ch = blockIdx.x, sgi = blockIdx.y, NBS = 64 / RK;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int b1 = p.seg[sgi + 1];
    const float *A = a.A + (long long)p.sad[sgi] * RK * a.cols;
    for (int b0 = p.seg[sgi]; b0 < b1; b0 += NBS) {
        const int n = b1 - b0 < NBS ? b1 - b0 : NBS;
        float acc[64];
        sg_shrink_acc<RK>(a, p, A, b0, n, ch, threadIdx.x, blockDim.x, acc);
#pragma unroll
        for (int j = 0; j < 64; j++) {
            const float v = warp_sum(acc[j]);
            if (!lane) red[warp * 64 + j] = v;
        }
        __syncthreads();
        for (int j = threadIdx.x; j < n * RK; j += blockDim.x) {
            float t = 0.f;
            for (int w = 0; w < (int)(blockDim.x >> 5); w++) t += red[w * 64 + j];
            p.P[((long long)ch * p.batch + b0 + j / RK) * RK + j % RK] = t;
        }
        __syncthreads();
    }
}

/* keep half of the 2h values of v (the half picked by this lane's bit m), adding the partner's */
template <int H>
static __device__ __forceinline__ void sg_scatter_half(float (&v)[SG_RPT][SG_NB], int m, bool hi) {
#pragma unroll
    for (int i = 0; i < SG_RPT; i++)
#pragma unroll
        for (int c = 0; c < H; c++) {
            const float send = hi ? v[i][c] : v[i][c + H];
            const float keep = hi ? v[i][c + H] : v[i][c];
            v[i][c] = keep + __shfl_xor_sync(0xffffffffu, send, m);
        }
}

template <int RK, bool FAST>
__global__ void __launch_bounds__(SG_THREADS, 1) sgmv_main(LArgs a, SRun p) {
    __shared__ __align__(16) float xs[SG_KL * SG_WPAD];
    __shared__ float red[4 * SG_ROWS * SG_NB];
    __shared__ float Tsh[SG_NB * RK];
    __shared__ int cad[SG_NB];
    tp_pdl_trigger();
    const int tid = threadIdx.x, rq = sg_rq(tid), kl = sg_kl(tid), l8 = tid & 7;
    const long long r0 = (long long)blockIdx.x * SG_ROWS + rq * SG_RPT;
    long long rr[SG_RPT];
#pragma unroll
    for (int i = 0; i < SG_RPT; i++) rr[i] = r0 + i < a.rows ? r0 + i : a.rows - 1;
    const long long nsteps = (a.cols + SG_STEP - 1) / SG_STEP;
    bool waited = false;
    for (int b0 = 0; b0 < p.batch; b0 += SG_NB) {
        float acc[SG_RPT][SG_NB];
#pragma unroll
        for (int i = 0; i < SG_RPT; i++)
#pragma unroll
            for (int b = 0; b < SG_NB; b++) acc[i][b] = 0.f;
        float xv[4][4];
        uint32_t wd[SG_RPT] = {0u, 0u, 0u, 0u};
        uint16_t sc[SG_RPT] = {0, 0, 0, 0}, of[SG_RPT] = {0, 0, 0, 0};
#pragma unroll
        for (int j = 0; j < 4; j++) sg_load_x(p, a.cols, b0, 0, tid + SG_THREADS * j, xv[j]);
        if (FAST) sg_load_codes(a, rr, kl, wd, sc, of);
        for (long long st = 0; st < nsteps; st++) {
            __syncthreads(); /* the last step's readers are done with xs */
#pragma unroll
            for (int j = 0; j < 4; j++) sg_store_x(tid + SG_THREADS * j, xv[j], xs);
            __syncthreads();
            const long long wi = st * SG_KL + kl;
            uint32_t nwd[SG_RPT] = {0u, 0u, 0u, 0u};
            uint16_t nsc[SG_RPT] = {0, 0, 0, 0}, nof[SG_RPT] = {0, 0, 0, 0};
            if (st + 1 < nsteps) {
#pragma unroll
                for (int j = 0; j < 4; j++) sg_load_x(p, a.cols, b0, (st + 1) * SG_STEP, tid + SG_THREADS * j, xv[j]);
                if (FAST) sg_load_codes(a, rr, wi + SG_KL, nwd, nsc, nof);
            }
            sg_step<FAST>(a, rr, wi, wd, sc, of, xs + kl * SG_WPAD, acc);
            if (FAST && st + 1 < nsteps) {
#pragma unroll
                for (int i = 0; i < SG_RPT; i++) {
                    wd[i] = nwd[i];
                    sc[i] = nsc[i];
                    of[i] = nof[i];
                }
            }
        }
        /* reduce-scatter over the warp's 8 k lanes: lane l8 keeps columns 8 b4 + 4 b2 + 2 b1 + {0, 1} */
        sg_scatter_half<8>(acc, 4, (l8 & 4) != 0);
        sg_scatter_half<4>(acc, 2, (l8 & 2) != 0);
        sg_scatter_half<2>(acc, 1, (l8 & 1) != 0);
        const int cb = 8 * ((l8 >> 2) & 1) + 4 * ((l8 >> 1) & 1) + 2 * (l8 & 1), kg = tid >> 6;
#pragma unroll
        for (int i = 0; i < SG_RPT; i++) {
            red[(kg * SG_ROWS + rq * SG_RPT + i) * SG_NB + cb] = acc[i][0];
            red[(kg * SG_ROWS + rq * SG_RPT + i) * SG_NB + cb + 1] = acc[i][1];
        }
        if (!waited) {
            tp_pdl_wait(); /* the shrink's P; and Y may be stored from here on */
            waited = true;
        }
        if (tid < SG_NB) cad[tid] = b0 + tid < p.batch ? sg_adapter(p, b0 + tid) : 0;
        for (int i = tid; i < SG_NB * RK; i += SG_THREADS) {
            const int b = b0 + i / RK;
            float t = 0.f;
            if (b < p.batch)
                for (int u = 0; u < p.nchunk; u++) t += __ldcg(p.P + ((long long)u * p.batch + b) * RK + i % RK);
            Tsh[i] = t;
        }
        __syncthreads();
        for (int o = tid; o < SG_ROWS * SG_NB; o += SG_THREADS) {
            const int rb = o / SG_NB, cc = o % SG_NB, b = b0 + cc;
            const long long row = (long long)blockIdx.x * SG_ROWS + rb;
            if (row < a.rows && b < p.batch) {
                float y = red[rb * SG_NB + cc];
                for (int g = 1; g < 4; g++) y += red[(g * SG_ROWS + rb) * SG_NB + cc];
                p.Y[(long long)b * a.rows + row] = y + sg_expand<RK>(a, p, cad[cc], row, Tsh + cc * RK);
            }
        }
        __syncthreads(); /* red, cad, Tsh are rewritten by the next pass */
    }
}

/* ---------------------------------------------------------------------------------------------
 * State and dispatch
 * ------------------------------------------------------------------------------------------- */
struct lora_state {
    tp_cu_state base;
    int kind, r, fused, nb, fast, ncopy, next;
    LArgs args[8];
    void *blob[8];
    LRun run;
    int sgmv;  /* SGMV state (tp_cuda_sgmv_prepare): srun, launched by sgmv_launch */
    SRun srun;
    void *work; /* X, idx, P, Y, counters, err (SGMV: X, seg, sad, P, Y, err) */
    size_t out_count, tsh_bytes;
};

/* blocks of lora_main (one column) resident at once on an SM, for s's kernel and shared memory */
template <int KIND, int RK>
static int lora_bps1(const lora_state *s) {
    int n = 0;
    const cudaError_t e = s->fast ? cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, lora_main<KIND, RK, 1, true>, LR_THREADS, s->tsh_bytes)
                                  : cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, lora_main<KIND, RK, 1, false>, LR_THREADS, s->tsh_bytes);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return 1;
    }
    return n > 0 ? n : 1;
}
static int lora_blocks_per_sm1(const lora_state *s) {
    if (s->kind == TP_Q_NF4) return s->r == 8 ? lora_bps1<TP_Q_NF4, 8>(s) : lora_bps1<TP_Q_NF4, 16>(s);
    switch (s->r) {
    case 8: return lora_bps1<TP_Q_INT4, 8>(s);
    case 16: return lora_bps1<TP_Q_INT4, 16>(s);
    case 32: return lora_bps1<TP_Q_INT4, 32>(s);
    default: return lora_bps1<TP_Q_INT4, 64>(s);
    }
}

/* the weights (codes, scales, offsets, every adapter's A and B) into s->ncopy rotated copies */
static void lora_upload(lora_state *s, const tp_qmat *q, const tp_lora *ad, int nad) {
    const long long rows = q->rows, cols = q->cols;
    TP_CU(&s->base, cudaMemcpyToSymbol(c_lora_nf4, TP_NF4_LEVELS, sizeof(float) * 16));
    const size_t nsc = (size_t)(rows * q->ngroups);
    const size_t asz = (size_t)s->r * cols * 4, bsz = (size_t)rows * s->r * 4;
    size_t sz[5] = {(size_t)(rows * q->code_stride), nsc * 2, q->offset ? nsc * 2 : 0, asz * nad, bsz * nad};
    size_t off[5], total = 0;
    for (int i = 0; i < 5; i++) {
        off[i] = total;
        total += (sz[i] + 255) & ~(size_t)255;
    }
    s->ncopy = tp_cu_rotation(total);
    for (int c = 0; c < s->ncopy && !s->base.failed; c++) {
        TP_CU(&s->base, cudaMalloc(&s->blob[c], total));
        if (s->base.failed) break;
        char *b = (char *)s->blob[c];
        TP_CU(&s->base, cudaMemcpy(b + off[0], q->codes, sz[0], cudaMemcpyHostToDevice));
        TP_CU(&s->base, cudaMemcpy(b + off[1], q->scale, sz[1], cudaMemcpyHostToDevice));
        if (sz[2]) TP_CU(&s->base, cudaMemcpy(b + off[2], q->offset, sz[2], cudaMemcpyHostToDevice));
        for (int i = 0; i < nad; i++) {
            TP_CU(&s->base, cudaMemcpy(b + off[3] + i * asz, ad[i].A, asz, cudaMemcpyHostToDevice));
            TP_CU(&s->base, cudaMemcpy(b + off[4] + i * bsz, ad[i].B, bsz, cudaMemcpyHostToDevice));
        }
        LArgs &a = s->args[c];
        a.codes = (const uint8_t *)(b + off[0]);
        a.scale = (const uint16_t *)(b + off[1]);
        a.offset = sz[2] ? (const uint16_t *)(b + off[2]) : NULL;
        a.A = (const float *)(b + off[3]);
        a.B = (const float *)(b + off[4]);
        a.rows = rows;
        a.cols = cols;
        a.cstride = q->code_stride;
        a.ngroups = q->ngroups;
        a.g = q->g;
        a.cpg_shift = lora_cpg_shift(q->g);
    }
}

extern "C" void *tp_cuda_lora_prepare(const tp_qmat *q, const tp_lora *ad, int nad, const int32_t *idx, const float *X,
                                      int64_t batch, int fused) {
    lora_state *s = (lora_state *)calloc(1, sizeof *s);
    if (!s) return NULL;
    s->kind = q->kind;
    s->r = ad[0].r;
    s->fused = fused;
    s->nb = batch == 1 ? 1 : 4;
    s->fast = q->cols % 32 == 0 && q->g % 32 == 0;
    const long long rows = q->rows, cols = q->cols;
    if (q->kind == TP_Q_INT4R2 || nad < 1 || nad > 8 || (s->r != 8 && s->r != 16 && s->r != 32 && s->r != 64) ||
        (q->kind == TP_Q_NF4 && s->r > 16)) {
        fprintf(stderr, "cuda: lora kernel not built for this base / rank %d / %d adapters\n", s->r, nad);
        s->base.failed = 1;
        return s;
    }
    s->tsh_bytes = (size_t)batch * s->r * 4;
    if (s->tsh_bytes > 40 * 1024) {
        fprintf(stderr, "cuda: lora batch %lld x rank %d too large for the shared T\n", (long long)batch, s->r);
        s->base.failed = 1;
        return s;
    }
    lora_upload(s, q, ad, nad);
    LRun &p = s->run;
    p.batch = (int)batch;
    p.uchunk = lora_uchunk(batch);
    p.nchunk = (int)((cols + p.uchunk - 1) / p.uchunk);
    p.units = p.batch * p.nchunk;
    p.nblocks = (int)((rows + LR_WARPS * LR_R - 1) / (LR_WARPS * LR_R));
    p.base_only = getenv("TENPAK_CUDA_LORA_BASE_ONLY") != NULL;
    /* helpers for one column only: with more (NB = 4, 1 block an SM) they could not sit beside the
     * base blocks, and run29 measured BGMV 16 columns 91 -> 105 us (stream) with them */
    /* and only as many as fit beside the base blocks at once (run32: with one block an SM, helpers
     * beyond the SMs the base blocks leave free started as they left, at the kernel's end) */
    if (fused && !p.base_only && batch == 1) {
        const long long room = (long long)lora_blocks_per_sm1(s) * tp_cu_sm_count() - p.nblocks;
        long long nh = p.units < LR_NHELP ? p.units : LR_NHELP;
        if (nh > room) nh = room > 0 ? room : 0;
        p.nhelp = (int)nh;
    } else {
        p.nhelp = 0;
    }
    p.fused = fused;
    p.claims = p.units + p.nhelp + p.nblocks * (s->nb > 1 ? 2 : 1); /* see lora_claim_units */
    for (int i = 0; i < nad; i++) p.sc[i] = tp_lora_scale(&ad[i]);
    /* work area: X | idx | P | Y | claim, done | err */
    size_t wsz[6] = {(size_t)(batch * cols) * 4, (size_t)batch * 4, (size_t)p.units * s->r * 4,
                     (size_t)(batch * rows) * 4, 16, 4};
    size_t woff[6], wtotal = 0;
    for (int i = 0; i < 6; i++) {
        woff[i] = wtotal;
        wtotal += (wsz[i] + 255) & ~(size_t)255;
    }
    if (!s->base.failed) TP_CU(&s->base, cudaMalloc(&s->work, wtotal));
    if (s->base.failed) return s;
    char *w = (char *)s->work;
    TP_CU(&s->base, cudaMemset(w, 0, wtotal));
    TP_CU(&s->base, cudaMemcpy(w + woff[0], X, wsz[0], cudaMemcpyHostToDevice));
    TP_CU(&s->base, cudaMemcpy(w + woff[1], idx, wsz[1], cudaMemcpyHostToDevice));
    TP_CU(&s->base, cudaMemset(w + woff[3], 0xff, wsz[3])); /* NaN poison */
    p.X = (const float *)(w + woff[0]);
    p.idx = (const int *)(w + woff[1]);
    p.P = (float *)(w + woff[2]);
    p.Y = (float *)(w + woff[3]);
    p.claim = (unsigned long long *)(w + woff[4]);
    p.done = p.claim + 1;
    p.err = (int *)(w + woff[5]);
    s->out_count = (size_t)(batch * rows);
    return s;
}

extern "C" void *tp_cuda_sgmv_prepare(const tp_qmat *q, const tp_lora *ad, int nad, const int32_t *seg,
                                      const int32_t *sad, int nseg, const float *X, int64_t batch) {
    lora_state *s = (lora_state *)calloc(1, sizeof *s);
    if (!s) return NULL;
    s->kind = q->kind;
    s->r = ad[0].r;
    s->sgmv = 1;
    s->fast = q->cols % 8 == 0 && q->g % 8 == 0;
    const long long rows = q->rows, cols = q->cols;
    int same_r = 1;
    for (int i = 0; i < nad; i++) same_r &= ad[i].r == s->r;
    if (q->kind != TP_Q_INT4 || nad < 1 || nad > 8 || !same_r || (s->r != 8 && s->r != 16 && s->r != 32 && s->r != 64) ||
        batch < 1 || tp_lora_seg_check(nad, seg, sad, nseg, batch) != TP_OK) {
        fprintf(stderr, "cuda: sgmv kernel not built for this base / rank %d / %d adapters / segment table\n", s->r, nad);
        s->base.failed = 1;
        return s;
    }
    lora_upload(s, q, ad, nad);
    SRun &p = s->srun;
    p.batch = (int)batch;
    p.nseg = nseg;
    p.nchunk = (int)((cols + LR_CHUNK - 1) / LR_CHUNK);
    for (int i = 0; i < nad; i++) p.sc[i] = tp_lora_scale(&ad[i]);
    /* work area: X | seg | sad | P | Y | err */
    size_t wsz[6] = {(size_t)(batch * cols) * 4, (size_t)(nseg + 1) * 4, (size_t)nseg * 4 + 4,
                     (size_t)p.nchunk * batch * s->r * 4, (size_t)(batch * rows) * 4, 4};
    size_t woff[6], wtotal = 0;
    for (int i = 0; i < 6; i++) {
        woff[i] = wtotal;
        wtotal += (wsz[i] + 255) & ~(size_t)255;
    }
    if (!s->base.failed) TP_CU(&s->base, cudaMalloc(&s->work, wtotal));
    if (s->base.failed) return s;
    char *w = (char *)s->work;
    TP_CU(&s->base, cudaMemset(w, 0, wtotal));
    TP_CU(&s->base, cudaMemcpy(w + woff[0], X, wsz[0], cudaMemcpyHostToDevice));
    TP_CU(&s->base, cudaMemcpy(w + woff[1], seg, (size_t)(nseg + 1) * 4, cudaMemcpyHostToDevice));
    if (nseg) TP_CU(&s->base, cudaMemcpy(w + woff[2], sad, (size_t)nseg * 4, cudaMemcpyHostToDevice));
    TP_CU(&s->base, cudaMemset(w + woff[4], 0xff, wsz[4])); /* NaN poison */
    p.X = (const float *)(w + woff[0]);
    p.seg = (const int *)(w + woff[1]);
    p.sad = (const int *)(w + woff[2]);
    p.P = (float *)(w + woff[3]);
    p.Y = (float *)(w + woff[4]);
    s->run.Y = p.Y; /* what tp_cuda_lora_fetch reads */
    s->run.err = (int *)(w + woff[5]);
    s->out_count = (size_t)(batch * rows);
    return s;
}

template <int RK>
static void sgmv_launch(lora_state *s, const LArgs &a) {
    const SRun &p = s->srun;
    const int nblocks = (int)((a.rows + SG_ROWS - 1) / SG_ROWS);
    if (p.nseg) TP_CU(&s->base, tp_cu_launch(2, sgmv_shrink<RK>, dim3(p.nchunk, p.nseg), dim3(SG_THREADS), 0, a, p));
    if (s->fast) TP_CU(&s->base, tp_cu_launch(2, sgmv_main<RK, true>, dim3(nblocks), dim3(SG_THREADS), 0, a, p));
    else TP_CU(&s->base, tp_cu_launch(2, sgmv_main<RK, false>, dim3(nblocks), dim3(SG_THREADS), 0, a, p));
}

template <int KIND, int RK, int NB>
static void lora_launch3(lora_state *s, const LArgs &a) {
    const LRun &p = s->run;
    if (!p.fused && !p.base_only) TP_CU(&s->base, tp_cu_launch(2, lora_shrink<RK>, dim3(p.units), dim3(LR_THREADS), 0, a, p));
    const dim3 grid(p.nblocks + p.nhelp);
    if (s->fast) TP_CU(&s->base, tp_cu_launch(2, lora_main<KIND, RK, NB, true>, grid, dim3(LR_THREADS), s->tsh_bytes, a, p));
    else TP_CU(&s->base, tp_cu_launch(2, lora_main<KIND, RK, NB, false>, grid, dim3(LR_THREADS), s->tsh_bytes, a, p));
}
template <int KIND, int RK>
static void lora_launch2(lora_state *s, const LArgs &a) {
    if (s->nb == 1) lora_launch3<KIND, RK, 1>(s, a);
    else lora_launch3<KIND, RK, 4>(s, a);
}

extern "C" tp_status tp_cuda_lora_run(const tp_case *c, void *state, void *out) {
    (void)c;
    (void)out;
    lora_state *s = (lora_state *)state;
    if (!s || s->base.failed) return TP_OK;
    const LArgs &a = s->args[s->next];
    s->next = (s->next + 1) % s->ncopy;
    if (s->sgmv) {
        switch (s->r) {
        case 8: sgmv_launch<8>(s, a); break;
        case 16: sgmv_launch<16>(s, a); break;
        case 32: sgmv_launch<32>(s, a); break;
        default: sgmv_launch<64>(s, a); break;
        }
    } else if (s->kind == TP_Q_NF4) {
        if (s->r == 8) lora_launch2<TP_Q_NF4, 8>(s, a);
        else lora_launch2<TP_Q_NF4, 16>(s, a);
    } else {
        switch (s->r) {
        case 8: lora_launch2<TP_Q_INT4, 8>(s, a); break;
        case 16: lora_launch2<TP_Q_INT4, 16>(s, a); break;
        case 32: lora_launch2<TP_Q_INT4, 32>(s, a); break;
        default: lora_launch2<TP_Q_INT4, 64>(s, a); break;
        }
    }
    TP_CU_LAUNCHED(&s->base);
    return TP_OK;
}

extern "C" void tp_cuda_lora_fetch(const tp_case *c, void *state, void *out) {
    lora_state *s = (lora_state *)state;
    if (s && !s->base.failed) {
        int err = 0;
        TP_CU(&s->base, cudaMemcpy(&err, s->run.err, 4, cudaMemcpyDeviceToHost));
        if (!s->base.failed && err) {
            fprintf(stderr, "cuda: lora: the fused kernel's shrink wait failed (unit counter out of step or timeout)\n");
            s->base.failed = 1;
        }
        if (!s->base.failed) TP_CU(&s->base, cudaMemcpy(out, s->run.Y, s->out_count * 4, cudaMemcpyDeviceToHost));
    }
    if (!s || s->base.failed) tp_cu_nan_fill((float *)out, c->out_count);
}

extern "C" void tp_cuda_lora_release(void *state) {
    lora_state *s = (lora_state *)state;
    if (!s) return;
    for (int i = 0; i < s->ncopy; i++) cudaFree(s->blob[i]);
    cudaFree(s->work);
    free(s);
}

/* ---------------------------------------------------------------------------------------------
 * Host emulation: the kernels' decomposition (units, lanes, chunks) with the same per-thread
 * functions, sequentially on the CPU.
 * ------------------------------------------------------------------------------------------- */
/* The emulations' kernel arguments: the adapters' A and B packed rank RK after each other (as
 * the prepares upload them), their scales, and the base matrix as stored. */
template <int RK>
static void emu_args(const tp_qmat *q, const tp_lora *ad, int nad, float *A, float *B, float *sc, LArgs &a) {
    const long long rows = q->rows, cols = q->cols;
    for (int i = 0; i < nad; i++) {
        memcpy(A + (size_t)i * RK * cols, ad[i].A, (size_t)RK * cols * 4);
        memcpy(B + (size_t)i * rows * RK, ad[i].B, (size_t)rows * RK * 4);
        sc[i] = tp_lora_scale(&ad[i]);
    }
    a.codes = q->codes;
    a.scale = q->scale;
    a.offset = q->offset;
    a.A = A;
    a.B = B;
    a.rows = rows;
    a.cols = cols;
    a.cstride = q->code_stride;
    a.ngroups = q->ngroups;
    a.g = q->g;
    a.cpg_shift = lora_cpg_shift(q->g);
}

template <int RK>
static tp_status lora_emulate_rk(const tp_qmat *q, const tp_lora *ad, int nad, const int32_t *idx, const float *X,
                                 int64_t batch, float *Y) {
    LArgs a;
    memset(&a, 0, sizeof a);
    const long long rows = q->rows, cols = q->cols;
    float *A = (float *)malloc((size_t)nad * RK * cols * 4), *B = (float *)malloc((size_t)nad * rows * RK * 4);
    LRun p;
    memset(&p, 0, sizeof p);
    p.batch = (int)batch;
    p.uchunk = lora_uchunk(batch);
    p.nchunk = (int)((cols + p.uchunk - 1) / p.uchunk);
    p.units = p.batch * p.nchunk;
    float *P = (float *)calloc((size_t)p.units * RK, 4), *T = (float *)calloc((size_t)batch * RK, 4);
    if (!A || !B || !P || !T) {
        free(A);
        free(B);
        free(P);
        free(T);
        return TP_ERR_NOMEM;
    }
    emu_args<RK>(q, ad, nad, A, B, p.sc, a);
    p.X = X;
    p.idx = idx;
    for (int u = 0; u < p.units; u++)
        for (int tid = 0; tid < LR_THREADS; tid++) {
            float acc[RK];
            lora_unit_acc<RK>(a, p, u, tid, LR_THREADS, acc);
            for (int k = 0; k < RK; k++) P[(size_t)u * RK + k] += acc[k];
        }
    for (int b = 0; b < batch; b++)
        for (int k = 0; k < RK; k++)
            for (int u = 0; u < p.nchunk; u++) T[b * RK + k] += P[((size_t)b * p.nchunk + u) * RK + k];
    const int fast = cols % 32 == 0 && q->g % 32 == 0;
    for (long long r = 0; r < rows; r++)
        for (int b = 0; b < batch; b++) {
            const float *x = X + (size_t)b * cols;
            float acc = 0.f;
            for (int lane = 0; lane < 32; lane++) {
                float la = 0.f;
                if (fast) {
                    for (long long ch = lane; ch < cols / 32; ch += 32) {
                        uint32_t w[4];
                        memcpy(w, q->codes + r * q->code_stride + ch * 16, 16);
                        const long long gi = r * q->ngroups + (ch * 32) / q->g;
                        const float s = fam_h2f(q->scale[gi]);
                        if (q->kind == TP_Q_NF4) la = fmaf(s, fam_nf4_dot32(w, x + ch * 32, TP_NF4_LEVELS), la);
                        else {
                            float xs[32];
                            memcpy(xs, x + ch * 32, sizeof xs);
                            const float sx = fam_prep_x32(xs);
                            la += fmaf(s, fam_int4_dot32(w, xs), fam_h2f(q->offset[gi]) * sx);
                        }
                    }
                } else {
                    for (long long c = lane; c < cols; c += 32) {
                        const float wv = q->kind == TP_Q_NF4 ? lora_elem<TP_Q_NF4>(a, TP_NF4_LEVELS, r, c)
                                                             : lora_elem<TP_Q_INT4>(a, TP_NF4_LEVELS, r, c);
                        la = fmaf(wv, x[c], la);
                    }
                }
                acc += la;
            }
            Y[(size_t)b * rows + r] = acc + lora_expand<RK>(a, p, T, r, b);
        }
    free(A);
    free(B);
    free(P);
    free(T);
    return TP_OK;
}

extern "C" int tp_cuda_emu_available(char *why, size_t n) {
    const char *e = getenv("TENPAK_CUDA_EMU");
    if (e && atoi(e) == 1) return 1;
    if (why && n) snprintf(why, n, "host emulation of the cuda kernels: set TENPAK_CUDA_EMU=1");
    return 0;
}

extern "C" tp_status tp_cuda_lora_emulate(const tp_qmat *q, const tp_lora *ad, int nad, const int32_t *idx,
                                          const float *X, int64_t batch, float *Y) {
    switch (ad[0].r) {
    case 8: return lora_emulate_rk<8>(q, ad, nad, idx, X, batch, Y);
    case 16: return lora_emulate_rk<16>(q, ad, nad, idx, X, batch, Y);
    case 32: return lora_emulate_rk<32>(q, ad, nad, idx, X, batch, Y);
    case 64: return lora_emulate_rk<64>(q, ad, nad, idx, X, batch, Y);
    default: tp_cu_nan_fill(Y, (size_t)(batch * q->rows));
    }
    return TP_OK;
}

/* SGMV: sgmv_shrink and sgmv_main's decomposition on the host: per block and thread the same
 * per-thread functions, the warp sums in the butterflies' trees (by commutativity every lane of
 * a butterfly holds the same value, so one tree per sum), the block sums in their order. */
template <int RK>
static tp_status sgmv_emulate_rk(const tp_qmat *q, const tp_lora *ad, int nad, const int32_t *seg, const int32_t *sad,
                                 int nseg, const float *X, int64_t batch, float *Y) {
    const long long rows = q->rows, cols = q->cols;
    const int NBS = 64 / RK, NW = SG_THREADS / 32;
    LArgs a;
    memset(&a, 0, sizeof a);
    SRun p;
    memset(&p, 0, sizeof p);
    p.batch = (int)batch;
    p.nseg = nseg;
    p.nchunk = (int)((cols + LR_CHUNK - 1) / LR_CHUNK);
    p.seg = seg;
    p.sad = sad;
    p.X = X;
    float *A = (float *)malloc((size_t)nad * RK * cols * 4), *B = (float *)malloc((size_t)nad * rows * RK * 4);
    float *P = (float *)calloc((size_t)p.nchunk * batch * RK, 4);
    float *acc = (float *)malloc((size_t)SG_THREADS * 64 * 4), *xs = (float *)calloc(SG_KL * SG_WPAD, 4);
    if (!A || !B || !P || !acc || !xs) {
        free(A); free(B); free(P); free(acc); free(xs);
        return TP_ERR_NOMEM;
    }
    emu_args<RK>(q, ad, nad, A, B, p.sc, a);
    p.P = P;
    /* shrink: block (ch, s) */
    for (int s = 0; s < nseg; s++)
        for (int ch = 0; ch < p.nchunk; ch++) {
            const float *As = A + (size_t)sad[s] * RK * cols;
            for (int b0 = seg[s]; b0 < seg[s + 1]; b0 += NBS) {
                const int n = seg[s + 1] - b0 < NBS ? seg[s + 1] - b0 : NBS;
                for (int tid = 0; tid < SG_THREADS; tid++) sg_shrink_acc<RK>(a, p, As, b0, n, ch, tid, SG_THREADS, acc + tid * 64);
                for (int j = 0; j < n * RK; j++) {
                    float t = 0.f;
                    for (int w = 0; w < NW; w++) {
                        float v[32], nv[32];
                        for (int l = 0; l < 32; l++) v[l] = acc[(w * 32 + l) * 64 + j];
                        for (int o = 16; o; o >>= 1) {
                            for (int l = 0; l < 32; l++) nv[l] = v[l] + v[l ^ o];
                            memcpy(v, nv, sizeof v);
                        }
                        t += v[0];
                    }
                    P[((size_t)ch * batch + b0 + j / RK) * RK + j % RK] = t;
                }
            }
        }
    /* base + expand: block of SG_ROWS rows, passes of SG_NB columns, steps of SG_STEP columns */
    const int fast = cols % 8 == 0 && q->g % 8 == 0;
    const long long nsteps = (cols + SG_STEP - 1) / SG_STEP;
    float red[4 * SG_ROWS * SG_NB], T[SG_NB * RK];
    for (long long blk = 0; blk * SG_ROWS < rows; blk++)
        for (int b0 = 0; b0 < batch; b0 += SG_NB) {
            float (*ac)[SG_RPT][SG_NB] = (float (*)[SG_RPT][SG_NB])acc;
            memset(acc, 0, (size_t)SG_THREADS * 64 * 4);
            for (long long st = 0; st < nsteps; st++) {
                for (int i = 0; i < 4 * SG_THREADS; i++) {
                    float v[4];
                    sg_load_x(p, cols, b0, st * SG_STEP, i, v);
                    sg_store_x(i, v, xs);
                }
                for (int tid = 0; tid < SG_THREADS; tid++) {
                    const int rq = sg_rq(tid), kl = sg_kl(tid);
                    long long rr[SG_RPT];
                    for (int i = 0; i < SG_RPT; i++) {
                        const long long r = blk * SG_ROWS + rq * SG_RPT + i;
                        rr[i] = r < rows ? r : rows - 1;
                    }
                    uint32_t wd[SG_RPT] = {0u, 0u, 0u, 0u};
                    uint16_t sc[SG_RPT] = {0, 0, 0, 0}, of[SG_RPT] = {0, 0, 0, 0};
                    const long long wi = st * SG_KL + kl;
                    if (fast) {
                        sg_load_codes(a, rr, wi, wd, sc, of);
                        sg_step<true>(a, rr, wi, wd, sc, of, xs + kl * SG_WPAD, ac[tid]);
                    } else sg_step<false>(a, rr, wi, wd, sc, of, xs + kl * SG_WPAD, ac[tid]);
                }
            }
            /* warp w, row quad lanes rqw: the 8 k lanes' reduce-scatter tree */
            for (int tid = 0; tid < SG_THREADS; tid += 8) {
                const int rq = sg_rq(tid), kg = tid >> 6;
                for (int i = 0; i < SG_RPT; i++)
                    for (int c = 0; c < SG_NB; c++) {
                        float v[8];
                        for (int l = 0; l < 8; l++) v[l] = ac[tid + l][i][c];
                        red[(kg * SG_ROWS + rq * SG_RPT + i) * SG_NB + c] =
                            ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
                    }
            }
            for (int i = 0; i < SG_NB * RK; i++) {
                const int b = b0 + i / RK;
                float t = 0.f;
                if (b < batch)
                    for (int u = 0; u < p.nchunk; u++) t += P[((size_t)u * batch + b) * RK + i % RK];
                T[i] = t;
            }
            for (int o = 0; o < SG_ROWS * SG_NB; o++) {
                const int rb = o / SG_NB, cc = o % SG_NB, b = b0 + cc;
                const long long row = blk * SG_ROWS + rb;
                if (row < rows && b < batch) {
                    float y = red[rb * SG_NB + cc];
                    for (int g = 1; g < 4; g++) y += red[(g * SG_ROWS + rb) * SG_NB + cc];
                    Y[(size_t)b * rows + row] = y + sg_expand<RK>(a, p, sg_adapter(p, b), row, T + cc * RK);
                }
            }
        }
    free(A); free(B); free(P); free(acc); free(xs);
    return TP_OK;
}

extern "C" tp_status tp_cuda_sgmv_emulate(const tp_qmat *q, const tp_lora *ad, int nad, const int32_t *seg,
                                          const int32_t *sad, int nseg, const float *X, int64_t batch, float *Y) {
    if (q->kind != TP_Q_INT4 || nad < 1 || nad > 8 || batch < 0 || tp_lora_seg_check(nad, seg, sad, nseg, batch) != TP_OK)
        return TP_ERR_ARG;
    for (int i = 0; i < nad; i++)
        if (ad[i].r != ad[0].r) return TP_ERR_ARG;
    switch (ad[0].r) {
    case 8: return sgmv_emulate_rk<8>(q, ad, nad, seg, sad, nseg, X, batch, Y);
    case 16: return sgmv_emulate_rk<16>(q, ad, nad, seg, sad, nseg, X, batch, Y);
    case 32: return sgmv_emulate_rk<32>(q, ad, nad, seg, sad, nseg, X, batch, Y);
    case 64: return sgmv_emulate_rk<64>(q, ad, nad, seg, sad, nseg, X, batch, Y);
    default: return TP_ERR_ARG;
    }
}
