/* AVX-512 pieces of the 32-lane rANS decoder (format: include/tenpak/entropy.h), shared by
 * kernels/cpu/avx512/rans_avx512.c and kernels/cpu/avx512vbmi/rans_avx512vbmi.c: the
 * renormalisation of two vectors of sixteen states (RENORM16) and the gather decoder for
 * scale_bits 13..15 (TP_RANS_GATHER_NAME). Lane j of vector v is rANS lane 16v + j.
 *
 * RENORM16 takes the bytes of round 1 of vectors A then B, then round 2 of A then B, in lane
 * order (the reference's order); the round-2 mask (x < 2^15) is known up front (rans_avx2.c).
 *   - by default each round's bytes are one 16-byte load widened to dwords and spread to the
 *     needy lanes by vpexpandd; the loads start at p plus popcounts of the masks, so on every
 *     group the chain runs compare -> kmov -> popcnt -> add -> load -> expand;
 *   - with TP_RANS_VBMI the group's 64 bytes are loaded at p before the masks are known, and a
 *     lane's byte is picked by vpermb at its rank among the needy lanes (vpexpandd of 0..15) plus
 *     the popcounts of the vector-rounds before it: the load leaves the chain (llvm-mca 14,
 *     Sapphire Rapids model, the gather decoder: 70 -> 68 cycles a group; on Zen 4 no faster).
 *
 * The gather decoder (TENPAK_RANS_LOOKUP=gather; measured slower than the scalar one on Zen 4 and
 * on an Intel Xeon, so not the default: kernels/cpu/rans_cpu.c):
 * one vpgatherdd per vector from a per-slot table fb[slot] = freq | (slot - cum) << 16, so
 * x' = freq (x >> s) + slot - cum without a second dependent lookup, and one from the symbol
 * bytes (4-byte reads at byte offsets: the caller's table has 3 bytes of padding; the low byte
 * is the symbol), which is off the state's chain. The scalar decoder's two levels by gathers
 * (symbol, then freq | cum of the symbol) put two gathers on the chain: 94 cycles in the same
 * model, no better than its scalar loads (96); one 64-bit entry per slot with the symbol
 * (vpgatherdq, 256 KB) 76-79. fb is 2^s * 4 bytes (128 KB at 15 bits, past a 48 KB L1: the model
 * assumes L1 hits, so expect the gathers' latency, and the cycles, to be higher). A group reads
 * at most 64 payload bytes from p. */
#include <immintrin.h>

#include "kernels/cpu/rans_cpu.h"
#include "tenpak/entropy.h"

#ifndef TP_RANS_VBMI
/* x << 8 (n1 + n2) | b1 << 8 n2 | b2: lanes of m1 take one byte from q1 (in lane order), lanes
 * of m2 (a subset) a second one from q2 */
static inline __m512i renorm1(__m512i X, __mmask16 m1, __mmask16 m2, const uint8_t *q1,
                              const uint8_t *q2, __m512i v8) {
    const __m512i b1 = _mm512_maskz_expand_epi32(m1, _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)q1)));
    const __m512i b2 = _mm512_maskz_expand_epi32(m2, _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)q2)));
    const __m512i s2 = _mm512_maskz_mov_epi32(m2, v8);
    const __m512i sh = _mm512_add_epi32(_mm512_maskz_mov_epi32(m1, v8), s2);
    return _mm512_or_si512(_mm512_sllv_epi32(X, sh), _mm512_or_si512(_mm512_sllv_epi32(b1, s2), b2));
}

/* both renormalisation rounds of the two vectors (round 1 of A then B, round 2 of A then B);
 * uses XA, XB, p, vL (L), vL2 (L >> 8), v8 */
#define RENORM16()                                                                                 \
    {                                                                                              \
        const __mmask16 m1a = _mm512_cmplt_epu32_mask(XA, vL), m1b = _mm512_cmplt_epu32_mask(XB, vL); \
        const __mmask16 m2a = _mm512_cmplt_epu32_mask(XA, vL2), m2b = _mm512_cmplt_epu32_mask(XB, vL2); \
        const uint8_t *q1a = p, *q1b = q1a + __builtin_popcount(m1a);                             \
        const uint8_t *q2a = q1b + __builtin_popcount(m1b), *q2b = q2a + __builtin_popcount(m2a);  \
        p = q2b + __builtin_popcount(m2b);                                                         \
        XA = renorm1(XA, m1a, m2a, q1a, q2a, v8);                                                  \
        XB = renorm1(XB, m1b, m2b, q1b, q2b, v8);                                                  \
    }
#else
/* the lanes of m take data[rank among m + off] (vpermb reads the low 6 bits of byte 4j of the
 * index: the rank, < 64; the other three bytes pick data[0] and are masked off) */
