/* The benchmark harness. For each registry kernel and bench shape (filtered, sharded):
 * make the inputs once, prepare, warm up, grow the iteration count until a batch lasts
 * min_time, then time `repetitions` batches. Memory-bound ops are reported as a fraction of the
 * STREAM-style copy bandwidth measured at the start of the same run (copy/f32/cpu). */
#include <cjson/cJSON.h>
#include <math.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tenpak/bench.h"

/* Device kernels are timed by replaying a graph (tp_registry_device()'s, a CUDA graph) of GRAPH_RUNS consecutive run() calls (the
 * launch gaps of back-to-back stream launches are then not part of the figure), unless
 * TENPAK_BENCH_GRAPH=0 or the kernel's run() cannot be captured. 24 runs: with any rotation of
 * 2..8 weight copies, the replays never read the same copy twice in a row. */
#define GRAPH_RUNS 24

typedef struct result {
    char name[256];
    const tp_kernel *k;
    tp_shape shape;
    int64_t iters;
    int reps;
    double *real_ns, *cpu_ns; /* per iteration, one per repetition */
    double median_ns;
    const char *timing; /* "graph" or "stream" for device kernels, NULL for cpu ones */
} result;

/* One (kernel, shape) of the run, with its matrix cell (-1 without a matrix). */
typedef struct work { const tp_kernel *k; tp_shape shape; int cell; } work;

static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
double tp_median(const double *v, size_t n) {
    double *t = n ? malloc(n * sizeof *t) : NULL;
    if (!t) return NAN;
    memcpy(t, v, n * sizeof *t);
    qsort(t, n, sizeof *t, cmp_dbl);
    double m = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    free(t);
    return m;
}


/* Time `iters` runs: launch by launch, or (graph set; iters a multiple of GRAPH_RUNS) iters / GRAPH_RUNS
 * replays of the captured graph;
 * returns wall seconds, *cpu gets process CPU seconds; a run's failure (its scratch could not be
 * allocated) stops the batch and is left in *st (kept when already set). */
static double time_batch(const tp_kernel *k, const tp_case *c, void *state, void *out, int64_t iters,
                         double *cpu, void *graph, tp_status *st) {
    double c0 = tp_cpu_time(), t0 = tp_now();
    if (graph)
        for (int64_t i = 0; i < iters; i += GRAPH_RUNS) tp_registry_device()->graph_launch(graph);
    else
        for (int64_t i = 0; i < iters; i++) {
            tp_status s = k->run(c, state, out);
            if (s != TP_OK) {
                if (*st == TP_OK) *st = s;
                break;
            }
        }
    if (k->sync) k->sync(state);
    double t = tp_now() - t0;
    *cpu = tp_cpu_time() - c0;
    return t;
}

static tp_status bench_one(const tp_kernel *k, const tp_shape *s, const tp_bench_opts *o,
                           result *r) {
    tp_case c;
    tp_status st = tp_case_make(&c, k->op, s, 12345, 0);
    if (st != TP_OK) return st;
    void *out = tp_alloc(c.out_bytes);
    if (!out) {
        tp_case_free(&c);
        return TP_ERR_NOMEM;
    }
    memset(out, 0, c.out_bytes);
    void *state = k->prepare ? k->prepare(&c) : NULL;
    double cpu;
    time_batch(
k, &c, state, out, 1, &cpu, NULL, &st); /* warm-up: page faults, caches, thread pool */
    void *graph = NULL;
    r->timing = NULL;
    const tp_device_backend *dev = tp_registry_device();
    if (k->flags & TP_K_DEVICE) {
        const char *e = getenv("TENPAK_BENCH_GRAPH");
        if (dev && !(e && !strcmp(e, "0"))) graph = dev->graph_make(k, &c, state, out, GRAPH_RUNS);
        if (graph) time_batch(k, &c, state, out, GRAPH_RUNS, &cpu, graph, &st); /* warm-up of the graph */
        r->timing = graph ? "graph" : "stream";
    }
    const int64_t unit = graph ? GRAPH_RUNS : 1;
    int64_t iters = unit;
    for (; st == TP_OK;) {
        double t = time_batch(k, &c, state, out, iters, &cpu, graph, &st);
        if (t >= o->min_time || iters >= 1000000000) break;
        /* like Google Benchmark: aim 40% past the target, grow at most 10x per step */
        double mult = t > 0 ? 1.4 * o->min_time / t : 10.0;
        if (mult > 10.0) mult = 10.0;
        int64_t next = (int64_t)ceil((double)iters * mult);
        next = (next + unit - 1) / unit * unit;
        iters = next > iters ? next : iters + unit;
    }
    r->iters = iters;
    r->reps = o->repetitions;
    r->real_ns = malloc((size_t)r->reps * sizeof(double));
    r->cpu_ns = malloc((size_t)r->reps * sizeof(double));
    if (!r->real_ns || !r->cpu_ns) st = TP_ERR_NOMEM;
    for (int i = 0; i < r->reps && st == TP_OK; i++) {
        double t = time_batch(k, &c, state, out, iters, &cpu, graph, &st);
        r->real_ns[i] = 1e9 * t / (double)iters;
        r->cpu_ns[i] = 1e9 * cpu / (double)iters;
    }
    if (st == TP_OK) r->median_ns = tp_median(r->real_ns, (size_t)r->reps);
    else { /* the caller keeps only results that were measured */
        free(r->real_ns);
        free(r->cpu_ns);
        r->real_ns = r->cpu_ns = NULL;
    }

    if (graph) dev->graph_free(graph);
    if (k->release) k->release(state);
    tp_free(out);
    tp_case_free(&c);
    return st;
}

