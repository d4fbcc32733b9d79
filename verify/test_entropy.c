/* Entropy coders: the registry cases (cpu vs reference, every ISA level, with self-test), round
 * trips over the parameter grid crossing reference and cpu (the cpu decoder on each of its paths:
 * every ISA level, and both AVX-512 table lookups), the wide scales (13..15) on larger inputs, the
 * order-0 bound on >= 1 MB inputs, the adaptive interfaces driven by an order-1 byte model and by
 * a 50257-symbol model, and a corpus of hand-made bad streams (truncations, lying headers, bit
 * flips, random bytes) that every decoder path must reject. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "kernels/cpu/rans_cpu.h"
#include "tenpak/entropy.h"
#include "verify/test_common.h"

Test(entropy, registry_rans) { verify_filter("^rans_"); }
Test(entropy, registry_ac) { verify_filter("^ac_"); }

typedef tp_status (*enc_fn)(const void *, size_t, const tp_ent_params *, void *, size_t, size_t *, tp_err *);
typedef tp_status (*dec_fn)(const void *, size_t, void *, size_t, size_t *, tp_err *);
static const enc_fn encs[2] = {tp_ent_encode_ref, tp_ent_encode_cpu};
static const dec_fn decs[2] = {tp_ent_decode_ref, tp_ent_decode_cpu};

/* The cpu decoder's paths on this machine: every ISA level up to the one in use, and at the
 * AVX-512 levels both table lookups (scalar loads, gathers: include/tenpak/entropy.h). */
typedef struct cpu_path {
    tp_isa isa;
    tp_rans_lookup lookup;
} cpu_path;
static int cpu_paths(cpu_path out[8]) {
    int n = 0;
    for (int isa = (int)tp_cpu_isa(); isa >= 0; isa--)
        for (int l = 0; l < (isa >= TP_ISA_AVX512 ? 2 : 1); l++) out[n++] = (cpu_path){(tp_isa)isa, (tp_rans_lookup)l};
    return n;
}
static void path_name(cpu_path c, char *buf, size_t n) {
    snprintf(buf, n, "%s%s%s", tp_isa_name(c.isa), c.isa >= TP_ISA_AVX512 ? "/" : "",
             c.isa >= TP_ISA_AVX512 ? tp_rans_lookup_name(c.lookup) : "");
}
/* tp_ent_decode_cpu on path c, the ISA level and the lookup put back after */
static tp_status decode_cpu_at(cpu_path c, const void *src, size_t len, void *dst, size_t cap, size_t *n, tp_err *e) {
    const tp_isa isa = tp_cpu_isa();
    const tp_rans_lookup lookup = tp_ent_rans_lookup();
    tp_cpu_set_isa(c.isa);
    tp_ent_set_rans_lookup(c.lookup);
    const tp_status st = tp_ent_decode_cpu(src, len, dst, cap, n, e);
    tp_cpu_set_isa(isa);
    tp_ent_set_rans_lookup(lookup);
    return st;
}

/* skewed bytes: a geometric distribution over a few dozen symbols (entropy ~ 3-5 bits) */
static void skewed(uint8_t *d, size_t n, tp_rng *rng, double q, int nibbles) {
    for (size_t i = 0; i < n; i++) {
        int a = 0, b = 0;
        while (a < 255 && tp_rng_uniform(rng) < q) a++;
        while (b < 15 && tp_rng_uniform(rng) < q) b++;
        d[i] = nibbles ? (uint8_t)(b | ((b + a) & 15) << 4) : (uint8_t)(a * 37 + 11);
    }
}

