/* Registry family: ggml's block formats (include/tenpak/ggml.h), variants ggml_q4_0 .. ggml_q6_k
 * and the float tensors ggml_f32 / ggml_f16 / ggml_bf16.
 * Ops: dequant (exact, to the bit), gemv and gemm (relative L2 against the reference's double
 * dot products). Inputs: weight-like random blocks (tp_ggml_fill_random with wild = 0: random code
 * bytes, scales of trained-weight size); activations standard normal. Shapes: awkward row counts
 * and batches; columns are whole blocks (the format's only shape rule). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tenpak/ggml.h"
#include "tenpak/registry.h"

/* ---- random blocks ---- */
static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static uint16_t wild_f16(tp_rng *rng) {
    uint16_t h = (uint16_t)tp_rng_next(rng);
    if (((h >> 10) & 31) == 31) h ^= 1u << 14; /* never inf / NaN */
    return h;
}
static uint16_t tame_f16(tp_rng *rng, float scale, int any_sign) {
    float v = scale * expf(0.5f * tp_rng_normal(rng));
    if (any_sign && (tp_rng_next(rng) & 1)) v = -v;
    return tp_f32_to_f16(v);
}

void tp_ggml_fill_random(int type, void *dst, int64_t nblocks, tp_rng *rng, int wild) {
    uint8_t *p = dst;
    const size_t bb = tp_ggml_block_bytes(type);
    for (int64_t b = 0; b < nblocks; b++, p += bb) {
        for (size_t i = 0; i < bb; i++) p[i] = (uint8_t)tp_rng_next(rng);
        switch (type) {
        case TP_GGML_F32: {
            uint32_t u;
            memcpy(&u, p, 4);
            if (wild) {
                if (((u >> 23) & 255) == 255) u ^= 1u << 30;
            } else {
                float f = 0.02f * tp_rng_normal(rng);
                memcpy(&u, &f, 4);
            }
            memcpy(p, &u, 4);
            break;
        }
        case TP_GGML_F16: put16(p, wild ? wild_f16(rng) : tp_f32_to_f16(0.02f * tp_rng_normal(rng))); break;
        case TP_GGML_BF16:
            if (wild) {
                if (((p[1] & 0x7f) == 0x7f) && (p[0] & 0x80)) p[1] ^= 0x40; /* exponent never all ones */
            } else
                put16(p, tp_bf16_from_f32(0.02f * tp_rng_normal(rng)));
            break;
        case TP_GGML_Q4_0:
        case TP_GGML_Q5_0:
        case TP_GGML_Q8_0: put16(p, wild ? wild_f16(rng) : tame_f16(rng, type == TP_GGML_Q8_0 ? 2e-4f : 4e-3f, 1)); break;
        case TP_GGML_Q4_1:
        case TP_GGML_Q5_1: {
            uint16_t d = wild ? wild_f16(rng) : tame_f16(rng, type == TP_GGML_Q4_1 ? 4e-3f : 2e-3f, 0);
            float m = -(type == TP_GGML_Q4_1 ? 7.5f : 15.5f) * tp_f16_to_f32(d) * (1.0f + 0.1f * tp_rng_normal(rng));
            put16(p, d);
            put16(p + 2, wild ? wild_f16(rng) : tp_f32_to_f16(m));
            break;
        }
        case TP_GGML_Q4_K:
        case TP_GGML_Q5_K:
            put16(p, wild ? wild_f16(rng) : tame_f16(rng, 2e-4f, 0));
            put16(p + 2, wild ? wild_f16(rng) : tame_f16(rng, 2e-4f, 0));
            break;
        case TP_GGML_Q6_K: put16(p + 208, wild ? wild_f16(rng) : tame_f16(rng, 1e-4f, 0)); break;
        }
    }
}

/* ---- cases ---- */
typedef struct gparam {
    int type;
} gparam;

typedef struct gctx {
    uint8_t *W; /* rows x cols in the type, row after row */
    float *X;   /* n x cols */
    int64_t rows, cols, n;
} gctx;

/* shape: (rows, cols) for dequant / gemv, (rows, cols, n) for gemm */
static tp_status gsetup(tp_case *c, tp_rng *rng) {
    const gparam *p = c->op->param;
    gctx *x = calloc(1, sizeof *x);
    if (!x) return TP_ERR_NOMEM;
    c->ctx = x;
    x->rows = c->shape.d[0];
    x->cols = c->shape.d[1];
    x->n = c->shape.nd > 2 ? c->shape.d[2] : 1;
    const size_t rb = tp_ggml_row_bytes(p->type, x->cols);
    if (!rb) return TP_ERR_ARG;
    x->W = tp_alloc(rb * (size_t)x->rows);
    x->X = tp_alloc((size_t)(x->n * x->cols) * sizeof(float));
    if (!x->W || !x->X) return TP_ERR_NOMEM;
    tp_ggml_fill_random(p->type, x->W, x->rows * (x->cols / tp_ggml_block_elems(p->type)), rng, 0);
    for (int64_t i = 0; i < x->n * x->cols; i++) x->X[i] = tp_rng_normal(rng);
    c->out_count = (size_t)(!strcmp(c->op->name, "dequant") ? x->rows * x->cols : x->rows * x->n);
    c->out_bytes = c->out_count * sizeof(float);
    return TP_OK;
}