/* The memory copy's buffer (TP_COPY_MEMORY, for `tenpak bench-model`, whose decode streams the whole
 * model): twice the last-level cache, at least 64 MiB and at most 1 GiB, so the figure is memory's,
 * not the cache's. The fixed 64 MiB of `tenpak bench` is twice a Zen 4's 32 MB L3 but a fraction
 * of the 480 MB L3 of the Intel Xeon host of 2026-12-05, where it measured 42-57 GB/s and 1 GiB
 * buffers 37-38 GB/s (2 threads; a read-only stream there: 28-29 GB/s). It costs ~3 s there (the
 * pages of 2 GiB), so `tenpak bench` keeps 64 MiB: its shapes are cache-sized on such a host. */
static int64_t copy_elems(void) {
    int64_t llc = tp_cpu_cache_bytes(4, 0);
    if (llc <= 0) llc = tp_cpu_cache_bytes(3, 0);
    if (llc <= 0) llc = tp_cpu_cache_bytes(2, 0);
    int64_t b = 2 * llc;
    b = b < ((int64_t)64 << 20) ? (int64_t)64 << 20 : b > ((int64_t)1 << 30) ? (int64_t)1 << 30 : b;
    return b / (int64_t)sizeof(float);
}

/* STREAM-style copy bandwidth (bytes read + written per second), best of a few runs; mode: 0 64 MiB
 * buffers, 1 (quick) 4 MiB, TP_COPY_MEMORY twice the LLC. */
static double measure_copy_bandwidth(int mode) {
    const tp_kernel *copy = NULL;
    for (size_t i = 0; i < tp_registry_count(); i++) {
        const tp_kernel *k = tp_registry_get(i);
        if (!strcmp(k->op->name, "copy") && !strcmp(k->backend, "cpu")) copy = k;
    }
    if (!copy) return 0;
    tp_shape s = TP_SHAPE1(mode == TP_COPY_MEMORY ? copy_elems() : mode ? (1 << 20) : (1 << 24));
    tp_case c;
    if (tp_case_make(&c, copy->op, &s, 1, 0) != TP_OK) return 0;
    void *out = tp_alloc(c.out_bytes);
    double best = 0, cpu;
    if (out) {
        memset(out, 0, c.out_bytes);
        tp_status st = TP_OK; /* the copy kernels allocate nothing */
        time_batch(copy, &c, NULL, out, 2, &cpu, NULL, &st); /* warm-up: threads started, pages touched */
        for (int i = 0; i < 10; i++) {
            double t = time_batch(copy, &c, NULL, out, 1, &cpu, NULL, &st);
            double bw = copy->op->bytes(&s) / t;
            best = bw > best ? bw : best;
        }
    }
    tp_free(out);
    tp_case_free(&c);
    return best;
}

