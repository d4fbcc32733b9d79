/* Host emulation of the GPU rANS decoder's warp algorithm (kernels/cuda/rans.cu), checked against
 * the reference decoder on this CPU: the CUDA kernel cannot run here, but its per-lane arithmetic
 * (kernels/cuda/tp_cuda_rans.h: decode, renormalisation needs, ballot prefix offsets, refill) is
 * the same code, and emul_block below walks the kernel's loop step by step: 32 lanes in lock step,
 * ballots as bit masks, the 512-byte staging buffer and its flushes, the nibble pairing of
 * __shfl_down_sync, the truncation and end checks.
 * Also runs the registry op rans_dec/o0_chunks64k's own input (16 MiB) through the emulation and
 * prints its coded size (the bytes model of kernels/cuda/NOTES.md). */
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/tp_cuda_rans.h"
#include "tenpak/entropy.h"
#include "tenpak/registry.h"
#include "verify/test_common.h"

#define STAGE 512

/* One block, as one warp of rans_dec_warp decodes it. Returns a TP_RANS_GPU_* status, or -1 for
 * a block the GPU decoder does not take (prepare rejects it). */
static int emul_block(const uint8_t *blk, size_t len, uint8_t *out) {
    tp_ent_header h;
    if (tp_ent_parse_header(blk, len, &h, NULL) != TP_OK) return -1;
    const uint8_t *p = blk + h.payload_off;
    if (h.coder == TP_ENT_STORED || h.n == 0) {
        memcpy(out, p, h.n);
        return TP_RANS_GPU_OK;
    }
    if (h.coder != TP_ENT_RANS || h.lanes != TP_RANS_GPU_LANES) return -1;
    /* the host's table words (prepare) and the warp's slot table */
    uint32_t fc[256] = {0}, cum = 0;
    static uint8_t tab[1 << TP_ENT_SCALE_MAX];
    for (int k = 0; k < h.nsym; k++) {
        fc[k] = tp_rans_fc_pack(h.freq[k], cum);
        cum += h.freq[k];
    }
    for (int sym = 0; sym < h.nsym; sym++)
        for (uint32_t t = 0; t < (fc[sym] & 0xffffu); t++) tab[(fc[sym] >> 16) + t] = (uint8_t)sym;
    const int s = h.scale_bits, nib = h.sym_bits == 4;
    uint32_t x[32];
    int bad = 0;
    for (int l = 0; l < 32; l++) {
        x[l] = (uint32_t)p[4 * l] | (uint32_t)p[4 * l + 1] << 8 | (uint32_t)p[4 * l + 2] << 16 | (uint32_t)p[4 * l + 3] << 24;
        bad |= x[l] < TP_RANS_L || x[l] >= 256u * TP_RANS_L;
    }
    if (bad) return TP_RANS_GPU_BAD_STATE;
    const uint64_t count = nib ? 2 * h.n : h.n, plen = h.payload_len, ngroups = (count + 31) / 32;
    const int gbytes = nib ? 16 : 32, per_flush = STAGE / gbytes;
    uint8_t stage[STAGE];
    uint64_t pos = 4 * TP_RANS_GPU_LANES, flushed = 0;
    int sl = 0;
    for (uint64_t g = 0; g < ngroups; g++) {
        const uint64_t base = g * 32;
        const int k = count - base < 32 ? (int)(count - base) : 32;
        uint32_t sym[32] = {0}, m1 = 0, m2 = 0;
        int n1[32], n2[32];
        for (int l = 0; l < k; l++) sym[l] = tp_rans_lane_decode(&x[l], tab, fc, s);
        for (int l = 0; l < 32; l++) {
            const int act = l < k;
            if (!nib) {
                if (act) stage[sl * 32 + l] = (uint8_t)sym[l];
            } else {
                const uint32_t hi = sym[l < 31 ? l + 1 : l]; /* __shfl_down_sync(.., 1) */
                if (act && !(l & 1)) stage[sl * 16 + (l >> 1)] = (uint8_t)(sym[l] | hi << 4);
            }
            n1[l] = act && tp_rans_need1(x[l]);
            n2[l] = act && tp_rans_need2(x[l]);
            m1 |= (uint32_t)n1[l] << l; /* __ballot_sync */
            m2 |= (uint32_t)n2[l] << l;
        }
        const uint32_t take = tp_rans_popc(m1) + tp_rans_popc(m2);
        if (pos + take > plen) return TP_RANS_GPU_TRUNCATED;
        for (int l = 0; l < 32; l++) {
            const uint32_t b1 = n1[l] ? p[pos + tp_rans_off1(m1, l)] : 0;
            const uint32_t b2 = n2[l] ? p[pos + tp_rans_off2(m1, m2, l)] : 0;
            x[l] = tp_rans_refill(x[l], n1[l], n2[l], b1, b2);
        }
        pos += take;
        if (++sl == per_flush || g + 1 == ngroups) {
            const uint64_t done = nib ? (base + (unsigned)k) / 2 : base + (unsigned)k;
            const int nb = (int)(done - flushed);
            cr_assert(nb >= 0 && nb <= STAGE, "flush of %d bytes", nb);
            memcpy(out + flushed, stage, (size_t)nb);
            flushed = done;
            sl = 0;
        }
    }
    if (pos != plen) return TP_RANS_GPU_BAD_END;
    for (int l = 0; l < 32; l++)
        if (x[l] != TP_RANS_L) return TP_RANS_GPU_BAD_END;
    return TP_RANS_GPU_OK;
}

