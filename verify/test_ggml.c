/* ggml's block formats (include/tenpak/ggml.h): every kernel x ISA level against the reference
 * through the registry (with self-test), the cpu dequantisation against the reference to the bit
 * on blocks of random bytes (every fp16 field any finite value), hand-made blocks that pin the
 * documented layouts, a row's GEMV bits alone and in a pass, and the errors of the API. The
 * gguf package's independent check is verify/test_ggml_gguf.c. */
#include <math.h>
#include <string.h>

#include "tenpak/ggml.h"
#include "verify/test_common.h"

Test(ggml, registry_q) { verify_filter("^[a-z]+/ggml_q[0-9]_[01]/"); }
Test(ggml, registry_k) { verify_filter("^[a-z]+/ggml_q[0-9]_k/"); }
Test(ggml, registry_float) { verify_filter("^[a-z]+/ggml_b?f[0-9]+/"); }

static const int ALL[] = {TP_GGML_F32, TP_GGML_F16, TP_GGML_BF16, TP_GGML_Q4_0, TP_GGML_Q4_1, TP_GGML_Q5_0,
                          TP_GGML_Q5_1, TP_GGML_Q8_0, TP_GGML_Q4_K, TP_GGML_Q5_K, TP_GGML_Q6_K};
#define NALL (sizeof ALL / sizeof ALL[0])

Test(ggml, sizes) {
    /* bytes / elements per block as GGUF defines them (gguf.constants.GGML_QUANT_SIZES) */
    const int64_t elems[NALL] = {1, 1, 1, 32, 32, 32, 32, 32, 256, 256, 256};
    const size_t bytes[NALL] = {4, 2, 2, 18, 20, 22, 24, 34, 144, 176, 210};
    const char *names[NALL] = {"F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K"};
    for (size_t i = 0; i < NALL; i++) {
        cr_expect(tp_ggml_type_known(ALL[i]));
        cr_expect_eq(tp_ggml_block_elems(ALL[i]), elems[i]);
        cr_expect_eq(tp_ggml_block_bytes(ALL[i]), bytes[i]);
        cr_expect_str_eq(tp_ggml_type_name(ALL[i]), names[i]);
        cr_expect_eq(tp_ggml_row_bytes(ALL[i], 4096), bytes[i] * (size_t)(4096 / elems[i]));
        cr_expect_eq(tp_ggml_row_bytes(ALL[i], 0), 0);
        if (elems[i] > 1) cr_expect_eq(tp_ggml_row_bytes(ALL[i], 4096 + 16), 0, "%s: a partial block", names[i]);
    }
    const int unknown[] = {-1, 4, 5, 9, 10, 11, 15, 16, 29, 31, 1000};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        cr_expect(!tp_ggml_type_known(unknown[i]));
        cr_expect_null(tp_ggml_type_name(unknown[i]));
        cr_expect_eq(tp_ggml_block_elems(unknown[i]), 0);
        cr_expect_eq(tp_ggml_block_bytes(unknown[i]), 0);
        cr_expect_eq(tp_ggml_row_bytes(unknown[i], 256), 0);
    }
}

Test(ggml, errors_are_values) {
    uint8_t blk[256] = {0};
    float out[256], x[256] = {0}, y[4];
    tp_err e = {{0}};
    tp_status (*deq[2])(int, const void *, int64_t, float *, tp_err *) = {tp_ggml_dequant_ref, tp_ggml_dequant_cpu};
    tp_status (*mm[2])(int, const void *, int64_t, int64_t, const float *, int64_t, float *, tp_err *) = {
        tp_ggml_matmul_ref, tp_ggml_matmul_cpu};
    for (int k = 0; k < 2; k++) {
        cr_expect_eq(deq[k](10, blk, 256, out, &e), TP_ERR_UNSUPPORTED);
        cr_expect(strstr(e.msg, "10") != NULL, "%s", e.msg);
        cr_expect_eq(deq[k](TP_GGML_Q4_0, blk, 33, out, &e), TP_ERR_ARG);
        cr_expect(strstr(e.msg, "Q4_0") != NULL, "%s", e.msg);
        cr_expect_eq(deq[k](TP_GGML_Q4_K, blk, -256, out, &e), TP_ERR_ARG);
        cr_expect_eq(deq[k](TP_GGML_Q8_0, NULL, 32, out, &e), TP_ERR_ARG);
        cr_expect_eq(deq[k](TP_GGML_Q8_0, blk, 0, NULL, &e), TP_OK);
        cr_expect_eq(mm[k](TP_GGML_Q6_K, blk, 1, 128, x, 1, y, &e), TP_ERR_ARG, "128 columns of Q6_K");
        cr_expect_eq(mm[k](TP_GGML_Q6_K, blk, 1, 256, x, -1, y, &e), TP_ERR_ARG);
        cr_expect_eq(mm[k](TP_GGML_Q6_K, NULL, 1, 256, x, 1, y, &e), TP_ERR_ARG);
        cr_expect_eq(mm[k](99, blk, 1, 256, x, 1, y, &e), TP_ERR_UNSUPPORTED);
        cr_expect_eq(mm[k](TP_GGML_Q6_K, blk, 0, 256, x, 1, y, &e), TP_OK, "no rows");
    }
}

