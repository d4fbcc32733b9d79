/* LoRA: every kernel against the reference (registry, with self-test), plus merge/unmerge
 * round trip within the stated bound, BGMV = per-column GEMV, re-quantised merge error. */
#include <math.h>
#include <string.h>

#include "tenpak/lora.h"
#include "verify/test_common.h"

Test(lora, registry) { verify_filter("/lora_"); }

static void make(tp_lora *l, int64_t R, int64_t C, int r, tp_rng *rng) {
    cr_assert_eq(tp_lora_alloc(l, R, C, r, 2.0f * r), TP_OK);
    for (int64_t i = 0; i < r * C; i++) l->A[i] = tp_rng_normal(rng) / sqrtf((float)C);
    for (int64_t i = 0; i < R * r; i++) l->B[i] = tp_rng_normal(rng) * 0.02f;
}

/* |unmerge(merge(W)) - W| <= 2^-24 (|W + d| + |W|) elementwise (lora.h); cpu equals the reference */
Test(lora, merge_unmerge) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 51);
    const int64_t R = 29, C = 77;
    float *W = tp_alloc(R * C * 4), *M = tp_alloc(R * C * 4), *M2 = tp_alloc(R * C * 4), *U = tp_alloc(R * C * 4);
    for (int64_t i = 0; i < R * C; i++) W[i] = tp_rng_normal(&rng) * 0.02f;
    const int ranks[4] = {8, 16, 32, 64};
    for (int t = 0; t < 4; t++) {
        tp_lora l;
        make(&l, R, C, ranks[t], &rng);
        tp_lora_merge_ref(W, &l, M);
        for (int isa = tp_cpu_best_isa(); isa >= 0; isa--) {
            tp_cpu_set_isa((tp_isa)isa);
            tp_lora_merge_cpu(W, &l, M2);
            cr_expect_eq(memcmp(M, M2, R * C * 4), 0, "merge cpu (%s) differs from the reference", tp_isa_name((tp_isa)isa));
            tp_lora_unmerge_cpu(M, &l, U);
            for (int64_t i = 0; i < R * C; i++)
                cr_assert_leq(fabs((double)U[i] - W[i]), 0x1p-24 * (fabs((double)M[i]) + fabs((double)W[i])) + 1e-45,
                              "r%d element %lld: %a vs %a", ranks[t], (long long)i, U[i], W[i]);
        }
        tp_cpu_set_isa(tp_cpu_best_isa());
        tp_lora_free(&l);
    }
    tp_free(W); tp_free(M); tp_free(M2); tp_free(U);
}

/* one BGMV call = each column's own GEMV with its adapter */
Test(lora, bgmv_is_per_column_gemv) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 52);
    const int64_t R = 67, C = 150, B = 7;
    float *W = tp_alloc(R * C * 4), *X = tp_alloc(B * C * 4), *Y = tp_alloc(B * R * 4), *y = tp_alloc(R * 4);
    for (int64_t i = 0; i < R * C; i++) W[i] = tp_rng_normal(&rng) * 0.02f;
    for (int64_t i = 0; i < B * C; i++) X[i] = tp_rng_normal(&rng);
    tp_qmat q;
    cr_assert_eq(tp_qmat_alloc(&q, TP_Q_NF4, R, C, 64), TP_OK);
    tp_quantize_ref(&q, W, 0);
    tp_lora ad[3];
    for (int a = 0; a < 3; a++) make(&ad[a], R, C, 8 << a, &rng); /* different ranks per adapter */
    int32_t idx[7] = {2, 0, 0, 1, 2, 2, 1};
    tp_lora_base base = {.q = &q, .rows = R, .cols = C};
    tp_lora_bgmv_cpu(&base, ad, 3, idx, X, B, Y);
    for (int64_t b = 0; b < B; b++) {
        tp_lora_gemv_ref(&base, &ad[idx[b]], X + b * C, y);
        cr_expect_leq(tp_rel_l2_f32(Y + b * R, y, (size_t)R), 1e-5, "column %lld", (long long)b);
    }
    for (int a = 0; a < 3; a++) tp_lora_free(&ad[a]);
    tp_qmat_free(&q);
    tp_free(W); tp_free(X); tp_free(Y); tp_free(y);
}

/* merge into INT4: every element within half a step of dequant(q) + s B A */
Test(lora, merge_requantised) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 53);
    const int64_t R = 21, C = 130;
    float *W = tp_alloc(R * C * 4), *D = tp_alloc(R * C * 4), *M = tp_alloc(R * C * 4), *Q = tp_alloc(R * C * 4);
    for (int64_t i = 0; i < R * C; i++) W[i] = tp_rng_normal(&rng) * 0.02f;
    tp_qmat q, o;
    cr_assert_eq(tp_qmat_alloc(&q, TP_Q_INT4, R, C, 32), TP_OK);
    cr_assert_eq(tp_qmat_alloc(&o, TP_Q_INT4, R, C, 32), TP_OK);
    tp_quantize_ref(&q, W, 0);
    tp_lora l;
    make(&l, R, C, 16, &rng);
    cr_assert_eq(tp_lora_merge_q_cpu(&q, &l, &o), TP_OK);
    tp_dequantize_ref(&q, D);
    tp_lora_merge_ref(D, &l, M);
    tp_dequantize_ref(&o, Q);
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++) {
            double s = tp_f16_to_f32(o.scale[r * o.ngroups + c / 32]);
            cr_assert_leq(fabs((double)Q[r * C + c] - M[r * C + c]), 0.5 * s + 0x1p-22 * fabs(M[r * C + c]));
        }
    tp_lora_free(&l);
    tp_qmat_free(&q);
    tp_qmat_free(&o);
    tp_free(W); tp_free(D); tp_free(M); tp_free(Q);
}
