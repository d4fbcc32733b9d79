/* Registry family: 2:4 semi-structured sparsity (sparse24_*).
 * Ops: prune (exact; magnitude, or magnitude x per-column importance), compress (exact, the packed
 * byte image), decompress (exact), gemv and gemm (relative L2), for values in fp32, fp16 and
 * INT4 g64 (the "2:4 + 4-bit" pipeline). Inputs: weights with log-normal row scales and rare
 * outliers (as ops_int4.c), activations standard normal. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tenpak/registry.h"
#include "tenpak/sparse.h"

typedef struct sparam {
    tp_sp_vkind vk;
    int g;
    int importance;
    int f16a; /* the _f16a variants: activations rounded to binary16 (part of the op) */
} sparam;

typedef struct sctx {
    float *W, *imp, *P, *X;
    tp_sp24 s; /* P compressed by the reference */
    int64_t batch;
} sctx;

static tp_status ssetup(tp_case *c, tp_rng *rng) {
    const sparam *p = c->op->param;
    int64_t rows = c->shape.d[0], cols = c->shape.d[1];
    int64_t batch = c->shape.nd > 2 ? c->shape.d[2] : 1;
    sctx *x = calloc(1, sizeof *x);
    if (!x) return TP_ERR_NOMEM;
    c->ctx = x;
    x->batch = batch;
    size_t n = (size_t)(rows * cols);
    x->W = tp_alloc(n * 4);
    x->P = tp_alloc(n * 4);
    x->imp = tp_alloc((size_t)cols * 4);
    x->X = tp_alloc((size_t)(batch * cols) * 4);
    if (!x->W || !x->P || !x->imp || !x->X) return TP_ERR_NOMEM;
    for (int64_t r = 0; r < rows; r++) {
        float rs = 0.02f * expf(0.5f * tp_rng_normal(rng));
        for (int64_t i = 0; i < cols; i++) {
            float v = tp_rng_normal(rng) * rs;
            if (tp_rng_below(rng, 256) == 0) v *= 8.0f;
            x->W[r * cols + i] = v;
        }
    }
    for (int64_t i = 0; i < cols; i++) x->imp[i] = expf(tp_rng_normal(rng));
    for (int64_t i = 0; i < batch * cols; i++) x->X[i] = tp_rng_normal(rng);
    if (p->f16a) /* fp16 activations: the op's inputs are binary16 values (kept as fp32 here) */
        for (int64_t i = 0; i < batch * cols; i++) x->X[i] = tp_f16_to_f32(tp_f32_to_f16(x->X[i]));
    tp_prune24_ref(x->W, rows, cols, p->importance ? x->imp : NULL, x->P);
    if (tp_sp24_alloc(&x->s, p->vk, rows, cols, p->g) != TP_OK) return TP_ERR_NOMEM;
    if (tp_sp24_compress_ref(&x->s, x->P, 0) != TP_OK) return TP_ERR_INTERNAL;
    const char *op = c->op->name;
    if (!strcmp(op, "compress")) {
        c->out_bytes = tp_sp24_bytes(&x->s);
        c->out_count = c->out_bytes;
    } else if (!strcmp(op, "prune") || !strcmp(op, "decompress")) {
        c->out_count = n;
        c->out_bytes = n * 4;
    } else {
        c->out_count = (size_t)(rows * batch);
        c->out_bytes = c->out_count * 4;
    }
    return TP_OK;
}

static void steardown(tp_case *c) {
    sctx *x = c->ctx;
    if (!x) return;
    tp_free(x->W);
    tp_free(x->P);
    tp_free(x->imp);
    tp_free(x->X);
    tp_sp24_free(&x->s);
    free(x);
}

#define CTX(c) ((const sctx *)(c)->ctx)
#define PAR(c) ((const sparam *)(c)->op->param)

static tp_status prune_ref(const tp_case *c, void *out) {
    tp_prune24_ref(CTX(c)->W, c->shape.d[0], c->shape.d[1], PAR(c)->importance ? CTX(c)->imp : NULL, out);
    return TP_OK;
}
static tp_status prune_ref_run(const tp_case *c, void *s, void *out) { (void)s; return prune_ref(c, out); }
static tp_status prune_cpu_run(const tp_case *c, void *s, void *out) {
    (void)s;
    tp_prune24_cpu(CTX(c)->W, c->shape.d[0], c->shape.d[1], PAR(c)->importance ? CTX(c)->imp : NULL, out);
    return TP_OK;
}

