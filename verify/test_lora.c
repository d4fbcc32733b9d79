/* LoRA: every kernel against the reference (registry, with self-test), plus merge/unmerge
 * round trip within the stated bound, BGMV = per-column GEMV, re-quantised merge error; SGMV cpu =
 * reference = BGMV with the expanded index, invalid segment tables rejected. */
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

/* ---- SGMV (segments of columns, one adapter each) ---- */

/* a random segment table of nseg segments over batch columns: random cuts, segment e emptied,
 * adapters uniform (nseg > nad: some adapter repeats); idx = the expanded per-column adapters */
static void random_segments(tp_rng *rng, int nad, int nseg, int64_t batch, int32_t *seg, int32_t *sad, int32_t *idx) {
    seg[0] = 0;
    seg[nseg] = (int32_t)batch;
    for (int s = 1; s < nseg; s++) {
        int32_t v = (int32_t)tp_rng_below(rng, (uint32_t)batch + 1), j = s;
        for (; j > 1 && seg[j - 1] > v; j--) seg[j] = seg[j - 1];
        seg[j] = v;
    }
    const int e = (int)tp_rng_below(rng, (uint32_t)nseg);
    if (e + 1 < nseg) seg[e + 1] = seg[e];
    else seg[e] = (int32_t)batch;
    for (int s = 0; s < nseg; s++) {
        sad[s] = (int32_t)tp_rng_below(rng, (uint32_t)nad);
        for (int64_t b = seg[s]; b < seg[s + 1]; b++) idx[b] = sad[s];
    }
}

/* sgmv cpu (every ISA) = reference and = bgmv with the expanded index, on fresh random inputs of
 * awkward sizes, for fp32, INT4 and NF4 bases (the relative L2 bound of the registry ops) */
Test(lora, sgmv_cpu_vs_ref_and_bgmv) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 54);
    const int64_t sizes[][3] = {{1, 1, 1}, {3, 7, 5}, {33, 257, 19}, {67, 150, 16}, {130, 384, 2}};
    for (int si = 0; si < 5; si++) {
        const int64_t R = sizes[si][0], C = sizes[si][1], B = sizes[si][2];
        float *W = tp_alloc(R * C * 4), *X = tp_alloc(B * C * 4), *Yr = tp_alloc(B * R * 4), *Yc = tp_alloc(B * R * 4),
              *Yb = tp_alloc(B * R * 4);
        for (int64_t i = 0; i < R * C; i++) W[i] = tp_rng_normal(&rng) * 0.02f;
        for (int64_t i = 0; i < B * C; i++) X[i] = tp_rng_normal(&rng);
        tp_lora ad[4];
        for (int a = 0; a < 4; a++) make(&ad[a], R, C, 8 << (a & 1), &rng); /* ranks 8 and 16 */
        int32_t seg[7], sad[6], idx[32];
        random_segments(&rng, 4, 6, B, seg, sad, idx);
        for (int kind = 0; kind < 3; kind++) {
            tp_qmat q;
            tp_lora_base base = {.W = W, .rows = R, .cols = C};
            if (kind) {
                cr_assert_eq(tp_qmat_alloc(&q, kind == 1 ? TP_Q_INT4 : TP_Q_NF4, R, C, kind == 1 ? 128 : 64), TP_OK);
                tp_quantize_ref(&q, W, 0);
                base.W = NULL;
                base.q = &q;
            }
            cr_assert_eq(tp_lora_sgmv_ref(&base, ad, 4, seg, sad, 6, X, B, Yr), TP_OK);
            for (int isa = tp_cpu_best_isa(); isa >= 0; isa--) {
                tp_cpu_set_isa((tp_isa)isa);
                for (int64_t i = 0; i < B * R; i++) Yc[i] = NAN; /* poisoned: every output must be written */
                cr_assert_eq(tp_lora_sgmv_cpu(&base, ad, 4, seg, sad, 6, X, B, Yc), TP_OK);
                cr_expect_leq(tp_rel_l2_f32(Yc, Yr, (size_t)(B * R)), 1e-5, "sgmv cpu (%s) %lldx%lldx%lld base %d",
                              tp_isa_name((tp_isa)isa), (long long)R, (long long)C, (long long)B, kind);
                cr_assert_eq(tp_lora_bgmv_cpu(&base, ad, 4, idx, X, B, Yb), TP_OK);
                cr_expect_leq(tp_rel_l2_f32(Yc, Yb, (size_t)(B * R)), 1e-5, "sgmv != bgmv (%s) %lldx%lldx%lld base %d",
                              tp_isa_name((tp_isa)isa), (long long)R, (long long)C, (long long)B, kind);
            }
            tp_cpu_set_isa(tp_cpu_best_isa());
            cr_assert_eq(tp_lora_bgmv_ref(&base, ad, 4, idx, X, B, Yb), TP_OK);
            cr_expect_leq(tp_rel_l2_f32(Yr, Yb, (size_t)(B * R)), 1e-5, "sgmv ref != bgmv ref, base %d", kind);
            if (kind) tp_qmat_free(&q);
        }
        for (int a = 0; a < 4; a++) tp_lora_free(&ad[a]);
        tp_free(W); tp_free(X); tp_free(Yr); tp_free(Yc); tp_free(Yb);
    }
}