static void roundtrip(const uint8_t *src, size_t n, const tp_ent_params *p, const char *what) {
    size_t cap = tp_ent_bound(n), len[2], m;
    uint8_t *enc[2] = {malloc(cap), malloc(cap)}, *dec = malloc(n + 1);
    tp_err e;
    for (int k = 0; k < 2; k++)
        cr_assert_eq(encs[k](src, n, p, enc[k], cap, &len[k], &e), TP_OK, "%s: encode %d: %s", what, k, e.msg);
    cr_assert_eq(len[0], len[1], "%s: ref %zu bytes, cpu %zu", what, len[0], len[1]);
    cr_assert(!memcmp(enc[0], enc[1], len[0]), "%s: cpu stream differs from the reference's", what);
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(decs[k](enc[0], len[0], dec, n, &m, &e), TP_OK, "%s: decode %d: %s", what, k, e.msg);
        cr_assert(m == n && !memcmp(dec, src, n), "%s: decode %d differs", what, k);
    }
    /* every path of the cpu decoder (the portable one, AVX2, both AVX-512 lookups) */
    cpu_path paths[8];
    for (int i = 0, np = cpu_paths(paths); i < np; i++) {
        char pn[32];
        path_name(paths[i], pn, sizeof pn);
        memset(dec, 0xA5, n + 1);
        tp_status st = decode_cpu_at(paths[i], enc[0], len[0], dec, n, &m, &e);
        cr_assert_eq(st, TP_OK, "%s: decode at %s: %s", what, pn, e.msg);
        cr_assert(m == n && !memcmp(dec, src, n), "%s: decode at %s differs", what, pn);
    }
    free(enc[0]);
    free(enc[1]);
    free(dec);
}

Test(entropy, roundtrip_grid) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 41);
    const size_t sizes[] = {0, 1, 2, 31, 32, 33, 95, 1000, 4099, 20011};
    const int lanes[] = {1, 2, 7, 32, 64};
    const int scales[] = {8, 12, 15};
    uint8_t *src = malloc(20011);
    for (int nib = 0; nib < 2; nib++)
        for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
            skewed(src, sizes[si], &rng, 0.6, nib);
            for (int sc = 0; sc < 3; sc++) {
                char what[128];
                tp_ent_params p;
                tp_ent_params_default(&p, TP_ENT_AC);
                p.sym_bits = nib ? 4 : 8;
                p.scale_bits = scales[sc];
                snprintf(what, sizeof what, "ac n=%zu scale=%d sym_bits=%d", sizes[si], p.scale_bits, p.sym_bits);
                roundtrip(src, sizes[si], &p, what);
                for (int li = 0; li < 5; li++) {
                    tp_ent_params_default(&p, TP_ENT_RANS);
                    p.sym_bits = nib ? 4 : 8;
                    p.scale_bits = scales[sc];
                    p.lanes = lanes[li];
                    snprintf(what, sizeof what, "rans n=%zu lanes=%d scale=%d sym_bits=%d", sizes[si], p.lanes,
                             p.scale_bits, p.sym_bits);
                    roundtrip(src, sizes[si], &p, what);
                }
            }
        }
    free(src);
}

/* scale_bits 13..15 (the cpu decoder's two-level and gather paths) on inputs of many groups at
 * awkward sizes, over distributions that reach the tables' extremes: a dominant symbol (freq near
 * 2^s), one symbol only (freq = 2^s), every byte value present. */
Test(entropy, wide_scales) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 47);
    const size_t sizes[] = {4133, 65537 + 31, 300007};
    uint8_t *src = malloc(300007);
    for (int nib = 0; nib < 2; nib++)
        for (int dist = 0; dist < 4; dist++)
            for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
                const size_t n = sizes[si];
                if (dist == 0) skewed(src, n, &rng, 0.6, nib);
                else if (dist == 1) skewed(src, n, &rng, 0.05, nib);
                else if (dist == 2) memset(src, nib ? 0x77 : 'e', n);
                else
                    for (size_t i = 0; i < n; i++)
                        src[i] = (uint8_t)(tp_rng_below(&rng, 4) ? tp_rng_below(&rng, 16) : tp_rng_next(&rng));
                for (int scale = 13; scale <= 15; scale++) {
                    char what[128];
                    tp_ent_params p;
                    tp_ent_params_default(&p, TP_ENT_RANS);
                    p.sym_bits = nib ? 4 : 8;
                    p.scale_bits = scale;
                    snprintf(what, sizeof what, "rans n=%zu scale=%d sym_bits=%d distribution %d", n, scale,
                             p.sym_bits, dist);
                    roundtrip(src, n, &p, what);
                }
            }
    free(src);
}