static void add_caches(cJSON *ctx) {
    cJSON *arr = cJSON_AddArrayToObject(ctx, "caches");
    tp_cache_info ci[16];
    int n = tp_cpu_caches(ci, 16);
    for (int i = 0; i < n; i++) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "type", ci[i].type);
        cJSON_AddNumberToObject(c, "level", ci[i].level);
        cJSON_AddNumberToObject(c, "size", (double)ci[i].bytes);
        cJSON_AddNumberToObject(c, "num_sharing", ci[i].num_sharing);
        cJSON_AddItemToArray(arr, c);
    }
}

/* The GPU the cuda kernels ran on, when this build has the backend and the machine a device:
 * `device` (what `report merge` keys a machine by) and its parts. */
static void add_gpu(cJSON *ctx) {
    const tp_device_backend *be = tp_registry_device();
    tp_device_info g;
    if (!be || !be->info(&g)) return;
    char dev[400];
    snprintf(dev, sizeof dev, "%s (sm_%d%d, %d SMs, %d MHz)", g.name, g.cc_major, g.cc_minor, g.sm_count,
             g.clock_mhz);
    cJSON_AddStringToObject(ctx, "device", dev);
    cJSON_AddStringToObject(ctx, "gpu_name", g.name);
    char cc[16];
    snprintf(cc, sizeof cc, "%d.%d", g.cc_major, g.cc_minor);
    cJSON_AddStringToObject(ctx, "gpu_compute_capability", cc);
    cJSON_AddNumberToObject(ctx, "gpu_sm_count", g.sm_count);
    cJSON_AddNumberToObject(ctx, "gpu_clock_mhz", g.clock_mhz);
    cJSON_AddNumberToObject(ctx, "gpu_memory_clock_mhz", g.mem_clock_mhz);
    cJSON_AddNumberToObject(ctx, "gpu_memory_bus_bits", g.mem_bus_bits);
    cJSON_AddNumberToObject(ctx, "gpu_memory_gib", g.mem_gib);
    cJSON_AddNumberToObject(ctx, "gpu_l2_mib", g.l2_mib);
    char v[32];
    snprintf(v, sizeof v, "%d.%d", g.driver / 1000, (g.driver % 1000) / 10);
    cJSON_AddStringToObject(ctx, "cuda_driver_version", v);
    snprintf(v, sizeof v, "%d.%d", g.runtime / 1000, (g.runtime % 1000) / 10);
    cJSON_AddStringToObject(ctx, "cuda_runtime_version", v);
}

/* The library build, as `report merge` keys a machine: build type, compiler, backends. */
static const char *library_build(void) {
    static char b[160];
#ifdef TENPAK_BUILD_TYPE
    const char *type = TENPAK_BUILD_TYPE[0] ? TENPAK_BUILD_TYPE : "default";
#else
    const char *type = "default";
#endif
#if defined(__clang__)
    const char *cc = "clang";
    int v[3] = {__clang_major__, __clang_minor__, __clang_patchlevel__};
#elif defined(__GNUC__)
    const char *cc = "gcc";
    int v[3] = {__GNUC__, __GNUC_MINOR__, __GNUC_PATCHLEVEL__};
#else
    const char *cc = "cc";
    int v[3] = {0, 0, 0};
#endif
    const tp_device_backend *dev = tp_registry_device(); /* "cpu+cuda" with the CUDA backend */
    char be[48];
    snprintf(be, sizeof be, "cpu%s%s", dev ? "+" : "", dev ? dev->name : "");
#if defined(__SANITIZE_ADDRESS__)
    const char *san = ", asan";
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    const char *san = ", asan";
#else
    const char *san = "";
#endif
#else
    const char *san = "";
#endif
    snprintf(b, sizeof b, "%s, %s %d.%d.%d, %s%s", type, cc, v[0], v[1], v[2], be, san);
    return b;
}

