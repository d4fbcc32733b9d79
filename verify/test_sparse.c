/* 2:4 sparsity: every kernel x backend x ISA level against the reference (registry, with
 * self-test), plus the mask, layout, round-trip and size properties. */
#include <math.h>
#include <string.h>

#include "tenpak/sparse.h"
#include "verify/test_common.h"

Test(sparse24, registry) { verify_filter("^[a-z]+/sparse24"); }

static void rand_w(float *W, int64_t n, tp_rng *rng) {
    for (int64_t i = 0; i < n; i++) W[i] = tp_rng_normal(rng) * 0.02f * (tp_rng_below(rng, 50) ? 1.0f : 8.0f);
}

/* exactly the 2 largest |w| (x importance) of every aligned group survive, the rest is 0 */
static void check_mask(const float *W, const float *P, int64_t R, int64_t C, const float *imp) {
    cr_assert(tp_is_24_sparse(P, R, C));
    for (int64_t r = 0; r < R; r++)
        for (int64_t c0 = 0; c0 < C; c0 += 4) {
            int n = (int)(C - c0 < 4 ? C - c0 : 4), kept = 0;
            double minkept = INFINITY, maxdrop = -1;
            for (int i = 0; i < n; i++) {
                int64_t k = r * C + c0 + i;
                double sc = fabs(W[k]) * (imp ? imp[c0 + i] : 1.0);
                if (P[k] != 0) {
                    cr_assert_eq(P[k], W[k], "kept values are copied exactly");
                    kept++;
                    minkept = fmin(minkept, sc);
                } else
                    maxdrop = fmax(maxdrop, sc);
            }
            cr_assert_eq(kept, n < 2 ? n : 2, "row %lld group %lld keeps %d", (long long)r, (long long)c0, kept);
            cr_assert_geq(minkept, maxdrop);
        }
}

Test(sparse24, prune_mask) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 31);
    const int64_t R = 37, C = 103;
    float *W = tp_alloc(R * C * 4), *P = tp_alloc(R * C * 4), *imp = tp_alloc(C * 4);
    rand_w(W, R * C, &rng);
    for (int64_t i = 0; i < C; i++) imp[i] = expf(tp_rng_normal(&rng));
    tp_prune24_ref(W, R, C, NULL, P);
    check_mask(W, P, R, C, NULL);
    tp_prune24_cpu(W, R, C, imp, P);
    check_mask(W, P, R, C, imp);
    tp_free(W); tp_free(P); tp_free(imp);
}

/* the layout as documented in sparse.h, on a hand example */
Test(sparse24, layout) {
    float P[2 * 6] = {0, 5, 0, 7, 0, 0, /* row 1: */ 1, 0, 0, 0, 0, 2};
    tp_sp24 s;
    cr_assert_eq(tp_sp24_alloc(&s, TP_SP_F32, 2, 6, 0), TP_OK);
    cr_assert_eq(tp_sp24_compress_ref(&s, P, 0), TP_OK);
    cr_expect_eq(s.ngroups, 2);
    cr_expect_eq(s.meta_stride, 1);
    /* row 0: group 0 keeps columns 1, 3 -> 0xD; group 1 (columns 4, 5, padding) all zero: 0, 1 -> 0x4 */
    cr_expect_eq(s.meta[0], 0x4D, "meta row 0 = 0x%04x", s.meta[0]);
    cr_expect(s.vf32[0] == 5 && s.vf32[1] == 7 && s.vf32[2] == 0 && s.vf32[3] == 0);
    /* row 1: group 0 keeps column 0 and the lowest zero (1) -> 0x4; group 1 keeps 5 (idx 1) and 0 -> 0x4 */
    cr_expect_eq(s.meta[1], 0x44, "meta row 1 = 0x%04x", s.meta[1]);
    cr_expect(s.vf32[4] == 1 && s.vf32[5] == 0 && s.vf32[6] == 0 && s.vf32[7] == 2);
    float D[12];
    tp_sp24_decompress_ref(&s, D);
    cr_expect_eq(memcmp(D, P, sizeof D), 0);
    /* three non-zeros in a group are refused */
    float bad[4] = {1, 2, 3, 0};
    tp_sp24 t;
    cr_assert_eq(tp_sp24_alloc(&t, TP_SP_F16, 1, 4, 0), TP_OK);
    cr_expect_eq(tp_sp24_compress_cpu(&t, bad, 0), TP_ERR_ARG);
    tp_sp24_free(&s);
    tp_sp24_free(&t);
}

/* decompress(compress(P)) == P for fp32, == fp16(P) for fp16; pack/unpack is the identity */
Test(sparse24, roundtrip) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 32);
    const int64_t R = 9, C = 131;
    float *W = tp_alloc(R * C * 4), *P = tp_alloc(R * C * 4), *D = tp_alloc(R * C * 4), *D2 = tp_alloc(R * C * 4);
    rand_w(W, R * C, &rng);
    tp_prune24_ref(W, R, C, NULL, P);
    for (int vk = 0; vk < 3; vk++) {
        tp_sp24 s, u;
        cr_assert_eq(tp_sp24_alloc(&s, (tp_sp_vkind)vk, R, C, 64), TP_OK);
        cr_assert_eq(tp_sp24_alloc(&u, (tp_sp_vkind)vk, R, C, 64), TP_OK);
        cr_assert_eq(tp_sp24_compress_cpu(&s, P, 0), TP_OK);
        tp_sp24_decompress_cpu(&s, D);
        cr_assert(tp_is_24_sparse(D, R, C));
        for (int64_t i = 0; i < R * C; i++) {
            if (vk == TP_SP_F32) cr_assert_eq(D[i], P[i]);
            else if (vk == TP_SP_F16) cr_assert_eq(D[i], tp_f16_to_f32(tp_f32_to_f16(P[i])));
        }
        unsigned char *buf = tp_alloc(tp_sp24_bytes(&s));
        tp_sp24_pack(&s, buf);
        tp_sp24_unpack(&u, buf);
        tp_sp24_decompress_ref(&u, D2);
        cr_expect_eq(memcmp(D, D2, R * C * 4), 0, "%s: unpack(pack) differs", tp_sp_vkind_name((tp_sp_vkind)vk));
        tp_free(buf);
        tp_sp24_free(&s);
        tp_sp24_free(&u);
    }
    tp_free(W); tp_free(P); tp_free(D); tp_free(D2);
}

/* bits/weight from the packed sizes: metadata 1 bit/weight; fp16 values 8; INT4 g64 2 + 0.25 */
Test(sparse24, bits_per_weight) {
    const double n = 4096.0 * 4096.0;
    cr_expect_eq(8.0 * tp_sp24_bytes_for(TP_SP_F32, 0, 4096, 4096) / n, 17.0);
    cr_expect_eq(8.0 * tp_sp24_bytes_for(TP_SP_F16, 0, 4096, 4096) / n, 9.0);
    cr_expect_eq(8.0 * tp_sp24_bytes_for(TP_SP_INT4, 64, 4096, 4096) / n, 3.25);
    tp_sp24 s;
    cr_assert_eq(tp_sp24_alloc(&s, TP_SP_INT4, 7, 101, 64), TP_OK);
    cr_expect_eq(tp_sp24_bytes(&s), tp_sp24_bytes_for(TP_SP_INT4, 64, 7, 101));
    tp_sp24_free(&s);
}