static tp_status compress_with(const tp_case *c, void *out, int cpu) {
    tp_sp24 s;
    tp_status st = tp_sp24_alloc(&s, PAR(c)->vk, c->shape.d[0], c->shape.d[1], PAR(c)->g);
    if (st != TP_OK) return st;
    st = cpu ? tp_sp24_compress_cpu(&s, CTX(c)->P, 0) : tp_sp24_compress_ref(&s, CTX(c)->P, 0);
    if (st == TP_OK) tp_sp24_pack(&s, out);
    tp_sp24_free(&s);
    return st;
}
static tp_status compress_ref(const tp_case *c, void *out) { return compress_with(c, out, 0); }
static tp_status compress_ref_run(const tp_case *c, void *s, void *out) { (void)s; return compress_with(c, out, 0); }
static tp_status compress_cpu_run(const tp_case *c, void *s, void *out) { (void)s; return compress_with(c, out, 1); }

static tp_status decompress_ref(const tp_case *c, void *out) { tp_sp24_decompress_ref(&CTX(c)->s, out); return TP_OK; }
static tp_status decompress_ref_run(const tp_case *c, void *s, void *out) { (void)s; return decompress_ref(c, out); }
static tp_status decompress_cpu_run(const tp_case *c, void *s, void *out) {
    (void)s;
    tp_sp24_decompress_cpu(&CTX(c)->s, out);
    return TP_OK;
}

static tp_status gemm_ref(const tp_case *c, void *out) { tp_sp24_gemm_ref(&CTX(c)->s, CTX(c)->X, CTX(c)->batch, out); return TP_OK; }
static tp_status gemm_ref_run(const tp_case *c, void *s, void *out) { (void)s; return gemm_ref(c, out); }
static tp_status gemv_cpu_run(const tp_case *c, void *s, void *out) {
    (void)s;
    return tp_sp24_gemv_cpu(&CTX(c)->s, CTX(c)->X, out);
}
static tp_status gemm_cpu_run(const tp_case *c, void *s, void *out) {
    (void)s;
    return tp_sp24_gemm_cpu(&CTX(c)->s, CTX(c)->X, CTX(c)->batch, out);
}

/* ---- napkin math ---- */
#define NW(s) ((double)(s)->d[0] * (double)(s)->d[1])
static double w_items(const tp_shape *s) { return NW(s); }
static double prune_bytes(const tp_shape *s) { return 8 * NW(s); } /* read W, write P */
static double gemv_flops(const tp_shape *s) { return NW(s); }     /* 2 FLOP per kept weight */
static double gemm_flops(const tp_shape *s) { return NW(s) * (double)s->d[2]; }
#define SP_BYTES(NAME, VK, G)                                                                     \
    static double packed_##NAME(const tp_shape *s) { return (double)tp_sp24_bytes_for(VK, G, s->d[0], s->d[1]); } \
    static double cbytes_##NAME(const tp_shape *s) { return 4 * NW(s) + packed_##NAME(s); }         \
    static double gemv_bytes_##NAME(const tp_shape *s) { return packed_##NAME(s) + 4.0 * (s->d[0] + s->d[1]); } \
    static double gemm_bytes_##NAME(const tp_shape *s) {                                            \
        return packed_##NAME(s) + 4.0 * s->d[2] * (s->d[0] + s->d[1]);                             \
    }

static const tp_shape verify_2d[] = {
    TP_SHAPE2(1, 1), TP_SHAPE2(3, 7), TP_SHAPE2(5, 33), TP_SHAPE2(17, 100), TP_SHAPE2(64, 129),
    TP_SHAPE2(31, 1000), TP_SHAPE2(9, 2050), TP_SHAPE2(256, 1024), TP_SHAPE_END};
