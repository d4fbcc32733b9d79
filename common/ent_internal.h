/* Internal interface of the entropy coders: the block container (common/ent_format.c) is shared
 * by the reference and the cpu coder; each supplies its payload encoder/decoder. */
#ifndef TENPAK_COMMON_ENT_INTERNAL_H
#define TENPAK_COMMON_ENT_INTERNAL_H

#include "tenpak/entropy.h"

/* Encode the count symbols of src (n bytes, h->sym_bits) into at most cap bytes at dst using
 * h->freq / h->scale_bits / h->lanes. Returns 0 and *len, or 1 when the payload does not fit in
 * cap (the container then stores the block). */
typedef int (*tp_ent_penc_fn)(const uint8_t *src, size_t n, const tp_ent_header *h, uint8_t *dst,
                              size_t cap, size_t *len);
/* Decode h->n bytes into dst from the payload (h->payload_len bytes). TP_ERR_FORMAT with a
 * message on an inconsistent stream. The container checks the checksum afterwards. */
typedef tp_status (*tp_ent_pdec_fn)(const tp_ent_header *h, const uint8_t *payload, uint8_t *dst,
                                    tp_err *e);

typedef struct tp_ent_impl {
    tp_ent_penc_fn rans_enc, ac_enc;
    tp_ent_pdec_fn rans_dec, ac_dec;
    /* counts of the stream: the cpu coder passes a faster one */
    void (*count)(const uint8_t *src, size_t n, int sym_bits, uint64_t *count);
    /* optional (NULL: rans_dec): rans_dec that also returns the XXH64 of the decoded bytes, which
     * the container then compares with the stored checksum instead of hashing them again */
    tp_status (*rans_dec_sum)(const tp_ent_header *h, const uint8_t *payload, uint8_t *dst, uint64_t *sum,
                              tp_err *e);
} tp_ent_impl;

tp_status tp_ent_encode_with(const tp_ent_impl *im, const void *src, size_t n, const tp_ent_params *p,
                             void *dst, size_t cap, size_t *len, tp_err *e);
tp_status tp_ent_decode_with(const tp_ent_impl *im, const void *src, size_t len, void *dst, size_t cap,
                             size_t *n, tp_err *e);

/* slot -> symbol table, 2^scale_bits entries */
void tp_ent_slot_table(const uint32_t *freq, int nsym, int scale_bits, uint8_t *slot2sym);

/* Symbol i of the stream (bytes or nibbles). */
static inline unsigned tp_ent_sym_at(const uint8_t *src, int sym_bits, size_t i) {
    return sym_bits == 8 ? src[i] : (unsigned)(src[i >> 1] >> ((i & 1) * 4)) & 15u;
}
static inline uint32_t tp_ent_rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void tp_ent_wr32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

#endif