/* One symbol only (freq = 2^s: zero bits a symbol), incompressible data (stored), too many
 * symbols for the scale (error). */
Test(entropy, edge_cases) {
    const size_t n = 100000;
    uint8_t *src = malloc(n), *enc = malloc(tp_ent_bound(n));
    size_t len;
    tp_err e;
    memset(src, 'x', n);
    for (int c = 1; c <= 2; c++) {
        tp_ent_params p;
        tp_ent_params_default(&p, (tp_ent_coder)c);
        roundtrip(src, n, &p, "one symbol");
        cr_assert_eq(tp_ent_encode_cpu(src, n, &p, enc, tp_ent_bound(n), &len, &e), TP_OK);
        cr_expect_lt(len, 200u, "one symbol: %zu bytes", len);
    }
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 42);
    for (size_t i = 0; i < n; i++) src[i] = (uint8_t)tp_rng_next(&rng);
    tp_ent_params p;
    tp_ent_params_default(&p, TP_ENT_RANS);
    roundtrip(src, n, &p, "random bytes");
    cr_assert_eq(tp_ent_encode_cpu(src, n, &p, enc, tp_ent_bound(n), &len, &e), TP_OK);
    cr_expect_eq(enc[5], TP_ENT_STORED, "random bytes should be stored, coder %d", enc[5]);
    cr_expect_eq(len, tp_ent_bound(n));
    p.scale_bits = 7; /* 256 symbols present, 128 slots */
    cr_expect_eq(tp_ent_encode_cpu(src, n, &p, enc, tp_ent_bound(n), &len, &e), TP_ERR_ARG);
    cr_expect_eq(tp_ent_encode_cpu(src, n, &p, enc, 10, &len, &e), TP_ERR_ARG);
    free(src);
    free(enc);
}

/* Coded size on >= 1 MB inputs within 0.5% of the order-0 entropy bound plus the header
 * (fixed header, table, checksum and the rANS states). */
static void check_bound(const uint8_t *src, size_t n, int sym_bits, const char *what) {
    uint64_t cnt[256];
    tp_ent_count(src, n, sym_bits, cnt);
    const double bound_bytes = tp_ent_entropy_bits(cnt, 1 << sym_bits) * (double)(sym_bits == 8 ? n : 2 * n) / 8;
    uint8_t *enc = malloc(tp_ent_bound(n));
    for (int c = 1; c <= 2; c++) {
        tp_ent_params p;
        tp_ent_params_default(&p, (tp_ent_coder)c);
        p.sym_bits = sym_bits;
        size_t len;
        tp_err e;
        cr_assert_eq(tp_ent_encode_cpu(src, n, &p, enc, tp_ent_bound(n), &len, &e), TP_OK, "%s", e.msg);
        tp_ent_header h;
        cr_assert_eq(tp_ent_parse_header(enc, len, &h, &e), TP_OK, "%s", e.msg);
        const double overhead = TP_ENT_HEADER_FIXED + (double)h.table_len + 8 + 4.0 * h.lanes + 1;
        const double payload = (double)len - overhead;
        cr_expect_leq(payload, bound_bytes * 1.005, "%s %s: payload %.0f bytes > order-0 bound %.0f + 0.5%% (%.3f%%)", what,
                      tp_ent_coder_name(h.coder), payload, bound_bytes, 100 * (payload / bound_bytes - 1));
        if (getenv("TENPAK_TEST_VERBOSE"))
            fprintf(stderr, "%s %s: %.3f%% above the order-0 bound\n", what, tp_ent_coder_name(h.coder),
                    100 * (payload / bound_bytes - 1));
    }
    free(enc);
}

/* The decoders' fused XXH64 (kernels/cpu/rans_cpu.h) against the xxhash library: every length 0..300
 * and a random one up to 1 MiB, the stripes stopped at every multiple of 32 (short lengths) or at a
 * random one, on random bytes */
