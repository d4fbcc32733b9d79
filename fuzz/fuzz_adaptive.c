/* libFuzzer: the adaptive decoders (tp_ac_dec_*, tp_rans_dec_*) on arbitrary streams, driven by
 * a model that changes every symbol (total 2^tb from the input, alphabets up to 50257), and an
 * encode -> decode round trip of the same symbols that must succeed. */
#include <stdlib.h>
#include <string.h>

#include "tenpak/entropy.h"

enum { V = 50257 };

/* symbol i's distribution: a few heavy symbols and the rest at 1 (sum 2^tb) */
static uint32_t model(uint32_t i, int tb, uint32_t nsym, uint32_t *cdf, uint32_t *f) {
    uint32_t total = 1u << tb, heavy = 1 + i % 7;
    for (uint32_t s = 0; s < nsym; s++) f[s] = 1;
    uint32_t left = total - nsym;
    for (uint32_t h = 0; h < heavy; h++) {
        uint32_t s = (i * 2654435761u + h * 40503u) % nsym, share = h + 1 == heavy ? left : left / 2;
        f[s] += share;
        left -= share;
    }
    tp_ent_cum(f, (int)nsym, cdf);
    return nsym;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    static uint32_t cdf[V + 1], f[V];
    const uint32_t nsym = data[0] & 1 ? V : 1 + data[0] % 256;
    int tb = 17 + data[1] % 8; /* 17..24 */
    if (nsym == V) tb = 16 + (data[1] % 9) ;
    if ((1u << tb) < 2 * nsym) tb = nsym == V ? 17 : tb;
    const uint8_t *s = data + 2;
    size_t len = size - 2, cap_n = nsym == V ? 8 : 64, nd = len < cap_n ? len : cap_n;
    tp_ac_dec ad;
    tp_rans_dec rd;
    tp_err e;
    tp_ac_dec_init(&ad, s, len);
    tp_rans_dec_init(&rd, s, len);
    uint32_t syms[64];
    for (size_t i = 0; i < nd; i++) {
        model((uint32_t)i, tb, nsym, cdf, f);
        uint32_t a = tp_ent_cdf_find(cdf, nsym, tp_ac_decode_target(&ad, tb));
        tp_ac_decode_advance(&ad, cdf[a], f[a], tb);
        uint32_t r = tp_ent_cdf_find(cdf, nsym, tp_rans_decode_target(&rd, tb));
        tp_rans_decode_advance(&rd, cdf[r], f[r], tb);
        syms[i] = a;
    }
    tp_ac_dec_finish(&ad, &e);
    tp_rans_dec_finish(&rd, &e);
    /* round trip of the symbols the AC decoder produced */
    uint8_t buf[64 * 8 + 64];
    size_t la, lr;
    tp_ac_enc ae;
    tp_rans_enc re;
    tp_ac_enc_init(&ae, buf, sizeof buf);
    for (size_t i = 0; i < nd; i++) {
        model((uint32_t)i, tb, nsym, cdf, f);
        tp_ac_encode_sym(&ae, cdf[syms[i]], f[syms[i]], tb);
    }
    if (tp_ac_enc_finish(&ae, &la, &e) != TP_OK) abort();
    tp_ac_dec_init(&ad, buf, la);
    for (size_t i = 0; i < nd; i++) {
        model((uint32_t)i, tb, nsym, cdf, f);
        uint32_t a = tp_ent_cdf_find(cdf, nsym, tp_ac_decode_target(&ad, tb));
        if (a != syms[i]) abort();
        tp_ac_decode_advance(&ad, cdf[a], f[a], tb);
    }
    if (tp_ac_dec_finish(&ad, &e) != TP_OK) abort();
    tp_rans_enc_init(&re, buf, sizeof buf);
    for (size_t i = nd; i-- > 0;) {
        model((uint32_t)i, tb, nsym, cdf, f);
        tp_rans_encode_sym(&re, cdf[syms[i]], f[syms[i]], tb);
    }
    if (tp_rans_enc_finish(&re, &lr, &e) != TP_OK) abort();
    tp_rans_dec_init(&rd, buf, lr);
    for (size_t i = 0; i < nd; i++) {
        model((uint32_t)i, tb, nsym, cdf, f);
        uint32_t r = tp_ent_cdf_find(cdf, nsym, tp_rans_decode_target(&rd, tb));
        if (r != syms[i]) abort();
        tp_rans_decode_advance(&rd, cdf[r], f[r], tb);
    }
    if (tp_rans_dec_finish(&rd, &e) != TP_OK) abort();
    return 0;
}
