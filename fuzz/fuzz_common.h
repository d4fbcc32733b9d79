/* Shared by the fuzz targets. An input whose first byte is even is a block, decoded as is. An odd
 * first byte makes a valid block first (params from bytes 1..3, data from byte 8 on) and then
 * damages it at a position/value from bytes 4..7 (or not at all), so the fuzzer reaches deep into
 * the payload decoders instead of stopping at the header checks. */
#ifndef TENPAK_FUZZ_COMMON_H
#define TENPAK_FUZZ_COMMON_H
#include <stdlib.h>
#include <string.h>

#include "tenpak/entropy.h"

#define FUZZ_MAX_N (1u << 20)

/* Returns a malloc'd block in *blk (len *len); *intact = 1 if it is undamaged (must decode). */
static inline uint8_t *fuzz_block(const uint8_t *data, size_t size, size_t *len, int *intact) {
    *intact = 0;
    if (size == 0 || !(data[0] & 1)) {
        uint8_t *b = malloc(size ? size : 1);
        if (size) memcpy(b, data, size);
        *len = size;
        return b;
    }
    if (size < 8) return NULL;
    tp_ent_params p;
    tp_ent_params_default(&p, data[1] & 1 ? TP_ENT_AC : TP_ENT_RANS);
    if (p.coder == TP_ENT_RANS) p.lanes = data[1] & 2 ? 32 : 1 + (data[1] >> 2) % 64;
    p.scale_bits = data[2] % 16;
    p.sym_bits = data[3] & 1 ? 4 : 8;
    const uint8_t *src = data + 8;
    size_t n = size - 8, cap = tp_ent_bound(n);
    uint8_t *b = malloc(cap);
    tp_err e;
    if (tp_ent_encode_ref(src, n, &p, b, cap, len, &e) != TP_OK) { /* e.g. scale too small */
        free(b);
        return NULL;
    }
    size_t pos = ((size_t)data[4] | (size_t)data[5] << 8) % *len;
    if (data[7]) b[pos] ^= data[7];
    *intact = data[7] == 0;
    (void)data[6];
    return b;
}

/* Decode with fn; an intact block must decode to n bytes. Returns the status. */
static inline tp_status fuzz_decode(tp_status (*fn)(const void *, size_t, void *, size_t, size_t *, tp_err *),
                             const uint8_t *blk, size_t len, uint8_t **out, size_t *n) {
    tp_ent_header h;
    tp_err e;
    *out = NULL;
    *n = 0;
    if (tp_ent_parse_header(blk, len, &h, &e) != TP_OK) return TP_ERR_FORMAT;
    if (h.n > FUZZ_MAX_N) return TP_ERR_ARG; /* single-symbol streams can claim huge n cheaply */
    *out = malloc(h.n ? h.n : 1);
    return fn(blk, len, *out, h.n, n, &e);
}
#endif