/* invalid segment tables: TP_ERR_ARG from the reference and the cpu kernel, output untouched */
Test(lora, sgmv_rejects_bad_segments) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 55);
    const int64_t R = 9, C = 20, B = 6;
    float W[9 * 20], X[6 * 20], Y[6 * 9];
    for (int i = 0; i < R * C; i++) W[i] = tp_rng_normal(&rng) * 0.02f;
    for (int i = 0; i < B * C; i++) X[i] = tp_rng_normal(&rng);
    tp_lora ad[2];
    for (int a = 0; a < 2; a++) make(&ad[a], R, C, 8, &rng);
    tp_lora_base base = {.W = W, .rows = R, .cols = C};
    const struct { int32_t seg[4], sad[3]; int nseg; const char *why; } bad[] = {
        {{1, 3, 4, 6}, {0, 1, 0}, 3, "seg[0] != 0"},
        {{0, 4, 3, 6}, {0, 1, 0}, 3, "decreasing"},
        {{0, 3, 4, 5}, {0, 1, 0}, 3, "seg[nseg] != batch"},
        {{0, 3, 4, 7}, {0, 1, 0}, 3, "seg[nseg] > batch"},
        {{0, 3, 4, 6}, {0, 2, 0}, 3, "adapter == nad"},
        {{0, 3, 4, 6}, {0, -1, 0}, 3, "negative adapter"},
        {{0, 3, 4, 6}, {0, 1, 0}, -1, "nseg < 0"},
        {{0, 3, 4, 6}, {0, 1, 0}, 0, "no segment for 6 columns"},
    };
    for (size_t t = 0; t < sizeof bad / sizeof bad[0]; t++) {
        for (int i = 0; i < B * R; i++) Y[i] = 1.5f;
        cr_expect_eq(tp_lora_sgmv_ref(&base, ad, 2, bad[t].seg, bad[t].sad, bad[t].nseg, X, B, Y), TP_ERR_ARG, "ref: %s", bad[t].why);
        cr_expect_eq(tp_lora_sgmv_cpu(&base, ad, 2, bad[t].seg, bad[t].sad, bad[t].nseg, X, B, Y), TP_ERR_ARG, "cpu: %s", bad[t].why);
        for (int i = 0; i < B * R; i++) cr_assert_eq(Y[i], 1.5f, "%s: output written", bad[t].why);
    }
    /* the valid table of the same shape, with an empty segment and a repeated adapter, passes */
    const int32_t seg[4] = {0, 3, 3, 6}, sad[3] = {1, 0, 1};
    cr_expect_eq(tp_lora_sgmv_cpu(&base, ad, 2, seg, sad, 3, X, B, Y), TP_OK);
    for (int a = 0; a < 2; a++) tp_lora_free(&ad[a]);
}
