/* SHA-256 per FIPS 180-4. Processes whole 64-byte blocks straight from the caller's buffer and
 * keeps only a partial block between calls. Two block functions: plain C (the definition, every
 * host) and the x86 SHA extensions (SHA-NI: Zen and later, Intel since Ice Lake / Goldmont), chosen
 * once at run time; TENPAK_ISA=portable keeps the plain one. The two give the same digests
 * (verify/test_pipeline_sha256.c runs every vector through both and compares them on random data).
 * Fingerprinting TinyLlama's 2.2 GB of shards was 27% of `tenpak compress` with the plain path. */
#include "tenpak/sha256.h"

#include <stdio.h>
#include <string.h>

#include "tenpak/tenpak.h"
#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static inline uint32_t ror(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void block(uint32_t h[8], const uint8_t *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
               (uint32_t)p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = k + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
}

static void blocks_c(uint32_t h[8], const uint8_t *p, size_t n) {
    for (; n; n--, p += 64) block(h, p);
}

#if defined(__x86_64__)
/* SHA-NI: the state as ABEF / CDGH, two rounds per sha256rnds2, the message schedule of each group
 * of four words W[4g..4g+3] (g >= 4) from the four before it by sha256msg1 / sha256msg2. */
__attribute__((target("sha,sse4.1,ssse3"))) static void blocks_ni(uint32_t h[8], const uint8_t *p, size_t n) {
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i t = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)h), 0xB1);       /* C D A B */
    __m128i s1 = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)(h + 4)), 0x1B); /* E F G H */
    __m128i s0 = _mm_alignr_epi8(t, s1, 8);                                           /* A B E F */
    s1 = _mm_blend_epi16(s1, t, 0xF0);                                                /* C D G H */
    for (; n; n--, p += 64) {
        const __m128i a0 = s0, c0 = s1;
        __m128i w[4];
        for (int g = 0; g < 16; g++) {
            __m128i cur;
            if (g < 4) cur = w[g] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * g)), bswap);
            else {
                __m128i x = _mm_sha256msg1_epu32(w[(g - 4) & 3], w[(g - 3) & 3]);
                x = _mm_add_epi32(x, _mm_alignr_epi8(w[(g - 1) & 3], w[(g - 2) & 3], 4));
                cur = w[g & 3] = _mm_sha256msg2_epu32(x, w[(g - 1) & 3]);
            }
            const __m128i m = _mm_add_epi32(cur, _mm_loadu_si128((const __m128i *)(K + 4 * g)));
            s1 = _mm_sha256rnds2_epu32(s1, s0, m);
            s0 = _mm_sha256rnds2_epu32(s0, s1, _mm_shuffle_epi32(m, 0x0E));
        }
        s0 = _mm_add_epi32(s0, a0);
        s1 = _mm_add_epi32(s1, c0);
    }
    t = _mm_shuffle_epi32(s0, 0x1B);                 /* F E B A */
    s1 = _mm_shuffle_epi32(s1, 0xB1);                /* D C H G */
    s0 = _mm_blend_epi16(t, s1, 0xF0);               /* D C B A */
    s1 = _mm_alignr_epi8(s1, t, 8);                  /* H G F E */
    _mm_storeu_si128((__m128i *)h, s0);
    _mm_storeu_si128((__m128i *)(h + 4), s1);
}

static int has_sha_ni(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    if (!(b & (1u << 29))) return 0; /* SHA */
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    return (c & (1u << 19)) && (c & (1u << 9)); /* SSE4.1, SSSE3 */
}
#endif

static int impl = -1; /* -1: not chosen yet; 0: plain C; 1: SHA-NI */

int tp_sha256_set_impl(int ni) {
#if defined(__x86_64__)
    impl = ni && has_sha_ni() ? 1 : 0;
#else
    (void)ni;
    impl = 0;
#endif
    return impl;
}

const char *tp_sha256_impl_name(void) {
    if (impl < 0) tp_sha256_set_impl(tp_cpu_isa() > TP_ISA_PORTABLE);
    return impl == 1 ? "sha-ni" : "portable";
}

static void blocks(uint32_t h[8], const uint8_t *p, size_t n) {
    if (impl < 0) tp_sha256_set_impl(tp_cpu_isa() > TP_ISA_PORTABLE);
#if defined(__x86_64__)
    if (impl == 1) { blocks_ni(h, p, n); return; }
#endif
    blocks_c(h, p, n);
}

void tp_sha256_init(tp_sha256_ctx *s) {
    static const uint32_t H0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, H0, sizeof H0);
    s->nbytes = 0;
    s->buf_len = 0;
}

void tp_sha256_update(tp_sha256_ctx *s, const void *data, size_t len) {
    const uint8_t *p = data;
    s->nbytes += len;
    if (s->buf_len) {
        size_t take = 64 - s->buf_len < len ? 64 - s->buf_len : len;
        memcpy(s->buf + s->buf_len, p, take);
        s->buf_len += take; p += take; len -= take;
        if (s->buf_len < 64) return;
        blocks(s->h, s->buf, 1);
        s->buf_len = 0;
    }
    blocks(s->h, p, len / 64);
    p += len / 64 * 64;
    len %= 64;
    if (len) memcpy(s->buf, p, len);
    s->buf_len = len;
}

void tp_sha256_final(tp_sha256_ctx *s, uint8_t out[32]) {
    uint64_t bits = s->nbytes * 8;
    uint8_t pad[72] = {0x80};
    /* pad to 56 mod 64, then the 64-bit big-endian bit length */
    size_t padlen = (s->buf_len < 56 ? 56 : 120) - s->buf_len;
    for (int i = 0; i < 8; i++) pad[padlen + i] = (uint8_t)(bits >> (56 - 8 * i));
    uint64_t keep = s->nbytes;
    tp_sha256_update(s, pad, padlen + 8);
    s->nbytes = keep;
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(s->h[i] >> 24); out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(s->h[i] >> 8); out[4 * i + 3] = (uint8_t)s->h[i];
    }
}

void tp_sha256(const void *data, size_t len, uint8_t out[32]) {
    tp_sha256_ctx s;
    tp_sha256_init(&s);
    tp_sha256_update(&s, data, len);
    tp_sha256_final(&s, out);
}

void tp_sha256_hex(const uint8_t d[32], char hex[65]) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) { hex[2 * i] = digits[d[i] >> 4]; hex[2 * i + 1] = digits[d[i] & 15]; }
    hex[64] = 0;
}
