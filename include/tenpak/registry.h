/* The kernel registry: one table of (op, variant, backend) entries that `tenpak list`,
 * `tenpak verify`, `tenpak bench` and the Criterion suites iterate over.
 *
 * An op (tp_op) is the case as data plus a few functions (ggml's test_case habit): how to make
 * random inputs of a shape, the reference, how to compare (exact, relative L2 with a bound, or a
 * property check for ops that only have a reference), and the bytes/FLOP model of one run.
 * A kernel (tp_kernel) is one backend's implementation of an op.
 *
 * Adding a kernel = its code + one tp_kernel entry in its family's table (kernels/ops_*.c).
 * Adding a family = one more line in kernels/registry.c.
 */
#ifndef TENPAK_REGISTRY_H
#define TENPAK_REGISTRY_H

#include "tenpak/tenpak.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Up to 4 dimensions; the name prints them joined by 'x' (e.g. 4096x4096x16). */
typedef struct tp_shape {
    int nd;
    int64_t d[4];
} tp_shape;
#define TP_SHAPE1(a) {1, {(a), 0, 0, 0}}
#define TP_SHAPE2(a, b) {2, {(a), (b), 0, 0}}
#define TP_SHAPE3(a, b, c) {3, {(a), (b), (c), 0}}
#define TP_SHAPE_END {0, {0, 0, 0, 0}}

typedef enum tp_out_type { TP_OUT_F32 = 0, TP_OUT_BYTES = 1 } tp_out_type;
typedef enum tp_cmp {
    TP_CMP_EXACT = 0,   /* bitwise equality of every output byte */
    TP_CMP_REL_L2 = 1,  /* ||out - ref|| / ||ref|| <= bound, every element finite */
    TP_CMP_PROPERTY = 2 /* op->property(out) <= 1 (reference-only ops, e.g. quantisers) */
} tp_cmp;

struct tp_op;

/* One problem instance: inputs made for a shape, plus output buffers. */
typedef struct tp_case {
    const struct tp_op *op;
    tp_shape shape;
    uint64_t seed;
    void *ctx;        /* op-private inputs */
    void *ref;        /* reference output, out_bytes long (NULL in bench) */
    size_t out_bytes; /* size of one output */
    size_t out_count; /* number of elements (floats for TP_OUT_F32, bytes otherwise) */
} tp_case;

typedef struct tp_op {
    const char *name;    /* "gemv" */
    const char *variant; /* "int4_g128" */
    tp_out_type out_type;
    tp_cmp cmp;
    double bound;        /* TP_CMP_REL_L2: the bound on relative L2 error */
    const void *param;   /* op-specific parameters (e.g. codec kind and group size) */
    /* make random inputs for c->shape from rng; set c->ctx, c->out_bytes, c->out_count */
    tp_status (*setup)(tp_case *c, tp_rng *rng);
    void (*teardown)(tp_case *c);
    /* TP_ERR_NOMEM when its scratch cannot be allocated (as run below) */
    tp_status (*reference)(const tp_case *c, void *out);
    /* TP_CMP_PROPERTY: worst (error / allowed) over the output; passes when <= 1 (INFINITY when
     * the check's own scratch cannot be allocated: an output it could not check never passes) */

    double (*property)(const tp_case *c, const void *out);
    /* optional: how `verify --self-test` damages an output of this op (default: one byte
     * flipped for exact/property ops, one element pushed past the bound for rel_l2) */
    void (*corrupt)(const tp_case *c, void *out, tp_rng *rng);
    /* bytes moved (read + written) and FLOPs / items of one run, for bench counters */
    double (*bytes)(const tp_shape *s);
    double (*flops)(const tp_shape *s);
    double (*items)(const tp_shape *s);
    const tp_shape *verify_shapes; /* ends with TP_SHAPE_END */
    const tp_shape *bench_shapes;
    int memory_bound; /* report bytes/s as % of the measured copy bandwidth */
} tp_op;

enum {
    TP_K_BASELINE = 1u, /* a comparison point (OpenBLAS, memcpy, cuBLAS): benchmarked and verified */
    TP_K_ISA = 2u,      /* cpu kernel dispatching on tp_cpu_isa(): verify covers every ISA level */
    TP_K_DEVICE = 4u,   /* runs on an accelerator: prepare/sync/fetch are used */
    TP_K_AVX512 = 8u    /* with TP_K_ISA: has an AVX-512 path, so verify also runs that level (the
                           others are verified up to AVX2, the best level they have code for) */
};

