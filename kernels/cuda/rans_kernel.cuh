/* The GPU rANS decoder's kernel and the host-side layout of its inputs: included by
 * kernels/cuda/rans.cu, and by the SIMT emulation verify/rans_simt_emul.cpp (which compiles this
 * file with host shims for the CUDA keywords and warp intrinsics, and runs each warp's 32 lanes as
 * coroutines). Keep CUDA runtime calls out of this file. */
#ifndef TENPAK_CUDA_RANS_KERNEL_CUH
#define TENPAK_CUDA_RANS_KERNEL_CUH

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/tp_cuda_rans.h"

#ifndef RANS_PREFETCH_L1 /* the emulation defines it away */
#define RANS_PREFETCH_L1(ptr) asm volatile("prefetch.global.L1 [%0];" ::"l"(ptr))
#endif

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
            if (t < plen) RANS_PREFETCH_L1(p + t);
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

/* The host side of prepare, without CUDA calls (shared with the SIMT emulation in
 * verify/rans_simt_emul.cpp): parses and validates every header, lays the payloads out 16-byte
 * aligned (L->pay, L->pay_total bytes) and fills the descriptors and (freq | cum << 16) tables.
 * Returns 0, or 1 after one line on stderr. */
struct RansLayout {
    RansDesc *desc; /* nblocks */
    uint32_t *fc;   /* nblocks x 256 */
    uint8_t *pay;
    size_t pay_total;
    int tab_bytes;  /* 2^(largest scale_bits), >= 16 */
};

static void rans_layout_free(RansLayout *L) {
    free(L->desc);
    free(L->fc);
    free(L->pay);
    memset(L, 0, sizeof *L);
}

static int rans_layout(const uint8_t *stream, const size_t *off, size_t nblocks, size_t out_bytes, RansLayout *L) {
    memset(L, 0, sizeof *L);
    L->desc = (RansDesc *)calloc(nblocks ? nblocks : 1, sizeof *L->desc);
    L->fc = (uint32_t *)calloc((nblocks ? nblocks : 1) * 256, sizeof *L->fc);
    if (!L->desc || !L->fc) {
        fprintf(stderr, "cuda rans: out of host memory for %zu block descriptors\n", nblocks);
        rans_layout_free(L);
        return 1;
    }
    size_t out_total = 0;
    int smax = 4;
    for (size_t i = 0; i < nblocks; i++) {
        tp_ent_header h;
        tp_err e;
        if (tp_ent_parse_header(stream + off[i], off[i + 1] - off[i], &h, &e) != TP_OK) {
            fprintf(stderr, "cuda rans: block %zu: %s\n", i, e.msg);
            rans_layout_free(L);
            return 1;
        }
        if (h.coder == TP_ENT_AC || (h.coder == TP_ENT_RANS && h.n > 0 && h.lanes != TP_RANS_GPU_LANES)) {
            fprintf(stderr, "cuda rans: block %zu: coder %s with %d lanes; the GPU decoder takes rANS with %d lanes or stored\n",
                    i, tp_ent_coder_name(h.coder), h.lanes, TP_RANS_GPU_LANES);
            rans_layout_free(L);
            return 1;
        }
        RansDesc &d = L->desc[i];
        d.pay_off = L->pay_total;
        d.pay_len = h.payload_len;
        d.out_off = out_total;
        d.n = h.n;
        d.coder = (int)h.coder;
        d.scale_bits = h.scale_bits;
        d.sym_bits = h.sym_bits;
        if (h.coder == TP_ENT_RANS && h.n > 0) {
            uint32_t cum = 0;
            for (int k = 0; k < h.nsym; k++) {
                L->fc[i * 256 + (size_t)k] = tp_rans_fc_pack(h.freq[k], cum);
                cum += h.freq[k];
            }
            if (h.scale_bits > smax) smax = h.scale_bits;
        }
        L->pay_total += (h.payload_len + 15) & ~(size_t)15;
        out_total += h.n;
    }
    if (out_total != out_bytes) {
        fprintf(stderr, "cuda rans: the blocks decode to %zu bytes, the output holds %zu\n", out_total, out_bytes);
        rans_layout_free(L);
        return 1;
    }
    L->tab_bytes = 1 << smax;
    L->pay = (uint8_t *)calloc(L->pay_total ? L->pay_total : 1, 1);
    if (!L->pay) {
        fprintf(stderr, "cuda rans: out of host memory for %zu payload bytes\n", L->pay_total);
        rans_layout_free(L);
        return 1;
    }
    for (size_t i = 0; i < nblocks; i++) {
        tp_ent_header h;
        tp_ent_parse_header(stream + off[i], off[i + 1] - off[i], &h, NULL);
        memcpy(L->pay + L->desc[i].pay_off, stream + off[i] + h.payload_off, h.payload_len);
    }
    return 0;
}

/* Dynamic shared memory of one CTA. */
static size_t rans_smem_bytes(int tab_bytes) {
    return (size_t)RANS_WARPS * (RANS_STAGE + RANS_FC_BYTES + (size_t)tab_bytes);
}
#endif