static cJSON *make_context(double copy_bw) {
    cJSON *ctx = cJSON_CreateObject();
    char date[64], host[256] = "unknown";
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S%z", localtime(&now));
    gethostname(host, sizeof host - 1);
    cJSON_AddStringToObject(ctx, "date", date);
    cJSON_AddStringToObject(ctx, "host_name", host);
    cJSON_AddStringToObject(ctx, "executable", "tenpak bench");
    cJSON_AddNumberToObject(ctx, "num_cpus", (double)sysconf(_SC_NPROCESSORS_ONLN));
    cJSON_AddNumberToObject(ctx, "mhz_per_cpu", floor(tp_cpu_mhz()));
    cJSON_AddBoolToObject(ctx, "cpu_scaling_enabled", 0);
    add_caches(ctx);
    cJSON_AddItemToObject(ctx, "load_avg", cJSON_CreateArray());
#ifdef TENPAK_BUILD_TYPE
    cJSON_AddStringToObject(ctx, "library_build_type",
                            !strcmp(TENPAK_BUILD_TYPE, "Debug") ? "debug" : "release");
#endif
    cJSON_AddStringToObject(ctx, "tenpak_version", TENPAK_VERSION);
    cJSON_AddStringToObject(ctx, "library_build", library_build());
    cJSON_AddStringToObject(ctx, "cpu_model", tp_cpu_model());
    cJSON_AddStringToObject(ctx, "isa", tp_isa_name(tp_cpu_isa()));
    cJSON_AddStringToObject(ctx, "isa_best", tp_isa_name(tp_cpu_best_isa()));
    cJSON_AddBoolToObject(ctx, "amx", tp_cpu_amx()); /* the INT4 GEMM of many rows on AMX tiles */
    cJSON_AddNumberToObject(ctx, "threads", tp_num_threads());
    cJSON_AddStringToObject(ctx, "blas_core", tp_blas_core());
    cJSON_AddNumberToObject(ctx, "blas_threads", tp_blas_threads());
    cJSON_AddStringToObject(ctx, "blas_config", tp_blas_config());
    cJSON_AddNumberToObject(ctx, "copy_bandwidth_bytes_per_second", copy_bw);
    add_gpu(ctx);
    return ctx;
}

static void add_counters(cJSON *b, const result *r, double t_ns, double copy_bw) {
    const tp_op *op = r->k->op;
    double sec = t_ns * 1e-9;
    if (op->bytes) cJSON_AddNumberToObject(b, "bytes_per_second", op->bytes(&r->shape) / sec);
    if (op->items) cJSON_AddNumberToObject(b, "items_per_second", op->items(&r->shape) / sec);
    if (op->flops) cJSON_AddNumberToObject(b, "flops_per_second", op->flops(&r->shape) / sec);
    if (op->memory_bound && op->bytes && copy_bw > 0)
        cJSON_AddNumberToObject(b, "roofline_fraction", op->bytes(&r->shape) / sec / copy_bw);
}

static cJSON *bench_entry(const result *r, const char *name, const char *run_type, const char *agg,
                          int rep_index, double real, double cpu, double copy_bw, int cell) {
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "name", name);
    cJSON_AddStringToObject(b, "run_name", r->name);
    /* the name's parts, for `report merge` (each kernel's ratio to its baseline on one host) */
    char sh[96];
    tp_shape_name(&r->shape, sh, sizeof sh);
    cJSON_AddStringToObject(b, "op", r->k->op->name);
    cJSON_AddStringToObject(b, "variant", r->k->op->variant);
    cJSON_AddStringToObject(b, "backend", r->k->backend);
    cJSON_AddStringToObject(b, "shape", sh);
    cJSON_AddBoolToObject(b, "baseline", (r->k->flags & TP_K_BASELINE) != 0);
    if (cell >= 0) cJSON_AddNumberToObject(b, "cell", cell);
    cJSON_AddStringToObject(b, "run_type", run_type);
    cJSON_AddNumberToObject(b, "repetitions", r->reps);
    if (!agg) cJSON_AddNumberToObject(b, "repetition_index", rep_index);
    cJSON_AddNumberToObject(b, "threads", 1);
    if (agg) {
        cJSON_AddStringToObject(b, "aggregate_name", agg);
        cJSON_AddStringToObject(b, "aggregate_unit", "time");
    }
    cJSON_AddNumberToObject(b, "iterations", (double)r->iters);
    if (r->timing) cJSON_AddStringToObject(b, "timing", r->timing);
    cJSON_AddNumberToObject(b, "real_time", real);
    cJSON_AddNumberToObject(b, "cpu_time", cpu);
    cJSON_AddStringToObject(b, "time_unit", "ns");
    if (!agg || strcmp(agg, "stddev")) add_counters(b, r, real, copy_bw);
    return b;
}