typedef struct tp_kernel {
    const tp_op *op;
    const char *backend; /* "ref", "cpu", "openblas", "memcpy", "cuda", ... */
    /* CPU kernels: run writes the output into out directly (state is NULL). Device kernels:
     * prepare uploads inputs (not timed), run launches writing device memory, sync waits,
     * fetch copies the result into the host buffer out. run returns TP_ERR_NOMEM when the
     * kernel's scratch cannot be allocated (the output is then incomplete), else TP_OK. */
    tp_status (*run)(const tp_case *c, void *state, void *out);
    int (*available)(char *why, size_t n); /* NULL = always; else 0 with a reason */
    unsigned flags;
    void *(*prepare)(const tp_case *c);
    void (*sync)(void *state);
    void (*fetch)(const tp_case *c, void *state, void *out);
    void (*release)(void *state);
} tp_kernel;

/* The table (kernels/registry.c). */
size_t tp_registry_count(void);
const tp_kernel *tp_registry_get(size_t i);

/* ---- a device backend, as the drivers (`tenpak bench`) see it: what they need of the backend
 * without its private header (kernels/cuda/tp_cuda.h) ---- */
/* The device a GPU result came from, for the `context` of bench JSON. */
typedef struct tp_device_info {
    char name[256];
    int cc_major, cc_minor, sm_count;           /* compute capability, multiprocessors */
    int clock_mhz, mem_clock_mhz, mem_bus_bits; /* peak SM clock, peak memory clock, bus width */
    double mem_gib, l2_mib;
    int driver, runtime; /* the backend's driver and runtime versions (CUDA: 1000 * major + 10 * minor) */
} tp_device_info;
typedef struct tp_device_backend {
    const char *name;                  /* the kernels' backend name: "cuda" */
    int (*info)(tp_device_info *i);    /* 0 without a usable device */
    /* Graph timing: `launches` consecutive k->run() calls captured into one replayable graph; NULL
     * when the kernel's run() cannot be captured (then it is timed launch by launch). */
    void *(*graph_make)(const tp_kernel *k, const tp_case *c, void *state, void *out, int launches);
    int (*graph_launch)(void *graph); /* asynchronous; 0 on a launch error */
    void (*graph_free)(void *graph);  /* NULL is a no-op */
} tp_device_backend;
/* The device backend this build has (kernels/registry.c), NULL in a CPU-only build. */
const tp_device_backend *tp_registry_device(void);

/* Helpers for drivers. */
void tp_shape_name(const tp_shape *s, char *buf, size_t n);
/* "op/variant/backend/shape" */
void tp_kernel_name(const tp_kernel *k, const tp_shape *s, char *buf, size_t n);
int tp_kernel_is_available(const tp_kernel *k, char *why, size_t n);

/* Make / free a case (setup + reference if want_ref). The case seed is derived from the run
 * seed and the op/variant/shape name, so any single case replays with the same --seed. */
tp_status tp_case_make(tp_case *c, const tp_op *op, const tp_shape *s, uint64_t run_seed,
                       int want_ref);
void tp_case_free(tp_case *c);
/* Run kernel k on case c into out, handling device prepare/sync/fetch; run's status. */
tp_status tp_kernel_run_once(const tp_kernel *k, const tp_case *c, void *out);
/* A device kernel (one with fetch) as `tenpak bench` times it: `launches` run() calls captured
 * into a graph (nothing runs while capturing), the graph replayed `replays` times, then sync and
 * fetch: the output is the last replay's, so state a kernel keeps on the device across runs must
 * be right for every replay. *graphed 0 (and one plain run) where no graph could be made or for
 * a kernel without a device. */
tp_status tp_kernel_run_replayed(const tp_kernel *k, const tp_case *c, void *out, int launches, int replays,
                                 int *graphed);


/* Compare out against c->ref with the op's rule. Returns 1 on pass; *metric gets the value
 * (relative L2 error, count of differing bytes, or the property ratio). */
int tp_case_compare(const tp_case *c, const void *out, double *metric);
/* ||out - ref|| / ||ref|| in double (||out - ref|| when ref is all zeros); INFINITY when any
 * element of out is NaN or infinite. TP_CMP_REL_L2's metric. */
double tp_rel_l2_f32(const float *out, const float *ref, size_t n);
const char *tp_cmp_metric_name(tp_cmp cmp);

#ifdef __cplusplus
}
#endif
#endif
