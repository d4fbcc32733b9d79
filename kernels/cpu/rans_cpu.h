/* Internal interface between the cpu entropy coder (kernels/cpu/rans_cpu.c) and its ISA-specific
 * kernels. The 32-lane rANS decoder works on whole groups of 32 symbols with a packed decoding
 * table (scale_bits <= 12): entry = (freq - 1) | (slot - cum) << 12 | sym << 24. */
#ifndef TENPAK_KERNELS_CPU_RANS_CPU_H
#define TENPAK_KERNELS_CPU_RANS_CPU_H

#include <stddef.h>
#include <stdint.h>

#define TP_RANS32_GROUP_BYTES 72 /* a group reads <= 64 bytes; +8 for the 8-byte loads */

/* Decodes up to ngroups groups while at least TP_RANS32_GROUP_BYTES payload bytes remain before
 * end; returns the number decoded. Writes 32 (sym_bits 8) or 16 (sym_bits 4) bytes per group. */
size_t tp_rans32_dec_groups_avx2(uint32_t x[32], const uint8_t **pp, const uint8_t *end,
                                 const uint32_t *tab, int scale_bits, int sym_bits, uint8_t *out,
                                 size_t ngroups);
/* scale_bits 13..15: sym[slot] = the symbol, fc[sym] = freq | cum << 16. */
size_t tp_rans32_dec_groups_wide_avx2(uint32_t x[32], const uint8_t **pp, const uint8_t *end,
                                      const uint8_t *sym, const uint32_t *fc, int scale_bits,
                                      int sym_bits, uint8_t *out, size_t ngroups);
/* The wide decoder with AVX-512 (F+BW+VL+DQ): kernels/cpu/avx512/rans_avx512.c. */
size_t tp_rans32_dec_groups_wide_avx512(uint32_t x[32], const uint8_t **pp, const uint8_t *end,
                                        const uint8_t *sym, const uint32_t *fc, int scale_bits,
                                        int sym_bits, uint8_t *out, size_t ngroups);
/* The gather decoder for scale_bits 13..15 (kernels/cpu/avx512/rans_avx512_body.h): fb[slot] =
 * freq | (slot - cum) << 16 (2^s entries), sym[slot] the symbol, readable up to sym + 2^s + 3
 * (4-byte gathers). _avx512: AVX-512 F+BW+VL+DQ; _avx512vbmi: the avx512vbmi level (vpermb). */
size_t tp_rans32_dec_groups_wide_gather_avx512(uint32_t x[32], const uint8_t **pp, const uint8_t *end,
                                               const uint32_t *fb, const uint8_t *sym, int scale_bits,
                                               int sym_bits, uint8_t *out, size_t ngroups);
size_t tp_rans32_dec_groups_wide_gather_avx512vbmi(uint32_t x[32], const uint8_t **pp, const uint8_t *end,
                                                   const uint32_t *fb, const uint8_t *sym, int scale_bits,
                                                   int sym_bits, uint8_t *out, size_t ngroups);
/* The gather decoder for scale_bits <= 12 (same files): one vpgatherdd per vector from the scalar
 * decoder's tab[slot] = (freq - 1) | (slot - cum) << 12 | sym << 24. */
size_t tp_rans32_dec_groups_gather_avx512(uint32_t x[32], const uint8_t **pp, const uint8_t *end, const uint32_t *tab,
                                          int scale_bits, int sym_bits, uint8_t *out, size_t ngroups);
size_t tp_rans32_dec_groups_gather_avx512vbmi(uint32_t x[32], const uint8_t **pp, const uint8_t *end,
                                              const uint32_t *tab, int scale_bits, int sym_bits, uint8_t *out,
                                              size_t ngroups);
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