static const tp_shape verify_3d[] = {
    TP_SHAPE3(1, 1, 1), TP_SHAPE3(3, 7, 2), TP_SHAPE3(17, 100, 3), TP_SHAPE3(33, 257, 5),
    TP_SHAPE3(64, 1000, 16), TP_SHAPE3(5, 130, 64), TP_SHAPE3(20, 300, 65), TP_SHAPE3(130, 2048, 17),
    TP_SHAPE_END};
static const tp_shape bench_2d[] = {TP_SHAPE2(4096, 4096), TP_SHAPE_END};
static const tp_shape bench_3d[] = {TP_SHAPE3(4096, 4096, 4), TP_SHAPE3(4096, 4096, 16),
                                    TP_SHAPE3(4096, 4096, 64), TP_SHAPE_END};

static const sparam p_prune = {TP_SP_F32, 0, 0, 0}, p_prune_imp = {TP_SP_F32, 0, 1, 0};
static const tp_op prune_mag = {
    .name = "prune", .variant = "sparse24", .out_type = TP_OUT_F32, .cmp = TP_CMP_EXACT,
    .param = &p_prune, .setup = ssetup, .teardown = steardown, .reference = prune_ref,
    .bytes = prune_bytes, .items = w_items, .verify_shapes = verify_2d, .bench_shapes = bench_2d,
    .memory_bound = 1};
static const tp_op prune_imp = {
    .name = "prune", .variant = "sparse24_imp", .out_type = TP_OUT_F32, .cmp = TP_CMP_EXACT,
    .param = &p_prune_imp, .setup = ssetup, .teardown = steardown, .reference = prune_ref,
    .bytes = prune_bytes, .items = w_items, .verify_shapes = verify_2d, .bench_shapes = bench_2d,
    .memory_bound = 1};

#define SP_OPS(NAME, VK, G, VNAME, B2, B3)                                                             \
    static const sparam param_##NAME = {VK, G, 0, 0};                                                \
    SP_BYTES(NAME, VK, G)                                                                           \
    static const tp_op compress_##NAME = {                                                          \
        .name = "compress", .variant = VNAME, .out_type = TP_OUT_BYTES, .cmp = TP_CMP_EXACT,        \
        .param = &param_##NAME, .setup = ssetup, .teardown = steardown, .reference = compress_ref,  \
        .bytes = cbytes_##NAME, .items = w_items, .verify_shapes = verify_2d, .bench_shapes = B2}; \
    static const tp_op decompress_##NAME = {                                                        \
        .name = "decompress", .variant = VNAME, .out_type = TP_OUT_F32, .cmp = TP_CMP_EXACT,        \
        .param = &param_##NAME, .setup = ssetup, .teardown = steardown, .reference = decompress_ref, \
        .bytes = cbytes_##NAME, .items = w_items, .verify_shapes = verify_2d, .bench_shapes = B2, \
        .memory_bound = 1};                                                                         \
    static const tp_op gemv_##NAME = {                                                              \
        .name = "gemv", .variant = VNAME, .out_type = TP_OUT_F32, .cmp = TP_CMP_REL_L2, .bound = 1e-5, \
        .param = &param_##NAME, .setup = ssetup, .teardown = steardown, .reference = gemm_ref,      \
        .bytes = gemv_bytes_##NAME, .flops = gemv_flops, .items = w_items, .verify_shapes = verify_2d, \
        .bench_shapes = B2, .memory_bound = 1};                                                     \
    static const tp_op gemm_##NAME = {                                                              \
        .name = "gemm", .variant = VNAME, .out_type = TP_OUT_F32, .cmp = TP_CMP_REL_L2, .bound = 1e-5, \
        .param = &param_##NAME, .setup = ssetup, .teardown = steardown, .reference = gemm_ref,      \
        .bytes = gemm_bytes_##NAME, .flops = gemm_flops, .items = w_items, .verify_shapes = verify_3d, \
        .bench_shapes = B3};

