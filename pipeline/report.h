/* tenpak report: runs a matrix of codecs x models x datasets from a JSON config and writes
 *   OUT/results/report.json   every measured number (the source of the markdown)
 *   OUT/EXPERIMENT_LOG.md     status table (PASS / FAIL / INCONCLUSIVE at +1% on the PPL delta's
 *                             95% interval), verified results per model with baseline PPL, KLD
 *                             mean and p99, top-1 agreement, bits/weight theory vs actual, +1%
 *                             crossings, claims, provenance
 *   OUT/plots/ (png, svg)     PPL delta vs bits/weight (Pareto front), KLD vs bits/weight (one line
 *                             per model and codec family), kernel throughput
 * Every row is a paired evaluation (tp_eval_artifact on the cpu: KLD, top-1, bootstrap intervals).
 * Config keys: models (folder names under the models directory), datasets ({name, path relative
 * to the shared directory, tail_chars}), codecs ({spec, select, lossless, name}), protocol
 * ({name, ctx, stride, max_tokens}), claims (claims files), bench (a `tenpak bench --json` file). */
#ifndef TENPAK_PIPELINE_REPORT_H
#define TENPAK_PIPELINE_REPORT_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "tenpak/tenpak.h"

typedef struct tp_report_opts {
    const char *config;     /* NULL: reports/default.json */
    const char *out_dir;    /* NULL: reports */
    const char *models_dir; /* NULL: $TENPAK_MODELS_DIR, else <shared>/models */
    const char *data_dir;   /* NULL: the shared directory */
    const char *bench_json; /* overrides the config's "bench" */
    size_t max_tokens;
    int max_tokens_set;
    int keep_artifacts;
    const char *command;    /* the command line, for provenance */
} tp_report_opts;

tp_status tp_report_run(const tp_report_opts *o, tp_err *e);

/* `tenpak report merge`: Google Benchmark JSONs from several machines (e.g. the shards of a job
 * array, or a CPU and a GPU run) into OUT/MERGED.md, OUT/merged.json and OUT/merged.png|svg, one
 * column per machine (host / processor or device / library build). */
tp_status tp_report_merge(const char *out, const char *const *files, int nf, tp_err *e);

#endif
