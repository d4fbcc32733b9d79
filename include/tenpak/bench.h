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

/* Pieces of the harness for other benchmarks that write the same JSON (`tenpak bench-model`). */
struct cJSON;
/* STREAM-style copy bandwidth (bytes read + written per second, best of 10 runs of copy/f32/cpu
 * over 64 MiB buffers, 4 MiB when quick); 0 when the kernel is missing. Uses OpenMP threads: in a
 * program that forks workers, call it after the last fork (libgomp does not survive a fork). */
double tp_bench_copy_bandwidth(int quick);
/* The JSON "context" object `tenpak bench` writes (machine, caches, cpu_model, isa, threads,
 * blas_core / blas_threads / blas_config, copy_bandwidth_bytes_per_second = copy_bw); the caller
 * owns it and may add or replace fields (e.g. "executable"). */
struct cJSON *tp_bench_context(double copy_bw);
/* Google Benchmark's aggregates of v[0..n) (n >= 1), in its order: agg = {mean, median, stddev
 * (sample, 0 when n = 1), min, max}. */
void tp_bench_aggregates(const double *v, int n, double agg[5]);

#ifdef __cplusplus
}
#endif
#endif
