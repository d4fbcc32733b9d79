/* SHA-256 (FIPS 180-4), dependency-free (plain C, or the x86 SHA extensions where present): used to fingerprint model files and data sets
 * in perplexity reports so a number can be traced to the exact bytes that produced it. */
#ifndef TENPAK_SHA256_H
#define TENPAK_SHA256_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tp_sha256_ctx {
    uint32_t h[8];
    uint64_t nbytes;   /* total bytes fed so far */
    uint8_t buf[64];   /* partial block; buf_len < 64 between calls */
    size_t buf_len;
} tp_sha256_ctx;

void tp_sha256_init(tp_sha256_ctx *s);
void tp_sha256_update(tp_sha256_ctx *s, const void *data, size_t len);
void tp_sha256_final(tp_sha256_ctx *s, uint8_t out[32]);
/* One-shot digest. */
void tp_sha256(const void *data, size_t len, uint8_t out[32]);
/* The block function: tp_sha256_set_impl(1) picks the x86 SHA extensions where the CPU has them,
 * (0) the plain C one; returns what it picked (1 / 0). By default the first digest chooses SHA-NI
 * where present unless TENPAK_ISA=portable. The name: "sha-ni" or "portable". */
int tp_sha256_set_impl(int ni);
const char *tp_sha256_impl_name(void);
/* 64 lowercase hex digits + NUL into hex (65 bytes). */
void tp_sha256_hex(const uint8_t digest[32], char hex[65]);

#ifdef __cplusplus
}
#endif
#endif
