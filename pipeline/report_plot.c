/* tenpak report's plots: gnuplot data and scripts under OUT/plots, drawn by running gnuplot, each
 * listed in the results JSON: the Pareto plot (PPL delta vs bits/weight), KLD vs bits/weight, kernel
 * throughput from a bench JSON. */
#include "pipeline/report_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/stats.h"

/* ---- gnuplot ---- */
void tp_report_plot_pareto(const char *out, const cJSON *root, cJSON *plots) {
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(root, "rows");
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(root, "models");
    const char *ds0 = jstr_or(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "datasets"), 0), "name", "");
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
        cJSON_ArrayForEach(r, rows) if (!strcmp(jstr_or(r, "model", ""), mo->valuestring) && !strcmp(jstr_or(r, "dataset", ""), ds0))
            fprintf(f, "%g %g \"%s\"\n", jnum(r, "bits_per_weight", 0), jnum(r, "ppl_delta_percent", 0), jstr_or(r, "codec", ""));
        fprintf(f, "\n\n# %s front\n", mo->valuestring);
        /* sorted by bits: print front points in ascending bits */
        double last = -1;
        for (;;) {
            double best_b = INFINITY, best_d = 0;
            cJSON_ArrayForEach(r, rows) {
                if (strcmp(jstr_or(r, "model", ""), mo->valuestring) || strcmp(jstr_or(r, "dataset", ""), ds0)) continue;
                double b = jnum(r, "bits_per_weight", 0), d = jnum(r, "ppl_delta_percent", 0);
                int dominated = 0;
                cJSON_ArrayForEach(q, rows) {
                    if (strcmp(jstr_or(q, "model", ""), mo->valuestring) || strcmp(jstr_or(q, "dataset", ""), ds0)) continue;
                    double b2 = jnum(q, "bits_per_weight", 0), d2 = jnum(q, "ppl_delta_percent", 0);
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
    tp_report_capture(cmd, outl, sizeof outl);
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "title", "PPL delta vs bits/weight, Pareto front marked");
    cJSON_AddStringToObject(p, "png", "plots/pareto.png");
    cJSON_AddStringToObject(p, "svg", "plots/pareto.svg");
    cJSON_AddItemToArray(plots, p);
}

/* Kernel throughput vs matrix size per backend, from a Google Benchmark JSON of `tenpak bench`. */
void tp_report_plot_bench(const char *out, const char *bench_json, cJSON *plots) {
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
        const char *name = jstr_or(x, "run_name", ""), *agg = jstr_or(x, "aggregate_name", "");
        if (strcmp(agg, "median") && strcmp(jstr_or(x, "run_type", ""), "iteration")) continue;
        if (!strcmp(jstr_or(x, "run_type", ""), "iteration") && jnum(x, "repetitions", 1) > 1) continue;
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
            const char *name = jstr_or(x, "run_name", ""), *agg = jstr_or(x, "aggregate_name", "");
            int use = !strcmp(agg, "median") || (!strcmp(jstr_or(x, "run_type", ""), "iteration") && jnum(x, "repetitions", 1) <= 1);
            size_t sl = strlen(series[i]);
            if (!use || strncmp(name, series[i], sl) || name[sl] != '/') continue;
            long long d0 = 0, d1 = 1;
            sscanf(name + sl + 1, "%lldx%lld", &d0, &d1);
            fprintf(f, "%lld %g\n", d0 * d1, jnum(x, "bytes_per_second", 0) * 1e-9);
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
        if (ns) tp_report_capture(cmd, outl, sizeof outl);
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

/* The KLD plot's series of a row: its sweep family (tp_report_family_of), else its codec's method names
 * joined by '+' ("vq+int4"; " (other)" added where that is a sweep family's name, e.g. a refined
 * int4), with the selection appended when it is not "linear". */
static void plot_family(const cJSON *r, char *out, size_t n) {
    const char *codec = jstr_or(r, "codec", ""), *fam = tp_report_family_of(codec);
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
    if (strcmp(jstr_or(r, "select", "linear"), "linear") && k < n) snprintf(out + k, n - k, " [%s]", jstr_or(r, "select", ""));
}

/* KLD mean (with its 95% interval) against bits/weight on the first dataset, one line per model and
 * codec family, on a log scale: plots/kld.png and .svg beside the Pareto plot */
void tp_report_plot_kld(const char *out, const cJSON *root, cJSON *plots) {
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(root, "rows"), *r;
    const char *ds0 = jstr_or(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "datasets"), 0), "name", "");
    char series[64][200], dat[4096], gp[4096];
    int ns = 0;
    cJSON_ArrayForEach(r, rows) {
        char fam[160], name[200];
        if (strcmp(jstr_or(r, "dataset", ""), ds0) || !(jnum(r, "kld_mean", 0) > 0)) continue;
        plot_family(r, fam, sizeof fam);
        snprintf(name, sizeof name, "%s %s", jstr_or(r, "model", ""), fam);
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
                if (strcmp(jstr_or(r, "dataset", ""), ds0) || !(jnum(r, "kld_mean", 0) > 0)) continue;
                plot_family(r, fam, sizeof fam);
                snprintf(name, sizeof name, "%s %s", jstr_or(r, "model", ""), fam);
                double b = jnum(r, "bits_per_weight", 0);
                if (!strcmp(name, series[i]) && b > last && (!best || b < jnum(best, "bits_per_weight", 0))) best = r;
            }
            if (!best) break;
            tp_interval ci = {jnum(best, "kld_mean", 0), jnum(best, "kld_mean", 0)};
            tp_interval_from_json(best, "kld_mean", &ci);
            last = jnum(best, "bits_per_weight", 0);
            fprintf(f, "%g %g %g %g\n", last, jnum(best, "kld_mean", 0), ci.lo, ci.hi);
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
    tp_report_capture(cmd, outl, sizeof outl);
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "title", "KLD vs bits/weight, one line per codec family");
    cJSON_AddStringToObject(p, "png", "plots/kld.png");
    cJSON_AddStringToObject(p, "svg", "plots/kld.svg");
    cJSON_AddItemToArray(plots, p);
}

