/* Internal interface between the cpu entropy coder (kernels/cpu/rans_cpu.c) and its ISA-specific
 * kernels. The 32-lane rANS decoder works on whole groups of 32 symbols with a packed decoding
 * table (scale_bits <= 12): entry = (freq - 1) | (slot - cum) << 12 | sym << 24. */
#ifndef TENPAK_KERNELS_CPU_RANS_CPU_H
#define TENPAK_KERNELS_CPU_RANS_CPU_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* XXH64 (seed 0) of the decoded bytes, computed by the 32-lane decoders while they write them: one
 * 32-byte stripe of the hash per group of 32 symbols (per two groups of nibbles), scalar
 * multiply-rotate chains that run on ports the decoder's vector chain leaves idle, in place of a
 * second pass over the output after it (10.5% of a decode of wiki.test.raw on Zen 4; with it fused,
 * Zen 4 1236-1242 MB/s against 1102-1129, an Intel Xeon 1427-1545 against 1358-1470, run26). The
 * algorithm is the xxhash library's XXH64 (the block's checksum, include/tenpak/entropy.h), which
 * stays the reference: verify/test_entropy.c checks tp_xxh64_finish against XXH64, and every decode
 * compares the result with the stored checksum. x86 only (little-endian loads). */
#define TP_XXH_P1 0x9E3779B185EBCA87ull
#define TP_XXH_P2 0xC2B2AE3D27D4EB4Full
#define TP_XXH_P3 0x165667B19E3779F9ull
#define TP_XXH_P4 0x85EBCA77C2B2AE63ull
#define TP_XXH_P5 0x27D4EB2F165667C5ull
static inline uint64_t tp_xxh_rotl(uint64_t x, int r) { return x << r | x >> (64 - r); }
static inline uint64_t tp_xxh_round(uint64_t acc, uint64_t in) {
    return tp_xxh_rotl(acc + in * TP_XXH_P2, 31) * TP_XXH_P1;
}
static inline void tp_xxh64_init(uint64_t v[4]) {
    v[0] = TP_XXH_P1 + TP_XXH_P2, v[1] = TP_XXH_P2, v[2] = 0, v[3] = 0 - TP_XXH_P1;
}
static inline void tp_xxh64_stripe(uint64_t v[4], const uint8_t *p) {
    uint64_t w[4];
    memcpy(w, p, 32);
    for (int i = 0; i < 4; i++) v[i] = tp_xxh_round(v[i], w[i]);
}
/* the stripe that group g completes, if any (its bytes are already written) */
static inline void tp_xxh64_group(uint64_t v[4], const uint8_t *out, size_t g, int sym_bits) {
    if (sym_bits == 8) tp_xxh64_stripe(v, out + 32 * g);
    else if (g & 1) tp_xxh64_stripe(v, out + 16 * (g - 1));
}
/* bytes of the output that g groups hashed */
static inline size_t tp_xxh64_hashed(size_t g, int sym_bits) { return sym_bits == 8 ? 32 * g : 32 * (g / 2); }
/* XXH64 of data[0, n) given v after the stripes of data[0, done) (done a multiple of 32) */
uint64_t tp_xxh64_finish(uint64_t v[4], const uint8_t *data, size_t done, size_t n);

#define TP_RANS32_GROUP_BYTES 72 /* a group reads <= 64 bytes; +8 for the 8-byte loads */

/* Decodes up to ngroups groups while at least TP_RANS32_GROUP_BYTES payload bytes remain before
 * end; returns the number decoded. Writes 32 (sym_bits 8) or 16 (sym_bits 4) bytes per group, and
 * when hv is not NULL hashes them into hv (tp_xxh64_group, from the first group written). */
size_t tp_rans32_dec_groups_avx2(uint32_t x[32], const uint8_t **pp, const uint8_t *end,
                                 const uint32_t *tab, int scale_bits, int sym_bits, uint8_t *out,
                                 size_t ngroups, uint64_t *hv);
