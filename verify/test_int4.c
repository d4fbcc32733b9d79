/* The INT4 family: every kernel x backend x ISA level against the reference (through the
 * registry, with self-test), plus the reference's own mathematical properties. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "tenpak/quant.h"
#include "kernels/cpu/quant_cpu.h"
#include "verify/test_common.h"

Test(int4, registry_int4) { verify_filter("^[a-z]+/int4_g"); }
Test(int4, registry_int4r2) { verify_filter("^[a-z]+/int4r2_"); }
Test(int4, registry_nf4) { verify_filter("^[a-z]+/nf4_"); }
Test(baselines, registry_f32) { verify_filter("/f32/"); }

/* The experiment log's table: FP16 scale + offset per group. */
Test(int4, bits_per_weight_table) {
    const int g[] = {8, 16, 32, 64, 128};
    const double want[] = {8.0, 6.0, 5.0, 4.5, 4.25};
    for (int i = 0; i < 5; i++) {
        double b = tp_qkind_bits_per_weight(TP_Q_INT4, g[i], 4096, 4096);
        cr_expect_eq(b, want[i], "int4 g%d: %.6f bits/weight, want %.2f", g[i], b, want[i]);
    }
    cr_expect_eq(tp_qkind_bits_per_weight(TP_Q_NF4, 64, 4096, 4096), 4.25);
    cr_expect_eq(tp_qkind_bits_per_weight(TP_Q_INT4R2, 16, 4096, 4096), 9.0);
    /* a short last group costs a whole scale/offset pair: 4096x100, g=32 -> 4 groups per row */
    cr_expect_eq(tp_qkind_bits_per_weight(TP_Q_INT4, 32, 1, 100), 8.0 * (50 + 4 * 4) / 100.0);
}

/* Nibble order as documented: element 2i is the low nibble of byte i; odd rows end padded. */
Test(int4, nibble_order) {
    tp_qmat q;
    cr_assert_eq(tp_qmat_alloc(&q, TP_Q_INT4, 2, 3, 8), TP_OK);
    /* weights chosen so the codes are 0, 15, 7 in row 0 (min 0, max 15 -> scale 1, offset 0) */
    float W[6] = {0.0f, 15.0f, 7.0f, 15.0f, 0.0f, 15.0f};
    tp_quantize_ref(&q, W, 0);
    cr_expect_eq(q.code_stride, 2);
    cr_expect_eq(q.codes[0], 0xF0, "byte0 = 0x%02x", q.codes[0]);
    cr_expect_eq(q.codes[1], 0x07, "byte1 = 0x%02x (padding nibble must be 0)", q.codes[1]);
    cr_expect_eq(q.codes[2], 0x0F, "row 1 byte0 = 0x%02x", q.codes[2]);
    cr_expect_eq(q.codes[3], 0x0F, "row 1 byte1 = 0x%02x", q.codes[3]);
    tp_qmat_free(&q);
}

static void random_weights(float *W, int64_t n, tp_rng *rng) {
    for (int64_t i = 0; i < n; i++) W[i] = tp_rng_normal(rng) * 0.03f * (tp_rng_below(rng, 100) ? 1.0f : 6.0f);
}

static double sse(const float *a, const float *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return s;
}

/* Iterative refinement never makes a group worse than min/max and helps overall. Awkward
 * shape: 37 columns is not a multiple of any group size. */
