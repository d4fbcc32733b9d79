/* The mixed allocator (pipeline/sensitivity.h): a budget equal to a uniform candidate's bytes never
 * ends above that candidate's summed proxy, on tensors with fake calibration statistics (diagonal
 * and full second moment); the budget is kept; on small random instances it is compared with the
 * exhaustive optimum; Spearman's correlation on hand-computed cases. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/codec.h"
#include "pipeline/sensitivity.h"
#include "pipeline/stats.h"
#include "verify/test_common.h"

/* W with a few outliers; activation statistics spread over orders of magnitude (a few outlier
 * channels), from nx random activation rows so that X^T X is a real second moment */
typedef struct fake_tensor {
    int64_t R, C;
    float *W, *am, *sq;
    double *xtx;
    int64_t nx;
} fake_tensor;

static void fake_make(tp_rng *r, int64_t R, int64_t C, fake_tensor *t) {
    t->R = R;
    t->C = C;
    t->nx = 64;
    t->W = malloc((size_t)(R * C) * 4);
    t->am = calloc((size_t)C, 4);
    t->sq = calloc((size_t)C, 4);
    t->xtx = calloc((size_t)(C * C), sizeof(double));
    double *scale = malloc((size_t)C * sizeof *scale), *x = malloc((size_t)C * sizeof *x);
    double *as = calloc((size_t)C, sizeof *as), *ss = calloc((size_t)C, sizeof *ss);
    for (int64_t i = 0; i < R * C; i++) t->W[i] = 0.05f * tp_rng_normal(r) + (tp_rng_uniform(r) < 0.01 ? 0.5f : 0.0f);
    for (int64_t c = 0; c < C; c++) scale[c] = exp(1.2 * tp_rng_normal(r)) * (tp_rng_uniform(r) < 0.03 ? 20 : 1);
    for (int64_t n = 0; n < t->nx; n++) {
        double common = tp_rng_normal(r); /* correlated channels: the off-diagonal matters */
        for (int64_t c = 0; c < C; c++) x[c] = scale[c] * (tp_rng_normal(r) + 0.5 * common);
        for (int64_t a = 0; a < C; a++) {
            as[a] += fabs(x[a]);
            ss[a] += x[a] * x[a];
            for (int64_t b = 0; b < C; b++) t->xtx[a * C + b] += x[a] * x[b];
        }
    }
    for (int64_t c = 0; c < C; c++) {
        t->am[c] = (float)(as[c] / (double)t->nx);
        t->sq[c] = (float)(ss[c] / (double)t->nx);
    }
    free(scale); free(x); free(as); free(ss);
}
static void fake_free(fake_tensor *t) { free(t->W); free(t->am); free(t->sq); free(t->xtx); }

/* every uniform candidate's bytes as the budget: the plan fits it and its proxy is at most the
 * uniform one's */
static void never_worse_than_uniform(const char *spec, int full) {
    uint64_t seed = test_seed();
    tp_rng r;
    tp_rng_seed(&r, seed ^ (full ? 0x77f1 : 0x3c2d) ^ (uint64_t)strlen(spec));
    static const int64_t shapes[][2] = {{48, 256}, {96, 128}, {32, 384}, {64, 256}, {80, 128}, {16, 512}};
    enum { NT = sizeof shapes / sizeof shapes[0] };
    tp_codec mixed;
    tp_err e;
    cr_assert_eq(tp_codec_parse(spec, &mixed, &e), TP_OK, "%s", e.msg);
    tp_mixed_choice *ch = calloc(NT * TP_MIXED_MAX_CANDIDATES, sizeof *ch);
    int nc = -1;
    for (int j = 0; j < NT; j++) {
        fake_tensor t;
        fake_make(&r, shapes[j][0], shapes[j][1], &t);
        int got = 0;
        cr_assert_eq(tp_mixed_measure(&mixed, t.W, t.R, t.C, t.am, t.sq, full ? t.xtx : NULL, full ? t.nx : 0, full,
                                      ch + (size_t)j * TP_MIXED_MAX_CANDIDATES, &got, &e), TP_OK, "%s", e.msg);
        cr_assert(nc < 0 || got == nc);
        nc = got;
        fake_free(&t);
    }
    /* compact to nc per tensor */
    tp_mixed_choice *cc = calloc((size_t)(NT * nc), sizeof *cc);
    for (int j = 0; j < NT; j++) memcpy(cc + j * nc, ch + (size_t)j * TP_MIXED_MAX_CANDIDATES, (size_t)nc * sizeof *cc);
    int pick[NT], checked = 0, strictly = 0;
    for (int k = 0; k < nc; k++) {
        double ub = 0, us = 0;
        for (int j = 0; j < NT; j++) { ub += (double)cc[j * nc + k].bytes; us += cc[j * nc + k].sens; }
        if (!isfinite(us)) continue; /* a candidate this statistics cannot run (gptq without X^T X) */
        cr_assert_eq(tp_mixed_allocate(cc, NT, nc, ub, pick, &e), TP_OK, "%s", e.msg);
        double pb = 0, ps = 0;
        for (int j = 0; j < NT; j++) { pb += (double)cc[j * nc + pick[j]].bytes; ps += cc[j * nc + pick[j]].sens; }
        cr_expect_leq(pb, ub, "%s: budget of uniform %s (%.0f bytes) exceeded: %.0f (seed %llu)", spec, cc[k].spec, ub, pb,
                      (unsigned long long)seed);
        cr_expect_leq(ps, us * (1 + 1e-12), "%s: plan's proxy %.8g above uniform %s's %.8g at its bytes (seed %llu)", spec, ps,
                      cc[k].spec, us, (unsigned long long)seed);
        checked++;
        strictly += ps < us * (1 - 1e-9);
    }
    fprintf(stderr, "%s (%s proxy): %d candidates, plan never above the uniform one at its bytes, strictly below for %d\n",
            spec, full ? "full" : "diag", checked, strictly);
    cr_expect_geq(checked, 8, "%s: only %d uniform candidates checked", spec, checked);
    free(ch);
    free(cc);
}

