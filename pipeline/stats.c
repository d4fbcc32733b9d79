/* Statistics of an evaluation: see stats.h. */
#include "pipeline/stats.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- order statistics, moments, correlation ---- */
double tp_quantile_sorted(const double *sorted, size_t n, double p) {
    if (n == 0) return NAN;
    double h = (double)(n - 1) * p;
    if (h <= 0) return sorted[0];
    size_t lo = (size_t)floor(h);
    if (lo >= n - 1) return sorted[n - 1];
    double f = h - (double)lo;
    return sorted[lo] + f * (sorted[lo + 1] - sorted[lo]);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
void tp_sort_doubles(double *x, size_t n) {
    if (n > 1) qsort(x, n, sizeof *x, cmp_double);
}

double tp_stderr_from_sums(double sum, double sum_sq, size_t n) {
    if (n < 2) return 0;
    double var = (sum_sq - sum * sum / (double)n) / (double)(n - 1);
    return var > 0 ? sqrt(var / (double)n) : 0;
}

double tp_pearson(const double *x, const double *y, size_t n) {
    if (n < 2) return NAN;
    double mx = 0, my = 0;
    for (size_t i = 0; i < n; i++) { mx += x[i]; my += y[i]; }
    mx /= (double)n;
    my /= (double)n;
    double sxy = 0, sxx = 0, syy = 0;
    for (size_t i = 0; i < n; i++) {
        double dx = x[i] - mx, dy = y[i] - my;
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if (!(sxx > 0) || !(syy > 0)) return NAN;
    return sxy / sqrt(sxx * syy);
}

/* ---- the block bootstrap ---- */
#define BOOT_MAX_COLS 8

static tp_boot_opts resolve_boot(const tp_boot_opts *o, size_t n) {
    tp_boot_opts r = o ? *o : (tp_boot_opts){0};
    if (r.resamples <= 0) r.resamples = TP_BOOT_RESAMPLES;
    if (!r.block_len) r.block_len = tp_boot_default_block(n);
    if (!r.seed) r.seed = TP_BOOT_SEED;
    if (!(r.level > 0 && r.level < 1)) r.level = 0.95;
    return r;
}

size_t tp_boot_default_block(size_t n) {
    size_t b = n / TP_BOOT_MIN_BLOCKS;
    return b < 1 ? 1 : b > TP_BOOT_BLOCK_LEN ? TP_BOOT_BLOCK_LEN : b;
}

/* per-block column sums (bs[b * ncol + c]) and token counts */
static void block_sums(const double *const *cols, int ncol, size_t n, size_t L, double *bs, double *cnt) {
    size_t nb = (n + L - 1) / L;
    for (size_t b = 0; b < nb; b++) {
        size_t i0 = b * L, i1 = i0 + L < n ? i0 + L : n;
        for (int c = 0; c < ncol; c++) {
            double s = 0;
            for (size_t i = i0; i < i1; i++) s += cols[c][i];
            bs[b * (size_t)ncol + (size_t)c] = s;
        }
        cnt[b] = (double)(i1 - i0);
    }
}

tp_status tp_block_bootstrap(const double *const *cols, int ncol, size_t n, const tp_boot_opts *opts,
                             const tp_boot_stat *stats, int nstat, tp_interval *out, tp_err *e) {
    tp_boot_opts o = resolve_boot(opts, n);
    if (n == 0) return tp_fail(e, TP_ERR_ARG, "bootstrap: no values");
    if (ncol < 1 || ncol > BOOT_MAX_COLS) return tp_fail(e, TP_ERR_ARG, "bootstrap: 1 to %d columns", BOOT_MAX_COLS);
    size_t nb = (n + o.block_len - 1) / o.block_len;
    if (nb > UINT32_MAX) return tp_fail(e, TP_ERR_ARG, "bootstrap: too many blocks (%zu)", nb);
    double *bs = malloc(nb * (size_t)ncol * sizeof *bs), *cnt = malloc(nb * sizeof *cnt);
    double *vals = malloc((size_t)o.resamples * (size_t)(nstat > 0 ? nstat : 1) * sizeof *vals);
    if (!bs || !cnt || !vals) {
        free(bs); free(cnt); free(vals);
        return tp_fail(e, TP_ERR_NOMEM, "bootstrap: out of memory");
    }
    block_sums(cols, ncol, n, o.block_len, bs, cnt);
    tp_rng rng;
    tp_rng_seed(&rng, o.seed);
    for (int r = 0; r < o.resamples; r++) {
        double sums[BOOT_MAX_COLS] = {0}, count = 0;
        for (size_t k = 0; k < nb; k++) {
            size_t j = tp_rng_below(&rng, (uint32_t)nb);
            for (int c = 0; c < ncol; c++) sums[c] += bs[j * (size_t)ncol + (size_t)c];
            count += cnt[j];
        }
        for (int s = 0; s < nstat; s++) vals[(size_t)s * (size_t)o.resamples + (size_t)r] = stats[s](sums, count);
    }
    for (int s = 0; s < nstat; s++) {
        double *v = vals + (size_t)s * (size_t)o.resamples;
        tp_sort_doubles(v, (size_t)o.resamples);
        out[s].lo = tp_quantile_sorted(v, (size_t)o.resamples, (1 - o.level) / 2);
        out[s].hi = tp_quantile_sorted(v, (size_t)o.resamples, (1 + o.level) / 2);
    }
    free(bs); free(cnt); free(vals);
    return TP_OK;
}

/* ---- per-token columns of a paired evaluation ---- */
tp_status tp_token_cols_reserve(tp_token_cols *t, size_t n, tp_err *e) {
    if (n <= t->cap) return TP_OK;
    size_t cap = t->cap ? t->cap : 1024;
    while (cap < n) cap *= 2;
#define GROW(f) do { void *p = realloc(t->f, cap * sizeof *t->f); if (!p) goto nomem; t->f = p; } while (0)
    GROW(pos); GROW(target); GROW(lp_base); GROW(lp_comp); GROW(kl); GROW(top_base); GROW(top_comp);
#undef GROW
    t->cap = cap;
    return TP_OK;
nomem:
    return tp_fail(e, TP_ERR_NOMEM, "out of memory for %zu per-token records", n);
}

void tp_token_cols_free(tp_token_cols *t) {
    free(t->pos); free(t->target); free(t->lp_base); free(t->lp_comp); free(t->kl); free(t->top_base); free(t->top_comp);
    memset(t, 0, sizeof *t);
}

/* the statistics, on sums of the columns (lp_base, lp_comp, kl, agree) over `count` tokens */
enum { COL_LPB, COL_LPC, COL_KL, COL_AGREE, NCOL };
static double stat_ppl_delta(const double *s, double count) { return 100.0 * expm1((s[COL_LPB] - s[COL_LPC]) / count); }
static double stat_kld_mean(const double *s, double count) { return s[COL_KL] / count; }
static double stat_top1(const double *s, double count) { return s[COL_AGREE] / count; }

static void kld_quantiles(const double *kl, double *sorted, size_t n, tp_token_stats *s) {
    memcpy(sorted, kl, n * sizeof *sorted);
    tp_sort_doubles(sorted, n);
    s->kld_median = tp_quantile_sorted(sorted, n, 0.5);
    s->kld_p90 = tp_quantile_sorted(sorted, n, 0.9);
    s->kld_p99 = tp_quantile_sorted(sorted, n, 0.99);
    s->kld_p999 = tp_quantile_sorted(sorted, n, 0.999);
    s->kld_max = sorted[n - 1];
}

tp_status tp_token_stats_compute(const tp_token_cols *t, const tp_boot_opts *o, tp_token_stats *s, tp_err *e) {
    memset(s, 0, sizeof *s);
    size_t n = t->n;
    if (!n) return tp_fail(e, TP_ERR_ARG, "token statistics: no scored tokens");
    s->n = n;
    s->boot = resolve_boot(o, n);
    s->blocks = (n + s->boot.block_len - 1) / s->boot.block_len;
    double *agree = malloc(n * sizeof *agree), *sorted = malloc(n * sizeof *sorted);
    if (!agree || !sorted) { free(agree); free(sorted); return tp_fail(e, TP_ERR_NOMEM, "token statistics: out of memory"); }
    double sum[NCOL] = {0};
    for (size_t i = 0; i < n; i++) {
        agree[i] = t->top_base[i] == t->top_comp[i];
        sum[COL_LPB] += t->lp_base[i];
        sum[COL_LPC] += t->lp_comp[i];
        sum[COL_KL] += t->kl[i];
        sum[COL_AGREE] += agree[i];
    }
    s->nll_sum_base = -sum[COL_LPB];
    s->nll_sum_comp = -sum[COL_LPC];
    s->ppl_base = exp(s->nll_sum_base / (double)n);
    s->ppl_comp = exp(s->nll_sum_comp / (double)n);
    s->ppl_delta_percent = stat_ppl_delta(sum, (double)n);
    s->kld_mean = stat_kld_mean(sum, (double)n);
    s->top1_agreement = stat_top1(sum, (double)n);
    s->logprob_correlation = tp_pearson(t->lp_base, t->lp_comp, n);
    kld_quantiles(t->kl, sorted, n, s);
    const double *cols[NCOL] = {t->lp_base, t->lp_comp, t->kl, agree};
    const tp_boot_stat stats[3] = {stat_ppl_delta, stat_kld_mean, stat_top1};
    tp_interval ci[3];
    tp_status rc = tp_block_bootstrap(cols, NCOL, n, &s->boot, stats, 3, ci, e);
    s->ppl_delta_percent_ci = ci[0];
    s->kld_mean_ci = ci[1];
    s->top1_agreement_ci = ci[2];
    free(agree);
    free(sorted);
    return rc;
}

/* ---- JSON ---- */
static void add_interval(cJSON *o, const char *name, tp_interval v) {
    char key[96];
    snprintf(key, sizeof key, "%s_ci95", name);
    cJSON *a = cJSON_AddArrayToObject(o, key);
    cJSON_AddItemToArray(a, cJSON_CreateNumber(v.lo));
    cJSON_AddItemToArray(a, cJSON_CreateNumber(v.hi));
}

void tp_token_stats_json(const tp_token_stats *s, cJSON *o) {
    cJSON_DeleteItemFromObjectCaseSensitive(o, "ppl_delta_percent");
    cJSON_AddNumberToObject(o, "ppl_delta_percent", s->ppl_delta_percent);
    add_interval(o, "ppl_delta_percent", s->ppl_delta_percent_ci);
    cJSON_AddNumberToObject(o, "kld_mean", s->kld_mean);
    add_interval(o, "kld_mean", s->kld_mean_ci);
    cJSON_AddNumberToObject(o, "kld_median", s->kld_median);
    cJSON_AddNumberToObject(o, "kld_p90", s->kld_p90);
    cJSON_AddNumberToObject(o, "kld_p99", s->kld_p99);
    cJSON_AddNumberToObject(o, "kld_p999", s->kld_p999);
    cJSON_AddNumberToObject(o, "kld_max", s->kld_max);
    cJSON_AddNumberToObject(o, "top1_agreement", s->top1_agreement);
    add_interval(o, "top1_agreement", s->top1_agreement_ci);
    if (isnan(s->logprob_correlation)) cJSON_AddNullToObject(o, "logprob_correlation");
    else cJSON_AddNumberToObject(o, "logprob_correlation", s->logprob_correlation);
    cJSON_AddStringToObject(o, "bootstrap_method", "paired block bootstrap over scored tokens, percentile interval");
    cJSON_AddNumberToObject(o, "bootstrap_resamples", s->boot.resamples);
    cJSON_AddNumberToObject(o, "bootstrap_block_len", (double)s->boot.block_len);
    cJSON_AddNumberToObject(o, "bootstrap_blocks", (double)s->blocks);
    cJSON_AddNumberToObject(o, "bootstrap_seed", (double)s->boot.seed);
    cJSON_AddNumberToObject(o, "bootstrap_level", s->boot.level);
}

int tp_interval_from_json(const cJSON *o, const char *name, tp_interval *out) {
    char key[96];
    snprintf(key, sizeof key, "%s_ci95", name);
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 2) return 0;
    const cJSON *lo = cJSON_GetArrayItem(a, 0), *hi = cJSON_GetArrayItem(a, 1);
    if (!cJSON_IsNumber(lo) || !cJSON_IsNumber(hi)) return 0;
    out->lo = lo->valuedouble;
    out->hi = hi->valuedouble;
    return 1;
}

/* ---- the per-token dump ---- */
typedef struct obuf { char *p; size_t n, cap; int oom; } obuf;
static void ob_printf(obuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#include <stdarg.h>
static void ob_printf(obuf *b, const char *fmt, ...) {
    while (!b->oom) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) { b->oom = 1; return; }
        if (b->p && b->n + (size_t)k < b->cap) { b->n += (size_t)k; return; }
        size_t nc = (b->cap + (size_t)k + 1) * 2;
        char *np = realloc(b->p, nc);
        if (!np) { b->oom = 1; return; }
        b->p = np;
        b->cap = nc;
    }
}

