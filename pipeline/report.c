/* tenpak report: a matrix of codecs x models x datasets, measured end to end (compress -> artifact
 * -> eval), written as JSON (the source of every number) and as the experiment log's markdown,
 * with gnuplot plots. See pipeline/report.h. */
#include "pipeline/report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pipeline/artifact.h"
#include "pipeline/calib.h"
#include "pipeline/claims.h"
#include "pipeline/codec.h"
#include "pipeline/compress.h"
#include "pipeline/stats.h"

static double num(const cJSON *o, const char *k, double d) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : d;
}
static const char *str(const cJSON *o, const char *k, const char *d) {
    const char *s = tp_json_str(o, k);
    return s ? s : d;
}

static void slug(const char *in, char *out, size_t n) {
    size_t k = 0;
    for (; *in && k + 1 < n; in++) out[k++] = (*in >= 'a' && *in <= 'z') || (*in >= '0' && *in <= '9') ? *in : '_';
    out[k] = 0;
}

static void mkdirs(const char *dir) {
    char p[4096];
    snprintf(p, sizeof p, "%s", dir);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') { *s = 0; mkdir(p, 0755); *s = '/'; }
    mkdir(p, 0755);
}

static void run_capture(const char *cmd, char *out, size_t n) {
    out[0] = 0;
    FILE *f = popen(cmd, "r");
    if (!f) return;
    if (fgets(out, (int)n, f)) out[strcspn(out, "\n")] = 0;
    pclose(f);
}

static tp_status write_text(const char *path, const char *text, tp_err *e) {
    return tp_write_file_atomic(path, text, strlen(text), e);
}

/* a growing string */
typedef struct sbuf { char *p; size_t n, cap; } sbuf;
static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#include <stdarg.h>
static void sb_printf(sbuf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) return;
        if (b->p && b->n + (size_t)k < b->cap) { b->n += (size_t)k; return; }
        size_t nc = (b->cap + (size_t)k + 1) * 2;
        char *np = realloc(b->p, nc);
        if (!np) return;
        b->p = np;
        b->cap = nc;
    }
}

/* ---- the markdown ---- */
static const cJSON *find_baseline(const cJSON *bases, const char *model, const char *dataset) {
    const cJSON *b;
    cJSON_ArrayForEach(b, bases) if (!strcmp(str(b, "model", ""), model) && !strcmp(str(b, "dataset", ""), dataset)) return b;
    return NULL;
}

/* "+0.54% [+0.17, +0.93]": the PPL delta and its interval when the paired evaluation measured it */
static void delta_cell(const cJSON *r, char *out, size_t n) {
    tp_interval ci;
    if (tp_interval_from_json(r, "ppl_delta_percent", &ci))
        snprintf(out, n, "%+.2f%% [%+.2f, %+.2f]", num(r, "ppl_delta_percent", 0), ci.lo, ci.hi);
    else snprintf(out, n, "%+.2f%%", num(r, "ppl_delta_percent", 0));
}

/* KLD mean (with its interval), KLD p99, top-1 %; "-" when not measured */
static void paired_cells(const cJSON *r, char *kld, char *p99, char *top1, size_t n) {
    tp_interval ci;
    if (!cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(r, "kld_mean")) || !tp_interval_from_json(r, "kld_mean", &ci)) {
        snprintf(kld, n, "-");
        snprintf(p99, 32, "-");
        snprintf(top1, 32, "-");
        return;
    }
    snprintf(kld, n, "%.5f [%.5f, %.5f]", num(r, "kld_mean", 0), ci.lo, ci.hi);
    snprintf(p99, 32, "%.5f", num(r, "kld_p99", 0));
    snprintf(top1, 32, "%.2f", num(r, "top1_percent", 0));
}

/* PASS / FAIL / INCONCLUSIVE at +1%, on the interval when there is one */
static const char *status_of(const cJSON *r) {
    tp_interval ci;
    if (!tp_interval_from_json(r, "ppl_delta_percent", &ci))
        return num(r, "ppl_delta_percent", 0) < 1.0 ? "PASS (< +1%, no interval)" : "FAIL (>= +1%, no interval)";
    return ci.hi < 1.0 ? "PASS (interval < +1%)" : ci.lo >= 1.0 ? "FAIL (interval >= +1%)" : "INCONCLUSIVE (interval spans +1%)";
}

/* a bootstrap parameter as the rows give it ("?" when they differ or none has it) */
static const char *boot_param(const cJSON *rows, const char *key) {
    static char buf[4][32];
    static int k;
    char *b = buf[k++ & 3];
    double v = NAN;
    const cJSON *r;
    cJSON_ArrayForEach(r, rows) {
        double x = num(r, key, NAN);
        if (isnan(x)) continue;
        if (!isnan(v) && x != v) return "?";
        v = x;
    }
    if (isnan(v)) return "?";
    snprintf(b, 32, "%.0f", v);
    return b;
}

/* a claim's claimed and measured cells: its metric with the measured interval, or ratio and delta */
static void claim_cells(const cJSON *c, char *claimed, char *meas, size_t n) {
    const char *metric = tp_json_str(c, "metric");
    char key[96];
    tp_interval ci;
    snprintf(meas, n, "-");
    if (metric) {
        snprintf(claimed, 128, "%s %.5g", metric, num(c, "claimed_value", 0));
        snprintf(key, sizeof key, "measured_%s", metric);
        if (tp_interval_from_json(c, key, &ci))
            snprintf(meas, n, "%.5g [%.5g, %.5g]", num(c, key, num(c, "measured_ppl_delta_percent", 0)), ci.lo, ci.hi);
        return;
    }
    snprintf(claimed, 128, "%.2fx, %+.2f%%", num(c, "claimed_ratio_fp32", 0), num(c, "claimed_ppl_delta_percent", 0));
    if (!cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(c, "measured_ratio_fp32"))) return;
    if (tp_interval_from_json(c, "measured_ppl_delta_percent", &ci))
        snprintf(meas, n, "%.2fx, %+.2f%% [%+.2f, %+.2f]", num(c, "measured_ratio_fp32", 0),
                 num(c, "measured_ppl_delta_percent", 0), ci.lo, ci.hi);
    else snprintf(meas, n, "%.2fx, %+.2f%%", num(c, "measured_ratio_fp32", 0), num(c, "measured_ppl_delta_percent", 0));
}