/* context.matrix: which matrix, which shard of which run, and what each of its cells held here */
static cJSON *matrix_json(const tp_bench_opts *o, const work *w, size_t nw, char (*why)[128]) {
    const tp_bench_matrix *m = o->matrix;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "name", m->name);
    cJSON_AddStringToObject(j, "path", m->path);
    cJSON_AddStringToObject(j, "sha256", m->sha256);
    cJSON_AddNumberToObject(j, "shard_index", o->shard_i + 1);
    cJSON_AddNumberToObject(j, "shard_count", o->shard_n);
    cJSON_AddStringToObject(j, "run_id", o->run_id ? o->run_id : "");
    cJSON_AddNumberToObject(j, "cell_count", tp_bench_matrix_cells(m));
    if (m->nrow) {
        cJSON *rows = cJSON_AddArrayToObject(j, "report_rows");
        for (int i = 0; i < m->nrow; i++) cJSON_AddItemToArray(rows, cJSON_CreateString(m->rows[i]));
    }
    cJSON *cells = cJSON_AddArrayToObject(j, "cells");
    for (int c = o->shard_i; c < tp_bench_matrix_cells(m); c += o->shard_n) {
        cJSON *x = cJSON_CreateObject();
        char cn[400];
        tp_bench_matrix_cell_name(m, c, cn, sizeof cn);
        cJSON_AddNumberToObject(x, "cell", c);
        cJSON_AddStringToObject(x, "name", cn);
        cJSON *ran = cJSON_AddArrayToObject(x, "ran"), *skip = cJSON_AddArrayToObject(x, "unavailable");
        for (size_t i = 0; i < nw; i++) {
            if (w[i].cell != c) continue;
            char name[256];
            tp_kernel_name(w[i].k, &w[i].shape, name, sizeof name);
            if (!why[i][0]) cJSON_AddItemToArray(ran, cJSON_CreateString(name));
            else {
                cJSON *u = cJSON_CreateObject();
                cJSON_AddStringToObject(u, "name", name);
                cJSON_AddStringToObject(u, "reason", why[i]);
                cJSON_AddItemToArray(skip, u);
            }
        }
        cJSON_AddItemToArray(cells, x);
    }
    return j;
}

static void stats(const double *v, int n, double *mean, double *med, double *sd, double *mn, double *mx) {
    double s = 0, ss = 0;
    *mn = v[0];
    *mx = v[0];
    for (int i = 0; i < n; i++) {
        s += v[i];
        *mn = v[i] < *mn ? v[i] : *mn;
        *mx = v[i] > *mx ? v[i] : *mx;
    }
    *mean = s / n;
    for (int i = 0; i < n; i++) ss += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(ss / (n - 1)) : 0;
    *med = tp_median(v, (size_t)n);
}

static void print_row(FILE *f, tp_bench_format fmt, const result *r, double copy_bw) {
    const tp_op *op = r->k->op;
    double mean, med, sd, mn, mx, cm, cmed, csd, cmn, cmx;
    stats(r->real_ns, r->reps, &mean, &med, &sd, &mn, &mx);
    stats(r->cpu_ns, r->reps, &cm, &cmed, &csd, &cmn, &cmx);
    double sec = med * 1e-9;
    double bps = op->bytes ? op->bytes(&r->shape) / sec : 0;
    double ips = op->items ? op->items(&r->shape) / sec : 0;
    double fps = op->flops ? op->flops(&r->shape) / sec : 0;
    double roof = op->memory_bound && copy_bw > 0 ? bps / copy_bw : 0;
    if (fmt == TP_BENCH_CSV) {
        fprintf(f, "\"%s\",%lld,%.6g,%.6g,ns,%.6g,%.6g,\"\",,,%.6g,%.6g,%.6g,%.6g,%.6g\n", r->name,
                (long long)r->iters, med, cmed, bps, ips, mn, mx, sd, fps, roof);
        return;
    }
    char roofs[16] = "", gf[16] = "";
    if (roof > 0) snprintf(roofs, sizeof roofs, "%5.1f%%", 100 * roof);
    if (fps > 0) snprintf(gf, sizeof gf, "%8.2f", fps * 1e-9);
    fprintf(f, "%-42s %11.4f %11.4f %11.4f %10lld %9.2f %8s %8s\n", r->name, mn * 1e-6, med * 1e-6,
            mx * 1e-6, (long long)r->iters, bps * 1e-9, roofs, gf);
}