Test(int4, refinement_improves) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 11);
    const int64_t R = 64, C = 37 * 7;
    float *W = tp_alloc(R * C * 4), *D0 = tp_alloc(R * C * 4), *D1 = tp_alloc(R * C * 4);
    random_weights(W, R * C, &rng);
    const int gs[] = {8, 16, 32, 64, 128};
    for (int k = 0; k < 2; k++) {
        tp_qkind kind = k ? TP_Q_INT4R2 : TP_Q_INT4;
        for (int i = 0; i < 5; i++) {
            tp_qmat a, b;
            cr_assert_eq(tp_qmat_alloc(&a, kind, R, C, gs[i]), TP_OK);
            cr_assert_eq(tp_qmat_alloc(&b, kind, R, C, gs[i]), TP_OK);
            tp_quantize_ref(&a, W, 0);
            tp_quantize_ref(&b, W, 4);
            tp_dequantize_ref(&a, D0);
            tp_dequantize_ref(&b, D1);
            if (kind == TP_Q_INT4) {
                /* per group: refined error <= min/max error */
                for (int64_t r = 0; r < R; r++)
                    for (int64_t g0 = 0; g0 < C; g0 += gs[i]) {
                        int64_t n = C - g0 < gs[i] ? C - g0 : gs[i];
                        double e0 = sse(W + r * C + g0, D0 + r * C + g0, n);
                        double e1 = sse(W + r * C + g0, D1 + r * C + g0, n);
                        cr_assert_leq(e1, e0 * (1 + 1e-12), "row %lld group at %lld: %g > %g", (long long)r, (long long)g0, e1, e0);
                    }
                cr_expect_lt(sse(W, D1, R * C), sse(W, D0, R * C), "g%d: refinement did not help", gs[i]);
            }
            tp_qmat_free(&a);
            tp_qmat_free(&b);
        }
    }
    tp_free(W); tp_free(D0); tp_free(D1);
}

/* pack/unpack is the identity (exact), and the byte count is tp_qmat_bytes. */
Test(int4, pack_roundtrip) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 12);
    const tp_qkind kinds[] = {TP_Q_INT4, TP_Q_INT4R2, TP_Q_NF4};
    for (int k = 0; k < 3; k++) {
        const int64_t R = 7, C = 101;
        float *W = tp_alloc(R * C * 4), *D = tp_alloc(R * C * 4), *D2 = tp_alloc(R * C * 4);
        random_weights(W, R * C, &rng);
        tp_qmat a, b;
        cr_assert_eq(tp_qmat_alloc(&a, kinds[k], R, C, 16), TP_OK);
        cr_assert_eq(tp_qmat_alloc(&b, kinds[k], R, C, 16), TP_OK);
        tp_quantize_ref(&a, W, 0);
        unsigned char *buf = tp_alloc(tp_qmat_bytes(&a));
        tp_qmat_pack(&a, buf);
        tp_qmat_unpack(&b, buf);
        tp_dequantize_ref(&a, D);
        tp_dequantize_ref(&b, D2);
        cr_expect_eq(memcmp(D, D2, R * C * 4), 0, "%s: unpack(pack(q)) differs", tp_qkind_name(kinds[k]));
        tp_free(buf); tp_free(W); tp_free(D); tp_free(D2);
        tp_qmat_free(&a);
        tp_qmat_free(&b);
    }
}

/* tp_dequantize_cpu equals the reference bit for bit at group sizes the codecs never write (not
 * a multiple of 8: an 8-column step of the SIMD decode would straddle two groups) as well as at
 * the ones they do, on a row length that is not a multiple of 8 or of the group. */
Test(int4, dequant_any_group_exact) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 13);
    const tp_qkind kinds[] = {TP_Q_INT4, TP_Q_INT4R2, TP_Q_NF4};
    const int gs[] = {3, 12, 20, 8, 16, 32, 128};
    for (int k = 0; k < 3; k++)
        for (int gi = 0; gi < (int)(sizeof gs / sizeof gs[0]); gi++) {
            const int64_t R = 9, C = 301;
            float *W = tp_alloc(R * C * 4), *D = tp_alloc(R * C * 4), *D2 = tp_alloc(R * C * 4);
            random_weights(W, R * C, &rng);
            tp_qmat a;
            cr_assert_eq(tp_qmat_alloc(&a, kinds[k], R, C, gs[gi]), TP_OK);
            tp_quantize_ref(&a, W, 0);
            tp_dequantize_ref(&a, D);
            for (int64_t i = 0; i < R * C; i++) D2[i] = NAN;
            tp_dequantize_cpu(&a, D2);
            cr_expect_eq(memcmp(D, D2, R * C * 4), 0, "%s g%d: tp_dequantize_cpu differs from the reference",
                         tp_qkind_name(kinds[k]), gs[gi]);
            /* the GEMV and both GEMM paths (register kernels, sgemm tiles) at the same group */
            const int64_t nb[] = {1, 3, 20};
            for (int b = 0; b < 3; b++) {
                float *X = tp_alloc(nb[b] * C * 4), *Y = tp_alloc(nb[b] * R * 4), *Yr = tp_alloc(nb[b] * R * 4);
                for (int64_t i = 0; i < nb[b] * C; i++) X[i] = (float)tp_rng_normal(&rng);
                for (int64_t i = 0; i < nb[b] * R; i++) Y[i] = NAN;
                cr_assert_eq(tp_qgemm_ref(&a, X, nb[b], Yr), TP_OK);
                if (nb[b] == 1) cr_assert_eq(tp_qgemv_cpu(&a, X, Y), TP_OK);
                else cr_assert_eq(tp_qgemm_cpu(&a, X, nb[b], Y), TP_OK);
                double num = 0, den = 0;
                for (int64_t i = 0; i < nb[b] * R; i++) {
                    num += ((double)Y[i] - Yr[i]) * ((double)Y[i] - Yr[i]);
                    den += (double)Yr[i] * Yr[i];
                }
                cr_expect(sqrt(num / den) <= 1e-5, "%s g%d batch %lld: rel L2 %.3g against the reference",
                          tp_qkind_name(kinds[k]), gs[gi], (long long)nb[b], sqrt(num / den));
                tp_free(X); tp_free(Y); tp_free(Yr);
            }
            tp_free(W); tp_free(D); tp_free(D2);
            tp_qmat_free(&a);
        }
}