static inline __m512i pick_bytes(__mmask16 m, int off, __m512i data, __m512i iota, __m512i vff) {
    const __m512i idx = _mm512_add_epi32(_mm512_maskz_expand_epi32(m, iota), _mm512_set1_epi32(off));
    return _mm512_maskz_and_epi32(m, _mm512_permutexvar_epi8(idx, data), vff);
}

/* as above, the bytes by vpermb from one 64-byte load; uses XA, XB, p, vL, vL2, v8, iota
 * (0..15), vff (0xff) */
#define RENORM16()                                                                                 \
    {                                                                                              \
        const __m512i data = _mm512_loadu_si512((const void *)p);                                  \
        const __mmask16 m1a = _mm512_cmplt_epu32_mask(XA, vL), m1b = _mm512_cmplt_epu32_mask(XB, vL); \
        const __mmask16 m2a = _mm512_cmplt_epu32_mask(XA, vL2), m2b = _mm512_cmplt_epu32_mask(XB, vL2); \
        const int c1a = __builtin_popcount(m1a), c1b = c1a + __builtin_popcount(m1b);              \
        const int c2a = c1b + __builtin_popcount(m2a);                                             \
        p += c2a + __builtin_popcount(m2b);                                                        \
        const __m512i b1a = pick_bytes(m1a, 0, data, iota, vff), b1b = pick_bytes(m1b, c1a, data, iota, vff); \
        const __m512i b2a = pick_bytes(m2a, c1b, data, iota, vff), b2b = pick_bytes(m2b, c2a, data, iota, vff); \
        const __m512i s2a = _mm512_maskz_mov_epi32(m2a, v8), s2b = _mm512_maskz_mov_epi32(m2b, v8); \
        const __m512i sha = _mm512_add_epi32(_mm512_maskz_mov_epi32(m1a, v8), s2a);               \
        const __m512i shb = _mm512_add_epi32(_mm512_maskz_mov_epi32(m1b, v8), s2b);               \
        XA = _mm512_or_si512(_mm512_sllv_epi32(XA, sha), _mm512_or_si512(_mm512_sllv_epi32(b1a, s2a), b2a)); \
        XB = _mm512_or_si512(_mm512_sllv_epi32(XB, shb), _mm512_or_si512(_mm512_sllv_epi32(b1b, s2b), b2b)); \
    }
#endif

#ifndef TP_RANS_STORE_SYMS
#define TP_RANS_STORE_SYMS
/* group g's 32 symbols, lanes 0..15 of sa then of sb, each dword holding its symbol (< 2^sym_bits,
 * the rest zero), written as bytes (sym_bits 8) or as nibble pairs (4) */
static inline void store_syms(__m512i sa, __m512i sb, int sym_bits, uint8_t *out, size_t g) {
    if (sym_bits == 8) {
        _mm_storeu_si128((__m128i *)(out + 32 * g), _mm512_cvtepi32_epi8(sa));
        _mm_storeu_si128((__m128i *)(out + 32 * g + 16), _mm512_cvtepi32_epi8(sb));
    } else { /* lanes 2i, 2i + 1 are one qword: its low byte | (high dword's byte) << 4 */
        const __m128i na = _mm512_cvtepi64_epi8(_mm512_or_si512(sa, _mm512_srli_epi64(sa, 28)));
        const __m128i nb = _mm512_cvtepi64_epi8(_mm512_or_si512(sb, _mm512_srli_epi64(sb, 28)));
        _mm_storeu_si128((__m128i *)(out + 16 * g), _mm_unpacklo_epi64(na, nb));
    }
}
#endif

/* scale_bits 13..15: fb[slot] = freq | (slot - cum) << 16, sym[slot] the symbol (readable up to
 * slot + 3) */