static void put16(uint8_t *p, float f) {
    uint16_t h = tp_f32_to_f16(f);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

/* Hand-made blocks: the documented layouts, value by value, for the reference and the cpu path. */
static void expect_block(int type, const uint8_t *blk, const float *want, const char *what) {
    const int64_t n = tp_ggml_block_elems(type);
    float got[256];
    const tp_isa saved = tp_cpu_isa();
    tp_err e;
    cr_assert_eq(tp_ggml_dequant_ref(type, blk, n, got, &e), TP_OK, "%s", e.msg);
    for (int64_t i = 0; i < n; i++)
        cr_expect_eq(got[i], want[i], "%s ref: element %lld is %g, want %g", what, (long long)i, got[i], want[i]);
    for (int isa = 0; isa <= (int)tp_cpu_best_isa(); isa++) {
        tp_cpu_set_isa((tp_isa)isa);
        tp_poison_f32(got, 256);
        cr_assert_eq(tp_ggml_dequant_cpu(type, blk, n, got, &e), TP_OK, "%s", e.msg);
        tp_cpu_set_isa(saved);
        cr_expect_eq(memcmp(got, want, (size_t)n * 4), 0, "%s cpu (%s) differs", what, tp_isa_name((tp_isa)isa));
    }
}

Test(ggml, layouts_by_hand) {
    uint8_t b[256];
    float want[256];
    /* Q4_0: byte j = (code of element j + 16) << 4 | code of element j */
    memset(b, 0, sizeof b);
    put16(b, 0.5f);
    for (int j = 0; j < 16; j++) b[2 + j] = (uint8_t)((15 - j) << 4 | j);
    for (int j = 0; j < 16; j++) {
        want[j] = 0.5f * (float)(j - 8);
        want[j + 16] = 0.5f * (float)(15 - j - 8);
    }
    expect_block(TP_GGML_Q4_0, b, want, "Q4_0");
    /* Q4_1: d = 2, m = -3 */
    memset(b, 0, sizeof b);
    put16(b, 2.0f);
    put16(b + 2, -3.0f);
    for (int j = 0; j < 16; j++) b[4 + j] = (uint8_t)((j ^ 5) << 4 | (15 - j));
    for (int j = 0; j < 16; j++) {
        want[j] = 2.0f * (float)(15 - j) - 3.0f;
        want[j + 16] = 2.0f * (float)(j ^ 5) - 3.0f;
    }
    expect_block(TP_GGML_Q4_1, b, want, "Q4_1");
    /* Q5_0 / Q5_1: bit j of qh is element j's bit 4; qh = 0x80000001 sets elements 0 and 31 */
    for (int m = 0; m < 2; m++) {
        memset(b, 0, sizeof b);
        put16(b, 0.25f);
        if (m) put16(b + 2, 1.0f);
        uint8_t *qh = b + 2 + 2 * m, *qs = qh + 4;
        qh[0] = 0x01;
        qh[3] = 0x80;
        for (int j = 0; j < 16; j++) qs[j] = (uint8_t)(3 << 4 | 7);
        for (int j = 0; j < 32; j++) {
            int q = (j < 16 ? 7 : 3) | ((j == 0 || j == 31) ? 16 : 0);
            want[j] = m ? 0.25f * (float)q + 1.0f : 0.25f * (float)(q - 16);
        }
        expect_block(m ? TP_GGML_Q5_1 : TP_GGML_Q5_0, b, want, m ? "Q5_1" : "Q5_0");
    }
    /* Q8_0: signed bytes */
    memset(b, 0, sizeof b);
    put16(b, -0.125f);
    for (int j = 0; j < 32; j++) b[2 + j] = (uint8_t)(int8_t)(j * 8 - 128);
    for (int j = 0; j < 32; j++) want[j] = -0.125f * (float)(j * 8 - 128);
    expect_block(TP_GGML_Q8_0, b, want, "Q8_0");
    /* Q4_K / Q5_K: sub-block s has scale s + 33 and min 62 - s (6 bits each, s >= 4 split across
     * bytes 8..11 and the top bits of 0..7); code of element 32s + j = (s + j) & 15, bit 4 from qh */
    for (int five = 0; five < 2; five++) {
        memset(b, 0, sizeof b);
        put16(b, 0.5f);
        put16(b + 2, 0.25f);
        uint8_t *sc = b + 4, *qh = b + 16, *qs = b + 16 + 32 * five;
        for (int s = 0; s < 8; s++) {
            int a = s + 33, mn = 62 - s;
            if (s < 4) {
                sc[s] |= (uint8_t)a;
                sc[s + 4] |= (uint8_t)mn;
            } else {
                sc[s + 4] = (uint8_t)((a & 15) | (mn & 15) << 4);
                sc[s - 4] |= (uint8_t)((a >> 4) << 6);
                sc[s] |= (uint8_t)((mn >> 4) << 6);
            }
            for (int j = 0; j < 32; j++) {
                int q = (s + j) & 15;
                qs[32 * (s / 2) + j] |= (uint8_t)(s & 1 ? q << 4 : q);
                int hi = five && ((j + s) % 3 == 0);
                if (hi) qh[j] |= (uint8_t)(1 << s);
                want[32 * s + j] = (0.5f * (float)a) * (float)(q | hi << 4) - 0.25f * (float)mn;
            }
        }
        expect_block(five ? TP_GGML_Q5_K : TP_GGML_Q4_K, b, want, five ? "Q5_K" : "Q4_K");
    }
    /* Q6_K: element 128h + k, low nibble in ql[64h + k % 64] (high nibble for k >= 64), top 2 bits
     * at 2 * (k / 32) of qh[32h + k % 32]; scales[i / 16] int8; d at byte 208 */
    memset(b, 0, sizeof b);
    put16(b + 208, 0.5f);
    for (int s = 0; s < 16; s++) b[192 + s] = (uint8_t)(int8_t)(s * 9 - 70);
    for (int i = 0; i < 256; i++) {
        int h = i / 128, k = i % 128, v = (i * 7 + 3) & 63;
        b[64 * h + k % 64] |= (uint8_t)(k >= 64 ? (v & 15) << 4 : v & 15);
        b[128 + 32 * h + k % 32] |= (uint8_t)((v >> 4) << (2 * (k / 32)));
        want[i] = (0.5f * (float)((i / 16) * 9 - 70)) * (float)(v - 32);
    }
    expect_block(TP_GGML_Q6_K, b, want, "Q6_K");
}

/* cpu dequantisation = reference to the bit, on blocks of random bytes with any finite fp16
 * fields, block counts from 1 to past the threading threshold, at every ISA level. */
Test(ggml, dequant_random_blocks_exact) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 0x6767);
    const int64_t counts[] = {1, 3, 17, 161, 5000};
    const tp_isa saved = tp_cpu_isa();
    for (size_t t = 0; t < NALL; t++) {
        const int type = ALL[t];
        const int64_t E = tp_ggml_block_elems(type), scale = E == 1 ? 32 : 1; /* float types: elements */
        for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
            int64_t nb = counts[ci] * scale;
            if (E == 256 && nb > 1000) nb = 700; /* past the threading threshold still */
            const int64_t n = nb * E;
            /* malloc'd at its exact size: ASan sees any read past the last block */
            uint8_t *src = malloc((size_t)nb * tp_ggml_block_bytes(type));
            float *ref = tp_alloc((size_t)n * 4), *got = tp_alloc((size_t)n * 4);
            tp_ggml_fill_random(type, src, nb, &rng, 1);
            tp_err e;
            tp_poison_f32(ref, (size_t)n);
            cr_assert_eq(tp_ggml_dequant_ref(type, src, n, ref, &e), TP_OK, "%s", e.msg);
            for (int64_t i = 0; i < n; i++) cr_assert(isfinite(ref[i]), "%s: element %lld not finite", tp_ggml_type_name(type), (long long)i);
            for (int isa = 0; isa <= (int)tp_cpu_best_isa(); isa++) {
                tp_cpu_set_isa((tp_isa)isa);
                tp_poison_f32(got, (size_t)n);
                tp_status st = tp_ggml_dequant_cpu(type, src, n, got, &e);
                tp_cpu_set_isa(saved);
                cr_assert_eq(st, TP_OK, "%s", e.msg);
                int64_t bad = -1;
                for (int64_t i = 0; i < n && bad < 0; i++)
                    if (memcmp(&got[i], &ref[i], 4)) bad = i;
                cr_expect_eq(bad, -1, "%s, %lld blocks, %s: element %lld is %a, reference %a", tp_ggml_type_name(type),
                             (long long)nb, tp_isa_name((tp_isa)isa), (long long)bad, bad >= 0 ? got[bad] : 0.0,
                             bad >= 0 ? ref[bad] : 0.0);
            }
            free(src);
            tp_free(ref);
            tp_free(got);
        }
    }
}