/* FP16 conversion: every half round-trips; float->half matches the F16C instruction (round to
 * nearest even) on random and edge values; directed rounding brackets the value. */
__attribute__((target("f16c"))) static uint16_t hw_f16(float f) { return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }
__attribute__((target("f16c"))) static float hw_f32(uint16_t h) { return _cvtsh_ss(h); }
/* a float of random bits, NaNs drawn again */
static float random_float(tp_rng *rng) {
    for (;;) {
        uint32_t u = (uint32_t)tp_rng_next(rng);
        float f;
        memcpy(&f, &u, 4);
        if (!isnan(f)) return f;
    }
}
Test(core, fp16_conversion) {
    for (uint32_t h = 0; h < 65536; h++) {
        float f = tp_f16_to_f32((uint16_t)h);
        if (isnan(f)) continue;
        cr_assert_eq(tp_f32_to_f16(f), h, "half 0x%04x does not round-trip", h);
    }
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 13);
    for (int i = 0; i < 1000000; i++) {
        float f = random_float(&rng);
        if (fabsf(f) < 65504.0f) {
            cr_assert_leq(tp_f16_to_f32(tp_f16_round_down(f)), f);
            cr_assert_geq(tp_f16_to_f32(tp_f16_round_up(f)), f);
        }
    }
}

/* The same conversions against the F16C instructions (every CPU with AVX2 has them). */
Test(core, fp16_conversion_f16c) {
    if (tp_cpu_best_isa() < TP_ISA_AVX2) cr_skip_test("no F16C on this CPU: conversions not compared with it");
    for (uint32_t h = 0; h < 65536; h++) {
        float f = tp_f16_to_f32((uint16_t)h);
        if (isnan(f)) continue;
        cr_assert(f == hw_f32((uint16_t)h), "half 0x%04x widens to %a, F16C to %a", h, f, hw_f32((uint16_t)h));
    }
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 13);
    for (int i = 0; i < 1000000; i++) {
        float f = random_float(&rng);
        cr_assert_eq(tp_f32_to_f16(f), hw_f16(f), "float %a: 0x%04x vs F16C 0x%04x", f, tp_f32_to_f16(f), hw_f16(f));
    }
}

/* W4A8 is a different op from the fp32-activation GEMV: its cost is int8 rounding of the
 * activations. Two checks. Exact: every x element moves by at most half its group's step s, so
 * every row's difference is at most the sum over its groups of scale * s/2 * sum |code-8| (plus
 * float rounding). Statistical: about 1-2% relative L2 against the fp32-activation reference on
 * these weights (1% outliers at 6x), stated as the mean over 16 draws of x within 2.5e-2. One
 * draw of 96 rows is too noisy for that bound: over 400 seeds g128's single-draw figure reached
 * 0.0235, and CI once drew 0.0253 (seed not identifiable from its log); the 16-draw mean's spread
 * is a quarter of that. */