Test(entropy, fused_xxh64_matches_library) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 47);
    const size_t cap = (size_t)1 << 20;
    uint8_t *buf = malloc(cap);
    for (size_t i = 0; i < cap; i++) buf[i] = (uint8_t)tp_rng_next(&rng);
    for (int t = 0; t < 302; t++) {
        const size_t n = t < 301 ? (size_t)t : 1 + tp_rng_below(&rng, (uint32_t)cap - 1);
        const size_t off = tp_rng_below(&rng, 64); /* unaligned starts */
        const uint8_t *d = buf + (n + off <= cap ? off : 0);
        const uint64_t want = XXH64(d, n, 0);
        const size_t nstop = t < 301 ? n / 32 + 1 : 1;
        for (size_t k = 0; k < nstop; k++) {
            const size_t done = t < 301 ? 32 * k : 32 * tp_rng_below(&rng, (uint32_t)(n / 32 + 1));
            uint64_t v[4];
            tp_xxh64_init(v);
            for (size_t q = 0; q < done; q += 32) tp_xxh64_stripe(v, d + q);
            const uint64_t got = tp_xxh64_finish(v, d, done, n);
            cr_assert_eq(got, want, "n %zu, %zu bytes striped first: %016llx, XXH64 %016llx", n, done,
                         (unsigned long long)got, (unsigned long long)want);
        }
    }
    free(buf);
}

Test(entropy, order0_bound) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 43);
    const size_t n = 1 << 20;
    uint8_t *src = malloc(n);
    skewed(src, n, &rng, 0.8, 0);
    check_bound(src, n, 8, "geometric(0.8) bytes");
    skewed(src, n, &rng, 0.5, 1);
    check_bound(src, n, 4, "nibbles");
    free(src);
}

Test(entropy, order0_bound_wikitext) {
    char path[4096];
    snprintf(path, sizeof path, "%s/datasets/wikitext-2-raw/wiki.test.raw", tp_shared_dir());
    tp_err e;
    size_t len;
    uint8_t *text = tp_read_file(path, &len, &e);
    if (!text) cr_skip_test("wikitext absent: %s", e.msg);
    check_bound(text, len, 8, "wiki.test.raw");
    free(text);
}

/* ---- adaptive interfaces: an order-1 byte model ---- */
typedef struct o1model {
    uint32_t cnt[256][256];
    uint32_t tot[256];
} o1model;

/* Frequencies of context ctx summing to 2^16, every symbol >= 1: 1 + count share, the rounding
 * remainder to the most frequent symbol (lowest on ties). cum has 257 entries. */
static void o1_cdf(const o1model *m, int ctx, uint32_t *cum) {
    const uint32_t R = 65536 - 256;
    uint32_t f[256], sum = 0, best = 0;
    for (int s = 0; s < 256; s++) {
        f[s] = 1 + (uint32_t)((uint64_t)m->cnt[ctx][s] * R / (m->tot[ctx] ? m->tot[ctx] : 1));
        sum += f[s];
        if (m->cnt[ctx][s] > m->cnt[ctx][best]) best = (uint32_t)s;
    }
    f[best] += 65536 - sum;
    tp_ent_cum(f, 256, cum);
}
static void o1_update(o1model *m, int ctx, int s) {
    m->cnt[ctx][s] += 24;
    m->tot[ctx] += 24;
    if (m->tot[ctx] > 60000) {
        m->tot[ctx] = 0;
        for (int k = 0; k < 256; k++) m->tot[ctx] += (m->cnt[ctx][k] = (m->cnt[ctx][k] + 1) / 2);
    }
}