/* skewed bytes (geometric over a few dozen symbols) or packed nibbles */
static void skewed(uint8_t *d, size_t n, tp_rng *rng, double q, int nibbles) {
    for (size_t i = 0; i < n; i++) {
        int a = 0, b = 0;
        while (a < 200 && tp_rng_uniform(rng) < q) a++;
        while (b < 15 && tp_rng_uniform(rng) < q) b++;
        d[i] = nibbles ? (uint8_t)(b | ((15 - b + a) & 15) << 4) : (uint8_t)(a * 29 + 3);
    }
}

Test(rans_warp, matches_reference_grid) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 0x7a4b);
    const size_t sizes[] = {0, 1, 2, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255, 256, 257, 1000, 4099, 20011, 65539};
    const int scales[] = {0, 8, 12, 15};
    const double qs[] = {0.3, 0.8, 0.97};
    const size_t maxn = 65539, cap = tp_ent_bound(maxn);
    uint8_t *src = malloc(maxn), *enc = malloc(cap), *ref = malloc(maxn + 1), *emu = malloc(maxn + 1);
    int coded = 0;
    for (int nib = 0; nib < 2; nib++)
        for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++)
            for (int qi = 0; qi < 3; qi++)
                for (int sc = 0; sc < 4; sc++) {
                    const size_t n = sizes[si];
                    skewed(src, n, &rng, qs[qi], nib);
                    tp_ent_params p;
                    tp_ent_params_default(&p, TP_ENT_RANS);
                    p.sym_bits = nib ? 4 : 8;
                    p.scale_bits = scales[sc];
                    size_t len, m;
                    tp_err e;
                    cr_assert_eq(tp_ent_encode_cpu(src, n, &p, enc, cap, &len, &e), TP_OK, "%s", e.msg);
                    cr_assert_eq(tp_ent_decode_ref(enc, len, ref, n, &m, &e), TP_OK, "%s", e.msg);
                    memset(emu, 0xA5, n + 1);
                    const int st = emul_block(enc, len, emu);
                    cr_assert_eq(st, TP_RANS_GPU_OK, "n=%zu sym_bits=%d scale=%d q=%.2f: status %d", n, p.sym_bits,
                                 p.scale_bits, qs[qi], st);
                    cr_assert(!memcmp(emu, ref, n) && emu[n] == 0xA5, "n=%zu sym_bits=%d scale=%d q=%.2f: differs",
                              n, p.sym_bits, p.scale_bits, qs[qi]);
                    coded += enc[5] == TP_ENT_RANS;
                }
    cr_expect_gt(coded, 100, "only %d of the cases were rANS-coded (the rest stored)", coded);
    free(src);
    free(enc);
    free(ref);
    free(emu);
}