Test(mixed, never_worse_than_uniform_diag) { never_worse_than_uniform("mixed:budget=5,awq=1", 0); }
Test(mixed, never_worse_than_uniform_full) { never_worse_than_uniform("mixed:budget=4.5,awq=1", 1); }
Test(mixed, never_worse_than_uniform_int4_only) { never_worse_than_uniform("mixed:budget=6,awq=0", 0); }

/* the candidates: refined and plain int4 at g 128..32 always, awq only with awq=1, the finer and
 * int4r2 formats only where the budget allows, sorted by bits/weight */
Test(mixed, candidates) {
    tp_codec c;
    tp_err e;
    char out[TP_MIXED_MAX_CANDIDATES][96];
    cr_assert_eq(tp_codec_parse("mixed:budget=4.5", &c, &e), TP_OK, "%s", e.msg);
    int n = tp_codec_mixed_candidates(&c, out, TP_MIXED_MAX_CANDIDATES);
    const char *want[] = {"int4:g=128,refine=0", "int4:g=128,refine=4", "int4:g=64,refine=4", "int4:g=32,refine=0",
                          "int4:g=32,refine=4", "nf4:g=64"};
    for (size_t w = 0; w < sizeof want / sizeof want[0]; w++) {
        int found = 0;
        for (int k = 0; k < n; k++) found |= !strcmp(out[k], want[w]);
        cr_expect(found, "mixed:budget=4.5 lacks %s", want[w]);
    }
    for (int k = 0; k < n; k++) {
        cr_expect(strncmp(out[k], "awq", 3) && strncmp(out[k], "int4r2", 6) && strcmp(out[k], "int4:g=16,refine=0"),
                  "mixed:budget=4.5 offers %s", out[k]);
        tp_codec a, b;
        if (k) {
            cr_assert_eq(tp_codec_parse(out[k - 1], &a, &e), TP_OK, "%s", e.msg);
            cr_assert_eq(tp_codec_parse(out[k], &b, &e), TP_OK, "%s", e.msg);
            cr_expect_leq(tp_codec_theory_bpw(&a, 4096, 4096), tp_codec_theory_bpw(&b, 4096, 4096), "%s before %s", out[k - 1], out[k]);
        }
    }
    cr_assert_eq(tp_codec_parse("mixed:budget=6,awq=1", &c, &e), TP_OK, "%s", e.msg);
    n = tp_codec_mixed_candidates(&c, out, TP_MIXED_MAX_CANDIDATES);
    int awq = 0, r2 = 0, g16 = 0;
    for (int k = 0; k < n; k++) {
        awq += !strncmp(out[k], "awq:", 4);
        r2 += !strncmp(out[k], "int4r2:", 7);
        g16 += !strcmp(out[k], "int4:g=16,refine=4");
    }
    cr_expect_eq(awq, 8, "awq at g 128..16, refine 0 and 4: %d", awq);
    cr_expect_geq(r2, 2, "int4r2 within budget + 1: %d", r2);
    cr_expect_eq(g16, 1);
}

/* small random instances against the exhaustive optimum: always within the budget and never above
 * the best uniform assignment; how often optimal is printed */
