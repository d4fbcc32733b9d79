/* Low rank and tenpakx: every kernel against the reference / its property (registry, with
 * self-test), plus full-rank exactness, the benefit of importance weighting, and sizes. */
#include <math.h>

#include "tenpak/lowrank.h"
#include "verify/test_common.h"

Test(lowrank, registry) { verify_filter("^[a-z]+/lowrank_"); }
Test(tenpakx, registry) { verify_filter("^[a-z]+/tenpakx_"); }

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
