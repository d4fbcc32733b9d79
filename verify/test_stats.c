/* pipeline/stats.h on cases computed by hand: quantiles, standard error, Pearson, the block
 * bootstrap's intervals, and the summary of a paired evaluation's per-token records. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/stats.h"

#define NEAR(a, b) cr_expect_float_eq((a), (b), 1e-12, "%s = %.17g, expected %.17g", #a, (double)(a), (double)(b))

Test(stats, quantiles) {
    const double x[] = {1, 2, 3, 4};
    NEAR(tp_quantile_sorted(x, 4, 0), 1);
    NEAR(tp_quantile_sorted(x, 4, 1), 4);
    NEAR(tp_quantile_sorted(x, 4, 0.5), 2.5);  /* h = 1.5 */
    NEAR(tp_quantile_sorted(x, 4, 0.25), 1.75); /* h = 0.75 */
    NEAR(tp_quantile_sorted(x, 4, 0.9), 3.7);   /* h = 2.7 */
    NEAR(tp_quantile_sorted(x, 1, 0.99), 1);
    double y[] = {3, -1, 2, 0.5};
    tp_sort_doubles(y, 4);
    NEAR(y[0], -1);
    NEAR(y[3], 3);
    NEAR(tp_quantile_sorted(y, 4, 0.5), 1.25);
}

Test(stats, stderr_and_pearson) {
    /* 1, 2, 3, 4: sample variance (30 - 100 / 4) / 3 = 5/3, standard error sqrt(5/12) */
    NEAR(tp_stderr_from_sums(10, 30, 4), sqrt(5.0 / 12.0));
    NEAR(tp_stderr_from_sums(5, 25, 1), 0);
    NEAR(tp_stderr_from_sums(6, 12, 3), 0); /* 2, 2, 2 */
    const double a[] = {1, 2, 3, 4}, up[] = {2, 4, 6, 8}, down[] = {8, 6, 4, 2}, mid[] = {1, 3, 2, 4}, flat[] = {5, 5, 5, 5};
    NEAR(tp_pearson(a, up, 4), 1);
    NEAR(tp_pearson(a, down, 4), -1);
    NEAR(tp_pearson(a, mid, 4), 0.8); /* sxy 4, sxx = syy = 5 */
    cr_expect(isnan(tp_pearson(a, flat, 4)));
    cr_expect(isnan(tp_pearson(a, up, 1)));
}

static double mean_stat(const double *s, double count) { return s[0] / count; }

/* One block: every resample is the sample itself, so the interval has zero width. */
Test(stats, bootstrap_one_block) {
    const double v[] = {0.5, 1.5, 4, 2};
    const double *cols[1] = {v};
    tp_boot_stat st = mean_stat;
    tp_interval ci;
    tp_err e;
    tp_boot_opts o = {.resamples = 1000, .block_len = 4, .seed = 3};
    cr_assert_eq(tp_block_bootstrap(cols, 1, 4, &o, &st, 1, &ci, &e), TP_OK, "%s", e.msg);
    NEAR(ci.lo, 2);
    NEAR(ci.hi, 2);
}

/* Two blocks {0, 0} and {1, 1}: a resample's mean is 0, 1/2 or 1 with probabilities 1/4, 1/2, 1/4,
 * so with 2000 resamples the 2.5% and 97.5% quantiles are 0 and 1; blocks of one token would
 * give means in steps of 1/4. The same seed gives the same draws. */
Test(stats, bootstrap_two_blocks) {
    const double v[] = {0, 0, 1, 1};
    const double *cols[1] = {v};
    tp_boot_stat st = mean_stat;
    tp_interval a, b, c;
    tp_err e;
    tp_boot_opts o = {.resamples = 2000, .block_len = 2, .seed = 11};
    cr_assert_eq(tp_block_bootstrap(cols, 1, 4, &o, &st, 1, &a, &e), TP_OK, "%s", e.msg);
    NEAR(a.lo, 0);
    NEAR(a.hi, 1);
    cr_assert_eq(tp_block_bootstrap(cols, 1, 4, &o, &st, 1, &b, &e), TP_OK, "%s", e.msg);
    cr_expect(a.lo == b.lo && a.hi == b.hi);
    o.block_len = 1;
    cr_assert_eq(tp_block_bootstrap(cols, 1, 4, &o, &st, 1, &c, &e), TP_OK, "%s", e.msg);
    cr_expect(c.lo >= 0 && c.lo <= 0.25 && c.hi >= 0.75 && c.hi <= 1, "[%g, %g]", c.lo, c.hi);
    cr_expect_neq(tp_block_bootstrap(cols, 1, 0, &o, &st, 1, &c, &e), TP_OK, "no values accepted");
}