Test(int4, a8_activation_error) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 14);
    const int64_t R = 96, C = 64 * 9 + 17; /* ends in a short group */
    const int gs[] = {64, 128};
    enum { DRAWS = 16 };
    for (int k = 0; k < 2; k++) {
        float *W = tp_alloc(R * C * 4), *x = tp_alloc(C * 4), *y0 = tp_alloc(R * 4), *y1 = tp_alloc(R * 4);
        random_weights(W, R * C, &rng);
        tp_qmat q;
        cr_assert_eq(tp_qmat_alloc(&q, TP_Q_INT4, R, C, gs[k]), TP_OK);
        tp_quantize_ref(&q, W, 0);
        int8_t *xq = tp_alloc((size_t)C);
        float *xs = tp_alloc((size_t)q.ngroups * sizeof *xs);
        double mean = 0, worst = 0;
        for (int d = 0; d < DRAWS; d++) {
            for (int64_t i = 0; i < C; i++) x[i] = tp_rng_normal(&rng);
            tp_qgemv_ref(&q, x, y0);
            tp_qgemv_a8_ref(&q, x, y1);
            tp_quantize_x8_ref(x, C, gs[k], xq, xs);
            for (int64_t r = 0; r < R; r++) {
                double bound = 0, mag = 0;
                for (int64_t gi = 0; gi < q.ngroups; gi++) {
                    const double sc = tp_f16_to_f32(q.scale[r * q.ngroups + gi]);
                    const double off = tp_f16_to_f32(q.offset[r * q.ngroups + gi]);
                    const int64_t c0 = gi * gs[k], c1 = c0 + gs[k] < C ? c0 + gs[k] : C;
                    double codes = 0;
                    for (int64_t c = c0; c < c1; c++) {
                        const int code = tp_qmat_code(&q, r, c);
                        codes += abs(code - 8);
                        mag += fabs(sc * code + off) * fabs(x[c]);
                    }
                    bound += sc * codes * xs[gi] * 0.5;
                }
                cr_assert_leq(fabs((double)y1[r] - y0[r]), bound + 1e-5 * mag,
                              "g%d draw %d row %lld: W4A8 moved by %.3g, int8 rounding allows %.3g", gs[k], d,
                              (long long)r, fabs((double)y1[r] - y0[r]), bound);
            }
            const double rel = tp_rel_l2_f32(y1, y0, (size_t)R);
            cr_expect_gt(rel, 0.0, "int8 activations should round something");
            mean += rel / DRAWS;
            worst = rel > worst ? rel : worst;
        }
        fprintf(stderr, "W4A8 g%d vs fp32 activations: rel_l2 mean %.4f over %d draws (worst %.4f)\n", gs[k], mean,
                DRAWS, worst);
        cr_expect_leq(mean, 2.5e-2, "g%d: W4A8 vs fp32 activations mean rel_l2 %.3g", gs[k], mean);
        tp_qmat_free(&q);
        tp_free(xq); tp_free(xs);
        tp_free(W); tp_free(x); tp_free(y0); tp_free(y1);
    }
}

/* The INT4 GEMV gives every row the same bits whether the row runs in a multi-row pass (the
 * AVX-512 kernel's 4 rows, which share x's loads) or alone (a one-row view of the same arrays,
 * as embeddings use), at every ISA level: the property thread-count exactness rests on. Shapes
 * whose rows are not a multiple of 4, short rows (384 columns, the kernel's small-row setup), a
 * short last chunk and group, and g > 128 (a group over several chunks); x has an outlier. int4,
 * int4r2 (whose AVX-512 path adds the residual as a second integer dot) and nf4 (AVX-512 for
 * g >= 32: a vpermps of the levels): every group size here against the reference too, not only
 * the registry's cases; the error is measured against each row's sum of |w| times its chunk's largest |x|, at most 1e-6). */
