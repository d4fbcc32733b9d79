/* The reference payload coders (reference/rans_ref.c, reference/ac_ref.c), any lanes: the block
 * container's reference (reference/ent_ref.c) and the cpu coder's path for lane counts it has no
 * kernel for. */
#ifndef TENPAK_REFERENCE_ENT_REF_H
#define TENPAK_REFERENCE_ENT_REF_H

#include "common/ent_internal.h"

int tp_rans_payload_enc_ref(const uint8_t *src, size_t n, const tp_ent_header *h, uint8_t *dst,
                            size_t cap, size_t *len);
tp_status tp_rans_payload_dec_ref(const tp_ent_header *h, const uint8_t *payload, uint8_t *dst,
                                  tp_err *e);
/* Symbols [first, count) of the h->lanes interleaved lanes (states x, payload p..end, slot2sym the
 * slot -> symbol table, cum the cumulative frequencies) with every bounds check, then the end
 * checks (no byte left, every lane back at 2^23): the reference decoder's loop, and the tail the
 * cpu decoder runs after its unchecked group kernels. */
tp_status tp_rans_dec_rest_ref(const tp_ent_header *h, uint32_t *x, const uint8_t *p, const uint8_t *end,
                               const uint8_t *slot2sym, const uint32_t *cum, size_t first, uint8_t *dst, tp_err *e);
int tp_ac_payload_enc_ref(const uint8_t *src, size_t n, const tp_ent_header *h, uint8_t *dst,
                          size_t cap, size_t *len);
tp_status tp_ac_payload_dec_ref(const tp_ent_header *h, const uint8_t *payload, uint8_t *dst,
                                tp_err *e);

#endif