size_t TP_RANS_GATHER_NAME(uint32_t x[32], const uint8_t **pp, const uint8_t *end, const uint32_t *fb,
                           const uint8_t *sym, int s, int sym_bits, uint8_t *out, size_t ngroups, uint64_t *hv) {
    const uint8_t *p = *pp;
    __m512i XA = _mm512_loadu_si512(x), XB = _mm512_loadu_si512(x + 16);
    const __m512i vmask = _mm512_set1_epi32((int)((1u << s) - 1)), v8 = _mm512_set1_epi32(8);
    const __m512i vL = _mm512_set1_epi32((int)TP_RANS_L), vL2 = _mm512_set1_epi32((int)(TP_RANS_L >> 8));
    const __m512i v16 = _mm512_set1_epi32(0xffff), vff = _mm512_set1_epi32(0xff);
#ifdef TP_RANS_VBMI
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
#endif
    const __m128i sh = _mm_cvtsi32_si128(s);
    size_t g = 0;
    uint64_t hl[4] = {0, 0, 0, 0}; /* the hash stripes (rans_cpu.h), in registers */
    if (hv) memcpy(hl, hv, sizeof hl);
    for (; g < ngroups && end - p >= TP_RANS32_GROUP_BYTES; g++) {
        const __m512i ia = _mm512_and_si512(XA, vmask), ib = _mm512_and_si512(XB, vmask);
        const __m512i ea = _mm512_i32gather_epi32(ia, (const void *)fb, 4);
        const __m512i eb = _mm512_i32gather_epi32(ib, (const void *)fb, 4);
        const __m512i sa = _mm512_i32gather_epi32(ia, (const void *)sym, 1);
        const __m512i sb = _mm512_i32gather_epi32(ib, (const void *)sym, 1);
        XA = _mm512_add_epi32(_mm512_mullo_epi32(_mm512_and_si512(ea, v16), _mm512_srl_epi32(XA, sh)),
                              _mm512_srli_epi32(ea, 16));
        XB = _mm512_add_epi32(_mm512_mullo_epi32(_mm512_and_si512(eb, v16), _mm512_srl_epi32(XB, sh)),
                              _mm512_srli_epi32(eb, 16));
        RENORM16()
        /* the 4-byte gathers bring the next 3 table bytes along: the low byte is the symbol */
        store_syms(_mm512_and_si512(sa, vff), _mm512_and_si512(sb, vff), sym_bits, out, g);
        if (hv) tp_xxh64_group(hl, out, g, sym_bits);
    }
    _mm512_storeu_si512(x, XA);
    _mm512_storeu_si512(x + 16, XB);
    if (hv) memcpy(hv, hl, sizeof hl);
    *pp = p;
    return g;
}

/* scale_bits <= 12: one vpgatherdd per vector from the L1-resident table of the scalar decoder,
 * tab[slot] = (freq - 1) | (slot - cum) << 12 | sym << 24 (16 KB at 12 bits): the lookup, the
 * state update and the symbol in one gather, off any second level. */
size_t TP_RANS_GATHER_NARROW_NAME(uint32_t x[32], const uint8_t **pp, const uint8_t *end, const uint32_t *tab, int s,
                                  int sym_bits, uint8_t *out, size_t ngroups, uint64_t *hv) {
    const uint8_t *p = *pp;
    __m512i XA = _mm512_loadu_si512(x), XB = _mm512_loadu_si512(x + 16);
    const __m512i vmask = _mm512_set1_epi32((int)((1u << s) - 1)), v8 = _mm512_set1_epi32(8);
    const __m512i vL = _mm512_set1_epi32((int)TP_RANS_L), vL2 = _mm512_set1_epi32((int)(TP_RANS_L >> 8));
    const __m512i v12 = _mm512_set1_epi32(0xfff), one = _mm512_set1_epi32(1);
#ifdef TP_RANS_VBMI
    const __m512i vff = _mm512_set1_epi32(0xff);
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
#endif
    const __m128i sh = _mm_cvtsi32_si128(s);
    size_t g = 0;
    uint64_t hl[4] = {0, 0, 0, 0}; /* the hash stripes (rans_cpu.h), in registers */
    if (hv) memcpy(hl, hv, sizeof hl);
    for (; g < ngroups && end - p >= TP_RANS32_GROUP_BYTES; g++) {
        const __m512i ea = _mm512_i32gather_epi32(_mm512_and_si512(XA, vmask), (const void *)tab, 4);
        const __m512i eb = _mm512_i32gather_epi32(_mm512_and_si512(XB, vmask), (const void *)tab, 4);
        XA = _mm512_add_epi32(_mm512_mullo_epi32(_mm512_add_epi32(_mm512_and_si512(ea, v12), one), _mm512_srl_epi32(XA, sh)),
                              _mm512_and_si512(_mm512_srli_epi32(ea, 12), v12));
        XB = _mm512_add_epi32(_mm512_mullo_epi32(_mm512_add_epi32(_mm512_and_si512(eb, v12), one), _mm512_srl_epi32(XB, sh)),
                              _mm512_and_si512(_mm512_srli_epi32(eb, 12), v12));
        RENORM16()
        store_syms(_mm512_srli_epi32(ea, 24), _mm512_srli_epi32(eb, 24), sym_bits, out, g);
        if (hv) tp_xxh64_group(hl, out, g, sym_bits);
    }
    _mm512_storeu_si512(x, XA);
    _mm512_storeu_si512(x + 16, XB);
    if (hv) memcpy(hv, hl, sizeof hl);
    *pp = p;
    return g;
}
