/* rANS decode on the GPU (kernels/cuda/rans.cu, the kernel in kernels/cuda/rans_kernel.cuh):
 * many independent blocks of the entropy format
 * (include/tenpak/entropy.h) decoded in parallel, one warp per block, one lane per rANS lane.
 * Used by the registry op rans_dec/o0_chunks64k (kernels/ops_entropy.c).
 *
 * Two parts:
 *  1. The C interface of the CUDA kernel (only with TENPAK_HAVE_CUDA), following the registry's
 *     device protocol (include/tenpak/registry.h, kernels/cuda/tp_cuda.h): prepare parses and
 *     validates every block header on the host (tp_ent_parse_header) and uploads the payloads,
 *     a per-block (freq | cum << 16) table of 256 words and a descriptor table (payload offset and
 *     length, output offset, n, coder, scale, sym_bits); run decodes all blocks; sync waits;
 *     fetch copies the decoded bytes and the per-block status; release frees.
 *     A CUDA error, a block the GPU decoder does not take (AC coder, lanes != 32) or a malformed
 *     stream makes fetch fill the output with 0xEE bytes (never equal to a success) after one
 *     line on stderr. The XXH64 of each block is NOT checked on the device: the registry glue
 *     checks it on the host after fetch (outside the timed run).
 *  2. The per-lane arithmetic of the warp decoder as plain inline functions, compiled both as
 *     __host__ __device__ code in rans.cu and as C in the host emulation of the warp algorithm
 *     (verify/test_rans_warp.c), which checks it against the reference decoder on this CPU;
 *     verify/rans_simt_emul.cpp runs the kernel itself on the CPU (lanes as coroutines).
 *
 * The warp algorithm (32 lanes, lane j owns rANS lane j; a group = 32 consecutive symbols):
 *   a) every active lane decodes one symbol: slot = x & (2^s-1), sym = table[slot],
 *      x = freq[sym] * (x >> s) + slot - cum[sym];
 *   b) both renormalisation rounds are known before any byte is read: round 1 takes a byte iff
 *      x < L = 2^23, round 2 iff x < 2^15 (x' = 256 x + b < 2^23 exactly when x < 2^15, since
 *      2^23 is a multiple of 256). With the ballots m1, m2 of the warp, lane j reads its round-1
 *      byte at pos + popc(m1 & below_j) and its round-2 byte at pos + popc(m1) + popc(m2 & below_j)
 *      (all round-1 bytes in lane order, then all round-2 bytes: the format's order), and the
 *      warp advances pos by popc(m1) + popc(m2). Both loads are issued at once.
 */
#ifndef TENPAK_CUDA_RANS_H
#define TENPAK_CUDA_RANS_H

#include <stddef.h>
#include <stdint.h>

#include "tenpak/entropy.h"
#include "tenpak/registry.h"

#ifdef __CUDACC__
#define TP_RANS_HD __host__ __device__ inline
#else
#define TP_RANS_HD inline
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The GPU decoder's lane count (one warp). */
#define TP_RANS_GPU_LANES 32

/* Per-block symbol table word: freq | cum << 16 (freq <= 2^15, cum < 2^15). */
static TP_RANS_HD uint32_t tp_rans_fc_pack(uint32_t freq, uint32_t cum) { return freq | cum << 16; }

static TP_RANS_HD uint32_t tp_rans_popc(uint32_t m) {
#ifdef __CUDA_ARCH__
    return (uint32_t)__popc(m);
#else
    return (uint32_t)__builtin_popcount(m);
#endif
}

/* a) one symbol of one lane: returns the symbol, advances *x. sym_of_slot has 2^s entries. */
static TP_RANS_HD uint32_t tp_rans_lane_decode(uint32_t *x, const uint8_t *sym_of_slot,
                                                      const uint32_t *fc, int s) {
    const uint32_t slot = *x & ((1u << s) - 1u), sym = sym_of_slot[slot], e = fc[sym];
    *x = (e & 0xffffu) * (*x >> s) + slot - (e >> 16);
    return sym;
}

/* b) renormalisation needs of a decoded state: round 1 (x < 2^23) and round 2 (x < 2^15). */
static TP_RANS_HD int tp_rans_need1(uint32_t x) { return x < TP_RANS_L; }
static TP_RANS_HD int tp_rans_need2(uint32_t x) { return x < (TP_RANS_L >> 8); }

/* Offsets (from the group's first renormalisation byte) of lane j's round-1 and round-2 bytes,
 * from the warp's ballots m1 (lanes needing round 1) and m2 (round 2, a subset of m1). */
static TP_RANS_HD uint32_t tp_rans_off1(uint32_t m1, int lane) {
    return tp_rans_popc(m1 & ((1u << lane) - 1u));
}
static TP_RANS_HD uint32_t tp_rans_off2(uint32_t m1, uint32_t m2, int lane) {
    return tp_rans_popc(m1) + tp_rans_popc(m2 & ((1u << lane) - 1u));
}
/* The state after the renormalisation bytes b1 (used iff need1) and b2 (iff need2). */
static TP_RANS_HD uint32_t tp_rans_refill(uint32_t x, int need1, int need2, uint32_t b1,
                                                 uint32_t b2) {
    if (need1) x = x << 8 | b1;
    if (need2) x = x << 8 | b2;
    return x;
}

/* Device status of one block after the decode (fetch reports the first nonzero one). */
enum {
    TP_RANS_GPU_OK = 0,
    TP_RANS_GPU_BAD_STATE = 1, /* an initial state outside [2^23, 2^31) */
    TP_RANS_GPU_TRUNCATED = 2, /* the payload ended before the last symbol */
    TP_RANS_GPU_BAD_END = 3    /* bytes left over, or a final state other than 2^23 */
};

#ifdef TENPAK_HAVE_CUDA
/* Blocks: block i is stream[off[i] .. off[i + 1]) (nblocks + 1 offsets); decoded in order, the
 * output is their concatenation (c->out_bytes must equal the sum of their n). prefetch: the kernel
 * also prefetches payload lines into L1 ahead of the decode (backend "cuda-pf", for comparison). */
void *tp_cuda_rans_prepare(const uint8_t *stream, const size_t *off, size_t nblocks, size_t out_bytes,
                           int prefetch);
tp_status tp_cuda_rans_run(const tp_case *c, void *state, void *out);
/* Copies the decoded bytes into out; 0xEE everywhere on any failure (CUDA error, bad block). */
void tp_cuda_rans_fetch(const tp_case *c, void *state, void *out);
void tp_cuda_rans_release(void *state);
/* 1 when the state failed (prepare, a CUDA call or a block's status): fetch wrote 0xEE. */
int tp_cuda_rans_failed(const void *state);
#endif

#ifdef __cplusplus
}
#endif
#endif
