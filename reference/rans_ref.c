/* Reference rANS (the specification; slow on purpose): the static order-0 block payload with N
 * interleaved 32-bit states and byte-wise renormalisation. Format: include/tenpak/entropy.h. The
 * adaptive 64-bit coder on the same algebra: common/adaptive.c.
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

#include "reference/ent_ref.h"

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

tp_status tp_rans_dec_rest_ref(const tp_ent_header *h, uint32_t *x, const uint8_t *p, const uint8_t *end,
                               const uint8_t *slot2sym, const uint32_t *cum, size_t first, uint8_t *dst, tp_err *e) {
    const int N = h->lanes, s = h->scale_bits;
    const uint32_t mask = (1u << s) - 1;
    const size_t count = h->sym_bits == 8 ? h->n : 2 * h->n;
    for (size_t base = first; base < count; base += (size_t)N) {
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

tp_status tp_rans_payload_dec_ref(const tp_ent_header *h, const uint8_t *payload, uint8_t *dst,
                                  tp_err *e) {
    const int N = h->lanes, s = h->scale_bits;
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
    return tp_rans_dec_rest_ref(h, x, p, end, slot2sym, cum, 0, dst, e);
}
