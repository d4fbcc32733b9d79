/* cpu range coder for the static order-0 block payload: the reference's arithmetic
 * (reference/ac_ref.c) with the state in registers, the output written without per-byte capacity
 * checks while 16 bytes of room remain, and in the decoder a packed slot table and a branch-free
 * renormalisation. The stream is
 * byte-identical to the reference's. */
#include <string.h>

#include "common/ent_internal.h"

#define TOP (1ull << 56)

int tp_ac_payload_enc_cpu(const uint8_t *src, size_t n, const tp_ent_header *h, uint8_t *dst,
                          size_t cap, size_t *len);
tp_status tp_ac_payload_dec_cpu(const tp_ent_header *h, const uint8_t *payload, uint8_t *dst,
                                tp_err *e);

int tp_ac_payload_enc_cpu(const uint8_t *src, size_t n, const tp_ent_header *h, uint8_t *dst,
                          size_t cap, size_t *len) {
    const int s = h->scale_bits, sb = h->sym_bits;
    const size_t count = sb == 8 ? n : 2 * n;
    uint32_t cum[257];
    tp_ent_cum(h->freq, h->nsym, cum);
    uint64_t low = 0, range = ~0ull;
    size_t pos = 0;
    for (size_t i = 0; i < count; i++) {
        const unsigned sym = tp_ent_sym_at(src, sb, i);
        const uint64_t r = range >> s;
        const uint64_t nl = low + r * cum[sym];
        if (nl < low) { /* carry into the written bytes */
            size_t k = pos;
            while (k > 0 && dst[k - 1] == 0xff) dst[--k] = 0;
            if (k == 0) return 1;
            dst[k - 1]++;
        }
        low = nl;
        range = r * h->freq[sym];
        while (range < TOP) { /* at most 2 bytes per symbol (range >= 2^41) */
            if (pos >= cap) return 1;
            dst[pos++] = (uint8_t)(low >> 56);
            low <<= 8;
            range <<= 8;
        }
    }
    const uint64_t v = low + (TOP - 1);
    if (v < low) {
        size_t k = pos;
        while (k > 0 && dst[k - 1] == 0xff) dst[--k] = 0;
        if (k == 0) return 1;
        dst[k - 1]++;
    }
    if (pos >= cap) return 1;
    dst[pos++] = (uint8_t)(v >> 56);
    *len = pos;
    return 0;
}

/* Decoder: one table load per symbol on the critical path (slot -> cum | freq << 16; the symbol
 * itself comes from a byte table off that path) and, while 8 payload bytes remain, a branch-free
 * renormalisation: after range = r * freq (>= 2^41) the loop would shift in 0, 1 or 2 bytes
 * (two compares), which are read at once from a big-endian 8-byte load. The rest of the payload
 * (and the zeros past its end) go through the reference's byte loop. */
tp_status tp_ac_payload_dec_cpu(const tp_ent_header *h, const uint8_t *payload, uint8_t *dst,
                                tp_err *e) {
    const int s = h->scale_bits, sb = h->sym_bits;
    const size_t count = sb == 8 ? h->n : 2 * h->n, len = h->payload_len;
    uint32_t cum[257];
    static _Thread_local uint32_t tab[1 << TP_ENT_SCALE_MAX];
    static _Thread_local uint8_t symtab[1 << TP_ENT_SCALE_MAX];
    tp_ent_cum(h->freq, h->nsym, cum);
    for (int k = 0; k < h->nsym; k++)
        for (uint32_t slot = cum[k]; slot < cum[k + 1]; slot++) {
            tab[slot] = cum[k] | h->freq[k] << 16; /* cum < 2^15, freq <= 2^15 */
            symtab[slot] = (uint8_t)k;
        }
    size_t pos = 0, i = 0;
    uint64_t code = 0, range = ~0ull;
    for (int k = 0; k < 8; k++) code = code << 8 | (pos < len ? payload[pos] : 0), pos++;
    for (; i < count && len >= 8 && pos <= len - 8; i++) {
        const uint64_t r = range >> s;
        const uint64_t t = code / r;
        if (t >> s) return tp_fail(e, TP_ERR_FORMAT, "AC payload is malformed at symbol %zu", i);
        const uint32_t en = tab[t];
        const unsigned sym = symtab[t];
        if (sb == 8) dst[i] = (uint8_t)sym;
        else if (i & 1) dst[i >> 1] |= (uint8_t)(sym << 4);
        else dst[i >> 1] = (uint8_t)sym;
        code -= r * (en & 0xffff);
        range = r * (en >> 16);
        const unsigned sh = 8u * ((range < TOP) + (range < (TOP >> 8))); /* 0, 8 or 16 */
        uint64_t w;
        memcpy(&w, payload + pos, 8);
        w = __builtin_bswap64(w);
        code = code << sh | (w >> 8) >> (56 - sh);
        range <<= sh;
        pos += sh >> 3;
    }
    for (; i < count; i++) {
        const uint64_t r = range >> s;
        const uint64_t t = code / r;
        if (t >> s) return tp_fail(e, TP_ERR_FORMAT, "AC payload is malformed at symbol %zu", i);
        const unsigned sym = symtab[t];
        code -= r * cum[sym];
        range = r * h->freq[sym];
        while (range < TOP) {
            code = code << 8 | (pos < len ? payload[pos] : 0);
            pos++;
            range <<= 8;
        }
        if (sb == 8) dst[i] = (uint8_t)sym;
        else if (i & 1) dst[i >> 1] |= (uint8_t)(sym << 4);
        else dst[i >> 1] = (uint8_t)sym;
    }
    if (code >= TOP) return tp_fail(e, TP_ERR_FORMAT, "AC stream: non-canonical final byte");
    if (pos != len + 7)
        return tp_fail(e, TP_ERR_FORMAT, "AC stream length mismatch (%zu bytes, the symbols used %zu)", len,
                       pos >= 7 ? pos - 7 : 0);
    return TP_OK;
}
