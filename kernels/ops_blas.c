/* Registry family: baselines. The dense fp32 operations every codec kernel is measured against
 * (OpenBLAS sgemv / sgemm on the fp32 matrix) and the copy bandwidth that is the roofline of
 * every memory-bound kernel (memcpy, and a threaded STREAM-style copy). They are verified
 * against plain double-accumulating loops like every other kernel. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "tenpak/matvec.h"
#include "tenpak/registry.h"

/* OpenBLAS reports its core type as a lower-case name ("skylakex", "haswell", "zen"). */
const char *tp_blas_core(void) { return openblas_get_corename(); }
int tp_blas_threads(void) { return openblas_get_num_threads(); }
const char *tp_blas_config(void) { return openblas_get_config(); }

typedef struct fctx {
    float *A; /* rows x cols, or the copy source */
    float *X; /* batch x cols */
    uint16_t *H; /* gemv/f16: A as binary16 (A then holds the same values widened) */
    int64_t batch;
} fctx;

static tp_status fsetup(tp_case *c, tp_rng *rng) {
    fctx *x = calloc(1, sizeof *x);
    if (!x) return TP_ERR_NOMEM;
    c->ctx = x;
    int64_t n0 = c->shape.d[0], n1 = c->shape.nd > 1 ? c->shape.d[1] : 1;
    x->batch = c->shape.nd > 2 ? c->shape.d[2] : 1;
    x->A = tp_alloc((size_t)(n0 * n1) * sizeof(float));
    int gemvt = !strcmp(c->op->name, "gemvt");
    x->X = tp_alloc((size_t)(x->batch * (gemvt ? n0 : n1)) * sizeof(float));
    if (!x->A || !x->X) return TP_ERR_NOMEM;
    if (!strcmp(c->op->name, "copy")) /* uniform in [-1, 1): the roofline's copy is up to 2 x 1 GiB
                                           * (twice the LLC), where normals took seconds */
        for (int64_t i = 0; i < n0 * n1; i++) x->A[i] = (float)(int32_t)(uint32_t)(tp_rng_next(rng) >> 32) * 0x1p-31f;
    else
        for (int64_t i = 0; i < n0 * n1; i++) x->A[i] = tp_rng_normal(rng) * 0.02f;
    for (int64_t i = 0; i < x->batch * (gemvt ? n0 : n1); i++) x->X[i] = tp_rng_normal(rng);
    c->out_count = !strcmp(c->op->name, "copy") ? (size_t)n0 : gemvt ? (size_t)n1 : (size_t)(n0 * x->batch);
    c->out_bytes = c->out_count * sizeof(float);
    return TP_OK;
}
static void fteardown(tp_case *c) {
    fctx *x = c->ctx;
    if (!x) return;
    tp_free(x->A);
    tp_free(x->X);
    tp_free(x->H);
    free(x);
}

/* ---- copy ---- */
static tp_status copy_ref(const tp_case *c, void *out) {
    const fctx *x = c->ctx;
    float *o = out;
    for (int64_t i = 0; i < c->shape.d[0]; i++) o[i] = x->A[i];
    return TP_OK;
}
static tp_status copy_ref_run(const tp_case *c, void *s, void *out) { (void)s; return copy_ref(c, out); }
static tp_status copy_memcpy_run(const tp_case *c, void *s, void *out) {
    (void)s;
    memcpy(out, ((const fctx *)c->ctx)->A, c->out_bytes);
    return TP_OK;
}
/* STREAM-style copy (c[i] = a[i]): tasks of COPY_TASK floats on the worker pool, each copied
 * with AVX2 loads and non-temporal stores where available (what STREAM's compiled loop does;
 * tp_copy_f32_avx2 streams slices of 2^18 floats and more), so it measures the machine's
 * read+write bandwidth and not one library's memcpy strategy. Under 2^20 floats: one task. */