Test(entropy, adaptive_order1) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 44);
    char path[4096];
    snprintf(path, sizeof path, "%s/datasets/wikitext-2-raw/wiki.test.raw", tp_shared_dir());
    tp_err e;
    size_t n;
    uint8_t *text = tp_read_file(path, &n, &e), *fallback = NULL;
    if (!text) { /* synthetic order-1 data: the next byte depends on the previous one */
        n = 100000;
        text = fallback = malloc(n);
        text[0] = 'a';
        for (size_t i = 1; i < n; i++) text[i] = (uint8_t)(text[i - 1] * 7 + (tp_rng_below(&rng, 4) == 0 ? tp_rng_below(&rng, 5) : 1));
    }
    if (n > 100000) n = 100000;
    o1model *m = calloc(1, sizeof *m);
    uint32_t(*cums)[2] = malloc(n * sizeof *cums), cum[257];
    size_t cap = n + 64, len_ac, len_rans;
    uint8_t *ac = malloc(cap), *rans = malloc(cap), *dec = malloc(n);
    /* model pass: remember (cum, freq) for rANS's reverse order; AC codes on the fly */
    tp_ac_enc ae;
    tp_ac_enc_init(&ae, ac, cap);
    for (size_t i = 0; i < n; i++) {
        int ctx = i ? text[i - 1] : 0;
        o1_cdf(m, ctx, cum);
        cums[i][0] = cum[text[i]];
        cums[i][1] = cum[text[i] + 1] - cum[text[i]];
        tp_ac_encode_sym(&ae, cums[i][0], cums[i][1], 16);
        o1_update(m, ctx, text[i]);
    }
    cr_assert_eq(tp_ac_enc_finish(&ae, &len_ac, &e), TP_OK, "%s", e.msg);
    tp_rans_enc re;
    tp_rans_enc_init(&re, rans, cap);
    for (size_t i = n; i-- > 0;) tp_rans_encode_sym(&re, cums[i][0], cums[i][1], 16);
    cr_assert_eq(tp_rans_enc_finish(&re, &len_rans, &e), TP_OK, "%s", e.msg);
    /* order-1 must beat the order-0 entropy on text */
    uint64_t cnt[256];
    tp_ent_count(text, n, 8, cnt);
    double o0 = tp_ent_entropy_bits(cnt, 256) * (double)n / 8;
    cr_expect_lt((double)len_ac, o0, "AC order-1: %zu bytes >= order-0 bound %.0f", len_ac, o0);
    cr_expect_lt((double)len_rans, o0, "rANS order-1: %zu bytes >= order-0 bound %.0f", len_rans, o0);
    cr_expect_lt(fabs((double)len_ac - (double)len_rans), 16 + 0.001 * (double)len_ac, "AC %zu vs rANS %zu", len_ac, len_rans);
    /* decode both with the model run again, symbol by symbol (binary search in the cdf) */
    for (int which = 0; which < 2; which++) {
        memset(m, 0, sizeof *m);
        tp_ac_dec ad;
        tp_rans_dec rd;
        if (which == 0) tp_ac_dec_init(&ad, ac, len_ac);
        else tp_rans_dec_init(&rd, rans, len_rans);
        for (size_t i = 0; i < n; i++) {
            int ctx = i ? dec[i - 1] : 0;
            o1_cdf(m, ctx, cum);
            uint32_t t = which == 0 ? tp_ac_decode_target(&ad, 16) : tp_rans_decode_target(&rd, 16);
            uint32_t s = tp_ent_cdf_find(cum, 256, t);
            if (which == 0) tp_ac_decode_advance(&ad, cum[s], cum[s + 1] - cum[s], 16);
            else tp_rans_decode_advance(&rd, cum[s], cum[s + 1] - cum[s], 16);
            dec[i] = (uint8_t)s;
            o1_update(m, ctx, (int)s);
        }
        cr_assert_eq(which == 0 ? tp_ac_dec_finish(&ad, &e) : tp_rans_dec_finish(&rd, &e), TP_OK, "%s", e.msg);
        cr_assert(!memcmp(dec, text, n), "%s order-1 round trip differs", which ? "rANS" : "AC");
    }
    /* truncated streams are reported at finish (or decode garbage), never read out of bounds */
    for (size_t cut = 0; cut < 64 && cut < len_rans; cut += 7) {
        tp_rans_dec rd;
        tp_ac_dec ad;
        tp_rans_dec_init(&rd, rans, len_rans - cut - 1);
        tp_ac_dec_init(&ad, ac, len_ac - cut - 1);
        memset(m, 0, sizeof *m);
        for (size_t i = 0; i < n; i++) {
            int ctx = i ? text[i - 1] : 0;
            o1_cdf(m, ctx, cum);
            uint32_t s = tp_ent_cdf_find(cum, 256, tp_rans_decode_target(&rd, 16));
            tp_rans_decode_advance(&rd, cum[s], cum[s + 1] - cum[s], 16);
            s = tp_ent_cdf_find(cum, 256, tp_ac_decode_target(&ad, 16));
            tp_ac_decode_advance(&ad, cum[s], cum[s + 1] - cum[s], 16);
            o1_update(m, ctx, text[i]);
        }
        cr_expect_neq(tp_rans_dec_finish(&rd, &e), TP_OK, "rANS cut %zu accepted", cut + 1);
        cr_expect_neq(tp_ac_dec_finish(&ad, &e), TP_OK, "AC cut %zu accepted", cut + 1);
    }
    free(m);
    free(cums);
    free(ac);
    free(rans);
    free(dec);
    free(text == fallback ? fallback : text);
}

