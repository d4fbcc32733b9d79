/* Low rank and tenpakx: every kernel against the reference / its property (registry, with
 * self-test), plus full-rank exactness, the benefit of importance weighting, and sizes. */
#include <math.h>

#include "tenpak/lowrank.h"
#include "verify/test_common.h"

Test(lowrank, registry) { verify_filter("^[a-z]+/lowrank_"); }
Test(tenpakx, registry) { verify_filter("^[a-z]+/tenpakx_"); }

/* The packed model's low-rank GEMV reads the binary16 factors where the artifact holds them
 * (tp_lowrank16_gemv_cpu) and must give the bits of the fp32 GEMV on the widened factors at every
 * ISA level (the chain and zip tests rest on it). Shapes: ranks that are not a multiple of 8 (the
 * row kernel's scalar tail), rows not a multiple of 8 or of the 128-row tasks, columns not a
 * multiple of 32 or 8 (the dot's tails), factors with fp16 subnormals and large values. */
Test(lowrank, f16_factors_same_bits) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 62);
    const int64_t shapes[][3] = {{1, 1, 1}, {37, 23, 5}, {300, 389, 32}, {129, 1031, 13}, {1000, 200, 64}, {8, 40, 9}};
    const tp_isa top = tp_cpu_best_isa(), saved = tp_cpu_isa();
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int64_t R = shapes[si][0], C = shapes[si][1];
        const int k = (int)shapes[si][2];
        tp_lowrank m;
        cr_assert_eq(tp_lowrank_alloc(&m, R, C, k), TP_OK);
        for (int64_t i = 0; i < R * k; i++) {
            float v = tp_rng_normal(&rng) * (tp_rng_below(&rng, 50) ? 0.1f : tp_rng_below(&rng, 2) ? 1e-6f : 300.0f);
            m.L[i] = tp_f16_to_f32(tp_f32_to_f16(v));
        }
        for (int64_t i = 0; i < C * k; i++) m.R[i] = tp_f16_to_f32(tp_f32_to_f16(tp_rng_normal(&rng) * 0.1f));
        uint16_t *h = tp_alloc(tp_lowrank_bytes(&m));
        float *x = tp_alloc((size_t)C * 4), *y32 = tp_alloc((size_t)R * 4), *y16 = tp_alloc((size_t)R * 4);
        for (int64_t i = 0; i < C; i++) x[i] = tp_rng_normal(&rng);
        tp_lowrank_pack(&m, h);
        const tp_lowrank16 v = {R, C, k, h, h + R * k};
        for (int isa = TP_ISA_PORTABLE; isa <= (int)top; isa++) {
            tp_cpu_set_isa((tp_isa)isa);
            for (int64_t i = 0; i < R; i++) y32[i] = y16[i] = NAN; /* poisoned */
            cr_assert_eq(tp_lowrank_gemv_cpu(&m, x, y32), TP_OK);
            cr_assert_eq(tp_lowrank16_gemv_cpu(&v, x, y16), TP_OK);
            for (int64_t i = 0; i < R; i++)
                cr_assert(memcmp(&y32[i], &y16[i], 4) == 0, "%lldx%lld rank %d, isa %d, row %lld: f16 %a, fp32 %a",
                          (long long)R, (long long)C, k, isa, (long long)i, y16[i], y32[i]);
        }
        tp_cpu_set_isa(saved);
        tp_free(h); tp_free(x); tp_free(y32); tp_free(y16);
        tp_lowrank_free(&m);
    }
}

static double werr(const float *W, const tp_lowrank *m, const float *imp) {
    float *P = tp_alloc((size_t)(m->rows * m->cols) * 4);
    tp_lowrank_product_ref(m, P);
    double e = 0;
    for (int64_t r = 0; r < m->rows; r++)
        for (int64_t c = 0; c < m->cols; c++) {
            double d = ((double)W[r * m->cols + c] - P[r * m->cols + c]) * (imp ? imp[c] : 1.0);
            e += d * d;
        }
    tp_free(P);
    return sqrt(e);
}

Test(lowrank, full_rank_and_importance) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 61);
    const int64_t R = 40, C = 23;
    float *W = tp_alloc(R * C * 4), *imp = tp_alloc(C * 4);
    double norm = 0;
    for (int64_t i = 0; i < R * C; i++) {
        W[i] = tp_rng_normal(&rng) * 0.02f;
        norm += (double)W[i] * W[i];
    }
    tp_err e;
    tp_lowrank full, plain, weighted;
    cr_assert_eq(tp_lowrank_alloc(&full, R, C, 32), TP_OK); /* rank > min(R, C): zero-padded factors */
    cr_assert_eq(tp_lowrank_fit(&full, W, NULL, &e), TP_OK, "%s", e.msg);
    cr_expect_leq(werr(W, &full, NULL), 2e-3 * sqrt(norm), "full rank: only the fp16 rounding is lost");
    /* strongly uneven column importance: the weighted fit wins on the weighted error */
    for (int64_t c = 0; c < C; c++) imp[c] = c < 4 ? 20.0f : 1.0f;
    cr_assert_eq(tp_lowrank_alloc(&plain, R, C, 6), TP_OK);
    cr_assert_eq(tp_lowrank_alloc(&weighted, R, C, 6), TP_OK);
    cr_assert_eq(tp_lowrank_fit(&plain, W, NULL, &e), TP_OK);
    cr_assert_eq(tp_lowrank_fit(&weighted, W, imp, &e), TP_OK);
    cr_expect_lt(werr(W, &weighted, imp), werr(W, &plain, imp), "importance weighting did not help");
    cr_expect_lt(werr(W, &plain, NULL), werr(W, &weighted, NULL) * 1.001, "the plain fit is optimal unweighted");
    tp_lowrank_free(&full);
    tp_lowrank_free(&plain);
    tp_lowrank_free(&weighted);
    tp_free(W);
    tp_free(imp);
}

/* bits/weight: rank 32 fp16 factors at 4096^2 = 0.25; tenpakx = 0.25 + 2 (VQ) + 5 (INT4 g32) + codebook */
Test(tenpakx, sizes) {
    const double n = 4096.0 * 4096.0;
    cr_expect_eq(8.0 * tp_lowrank_bytes_for(4096, 4096, 32) / n, 0.25);
    double b = 8.0 * tp_tenpakx_bytes_for(4096, 4096, NULL) / n;
    cr_expect_lt(fabs(b - 7.25098), 0.0001, "%g bits/weight", b);
}