static void md_report(sbuf *m, const cJSON *root) {
    const cJSON *prov = cJSON_GetObjectItemCaseSensitive(root, "provenance");
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(root, "rows");
    const cJSON *bases = cJSON_GetObjectItemCaseSensitive(root, "baselines");
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(root, "models");
    const cJSON *datasets = cJSON_GetObjectItemCaseSensitive(root, "datasets");
    const cJSON *proto = cJSON_GetObjectItemCaseSensitive(root, "protocol");
    sb_printf(m, "# tenpak experiment log\n\n");
    sb_printf(m, "Generated by `%s` on %s. Every number below is read from `%s`, written by the same run.\n\n",
              str(prov, "command", "tenpak report"), str(prov, "date", "?"), str(prov, "results_json", "results/report.json"));
    sb_printf(m, "Protocol: %s sliding window, ctx %d, stride %d, ", str(proto, "name", "hf"), (int)num(proto, "ctx", 0),
              (int)num(proto, "stride", 0));
    if (num(proto, "max_tokens", 0) > 0)
        sb_printf(m, "the first %d tokens of each dataset (a prefix: run with `--max-tokens 0` for whole files).\n\n",
                  (int)num(proto, "max_tokens", 0));
    else sb_printf(m, "whole files.\n\n");
    sb_printf(m, "Compression is FP32 bytes (numel x 4, over every tensor of the model) over the artifact file's bytes, "
                 "header included; bits/weight (actual) is the stored bytes of the compressed tensors over their weight "
                 "count. Embeddings, norms and biases are kept as in the checkpoint (fp16) unless the codec row says "
                 "otherwise, and count in the artifact's size.\n\n");
    const cJSON *cal = cJSON_GetObjectItemCaseSensitive(root, "calibration");
    if (cal)
        sb_printf(m, "Calibration (awq, mixed rows): the first %d tokens of `%s`, training-corpus text, never an evaluation "
                     "file; awq stores one fp16 scale per input channel (counted in its bits/weight), mixed chooses each "
                     "tensor's codec from its measured, KLD-scaled sensitivity within the budget.\n\n",
                  (int)num(cal, "tokens", 0), str(cal, "path", ""));

    /* status table */
    sb_printf(m, "## Current status\n\n| codec | select | model | compression (fp32) | PPL delta [95%% interval] | KLD mean | KLD p99 | "
                 "top-1 %% | status |\n|---|---|---|---|---|---|---|---|---|\n");
    const cJSON *r;
    cJSON_ArrayForEach(r, rows) {
        if (strcmp(str(r, "dataset", ""), str(cJSON_GetArrayItem(datasets, 0), "name", ""))) continue;
        char delta[96], kld[64], p99[32], top1[32];
        delta_cell(r, delta, sizeof delta);
        paired_cells(r, kld, p99, top1, sizeof kld);
        sb_printf(m, "| `%s` | %s | %s | %.2fx | %s | %s | %s | %s | %s |\n", str(r, "codec", ""), str(r, "select", ""),
                  str(r, "model", ""), num(r, "ratio_fp32", 0), delta, kld, p99, top1, status_of(r));
    }
    sb_printf(m, "\nStatus is measured on %s against +1%% PPL: PASS when the whole 95%% interval of the PPL delta is "
                 "below +1%%, FAIL when it is wholly at or above, INCONCLUSIVE when it straddles +1%% (more tokens would "
                 "tell). The interval is a paired block bootstrap over the scored tokens (%s resamples, blocks of %s tokens, "
                 "seed %s; `tenpak eval --help`). KLD: mean and 99th percentile over scored tokens of KL(base || compressed) "
                 "of the next-token distributions, in nats; top-1: how often both models' most likely next token agree.\n\n",
              str(cJSON_GetArrayItem(datasets, 0), "name", ""), boot_param(rows, "bootstrap_resamples"),
              boot_param(rows, "bootstrap_block_len"), boot_param(rows, "bootstrap_seed"));

    /* verified results per model */
    sb_printf(m, "## Verified results\n\n");
    const cJSON *mo;
    cJSON_ArrayForEach(mo, models) {
        const char *mn = mo->valuestring;
        sb_printf(m, "### %s\n\n", mn);
        const cJSON *ds;
        cJSON_ArrayForEach(ds, datasets) {
            const cJSON *b = find_baseline(bases, mn, str(ds, "name", ""));
            if (!b) continue;
            sb_printf(m, "**%s** (%d tokens scored): baseline PPL %.4f, decode %.1f tok/s\n\n", str(ds, "name", ""),
                      (int)num(b, "scored_tokens", 0), num(b, "ppl", 0), num(b, "decode_tokens_per_second", 0));
            sb_printf(m, "| codec | select | artifact bytes | compression (fp32) | compression (fp16) | bits/weight | PPL | PPL delta [95%% interval] | KLD mean | KLD p99 | top-1 %% | rel. error | decode tok/s | peak RSS MiB |\n"
                         "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
            cJSON_ArrayForEach(r, rows) {
                if (strcmp(str(r, "model", ""), mn) || strcmp(str(r, "dataset", ""), str(ds, "name", ""))) continue;
                char delta[96], kld[64], p99[32], top1[32];
                delta_cell(r, delta, sizeof delta);
                paired_cells(r, kld, p99, top1, sizeof kld);
                char rss[32] = "-"; /* rows of an older report.json lack it */
                if (num(r, "peak_rss_mib", 0) > 0) snprintf(rss, sizeof rss, "%.1f", num(r, "peak_rss_mib", 0));
                sb_printf(m, "| `%s` | %s | %.0f | %.2fx | %.2fx | %.3f | %.4f | %s | %s | %s | %s | %.4f | %.1f | %s |\n", str(r, "codec", ""),
                          str(r, "select", ""), num(r, "artifact_bytes", 0), num(r, "ratio_fp32", 0), num(r, "ratio_fp16", 0),
                          num(r, "bits_per_weight", 0), num(r, "ppl", 0), delta, kld, p99, top1,
                          num(r, "rel_frobenius_error", 0), num(r, "decode_tokens_per_second", 0), rss);
            }
            sb_printf(m, "\n");
        }
    }

    /* bits/weight: theory vs actual */
    sb_printf(m, "## Bits per weight: theoretical vs actual\n\n| codec | model | theoretical | actual (compressed tensors) | whole model |\n|---|---|---|---|---|\n");
    cJSON_ArrayForEach(r, rows) {
        if (strcmp(str(r, "dataset", ""), str(cJSON_GetArrayItem(datasets, 0), "name", ""))) continue;
        sb_printf(m, "| `%s` | %s | %.3f | %.3f | %.3f |\n", str(r, "codec", ""), str(r, "model", ""),
                  num(r, "theory_bits_per_weight", 0), num(r, "bits_per_weight", 0), num(r, "bits_per_weight_model", 0));
    }
    sb_printf(m, "\n");

    /* where each family crosses +1% */
    const cJSON *cross = cJSON_GetObjectItemCaseSensitive(root, "crossings");
    if (cJSON_GetArraySize(cross)) {
        sb_printf(m, "## Where each codec family crosses +1%% PPL\n\nLinear interpolation of PPL delta against actual bits/weight "
                     "between adjacent points of a family's sweep: group size for int4 and awq, the bits/weight budget for "
                     "mixed. A sweep that never crosses says so.\n\n| family | model | dataset | bits/weight at +1%% |\n|---|---|---|---|\n");
        const cJSON *c;
        cJSON_ArrayForEach(c, cross) {
            double b = num(c, "bits_per_weight", NAN);
            if (isnan(b))
                sb_printf(m, "| %s | %s | %s | %s |\n", str(c, "family", ""), str(c, "model", ""), str(c, "dataset", ""), str(c, "note", ""));
            else sb_printf(m, "| %s | %s | %s | %.3f |\n", str(c, "family", ""), str(c, "model", ""), str(c, "dataset", ""), b);
        }
        sb_printf(m, "\n");
    }

    /* the best codec at each bits/weight, and calibrated codecs beaten by uncalibrated ones */
    const cJSON *par = cJSON_GetObjectItemCaseSensitive(root, "pareto");
    if (cJSON_GetArraySize(par)) {
        sb_printf(m, "## Pareto: the best codec at each bits/weight\n\nFor every bits/weight point measured (each row's actual "
                     "bits/weight), the row with the lowest KLD mean (the PPL delta where a row lacks the KLD) among the rows at "
                     "or below it, on held-out text: every dataset is an evaluation file, and the run refuses one that is the "
                     "calibration text. Calibrated rows (awq, gptq, mixed) are those with calibration statistics.\n\n");
        const cJSON *g, *p;
        cJSON_ArrayForEach(g, par) {
            int kld = !strcmp(str(g, "metric", ""), "kld_mean");
            sb_printf(m, "**%s, %s** (by %s)\n\n| bits/weight <= | best codec | its bits/weight | %s | PPL delta | calibrated |\n"
                         "|---|---|---|---|---|---|\n", str(g, "model", ""), str(g, "dataset", ""), kld ? "KLD mean" : "PPL delta",
                      kld ? "KLD mean" : "PPL delta");
            cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(g, "points")) {
                char v[32];
                if (kld) snprintf(v, sizeof v, "%.5f", num(p, "value", 0));
                else snprintf(v, sizeof v, "%+.2f%%", num(p, "value", 0));
                sb_printf(m, "| %.3f | `%s`%s%s | %.3f | %s | %+.2f%% | %s |\n", num(p, "bits_per_weight", 0), str(p, "best_codec", ""),
                          strcmp(str(p, "best_select", "linear"), "linear") ? " " : "",
                          strcmp(str(p, "best_select", "linear"), "linear") ? str(p, "best_select", "") : "",
                          num(p, "best_bits_per_weight", 0), v, num(p, "ppl_delta_percent", 0),
                          cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "calibrated")) ? "yes" : "no");
            }
            sb_printf(m, "\n");
        }
        const cJSON *dom = cJSON_GetObjectItemCaseSensitive(root, "dominated_calibrated"), *d;
        sb_printf(m, "**Calibrated codecs dominated by an uncalibrated one** (an uncalibrated row at equal or fewer bits/weight "
                     "with a lower KLD mean, or PPL delta where KLD is missing; the best such row shown; \"separated\": the two "
                     "95%% intervals do not overlap)\n\n");
        if (!cJSON_GetArraySize(dom)) sb_printf(m, "None.\n\n");
        else {
            sb_printf(m, "| flag | model | dataset | calibrated codec | bits/weight | value | beaten by | bits/weight | value | separated |\n"
                         "|---|---|---|---|---|---|---|---|---|---|\n");
            cJSON_ArrayForEach(d, dom) {
                int kld = !strcmp(str(d, "metric", ""), "kld_mean");
                char a[32], b[32];
                snprintf(a, sizeof a, kld ? "%.5f" : "%+.2f%%", num(d, "value", 0));
                snprintf(b, sizeof b, kld ? "%.5f" : "%+.2f%%", num(d, "dominated_by_value", 0));
                sb_printf(m, "| DOMINATED | %s | %s | `%s` | %.3f | %s | `%s` | %.3f | %s | %s |\n", str(d, "model", ""),
                          str(d, "dataset", ""), str(d, "codec", ""), num(d, "bits_per_weight", 0), a, str(d, "dominated_by", ""),
                          num(d, "dominated_by_bits_per_weight", 0), b,
                          cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "intervals_separated")) ? "yes" : "no");
            }
            sb_printf(m, "\n");
        }
    }

    /* claims */
    const cJSON *claims = cJSON_GetObjectItemCaseSensitive(root, "claims");
    sb_printf(m, "## Claims\n\n| claim | model | codec | claimed | measured | status |\n|---|---|---|---|---|---|\n");
    const cJSON *c;
    cJSON_ArrayForEach(c, claims) {
        char claimed[128], meas[160];
        claim_cells(c, claimed, meas, sizeof meas);
        sb_printf(m, "| %s | %s | `%s` | %s | %s | %s |\n", str(c, "name", ""), str(c, "model", ""), str(c, "codec", ""),
                  claimed, meas, str(c, "status", ""));
    }
    sb_printf(m, "\nNEEDS MODEL: the checkpoint is not on this machine; the row's detail in the JSON says which folder was looked "
                 "for. A claim naming its metric is judged on the metric's 95%% interval (shown in brackets): VERIFIED when "
                 "the whole interval is on the claim's side, FAILED when wholly on the other, else INCONCLUSIVE.\n\n");

    /* plots */
    sb_printf(m, "## Plots\n\n");
    const cJSON *plots = cJSON_GetObjectItemCaseSensitive(root, "plots");
    const cJSON *p;
    cJSON_ArrayForEach(p, plots) sb_printf(m, "![%s](%s)\n\n", str(p, "title", ""), str(p, "png", ""));

    sb_printf(m, "## Provenance\n\n- command: `%s`\n- git commit: %s\n- machine: %s, %s threads\n- compiler: %s\n- date: %s\n",
              str(prov, "command", ""), str(prov, "git_commit", ""), str(prov, "cpu", ""), str(prov, "threads", ""),
              str(prov, "compiler", ""), str(prov, "date", ""));
}