/* A language-model-sized alphabet: 50257 symbols, total 2^24, a different Zipf-shaped
 * distribution at every step (as a model's softmax would give). */
Test(entropy, adaptive_large_alphabet) {
    enum { V = 50257, N = 500, TB = 24 };
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 45);
    uint32_t *cdf = malloc((V + 1) * sizeof *cdf), *f = malloc(V * sizeof *f);
    uint32_t *sym = malloc(N * sizeof *sym), (*cf)[2] = malloc(N * sizeof *cf);
    uint64_t *seeds = malloc(N * sizeof *seeds);
    size_t cap = N * 4 + 64, la, lr;
    uint8_t *ac = malloc(cap), *rans = malloc(cap);
    double ideal = 0;
    /* step i's distribution comes from seeds[i]: f[s] = 1 + share of (2^24 - V) by 1/(rank+1) */
    #define MAKE_CDF(seed)                                                                          \
        do {                                                                                        \
            tp_rng r2;                                                                              \
            tp_rng_seed(&r2, seed);                                                                 \
            uint32_t off = tp_rng_below(&r2, V), sum = 0;                                           \
            for (uint32_t s = 0; s < V; s++) {                                                      \
                uint32_t rank = (s + off) % V;                                                      \
                f[s] = 1 + (uint32_t)(((1u << TB) - V) * 0.085 / (rank + 1.0));                      \
                sum += f[s];                                                                        \
            }                                                                                       \
            f[off ? V - off : 0] += (1u << TB) - sum;                                               \
            tp_ent_cum(f, V, cdf);                                                                  \
        } while (0)
    tp_ac_enc ae;
    tp_ac_enc_init(&ae, ac, cap);
    for (int i = 0; i < N; i++) {
        seeds[i] = tp_rng_next(&rng);
        MAKE_CDF(seeds[i]);
        uint32_t t = tp_rng_below(&rng, 1u << TB);
        sym[i] = tp_ent_cdf_find(cdf, V, t);
        cf[i][0] = cdf[sym[i]];
        cf[i][1] = f[sym[i]];
        ideal += TB - log2(f[sym[i]]);
        tp_ac_encode_sym(&ae, cf[i][0], cf[i][1], TB);
    }
    tp_err e;
    cr_assert_eq(tp_ac_enc_finish(&ae, &la, &e), TP_OK, "%s", e.msg);
    tp_rans_enc re;
    tp_rans_enc_init(&re, rans, cap);
    for (int i = N; i-- > 0;) tp_rans_encode_sym(&re, cf[i][0], cf[i][1], TB);
    cr_assert_eq(tp_rans_enc_finish(&re, &lr, &e), TP_OK, "%s", e.msg);
    cr_expect_leq((double)la, ideal / 8 * 1.001 + 8, "AC %zu bytes vs ideal %.0f", la, ideal / 8);
    cr_expect_leq((double)lr, ideal / 8 * 1.001 + 16, "rANS %zu bytes vs ideal %.0f", lr, ideal / 8);
    tp_ac_dec ad;
    tp_rans_dec rd;
    tp_ac_dec_init(&ad, ac, la);
    tp_rans_dec_init(&rd, rans, lr);
    for (int i = 0; i < N; i++) {
        MAKE_CDF(seeds[i]);
        uint32_t s = tp_ent_cdf_find(cdf, V, tp_ac_decode_target(&ad, TB));
        cr_assert_eq(s, sym[i], "AC symbol %d: %u, want %u", i, s, sym[i]);
        tp_ac_decode_advance(&ad, cdf[s], f[s], TB);
        s = tp_ent_cdf_find(cdf, V, tp_rans_decode_target(&rd, TB));
        cr_assert_eq(s, sym[i], "rANS symbol %d: %u, want %u", i, s, sym[i]);
        tp_rans_decode_advance(&rd, cdf[s], f[s], TB);
    }
    cr_expect_eq(tp_ac_dec_finish(&ad, &e), TP_OK, "%s", e.msg);
    cr_expect_eq(tp_rans_dec_finish(&rd, &e), TP_OK, "%s", e.msg);
    /* misuse is reported, not crashed on */
    tp_ac_enc_init(&ae, ac, cap);
    tp_ac_encode_sym(&ae, 5, 0, TB);
    cr_expect_eq(tp_ac_enc_finish(&ae, &la, &e), TP_ERR_ARG);
    tp_rans_enc_init(&re, rans, cap);
    tp_rans_encode_sym(&re, (1u << TB) - 1, 2, TB);
    cr_expect_eq(tp_rans_enc_finish(&re, &lr, &e), TP_ERR_ARG);
    tp_rans_enc_init(&re, rans, 4);
    tp_rans_encode_sym(&re, 0, 1, 1);
    cr_expect_eq(tp_rans_enc_finish(&re, &lr, &e), TP_ERR_ARG, "an 8-byte state does not fit in 4 bytes");
    free(cdf); free(f); free(sym); free(cf); free(seeds); free(ac); free(rans);
}