static void gteardown(tp_case *c) {
    gctx *x = c->ctx;
    if (!x) return;
    tp_free(x->W);
    tp_free(x->X);
    free(x);
}

static int gtype(const tp_case *c) { return ((const gparam *)c->op->param)->type; }

/* the API's status is the kernel's (TP_ERR_NOMEM when its scratch cannot be allocated) */
static tp_status dequant_ref(const tp_case *c, void *out) {
    const gctx *x = c->ctx;
    return tp_ggml_dequant_ref(gtype(c), x->W, x->rows * x->cols, out, NULL);
}
static tp_status dequant_ref_run(const tp_case *c, void *s, void *out) { (void)s; return dequant_ref(c, out); }
static tp_status dequant_cpu_run(const tp_case *c, void *s, void *out) {
    (void)s;
    const gctx *x = c->ctx;
    return tp_ggml_dequant_cpu(gtype(c), x->W, x->rows * x->cols, out, NULL);
}
static tp_status matmul_ref(const tp_case *c, void *out) {
    const gctx *x = c->ctx;
    return tp_ggml_matmul_ref(gtype(c), x->W, x->rows, x->cols, x->X, x->n, out, NULL);
}
static tp_status matmul_ref_run(const tp_case *c, void *s, void *out) { (void)s; return matmul_ref(c, out); }
static tp_status matmul_cpu_run(const tp_case *c, void *s, void *out) {
    (void)s;
    const gctx *x = c->ctx;
    return tp_ggml_matmul_cpu(gtype(c), x->W, x->rows, x->cols, x->X, x->n, out, NULL);
}

/* ---- bytes / FLOP models: the packed matrix read once, activations read, outputs written ---- */
#define GP(s) ((double)(s)->d[0] * (double)(s)->d[1])
#define GG_BYTES_FNS(T)                                                                             \
    static double packed_##T(const tp_shape *s) {                                                  \
        return (double)tp_ggml_row_bytes(T, s->d[1]) * (double)s->d[0];                             \
    }                                                                                               \
    static double deq_bytes_##T(const tp_shape *s) { return packed_##T(s) + 4 * GP(s); }            \
    static double gemv_bytes_##T(const tp_shape *s) { return packed_##T(s) + 4.0 * (s->d[0] + s->d[1]); } \
    static double gemm_bytes_##T(const tp_shape *s) {                                               \
        return packed_##T(s) + 4.0 * s->d[2] * (s->d[0] + s->d[1]);                                 \
    }
static double items_w(const tp_shape *s) { return GP(s); }
static double gemv_flops(const tp_shape *s) { return 2 * GP(s); }
static double gemm_flops(const tp_shape *s) { return 2 * GP(s) * (double)s->d[2]; }

/* verify shapes by block size: awkward row counts, one block, odd block counts, a long row. No
 * one-row product of a few blocks: the relative L2 of one or two sums of 32 random terms is
 * unbounded under cancellation (a float sum against the double reference failed 1e-5 now and then,
 * 1x32 Q5_0), while three rows already exercise the 4-row kernels' leftover path. */
static const tp_shape v2_1[] = {TP_SHAPE2(1, 1), TP_SHAPE2(3, 7), TP_SHAPE2(5, 33), TP_SHAPE2(17, 100),
                                TP_SHAPE2(67, 1000), TP_SHAPE2(130, 4096), TP_SHAPE_END};
static const tp_shape v3_1[] = {TP_SHAPE3(1, 1, 2), TP_SHAPE3(3, 7, 2), TP_SHAPE3(17, 100, 3),
                                TP_SHAPE3(33, 1057, 5), TP_SHAPE3(130, 2048, 17), TP_SHAPE_END};
static const tp_shape v2_32[] = {TP_SHAPE2(3, 32), TP_SHAPE2(3, 96), TP_SHAPE2(5, 160), TP_SHAPE2(17, 1056),
                                 TP_SHAPE2(67, 2080), TP_SHAPE2(130, 4096), TP_SHAPE_END};
static const tp_shape v3_32[] = {TP_SHAPE3(3, 32, 2), TP_SHAPE3(3, 96, 2), TP_SHAPE3(17, 1056, 3),
                                 TP_SHAPE3(33, 2080, 5), TP_SHAPE3(130, 2048, 17), TP_SHAPE_END};
static const tp_shape v2_256[] = {TP_SHAPE2(3, 256), TP_SHAPE2(3, 768), TP_SHAPE2(5, 1280), TP_SHAPE2(17, 2304),
                                  TP_SHAPE2(130, 4096), TP_SHAPE_END};