/* ---- gnuplot ---- */
static void plot_pareto(const char *out, const cJSON *root, cJSON *plots) {
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(root, "rows");
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(root, "models");
    const char *ds0 = str(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "datasets"), 0), "name", "");
    char dat[4096], gp[4096];
    snprintf(dat, sizeof dat, "%s/plots/pareto.dat", out);
    snprintf(gp, sizeof gp, "%s/plots/pareto.gp", out);
    FILE *f = fopen(dat, "w");
    if (!f) return;
    int nm = 0;
    const cJSON *mo;
    cJSON_ArrayForEach(mo, models) {
        /* block per model: all points, then the Pareto front (no other point has fewer bits and lower delta) */
        fprintf(f, "# %s\n", mo->valuestring);
        const cJSON *r, *q;
        cJSON_ArrayForEach(r, rows) if (!strcmp(str(r, "model", ""), mo->valuestring) && !strcmp(str(r, "dataset", ""), ds0))
            fprintf(f, "%g %g \"%s\"\n", num(r, "bits_per_weight", 0), num(r, "ppl_delta_percent", 0), str(r, "codec", ""));
        fprintf(f, "\n\n# %s front\n", mo->valuestring);
        /* sorted by bits: print front points in ascending bits */
        double last = -1;
        for (;;) {
            double best_b = INFINITY, best_d = 0;
            cJSON_ArrayForEach(r, rows) {
                if (strcmp(str(r, "model", ""), mo->valuestring) || strcmp(str(r, "dataset", ""), ds0)) continue;
                double b = num(r, "bits_per_weight", 0), d = num(r, "ppl_delta_percent", 0);
                int dominated = 0;
                cJSON_ArrayForEach(q, rows) {
                    if (strcmp(str(q, "model", ""), mo->valuestring) || strcmp(str(q, "dataset", ""), ds0)) continue;
                    double b2 = num(q, "bits_per_weight", 0), d2 = num(q, "ppl_delta_percent", 0);
                    if (b2 <= b && d2 <= d && (b2 < b || d2 < d)) dominated = 1;
                }
                if (!dominated && b > last && b < best_b) { best_b = b; best_d = d; }
            }
            if (isinf(best_b)) break;
            fprintf(f, "%g %g\n", best_b, best_d);
            last = best_b;
        }
        fprintf(f, "\n\n");
        nm++;
    }
    fclose(f);
    f = fopen(gp, "w");
    if (!f) return;
    for (int t = 0; t < 2; t++) {
        fprintf(f, "set terminal %s size 900,600\nset output '%s/plots/pareto.%s'\n", t ? "svg" : "pngcairo", out, t ? "svg" : "png");
        fprintf(f, "set title 'PPL delta vs bits/weight (%s)'\nset xlabel 'bits/weight (actual, compressed tensors)'\n"
                   "set ylabel 'PPL delta (%%)'\nset grid\nset key top right\nplot ", ds0);
        for (int i = 0; i < nm; i++) {
            const char *mn = cJSON_GetArrayItem(models, i)->valuestring;
            fprintf(f, "%s'%s' index %d using 1:2 with points pt 7 ps 1.2 title '%s', '%s' index %d using 1:2 with lines lw 2 title '%s Pareto front'",
                    i ? ", " : "", dat, 2 * i, mn, dat, 2 * i + 1, mn);
        }
        fprintf(f, "\n");
    }
    fclose(f);
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "gnuplot '%s' 2>&1", gp);
    char outl[256];
    run_capture(cmd, outl, sizeof outl);
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "title", "PPL delta vs bits/weight, Pareto front marked");
    cJSON_AddStringToObject(p, "png", "plots/pareto.png");
    cJSON_AddStringToObject(p, "svg", "plots/pareto.svg");
    cJSON_AddItemToArray(plots, p);
}