void tp_copy_f32_avx2(const float *a, float *o, int64_t n);
#define COPY_TASK ((int64_t)1 << 18)
typedef struct bjob {
    const float *a, *x;
    const uint16_t *h;
    float *o;
    int64_t n, rows, cols, per; /* per: elements (copy) or outputs (GEMVs) per task */
    int avx2;
} bjob;
static void range(const bjob *j, int t, int64_t n, int64_t *i0, int64_t *i1) {
    *i0 = (int64_t)t * j->per;
    *i1 = *i0 + j->per < n ? *i0 + j->per : n;
}
static void copy_task(void *vc, int t, int nt) {
    const bjob *j = vc;
    int64_t i0, i1;
    (void)nt;
    range(j, t, j->n, &i0, &i1);
    if (j->avx2) tp_copy_f32_avx2(j->a + i0, j->o + i0, i1 - i0);
    else
        for (int64_t i = i0; i < i1; i++) j->o[i] = j->a[i];
}
/* tasks of j->per outputs out of n; all of them as one task when n is under the threshold */
static void brun(bjob *j, int64_t n, int par, void (*fn)(void *, int, int)) {
    if (n <= 0) return;
    if (!par) j->per = n;
    tp_pool_run((int)((n + j->per - 1) / j->per), fn, j);
}
static tp_status copy_cpu_run(const tp_case *c, void *s, void *out) {
    (void)s;
    const int64_t n = c->shape.d[0];
    bjob j = {.a = ((const fctx *)c->ctx)->A, .o = out, .n = n, .per = COPY_TASK, .avx2 = tp_cpu_isa() >= TP_ISA_AVX2};
    brun(&j, n, n >= (1 << 20), copy_task);
    return TP_OK;
}
static double copy_bytes(const tp_shape *s) { return 2.0 * 4.0 * (double)s->d[0]; }
static double copy_items(const tp_shape *s) { return (double)s->d[0]; }

/* ---- gemv / gemm on fp32 ---- */
static tp_status gemv_ref(const tp_case *c, void *out) {
    const fctx *x = c->ctx;
    int64_t rows = c->shape.d[0], cols = c->shape.d[1];
    float *y = out;
    for (int64_t r = 0; r < rows; r++) {
        double acc = 0;
        for (int64_t k = 0; k < cols; k++) acc += (double)x->A[r * cols + k] * x->X[k];
        y[r] = (float)acc;
    }
    return TP_OK;
}
static tp_status gemv_ref_run(const tp_case *c, void *s, void *out) { (void)s; return gemv_ref(c, out); }
static tp_status gemv_blas_run(const tp_case *c, void *s, void *out) {
    (void)s;
    const fctx *x = c->ctx;
    int rows = (int)c->shape.d[0], cols = (int)c->shape.d[1];
    tp_pool_nap();
    cblas_sgemv(CblasRowMajor, CblasNoTrans, rows, cols, 1.0f, x->A, cols, x->X, 1, 0.0f, out, 1);
    return TP_OK;
}
/* the fixed-order kernel (tenpak/matvec.h) in tasks of MV_TASK outputs (rows; columns for gemvt,
 * a multiple of its 32-column blocks); one task under 2^16 weights */
#define MV_TASK 64
static void gemv_task(void *vc, int t, int nt) {
    const bjob *j = vc;
    int64_t r0, r1;
    (void)nt;
    range(j, t, j->rows, &r0, &r1);
    tp_matvec_rows(j->a, j->cols, j->cols, j->x, 1.0f, 0.0f, j->o, r0, r1);
}
static tp_status gemv_cpu_run(const tp_case *c, void *s, void *out) {
    (void)s;
    const fctx *x = c->ctx;
    int64_t rows = c->shape.d[0], cols = c->shape.d[1];
    bjob j = {.a = x->A, .x = x->X, .o = out, .rows = rows, .cols = cols, .per = MV_TASK};
    brun(&j, rows, rows * cols >= (1 << 16), gemv_task);
    return TP_OK;
}
/* gemv on fp16 weights (the fp16-weights model's decode): A rounded to binary16, the kernel reads
 * the 16-bit copy, the reference the same values widened, summed in double */
static tp_status hsetup(tp_case *c, tp_rng *rng) {
    tp_status s = fsetup(c, rng);
    if (s != TP_OK) return s;
    fctx *x = c->ctx;
    int64_t n = c->shape.d[0] * c->shape.d[1];
    if (!(x->H = tp_alloc((size_t)n * sizeof(uint16_t)))) return TP_ERR_NOMEM;
    for (int64_t i = 0; i < n; i++) x->A[i] = tp_f16_to_f32(x->H[i] = tp_f32_to_f16(x->A[i]));
    return TP_OK;
}
static void hgemv_task(void *vc, int t, int nt) {
    const bjob *j = vc;
    int64_t r0, r1;
    (void)nt;
    range(j, t, j->rows, &r0, &r1);
    tp_matvec_rows_f16(j->h, j->cols, j->cols, j->x, 1.0f, 0.0f, j->o, r0, r1);
}
static tp_status hgemv_cpu_run(const tp_case *c, void *s, void *out) {
    (void)s;
    const fctx *x = c->ctx;
    int64_t rows = c->shape.d[0], cols = c->shape.d[1];
    bjob j = {.h = x->H, .x = x->X, .o = out, .rows = rows, .cols = cols, .per = MV_TASK};
    brun(&j, rows, rows * cols >= (1 << 16), hgemv_task);
    return TP_OK;
}
static double hgemv_bytes(const tp_shape *s) { return 2.0 * s->d[0] * (double)s->d[1] + 4.0 * (double)(s->d[0] + s->d[1]); }