static tp_token_cols cols_of(size_t n, const double *lpb, const double *lpc, const double *kl, const int32_t *tb,
                             const int32_t *tc) {
    tp_token_cols t = {0};
    tp_err e;
    cr_assert_eq(tp_token_cols_reserve(&t, n, &e), TP_OK);
    t.n = n;
    for (size_t i = 0; i < n; i++) {
        t.pos[i] = i + 1;
        t.target[i] = 7;
        t.lp_base[i] = lpb[i];
        t.lp_comp[i] = lpc[i];
        t.kl[i] = kl[i];
        t.top_base[i] = tb[i];
        t.top_comp[i] = tc[i];
    }
    return t;
}

/* 4 tokens: log-prob sums -10 and -10.5 (delta 100 (e^(0.5/4) - 1) %), KL {0.4, 0, 0, 0.2},
 * argmax agreeing on 3 of 4. */
Test(stats, token_summary) {
    const double lpb[] = {-1, -2, -3, -4}, lpc[] = {-1.5, -2, -3, -4}, kl[] = {0.4, 0, 0, 0.2};
    const int32_t tb[] = {1, 2, 3, 4}, tc[] = {1, 2, 3, 5};
    tp_token_cols t = cols_of(4, lpb, lpc, kl, tb, tc);
    tp_token_stats s;
    tp_err e;
    tp_boot_opts o = {.resamples = 1000, .block_len = 4};
    cr_assert_eq(tp_token_stats_compute(&t, &o, &s, &e), TP_OK, "%s", e.msg);
    NEAR(s.ppl_delta_percent, 100 * (exp(0.125) - 1));
    NEAR(s.ppl_base, exp(2.5));
    NEAR(s.ppl_comp, exp(10.5 / 4));
    NEAR(s.kld_mean, 0.15);
    NEAR(s.kld_median, 0.1);
    NEAR(s.kld_p90, 0.34);
    NEAR(s.kld_max, 0.4);
    NEAR(s.top1_agreement, 0.75);
    cr_expect_eq(s.blocks, 1);
    cr_expect_eq(s.boot.seed, TP_BOOT_SEED, "seed 0 means the default");
    /* one block: zero-width intervals at the point estimates */
    NEAR(s.kld_mean_ci.lo, 0.15);
    NEAR(s.kld_mean_ci.hi, 0.15);
    NEAR(s.top1_agreement_ci.lo, 0.75);
    NEAR(s.ppl_delta_percent_ci.hi, s.ppl_delta_percent);
    cr_expect(s.logprob_correlation > 0.9 && s.logprob_correlation < 1);
    tp_token_cols_free(&t);
}

/* Identical models: KLD 0, top-1 1, correlation 1, and a zero-width interval at 0 for the delta. */
Test(stats, identical_models) {
    enum { N = 1000 };
    double lp[N], kl[N];
    int32_t top[N];
    for (int i = 0; i < N; i++) {
        lp[i] = -0.01 * (i % 97) - 1;
        kl[i] = 0;
        top[i] = i % 13;
    }
    tp_token_cols t = cols_of(N, lp, lp, kl, top, top);
    tp_token_stats s;
    tp_err e;
    cr_assert_eq(tp_token_stats_compute(&t, NULL, &s, &e), TP_OK, "%s", e.msg);
    cr_expect_eq(s.boot.resamples, TP_BOOT_RESAMPLES);
    cr_expect_eq(s.boot.block_len, 31, "1000 tokens: blocks of 1000 / 32");
    cr_expect_eq(s.blocks, 33);
    cr_expect_eq(tp_boot_default_block(100000), TP_BOOT_BLOCK_LEN);
    cr_expect_eq(tp_boot_default_block(10), 1);
    cr_expect(s.kld_mean == 0 && s.kld_max == 0 && s.kld_mean_ci.lo == 0 && s.kld_mean_ci.hi == 0);
    cr_expect(s.top1_agreement == 1 && s.top1_agreement_ci.lo == 1 && s.top1_agreement_ci.hi == 1);
    cr_expect(s.ppl_delta_percent == 0 && s.ppl_delta_percent_ci.lo == 0 && s.ppl_delta_percent_ci.hi == 0);
    NEAR(s.logprob_correlation, 1);
    tp_token_cols_free(&t);
}