/* Kernel throughput vs matrix size per backend, from a Google Benchmark JSON of `tenpak bench`. */
static void plot_bench(const char *out, const char *bench_json, cJSON *plots) {
    size_t n;
    tp_err e;
    char *text = tp_read_file(bench_json, &n, &e);
    if (!text) return;
    cJSON *b = cJSON_Parse(text);
    free(text);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(b, "benchmarks");
    if (!cJSON_IsArray(arr)) { cJSON_Delete(b); return; }
    char dat[4096], gp[4096];
    snprintf(dat, sizeof dat, "%s/plots/throughput.dat", out);
    snprintf(gp, sizeof gp, "%s/plots/throughput.gp", out);
    FILE *f = fopen(dat, "w");
    if (!f) { cJSON_Delete(b); return; }
    /* one block per op/variant/backend (median aggregates, else iterations), x = weights */
    char series[64][160];
    int ns = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, arr) {
        const char *name = str(x, "run_name", ""), *agg = str(x, "aggregate_name", "");
        if (strcmp(agg, "median") && strcmp(str(x, "run_type", ""), "iteration")) continue;
        if (!strcmp(str(x, "run_type", ""), "iteration") && num(x, "repetitions", 1) > 1) continue;
        char s[160];
        snprintf(s, sizeof s, "%s", name);
        char *last = strrchr(s, '/');
        if (!last) continue;
        *last = 0;
        int found = 0;
        for (int i = 0; i < ns; i++) found |= !strcmp(series[i], s);
        if (!found && ns < 64) snprintf(series[ns++], sizeof series[0], "%s", s);
    }
    for (int i = 0; i < ns; i++) {
        fprintf(f, "# %s\n", series[i]);
        cJSON_ArrayForEach(x, arr) {
            const char *name = str(x, "run_name", ""), *agg = str(x, "aggregate_name", "");
            int use = !strcmp(agg, "median") || (!strcmp(str(x, "run_type", ""), "iteration") && num(x, "repetitions", 1) <= 1);
            size_t sl = strlen(series[i]);
            if (!use || strncmp(name, series[i], sl) || name[sl] != '/') continue;
            long long d0 = 0, d1 = 1;
            sscanf(name + sl + 1, "%lldx%lld", &d0, &d1);
            fprintf(f, "%lld %g\n", d0 * d1, num(x, "bytes_per_second", 0) * 1e-9);
        }
        fprintf(f, "\n\n");
    }
    fclose(f);
    f = fopen(gp, "w");
    if (f) {
        for (int t = 0; t < 2; t++) {
            fprintf(f, "set terminal %s size 1000,650\nset output '%s/plots/throughput.%s'\n", t ? "svg" : "pngcairo", out, t ? "svg" : "png");
            fprintf(f, "set title 'Kernel throughput vs matrix size (%s)'\nset logscale x\nset xlabel 'elements (rows x cols)'\n"
                       "set ylabel 'GB/s (bytes moved per second)'\nset grid\nset key outside right\nplot ", bench_json);
            for (int i = 0; i < ns; i++)
                fprintf(f, "%s'%s' index %d using 1:2 with linespoints title '%s'", i ? ", " : "", dat, i, series[i]);
            fprintf(f, "\n");
        }
        fclose(f);
        char cmd[8400], outl[256];
        snprintf(cmd, sizeof cmd, "gnuplot '%s' 2>&1", gp);
        if (ns) run_capture(cmd, outl, sizeof outl);
    }
    if (ns) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "title", "kernel throughput vs matrix size per backend");
        cJSON_AddStringToObject(p, "png", "plots/throughput.png");
        cJSON_AddStringToObject(p, "svg", "plots/throughput.svg");
        cJSON_AddStringToObject(p, "source", bench_json);
        cJSON_AddItemToArray(plots, p);
    }
    cJSON_Delete(b);
}

/* The sweep families of the +1% crossing: single-stage codecs whose rows differ only in group size
 * (int4, awq) or in bits/weight budget (mixed). Returns NULL for a row outside every family. */
static const char *family_of(const char *codec) {
    int used = 0;
    double x;
    if (sscanf(codec, "int4:g=%lf,refine=0%n", &x, &used) == 1 && !codec[used]) return "int4";
    used = 0;
    if (sscanf(codec, "awq:g=%lf,alpha=0.5,search=0,refine=0%n", &x, &used) == 1 && !codec[used]) return "awq";
    used = 0;
    if (sscanf(codec, "awq:g=%lf,alpha=0.5,search=1,refine=0%n", &x, &used) == 1 && !codec[used]) return "awq+search";
    used = 0;
    if (sscanf(codec, "mixed:budget=%lf,awq=0%n", &x, &used) == 1 && !codec[used]) return "mixed";
    used = 0;
    if (sscanf(codec, "mixed:budget=%lf,awq=1%n", &x, &used) == 1 && !codec[used]) return "mixed+awq";
    return NULL;
}

/* The Pareto view of each model x dataset (every dataset is held-out text: the run refuses a dataset
 * that is the calibration text). The metric is the KLD mean where every row of the group has it,
 * else the PPL delta. For every bits/weight point of the group (each row's actual bits/weight), the
 * best row at or below it; and every calibrated row (calib_tokens set: awq, gptq, mixed) that an
 * uncalibrated row beats at equal or fewer bits, with the best such row. */