tp_status tp_token_cols_dump(const tp_token_cols *t, const tp_boot_opts *o, const char *header_json, const char *path,
                             tp_err *e) {
    tp_boot_opts bo = resolve_boot(o, t->n);
    cJSON *meta = header_json ? cJSON_Parse(header_json) : cJSON_CreateObject();
    if (!cJSON_IsObject(meta)) { cJSON_Delete(meta); return tp_fail(e, TP_ERR_ARG, "dump: metadata is not a JSON object"); }
    cJSON_AddNumberToObject(meta, "scored_tokens", (double)t->n);
    cJSON_AddNumberToObject(meta, "bootstrap_resamples", bo.resamples);
    cJSON_AddNumberToObject(meta, "bootstrap_block_len", (double)bo.block_len);
    cJSON_AddNumberToObject(meta, "bootstrap_seed", (double)bo.seed);
    cJSON_AddNumberToObject(meta, "bootstrap_level", bo.level);
    char *mj = cJSON_PrintUnformatted(meta);
    cJSON_Delete(meta);
    obuf b = {0};
    ob_printf(&b, "# tenpak eval --dump-tokens, format 1: one line per scored token, in scoring order\n%s\n",
              mj ? mj : "{}");
    free(mj);
    ob_printf(&b, "pos\ttarget\tlogprob_base\tlogprob_comp\ttop1_base\ttop1_comp\tkl\n");
    for (size_t i = 0; i < t->n && !b.oom; i++)
        ob_printf(&b, "%llu\t%d\t%.17g\t%.17g\t%d\t%d\t%.17g\n", (unsigned long long)t->pos[i], (int)t->target[i],
                  t->lp_base[i], t->lp_comp[i], (int)t->top_base[i], (int)t->top_comp[i], t->kl[i]);
    tp_status rc = b.oom ? tp_fail(e, TP_ERR_NOMEM, "dump: out of memory") : tp_write_file_atomic(path, b.p, b.n, e);
    free(b.p);
    return rc;
}
