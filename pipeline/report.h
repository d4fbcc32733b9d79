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

/* `tenpak report merge` (pipeline/report_merge.c): `tenpak bench --json` results of several machines
 * and shards (e.g. the tasks of a job array, a CPU and a GPU run) into OUT/MERGED.md,
 * OUT/merged.json and OUT/merged.png|svg: one column per machine, keyed by host, processor (the
 * context's `device`, a GPU, when present, else cpu_model), ISA level and library build; the shards
 * of one machine share its column. Each kernel's speed-up over the baseline of its op and shape is
 * computed on each machine alone, never across machines. When every input ran one matrix, its
 * report rows choose and order the table. Refused (TP_ERR_ARG, the details on stderr): inputs of
 * different tenpak versions or matrix files unless allow_mixed; a matrix run (matrix sha256, run id,
 * shard count) with shards absent from the inputs unless allow_missing (the table then says which). */
typedef struct tp_merge_opts {
    const char *out;
    const char *const *files;
    int nf;
    int allow_mixed, allow_missing;
} tp_merge_opts;
tp_status tp_report_merge(const tp_merge_opts *o, tp_err *e);

#endif
