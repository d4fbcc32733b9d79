/* rANS decode on the GPU: many independent blocks of the entropy format (include/tenpak/entropy.h),
 * each decoded by one warp, lane j of the warp being rANS lane j of the block (the cpu coder's
 * 32 interleaved lanes). Interface, and the warp algorithm in words: kernels/cuda/tp_cuda_rans.h;
 * the per-lane arithmetic is shared with the host emulation in verify/test_rans_warp.c.
 *
 * Per warp, in shared memory: the block's slot -> symbol table (2^s bytes, built from the
 * (freq | cum << 16) words the host uploads), those 256 words, and a 512-byte staging buffer
 * for the decoded bytes, flushed as one 16-byte store per lane (512 B per warp) when it is full.
 * Stored blocks are copied; empty blocks are skipped. Each block gets a status word (0 = ok).
 *
 * Not done on the device: the XXH64 of each block (the registry glue checks it on the host after
 * fetch). Reference: reference/rans_ref.c (tp_rans_payload_dec_ref), the same order of bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/tp_cuda_rans.h"

#define RANS_WARPS 4        /* warps per CTA, each decoding its own blocks */
#define RANS_STAGE 512      /* staging bytes per warp: 16 B per lane */
#define RANS_FC_BYTES 1024  /* 256 (freq | cum << 16) words */

struct RansDesc {
    unsigned long long pay_off, pay_len, out_off, n;
    int coder, scale_bits, sym_bits, pad;
};

struct RansArgs {
    const uint8_t *payload;   /* every block's payload, each starting 16-byte aligned */
    const uint32_t *fc;       /* nblocks x 256 words */
    const RansDesc *desc;
    long long nblocks;
    int tab_bytes;            /* per-warp slot table: 2^(largest scale_bits), >= 16 */
    uint8_t *out;
    int *status;
};

/* One group of 32 symbols (TAIL: only lanes < k hold a symbol). The decoded byte (or nibble
 * pair) goes to row sl of the staging buffer; both renormalisation bytes of every lane are
 * fetched at once (tp_cuda_rans.h, step b). Returns false, uniformly, when the payload is too
 * short for the group's bytes. */
template <bool NIB, bool TAIL>
static __device__ __forceinline__ bool rans_group(uint32_t &x, int lane, int k, const uint8_t *tab,
                                                  const uint32_t *fc, int s, uint8_t *stage, int sl,
                                                  const uint8_t *p, unsigned long long &pos,
                                                  unsigned long long plen) {
    const unsigned FULL = 0xffffffffu;
    const bool act = !TAIL || lane < k;
    uint32_t sym = 0;
    if (act) sym = tp_rans_lane_decode(&x, tab, fc, s);
    if (!NIB) {
        if (act) stage[sl * 32 + lane] = (uint8_t)sym;
    } else {
        /* k is even (2n symbols, 32 lanes): an active even lane has an active neighbour */
        const uint32_t hi = __shfl_down_sync(FULL, sym, 1);
        if (act && !(lane & 1)) stage[sl * 16 + (lane >> 1)] = (uint8_t)(sym | hi << 4);
    }
    const int n1 = act && tp_rans_need1(x), n2 = act && tp_rans_need2(x);
    const uint32_t m1 = __ballot_sync(FULL, n1), m2 = __ballot_sync(FULL, n2);
    const uint32_t take = tp_rans_popc(m1) + tp_rans_popc(m2);
    if (pos + take > plen) return false;
    const uint8_t *q = p + pos;
    uint32_t b1 = 0, b2 = 0;
    if (n1) b1 = __ldg(q + tp_rans_off1(m1, lane));
    if (n2) b2 = __ldg(q + tp_rans_off2(m1, m2, lane));
    x = tp_rans_refill(x, n1, n2, b1, b2);
    pos += take;
    return true;
}

/* The staged bytes [0, nb) to out: one 16-byte store per lane when the buffer is full and out is
 * aligned, else byte by byte. */
static __device__ __forceinline__ void rans_flush(uint8_t *out, const uint8_t *stage, int nb, bool vec, int lane) {
    __syncwarp();
    if (vec && nb == RANS_STAGE) ((uint4 *)out)[lane] = ((const uint4 *)stage)[lane];
    else
        for (int i = lane; i < nb; i += 32) out[i] = stage[i];
    __syncwarp();
}

/* One rANS block (tables in shared memory, states loaded and checked): returns its status.
 * PF: every 8 groups lanes 0..3 prefetch the 4 payload lines 512..1023 bytes ahead into L1 (at
 * most 64 bytes are consumed per group), so the byte loads of the chain rarely miss. */