Test(mixed, allocator_against_exhaustive) {
    uint64_t seed = test_seed();
    tp_rng r;
    tp_rng_seed(&r, seed ^ 0xa110c);
    enum { N = 5, K = 5 };
    int optimal = 0, trials = 300;
    double worst = 0;
    for (int t = 0; t < trials; t++) {
        tp_mixed_choice ch[N * K];
        for (int j = 0; j < N; j++)
            for (int k = 0; k < K; k++) {
                ch[j * K + k].bytes = 100 + tp_rng_below(&r, 200);
                ch[j * K + k].sens = tp_rng_uniform(&r) * 100.0 / (double)ch[j * K + k].bytes;
                snprintf(ch[j * K + k].spec, sizeof ch[0].spec, "c%d", k);
            }
        double minb = 0, maxb = 0;
        for (int j = 0; j < N; j++) {
            size_t lo = SIZE_MAX, hi = 0;
            for (int k = 0; k < K; k++) {
                if (ch[j * K + k].bytes < lo) lo = ch[j * K + k].bytes;
                if (ch[j * K + k].bytes > hi) hi = ch[j * K + k].bytes;
            }
            minb += (double)lo;
            maxb += (double)hi;
        }
        double limit = minb + tp_rng_uniform(&r) * (maxb - minb);
        int pick[N];
        tp_err e;
        cr_assert_eq(tp_mixed_allocate(ch, N, K, limit, pick, &e), TP_OK, "%s", e.msg);
        double pb = 0, ps = 0;
        for (int j = 0; j < N; j++) { pb += (double)ch[j * K + pick[j]].bytes; ps += ch[j * K + pick[j]].sens; }
        cr_assert_leq(pb, limit, "budget exceeded (seed %llu, trial %d)", (unsigned long long)seed, t);
        double best = INFINITY;
        int idx[N] = {0};
        for (;;) {
            double b = 0, s = 0;
            for (int j = 0; j < N; j++) { b += (double)ch[j * K + idx[j]].bytes; s += ch[j * K + idx[j]].sens; }
            if (b <= limit && s < best) best = s;
            int j = 0;
            while (j < N && ++idx[j] == K) idx[j++] = 0;
            if (j == N) break;
        }
        for (int k = 0; k < K; k++) {
            double b = 0, s = 0;
            for (int j = 0; j < N; j++) { b += (double)ch[j * K + k].bytes; s += ch[j * K + k].sens; }
            if (b <= limit) cr_assert_leq(ps, s * (1 + 1e-12), "above uniform c%d (seed %llu, trial %d)", k, (unsigned long long)seed, t);
        }
        cr_assert_geq(ps, best * (1 - 1e-12));
        optimal += ps <= best * (1 + 1e-12);
        if (ps / best - 1 > worst) worst = ps / best - 1;
    }
    fprintf(stderr, "allocator vs exhaustive on %d random %dx%d instances: optimal on %d, worst %.3f%% above\n", trials, N, K,
            optimal, 100 * worst);
    cr_expect_geq(optimal, trials / 2, "optimal on only %d of %d", optimal, trials);
    /* a budget below every tensor's fewest bytes is refused */
    tp_mixed_choice one[2] = {{"a", 10, 1, NULL}, {"b", 20, 0.5, NULL}};
    int p;
    tp_err e;
    cr_expect_neq(tp_mixed_allocate(one, 1, 2, 9, &p, &e), TP_OK);
}

Test(mixed, spearman) {
    double x[5] = {1, 2, 3, 4, 5}, y[5] = {10, 20, 30, 40, 50}, z[5] = {5, 4, 3, 2, 1}, t[5] = {1, 2, 2, 3, 9};
    cr_expect_float_eq(tp_spearman(x, y, 5), 1.0, 1e-12);
    cr_expect_float_eq(tp_spearman(x, z, 5), -1.0, 1e-12);
    /* ties get the average rank: ranks of t are 1, 2.5, 2.5, 4, 5 */
    double rt[5] = {1, 2.5, 2.5, 4, 5};
    cr_expect_float_eq(tp_spearman(x, t, 5), tp_pearson(x, rt, 5), 1e-12);
    double c[3] = {1, 1, 1};
    cr_expect(isnan(tp_spearman(x, c, 3)));
}

/* the proxies on a hand-sized case: diag uses only H's diagonal, full the whole matrix */
Test(mixed, proxies) {
    float W[4] = {1, 2, 3, 4}, D[4] = {1.5f, 2, 3, 3}; /* dW rows: (0.5, 0), (0, -1) */
    float sq[2] = {2, 3};
    double H[4] = {2, 1, 1, 3};
    cr_expect_float_eq(tp_proxy_diag(W, D, 2, 2, sq), 2 * 0.25 + 3 * 1.0, 1e-12);
    cr_expect_float_eq(tp_proxy_diag(W, D, 2, 2, NULL), 1.25, 1e-12);
    cr_expect_float_eq(tp_proxy_full(W, D, 2, 2, H), 2 * 0.25 + 3 * 1.0, 1e-12); /* no row has two nonzeros */
    float D2[4] = {1.5f, 2.5f, 3, 4}; /* dW row 0 = (0.5, 0.5): d H d = 0.25 (2 + 2 + 3) */
    cr_expect_float_eq(tp_proxy_full(W, D2, 2, 2, H), 0.25 * 7, 1e-12);
}