/* ---- bad input corpus ---- */
/* the reference decoder and the cpu one must refuse it, with a message; with all_paths the cpu
 * one on each of its paths (cpu_paths), else on its default */
static void expect_reject_on(const uint8_t *blk, size_t len, size_t n, const char *what, int all_paths) {
    uint8_t *out = malloc(n + 1);
    cpu_path paths[8] = {{tp_cpu_isa(), tp_ent_rans_lookup()}};
    const int np = all_paths ? cpu_paths(paths) : 1;
    for (int k = -1; k < np; k++) {
        size_t m;
        tp_err e;
        char pn[40] = "ref";
        e.msg[0] = 0;
        if (k >= 0) {
            snprintf(pn, sizeof pn, "cpu at ");
            path_name(paths[k], pn + strlen(pn), sizeof pn - strlen(pn));
        }
        tp_status st = k < 0 ? tp_ent_decode_ref(blk, len, out, n, &m, &e) : decode_cpu_at(paths[k], blk, len, out, n, &m, &e);
        cr_expect_neq(st, TP_OK, "%s: %s decoder accepted it", what, pn);
        if (st != TP_OK) cr_expect(e.msg[0] != 0, "%s: %s: no message", what, pn);
    }
    free(out);
}
static void expect_reject(const uint8_t *blk, size_t len, size_t n, const char *what) {
    expect_reject_on(blk, len, n, what, 0);
}

static uint8_t *make_block(const uint8_t *src, size_t n, tp_ent_coder c, int sym_bits, int scale_bits, size_t *len) {
    tp_ent_params p;
    tp_ent_params_default(&p, c);
    p.sym_bits = sym_bits;
    p.scale_bits = scale_bits;
    uint8_t *b = malloc(tp_ent_bound(n));
    tp_err e;
    cr_assert_eq(tp_ent_encode_ref(src, n, &p, b, tp_ent_bound(n), len, &e), TP_OK);
    return b;
}