/* gemvt: y (cols) = A^T x, A rows x cols row-major, x of length rows */
static tp_status gemvt_ref(const tp_case *c, void *out) {
    const fctx *x = c->ctx;
    int64_t rows = c->shape.d[0], cols = c->shape.d[1];
    float *y = out;
    for (int64_t n = 0; n < cols; n++) {
        double acc = 0;
        for (int64_t k = 0; k < rows; k++) acc += (double)x->X[k] * x->A[k * cols + n];
        y[n] = (float)acc;
    }
    return TP_OK;
}
static tp_status gemvt_ref_run(const tp_case *c, void *s, void *out) { (void)s; return gemvt_ref(c, out); }
static void gemvt_task(void *vc, int t, int nt) {
    const bjob *j = vc;
    int64_t n0, n1;
    (void)nt;
    range(j, t, j->cols, &n0, &n1);
    tp_matvec_cols(j->a, j->cols, j->rows, j->x, 1.0f, 0.0f, j->o, n0, n1);
}
static tp_status gemvt_cpu_run(const tp_case *c, void *s, void *out) {
    (void)s;
    const fctx *x = c->ctx;
    int64_t rows = c->shape.d[0], cols = c->shape.d[1];
    bjob j = {.a = x->A, .x = x->X, .o = out, .rows = rows, .cols = cols, .per = 4 * MV_TASK};
    brun(&j, cols, rows * cols >= (1 << 16), gemvt_task);
    return TP_OK;
}
static tp_status gemvt_blas_run(const tp_case *c, void *s, void *out) {
    (void)s;
    const fctx *x = c->ctx;
    int rows = (int)c->shape.d[0], cols = (int)c->shape.d[1];
    tp_pool_nap();
    cblas_sgemv(CblasRowMajor, CblasTrans, rows, cols, 1.0f, x->A, cols, x->X, 1, 0.0f, out, 1);
    return TP_OK;
}

/* Y (batch x rows) = X (batch x cols) * A^T */
static tp_status gemm_ref(const tp_case *c, void *out) {
    const fctx *x = c->ctx;
    int64_t rows = c->shape.d[0], cols = c->shape.d[1];
    float *Y = out;
    for (int64_t b = 0; b < x->batch; b++)
        for (int64_t r = 0; r < rows; r++) {
            double acc = 0;
            for (int64_t k = 0; k < cols; k++) acc += (double)x->A[r * cols + k] * x->X[b * cols + k];
            Y[b * rows + r] = (float)acc;
        }
    return TP_OK;
}
static tp_status gemm_ref_run(const tp_case *c, void *s, void *out) { (void)s; return gemm_ref(c, out); }
static tp_status gemm_blas_run(const tp_case *c, void *s, void *out) {
    (void)s;
    const fctx *x = c->ctx;
    int rows = (int)c->shape.d[0], cols = (int)c->shape.d[1], batch = (int)x->batch;
    tp_pool_nap();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, batch, rows, cols, 1.0f, x->X, cols, x->A,
                cols, 0.0f, out, rows);
    return TP_OK;
}
static double gemv_bytes(const tp_shape *s) { return 4.0 * ((double)s->d[0] * s->d[1] + s->d[0] + s->d[1]); }
static double gemm_bytes(const tp_shape *s) {
    return 4.0 * ((double)s->d[0] * s->d[1] + (double)s->d[2] * (s->d[0] + s->d[1]));
}
static double mat_items(const tp_shape *s) { return (double)s->d[0] * s->d[1]; }
static double gemv_flops(const tp_shape *s) { return 2.0 * s->d[0] * (double)s->d[1]; }
static double gemm_flops(const tp_shape *s) { return 2.0 * s->d[0] * (double)s->d[1] * s->d[2]; }