Test(int4, gemv_rows_alone_same_bits) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 17);
    const tp_isa saved = tp_cpu_isa(), best = tp_cpu_best_isa();
    const int gs[] = {8, 16, 32, 64, 128, 256};
    const tp_qkind kinds[] = {TP_Q_INT4, TP_Q_INT4R2, TP_Q_NF4};
    const int64_t shapes[][2] = {{9, 384}, {11, 1000}, {6, 129}, {5, 2055}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int64_t R = shapes[si][0], C = shapes[si][1];
        float *W = tp_alloc(R * C * 4), *x = tp_alloc(C * 4), *y = tp_alloc(R * 4), *y1 = tp_alloc(R * 4);
        float *yr = tp_alloc(R * 4), *D = tp_alloc(R * C * 4);
        random_weights(W, R * C, &rng);
        for (int64_t c = 0; c < C; c++) x[c] = tp_rng_normal(&rng);
        x[C / 2] *= 50.0f;
        float xmax[32] = {0};
        for (int64_t c = 0; c < C; c++) xmax[c / 128] = fabsf(x[c]) > xmax[c / 128] ? fabsf(x[c]) : xmax[c / 128];
        for (size_t ki = 0; ki < 3; ki++)
        for (size_t gi = 0; gi < sizeof gs / sizeof gs[0]; gi++) {
            tp_qmat q;
            cr_assert_eq(tp_qmat_alloc(&q, kinds[ki], R, C, gs[gi]), TP_OK);
            tp_quantize_ref(&q, W, 0);
            tp_qgemv_ref(&q, x, yr);
            tp_dequantize_ref(&q, D);
            for (int isa = 0; isa <= (int)best; isa++) {
                tp_cpu_set_isa((tp_isa)isa);
                memset(y, 0xff, R * 4); /* NaN */
                tp_qgemv_cpu(&q, x, y);
                for (int64_t r = 0; r < R; r++) {
                    tp_qmat one = tp_qmat_rows(&q, r, r + 1);
                    tp_qgemv_cpu(&one, x, y1 + r);
                }
                float *y2 = tp_alloc(R * 4);
                memset(y2, 0xff, R * 4);
                tp_qgemv_set_streaming(2); /* 2 rows a pass (the streaming walk) */
                tp_qgemv_cpu(&q, x, y2);
                tp_qgemv_set_streaming(0);
                tp_cpu_set_isa(saved);
                const char *kn = tp_qkind_name(kinds[ki]);
                cr_expect_eq(memcmp(y, y1, R * 4), 0, "%s %s, %lldx%lld g%d: a row alone differs from its pass", kn,
                             tp_isa_name((tp_isa)isa), (long long)R, (long long)C, gs[gi]);
                cr_expect_eq(memcmp(y, y2, R * 4), 0, "%s %s, %lldx%lld g%d: 2 rows a pass differ from 4", kn,
                             tp_isa_name((tp_isa)isa), (long long)R, (long long)C, gs[gi]);
                tp_free(y2);
                /* error against sum_c |w_rc| amax_c, amax_c the largest |x| of c's 128-column chunk:
                 * the AVX-512 kernels round x to 2^-22 of that (and the outlier makes some rows'
                 * sums cancel, where |y| alone would measure the cancellation, not the kernel) */
                double worst = 0;
                for (int64_t r = 0; r < R; r++) {
                    double cond = 0;
                    for (int64_t c = 0; c < C; c++) cond += fabs((double)D[r * C + c]) * xmax[c / 128];
                    const double er = fabs((double)y[r] - yr[r]) / (cond > 0 ? cond : 1);
                    worst = er > worst ? er : worst;
                }
                cr_expect(worst <= 1e-6, "%s %s, %lldx%lld g%d: |y - ref| / sum |w x| = %.3g", kn, tp_isa_name((tp_isa)isa),
                          (long long)R, (long long)C, gs[gi], worst);
            }
            tp_qmat_free(&q);
        }
        tp_free(W); tp_free(x); tp_free(y); tp_free(y1); tp_free(yr); tp_free(D);
    }
}

/* The GEMM of many activation rows (>= 16: the tiles decoded to fp32 and multiplied by OpenBLAS's
 * sgemm) over several tiles and a short last one (4500x1000: tiles of 2048 rows; 2100x2048: 1024),
 * and the micro-kernel path just under it (15 rows), every kind, against the reference. */
/* Mode 1 of tp_qgemv_set_streaming measures which walk streams fastest (4, 2 or 1 rows a pass) over
 * its first rounds of GEMV weights, then keeps one: every product on the way and after, whichever
 * walk ran it, has the bits of mode 0's. */
