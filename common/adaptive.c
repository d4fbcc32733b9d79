/* The adaptive coders (include/tenpak/entropy.h, "adaptive coding"): the model is the caller's,
 * symbol by symbol; pipeline/lmzip.c drives them with a language model. The static block
 * payloads built on the same algebra are the references in reference/rans_ref.c and
 * reference/ac_ref.c.
 *
 * rANS: 64-bit state in [L64, 2^63), L64 = 2^31, 32-bit words. The static coder's algebra
 * (reference/rans_ref.c states it) with 32-bit renormalisation: x_max = f * 2^(63 - total_bits);
 * one word at most.
 *
 * Range coder (arithmetic coding). Encoder: the code interval is [low, low + range) scaled by
 * 2^(64 + 8 * bytes written), with range in [2^56, 2^64) between symbols. A symbol (cum, freq) of
 * total 2^tb narrows it to [low + r cum, low + r (cum + freq)) with r = range >> tb (>= 2^32 for
 * tb <= 24); the slice of width range - r 2^tb at the top is unused (at most 2^-32 of the range: a
 * negligible loss). low + r cum can pass 2^64: the carry is added to the bytes already written
 * (they can hold it: the true interval never leaves [0, 1)). Renormalisation shifts the top byte
 * out while range < 2^56. The decoder follows code = value - low, so it never sees carries:
 * slot = code / r (< 2^tb on a valid stream), then code -= r cum, range = r freq. */
#include <string.h>

#include "common/ent_internal.h"

/* a symbol (cum, freq) of total 2^tb that both coders can code */
static int adapt_ok(uint32_t cum, uint32_t freq, int tb) {
    return tb >= 1 && tb <= TP_ENT_ADAPT_MAX_BITS && freq >= 1 && (uint64_t)cum + freq <= (1ull << tb);
}

/* ---- rANS ---- */
#define L64 (1ull << 31)

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

/* ---- range coder ---- */
#define TOP (1ull << 56)

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