template <bool NIB, bool PF>
static __device__ __forceinline__ int rans_block(uint32_t x, int lane, const uint8_t *tab, const uint32_t *fc,
                                                 int s, uint8_t *stage, const uint8_t *p, unsigned long long plen,
                                                 unsigned long long n, uint8_t *out, bool vec) {
    constexpr int GB = NIB ? 16 : 32, PER_FLUSH = RANS_STAGE / GB; /* bytes per group, groups per flush */
    const unsigned long long count = NIB ? 2 * n : n, full = count / 32;
    const int k = (int)(count % 32);
    unsigned long long pos = 4 * TP_RANS_GPU_LANES, flushed = 0;
    int sl = 0;
    for (unsigned long long g = 0; g < full; g++) {
        if (PF && (g & 7) == 0 && lane < 4) {
            const unsigned long long t = pos + 512 + 128 * (unsigned)lane;
            if (t < plen) asm volatile("prefetch.global.L1 [%0];" ::"l"(p + t));
        }
        if (!rans_group<NIB, false>(x, lane, 32, tab, fc, s, stage, sl, p, pos, plen)) return TP_RANS_GPU_TRUNCATED;
        if (++sl == PER_FLUSH) {
            rans_flush(out + flushed, stage, RANS_STAGE, vec, lane);
            flushed += RANS_STAGE;
            sl = 0;
        }
    }
    if (k) {
        if (!rans_group<NIB, true>(x, lane, k, tab, fc, s, stage, sl, p, pos, plen)) return TP_RANS_GPU_TRUNCATED;
        sl++;
    }
    const unsigned long long done = NIB ? count / 2 : count;
    if (done > flushed) rans_flush(out + flushed, stage, (int)(done - flushed), vec, lane);
    if (pos != plen || !__all_sync(0xffffffffu, x == TP_RANS_L)) return TP_RANS_GPU_BAD_END;
    return TP_RANS_GPU_OK;
}

template <bool PF>
__global__ void __launch_bounds__(RANS_WARPS * 32) rans_dec_warp(RansArgs a) {
    extern __shared__ __align__(16) uint8_t smem[];
    const unsigned FULL = 0xffffffffu;
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    uint8_t *stage = smem + (size_t)wid * (RANS_STAGE + RANS_FC_BYTES + a.tab_bytes);
    uint32_t *fc = (uint32_t *)(stage + RANS_STAGE);
    uint8_t *tab = (uint8_t *)(fc + 256);
    /* b is the same in every lane: every branch on the block below is warp-uniform */
    for (long long b = (long long)blockIdx.x * RANS_WARPS + wid; b < a.nblocks;
         b += (long long)gridDim.x * RANS_WARPS) {
        const RansDesc d = a.desc[b];
        uint8_t *out = a.out + d.out_off;
        const uint8_t *p = a.payload + d.pay_off;
        if (d.coder == TP_ENT_STORED || d.n == 0) {
            for (unsigned long long i = (unsigned long long)lane; i < d.n; i += 32) out[i] = p[i];
            if (lane == 0) a.status[b] = TP_RANS_GPU_OK;
            continue;
        }
        const uint32_t *gfc = a.fc + (size_t)b * 256;
        __syncwarp(); /* the previous block's readers of fc / tab are done */
        for (int i = lane; i < 256; i += 32) fc[i] = gfc[i];
        __syncwarp();
        for (int sym = 0; sym < (1 << d.sym_bits); sym++) {
            const uint32_t e = fc[sym], f = e & 0xffffu, c0 = e >> 16;
            for (uint32_t t = (uint32_t)lane; t < f; t += 32) tab[c0 + t] = (uint8_t)sym;
        }
        __syncwarp();
        const uint32_t x = (uint32_t)p[4 * lane] | (uint32_t)p[4 * lane + 1] << 8 |
                           (uint32_t)p[4 * lane + 2] << 16 | (uint32_t)p[4 * lane + 3] << 24;
        int st = TP_RANS_GPU_BAD_STATE;
        if (!__any_sync(FULL, x < TP_RANS_L || x >= 256u * TP_RANS_L)) {
            const bool vec = (d.out_off & 15) == 0;
            st = d.sym_bits == 4 ? rans_block<true, PF>(x, lane, tab, fc, d.scale_bits, stage, p, d.pay_len, d.n, out, vec)
                                 : rans_block<false, PF>(x, lane, tab, fc, d.scale_bits, stage, p, d.pay_len, d.n, out, vec);
        }
        if (lane == 0) a.status[b] = st;
    }
}

