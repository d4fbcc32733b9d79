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

/* A benchmark matrix file (JSON, reports/bench-matrix*.json; bench/matrix.c): what to run on every
 * machine of a job array, independent of the machine.
 *   "name"         a label (results and the merged table name it; its identity is the sha256)
 *   "benchmarks"   POSIX extended regexes on op/variant/backend/shape (required, at least one)
 *   "backends"     which backends run (absent: every backend but ref, as plain `tenpak bench`)
 *   "shapes"       shape names ("256x512", "65536"): each applies to the ops whose bench shapes
 *                  have as many dimensions (absent: each op's own bench shapes)
 *   "repetitions", "min_time"   as --repetitions / --min-time (defaults 3 and 0.5)
 *   "shards"       how many shards the matrix is split into (absent: --shard's N, else 1)
 *   "report": {"rows": [regex...]}   the rows of the merged table and their order (absent: all)
 * The unit of sharding is a cell: one benchmark regex at one matrix shape (or with every bench
 * shape when the matrix has none); cell c runs in shard (c mod N) + 1. A benchmark name belongs
 * to the first cell that matches it, so every (kernel, shape) of the matrix is in exactly one
 * shard, whatever the machine: the split depends only on the file. Put a kernel and its
 * baseline (e.g. "^gemv/") in one regex to keep their ratio measured on one host. */
typedef struct tp_bench_matrix {
    char *path, *name;
    char sha256[65];        /* of the canonical (unformatted) JSON: the matrix's identity */
    int nbench, nbackend, nshape, nrow;
    char **bench, **backends, **rows;
    tp_shape *shapes;
    void *re;               /* the compiled benchmark regexes */
    int repetitions;
    double min_time;
    int shards;             /* 0: not set in the file */
} tp_bench_matrix;

tp_status tp_bench_matrix_load(const char *path, tp_bench_matrix *m, tp_err *e);
void tp_bench_matrix_free(tp_bench_matrix *m);
/* Number of cells: benchmarks x shapes (x 1 without shapes). */
int tp_bench_matrix_cells(const tp_bench_matrix *m);
/* The cell that runs kernel k at shape s, or -1 when the matrix does not hold that pair. */
int tp_bench_matrix_cell_of(const tp_bench_matrix *m, const tp_kernel *k, const tp_shape *s);
/* "regex @ shape" (or the regex alone) of cell c. */
void tp_bench_matrix_cell_name(const tp_bench_matrix *m, int c, char *buf, size_t n);
/* Parses "256x512" (1 to 4 positive dimensions); 0 on a malformed name. */
int tp_shape_parse(const char *s, tp_shape *out);

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
    /* With a matrix: its cells of shard shard_i (of shard_n) run, with its repetitions and
     * min_time (filter and backend are unused); the JSON's context gets "matrix" (name, path,
     * sha256, shard_index 1-based, shard_count, run_id, the shard's cells) and each benchmark
     * its "cell". */
    const tp_bench_matrix *matrix;
    const char *run_id;   /* which run of the matrix (a job array's id); NULL: "" */
    int plan;             /* with a matrix: print the cells, their shards and kernels; run nothing */
} tp_bench_opts;

tp_status tp_bench_run(const tp_bench_opts *o, int *ran, tp_err *e);

/* Pieces of the harness for other benchmarks that write the same JSON (`tenpak bench-model`). */
struct cJSON;
/* STREAM-style copy bandwidth (bytes read + written per second, best of 10 runs of copy/f32/cpu
 * over 64 MiB buffers (mode 0), 4 MiB (1: quick) or TP_COPY_MEMORY: twice the last-level cache, 64
 * MiB to 1 GiB, memory's figure on a host with a large L3); 0 when the kernel is missing. Uses
 * OpenMP threads: in a program that forks workers, call it after the last fork (libgomp does not
 * survive a fork). */
#define TP_COPY_MEMORY 2
double tp_bench_copy_bandwidth(int mode);
/* The JSON "context" object `tenpak bench` writes (machine, caches, cpu_model, isa, threads,
 * blas_core / blas_threads / blas_config, copy_bandwidth_bytes_per_second = copy_bw); the caller
 * owns it and may add or replace fields (e.g. "executable"). */
struct cJSON *tp_bench_context(double copy_bw);
/* Google Benchmark's aggregates of v[0..n) (n >= 1), in its order: agg = {mean, median, stddev
 * (sample, 0 when n = 1), min, max}. */
void tp_bench_aggregates(const double *v, int n, double agg[5]);
/* The median of v[0..n) (v is left as it is): the middle value, or the mean of the two middle
 * values for even n; NAN when n is 0 or its sorted copy cannot be allocated. */
double tp_median(const double *v, size_t n);

#ifdef __cplusplus
}
#endif
#endif