static int push_work(work **w, size_t *n, size_t *cap, const tp_kernel *k, const tp_shape *s, int cell) {
    if (*n == *cap) {
        size_t nc = *cap ? 2 * *cap : 64;
        work *nw = realloc(*w, nc * sizeof *nw);
        if (!nw) return 0;
        *w = nw;
        *cap = nc;
    }
    (*w)[(*n)++] = (work){k, *s, cell};
    return 1;
}

/* The shapes a kernel is considered at: the matrix's shapes of its op's dimensionality, else its
 * op's bench shapes. Returns how many (at most max). */
static int candidate_shapes(const tp_bench_matrix *m, const tp_kernel *k, tp_shape *out, int max) {
    const tp_shape *b = k->op->bench_shapes;
    int n = 0;
    if (!b || !b->nd) return 0;
    if (m && m->nshape) {
        for (int i = 0; i < m->nshape && n < max; i++)
            if (m->shapes[i].nd == b->nd) out[n++] = m->shapes[i];
    } else
        for (; b->nd && n < max; b++) out[n++] = *b;
    return n;
}

/* The run's work list: without a matrix every N-th (kernel, shape) passing filter and backend that
 * this machine can run; with one, the (kernel, shape) pairs of this shard's cells, cell by cell
 * (unavailable kernels included: the caller records and skips them). */
static tp_status plan_work(const tp_bench_opts *o, const regex_t *re, work **w, size_t *n, tp_err *e) {
    size_t cap = 0;
    *w = NULL;
    *n = 0;
    tp_shape shapes[64];
    if (!o->matrix) {
        int64_t index = 0; /* position in the whole matrix, for sharding */
        for (size_t i = 0; i < tp_registry_count(); i++) {
            const tp_kernel *k = tp_registry_get(i);
            if (o->backend ? strcmp(o->backend, k->backend) != 0 : !strcmp(k->backend, "ref")) continue;
            int ns = candidate_shapes(NULL, k, shapes, 64);
            for (int j = 0; j < ns; j++) {
                char name[256];
                tp_kernel_name(k, &shapes[j], name, sizeof name);
                if (re && regexec(re, name, 0, NULL, 0) != 0) continue;
                if (!tp_kernel_is_available(k, NULL, 0)) continue;
                if (index++ % o->shard_n != o->shard_i) continue;
                if (!push_work(w, n, &cap, k, &shapes[j], -1)) return tp_fail(e, TP_ERR_NOMEM, "out of memory");
            }
        }
        return TP_OK;
    }
    const tp_bench_matrix *m = o->matrix;
    int cells = tp_bench_matrix_cells(m);
    for (int c = o->shard_i; c < cells; c += o->shard_n)
        for (size_t i = 0; i < tp_registry_count(); i++) {
            const tp_kernel *k = tp_registry_get(i);
            int ns = candidate_shapes(m, k, shapes, 64);
            for (int j = 0; j < ns; j++)
                if (tp_bench_matrix_cell_of(m, k, &shapes[j]) == c && !push_work(w, n, &cap, k, &shapes[j], c))
                    return tp_fail(e, TP_ERR_NOMEM, "out of memory");
        }
    return TP_OK;
}

/* --plan: every cell of the matrix, its shard and the kernels this build has for it */
static void print_plan(const tp_bench_opts *o, FILE *f) {
    const tp_bench_matrix *m = o->matrix;
    int cells = tp_bench_matrix_cells(m);
    fprintf(f, "matrix %s (%s, sha256 %.16s): %d cells\nshards %d\n", m->name, m->path, m->sha256, cells, o->shard_n);
    tp_shape shapes[64];
    for (int c = 0; c < cells; c++) {
        char cn[400];
        tp_bench_matrix_cell_name(m, c, cn, sizeof cn);
        fprintf(f, "cell %d shard %d/%d: %s:", c, c % o->shard_n + 1, o->shard_n, cn);
        int any = 0;
        for (size_t i = 0; i < tp_registry_count(); i++) {
            const tp_kernel *k = tp_registry_get(i);
            int ns = candidate_shapes(m, k, shapes, 64);
            for (int j = 0; j < ns; j++) {
                if (tp_bench_matrix_cell_of(m, k, &shapes[j]) != c) continue;
                char name[256];
                tp_kernel_name(k, &shapes[j], name, sizeof name);
                fprintf(f, " %s%s", name, tp_kernel_is_available(k, NULL, 0) ? "" : " (unavailable here)");
                any = 1;
            }
        }
        fprintf(f, "%s\n", any ? "" : " (none in this build)");
    }
}

