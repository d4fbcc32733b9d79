/* What the files of `tenpak report` share (private to pipeline/report_*.c; the contract is
 * pipeline/report.h):
 *   report_run.c     the matrix: config, paths, provenance, compress -> eval per row, claims, outputs
 *   report_pareto.c  results derived from the rows: sweep families, Pareto view, +1% crossings
 *   report_md.c      the experiment log's markdown, from the results JSON alone
 *   report_plot.c    the gnuplot plots
 *   report_merge.c   `tenpak report merge`: bench results of several machines into one table
 *   report_common.c  the growing string, directories, a command's first output line, baselines */
#ifndef TENPAK_PIPELINE_REPORT_INTERNAL_H
#define TENPAK_PIPELINE_REPORT_INTERNAL_H

#include "pipeline/artifact.h" /* tp_json_str */
#include "pipeline/report.h"

/* a number member of o, d when absent or not a number */
static inline double jnum(const cJSON *o, const char *k, double d) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : d;
}
/* a string member of o, d when absent or not a string */
static inline const char *jstr_or(const cJSON *o, const char *k, const char *d) {
    const char *s = tp_json_str(o, k);
    return s ? s : d;
}

/* a growing string; oom is set (and later appends do nothing) when it could not grow */
typedef struct tp_sbuf { char *p; size_t n, cap; int oom; } tp_sbuf;
void tp_sb_printf(tp_sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void tp_report_mkdirs(const char *dir); /* mkdir -p, errors ignored (the writes that follow report them) */
/* the first line of cmd's output (sh -c) into out, "" when none */
void tp_report_capture(const char *cmd, char *out, size_t n);
/* the baseline row of model on dataset in the results' "baselines", NULL when none */
const cJSON *tp_report_find_baseline(const cJSON *bases, const char *model, const char *dataset);

/* report_pareto.c: the sweep family of a codec spec ("int4", "awq", "awq+search", "mixed",
 * "mixed+awq"), NULL outside every family; the derived results added to root */
const char *tp_report_family_of(const char *codec);
void tp_report_pareto(cJSON *root);    /* "pareto", "dominated_calibrated" */
void tp_report_crossings(cJSON *root); /* "crossings" */

/* report_md.c */
void tp_report_markdown(tp_sbuf *m, const cJSON *root);

/* report_plot.c: each draws OUT/plots/NAME.png and .svg and lists them in plots */
void tp_report_plot_pareto(const char *out, const cJSON *root, cJSON *plots);
void tp_report_plot_kld(const char *out, const cJSON *root, cJSON *plots);
void tp_report_plot_bench(const char *out, const char *bench_json, cJSON *plots);

#endif