Test(int4, gemv_streaming_measured_same_bits) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 23);
    const int64_t R = 1037, C = 4000; /* 2.1 MB a product: the 10 rounds of 64 MiB in ~320 calls */
    tp_qmat q;
    cr_assert_eq(tp_qmat_alloc(&q, TP_Q_INT4, R, C, 128), TP_OK);
    for (int64_t i = 0; i < R * q.code_stride; i++) q.codes[i] = (uint8_t)tp_rng_next(&rng);
    for (int64_t i = 0; i < R * q.ngroups; i++) {
        q.scale[i] = tp_f32_to_f16(0.01f + 0.02f * (float)tp_rng_uniform(&rng));
        q.offset[i] = tp_f32_to_f16(-0.1f - 0.2f * (float)tp_rng_uniform(&rng));
    }
    float *x = tp_alloc(C * 4), *y0 = tp_alloc(R * 4), *y = tp_alloc(R * 4);
    for (int64_t c = 0; c < C; c++) x[c] = tp_rng_normal(&rng);
    tp_qgemv_set_streaming(0);
    memset(y0, 0xff, R * 4);
    cr_assert_eq(tp_qgemv_cpu(&q, x, y0), TP_OK);
    tp_qgemv_set_streaming(1);
    cr_expect_eq(tp_qgemv_streaming_rows(), 0, "mode 1 starts measuring");
    int calls = 0, differ = 0;
    for (; calls < 400 && (calls < 4 || !tp_qgemv_streaming_rows()); calls++) {
        memset(y, 0xff, R * 4);
        cr_assert_eq(tp_qgemv_cpu(&q, x, y), TP_OK);
        differ += memcmp(y, y0, R * 4) != 0;
    }
    const int rows = tp_qgemv_streaming_rows();
    tp_qgemv_set_streaming(0);
    cr_expect_eq(differ, 0, "%d of %d products in mode 1 differ from mode 0's", differ, calls);
    if (tp_cpu_isa() >= TP_ISA_AVX512) /* the measured walk is the AVX-512 kernel's */
        cr_expect(rows == 1 || rows == 2 || rows == 4, "after %d products mode 1 chose %d rows a pass", calls, rows);
    tp_free(x); tp_free(y0); tp_free(y);
    tp_qmat_free(&q);
}

Test(int4, gemm_tiles_against_reference) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 29);
    const int64_t shapes[][3] = {{4500, 1000, 17}, {2100, 2048, 16}, {300, 130, 15}};
    const tp_qkind kinds[] = {TP_Q_INT4, TP_Q_INT4R2, TP_Q_NF4};
    const int gs[] = {128, 16, 64};
    for (size_t si = 0; si < 3; si++) {
        const int64_t R = shapes[si][0], C = shapes[si][1], B = shapes[si][2];
        float *W = tp_alloc(R * C * 4), *X = tp_alloc(B * C * 4), *Y = tp_alloc(B * R * 4), *Yr = tp_alloc(B * R * 4);
        random_weights(W, R * C, &rng);
        for (int64_t i = 0; i < B * C; i++) X[i] = tp_rng_normal(&rng);
        for (size_t ki = 0; ki < 3; ki++) {
            tp_qmat q;
            cr_assert_eq(tp_qmat_alloc(&q, kinds[ki], R, C, gs[ki]), TP_OK);
            tp_quantize_ref(&q, W, 0);
            cr_assert_eq(tp_qgemm_ref(&q, X, B, Yr), TP_OK);
            memset(Y, 0xff, B * R * 4); /* NaN */
            cr_assert_eq(tp_qgemm_cpu(&q, X, B, Y), TP_OK);
            double e = 0, n = 0;
            for (int64_t i = 0; i < B * R; i++) { e += (double)(Y[i] - Yr[i]) * (Y[i] - Yr[i]); n += (double)Yr[i] * Yr[i]; }
            cr_expect(sqrt(e / n) <= 1e-5, "%s %lldx%lldx%lld: rel L2 %.3g", tp_qkind_name(kinds[ki]), (long long)R,
                      (long long)C, (long long)B, sqrt(e / n));
            tp_qmat_free(&q);
        }
        tp_free(W); tp_free(X); tp_free(Y); tp_free(Yr);
    }
}