tp_status tp_bench_run(const tp_bench_opts *o, int *ran, tp_err *e) {
    *ran = 0;
    regex_t re;
    const tp_bench_matrix *m = o->matrix;
    int have_re = !m && o->filter && *o->filter;
    if (have_re && regcomp(&re, o->filter, REG_EXTENDED | REG_NOSUB) != 0)
        return tp_fail(e, TP_ERR_ARG, "bad --filter regex '%s'", o->filter);
    tp_bench_opts mo = *o;
    if (m) {
        mo.repetitions = m->repetitions;
        mo.min_time = m->min_time;
        o = &mo;
    }
    if (o->repetitions < 1 || o->min_time <= 0 || o->shard_n < 1 || o->shard_i < 0 || o->shard_i >= o->shard_n) {
        if (have_re) regfree(&re);
        return tp_fail(e, TP_ERR_ARG, "bad --repetitions, --min-time or --shard");
    }
    if (m && m->shards && m->shards != o->shard_n) {
        if (have_re) regfree(&re);
        return tp_fail(e, TP_ERR_ARG, "matrix %s is split into %d shards, not %d (--shard I/%d)", m->path, m->shards,
                       o->shard_n, m->shards);
    }
    if (m && o->plan) {
        if (o->out) print_plan(o, o->out);
        *ran = 1;
        return TP_OK;
    }
    work *w;
    size_t nw;
    tp_status st = plan_work(o, have_re ? &re : NULL, &w, &nw, e);
    if (have_re) regfree(&re);
    if (st != TP_OK) {
        free(w);
        return st;
    }
    double copy_bw = measure_copy_bandwidth(o->quick_roofline);
    FILE *f = o->out;
    if (f && o->format == TP_BENCH_CSV)
        fprintf(f, "name,iterations,real_time,cpu_time,time_unit,bytes_per_second,items_per_second,"
                   "label,error_occurred,error_message,min_time,max_time,stddev_time,flops_per_second,"
                   "roofline_fraction\n");
    else if (f) {
        fprintf(f, "tenpak bench: %s, %d threads, isa %s%s; copy bandwidth (roofline) %.2f GB/s\n",
                tp_cpu_model(), tp_num_threads(), tp_isa_name(tp_cpu_isa()), tp_cpu_amx() ? "+amx" : "", copy_bw * 1e-9);
        if (m)
            fprintf(f, "matrix %s (sha256 %.16s), shard %d/%d: %zu benchmark(s) in %d of its %d cells\n", m->name,
                    m->sha256, o->shard_i + 1, o->shard_n, nw,
                    (tp_bench_matrix_cells(m) - o->shard_i + o->shard_n - 1) / o->shard_n, tp_bench_matrix_cells(m));
        fprintf(f, "%-42s %11s %11s %11s %10s %9s %8s %8s\n", "benchmark", "min ms", "median ms",
                "max ms", "iters", "GB/s", "roofline", "GFLOP/s");
    }
    result *res = calloc(nw ? nw : 1, sizeof *res);
    if (!res) {
        free(w);
        return tp_fail(e, TP_ERR_NOMEM, "out of memory");
    }
    int *cell_of = calloc(nw ? nw : 1, sizeof *cell_of);
    char (*why)[128] = calloc(nw ? nw : 1, sizeof *why); /* unavailable kernels: the reason */
    if (!cell_of || !why) {
        free(w), free(res), free(cell_of), free(why);
        return tp_fail(e, TP_ERR_NOMEM, "out of memory");
    }
    size_t n = 0;
    for (size_t i = 0; i < nw && st == TP_OK; i++) {
        const tp_kernel *k = w[i].k;
        char name[256];
        tp_kernel_name(k, &w[i].shape, name, sizeof name);
        if (!tp_kernel_is_available(k, why[i], sizeof why[i])) {
            if (!why[i][0]) snprintf(why[i], sizeof why[i], "not available on this machine");
            if (f && o->format == TP_BENCH_CONSOLE) fprintf(f, "%-42s skipped: %s\n", name, why[i]);
            continue;
        }
        why[i][0] = 0;
        result *r = &res[n];
        snprintf(r->name, sizeof r->name, "%s", name);
        r->k = k;
        r->shape = w[i].shape;
        if (bench_one(k, &w[i].shape, o, r) != TP_OK) {
            st = tp_fail(e, TP_ERR_NOMEM, "%s: out of memory", name);
            break;
        }
        cell_of[n] = w[i].cell;
        n++;
        if (f) {
            print_row(f, o->format, r, copy_bw);
            fflush(f);
        }
    }
    /* ratios to the baseline of the same op and shape, measured in this run */
    if (f && o->format == TP_BENCH_CONSOLE && st == TP_OK) {
        int header = 0;
        for (size_t a = 0; a < n; a++) {
            if (res[a].k->flags & TP_K_BASELINE) continue;
            for (size_t b = 0; b < n; b++) {
                if (!(res[b].k->flags & TP_K_BASELINE) || strcmp(res[a].k->op->name, res[b].k->op->name)) continue;
                char sa[96], sb[96];
                tp_shape_name(&res[a].shape, sa, sizeof sa);
                tp_shape_name(&res[b].shape, sb, sizeof sb);
                if (strcmp(sa, sb)) continue;
                if (!header) fprintf(f, "\nspeed-up vs baselines (median times, this run):\n");
                header = 1;
                fprintf(f, "  %-42s %6.2fx vs %s\n", res[a].name, res[b].median_ns / res[a].median_ns, res[b].name);
            }
        }
    }
    if (o->json_path && st == TP_OK) {
        cJSON *root = cJSON_CreateObject();
        cJSON *ctx = make_context(copy_bw);
        cJSON_AddItemToObject(root, "context", ctx);
        if (m) cJSON_AddItemToObject(ctx, "matrix", matrix_json(o, w, nw, why));
        cJSON *arr = cJSON_AddArrayToObject(root, "benchmarks");
        for (size_t a = 0; a < n; a++) {
            result *r = &res[a];
            for (int i = 0; i < r->reps; i++)
                cJSON_AddItemToArray(arr, bench_entry(r, r->name, "iteration", NULL, i, r->real_ns[i], r->cpu_ns[i], copy_bw,
                                                      cell_of[a]));
            if (r->reps > 1) {
                double mm[5], c[5];
                stats(r->real_ns, r->reps, &mm[0], &mm[1], &mm[2], &mm[3], &mm[4]);
                stats(r->cpu_ns, r->reps, &c[0], &c[1], &c[2], &c[3], &c[4]);
                const char *agg[5] = {"mean", "median", "stddev", "min", "max"};
                for (int j = 0; j < 5; j++) {
                    char nm[300];
                    snprintf(nm, sizeof nm, "%s_%s", r->name, agg[j]);
                    cJSON_AddItemToArray(arr, bench_entry(r, nm, "aggregate", agg[j], 0, mm[j], c[j], copy_bw, cell_of[a]));
                }
            }
        }
        char *text = cJSON_Print(root);
        if (!text) st = tp_fail(e, TP_ERR_NOMEM, "out of memory");
        else {
            st = tp_write_file_atomic(o->json_path, text, strlen(text), e);
            free(text);
        }
        cJSON_Delete(root);
    }
    for (size_t a = 0; a < n; a++) {
        free(res[a].real_ns);
        free(res[a].cpu_ns);
    }
    free(res);
    free(w);
    free(cell_of);
    free(why);
    *ran = (int)n;
    return st;
}

double tp_bench_copy_bandwidth(int mode) { return measure_copy_bandwidth(mode); }
cJSON *tp_bench_context(double copy_bw) { return make_context(copy_bw); }
void tp_bench_aggregates(const double *v, int n, double agg[5]) { stats(v, n, &agg[0], &agg[1], &agg[2], &agg[3], &agg[4]); }
