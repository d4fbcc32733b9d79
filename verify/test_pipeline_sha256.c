/* SHA-256 against FIPS 180-4 / NIST example vectors, incremental feeding included. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "tenpak/sha256.h"

static void hex_of(const void *d, size_t n, char out[65]) {
    uint8_t g[32];
    tp_sha256(d, n, g);
    tp_sha256_hex(g, out);
}

Test(sha256, known_vectors) {
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

Test(sha256, million_a_in_odd_pieces) {
    char *a = malloc(1000000);
    cr_assert(a);
    memset(a, 'a', 1000000);
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
    cr_expect_str_eq(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
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
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        hex_of(buf, v[i].n, h);
        cr_expect_str_eq(h, v[i].hex, "length %zu", v[i].n);
    }
}