static const tp_shape copy_verify[] = {TP_SHAPE1(1), TP_SHAPE1(7), TP_SHAPE1(1000003), TP_SHAPE_END};
static const tp_shape copy_bench[] = {TP_SHAPE1(1 << 24), TP_SHAPE_END};
static const tp_shape v2[] = {TP_SHAPE2(1, 1), TP_SHAPE2(3, 7), TP_SHAPE2(33, 257), TP_SHAPE2(256, 4096), TP_SHAPE_END};
static const tp_shape v3[] = {TP_SHAPE3(1, 1, 1), TP_SHAPE3(3, 7, 2), TP_SHAPE3(33, 257, 5), TP_SHAPE3(130, 2048, 17), TP_SHAPE_END};
static const tp_shape b2[] = {TP_SHAPE2(4096, 4096), TP_SHAPE2(11008, 4096), TP_SHAPE_END};
static const tp_shape b3[] = {TP_SHAPE3(4096, 4096, 4), TP_SHAPE3(4096, 4096, 16), TP_SHAPE3(4096, 4096, 64), TP_SHAPE_END};

static const tp_op copy_f32 = {
    .name = "copy", .variant = "f32", .out_type = TP_OUT_F32, .cmp = TP_CMP_EXACT, .setup = fsetup,
    .teardown = fteardown, .reference = copy_ref, .bytes = copy_bytes, .items = copy_items,
    .verify_shapes = copy_verify, .bench_shapes = copy_bench, .memory_bound = 1};
static const tp_op gemv_f32 = {
    .name = "gemv", .variant = "f32", .out_type = TP_OUT_F32, .cmp = TP_CMP_REL_L2, .bound = 1e-5,
    .setup = fsetup, .teardown = fteardown, .reference = gemv_ref, .bytes = gemv_bytes,
    .flops = gemv_flops, .items = mat_items, .verify_shapes = v2, .bench_shapes = b2, .memory_bound = 1};
static const tp_op gemv_f16 = {
    .name = "gemv", .variant = "f16", .out_type = TP_OUT_F32, .cmp = TP_CMP_REL_L2, .bound = 1e-5,
    .setup = hsetup, .teardown = fteardown, .reference = gemv_ref, .bytes = hgemv_bytes,
    .flops = gemv_flops, .items = mat_items, .verify_shapes = v2, .bench_shapes = b2, .memory_bound = 1};
static const tp_op gemvt_f32 = {
    .name = "gemvt", .variant = "f32", .out_type = TP_OUT_F32, .cmp = TP_CMP_REL_L2, .bound = 1e-5,
    .setup = fsetup, .teardown = fteardown, .reference = gemvt_ref, .bytes = gemv_bytes,
    .flops = gemv_flops, .items = mat_items, .verify_shapes = v2, .bench_shapes = b2, .memory_bound = 1};
static const tp_op gemm_f32 = {
    .name = "gemm", .variant = "f32", .out_type = TP_OUT_F32, .cmp = TP_CMP_REL_L2, .bound = 1e-5,
    .setup = fsetup, .teardown = fteardown, .reference = gemm_ref, .bytes = gemm_bytes,
    .flops = gemm_flops, .items = mat_items, .verify_shapes = v3, .bench_shapes = b3};

const tp_kernel tp_kernels_blas[] = {
    {.op = &copy_f32, .backend = "ref", .run = copy_ref_run},
    {.op = &copy_f32, .backend = "memcpy", .run = copy_memcpy_run, .flags = TP_K_BASELINE},
    {.op = &copy_f32, .backend = "cpu", .run = copy_cpu_run, .flags = TP_K_BASELINE | TP_K_ISA},
    {.op = &gemv_f32, .backend = "ref", .run = gemv_ref_run},
    {.op = &gemv_f32, .backend = "openblas", .run = gemv_blas_run, .flags = TP_K_BASELINE},
    {.op = &gemv_f32, .backend = "cpu", .run = gemv_cpu_run, .flags = TP_K_ISA},
    {.op = &gemv_f16, .backend = "ref", .run = gemv_ref_run},
    {.op = &gemv_f16, .backend = "cpu", .run = hgemv_cpu_run, .flags = TP_K_ISA},
    {.op = &gemvt_f32, .backend = "ref", .run = gemvt_ref_run},
    {.op = &gemvt_f32, .backend = "openblas", .run = gemvt_blas_run, .flags = TP_K_BASELINE},
    {.op = &gemvt_f32, .backend = "cpu", .run = gemvt_cpu_run, .flags = TP_K_ISA},
    {.op = &gemm_f32, .backend = "ref", .run = gemm_ref_run},
    {.op = &gemm_f32, .backend = "openblas", .run = gemm_blas_run, .flags = TP_K_BASELINE},
    {0}};
