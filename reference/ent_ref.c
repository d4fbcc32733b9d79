/* The reference block coder: the container (common/ent_format.c) with the reference payload
 * coders (reference/rans_ref.c, reference/ac_ref.c) and the plain order-0 counts. */
#include "reference/ent_ref.h"

static const tp_ent_impl ref_impl = {tp_rans_payload_enc_ref, tp_ac_payload_enc_ref, tp_rans_payload_dec_ref,
                                     tp_ac_payload_dec_ref, tp_ent_count, NULL};

tp_status tp_ent_encode_ref(const void *src, size_t n, const tp_ent_params *p, void *dst, size_t cap,
                            size_t *len, tp_err *e) {
    return tp_ent_encode_with(&ref_impl, src, n, p, dst, cap, len, e);
}
tp_status tp_ent_decode_ref(const void *src, size_t len, void *dst, size_t cap, size_t *n, tp_err *e) {
    return tp_ent_decode_with(&ref_impl, src, len, dst, cap, n, e);
}