/* ---------------------------------------------------------------------------------------------
 * State and registry glue
 * ------------------------------------------------------------------------------------------- */
struct rans_state {
    tp_cu_state base;
    size_t nblocks, out_bytes, smem;
    int ncopy, next, tab_bytes, prefetch;
    uint8_t *pay[8];  /* rotated copies of payloads + tables (one allocation each) */
    uint32_t *fc[8];
    RansDesc *desc;
    int *status;
    uint8_t *out;
};

static const char *status_name(int st) {
    switch (st) {
    case TP_RANS_GPU_BAD_STATE: return "an initial rANS state is outside [2^23, 2^31)";
    case TP_RANS_GPU_TRUNCATED: return "rANS payload truncated";
    case TP_RANS_GPU_BAD_END: return "rANS payload has bytes left over or a final state is not 2^23";
    }
    return "unknown status";
}

extern "C" void *tp_cuda_rans_prepare(const uint8_t *stream, const size_t *off, size_t nblocks, size_t out_bytes,
                                      int prefetch) {
    rans_state *s = (rans_state *)calloc(1, sizeof *s);
    if (!s) return NULL;
    s->prefetch = prefetch;
    s->nblocks = nblocks;
    s->out_bytes = out_bytes;
    RansDesc *hd = (RansDesc *)calloc(nblocks ? nblocks : 1, sizeof *hd);
    uint32_t *hfc = (uint32_t *)calloc((nblocks ? nblocks : 1) * 256, sizeof *hfc);
    if (!hd || !hfc) {
        fprintf(stderr, "cuda rans: out of host memory for %zu block descriptors\n", nblocks);
        s->base.failed = 1;
        free(hd);
        free(hfc);
        return s;
    }
    /* parse and validate every header on the host; lay the payloads out 16-byte aligned */
    size_t pay_total = 0, out_total = 0;
    int smax = 4;
    for (size_t i = 0; i < nblocks && !s->base.failed; i++) {
        tp_ent_header h;
        tp_err e;
        if (tp_ent_parse_header(stream + off[i], off[i + 1] - off[i], &h, &e) != TP_OK) {
            fprintf(stderr, "cuda rans: block %zu: %s\n", i, e.msg);
            s->base.failed = 1;
            break;
        }
        if (h.coder == TP_ENT_AC || (h.coder == TP_ENT_RANS && h.n > 0 && h.lanes != TP_RANS_GPU_LANES)) {
            fprintf(stderr, "cuda rans: block %zu: coder %s with %d lanes; the GPU decoder takes rANS with %d lanes or stored\n",
                    i, tp_ent_coder_name(h.coder), h.lanes, TP_RANS_GPU_LANES);
            s->base.failed = 1;
            break;
        }
        RansDesc &d = hd[i];
        d.pay_off = pay_total;
        d.pay_len = h.payload_len;
        d.out_off = out_total;
        d.n = h.n;
        d.coder = (int)h.coder;
        d.scale_bits = h.scale_bits;
        d.sym_bits = h.sym_bits;
        if (h.coder == TP_ENT_RANS && h.n > 0) {
            uint32_t cum = 0;
            for (int k = 0; k < h.nsym; k++) {
                hfc[i * 256 + (size_t)k] = tp_rans_fc_pack(h.freq[k], cum);
                cum += h.freq[k];
            }
            if (h.scale_bits > smax) smax = h.scale_bits;
        }
        pay_total += (h.payload_len + 15) & ~(size_t)15;
        out_total += h.n;
    }
    if (!s->base.failed && out_total != out_bytes) {
        fprintf(stderr, "cuda rans: the blocks decode to %zu bytes, the output holds %zu\n", out_total, out_bytes);
        s->base.failed = 1;
    }
    s->tab_bytes = 1 << smax;
    s->smem = (size_t)RANS_WARPS * (RANS_STAGE + RANS_FC_BYTES + (size_t)s->tab_bytes);
    if (!s->base.failed) {
        uint8_t *hp = (uint8_t *)malloc(pay_total ? pay_total : 1);
        if (!hp) {
            fprintf(stderr, "cuda rans: out of host memory for %zu payload bytes\n", pay_total);
            s->base.failed = 1;
        } else {
            memset(hp, 0, pay_total);
            for (size_t i = 0; i < nblocks; i++) {
                tp_ent_header h;
                tp_ent_parse_header(stream + off[i], off[i + 1] - off[i], &h, NULL);
                memcpy(hp + hd[i].pay_off, stream + off[i] + h.payload_off, h.payload_len);
            }
            const size_t fc_bytes = nblocks * 256 * sizeof(uint32_t);
            s->ncopy = tp_cu_rotation(pay_total + fc_bytes);
            for (int c = 0; c < s->ncopy && !s->base.failed; c++) {
                TP_CU(&s->base, cudaMalloc((void **)&s->pay[c], pay_total + 16));
                TP_CU(&s->base, cudaMalloc((void **)&s->fc[c], fc_bytes + 16));
                if (s->base.failed) break;
                TP_CU(&s->base, cudaMemcpy(s->pay[c], hp, pay_total, cudaMemcpyHostToDevice));
                TP_CU(&s->base, cudaMemcpy(s->fc[c], hfc, fc_bytes, cudaMemcpyHostToDevice));
            }
            free(hp);
            TP_CU(&s->base, cudaMalloc((void **)&s->desc, nblocks * sizeof *hd + 16));
            TP_CU(&s->base, cudaMalloc((void **)&s->status, nblocks * sizeof(int) + 16));
            TP_CU(&s->base, cudaMalloc((void **)&s->out, out_bytes + 16));
            if (!s->base.failed) {
                TP_CU(&s->base, cudaMemcpy(s->desc, hd, nblocks * sizeof *hd, cudaMemcpyHostToDevice));
                TP_CU(&s->base, cudaMemset(s->status, 0xff, nblocks * sizeof(int)));
                TP_CU(&s->base, cudaMemset(s->out, 0xA5, out_bytes)); /* poison */
            }
            if (!s->base.failed)
                TP_CU(&s->base, cudaFuncSetAttribute(prefetch ? rans_dec_warp<true> : rans_dec_warp<false>,
                                                     cudaFuncAttributeMaxDynamicSharedMemorySize, (int)s->smem));
        }
    }
    free(hd);
    free(hfc);
    return s;
}

