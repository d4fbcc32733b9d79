/* Reference rANS (the specification; slow on purpose): the static order-0 block payload with N
 * interleaved 32-bit states and byte-wise renormalisation, and the adaptive 64-bit coder whose
 * model the caller supplies symbol by symbol. Format: include/tenpak/entropy.h.
 *
 * Static coder, state x in [L, 256 L) with L = 2^23, frequencies summing to 2^s (s <= 15):
 *   encode C(x) = (x / f) * 2^s + x % f + cum      decode D(x) = f * (x >> s) + (x & (2^s-1)) - cum
 * D(C(x)) = x exactly. C(x) < 256 L iff x < x_max = f * 2^(31 - s), so before encoding the
 * encoder shifts bytes out (low byte first) while x >= x_max; since x < 2^31 and f >= 1 that is
 * at most two bytes, and afterwards x >= x_max / 256, so C(x) >= L. The decoder after D has
 * D(x) = the encoder's shifted state < L exactly when bytes were shifted out, and shifting them
 * back in (the last one out is the first one in) restores the state before: the decoder's
 * "while x < L read a byte" mirrors the encoder's "while x >= x_max write a byte".
 * Interleaving: lane j codes symbols j, j+N, j+2N, ...; within a group of N symbols the decoder
 * reads round-1 bytes for every lane that needs one, in lane order, then round-2 bytes; the
 * encoder (which runs backwards) writes exactly that order reversed. */
#include <string.h>

#include "reference/ent_internal.h"

/* ---- static order-0, N lanes ---- */
int tp_rans_payload_enc_ref(const uint8_t *src, size_t n, const tp_ent_header *h, uint8_t *dst,
                            size_t cap, size_t *len) {
    const int N = h->lanes, s = h->scale_bits;
    const size_t count = h->sym_bits == 8 ? n : 2 * n;
    uint32_t cum[257], x[TP_ENT_MAX_LANES];
    tp_ent_cum(h->freq, h->nsym, cum);
    for (int j = 0; j < N; j++) x[j] = TP_RANS_L; /* the state the decoder must end in */
    uint8_t *p = dst + cap;                        /* the stream grows downwards */
    const size_t ngroups = (count + (size_t)N - 1) / (size_t)N;
    for (size_t g = ngroups; g-- > 0;) {
        const size_t base = g * (size_t)N;
        const int k = count - base < (size_t)N ? (int)(count - base) : N;
        uint8_t r1[TP_ENT_MAX_LANES], r2[TP_ENT_MAX_LANES];
        int nb[TP_ENT_MAX_LANES], need = 0;
        for (int j = 0; j < k; j++) {
            const unsigned sym = tp_ent_sym_at(src, h->sym_bits, base + (size_t)j);
            const uint64_t x_max = (uint64_t)h->freq[sym] << (31 - s);
            uint8_t out[2];
            nb[j] = 0;
            while (x[j] >= x_max) { /* at most twice: x < 2^31, x_max >= 2^(31-s) >= 2^16 */
                out[nb[j]++] = (uint8_t)x[j];
                x[j] >>= 8;
            }
            r1[j] = nb[j] == 2 ? out[1] : out[0]; /* read first by the decoder */
            r2[j] = out[0];
            need += nb[j];
        }
        if (p - dst < need) return 1;
        for (int j = k - 1; j >= 0; j--)
            if (nb[j] == 2) *--p = r2[j];
        for (int j = k - 1; j >= 0; j--)
            if (nb[j] >= 1) *--p = r1[j];
        for (int j = 0; j < k; j++) {
            const unsigned sym = tp_ent_sym_at(src, h->sym_bits, base + (size_t)j);
            const uint32_t f = h->freq[sym];
            x[j] = ((x[j] / f) << s) + x[j] % f + cum[sym];
        }
    }
    if (p - dst < 4 * N) return 1;
    for (int j = N - 1; j >= 0; j--) {
        p -= 4;
        tp_ent_wr32(p, x[j]);
    }
    *len = (size_t)(dst + cap - p);
    memmove(dst, p, *len);
    return 0;
}

tp_status tp_rans_payload_dec_ref(const tp_ent_header *h, const uint8_t *payload, uint8_t *dst,
                                  tp_err *e) {
    const int N = h->lanes, s = h->scale_bits;
    const uint32_t mask = (1u << s) - 1;
    const size_t count = h->sym_bits == 8 ? h->n : 2 * h->n;
    uint32_t cum[257], x[TP_ENT_MAX_LANES];
    static _Thread_local uint8_t slot2sym[1 << TP_ENT_SCALE_MAX];
    tp_ent_cum(h->freq, h->nsym, cum);
    tp_ent_slot_table(h->freq, h->nsym, s, slot2sym);
    const uint8_t *p = payload, *end = payload + h->payload_len; /* parse_header: >= 4N bytes */
    for (int j = 0; j < N; j++, p += 4) {
        x[j] = tp_ent_rd32(p);
        if (x[j] < TP_RANS_L || x[j] >= 256u * TP_RANS_L)
            return tp_fail(e, TP_ERR_FORMAT, "rANS state %d is 0x%08x, outside [2^23, 2^31)", j, x[j]);
    }
    for (size_t base = 0; base < count; base += (size_t)N) {
        const int k = count - base < (size_t)N ? (int)(count - base) : N;
        for (int j = 0; j < k; j++) {
            const uint32_t slot = x[j] & mask;
            const unsigned sym = slot2sym[slot];
            x[j] = h->freq[sym] * (x[j] >> s) + slot - cum[sym];
            const size_t i = base + (size_t)j;
            if (h->sym_bits == 8) dst[i] = (uint8_t)sym;
            else if (i & 1) dst[i >> 1] |= (uint8_t)(sym << 4);
            else dst[i >> 1] = (uint8_t)sym;
        }
        for (int round = 0; round < 2; round++)
            for (int j = 0; j < k; j++)
                if (x[j] < TP_RANS_L) {
                    if (p == end)
                        return tp_fail(e, TP_ERR_FORMAT, "rANS payload truncated at symbol %zu", base + (size_t)j);
                    x[j] = x[j] << 8 | *p++;
                }
    }
    if (p != end)
        return tp_fail(e, TP_ERR_FORMAT, "rANS payload has %zu bytes left over after the last symbol",
                       (size_t)(end - p));
    for (int j = 0; j < N; j++)
        if (x[j] != TP_RANS_L)
            return tp_fail(e, TP_ERR_FORMAT, "rANS lane %d ends in state 0x%08x, not 2^23", j, x[j]);
    return TP_OK;
}