/* scale_bits 13..15: sym[slot] = the symbol, fc[sym] = freq | cum << 16. */
size_t tp_rans32_dec_groups_wide_avx2(uint32_t x[32], const uint8_t **pp, const uint8_t *end,
                                      const uint8_t *sym, const uint32_t *fc, int scale_bits,
                                      int sym_bits, uint8_t *out, size_t ngroups, uint64_t *hv);
/* The wide decoder with AVX-512 (F+BW+VL+DQ): kernels/cpu/avx512/rans_avx512.c. */
size_t tp_rans32_dec_groups_wide_avx512(uint32_t x[32], const uint8_t **pp, const uint8_t *end,
                                        const uint8_t *sym, const uint32_t *fc, int scale_bits,
                                        int sym_bits, uint8_t *out, size_t ngroups, uint64_t *hv);
/* The gather decoder for scale_bits 13..15 (kernels/cpu/avx512/rans_avx512_body.h): fb[slot] =
 * freq | (slot - cum) << 16 (2^s entries), sym[slot] the symbol, readable up to sym + 2^s + 3
 * (4-byte gathers). _avx512: AVX-512 F+BW+VL+DQ; _avx512vbmi: the avx512vbmi level (vpermb). */
size_t tp_rans32_dec_groups_wide_gather_avx512(uint32_t x[32], const uint8_t **pp, const uint8_t *end,
                                               const uint32_t *fb, const uint8_t *sym, int scale_bits,
                                               int sym_bits, uint8_t *out, size_t ngroups, uint64_t *hv);
size_t tp_rans32_dec_groups_wide_gather_avx512vbmi(uint32_t x[32], const uint8_t **pp, const uint8_t *end,
                                                   const uint32_t *fb, const uint8_t *sym, int scale_bits,
                                                   int sym_bits, uint8_t *out, size_t ngroups, uint64_t *hv);
/* The gather decoder for scale_bits <= 12 (same files): one vpgatherdd per vector from the scalar
 * decoder's tab[slot] = (freq - 1) | (slot - cum) << 12 | sym << 24. */
size_t tp_rans32_dec_groups_gather_avx512(uint32_t x[32], const uint8_t **pp, const uint8_t *end, const uint32_t *tab,
                                          int scale_bits, int sym_bits, uint8_t *out, size_t ngroups, uint64_t *hv);
size_t tp_rans32_dec_groups_gather_avx512vbmi(uint32_t x[32], const uint8_t **pp, const uint8_t *end,
                                              const uint32_t *tab, int scale_bits, int sym_bits, uint8_t *out,
                                              size_t ngroups, uint64_t *hv);
/* Per-symbol encoder constants, 16 bytes (one vector load): see rans_cpu.c. */
typedef struct tp_rans_esym {
    uint32_t x_max_m1; /* freq << (31 - s), minus 1 */
    uint32_t rcp;      /* ceil(2^shift / freq) */
    uint32_t shift;    /* 31 + ceil(log2 freq) */
    uint32_t bc;       /* cum | (2^s - freq) << 16 */
} tp_rans_esym;

/* Shuffle tables (filled at load time by rans_cpu.c), indexed by an 8-lane mask:
 * expand[m][i]  = rank of lane i among the set lanes of m (where the decoder's byte for lane i is);
 * compact[m][k] = the lane whose byte goes to position k, set lanes packed at the top (k >= 8-cnt). */
extern int32_t tp_rans_lut_expand[256][8];
extern int32_t tp_rans_lut_compact[256][8];
/* Encodes groups ngroups - 1 down to 0 (32 symbols each, taken from syms), writing downwards from
 * *pp; needs 72 bytes of room per group (the caller checks). */
void tp_rans32_enc_groups_avx2(uint32_t x[32], uint8_t **pp, const tp_rans_esym *tab,
                               const uint8_t *syms, size_t ngroups);
#endif
