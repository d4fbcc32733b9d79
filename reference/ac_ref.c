/* Reference range coder (arithmetic coding): the static order-0 block payload, coded symbol by
 * symbol through the adaptive interface (common/adaptive.c states the coder's invariants).
 * Format: include/tenpak/entropy.h. */
#include "reference/ent_ref.h"

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