static int row_calibrated(const cJSON *r) { return cJSON_GetObjectItemCaseSensitive(r, "calib_tokens") != NULL; }
static void pareto(cJSON *root) {
    cJSON *out = cJSON_AddArrayToObject(root, "pareto");
    cJSON *dom = cJSON_AddArrayToObject(root, "dominated_calibrated");
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(root, "rows"), *mo, *ds, *r, *q;
    const double eps = 1e-9;
    cJSON_ArrayForEach(mo, cJSON_GetObjectItemCaseSensitive(root, "models")) {
        cJSON_ArrayForEach(ds, cJSON_GetObjectItemCaseSensitive(root, "datasets")) {
            const char *mn = mo->valuestring, *dn = str(ds, "name", "");
            int n = 0, with_kld = 0;
            cJSON_ArrayForEach(r, rows) if (!strcmp(str(r, "model", ""), mn) && !strcmp(str(r, "dataset", ""), dn)) {
                n++;
                with_kld += cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(r, "kld_mean"));
            }
            if (!n) continue;
            const char *metric = with_kld == n ? "kld_mean" : "ppl_delta_percent";
            cJSON *g = cJSON_CreateObject();
            cJSON_AddStringToObject(g, "model", mn);
            cJSON_AddStringToObject(g, "dataset", dn);
            cJSON_AddStringToObject(g, "metric", metric);
            cJSON *pts = cJSON_AddArrayToObject(g, "points");
            double last = -1;
            for (;;) { /* bits/weight points in ascending order, each once */
                double b = INFINITY;
                cJSON_ArrayForEach(r, rows) {
                    if (strcmp(str(r, "model", ""), mn) || strcmp(str(r, "dataset", ""), dn)) continue;
                    double x = num(r, "bits_per_weight", 0);
                    if (x > last + eps && x < b) b = x;
                }
                if (isinf(b)) break;
                last = b;
                const cJSON *best = NULL;
                cJSON_ArrayForEach(r, rows) {
                    if (strcmp(str(r, "model", ""), mn) || strcmp(str(r, "dataset", ""), dn) || num(r, "bits_per_weight", 0) > b + eps)
                        continue;
                    if (!best || num(r, metric, INFINITY) < num(best, metric, INFINITY)) best = r;
                }
                cJSON *p = cJSON_CreateObject();
                cJSON_AddNumberToObject(p, "bits_per_weight", b);
                cJSON_AddStringToObject(p, "best_codec", str(best, "codec", ""));
                cJSON_AddStringToObject(p, "best_select", str(best, "select", ""));
                cJSON_AddNumberToObject(p, "best_bits_per_weight", num(best, "bits_per_weight", 0));
                cJSON_AddNumberToObject(p, "value", num(best, metric, 0));
                cJSON_AddNumberToObject(p, "ppl_delta_percent", num(best, "ppl_delta_percent", 0));
                cJSON_AddBoolToObject(p, "calibrated", row_calibrated(best));
                cJSON_AddItemToArray(pts, p);
            }
            cJSON_AddItemToArray(out, g);
            cJSON_ArrayForEach(r, rows) {
                if (strcmp(str(r, "model", ""), mn) || strcmp(str(r, "dataset", ""), dn) || !row_calibrated(r)) continue;
                const cJSON *by = NULL;
                cJSON_ArrayForEach(q, rows) {
                    if (strcmp(str(q, "model", ""), mn) || strcmp(str(q, "dataset", ""), dn) || row_calibrated(q)) continue;
                    if (num(q, "bits_per_weight", 0) > num(r, "bits_per_weight", 0) + eps) continue;
                    if (num(q, metric, INFINITY) < num(r, metric, INFINITY) && (!by || num(q, metric, INFINITY) < num(by, metric, INFINITY)))
                        by = q;
                }
                if (!by) continue;
                cJSON *d = cJSON_CreateObject();
                cJSON_AddStringToObject(d, "model", mn);
                cJSON_AddStringToObject(d, "dataset", dn);
                cJSON_AddStringToObject(d, "metric", metric);
                cJSON_AddStringToObject(d, "codec", str(r, "codec", ""));
                cJSON_AddStringToObject(d, "select", str(r, "select", ""));
                cJSON_AddNumberToObject(d, "bits_per_weight", num(r, "bits_per_weight", 0));
                cJSON_AddNumberToObject(d, "value", num(r, metric, 0));
                cJSON_AddStringToObject(d, "dominated_by", str(by, "codec", ""));
                cJSON_AddStringToObject(d, "dominated_by_select", str(by, "select", ""));
                cJSON_AddNumberToObject(d, "dominated_by_bits_per_weight", num(by, "bits_per_weight", 0));
                cJSON_AddNumberToObject(d, "dominated_by_value", num(by, metric, 0));
                /* separated: the two 95% intervals of the metric do not overlap */
                tp_interval a, b;
                int sep = tp_interval_from_json(r, metric, &a) && tp_interval_from_json(by, metric, &b) && b.hi < a.lo;
                cJSON_AddBoolToObject(d, "intervals_separated", sep);
                cJSON_AddItemToArray(dom, d);
            }
        }
    }
}

/* bits/weight where PPL delta crosses +1% along each family's sweep */
static void crossings(cJSON *root) {
    static const char *const families[] = {"int4", "awq", "awq+search", "mixed", "mixed+awq"};
    cJSON *out = cJSON_AddArrayToObject(root, "crossings");
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(root, "rows"), *mo, *ds;
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++)
    cJSON_ArrayForEach(mo, cJSON_GetObjectItemCaseSensitive(root, "models")) {
        cJSON_ArrayForEach(ds, cJSON_GetObjectItemCaseSensitive(root, "datasets")) {
            double b[16], d[16];
            int n = 0;
            const cJSON *r;
            cJSON_ArrayForEach(r, rows) {
                const char *fam = family_of(str(r, "codec", ""));
                if (strcmp(str(r, "model", ""), mo->valuestring) || strcmp(str(r, "dataset", ""), str(ds, "name", "")) ||
                    !fam || strcmp(fam, families[f]) || strcmp(str(r, "select", ""), "linear") || n == 16)
                    continue;
                b[n] = num(r, "bits_per_weight", 0);
                d[n++] = num(r, "ppl_delta_percent", 0);
            }
            if (n < 2) continue;
            for (int i = 0; i < n; i++) /* sort by bits */
                for (int j = i + 1; j < n; j++)
                    if (b[j] < b[i]) { double t = b[i]; b[i] = b[j]; b[j] = t; t = d[i]; d[i] = d[j]; d[j] = t; }
            cJSON *c = cJSON_CreateObject();
            cJSON_AddStringToObject(c, "family", families[f]);
            cJSON_AddStringToObject(c, "model", mo->valuestring);
            cJSON_AddStringToObject(c, "dataset", str(ds, "name", ""));
            cJSON_AddNumberToObject(c, "points", n);
            int found = 0;
            for (int i = 0; i + 1 < n && !found; i++)
                if ((d[i] - 1.0) * (d[i + 1] - 1.0) <= 0 && d[i] != d[i + 1]) {
                    cJSON_AddNumberToObject(c, "bits_per_weight", b[i] + (1.0 - d[i]) * (b[i + 1] - b[i]) / (d[i + 1] - d[i]));
                    found = 1;
                }
            if (!found) cJSON_AddStringToObject(c, "note", d[0] < 1.0 ? "below +1% at every point of the sweep"
                                                                      : "above +1% at every point of the sweep");
            cJSON_AddItemToArray(out, c);
        }
    }
}

/* The KLD plot's series of a row: its sweep family (family_of), else its codec's method names
 * joined by '+' ("vq+int4"; " (other)" added where that is a sweep family's name, e.g. a refined
 * int4), with the selection appended when it is not "linear". */
static void plot_family(const cJSON *r, char *out, size_t n) {
    const char *codec = str(r, "codec", ""), *fam = family_of(codec);
    size_t k = 0;
    if (fam) k = (size_t)snprintf(out, n, "%s", fam);
    else {
        out[0] = 0;
        for (const char *p = codec; *p && k + 2 < n;) {
            size_t len = strcspn(p, ":+");
            k += (size_t)snprintf(out + k, n - k, "%s%.*s", k ? "+" : "", (int)len, p);
            p += strcspn(p, "+");
            if (*p == '+') p++;
        }
        static const char *const sweeps[] = {"int4", "awq", "mixed"};
        for (size_t i = 0; i < sizeof sweeps / sizeof sweeps[0]; i++)
            if (!strcmp(out, sweeps[i]) && k < n) k += (size_t)snprintf(out + k, n - k, " (other)");
    }
    if (strcmp(str(r, "select", "linear"), "linear") && k < n) snprintf(out + k, n - k, " [%s]", str(r, "select", ""));
}

/* KLD mean (with its 95% interval) against bits/weight on the first dataset, one line per model and
 * codec family, on a log scale: plots/kld.png and .svg beside the Pareto plot */
