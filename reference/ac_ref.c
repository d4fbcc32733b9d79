/* Reference range coder (arithmetic coding): the adaptive interface and the static order-0 block
 * payload built on it. Format: include/tenpak/entropy.h.
 *
 * Encoder: the code interval is [low, low + range) scaled by 2^(64 + 8 * bytes written), with
 * range in [2^56, 2^64) between symbols. A symbol (cum, freq) of total 2^tb narrows it to
 * [low + r cum, low + r (cum + freq)) with r = range >> tb (>= 2^32 for tb <= 24); the slice of
 * width range - r 2^tb at the top is unused (at most 2^-32 of the range: a negligible loss).
 * low + r cum can pass 2^64: the carry is added to the bytes already written (they can hold it:
 * the true interval never leaves [0, 1)). Renormalisation shifts the top byte out while
 * range < 2^56. The decoder follows code = value - low, so it never sees carries:
 * slot = code / r (< 2^tb on a valid stream), then code -= r cum, range = r freq. */
#include <string.h>

#include "reference/ent_internal.h"

#define TOP (1ull << 56)

static int adapt_ok(uint32_t cum, uint32_t freq, int tb) {
    return tb >= 1 && tb <= TP_ENT_ADAPT_MAX_BITS && freq >= 1 && (uint64_t)cum + freq <= (1ull << tb);
}

void tp_ac_enc_init(tp_ac_enc *enc, void *dst, size_t cap) {
    enc->low = 0;
    enc->range = ~0ull;
    enc->buf = dst;
    enc->cap = cap;
    enc->pos = 0;
    enc->err = 0;
}

static void ac_carry(tp_ac_enc *enc) {
    size_t i = enc->pos;
    while (i > 0 && enc->buf[i - 1] == 0xff) enc->buf[--i] = 0;
    if (i == 0) enc->err = 3; /* cannot happen on a correct coder */
    else enc->buf[i - 1]++;
}

static void ac_put(tp_ac_enc *enc, uint8_t b) {
    if (enc->pos >= enc->cap) {
        enc->err = 2;
        return;
    }
    enc->buf[enc->pos++] = b;
}

void tp_ac_encode_sym(tp_ac_enc *enc, uint32_t cum, uint32_t freq, int tb) {
    if (enc->err) return;
    if (!adapt_ok(cum, freq, tb)) {
        enc->err = 1;
        return;
    }
    const uint64_t r = enc->range >> tb;
    const uint64_t low = enc->low + r * cum;
    if (low < enc->low) ac_carry(enc);
    enc->low = low;
    enc->range = r * freq;
    while (enc->range < TOP) {
        ac_put(enc, (uint8_t)(enc->low >> 56));
        enc->low <<= 8;
        enc->range <<= 8;
    }
}

tp_status tp_ac_enc_finish(tp_ac_enc *enc, size_t *len, tp_err *e) {
    *len = 0;
    if (!enc->err) {
        /* the smallest multiple of 2^56 >= low lies inside [low, low + range): range >= 2^56 */
        const uint64_t v = enc->low + (TOP - 1);
        if (v < enc->low) ac_carry(enc);
        ac_put(enc, (uint8_t)(v >> 56));
    }
    if (enc->err == 1) return tp_fail(e, TP_ERR_ARG, "AC: a symbol had freq 0, cum + freq > total or bad total_bits");
    if (enc->err) return tp_fail(e, TP_ERR_ARG, "AC: output buffer of %zu bytes is too small", enc->cap);
    *len = enc->pos;
    return TP_OK;
}

static uint8_t ac_get(tp_ac_dec *dec) { return dec->pos < dec->len ? dec->buf[dec->pos++] : (dec->pos++, 0); }

void tp_ac_dec_init(tp_ac_dec *dec, const void *src, size_t len) {
    dec->buf = src;
    dec->len = len;
    dec->pos = 0;
    dec->err = 0;
    dec->range = ~0ull;
    dec->code = 0;
    dec->target = 0;
    for (int i = 0; i < 8; i++) dec->code = dec->code << 8 | ac_get(dec);
}