extern "C" void tp_cuda_rans_run(const tp_case *c, void *state, void *out) {
    (void)c;
    (void)out;
    rans_state *s = (rans_state *)state;
    if (!s || s->base.failed || !s->nblocks) return;
    const int k = s->next;
    s->next = (s->next + 1) % s->ncopy;
    RansArgs a;
    a.payload = s->pay[k];
    a.fc = s->fc[k];
    a.desc = s->desc;
    a.nblocks = (long long)s->nblocks;
    a.tab_bytes = s->tab_bytes;
    a.out = s->out;
    a.status = s->status;
    /* one warp per block; a grid-stride loop covers more blocks than one launch holds */
    long long ctas = ((long long)s->nblocks + RANS_WARPS - 1) / RANS_WARPS;
    if (ctas > (1ll << 30)) ctas = 1ll << 30;
    if (s->prefetch) rans_dec_warp<true><<<(unsigned)ctas, RANS_WARPS * 32, s->smem>>>(a);
    else rans_dec_warp<false><<<(unsigned)ctas, RANS_WARPS * 32, s->smem>>>(a);
    TP_CU_LAUNCHED(&s->base);
}

extern "C" void tp_cuda_rans_fetch(const tp_case *c, void *state, void *out) {
    rans_state *s = (rans_state *)state;
    if (s && !s->base.failed && s->out_bytes)
        TP_CU(&s->base, cudaMemcpy(out, s->out, s->out_bytes, cudaMemcpyDeviceToHost));
    if (s && !s->base.failed && s->nblocks) {
        int *st = (int *)malloc(s->nblocks * sizeof(int));
        if (!st) s->base.failed = 1;
        else {
            TP_CU(&s->base, cudaMemcpy(st, s->status, s->nblocks * sizeof(int), cudaMemcpyDeviceToHost));
            for (size_t i = 0; i < s->nblocks && !s->base.failed; i++)
                if (st[i] != TP_RANS_GPU_OK) {
                    fprintf(stderr, "cuda rans: block %zu: %s (status %d)\n", i, status_name(st[i]), st[i]);
                    s->base.failed = 1;
                }
            free(st);
        }
    }
    if ((!s || s->base.failed) && c->out_bytes) memset(out, 0xEE, c->out_bytes);
}

extern "C" void tp_cuda_rans_release(void *state) {
    rans_state *s = (rans_state *)state;
    if (!s) return;
    for (int i = 0; i < s->ncopy; i++) {
        cudaFree(s->pay[i]);
        cudaFree(s->fc[i]);
    }
    cudaFree(s->desc);
    cudaFree(s->status);
    cudaFree(s->out);
    free(s);
}