/* GEMV and GEMM against the reference at awkward row counts and batches, at every ISA level:
 * relative L2 within 1e-5 (the registry's bound) where there are 9 outputs or more, and for every
 * shape the error within 1e-6 of || sum_c |W[r][c] X[i][c]| || (a single dot product's relative
 * error is unbounded when it happens to cancel, fp32 or not). And a GEMV row gives the same bits alone as in its 4-row pass (what makes the result
 * independent of the thread count and of the row tasks). */
Test(ggml, matmul_awkward_shapes) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 0x6768);
    const int64_t rowsv[] = {1, 2, 3, 5, 9, 66};
    const int64_t nv[] = {1, 2, 3, 7};
    const tp_isa saved = tp_cpu_isa();
    for (size_t t = 0; t < NALL; t++) {
        const int type = ALL[t];
        const int64_t E = tp_ggml_block_elems(type), cols = E == 1 ? 263 : E == 32 ? 32 * 37 : 256 * 5;
        const size_t rb = tp_ggml_row_bytes(type, cols);
        for (size_t ri = 0; ri < sizeof rowsv / sizeof rowsv[0]; ri++) {
            const int64_t rows = rowsv[ri];
            uint8_t *W = malloc(rb * (size_t)rows); /* exact size, as above */
            tp_ggml_fill_random(type, W, rows * (cols / E), &rng, 0);
            float *D = tp_alloc((size_t)(rows * cols) * 4);
            cr_assert_eq(tp_ggml_dequant_ref(type, W, rows * cols, D, NULL), TP_OK);
            for (size_t ni = 0; ni < sizeof nv / sizeof nv[0]; ni++) {
                const int64_t n = nv[ni];
                float *X = tp_alloc((size_t)(n * cols) * 4), *ref = tp_alloc((size_t)(n * rows) * 4),
                      *got = tp_alloc((size_t)(n * rows) * 4), *one = tp_alloc(4);
                for (int64_t i = 0; i < n * cols; i++) X[i] = tp_rng_normal(&rng);
                tp_err e;
                cr_assert_eq(tp_ggml_matmul_ref(type, W, rows, cols, X, n, ref, &e), TP_OK, "%s", e.msg);
                double mag = 0;
                for (int64_t i = 0; i < n; i++)
                    for (int64_t r = 0; r < rows; r++) {
                        double m = 0;
                        for (int64_t c = 0; c < cols; c++) m += fabs((double)D[r * cols + c] * X[i * cols + c]);
                        mag += m * m;
                    }
                mag = sqrt(mag);
                for (int isa = 0; isa <= (int)tp_cpu_best_isa(); isa++) {
                    tp_cpu_set_isa((tp_isa)isa);
                    tp_poison_f32(got, (size_t)(n * rows));
                    cr_assert_eq(tp_ggml_matmul_cpu(type, W, rows, cols, X, n, got, &e), TP_OK, "%s", e.msg);
                    double err = tp_rel_l2_f32(got, ref, (size_t)(n * rows)), abs_err = 0;
                    for (int64_t i = 0; i < n * rows; i++) abs_err += ((double)got[i] - ref[i]) * ((double)got[i] - ref[i]);
                    abs_err = sqrt(abs_err) / mag;
                    cr_expect(abs_err <= 1e-6 && (n * rows < 9 || err <= 1e-5),
                              "%s %lldx%lld n=%lld %s: rel_l2 %g, error / ||sum |w x| || %g", tp_ggml_type_name(type),
                              (long long)rows, (long long)cols, (long long)n, tp_isa_name((tp_isa)isa), err, abs_err);
                    if (n == 1)
                        for (int64_t r = 0; r < rows; r++) {
                            tp_poison_f32(one, 1);
                            tp_ggml_matmul_cpu(type, W + (size_t)r * rb, 1, cols, X, 1, one, &e);
                            cr_expect_eq(memcmp(one, got + r, 4), 0, "%s %s: row %lld alone %a, in its pass %a",
                                         tp_ggml_type_name(type), tp_isa_name((tp_isa)isa), (long long)r, one[0], got[r]);
                        }
                    tp_cpu_set_isa(saved);
                }
                tp_free(X);
                tp_free(ref);
                tp_free(got);
                tp_free(one);
            }
            free(W);
            tp_free(D);
        }
    }
}
