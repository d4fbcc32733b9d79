/* Statistics of an evaluation: quantiles, mean and standard error, Pearson correlation, the paired
 * block bootstrap, and the summary of a per-token comparison of two models (KL divergence, top-1
 * agreement, perplexity delta) with 95% intervals.
 *
 * Definitions (verify/cli/token_stats.py recomputes every one of them with numpy):
 *  - quantile p of n sorted values: linear interpolation between order statistics, h = (n - 1) p,
 *    x[floor h] + (h - floor h) (x[floor h + 1] - x[floor h]) (numpy's default "linear" method);
 *  - standard error of a mean: sample standard deviation (n - 1) over sqrt(n);
 *  - block bootstrap: the n values, in order, are cut into ceil(n / block_len) consecutive blocks
 *    (the last one may be shorter); a resample draws that many blocks with replacement
 *    (tp_rng_below on a tp_rng seeded with `seed`, block after block, resample after resample) and
 *    a statistic is evaluated on the sums of every column over the drawn blocks and their token
 *    count; the interval is the (1 - level) / 2 and (1 + level) / 2 quantiles of the resamples.
 *    Paired: both models' values of a token always travel together, so what is common to both
 *    (a hard passage) cancels. Blocks keep neighbouring tokens, which are correlated, together. */
#ifndef TENPAK_PIPELINE_STATS_H
#define TENPAK_PIPELINE_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "tenpak/tenpak.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tp_interval { double lo, hi; } tp_interval;

/* Quantile p in [0, 1] of sorted[0..n) (n >= 1), as above. */
double tp_quantile_sorted(const double *sorted, size_t n, double p);
/* Sorts x[0..n) ascending in place. */
void tp_sort_doubles(double *x, size_t n);
/* Standard error of the mean of n values given their sum and sum of squares; 0 when n < 2. */
double tp_stderr_from_sums(double sum, double sum_sq, size_t n);
/* Pearson correlation of x and y; NAN when either has no variance (or n < 2). */
double tp_pearson(const double *x, const double *y, size_t n);

/* A statistic of column sums over some tokens (count of them). */
typedef double (*tp_boot_stat)(const double *sums, double count);

typedef struct tp_boot_opts {
    int resamples;    /* 0: TP_BOOT_RESAMPLES */
    size_t block_len; /* tokens per block; 0: tp_boot_default_block(n) */
    uint64_t seed;    /* 0: TP_BOOT_SEED */
    double level;     /* 0: 0.95 */
} tp_boot_opts;
#define TP_BOOT_RESAMPLES 2000
#define TP_BOOT_BLOCK_LEN 128
#define TP_BOOT_MIN_BLOCKS 32
#define TP_BOOT_SEED 17
/* The default block length for n tokens: n / TP_BOOT_MIN_BLOCKS within [1, TP_BOOT_BLOCK_LEN], so a
 * short text still has TP_BOOT_MIN_BLOCKS blocks to resample (128 tokens from 4096 tokens on). */
size_t tp_boot_default_block(size_t n);

/* Block bootstrap intervals of nstat statistics over ncol columns (cols[c][0..n)), as above;
 * out[s] is statistic s's interval. */
tp_status tp_block_bootstrap(const double *const *cols, int ncol, size_t n, const tp_boot_opts *o,
                             const tp_boot_stat *stats, int nstat, tp_interval *out, tp_err *e);

/* Per scored token of a paired evaluation (base model and compressed model on the same windows):
 * log-probability of the true next token under each model (nats), both models' argmax, and
 * KL(base || compressed) of the two next-token distributions (nats). */
typedef struct tp_token_cols {
    size_t n, cap;
    uint64_t *pos;   /* index of the scored token in the token sequence */
    int32_t *target; /* its id */
    double *lp_base, *lp_comp, *kl;
    int32_t *top_base, *top_comp;
} tp_token_cols;

tp_status tp_token_cols_reserve(tp_token_cols *t, size_t n, tp_err *e);
void tp_token_cols_free(tp_token_cols *t);

typedef struct tp_token_stats {
    size_t n;
    double nll_sum_base, nll_sum_comp; /* sums of -log p(true token) */
    double ppl_base, ppl_comp;
    double ppl_delta_percent;          /* 100 (ppl_comp / ppl_base - 1) */
    tp_interval ppl_delta_percent_ci;
    double kld_mean;
    tp_interval kld_mean_ci;
    double kld_median, kld_p90, kld_p99, kld_p999, kld_max;
    double top1_agreement;             /* fraction of tokens whose two argmax ids are equal */
    tp_interval top1_agreement_ci;
    double logprob_correlation;        /* Pearson of lp_base and lp_comp (NAN: no variance) */
    tp_boot_opts boot;                 /* as used (defaults resolved) */
    size_t blocks;
} tp_token_stats;

tp_status tp_token_stats_compute(const tp_token_cols *t, const tp_boot_opts *o, tp_token_stats *s, tp_err *e);

/* Adds s's fields to JSON object o: ppl_delta_percent and ppl_delta_percent_ci95 ([lo, hi]),
 * kld_mean, kld_mean_ci95, kld_median, kld_p90, kld_p99, kld_p999, kld_max, top1_agreement,
 * top1_agreement_ci95, logprob_correlation (null without variance), bootstrap_method,
 * bootstrap_resamples, bootstrap_block_len, bootstrap_blocks, bootstrap_seed, bootstrap_level. */
struct cJSON;
void tp_token_stats_json(const tp_token_stats *s, struct cJSON *o);
/* An interval field of such an object ("NAME_ci95": [lo, hi]); 0 when absent or malformed. */
int tp_interval_from_json(const struct cJSON *o, const char *name, tp_interval *out);

/* Writes t as the per-token text file of `tenpak eval --dump-tokens` (format in pipeline/README.md):
 * a header line, a JSON line of metadata (header_json, the bootstrap's parameters added), the
 * column names, then one tab-separated line per token with doubles in %.17g (exact round trip). */
tp_status tp_token_cols_dump(const tp_token_cols *t, const tp_boot_opts *o, const char *header_json, const char *path,
                             tp_err *e);

#ifdef __cplusplus
}
#endif
#endif
