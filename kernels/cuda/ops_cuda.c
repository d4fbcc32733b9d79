/* Registry family of the CUDA backend's own ops (compiled only with TENPAK_HAVE_CUDA):
 * the baselines of the GPU bench run, which have no CPU kernel of interest.
 *   gemv/f16, gemm/f16 : dense fp16 W times fp16 activations, fp32 accumulation and output
 *                        (cuBLAS, the baseline the INT4 GPU kernels are measured against);
 *   copy/d2d           : device-to-device copy, the roofline of memory-bound GPU kernels.
 * The CUDA kernels of the INT4 ops sit with those ops in kernels/ops_int4.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/tp_cuda.h"
#include "tenpak/registry.h"

typedef struct dctx {
    uint16_t *W; /* rows x cols binary16 */
    float *X;    /* batch x cols, binary16-exact values */
    float *A;    /* copy source */
    int64_t batch;
} dctx;

static tp_status dsetup(tp_case *c, tp_rng *rng) {
    dctx *x = calloc(1, sizeof *x);
    if (!x) return TP_ERR_NOMEM;
    c->ctx = x;
    if (!strcmp(c->op->name, "copy")) {
        int64_t n = c->shape.d[0];
        x->A = tp_alloc((size_t)n * 4);
        if (!x->A) return TP_ERR_NOMEM;
        for (int64_t i = 0; i < n; i++) x->A[i] = tp_rng_normal(rng);
        c->out_count = (size_t)n;
        c->out_bytes = (size_t)n * 4;
        return TP_OK;
    }
    int64_t rows = c->shape.d[0], cols = c->shape.d[1], batch = c->shape.nd > 2 ? c->shape.d[2] : 1;
    x->batch = batch;
    x->W = tp_alloc((size_t)(rows * cols) * 2);
    x->X = tp_alloc((size_t)(batch * cols) * 4);
    if (!x->W || !x->X) return TP_ERR_NOMEM;
    for (int64_t r = 0; r < rows; r++) {
        float rs = 0.02f * expf(0.5f * tp_rng_normal(rng));
        for (int64_t i = 0; i < cols; i++) x->W[r * cols + i] = tp_f32_to_f16(tp_rng_normal(rng) * rs);
    }
    for (int64_t i = 0; i < batch * cols; i++) x->X[i] = tp_f16_to_f32(tp_f32_to_f16(tp_rng_normal(rng)));
    c->out_count = (size_t)(rows * batch);
    c->out_bytes = c->out_count * 4;
    return TP_OK;
}

static void dteardown(tp_case *c) {
    dctx *x = c->ctx;
    if (!x) return;
    tp_free(x->W);
    tp_free(x->X);
    tp_free(x->A);
    free(x);
}

/* Y[b][r] = sum_c W[r][c] X[b][c], accumulated in double */
static tp_status dense_ref(const tp_case *c, void *out) {
    const dctx *x = c->ctx;
    int64_t rows = c->shape.d[0], cols = c->shape.d[1];
    float *Y = out;
    for (int64_t b = 0; b < x->batch; b++)
        for (int64_t r = 0; r < rows; r++) {
            double acc = 0;
            for (int64_t i = 0; i < cols; i++) acc += (double)tp_f16_to_f32(x->W[r * cols + i]) * x->X[b * cols + i];
            Y[b * rows + r] = (float)acc;
        }
    return TP_OK;
}
static tp_status dense_ref_run(const tp_case *c, void *s, void *out) {
    (void)s;
    return dense_ref(c, out);
}
static void *dense_prepare(const tp_case *c) {
    const dctx *x = c->ctx;
    return tp_cuda_dense_prepare(x->W, x->X, c->shape.d[0], c->shape.d[1], x->batch);
}

static tp_status copy_ref(const tp_case *c, void *out) { memcpy(out, ((dctx *)c->ctx)->A, c->out_bytes); return TP_OK; }
static tp_status copy_ref_run(const tp_case *c, void *s, void *out) {
    (void)s;
    return copy_ref(c, out);
}
static void *copy_prepare(const tp_case *c) { return tp_cuda_copy_prepare(((dctx *)c->ctx)->A, c->shape.d[0]); }

static double dense_bytes(const tp_shape *s) {
    double b = s->nd > 2 ? (double)s->d[2] : 1.0;
    return 2.0 * s->d[0] * (double)s->d[1] + 2.0 * b * s->d[1] + 4.0 * b * s->d[0];
}
static double dense_flops(const tp_shape *s) {
    return 2.0 * s->d[0] * (double)s->d[1] * (s->nd > 2 ? (double)s->d[2] : 1.0);
}
static double dense_items(const tp_shape *s) { return s->d[0] * (double)s->d[1]; }
static double copy_bytes(const tp_shape *s) { return 8.0 * (double)s->d[0]; }
static double copy_items(const tp_shape *s) { return (double)s->d[0]; }

