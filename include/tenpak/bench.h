/* The benchmark harness (Google Benchmark style): registration through the kernel registry,
 * automatic iteration count up to a minimum time, repetitions with mean/median/stddev/min/max,
 * counters (bytes/s, items/s, FLOP/s, fraction of the measured copy bandwidth), and Google
 * Benchmark's JSON schema so its compare tool reads two runs. */
#ifndef TENPAK_BENCH_H
#define TENPAK_BENCH_H

#include <stdio.h>

#include "tenpak/registry.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tp_bench_format { TP_BENCH_CONSOLE = 0, TP_BENCH_CSV = 1 } tp_bench_format;

typedef struct tp_bench_opts {
    const char *filter;  /* POSIX extended regex on "op/variant/backend/shape" */
    const char *backend; /* only this backend; the slow "ref" backend runs only when named */
    double min_time;     /* seconds per measured batch of iterations */
    int repetitions;
    int shard_i, shard_n; /* run the shard_i-th of shard_n slices of the matrix (0-based i) */
    tp_bench_format format;
    FILE *out;            /* console table or CSV */
    const char *json_path; /* Google Benchmark JSON, written atomically; NULL = none */
    int quick_roofline;   /* measure the copy bandwidth on a smaller buffer (tests) */
} tp_bench_opts;

tp_status tp_bench_run(const tp_bench_opts *o, int *ran, tp_err *e);

#ifdef __cplusplus
}
#endif
#endif
