/* AVX-512 decoders of the 32-lane rANS (format: include/tenpak/entropy.h) for scale_bits 13..15:
 * two vectors of sixteen 32-bit states, lane j of vector v is rANS lane 16v + j. The same steps
 * and byte order as the AVX2 decoder (kernels/cpu/avx2/rans_avx2.c, which has the description).
 * Two table lookups, chosen at run time (tp_ent_rans_lookup, kernels/cpu/rans_cpu.c):
 *   - scalar (this file's tp_rans32_dec_groups_wide_avx512, the default): scalar loads,
 *     eight lanes at a time (rans_lut.h's lut8x2: the symbol from a byte table, then its
 *     freq | cum << 16; gathers are slow on AMD cores);
 *   - gather (TENPAK_RANS_LOOKUP=gather): rans_avx512_body.h's gather decoder, instantiated here for
 *     this level and in kernels/cpu/avx512vbmi/rans_avx512vbmi.c with a vpermb renormalisation.
 * Renormalisation: RENORM16 of rans_avx512_body.h (masks in mask registers, known up front; each
 * round's bytes one 16-byte load spread to the needy lanes by vpexpandd).
 * wiki.test.raw (scale 15), one thread, `tenpak entropy encode --coder rans --repeat 9`:
 *   Zen 4, scalar: 1.03-1.05 GB/s against AVX2's 0.97-1.01 (four alternating runs of 41);
 *     the gather decoder 0.75-0.79 (TENPAK_RANS_LOOKUP=gather, both levels; five alternating
 *     runs, busy host);
 *   Intel Xeon (model 207, Emerald Rapids, KVM; issue 15), scalar: 0.69-0.73 GB/s. llvm-mca 14's
 *     Sapphire Rapids model puts this loop at 96 cycles a group of 32 symbols (2.1 GHz would give
 *     the measured speed: it is latency-bound, the extract/insert chain of the lookups), the
 *     gather decoder at 70 (68 with vpermb); timed on the GPU machine's Xeon (reports/gpu/run17,
 *     one thread): scalar 580-658 MB/s, gather 565-616 (vpermb) and 584-600: not faster, so not
 *     the default.
 * The same scheme for scale_bits <= 12 (one packed table, symbols by vpmovdb) was slower than
 * AVX2 on Zen 4 (1.08-1.12 vs 1.17-1.23 GB/s) and is not kept.
 * A group reads at most 64 payload bytes (the 16-byte loads start at most 48 bytes in), inside
 * the caller's TP_RANS32_GROUP_BYTES (72) margin. */
#include <immintrin.h>
#include <string.h>

#define TP_RANS_GATHER_NAME tp_rans32_dec_groups_wide_gather_avx512
#define TP_RANS_GATHER_NARROW_NAME tp_rans32_dec_groups_gather_avx512
#include "kernels/cpu/avx512/rans_avx512_body.h"
#include "kernels/cpu/rans_lut.h"

static inline __m512i lut16x2(const uint8_t *sym, const uint32_t *fc, __m512i I, uint8_t *o) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(lut8x2(sym, fc, _mm512_castsi512_si256(I), o)),
                              lut8x2(sym, fc, _mm512_extracti64x4_epi64(I, 1), o + 8), 1);
}

/* scale_bits 13..15: sym[slot], fc[sym] = freq | cum << 16 (lut8x2) */
size_t tp_rans32_dec_groups_wide_avx512(uint32_t x[32], const uint8_t **pp, const uint8_t *end,
                                        const uint8_t *sym, const uint32_t *fc, int s, int sym_bits,
                                        uint8_t *out, size_t ngroups, uint64_t *hv) {
    const uint8_t *p = *pp;
    __m512i XA = _mm512_loadu_si512(x), XB = _mm512_loadu_si512(x + 16);
    const __m512i vmask = _mm512_set1_epi32((int)((1u << s) - 1)), v8 = _mm512_set1_epi32(8);
    const __m512i vL = _mm512_set1_epi32((int)TP_RANS_L), vL2 = _mm512_set1_epi32((int)(TP_RANS_L >> 8));
    const __m512i v16 = _mm512_set1_epi32(0xffff);
    const __m128i sh = _mm_cvtsi32_si128(s);
    size_t g = 0;
    uint64_t hl[4] = {0, 0, 0, 0}; /* the hash stripes (rans_cpu.h), in registers */
    if (hv) memcpy(hl, hv, sizeof hl);
    uint8_t sy[32];
    for (; g < ngroups && end - p >= TP_RANS32_GROUP_BYTES; g++) {
        uint8_t *o = sym_bits == 8 ? out + 32 * g : sy;
        const __m512i ia = _mm512_and_si512(XA, vmask), ib = _mm512_and_si512(XB, vmask);
        const __m512i ea = lut16x2(sym, fc, ia, o), eb = lut16x2(sym, fc, ib, o + 16);
        XA = _mm512_add_epi32(_mm512_mullo_epi32(_mm512_and_si512(ea, v16), _mm512_srl_epi32(XA, sh)),
                              _mm512_sub_epi32(ia, _mm512_srli_epi32(ea, 16)));
        XB = _mm512_add_epi32(_mm512_mullo_epi32(_mm512_and_si512(eb, v16), _mm512_srl_epi32(XB, sh)),
                              _mm512_sub_epi32(ib, _mm512_srli_epi32(eb, 16)));
        RENORM16()
        if (sym_bits == 4)
            for (int j = 0; j < 16; j++) out[16 * g + (size_t)j] = (uint8_t)(sy[2 * j] | sy[2 * j + 1] << 4);
        if (hv) tp_xxh64_group(hl, out, g, sym_bits);
    }
    _mm512_storeu_si512(x, XA);
    _mm512_storeu_si512(x + 16, XB);
    if (hv) memcpy(hv, hl, sizeof hl);
    *pp = p;
    return g;
}