static const tp_shape gemv_verify[] = {TP_SHAPE2(1, 1), TP_SHAPE2(3, 7), TP_SHAPE2(17, 100),
                                       TP_SHAPE2(256, 4096), TP_SHAPE_END};
static const tp_shape gemm_verify[] = {TP_SHAPE3(3, 7, 2), TP_SHAPE3(33, 257, 5), TP_SHAPE3(64, 1000, 64),
                                       TP_SHAPE3(130, 2048, 17), TP_SHAPE_END};
/* the H100 bench shapes (8192x8192 and 28672x8192, 16 columns for GEMM) */
static const tp_shape gemv_bench[] = {TP_SHAPE2(8192, 8192), TP_SHAPE2(28672, 8192), TP_SHAPE_END};
static const tp_shape gemm_bench[] = {TP_SHAPE3(8192, 8192, 2), TP_SHAPE3(8192, 8192, 16),
                                      TP_SHAPE3(28672, 8192, 16), TP_SHAPE3(8192, 8192, 64),
                                      TP_SHAPE3(8192, 8192, 8192) /* the 2:4 sparse GEMM's dense baseline */,
                                      TP_SHAPE_END};
static const tp_shape copy_verify[] = {TP_SHAPE1(1), TP_SHAPE1(7), TP_SHAPE1(1000003), TP_SHAPE_END};
static const tp_shape copy_bench[] = {TP_SHAPE1(1 << 26), TP_SHAPE_END}; /* 256 MiB each way */

static const tp_op gemv_f16 = {
    .name = "gemv", .variant = "f16", .out_type = TP_OUT_F32, .cmp = TP_CMP_REL_L2, .bound = 1e-5,
    .setup = dsetup, .teardown = dteardown, .reference = dense_ref, .bytes = dense_bytes,
    .flops = dense_flops, .items = dense_items, .verify_shapes = gemv_verify, .bench_shapes = gemv_bench,
    .memory_bound = 1};
static const tp_op gemm_f16 = {
    .name = "gemm", .variant = "f16", .out_type = TP_OUT_F32, .cmp = TP_CMP_REL_L2, .bound = 1e-5,
    .setup = dsetup, .teardown = dteardown, .reference = dense_ref, .bytes = dense_bytes,
    .flops = dense_flops, .items = dense_items, .verify_shapes = gemm_verify, .bench_shapes = gemm_bench};
static const tp_op copy_d2d = {
    .name = "copy", .variant = "d2d", .out_type = TP_OUT_F32, .cmp = TP_CMP_EXACT, .setup = dsetup,
    .teardown = dteardown, .reference = copy_ref, .bytes = copy_bytes, .items = copy_items,
    .verify_shapes = copy_verify, .bench_shapes = copy_bench, .memory_bound = 1};

#define DEVICE_KERNEL(OP, BACKEND, PREP, RUN, FETCH, REL)                                               \
    {.op = &OP, .backend = BACKEND, .run = RUN, .available = tp_cuda_available,                        \
     .flags = TP_K_DEVICE | TP_K_BASELINE, .prepare = PREP, .sync = tp_cuda_sync, .fetch = FETCH,       \
     .release = REL}

const tp_kernel tp_kernels_cuda[] = {
    {.op = &gemv_f16, .backend = "ref", .run = dense_ref_run},
    DEVICE_KERNEL(gemv_f16, "cublas", dense_prepare, tp_cuda_dense_run, tp_cuda_dense_fetch, tp_cuda_dense_release),
    {.op = &gemm_f16, .backend = "ref", .run = dense_ref_run},
    DEVICE_KERNEL(gemm_f16, "cublas", dense_prepare, tp_cuda_dense_run, tp_cuda_dense_fetch, tp_cuda_dense_release),
    {.op = &copy_d2d, .backend = "ref", .run = copy_ref_run},
    DEVICE_KERNEL(copy_d2d, "cuda", copy_prepare, tp_cuda_copy_run, tp_cuda_copy_fetch, tp_cuda_copy_release),
    {0}};

/* The backend's hooks for the drivers (tp_registry_device, include/tenpak/registry.h). */
const tp_device_backend tp_device_cuda = {
    .name = "cuda",
    .info = tp_cuda_info_get,
    .graph_make = tp_cuda_graph_make,
    .graph_launch = tp_cuda_graph_launch,
    .graph_free = tp_cuda_graph_free,
};