static void plot_kld(const char *out, const cJSON *root, cJSON *plots) {
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(root, "rows"), *r;
    const char *ds0 = str(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "datasets"), 0), "name", "");
    char series[64][200], dat[4096], gp[4096];
    int ns = 0;
    cJSON_ArrayForEach(r, rows) {
        char fam[160], name[200];
        if (strcmp(str(r, "dataset", ""), ds0) || !(num(r, "kld_mean", 0) > 0)) continue;
        plot_family(r, fam, sizeof fam);
        snprintf(name, sizeof name, "%s %s", str(r, "model", ""), fam);
        int found = 0;
        for (int i = 0; i < ns; i++) found |= !strcmp(series[i], name);
        if (!found && ns < 64) snprintf(series[ns++], sizeof series[0], "%s", name);
    }
    if (!ns) return;
    snprintf(dat, sizeof dat, "%s/plots/kld.dat", out);
    snprintf(gp, sizeof gp, "%s/plots/kld.gp", out);
    FILE *f = fopen(dat, "w");
    if (!f) return;
    for (int i = 0; i < ns; i++) {
        fprintf(f, "# %s: bits/weight, kld_mean, 95%% interval\n", series[i]);
        for (double last = -1;;) { /* the series' points in ascending bits/weight */
            const cJSON *best = NULL;
            cJSON_ArrayForEach(r, rows) {
                char fam[160], name[200];
                if (strcmp(str(r, "dataset", ""), ds0) || !(num(r, "kld_mean", 0) > 0)) continue;
                plot_family(r, fam, sizeof fam);
                snprintf(name, sizeof name, "%s %s", str(r, "model", ""), fam);
                double b = num(r, "bits_per_weight", 0);
                if (!strcmp(name, series[i]) && b > last && (!best || b < num(best, "bits_per_weight", 0))) best = r;
            }
            if (!best) break;
            tp_interval ci = {num(best, "kld_mean", 0), num(best, "kld_mean", 0)};
            tp_interval_from_json(best, "kld_mean", &ci);
            last = num(best, "bits_per_weight", 0);
            fprintf(f, "%g %g %g %g\n", last, num(best, "kld_mean", 0), ci.lo, ci.hi);
        }
        fprintf(f, "\n\n");
    }
    fclose(f);
    if (!(f = fopen(gp, "w"))) return;
    for (int t = 0; t < 2; t++) {
        fprintf(f, "set terminal %s size 900,600\nset output '%s/plots/kld.%s'\n", t ? "svg" : "pngcairo", out, t ? "svg" : "png");
        fprintf(f, "set title 'KL divergence from the base model vs bits/weight (%s)'\nset xlabel 'bits/weight (actual, "
                   "compressed tensors)'\nset ylabel 'mean KLD per token (nats), 95%% interval'\nset logscale y\nset grid\n"
                   "set key outside right\nset offsets graph 0.05, graph 0.05, 0, 0\nplot ", ds0);
        for (int i = 0; i < ns; i++)
            fprintf(f, "%s'%s' index %d using 1:2:3:4 with yerrorlines lw 2 pt 7 title '%s'", i ? ", " : "", dat, i, series[i]);
        fprintf(f, "\n");
    }
    fclose(f);
    char cmd[8400], outl[256];
    snprintf(cmd, sizeof cmd, "gnuplot '%s' 2>&1", gp);
    run_capture(cmd, outl, sizeof outl);
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "title", "KLD vs bits/weight, one line per codec family");
    cJSON_AddStringToObject(p, "png", "plots/kld.png");
    cJSON_AddStringToObject(p, "svg", "plots/kld.svg");
    cJSON_AddItemToArray(plots, p);
}

/* "1m23s" */
static void fmt_secs(double s, char *buf, size_t n) {
    long t = (long)(s + 0.5);
    if (t >= 60) snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, n, "%lds", t);
}

/* The progress line of one step of the matrix: what it does, the time since the run began and,
 * once a row is done, what the rows left should take at the average pace so far. */