/* Damaged streams: the emulation must report them (the device writes the status, fetch fails). */
Test(rans_warp, bad_streams) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 0xbad);
    const size_t n = 20011, cap = tp_ent_bound(n);
    uint8_t *src = malloc(n), *enc = malloc(cap), *emu = malloc(n);
    skewed(src, n, &rng, 0.8, 0);
    tp_ent_params p;
    tp_ent_params_default(&p, TP_ENT_RANS);
    size_t len;
    tp_err e;
    cr_assert_eq(tp_ent_encode_cpu(src, n, &p, enc, cap, &len, &e), TP_OK, "%s", e.msg);
    tp_ent_header h;
    cr_assert_eq(tp_ent_parse_header(enc, len, &h, &e), TP_OK, "%s", e.msg);
    cr_assert_eq(h.coder, TP_ENT_RANS);
    /* an initial state >= 2^31 */
    enc[h.payload_off + 4 * 5 + 3] |= 0x80;
    cr_expect_eq(emul_block(enc, len, emu), TP_RANS_GPU_BAD_STATE);
    enc[h.payload_off + 4 * 5 + 3] &= 0x7f;
    cr_assert_eq(emul_block(enc, len, emu), TP_RANS_GPU_OK);
    /* the last payload byte removed (header and checksum moved to match): truncated */
    uint8_t *t = malloc(len);
    memcpy(t, enc, len);
    memmove(t + len - 9, t + len - 8, 8);
    const uint64_t pl = h.payload_len - 1;
    for (int i = 0; i < 8; i++) t[20 + i] = (uint8_t)(pl >> (8 * i));
    cr_expect_eq(emul_block(t, len - 1, emu), TP_RANS_GPU_TRUNCATED);
    /* one payload byte too many: bytes left over (or a bad final state) */
    uint8_t *u = malloc(len + 1);
    memcpy(u, enc, len - 8);
    u[len - 8] = 0x5a;
    memcpy(u + len - 7, enc + len - 8, 8);
    const uint64_t pu = h.payload_len + 1;
    for (int i = 0; i < 8; i++) u[20 + i] = (uint8_t)(pu >> (8 * i));
    cr_expect_eq(emul_block(u, len + 1, emu), TP_RANS_GPU_BAD_END);
    /* a flipped renormalisation byte in the middle: some check fails, or the data differs (the
     * host's XXH64 check in fetch catches that case) */
    enc[h.payload_off + 128 + (h.payload_len - 128) / 2] ^= 0x10;
    const int st = emul_block(enc, len, emu);
    cr_expect(st != TP_RANS_GPU_OK || memcmp(emu, src, n) != 0, "a flipped payload byte went unnoticed");
    free(src);
    free(enc);
    free(emu);
    free(t);
    free(u);
}

/* The registry op's own input (what the cuda backend decodes): made by the op's setup, re-cut into
 * the same 64 KiB blocks by the same cpu encoder, decoded by the emulation. */
static void op_input(const char *variant, int sym_bits) {
    const tp_op *op = NULL;
    for (size_t i = 0; i < tp_registry_count(); i++) {
        const tp_kernel *k = tp_registry_get(i);
        if (!strcmp(k->op->name, "rans_dec") && !strcmp(k->op->variant, variant)) op = k->op;
    }
    cr_assert(op, "no op rans_dec/%s in the registry", variant);
    const tp_shape sh = TP_SHAPE1(16777216);
    tp_case c;
    cr_assert_eq(tp_case_make(&c, op, &sh, test_seed(), 1), TP_OK);
    const uint8_t *src = c.ref; /* the decoded data = the input */
    const size_t n = c.out_bytes, chunk = 65536, cap = tp_ent_bound(chunk);
    uint8_t *enc = malloc(cap), *emu = malloc(n);
    size_t total = 0, payload = 0, nblk = 0;
    for (size_t a = 0; a < n; a += chunk, nblk++) {
        const size_t m = n - a < chunk ? n - a : chunk;
        tp_ent_params p;
        tp_ent_params_default(&p, TP_ENT_RANS);
        p.sym_bits = sym_bits;
        size_t len;
        tp_err e;
        cr_assert_eq(tp_ent_encode_cpu(src + a, m, &p, enc, cap, &len, &e), TP_OK, "%s", e.msg);
        tp_ent_header h;
        cr_assert_eq(tp_ent_parse_header(enc, len, &h, &e), TP_OK, "%s", e.msg);
        cr_assert_eq(emul_block(enc, len, emu + a), TP_RANS_GPU_OK, "block %zu", nblk);
        total += len;
        payload += h.payload_len;
    }
    cr_assert(!memcmp(emu, src, n), "rans_dec/%s/16777216: the emulation differs from the input", variant);
    fprintf(stderr, "rans_dec/%s/%zu: %zu blocks, %zu block bytes, %zu payload bytes (%.4f payload bytes per decoded byte)\n",
            variant, n, nblk, total, payload, (double)payload / (double)n);
    free(enc);
    free(emu);
    tp_case_free(&c);
}

Test(rans_warp, op_input_text) { op_input("o0_chunks64k", 8); }
Test(rans_warp, op_input_nib) { op_input("o0_nib_chunks64k", 4); }