Test(entropy, bad_streams) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 46);
    const size_t n = 3000;
    uint8_t *src = malloc(n), *tmp = malloc(tp_ent_bound(n) + 16);
    skewed(src, n, &rng, 0.7, 0);
    /* scale 0: auto (12 here); 15: the cpu rANS decoder's wide paths (two-level and gather),
     * whose streams go through every path of the cpu decoder */
    const struct {
        tp_ent_coder c;
        int sb, scale;
    } kinds[] = {{TP_ENT_RANS, 8, 0}, {TP_ENT_RANS, 4, 0}, {TP_ENT_RANS, 8, 15}, {TP_ENT_RANS, 4, 15},
                 {TP_ENT_AC, 8, 0},   {TP_ENT_AC, 4, 0}};
    for (size_t ki = 0; ki < sizeof kinds / sizeof *kinds; ki++) {
        size_t len;
        uint8_t *b = make_block(src, n, kinds[ki].c, kinds[ki].sb, kinds[ki].scale, &len);
        const int all = kinds[ki].scale > 12;
        char kn[48], what[128];
        snprintf(kn, sizeof kn, "%s sym_bits %d scale %d", tp_ent_coder_name(kinds[ki].c), kinds[ki].sb, b[7]);
        cr_assert_eq(b[5], kinds[ki].c, "%s: test data should compress", kn);
        /* every truncation, and one byte too many */
        for (size_t cut = 0; cut < len; cut++) {
            snprintf(what, sizeof what, "%s truncated to %zu of %zu", kn, cut, len);
            memcpy(tmp, b, cut);
            expect_reject_on(tmp, cut, n, what, all);
        }
        memcpy(tmp, b, len);
        tmp[len] = 0;
        snprintf(what, sizeof what, "%s: one byte appended", kn);
        expect_reject_on(tmp, len + 1, n, what, all);
        /* every single-bit flip anywhere in the block */
        for (size_t bit = 0; bit < 8 * len; bit += (bit < 8 * 64 ? 1 : 5)) {
            memcpy(tmp, b, len);
            tmp[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            snprintf(what, sizeof what, "%s bit %zu flipped", kn, bit);
            expect_reject_on(tmp, len, n, what, all);
        }
        /* lying headers */
        struct { size_t off; uint8_t val; const char *what; } lies[] = {
            {4, 2, "version 2"}, {5, 3, "coder 3"}, {6, 65, "lanes 65"}, {7, 0, "scale 0"}, {7, 16, "scale 16"},
            {7, 11, "scale 11 (freqs sum to 2^12)"}, {7, 13, "total not the declared power of two"},
            {8, 5, "sym_bits 5"}, {9, 1, "reserved 1"}, {10, 0, "table_len 0"}, {19, 0x80, "n huge"},
            {27, 0x01, "payload_len huge"}, {12, 0xff, "n wrong"}};
        for (size_t l = 0; l < sizeof lies / sizeof *lies; l++) {
            memcpy(tmp, b, len);
            if (tmp[lies[l].off] == lies[l].val) continue;
            tmp[lies[l].off] = lies[l].val;
            snprintf(what, sizeof what, "%s: %s", kn, lies[l].what);
            expect_reject_on(tmp, len, n, what, all);
        }
        /* frequencies that do not sum: bump the first varint of the table */
        memcpy(tmp, b, len);
        tmp[TP_ENT_HEADER_FIXED] = (uint8_t)(tmp[TP_ENT_HEADER_FIXED] == 0 ? 0 : tmp[TP_ENT_HEADER_FIXED] ^ 1);
        snprintf(what, sizeof what, "%s: freqs do not sum", kn);
        if (tmp[TP_ENT_HEADER_FIXED] != b[TP_ENT_HEADER_FIXED]) expect_reject_on(tmp, len, n, what, all);
        /* output buffer too small */
        size_t m;
        tp_err e;
        uint8_t *out = malloc(n);
        cr_expect_eq(tp_ent_decode_cpu(b, len, out, n - 1, &m, &e), TP_ERR_ARG);
        cr_expect_eq(tp_ent_decode_ref(b, len, out, n - 1, &m, &e), TP_ERR_ARG);
        free(out);
        free(b);
    }
    /* random bytes, with and without a valid-looking fixed header */
    for (int t = 0; t < 2000; t++) {
        size_t len = tp_rng_below(&rng, 300);
        for (size_t i = 0; i < len; i++) tmp[i] = (uint8_t)tp_rng_next(&rng);
        if (t & 1 && len >= TP_ENT_HEADER_FIXED) {
            memcpy(tmp, "TPEC\x01", 5);
            tmp[5] = (uint8_t)(t % 3);
            tmp[9] = 0;
        }
        expect_reject(tmp, len, n, "random bytes");
    }
    free(src);
    free(tmp);
}