typedef struct progress { double t0; int total, done; } progress;
static void progress_line(const progress *pg, int step, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void progress_line(const progress *pg, int step, const char *fmt, ...) {
    char el[32], left[48] = "estimate after the first row";
    double elapsed = tp_now() - pg->t0;
    fmt_secs(elapsed, el, sizeof el);
    if (pg->done > 0) {
        char l[32];
        fmt_secs(elapsed / pg->done * (pg->total - pg->done), l, sizeof l);
        snprintf(left, sizeof left, "about %s left", l);
    }
    fprintf(stderr, "[%d/%d, %s elapsed, %s] ", step, pg->total, el, left);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

tp_status tp_report_run(const tp_report_opts *o, tp_err *e) {
    const char *cfgpath = o->config ? o->config : "reports/default.json";
    size_t n;
    char *text = tp_read_file(cfgpath, &n, e);
    if (!text) return TP_ERR_IO;
    cJSON *cfg = cJSON_ParseWithLength(text, n);
    free(text);
    if (!cfg) return tp_fail(e, TP_ERR_FORMAT, "%s: not valid JSON", cfgpath);
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(cfg, "models");
    const cJSON *datasets = cJSON_GetObjectItemCaseSensitive(cfg, "datasets");
    const cJSON *codecs = cJSON_GetObjectItemCaseSensitive(cfg, "codecs");
    const cJSON *proto = cJSON_GetObjectItemCaseSensitive(cfg, "protocol");
    if (!cJSON_IsArray(models) || !cJSON_IsArray(datasets) || !cJSON_IsArray(codecs) || !cJSON_GetArraySize(models) ||
        !cJSON_GetArraySize(datasets) || !cJSON_GetArraySize(codecs)) {
        cJSON_Delete(cfg);
        return tp_fail(e, TP_ERR_FORMAT, "%s: needs non-empty \"models\", \"datasets\" and \"codecs\" arrays", cfgpath);
    }
    /* check every codec spec before spending time */
    const cJSON *c;
    cJSON_ArrayForEach(c, codecs) {
        tp_codec cc;
        if (!tp_json_str(c, "spec") || tp_codec_parse(tp_json_str(c, "spec"), &cc, e) != TP_OK) {
            if (!tp_json_str(c, "spec")) tp_fail(e, TP_ERR_FORMAT, "%s: a codec entry lacks \"spec\"", cfgpath);
            cJSON_Delete(cfg);
            return TP_ERR_FORMAT;
        }
    }
    char models_dir[4096], shared[2048];
    const char *env = getenv("TENPAK_MODELS_DIR");
    snprintf(shared, sizeof shared, "%s", o->data_dir ? o->data_dir : tp_shared_dir());
    if (o->models_dir) snprintf(models_dir, sizeof models_dir, "%s", o->models_dir);
    else if (env && *env) snprintf(models_dir, sizeof models_dir, "%s", env);
    else snprintf(models_dir, sizeof models_dir, "%s/models", shared);
    /* calibration text (awq, mixed): the config's "calibration" {path relative to the shared
     * directory, tokens}, else the default; never one of the evaluation datasets */
    const cJSON *calcfg = cJSON_GetObjectItemCaseSensitive(cfg, "calibration");
    char calpath[4096];
    const char *cp = str(calcfg, "path", NULL);
    if (!cp) snprintf(calpath, sizeof calpath, "%s", tp_calib_default_path());
    else if (cp[0] == '/') snprintf(calpath, sizeof calpath, "%s", cp);
    else snprintf(calpath, sizeof calpath, "%s/%s", shared, cp);
    size_t caltokens = (size_t)num(calcfg, "tokens", 0);
    cJSON_ArrayForEach(c, datasets) {
        char dpath[4096];
        const char *dp = str(c, "path", "");
        if (dp[0] == '/') snprintf(dpath, sizeof dpath, "%s", dp);
        else snprintf(dpath, sizeof dpath, "%s/%s", shared, dp);
        char r1[4096], r2[4096];
        if (realpath(dpath, r1) && realpath(calpath, r2) ? !strcmp(r1, r2) : !strcmp(dpath, calpath)) {
            cJSON_Delete(cfg);
            return tp_fail(e, TP_ERR_FORMAT, "%s: the calibration text %s is also evaluation dataset '%s'", cfgpath, calpath,
                           str(c, "name", ""));
        }
    }
    const char *out = o->out_dir ? o->out_dir : "reports";
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/results", out);
    mkdirs(dir);
    snprintf(dir, sizeof dir, "%s/plots", out);
    mkdirs(dir);
    snprintf(dir, sizeof dir, "%s/artifacts", out);
    mkdirs(dir);

    tp_ppl_opts po = {0};
    po.protocol = str(proto, "name", "hf") && !strcmp(str(proto, "name", "hf"), "llamacpp") ? TP_PPL_LLAMACPP : TP_PPL_HF;
    po.ctx = (int)num(proto, "ctx", 0);
    po.stride = (int)num(proto, "stride", 0);
    size_t max_tokens = o->max_tokens_set ? o->max_tokens : (size_t)num(proto, "max_tokens", 0);

    cJSON *root = cJSON_CreateObject();
    cJSON *prov = cJSON_AddObjectToObject(root, "provenance");
    char buf[512], date[64];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S %Z", localtime(&now));
    cJSON_AddStringToObject(prov, "date", date);
    cJSON_AddStringToObject(prov, "command", o->command ? o->command : "tenpak report");
    run_capture("git rev-parse HEAD 2>/dev/null", buf, sizeof buf);
    char dirty[64];
    run_capture("git status --porcelain --untracked-files=no 2>/dev/null | head -1", dirty, sizeof dirty);
    snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s", buf[0] ? (dirty[0] ? " (with uncommitted changes)" : "") : "unknown");
    cJSON_AddStringToObject(prov, "git_commit", buf);
    cJSON_AddStringToObject(prov, "cpu", tp_cpu_model());
    snprintf(buf, sizeof buf, "%d", tp_num_threads());
    cJSON_AddStringToObject(prov, "threads", buf);
#ifdef __clang__
    cJSON_AddStringToObject(prov, "compiler", __VERSION__); /* "Debian Clang 14.0.6" */
#else
    cJSON_AddStringToObject(prov, "compiler", "gcc " __VERSION__);
#endif
    cJSON_AddStringToObject(prov, "config", cfgpath);
    cJSON_AddStringToObject(prov, "models_dir", models_dir);
    cJSON_AddStringToObject(prov, "results_json", "results/report.json");
    cJSON *pj = cJSON_AddObjectToObject(root, "protocol");
    cJSON_AddStringToObject(pj, "name", tp_ppl_protocol_name(po.protocol));
    cJSON_AddNumberToObject(pj, "ctx", po.ctx);
    cJSON_AddNumberToObject(pj, "stride", po.stride);
    cJSON_AddNumberToObject(pj, "max_tokens", (double)max_tokens);
    cJSON_AddItemToObject(root, "models", cJSON_Duplicate(models, 1));
    cJSON_AddItemToObject(root, "datasets", cJSON_Duplicate(datasets, 1));
    cJSON *bases = cJSON_AddArrayToObject(root, "baselines");
    cJSON *rows = cJSON_AddArrayToObject(root, "rows");
    tp_status s = TP_OK;
    int total = cJSON_GetArraySize(models) * cJSON_GetArraySize(codecs), step = 0;
    progress pg = {tp_now(), total, 0};
    const cJSON *mo;
    cJSON_ArrayForEach(mo, models) {
        if (s != TP_OK) break;
        if (!cJSON_IsString(mo)) { s = tp_fail(e, TP_ERR_FORMAT, "%s: models are folder names", cfgpath); break; }
        char mdir[8400];
        if (mo->valuestring[0] == '/') snprintf(mdir, sizeof mdir, "%s", mo->valuestring);
        else snprintf(mdir, sizeof mdir, "%s/%s", models_dir, mo->valuestring);
        tp_calib *mcal = NULL; /* this model's calibration statistics, shared by its calibrated codecs */
        cJSON_ArrayForEach(c, codecs) {
            if (s != TP_OK) break;
            step++;
            tp_codec cc;
            tp_codec_parse(tp_json_str(c, "spec"), &cc, e);
            if (tp_codec_needs_calib(&cc) && !mcal) {
                progress_line(&pg, step, "%s: calibration on %s ...", mo->valuestring, calpath);
                if ((s = tp_calib_collect(mdir, calpath, caltokens, &mcal, e)) != TP_OK) break;
                if (!cJSON_GetObjectItemCaseSensitive(root, "calibration")) {
                    cJSON *cj = cJSON_AddObjectToObject(root, "calibration");
                    cJSON_AddStringToObject(cj, "path", cp ? cp : "datasets/corpus/brown.txt.gz");
                    cJSON_AddStringToObject(cj, "sha256", mcal->sha256);
                    cJSON_AddNumberToObject(cj, "tokens", (double)mcal->tokens);
                }
            }
            char sl[256], art[4400];
            slug(tp_json_str(c, "spec"), sl, sizeof sl);
            snprintf(art, sizeof art, "%s/artifacts/%s__%s__%s.tpk", out, mo->valuestring, sl, str(c, "select", "linear"));
            tp_compress_opts co = {.model_dir = mdir, .codec = tp_json_str(c, "spec"), .select = str(c, "select", "linear"),
                                   .lossless = str(c, "lossless", "none"), .quiet = 1, .calib = mcal};
            tp_compress_result cr;
            progress_line(&pg, step, "%s: compress %s (%s) ...", mo->valuestring, co.codec, co.select);
            if ((s = tp_compress_model(&co, art, &cr, e)) != TP_OK) break;
            tp_compress_result_free(&cr);
            const cJSON *ds;
            cJSON_ArrayForEach(ds, datasets) {
                char dpath[4096];
                const char *dp = str(ds, "path", "");
                if (dp[0] == '/') snprintf(dpath, sizeof dpath, "%s", dp);
                else snprintf(dpath, sizeof dpath, "%s/%s", shared, dp);
                const cJSON *b = find_baseline(bases, mo->valuestring, str(ds, "name", ""));
                tp_eval_opts eo = {.artifact = art, .data = dpath, .tail_chars = (size_t)num(ds, "tail_chars", 0),
                                   .max_tokens = max_tokens, .ppl = po, .decode_tokens = 64};
                if (b) {
                    eo.skip_baseline = 1;
                    eo.baseline_ppl = num(b, "ppl", 0);
                    eo.baseline_nll = num(b, "nll_sum", 0);
                }
                tp_eval_result er;
                progress_line(&pg, step, "%s: %s on %s%s ...", mo->valuestring, co.codec, str(ds, "name", ""),
                              b ? "" : " (and the uncompressed baseline)");
                if ((s = tp_eval_artifact(&eo, &er, e)) != TP_OK) break;
                if (!b) {
                    cJSON *nb = cJSON_CreateObject();
                    cJSON_AddStringToObject(nb, "model", mo->valuestring);
                    cJSON_AddStringToObject(nb, "dataset", str(ds, "name", ""));
                    cJSON_AddStringToObject(nb, "model_sha256", er.model_sha256);
                    cJSON_AddStringToObject(nb, "data_sha256", er.data_sha256);
                    cJSON_AddNumberToObject(nb, "tokens", (double)er.tokens);
                    cJSON_AddNumberToObject(nb, "scored_tokens", (double)er.baseline.scored);
                    cJSON_AddNumberToObject(nb, "nll_sum", er.baseline.nll_sum);
                    cJSON_AddNumberToObject(nb, "ppl", er.baseline.ppl);
                    cJSON_AddNumberToObject(nb, "decode_tokens_per_second", er.baseline_decode_tps);
                    cJSON_AddItemToArray(bases, nb);
                }
                cJSON *r = cJSON_CreateObject();
                cJSON_AddStringToObject(r, "model", mo->valuestring);
                cJSON_AddStringToObject(r, "dataset", str(ds, "name", ""));
                cJSON_AddStringToObject(r, "codec", er.codec);
                cJSON_AddStringToObject(r, "select", co.select);
                cJSON_AddStringToObject(r, "lossless", co.lossless);
                if (tp_json_str(c, "name")) cJSON_AddStringToObject(r, "name", tp_json_str(c, "name"));
                cJSON_AddNumberToObject(r, "artifact_bytes", (double)er.size.artifact_bytes);
                cJSON_AddNumberToObject(r, "fp32_bytes", (double)er.size.fp32_bytes);
                cJSON_AddNumberToObject(r, "fp16_bytes", (double)er.size.fp16_bytes);
                cJSON_AddNumberToObject(r, "ratio_fp32", (double)er.size.fp32_bytes / (double)er.size.artifact_bytes);
                cJSON_AddNumberToObject(r, "ratio_fp16", (double)er.size.fp16_bytes / (double)er.size.artifact_bytes);
                cJSON_AddNumberToObject(r, "bits_per_weight", 8.0 * (double)er.size.compressed_bytes / (double)er.size.compressed_numel);
                cJSON_AddNumberToObject(r, "bits_per_weight_model", 8.0 * (double)er.size.artifact_bytes / (double)er.size.total_numel);
                cJSON_AddNumberToObject(r, "theory_bits_per_weight", er.size.theory_bpw);
                cJSON_AddNumberToObject(r, "rel_frobenius_error", er.size.rel_error);
                cJSON_AddNumberToObject(r, "tokens", (double)er.tokens);
                cJSON_AddNumberToObject(r, "scored_tokens", (double)er.ppl.scored);
                cJSON_AddNumberToObject(r, "nll_sum", er.ppl.nll_sum);
                cJSON_AddNumberToObject(r, "ppl", er.ppl.ppl);
                cJSON_AddNumberToObject(r, "baseline_ppl", er.baseline.ppl);
                cJSON_AddNumberToObject(r, "ppl_delta_percent", 100.0 * (er.ppl.ppl - er.baseline.ppl) / er.baseline.ppl);
                if (er.paired) {
                    tp_token_stats_json(&er.stats, r); /* ppl_delta_percent from the same sums, intervals, KLD, top-1 */
                    cJSON_AddNumberToObject(r, "top1_percent", 100.0 * er.stats.top1_agreement);
                    cJSON_AddNumberToObject(r, "nll_mean_stderr", er.ppl.nll_stderr);
                }
                cJSON_AddNumberToObject(r, "eval_seconds", er.ppl.seconds);
                cJSON_AddStringToObject(r, "exec", "packed");
                cJSON_AddNumberToObject(r, "decode_tokens_per_second", er.decode_tps);
                cJSON_AddNumberToObject(r, "peak_rss_bytes", (double)er.peak_rss_bytes);
                cJSON_AddNumberToObject(r, "peak_rss_mib", (double)er.peak_rss_bytes / 1048576.0);
                if (cr.calib_tokens) {
                    cJSON_AddNumberToObject(r, "calib_tokens", (double)cr.calib_tokens);
                    cJSON_AddStringToObject(r, "calib_sha256", cr.calib_sha256);
                }
                cJSON_AddItemToArray(rows, r);
                fprintf(stderr, "        ppl %.4f vs %.4f (%+.2f%%), %.2fx vs fp32", er.ppl.ppl, er.baseline.ppl,
                        100.0 * (er.ppl.ppl - er.baseline.ppl) / er.baseline.ppl,
                        (double)er.size.fp32_bytes / (double)er.size.artifact_bytes);
                if (er.paired)
                    fprintf(stderr, ", delta interval [%+.2f%%, %+.2f%%], KLD %.5f, top-1 %.2f%%", er.stats.ppl_delta_percent_ci.lo,
                            er.stats.ppl_delta_percent_ci.hi, er.stats.kld_mean, 100 * er.stats.top1_agreement);
                fputc('\n', stderr);
            }
            if (!o->keep_artifacts) unlink(art);
            pg.done++;
        }
        tp_calib_free(mcal);
    }
    if (s == TP_OK) {
        crossings(root);
        pareto(root);
        cJSON *cl = cJSON_AddArrayToObject(root, "claims");
        const cJSON *files = cJSON_GetObjectItemCaseSensitive(cfg, "claims");
        /* the matrix's own measurements, so claims about the same runs are not run twice */
        cJSON *known = cJSON_CreateArray();
        const cJSON *r;
        cJSON_ArrayForEach(r, rows) {
            const cJSON *ds, *dsm = NULL;
            cJSON_ArrayForEach(ds, datasets) if (!strcmp(str(ds, "name", ""), str(r, "dataset", "?"))) dsm = ds;
            if (!dsm) continue;
            cJSON *k = cJSON_Duplicate(r, 1);
            cJSON_AddStringToObject(k, "model_dir", str(r, "model", ""));
            cJSON_AddStringToObject(k, "data", str(dsm, "path", ""));
            cJSON_AddNumberToObject(k, "tail_chars", num(dsm, "tail_chars", 0));
            cJSON_AddNumberToObject(k, "max_tokens", (double)max_tokens);
            cJSON_AddItemToArray(known, k);
        }
        cJSON_ArrayForEach(c, files) {
            if (!cJSON_IsString(c)) continue;
            tp_claims_opts qo = {.models_dir = models_dir, .data_dir = shared, .max_tokens = max_tokens, .known = known};
            int counts[TP_CLAIM_NSTATUS] = {0};
            fprintf(stderr, "claims: %s\n", c->valuestring);
            if ((s = tp_claims_verify_file(c->valuestring, &qo, cl, counts, e)) != TP_OK) break;
        }
        cJSON_Delete(known);
    }
    if (s == TP_OK) {
        cJSON *plots = cJSON_AddArrayToObject(root, "plots");
        plot_pareto(out, root, plots);
        plot_kld(out, root, plots);
        const char *bench = o->bench_json ? o->bench_json : tp_json_str(cfg, "bench");
        if (bench && access(bench, R_OK) == 0) plot_bench(out, bench, plots);
        char *js = cJSON_Print(root);
        char path[4200];
        snprintf(path, sizeof path, "%s/results/report.json", out);
        s = js ? write_text(path, js, e) : tp_fail(e, TP_ERR_NOMEM, "out of memory");
        free(js);
        sbuf md = {0};
        md_report(&md, root);
        snprintf(path, sizeof path, "%s/EXPERIMENT_LOG.md", out);
        if (s == TP_OK) s = md.p ? write_text(path, md.p, e) : tp_fail(e, TP_ERR_NOMEM, "out of memory");
        free(md.p);
        if (s == TP_OK) fprintf(stderr, "report: %s/EXPERIMENT_LOG.md (numbers from %s/results/report.json)\n", out, out);
    }
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    return s;
}