uint32_t tp_ac_decode_target(tp_ac_dec *dec, int tb) {
    if (tb < 1 || tb > TP_ENT_ADAPT_MAX_BITS) {
        dec->err = 1;
        return 0;
    }
    uint64_t t = dec->code / (dec->range >> tb);
    if (t >> tb) { /* past the used part of the range: not a valid stream */
        dec->err = 1;
        t = (1ull << tb) - 1;
    }
    dec->target = (uint32_t)t;
    return dec->target;
}

void tp_ac_decode_advance(tp_ac_dec *dec, uint32_t cum, uint32_t freq, int tb) {
    if (!adapt_ok(cum, freq, tb) || dec->target < cum || dec->target - cum >= freq) {
        dec->err = 1;
        return;
    }
    const uint64_t r = dec->range >> tb;
    dec->code -= r * cum;
    dec->range = r * freq;
    while (dec->range < TOP) {
        dec->code = dec->code << 8 | ac_get(dec);
        dec->range <<= 8;
    }
}

tp_status tp_ac_dec_finish(tp_ac_dec *dec, tp_err *e) {
    if (dec->err) return tp_fail(e, TP_ERR_FORMAT, "AC stream is malformed or does not match the model");
    /* the decoder has read 8 bytes ahead of the encoder's renormalisations, the encoder wrote one
     * flush byte: a stream of the right length is read to exactly 7 bytes past its end */
    /* the flush byte is canonical (code = v - low < 2^56): any other final byte is corruption,
     * even where it would decode to the same symbols */
    if (dec->code >= TOP) return tp_fail(e, TP_ERR_FORMAT, "AC stream: non-canonical final byte");
    if (dec->pos != dec->len + 7)
        return tp_fail(e, TP_ERR_FORMAT, "AC stream length mismatch (%zu bytes, the symbols used %zu)",
                       dec->len, dec->pos >= 7 ? dec->pos - 7 : 0);
    return TP_OK;
}

/* ---- static order-0 payload ---- */
int tp_ac_payload_enc_ref(const uint8_t *src, size_t n, const tp_ent_header *h, uint8_t *dst,
                          size_t cap, size_t *len) {
    const size_t count = h->sym_bits == 8 ? n : 2 * n;
    uint32_t cum[257];
    tp_ent_cum(h->freq, h->nsym, cum);
    tp_ac_enc enc;
    tp_ac_enc_init(&enc, dst, cap);
    for (size_t i = 0; i < count && !enc.err; i++) {
        const unsigned sym = tp_ent_sym_at(src, h->sym_bits, i);
        tp_ac_encode_sym(&enc, cum[sym], h->freq[sym], h->scale_bits);
    }
    return tp_ac_enc_finish(&enc, len, NULL) != TP_OK;
}

tp_status tp_ac_payload_dec_ref(const tp_ent_header *h, const uint8_t *payload, uint8_t *dst,
                                tp_err *e) {
    const size_t count = h->sym_bits == 8 ? h->n : 2 * h->n;
    uint32_t cum[257];
    static _Thread_local uint8_t slot2sym[1 << TP_ENT_SCALE_MAX];
    tp_ent_cum(h->freq, h->nsym, cum);
    tp_ent_slot_table(h->freq, h->nsym, h->scale_bits, slot2sym);
    tp_ac_dec dec;
    tp_ac_dec_init(&dec, payload, h->payload_len);
    for (size_t i = 0; i < count; i++) {
        const unsigned sym = slot2sym[tp_ac_decode_target(&dec, h->scale_bits)];
        tp_ac_decode_advance(&dec, cum[sym], h->freq[sym], h->scale_bits);
        if (h->sym_bits == 8) dst[i] = (uint8_t)sym;
        else if (i & 1) dst[i >> 1] |= (uint8_t)(sym << 4);
        else dst[i >> 1] = (uint8_t)sym;
        if (dec.err) return tp_fail(e, TP_ERR_FORMAT, "AC payload is malformed at symbol %zu", i);
    }
    return tp_ac_dec_finish(&dec, e);
}