/* The AMX GEMM (kernels/cpu/amx/quant_amx.c; only where tp_cpu_amx()): against the double
 * reference on awkward shapes (outputs not a multiple of 16 or 32, batches not a multiple of the
 * 32-token block, K in several 1024-column chunks with a short last one, one to many groups), with
 * a bound of 1e-6: splitting x into three bf16 pieces is exact, so only fp32 sums remain (measured
 * 1e-7 .. 3e-7); with the third piece dropped the same draws gave 1.5e-5 .. 1.8e-5. The bits
 * do not depend on the blocking the thread count chooses (panels of outputs, blocks of tokens):
 * rows [r0, r1) alone, and the first tokens alone, give the same bits as inside the whole. */
/* A random case for the many-row INT4 GEMMs: q (R x C, group g) quantised from random weights,
 * X (B x C normal, every 7th element 1e-3 of that), Yr the double reference, Y poisoned (NaN) for
 * the kernel under test, Ys a second output. */
typedef struct gemm_case {
    tp_qmat q;
    int64_t n; /* B x R */
    float *X, *Y, *Yr, *Ys;
} gemm_case;
static void gemm_case_make(gemm_case *c, tp_rng *rng, int64_t R, int64_t C, int64_t B, int g) {
    float *W = tp_alloc(R * C * 4);
    c->n = B * R;
    c->X = tp_alloc(B * C * 4), c->Y = tp_alloc(B * R * 4), c->Yr = tp_alloc(B * R * 4), c->Ys = tp_alloc(B * R * 4);
    cr_assert(W && c->X && c->Y && c->Yr && c->Ys);
    random_weights(W, R * C, rng);
    for (int64_t i = 0; i < B * C; i++) c->X[i] = tp_rng_normal(rng) * (i % 7 == 0 ? 1e-3f : 1.0f);
    cr_assert_eq(tp_qmat_alloc(&c->q, TP_Q_INT4, R, C, g), TP_OK);
    tp_quantize_ref(&c->q, W, 0);
    tp_free(W);
    cr_assert_eq(tp_qgemm_ref(&c->q, c->X, B, c->Yr), TP_OK);
    memset(c->Y, 0xff, (size_t)c->n * 4); /* NaN */
}
static double gemm_case_rel_l2(const gemm_case *c) {
    double e = 0, n = 0;
    for (int64_t i = 0; i < c->n; i++) {
        e += (double)(c->Y[i] - c->Yr[i]) * (c->Y[i] - c->Yr[i]);
        n += (double)c->Yr[i] * c->Yr[i];
    }
    return sqrt(e / n);
}
static void gemm_case_free(gemm_case *c) {
    tp_qmat_free(&c->q);
    tp_free(c->X); tp_free(c->Y); tp_free(c->Yr); tp_free(c->Ys);
}

/* The AVX-512 VNNI GEMM (kernels/cpu/avx512vbmi/qgemm_vnni.c, what tp_qgemm_cpu runs for >= 16
 * rows of x where there is no AMX): against the double reference on awkward shapes (row counts
 * not a multiple of its 32-row panels, token counts not a multiple of its 2-token blocks, a short
 * last group; g 32, 64, 128, 256), and the bits of rows alone and of the first tokens alone equal those in the whole. */