/* ---- adaptive: 64-bit state in [L64, 2^63), L64 = 2^31, 32-bit words ----
 * Same algebra with 32-bit renormalisation: x_max = f * 2^(63 - total_bits); one word at most. */
#define L64 (1ull << 31)

static int adapt_ok(uint32_t cum, uint32_t freq, int tb) {
    return tb >= 1 && tb <= TP_ENT_ADAPT_MAX_BITS && freq >= 1 && (uint64_t)cum + freq <= (1ull << tb);
}

void tp_rans_enc_init(tp_rans_enc *enc, void *dst, size_t cap) {
    enc->x = L64;
    enc->buf = dst;
    enc->cap = cap;
    enc->p = enc->buf + cap;
    enc->err = 0;
}

void tp_rans_encode_sym(tp_rans_enc *enc, uint32_t cum, uint32_t freq, int tb) {
    if (enc->err) return;
    if (!adapt_ok(cum, freq, tb)) {
        enc->err = 1;
        return;
    }
    uint64_t x = enc->x;
    if (x >= (uint64_t)freq << (63 - tb)) {
        if (enc->p - enc->buf < 4) {
            enc->err = 2;
            return;
        }
        enc->p -= 4;
        tp_ent_wr32(enc->p, (uint32_t)x);
        x >>= 32;
    }
    enc->x = ((x / freq) << tb) + x % freq + cum;
}

tp_status tp_rans_enc_finish(tp_rans_enc *enc, size_t *len, tp_err *e) {
    *len = 0;
    if (enc->err == 1) return tp_fail(e, TP_ERR_ARG, "rANS: a symbol had freq 0, cum + freq > total or bad total_bits");
    if (enc->err || enc->p - enc->buf < 8) return tp_fail(e, TP_ERR_ARG, "rANS: output buffer of %zu bytes is too small", enc->cap);
    enc->p -= 8;
    tp_ent_wr32(enc->p, (uint32_t)enc->x);
    tp_ent_wr32(enc->p + 4, (uint32_t)(enc->x >> 32));
    *len = (size_t)(enc->buf + enc->cap - enc->p);
    memmove(enc->buf, enc->p, *len);
    return TP_OK;
}

void tp_rans_dec_init(tp_rans_dec *dec, const void *src, size_t len) {
    dec->buf = src;
    dec->len = len;
    dec->err = 0;
    dec->x = L64;
    dec->pos = 0;
    if (len < 8) {
        dec->err = 1;
        return;
    }
    dec->x = tp_ent_rd32(dec->buf) | (uint64_t)tp_ent_rd32(dec->buf + 4) << 32;
    dec->pos = 8;
    if (dec->x < L64 || dec->x >> 63) {
        dec->err = 1;
        dec->x = L64;
    }
}

uint32_t tp_rans_decode_target(tp_rans_dec *dec, int tb) {
    if (tb < 1 || tb > TP_ENT_ADAPT_MAX_BITS) {
        dec->err = 1;
        return 0;
    }
    return (uint32_t)(dec->x & ((1ull << tb) - 1));
}

void tp_rans_decode_advance(tp_rans_dec *dec, uint32_t cum, uint32_t freq, int tb) {
    if (!adapt_ok(cum, freq, tb)) {
        dec->err = 1;
        return;
    }
    const uint64_t mask = (1ull << tb) - 1, slot = dec->x & mask;
    if (slot < cum || slot >= (uint64_t)cum + freq) {
        dec->err = 1; /* the caller's symbol does not cover the slot: stream and model disagree */
        return;
    }
    uint64_t x = freq * (dec->x >> tb) + slot - cum;
    if (x < L64) {
        if (dec->len - dec->pos < 4) {
            dec->err = 1;
            x = L64;
        } else {
            x = x << 32 | tp_ent_rd32(dec->buf + dec->pos);
            dec->pos += 4;
        }
    }
    dec->x = x;
}

tp_status tp_rans_dec_finish(tp_rans_dec *dec, tp_err *e) {
    if (dec->err) return tp_fail(e, TP_ERR_FORMAT, "rANS stream is malformed or does not match the model");
    if (dec->x != L64 || dec->pos != dec->len)
        return tp_fail(e, TP_ERR_FORMAT, "rANS stream: final state or length mismatch (%zu of %zu bytes read)",
                       dec->pos, dec->len);
    return TP_OK;
}