#define SP_KERNELS(NAME)                                                                            \
    {.op = &compress_##NAME, .backend = "ref", .run = compress_ref_run},                            \
    {.op = &compress_##NAME, .backend = "cpu", .run = compress_cpu_run},                            \
    {.op = &decompress_##NAME, .backend = "ref", .run = decompress_ref_run},                        \
    {.op = &decompress_##NAME, .backend = "cpu", .run = decompress_cpu_run},                        \
    {.op = &gemv_##NAME, .backend = "ref", .run = gemm_ref_run},                                    \
    {.op = &gemv_##NAME, .backend = "cpu", .run = gemv_cpu_run, .flags = TP_K_ISA | TP_K_AVX512}, \
    {.op = &gemm_##NAME, .backend = "ref", .run = gemm_ref_run},                                    \
    {.op = &gemm_##NAME, .backend = "cpu", .run = gemm_cpu_run, .flags = TP_K_ISA | TP_K_AVX512},

SP_OPS(f32, TP_SP_F32, 0, "sparse24_f32", bench_2d, bench_3d)
SP_OPS(f16, TP_SP_F16, 0, "sparse24_f16", bench_2d, bench_3d)
SP_OPS(int4, TP_SP_INT4, TP_SP24_INT4_G, "sparse24_int4_g64", bench_2d, bench_3d)
/* verify only: a group that is not a multiple of 8 or 16 kept values (the SIMD kernels' steps) */
SP_OPS(int4g24, TP_SP_INT4, 24, "sparse24_int4_g24", NULL, NULL)

/* gemm/sparse24_f16_f16a: the fp16-value GEMM with activations rounded to binary16 as part of the
 * op (as the INT4 _f16a variants, kernels/ops_int4.c): reference and bound unchanged (double
 * accumulation of the exact products, 1e-5), inputs the sparse tensor cores read directly.
 * Benchmarked at 8192^3 against its targets (>= 1.3x cuBLAS dense, within 10% of cuSPARSELt); only the
 * reference, cuda (mma.sp) and cuda-simt implement it (cusparselt: the _o16 op below). */
static const sparam param_f16_f16a = {TP_SP_F16, 0, 0, 1};
static double gemm_f16a_bytes(const tp_shape *s) { /* fp16 X read, fp32 Y written */
    return packed_f16(s) + s->d[2] * (2.0 * s->d[1] + 4.0 * s->d[0]);
}
static const tp_shape verify_3d_f16a[] = {
    TP_SHAPE3(1, 1, 1), TP_SHAPE3(3, 7, 2), TP_SHAPE3(17, 100, 3), TP_SHAPE3(33, 257, 5),
    TP_SHAPE3(130, 2048, 17), TP_SHAPE3(128, 64, 128), TP_SHAPE3(256, 1024, 128), TP_SHAPE3(300, 1000, 130),
    TP_SHAPE3(129, 4160, 40), TP_SHAPE_END};
static const tp_shape bench_3d_f16a[] = {TP_SHAPE3(8192, 8192, 8192), TP_SHAPE_END};
static const tp_op gemm_f16_f16a = {
    .name = "gemm", .variant = "sparse24_f16_f16a", .out_type = TP_OUT_F32, .cmp = TP_CMP_REL_L2,
    .bound = 1e-5, .param = &param_f16_f16a, .setup = ssetup, .teardown = steardown,
    .reference = gemm_ref, .bytes = gemm_f16a_bytes, .flops = gemm_flops, .items = w_items,
    .verify_shapes = verify_3d_f16a, .bench_shapes = bench_3d_f16a};

/* gemm/sparse24_f16_f16a_o16: the same GEMM with the output also rounded to binary16 as part of
 * the op: what the cuSPARSELt baseline computes with the library PyTorch carries (it takes fp16 x
 * fp16 with fp16 output only: reports/gpu/run5). Reference = the exact result rounded to binary16; bound
 * 1e-3: one binary16 ulp is 2^-11 ~ 4.9e-4 relative, so fp32 accumulation rounding the other way
 * at any number of elements stays under it, and a wrong result does not. */
static tp_status gemm_ref_o16(const tp_case *c, void *out) {
    gemm_ref(c, out);
    float *y = out;
    for (size_t i = 0; i < c->out_count; i++) y[i] = tp_f16_to_f32(tp_f32_to_f16(y[i]));
    return TP_OK;
}
static tp_status gemm_ref_o16_run(const tp_case *c, void *st, void *out) {
    (void)st;
    return gemm_ref_o16(c, out);
}
static double gemm_f16a_o16_bytes(const tp_shape *s) { /* fp16 X read, fp16 Y written */
    return packed_f16(s) + s->d[2] * (2.0 * s->d[1] + 2.0 * s->d[0]);
}
static const tp_op gemm_f16_f16a_o16 = {
    .name = "gemm", .variant = "sparse24_f16_f16a_o16", .out_type = TP_OUT_F32, .cmp = TP_CMP_REL_L2,
    .bound = 1e-3, .param = &param_f16_f16a, .setup = ssetup, .teardown = steardown,
    .reference = gemm_ref_o16, .bytes = gemm_f16a_o16_bytes, .flops = gemm_flops, .items = w_items,
    .verify_shapes = verify_3d_f16a, .bench_shapes = bench_3d_f16a};

#ifdef TENPAK_HAVE_CUDA
/* The CUDA backend (kernels/cuda/sparse24.cu): simt reads the documented layout as stored; the
 * tensor-core kernel's prepare repacks it once (tp_cuda_sparse.h). cusparselt: the baseline. */
#include "kernels/cuda/tp_cuda.h"
#include "kernels/cuda/tp_cuda_sparse.h"
static void *sp_cuda_prepare_mode(const tp_case *c, int mode) {
    return tp_cuda_sp24_prepare(&CTX(c)->s, CTX(c)->X, CTX(c)->batch, PAR(c)->f16a, mode);
}
static void *sp_cuda_simt_prepare(const tp_case *c) { return sp_cuda_prepare_mode(c, 0); }
static void *sp_cuda_tc_prepare(const tp_case *c) { return sp_cuda_prepare_mode(c, 1); }
static void *sp_cusparselt_prepare(const tp_case *c) {
    return tp_cusparselt_prepare(&CTX(c)->s, CTX(c)->X, CTX(c)->batch);
}
#define SP_CUDA_KERNEL(OP, BACKEND, PREP)                                                           \
    {.op = &OP, .backend = BACKEND, .run = tp_cuda_sp24_run, .available = tp_cuda_available,         \
     .flags = TP_K_DEVICE, .prepare = PREP, .sync = tp_cuda_sync, .fetch = tp_cuda_sp24_fetch,       \
     .release = tp_cuda_sp24_release},
#define SP24_CUDA_KERNELS                                                                           \
    SP_CUDA_KERNEL(gemv_f16, "cuda", sp_cuda_simt_prepare)                                          \
    SP_CUDA_KERNEL(gemm_f16, "cuda", sp_cuda_simt_prepare)                                          \
    SP_CUDA_KERNEL(gemm_f16_f16a, "cuda", sp_cuda_tc_prepare)                                       \
    SP_CUDA_KERNEL(gemm_f16_f16a, "cuda-simt", sp_cuda_simt_prepare)                                \
    {.op = &gemm_f16_f16a_o16, .backend = "cusparselt", .run = tp_cusparselt_run,                      \
     .available = tp_cusparselt_available, .flags = TP_K_DEVICE | TP_K_BASELINE,                   \
     .prepare = sp_cusparselt_prepare, .sync = tp_cuda_sync, .fetch = tp_cusparselt_fetch,          \
     .release = tp_cusparselt_release},
#else
#define SP24_CUDA_KERNELS
#endif

const tp_kernel tp_kernels_sparse[] = {
    {.op = &prune_mag, .backend = "ref", .run = prune_ref_run},
    {.op = &prune_mag, .backend = "cpu", .run = prune_cpu_run},
    {.op = &prune_imp, .backend = "ref", .run = prune_ref_run},
    {.op = &prune_imp, .backend = "cpu", .run = prune_cpu_run},
    SP_KERNELS(f32)
    SP_KERNELS(f16)
    SP_KERNELS(int4)
    SP_KERNELS(int4g24)
    {.op = &gemm_f16_f16a, .backend = "ref", .run = gemm_ref_run},
    {.op = &gemm_f16_f16a_o16, .backend = "ref", .run = gemm_ref_o16_run},
    SP24_CUDA_KERNELS
    {0}};
