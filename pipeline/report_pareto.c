/* tenpak report's derived results, computed from the rows alone: the sweep families, the Pareto
 * view of each model x dataset, the calibrated rows an uncalibrated one beats, and the +1% crossings
 * (pipeline/report.h). */
#include "pipeline/report_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/stats.h"

/* The sweep families of the +1% crossing: single-stage codecs whose rows differ only in group size
 * (int4, awq) or in bits/weight budget (mixed). Returns NULL for a row outside every family. */
const char *tp_report_family_of(const char *codec) {
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
void tp_report_pareto(cJSON *root) {
    cJSON *out = cJSON_AddArrayToObject(root, "pareto");
    cJSON *dom = cJSON_AddArrayToObject(root, "dominated_calibrated");
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(root, "rows"), *mo, *ds, *r, *q;
    const double eps = 1e-9;
    cJSON_ArrayForEach(mo, cJSON_GetObjectItemCaseSensitive(root, "models")) {
        cJSON_ArrayForEach(ds, cJSON_GetObjectItemCaseSensitive(root, "datasets")) {
            const char *mn = mo->valuestring, *dn = jstr_or(ds, "name", "");
            int n = 0, with_kld = 0;
            cJSON_ArrayForEach(r, rows) if (!strcmp(jstr_or(r, "model", ""), mn) && !strcmp(jstr_or(r, "dataset", ""), dn)) {
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
                    if (strcmp(jstr_or(r, "model", ""), mn) || strcmp(jstr_or(r, "dataset", ""), dn)) continue;
                    double x = jnum(r, "bits_per_weight", 0);
                    if (x > last + eps && x < b) b = x;
                }
                if (isinf(b)) break;
                last = b;
                const cJSON *best = NULL;
                cJSON_ArrayForEach(r, rows) {
                    if (strcmp(jstr_or(r, "model", ""), mn) || strcmp(jstr_or(r, "dataset", ""), dn) || jnum(r, "bits_per_weight", 0) > b + eps)
                        continue;
                    if (!best || jnum(r, metric, INFINITY) < jnum(best, metric, INFINITY)) best = r;
                }
                cJSON *p = cJSON_CreateObject();
                cJSON_AddNumberToObject(p, "bits_per_weight", b);
                cJSON_AddStringToObject(p, "best_codec", jstr_or(best, "codec", ""));
                cJSON_AddStringToObject(p, "best_select", jstr_or(best, "select", ""));
                cJSON_AddNumberToObject(p, "best_bits_per_weight", jnum(best, "bits_per_weight", 0));
                cJSON_AddNumberToObject(p, "value", jnum(best, metric, 0));
                cJSON_AddNumberToObject(p, "ppl_delta_percent", jnum(best, "ppl_delta_percent", 0));
                cJSON_AddBoolToObject(p, "calibrated", row_calibrated(best));
                cJSON_AddItemToArray(pts, p);
            }
            cJSON_AddItemToArray(out, g);
            cJSON_ArrayForEach(r, rows) {
                if (strcmp(jstr_or(r, "model", ""), mn) || strcmp(jstr_or(r, "dataset", ""), dn) || !row_calibrated(r)) continue;
                const cJSON *by = NULL;
                cJSON_ArrayForEach(q, rows) {
                    if (strcmp(jstr_or(q, "model", ""), mn) || strcmp(jstr_or(q, "dataset", ""), dn) || row_calibrated(q)) continue;
                    if (jnum(q, "bits_per_weight", 0) > jnum(r, "bits_per_weight", 0) + eps) continue;
                    if (jnum(q, metric, INFINITY) < jnum(r, metric, INFINITY) && (!by || jnum(q, metric, INFINITY) < jnum(by, metric, INFINITY)))
                        by = q;
                }
                if (!by) continue;
                cJSON *d = cJSON_CreateObject();
                cJSON_AddStringToObject(d, "model", mn);
                cJSON_AddStringToObject(d, "dataset", dn);
                cJSON_AddStringToObject(d, "metric", metric);
                cJSON_AddStringToObject(d, "codec", jstr_or(r, "codec", ""));
                cJSON_AddStringToObject(d, "select", jstr_or(r, "select", ""));
                cJSON_AddNumberToObject(d, "bits_per_weight", jnum(r, "bits_per_weight", 0));
                cJSON_AddNumberToObject(d, "value", jnum(r, metric, 0));
                cJSON_AddStringToObject(d, "dominated_by", jstr_or(by, "codec", ""));
                cJSON_AddStringToObject(d, "dominated_by_select", jstr_or(by, "select", ""));
                cJSON_AddNumberToObject(d, "dominated_by_bits_per_weight", jnum(by, "bits_per_weight", 0));
                cJSON_AddNumberToObject(d, "dominated_by_value", jnum(by, metric, 0));
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
void tp_report_crossings(cJSON *root) {
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
                const char *fam = tp_report_family_of(jstr_or(r, "codec", ""));
                if (strcmp(jstr_or(r, "model", ""), mo->valuestring) || strcmp(jstr_or(r, "dataset", ""), jstr_or(ds, "name", "")) ||
                    !fam || strcmp(fam, families[f]) || strcmp(jstr_or(r, "select", ""), "linear") || n == 16)
                    continue;
                b[n] = jnum(r, "bits_per_weight", 0);
                d[n++] = jnum(r, "ppl_delta_percent", 0);
            }
            if (n < 2) continue;
            for (int i = 0; i < n; i++) /* sort by bits */
                for (int j = i + 1; j < n; j++)
                    if (b[j] < b[i]) { double t = b[i]; b[i] = b[j]; b[j] = t; t = d[i]; d[i] = d[j]; d[j] = t; }
            cJSON *c = cJSON_CreateObject();
            cJSON_AddStringToObject(c, "family", families[f]);
            cJSON_AddStringToObject(c, "model", mo->valuestring);
            cJSON_AddStringToObject(c, "dataset", jstr_or(ds, "name", ""));
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