static const tp_shape v3_256[] = {TP_SHAPE3(3, 256, 2), TP_SHAPE3(3, 768, 2), TP_SHAPE3(17, 2304, 3),
                                  TP_SHAPE3(33, 1280, 5), TP_SHAPE3(130, 2048, 17), TP_SHAPE_END};
static const tp_shape bench_deq[] = {TP_SHAPE2(4096, 4096), TP_SHAPE_END};
static const tp_shape bench_2d[] = {TP_SHAPE2(4096, 4096), TP_SHAPE2(11008, 4096), TP_SHAPE_END};
static const tp_shape bench_3d[] = {TP_SHAPE3(4096, 4096, 16), TP_SHAPE_END};

#define GG_OPS(T, NAME, V2, V3)                                                                     \
    static const gparam param_##T = {T};                                                            \
    GG_BYTES_FNS(T)                                                                                 \
    static const tp_op dequant_##T = {                                                              \
        .name = "dequant", .variant = NAME, .out_type = TP_OUT_F32, .cmp = TP_CMP_EXACT,             \
        .param = &param_##T, .setup = gsetup, .teardown = gteardown, .reference = dequant_ref,       \
        .bytes = deq_bytes_##T, .items = items_w, .verify_shapes = V2, .bench_shapes = bench_deq,    \
        .memory_bound = 1};                                                                         \
    static const tp_op gemv_##T = {                                                                 \
        .name = "gemv", .variant = NAME, .out_type = TP_OUT_F32, .cmp = TP_CMP_REL_L2, .bound = 1e-5, \
        .param = &param_##T, .setup = gsetup, .teardown = gteardown, .reference = matmul_ref,        \
        .bytes = gemv_bytes_##T, .flops = gemv_flops, .items = items_w, .verify_shapes = V2,         \
        .bench_shapes = bench_2d, .memory_bound = 1};                                               \
    static const tp_op gemm_##T = {                                                                 \
        .name = "gemm", .variant = NAME, .out_type = TP_OUT_F32, .cmp = TP_CMP_REL_L2, .bound = 1e-5, \
        .param = &param_##T, .setup = gsetup, .teardown = gteardown, .reference = matmul_ref,        \
        .bytes = gemm_bytes_##T, .flops = gemm_flops, .items = items_w, .verify_shapes = V3,         \
        .bench_shapes = bench_3d};

/* every cpu kernel has an AVX-512 instance: verify runs it at every level */
#define GG_KERNELS(T)                                                                               \
    {.op = &dequant_##T, .backend = "ref", .run = dequant_ref_run},                                  \
    {.op = &dequant_##T, .backend = "cpu", .run = dequant_cpu_run, .flags = TP_K_ISA | TP_K_AVX512}, \
    {.op = &gemv_##T, .backend = "ref", .run = matmul_ref_run},                                      \
    {.op = &gemv_##T, .backend = "cpu", .run = matmul_cpu_run, .flags = TP_K_ISA | TP_K_AVX512},     \
    {.op = &gemm_##T, .backend = "ref", .run = matmul_ref_run},                                      \
    {.op = &gemm_##T, .backend = "cpu", .run = matmul_cpu_run, .flags = TP_K_ISA | TP_K_AVX512},

GG_OPS(TP_GGML_Q4_0, "ggml_q4_0", v2_32, v3_32)
GG_OPS(TP_GGML_Q4_1, "ggml_q4_1", v2_32, v3_32)
GG_OPS(TP_GGML_Q5_0, "ggml_q5_0", v2_32, v3_32)
GG_OPS(TP_GGML_Q5_1, "ggml_q5_1", v2_32, v3_32)
GG_OPS(TP_GGML_Q8_0, "ggml_q8_0", v2_32, v3_32)
GG_OPS(TP_GGML_Q4_K, "ggml_q4_k", v2_256, v3_256)
GG_OPS(TP_GGML_Q5_K, "ggml_q5_k", v2_256, v3_256)
GG_OPS(TP_GGML_Q6_K, "ggml_q6_k", v2_256, v3_256)
GG_OPS(TP_GGML_F32, "ggml_f32", v2_1, v3_1)
GG_OPS(TP_GGML_F16, "ggml_f16", v2_1, v3_1)
GG_OPS(TP_GGML_BF16, "ggml_bf16", v2_1, v3_1)

const tp_kernel tp_kernels_ggml[] = {
    GG_KERNELS(TP_GGML_Q4_0) GG_KERNELS(TP_GGML_Q4_1) GG_KERNELS(TP_GGML_Q5_0) GG_KERNELS(TP_GGML_Q5_1)
    GG_KERNELS(TP_GGML_Q8_0) GG_KERNELS(TP_GGML_Q4_K) GG_KERNELS(TP_GGML_Q5_K) GG_KERNELS(TP_GGML_Q6_K)
    GG_KERNELS(TP_GGML_F32) GG_KERNELS(TP_GGML_F16) GG_KERNELS(TP_GGML_BF16)
    {0}};