Test(int4, gemm_vnni_matches_reference) {
    if (tp_cpu_isa() < TP_ISA_AVX512VBMI) {
        cr_log_info("int4 gemm_vnni: skipped: no AVX-512 VBMI / VNNI here, or capped by TENPAK_ISA");
        return;
    }
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 47);
    const int64_t shapes[][3] = {{77, 384, 33}, {200, 2176, 40}, {1, 128, 16}, {33, 1024, 17}, {130, 384, 19}};
    const int gs[] = {128, 256, 64, 32};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (size_t gi = 0; gi < 4; gi++) {
            const int64_t R = shapes[si][0], C = shapes[si][1], B = shapes[si][2];
            gemm_case c;
            gemm_case_make(&c, &rng, R, C, B, gs[gi]);
            tp_qmat q = c.q;
            float *X = c.X, *Y = c.Y, *Ys = c.Ys;
            cr_assert(tp_qgemm_vnni_shape_ok(&q));
            cr_assert_eq(tp_qgemm_vnni(&q, X, B, Y), 1);
            const double err = gemm_case_rel_l2(&c);
            cr_expect(err <= 1e-5, "vnni g%d %lldx%lldx%lld: rel L2 %.3g", gs[gi], (long long)R, (long long)C,
                      (long long)B, err);
            const int64_t r0 = R / 3, r1 = R - R / 5, b = B > 17 ? 17 : B - 1;
            const tp_qmat v = tp_qmat_rows(&q, r0, r1);
            memset(Ys, 0xff, B * R * 4);
            cr_assert_eq(tp_qgemm_vnni(&v, X, B, Ys), 1);
            for (int64_t t = 0; t < B; t++)
                cr_expect(memcmp(Ys + t * (r1 - r0), Y + t * R + r0, (size_t)(r1 - r0) * 4) == 0,
                          "vnni g%d %lldx%lldx%lld: rows %lld..%lld alone differ at token %lld", gs[gi], (long long)R,
                          (long long)C, (long long)B, (long long)r0, (long long)r1, (long long)t);
            memset(Ys, 0xff, B * R * 4);
            cr_assert_eq(tp_qgemm_vnni(&q, X, b, Ys), 1);
            cr_expect(memcmp(Ys, Y, (size_t)(b * R) * 4) == 0, "vnni g%d %lldx%lldx%lld: the first %lld tokens alone differ",
                      gs[gi], (long long)R, (long long)C, (long long)B, (long long)b);
            X[5] = NAN; /* not finite: nothing written, the caller takes the fp32 path */
            memset(Ys, 0x11, B * R * 4);
            cr_expect_eq(tp_qgemm_vnni(&q, X, B, Ys), 0);
            cr_expect(Ys[0] == Ys[B * R - 1] && Ys[0] != 0, "vnni: output written for a NaN x");
            gemm_case_free(&c);
        }
}

Test(int4, gemm_amx_matches_reference) {
    if (!tp_cpu_amx()) {
        cr_log_info("int4 gemm_amx: skipped: no AMX (tiles + bf16) here, or capped by TENPAK_ISA / TENPAK_AMX");
        return;
    }
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 31);
    const int64_t shapes[][3] = {{77, 384, 33}, {200, 2176, 40}, {1, 128, 16}, {33, 1024, 64}, {130, 96, 17}};
    const int gs[] = {128, 64, 32};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (size_t gi = 0; gi < 3; gi++) {
            const int64_t R = shapes[si][0], C = shapes[si][1], B = shapes[si][2];
            if (C % gs[gi]) continue;
            gemm_case c;
            gemm_case_make(&c, &rng, R, C, B, gs[gi]);
            tp_qmat q = c.q;
            float *X = c.X, *Y = c.Y, *Ys = c.Ys;
            cr_assert(tp_qgemm_amx_shape_ok(&q));
            cr_assert_eq(tp_qgemm_amx(&q, X, B, Y), TP_OK);
            const double err = gemm_case_rel_l2(&c);
            cr_expect(err <= 1e-6, "amx g%d %lldx%lldx%lld: rel L2 %.3g", gs[gi], (long long)R, (long long)C,
                      (long long)B, err);
            /* rows [r0, r1) as a matrix of their own, the first b tokens alone */
            const int64_t r0 = R / 3, r1 = R - R / 5, b = B > 17 ? 17 : B;
            const tp_qmat v = tp_qmat_rows(&q, r0, r1);
            memset(Ys, 0xff, B * R * 4);
            cr_assert_eq(tp_qgemm_amx(&v, X, B, Ys), TP_OK);
            for (int64_t t = 0; t < B; t++)
                cr_expect(memcmp(Ys + t * (r1 - r0), Y + t * R + r0, (size_t)(r1 - r0) * 4) == 0,
                          "amx g%d %lldx%lldx%lld: rows %lld..%lld alone differ at token %lld", gs[gi], (long long)R,
                          (long long)C, (long long)B, (long long)r0, (long long)r1, (long long)t);
            memset(Ys, 0xff, B * R * 4);
            cr_assert_eq(tp_qgemm_amx(&q, X, b, Ys), TP_OK);
            cr_expect(memcmp(Ys, Y, (size_t)(b * R) * 4) == 0, "amx g%d %lldx%lldx%lld: the first %lld tokens alone differ",
                      gs[gi], (long long)R, (long long)C, (long long)B, (long long)b);
            gemm_case_free(&c);
        }
}
