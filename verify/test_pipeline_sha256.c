/* SHA-256 against FIPS 180-4 / NIST example vectors, incremental feeding included, through both
 * block functions (plain C and SHA-NI where the CPU has it), and the two against each other on
 * fresh random data of every length around the block edges, fed in random pieces. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "tenpak/sha256.h"
#include "verify/test_common.h"

/* the implementations this host has: 0 (plain C), and 1 (SHA-NI) where present */
static int nimpl(void) { return tp_sha256_set_impl(1) == 1 ? 2 : 1; }

static void hex_of(const void *d, size_t n, char out[65]) {
    uint8_t g[32];
    tp_sha256(d, n, g);
    tp_sha256_hex(g, out);
}

Test(sha256, known_vectors) {
    for (int im = 0, ni = nimpl(); im < ni; im++) {
    tp_sha256_set_impl(im);
    cr_log_info("sha256 %s", tp_sha256_impl_name());
    char h[65];
    hex_of("", 0, h);
    cr_expect_str_eq(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    hex_of("abc", 3, h);
    cr_expect_str_eq(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    hex_of(m448, strlen(m448), h);
    cr_expect_str_eq(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    const char *m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrs"
                       "mnopqrstnopqrstu";
    hex_of(m896, strlen(m896), h);
    cr_expect_str_eq(h, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
    }
}

Test(sha256, million_a_in_odd_pieces) {
    char *a = malloc(1000000);
    cr_assert(a);
    memset(a, 'a', 1000000);
    for (int im = 0, ni = nimpl(); im < ni; im++) {
    tp_sha256_set_impl(im);
    tp_sha256_ctx s;
    tp_sha256_init(&s);
    /* uneven chunk sizes cross block boundaries in every way */
    size_t at = 0, step = 1;
    while (at < 1000000) {
        size_t k = step < 1000000 - at ? step : 1000000 - at;
        tp_sha256_update(&s, a + at, k);
        at += k;
        step = step * 7 % 997 + 1;
    }
    uint8_t g[32];
    char h[65];
    tp_sha256_final(&s, g);
    tp_sha256_hex(g, h);
    cr_expect_str_eq(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0", "%s", tp_sha256_impl_name());
    }
    free(a);
}

Test(sha256, padding_edges) {
    /* lengths 55, 56, 63, 64 bytes exercise the one- and two-block padding paths */
    static const struct { size_t n; const char *hex; } v[] = {
        {55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
        {56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
        {63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
        {64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
    };
    char buf[64], h[65];
    memset(buf, 'a', sizeof buf);
    for (int im = 0, ni = nimpl(); im < ni; im++) {
        tp_sha256_set_impl(im);
        for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
            hex_of(buf, v[i].n, h);
            cr_expect_str_eq(h, v[i].hex, "length %zu (%s)", v[i].n, tp_sha256_impl_name());
        }
    }
}

/* SHA-NI against plain C: random bytes (never zeros), every length 0..1100 and some long ones,
 * the long ones fed in random pieces. Skipped (said) where the CPU has no SHA extensions. */
Test(sha256, sha_ni_same_digests) {
    if (nimpl() < 2) {
        cr_log_warn("sha256: this CPU has no SHA extensions; the SHA-NI path is not tested here");
        return;
    }
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 0x5a);
    const size_t big = 300007;
    uint8_t *d = malloc(big);
    cr_assert(d);
    for (size_t i = 0; i < big; i++) d[i] = (uint8_t)(1 + tp_rng_below(&rng, 255));
    for (size_t n = 0; n <= big; n = n < 1100 ? n + 1 : n * 3 + 17) {
        uint8_t g[2][32];
        for (int im = 0; im < 2; im++) {
            tp_sha256_set_impl(im);
            tp_sha256_ctx s;
            tp_sha256_init(&s);
            tp_rng r2 = rng; /* the same pieces for both */
            for (size_t at = 0; at < n;) {
                size_t k = 1 + tp_rng_below(&r2, 300);
                if (k > n - at) k = n - at;
                tp_sha256_update(&s, d + at, k);
                at += k;
            }
            tp_sha256_final(&s, g[im]);
        }
        cr_expect_eq(memcmp(g[0], g[1], 32), 0, "length %zu: SHA-NI and plain C digests differ", n);
        if (n > big / 3) break;
    }
    free(d);
    tp_sha256_set_impl(1);
}
