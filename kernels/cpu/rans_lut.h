/* Table lookups of the 32-lane rANS decoders (kernels/cpu/avx2/rans_avx2.c,
 * kernels/cpu/avx512/rans_avx512.c): eight lanes' slots to general registers, eight scalar loads,
 * the entries back into a vector. Included only by files compiled for AVX2 or above. */
#ifndef TENPAK_KERNELS_CPU_RANS_LUT_H
#define TENPAK_KERNELS_CPU_RANS_LUT_H

#include <immintrin.h>
#include <stdint.h>

/* vpgatherdd is slow on Zen3 (and other AMD cores): with four per group the decoder ran at
 * 0.54 GB/s where the same code with scalar loads runs at 0.93 GB/s (A/B, same machine, same
 * load). The slots go to general registers (vmovq/vpextrq, cheaper than a store and reload) and
 * the entries are inserted into a vector; the eight loads are independent. */
static inline __m256i lut8x(const uint32_t *tab, __m256i I) {
    const __m128i lo = _mm256_castsi256_si128(I), hi = _mm256_extracti128_si256(I, 1);
    const uint64_t a = (uint64_t)_mm_cvtsi128_si64(lo), b = (uint64_t)_mm_extract_epi64(lo, 1);
    const uint64_t c = (uint64_t)_mm_cvtsi128_si64(hi), d = (uint64_t)_mm_extract_epi64(hi, 1);
    return _mm256_setr_epi32((int)tab[(uint32_t)a], (int)tab[a >> 32], (int)tab[(uint32_t)b], (int)tab[b >> 32],
                             (int)tab[(uint32_t)c], (int)tab[c >> 32], (int)tab[(uint32_t)d], (int)tab[d >> 32]);
}

/* scale_bits 13..15: two levels, both L1-resident: sym[slot] (bytes, 2^s) and per symbol
 * fc[sym] = freq | cum << 16; x' = freq (x >> s) + slot - cum. The symbol bytes go straight to
 * the output from general registers. wiki.test.raw (scale 15), Zen 4, one thread: 0.97-1.0 GB/s;
 * one table of freq | (slot - cum) << 16 (128 KB at 15 bits, L2) with the symbols read back
 * from stored slots ran at 0.82, 64-bit entries carrying the symbol (256 KB) at 0.76-0.86. */
static inline __m256i lut8x2(const uint8_t *sym, const uint32_t *fc, __m256i I, uint8_t *o) {
    const __m128i lo = _mm256_castsi256_si128(I), hi = _mm256_extracti128_si256(I, 1);
    const uint64_t a = (uint64_t)_mm_cvtsi128_si64(lo), b = (uint64_t)_mm_extract_epi64(lo, 1);
    const uint64_t c = (uint64_t)_mm_cvtsi128_si64(hi), d = (uint64_t)_mm_extract_epi64(hi, 1);
    const unsigned s0 = sym[(uint32_t)a], s1 = sym[a >> 32], s2 = sym[(uint32_t)b], s3 = sym[b >> 32];
    const unsigned s4 = sym[(uint32_t)c], s5 = sym[c >> 32], s6 = sym[(uint32_t)d], s7 = sym[d >> 32];
    o[0] = (uint8_t)s0, o[1] = (uint8_t)s1, o[2] = (uint8_t)s2, o[3] = (uint8_t)s3;
    o[4] = (uint8_t)s4, o[5] = (uint8_t)s5, o[6] = (uint8_t)s6, o[7] = (uint8_t)s7;
    return _mm256_setr_epi32((int)fc[s0], (int)fc[s1], (int)fc[s2], (int)fc[s3], (int)fc[s4], (int)fc[s5],
                             (int)fc[s6], (int)fc[s7]);
}

#endif
