/* Registry family: the INT4 codecs (int4 g8..g128, int4r2 g16, nf4 g64).
 * Ops: quant (reference only, checked by its properties), dequant (exact), gemv and gemm
 * (relative L2). Inputs: weights with per-row scales drawn log-normally and rare outliers, as
 * trained LLM weights have; activations standard normal. Never zeros. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tenpak/quant.h"
#include "tenpak/registry.h"

typedef struct qparam {
    tp_qkind kind;
    int g;
    int f16a; /* the _f16a variants: activations rounded to binary16 (part of the op) */
} qparam;

typedef struct qctx {
    float *W;      /* rows x cols source weights */
    tp_qmat q;     /* W quantised by the reference */
    float *X;      /* batch x cols activations */
    int64_t batch;
} qctx;

/* shape: (rows, cols) for quant/dequant/gemv; (rows, cols, batch) for gemm */
static tp_status qsetup(tp_case *c, tp_rng *rng) {
    const qparam *p = c->op->param;
    int64_t rows = c->shape.d[0], cols = c->shape.d[1];
    int64_t batch = c->shape.nd > 2 ? c->shape.d[2] : 1;
    qctx *x = calloc(1, sizeof *x);
    if (!x) return TP_ERR_NOMEM;
    c->ctx = x;
    x->batch = batch;
    x->W = tp_alloc((size_t)(rows * cols) * sizeof(float));
    x->X = tp_alloc((size_t)(batch * cols) * sizeof(float));
    if (!x->W || !x->X || tp_qmat_alloc(&x->q, p->kind, rows, cols, p->g) != TP_OK) return TP_ERR_NOMEM;
    for (int64_t r = 0; r < rows; r++) {
        float rs = 0.02f * expf(0.5f * tp_rng_normal(rng));
        for (int64_t i = 0; i < cols; i++) {
            float v = tp_rng_normal(rng) * rs;
            if (tp_rng_below(rng, 256) == 0) v *= 8.0f; /* outlier */
            x->W[r * cols + i] = v;
        }
    }
    for (int64_t i = 0; i < batch * cols; i++) x->X[i] = tp_rng_normal(rng);
    if (p->f16a) /* fp16 activations: the op's inputs are binary16 values (kept as fp32 here) */
        for (int64_t i = 0; i < batch * cols; i++) x->X[i] = tp_f16_to_f32(tp_f32_to_f16(x->X[i]));
    tp_quantize_ref(&x->q, x->W, 0);
    const char *op = c->op->name;
    if (!strcmp(op, "quant")) {
        c->out_bytes = tp_qmat_bytes(&x->q);
        c->out_count = c->out_bytes;
    } else if (!strcmp(op, "dequant")) {
        c->out_count = (size_t)(rows * cols);
        c->out_bytes = c->out_count * 4;
    } else {
        c->out_count = (size_t)(rows * batch);
        c->out_bytes = c->out_count * 4;
    }
    return TP_OK;
}

static void qteardown(tp_case *c) {
    qctx *x = c->ctx;
    if (!x) return;
    tp_free(x->W);
    tp_free(x->X);
    tp_qmat_free(&x->q);
    free(x);
}

/* ---- quant: reference only; the output is the packed byte image ---- */
static tp_status quant_ref(const tp_case *c, void *out) {
    const qctx *x = c->ctx;
    tp_qmat q;
    tp_status st = tp_qmat_alloc(&q, x->q.kind, x->q.rows, x->q.cols, x->q.g);
    if (st != TP_OK) return st;
    tp_quantize_ref(&q, x->W, 0);
    tp_qmat_pack(&q, out);
    tp_qmat_free(&q);
    return TP_OK;
}
static tp_status quant_run(const tp_case *c, void *state, void *out) {
    (void)state;
    return quant_ref(c, out);
}

/* Worst (error / allowed) over the matrix:
 *  int4  : |deq - w| <= s/2 (the min/max grid covers every group), padding nibbles zero;
 *  int4r2: |deq - w| <= rs/2;
 *  nf4   : the code is a nearest level of w/s. */
static double quant_property(const tp_case *c, const void *out) {
    const qctx *x = c->ctx;
    tp_qmat q;
    if (tp_qmat_alloc(&q, x->q.kind, x->q.rows, x->q.cols, x->q.g) != TP_OK) return INFINITY;
    tp_qmat_unpack(&q, out);
    float *D = tp_alloc((size_t)(q.rows * q.cols) * sizeof(float));
    if (!D) {
        tp_qmat_free(&q);
        return INFINITY; /* no scratch: no check, so no pass */
    }

    tp_dequantize_ref(&q, D);
    double worst = 0;
    for (int64_t r = 0; r < q.rows; r++) {
        if ((q.cols & 1) && (q.codes[r * q.code_stride + q.code_stride - 1] >> 4)) worst = INFINITY;
        for (int64_t col = 0; col < q.cols; col++) {
            size_t si = (size_t)(r * q.ngroups + col / q.g);
            double w = x->W[r * q.cols + col], d = D[r * q.cols + col], ratio;
            double s = tp_f16_to_f32(q.scale[si]);
            /* a zero scale (a constant group exactly representable in fp16) makes every code
             * decode alike: the quantiser then writes the canonical code (0; nf4: level 0.0) */
            int code0 = tp_qmat_code(&q, r, col);
            if (s == 0 && code0 != (q.kind == TP_Q_NF4 ? 7 : 0)) worst = INFINITY;
            if (q.kind == TP_Q_NF4) {
                int code = tp_qmat_code(&q, r, col);
                double t = s > 0 ? w / s : 0, best = INFINITY;
                for (int k = 0; k < 16; k++) best = fmin(best, fabs(t - TP_NF4_LEVELS[k]));
                ratio = (fabs(t - TP_NF4_LEVELS[code]) - best) / 1e-6;
                ratio = ratio < 0 ? 0 : ratio;
            } else {
                double step = q.kind == TP_Q_INT4 ? s : tp_f16_to_f32(q.rscale[si]);
                /* half a step, plus the fp32 roundings of the base q*s+o, of the residual w - base
                 * the int4r2 code was chosen from (it can move a tie) and of the dequantised value:
                 * each at most 2^-24 of a magnitude below |w| + |d| + 2 step */
                double tol = 0.5 * step + 0x1p-22 * (fabs(d) + fabs(w) + 2.0 * step) + 1e-30;
                ratio = fabs(d - w) / tol;
            }
            if (!(ratio <= worst)) worst = ratio; /* NaN-propagating max */
        }
    }
    tp_free(D);
    tp_qmat_free(&q);
    return worst;
}

/* Self-test damage for quant: add 8 to one code (mod 16), which moves that element by 8 steps
 * (int4, int4r2) or to a level that is not the nearest (nf4). */
static void quant_corrupt(const tp_case *c, void *out, tp_rng *rng) {
    const qctx *x = c->ctx;
    int64_t r = tp_rng_below(rng, (uint32_t)x->q.rows), col = tp_rng_below(rng, (uint32_t)x->q.cols);
    unsigned char *b = (unsigned char *)out + r * x->q.code_stride + col / 2;
    *b ^= (col & 1) ? 0x80 : 0x08;
}

/* ---- dequant / gemv / gemm ---- */
static tp_status dequant_ref(const tp_case *c, void *out) { tp_dequantize_ref(&((qctx *)c->ctx)->q, out); return TP_OK; }
static tp_status dequant_ref_run(const tp_case *c, void *s, void *out) { (void)s; return dequant_ref(c, out); }
static tp_status dequant_cpu_run(const tp_case *c, void *s, void *out) {
    (void)s;
    tp_dequantize_cpu(&((qctx *)c->ctx)->q, out);
    return TP_OK;
}
static tp_status gemv_ref(const tp_case *c, void *out) {
    const qctx *x = c->ctx;
    tp_qgemv_ref(&x->q, x->X, out);
    return TP_OK;
}
static tp_status gemv_ref_run(const tp_case *c, void *s, void *out) { (void)s; return gemv_ref(c, out); }
static tp_status gemv_cpu_run(const tp_case *c, void *s, void *out) {
    (void)s;
    const qctx *x = c->ctx;
    return tp_qgemv_cpu(&x->q, x->X, out);
}
static tp_status gemm_ref(const tp_case *c, void *out) {
    const qctx *x = c->ctx;
    return tp_qgemm_ref(&x->q, x->X, x->batch, out);
}
static tp_status gemm_ref_run(const tp_case *c, void *s, void *out) { (void)s; return gemm_ref(c, out); }
static tp_status gemm_cpu_run(const tp_case *c, void *s, void *out) {
    (void)s;
    const qctx *x = c->ctx;
    return tp_qgemm_cpu(&x->q, x->X, x->batch, out);
}

static tp_status gemv_a8_ref(const tp_case *c, void *out) {
    const qctx *x = c->ctx;
    return tp_qgemv_a8_ref(&x->q, x->X, out);
}
static tp_status gemv_a8_ref_run(const tp_case *c, void *s, void *out) { (void)s; return gemv_a8_ref(c, out); }
static tp_status gemv_a8_cpu_run(const tp_case *c, void *s, void *out) {
    (void)s;
    const qctx *x = c->ctx;
    return tp_qgemv_a8_cpu(&x->q, x->X, out);
}

static tp_status gemm_a8_ref(const tp_case *c, void *out) {
    const qctx *x = c->ctx;
    return tp_qgemm_a8_ref(&x->q, x->X, x->batch, out);
}
static tp_status gemm_a8_ref_run(const tp_case *c, void *s, void *out) { (void)s; return gemm_a8_ref(c, out); }
static tp_status gemm_a8_cpu_run(const tp_case *c, void *s, void *out) {
    (void)s;
    const qctx *x = c->ctx;
    return tp_qgemm_a8_cpu(&x->q, x->X, x->batch, out);
}

/* ---- bytes / FLOP models (napkin math: what one run must move) ---- */
#define QP(s) ((s)->d[0] * (double)(s)->d[1])
static double packed_bytes(tp_qkind k, int g, const tp_shape *s) {
    return tp_qkind_bits_per_weight(k, g, s->d[0], s->d[1]) / 8.0 * QP(s);
}
/* quant: read fp32 W, write packed */
#define BYTES_FNS(K, G)                                                                             \
    static double quant_bytes_##K##_##G(const tp_shape *s) { return 4 * QP(s) + packed_bytes(K, G, s); } \
    static double deq_bytes_##K##_##G(const tp_shape *s) { return packed_bytes(K, G, s) + 4 * QP(s); }   \
    static double gemv_bytes_##K##_##G(const tp_shape *s) {                                         \
        return packed_bytes(K, G, s) + 4.0 * (s->d[0] + s->d[1]);                                   \
    }                                                                                               \
    static double gemm_bytes_##K##_##G(const tp_shape *s) {                                         \
        return packed_bytes(K, G, s) + 4.0 * s->d[2] * (s->d[0] + s->d[1]);                         \
    }
static double items_w(const tp_shape *s) { return QP(s); }
static double gemv_flops(const tp_shape *s) { return 2 * QP(s); }
static double gemm_flops(const tp_shape *s) { return 2 * QP(s) * (double)s->d[2]; }

static const tp_shape verify_2d[] = {
    TP_SHAPE2(1, 1), TP_SHAPE2(3, 7), TP_SHAPE2(5, 33), TP_SHAPE2(17, 100), TP_SHAPE2(64, 129),
    TP_SHAPE2(31, 1000), TP_SHAPE2(256, 4096), TP_SHAPE_END};
static const tp_shape verify_3d[] = {
    TP_SHAPE3(1, 1, 1), TP_SHAPE3(3, 7, 2), TP_SHAPE3(17, 100, 3), TP_SHAPE3(33, 257, 5),
    TP_SHAPE3(64, 1000, 16), TP_SHAPE3(5, 130, 64), TP_SHAPE3(130, 2048, 17), TP_SHAPE3(77, 384, 33),
    TP_SHAPE3(200, 2176, 40), TP_SHAPE_END};
static const tp_shape bench_quant[] = {TP_SHAPE2(1024, 1024), TP_SHAPE_END};
static const tp_shape bench_2d[] = {TP_SHAPE2(4096, 4096), TP_SHAPE2(11008, 4096), TP_SHAPE_END};
static const tp_shape bench_3d[] = {TP_SHAPE3(4096, 4096, 4), TP_SHAPE3(4096, 4096, 16),
                                    TP_SHAPE3(4096, 4096, 64), TP_SHAPE_END};

/* One codec variant: four ops and their kernels. */
#define INT4_OPS(K, G, NAME)                                                                        \
    static const qparam param_##K##_##G = {K, G, 0};                                                  \
    BYTES_FNS(K, G)                                                                                 \
    static const tp_op quant_##K##_##G = {                                                          \
        .name = "quant", .variant = NAME, .out_type = TP_OUT_BYTES, .cmp = TP_CMP_PROPERTY,          \
        .param = &param_##K##_##G, .setup = qsetup, .teardown = qteardown, .reference = quant_ref,   \
        .property = quant_property, .corrupt = quant_corrupt, .bytes = quant_bytes_##K##_##G,       \
        .items = items_w, .verify_shapes = verify_2d, .bench_shapes = bench_quant};                  \
    static const tp_op dequant_##K##_##G = {                                                        \
        .name = "dequant", .variant = NAME, .out_type = TP_OUT_F32, .cmp = TP_CMP_EXACT,             \
        .param = &param_##K##_##G, .setup = qsetup, .teardown = qteardown, .reference = dequant_ref, \
        .bytes = deq_bytes_##K##_##G, .items = items_w, .verify_shapes = verify_2d,                 \
        .bench_shapes = bench_2d, .memory_bound = 1};                                               \
    static const tp_op gemv_##K##_##G = {                                                           \
        .name = "gemv", .variant = NAME, .out_type = TP_OUT_F32, .cmp = TP_CMP_REL_L2, .bound = 1e-5, \
        .param = &param_##K##_##G, .setup = qsetup, .teardown = qteardown, .reference = gemv_ref,    \
        .bytes = gemv_bytes_##K##_##G, .flops = gemv_flops, .items = items_w,                       \
        .verify_shapes = verify_2d, .bench_shapes = bench_2d, .memory_bound = 1};                   \
    static const tp_op gemm_##K##_##G = {                                                           \
        .name = "gemm", .variant = NAME, .out_type = TP_OUT_F32, .cmp = TP_CMP_REL_L2, .bound = 1e-5, \
        .param = &param_##K##_##G, .setup = qsetup, .teardown = qteardown, .reference = gemm_ref,    \
        .bytes = gemm_bytes_##K##_##G, .flops = gemm_flops, .items = items_w,                       \
        .verify_shapes = verify_3d, .bench_shapes = bench_3d};

/* W4A8 GEMV variants (int4, g a multiple of 64): int8 activations per group. */
#define INT4_A8_OPS(G, NAME)                                                                       \
    static const tp_op gemv_a8_##G = {                                                            \
        .name = "gemv", .variant = NAME, .out_type = TP_OUT_F32, .cmp = TP_CMP_REL_L2, .bound = 1e-5, \
        .param = &param_TP_Q_INT4_##G, .setup = qsetup, .teardown = qteardown,                    \
        .reference = gemv_a8_ref, .bytes = gemv_bytes_TP_Q_INT4_##G, .flops = gemv_flops,          \
        .items = items_w, .verify_shapes = verify_2d, .bench_shapes = bench_2d, .memory_bound = 1}; \
    static const tp_op gemm_a8_##G = {                                                            \
        .name = "gemm", .variant = NAME, .out_type = TP_OUT_F32, .cmp = TP_CMP_REL_L2, .bound = 1e-5, \
        .param = &param_TP_Q_INT4_##G, .setup = qsetup, .teardown = qteardown,                    \
        .reference = gemm_a8_ref, .bytes = gemm_bytes_TP_Q_INT4_##G, .flops = gemm_flops,          \
        .items = items_w, .verify_shapes = verify_3d, .bench_shapes = bench_3d};
#define INT4_A8_KERNELS(G)                                                                         \
    {.op = &gemv_a8_##G, .backend = "ref", .run = gemv_a8_ref_run},                                \
    {.op = &gemv_a8_##G, .backend = "cpu", .run = gemv_a8_cpu_run, .flags = TP_K_ISA},             \
    {.op = &gemm_a8_##G, .backend = "ref", .run = gemm_a8_ref_run},                                \
    {.op = &gemm_a8_##G, .backend = "cpu", .run = gemm_a8_cpu_run, .flags = TP_K_ISA},

/* fp16-activation variants (<codec>_f16a): the same weights, activations rounded to binary16 as
 * part of the op (the reference and the comparison are unchanged, so the bound stays 1e-5 against
 * the exact product). Inputs the GPU kernels read as fp16; benchmarked at the H100 shapes of
 * kernels/cuda/ops_cuda.c (8192x8192, 28672x8192). Only the reference and the CUDA backend
 * implement them. */
static const tp_shape verify_2d_f16a[] = {
    TP_SHAPE2(1, 1), TP_SHAPE2(17, 100), TP_SHAPE2(64, 129), TP_SHAPE2(256, 4096), TP_SHAPE2(333, 2080),
    TP_SHAPE2(1000, 4160), TP_SHAPE2(77, 2304), TP_SHAPE2(333, 2176), TP_SHAPE_END};
static const tp_shape verify_3d_f16a[] = {
    TP_SHAPE3(3, 7, 2), TP_SHAPE3(33, 257, 5), TP_SHAPE3(130, 2048, 17), TP_SHAPE3(333, 2080, 16),
    TP_SHAPE3(100, 4096, 1), TP_SHAPE3(64, 1024, 64), TP_SHAPE3(257, 4160, 40),
    TP_SHAPE3(77, 2304, 16), TP_SHAPE3(45, 1152, 9), TP_SHAPE_END};
static const tp_shape bench_2d_f16a[] = {TP_SHAPE2(8192, 8192), TP_SHAPE2(28672, 8192), TP_SHAPE_END};
static const tp_shape bench_3d_f16a[] = {TP_SHAPE3(8192, 8192, 2), TP_SHAPE3(8192, 8192, 16),
                                         TP_SHAPE3(28672, 8192, 16), TP_SHAPE3(8192, 8192, 64), TP_SHAPE_END};
static const tp_shape bench_2d_f16a_small[] = {TP_SHAPE2(8192, 8192), TP_SHAPE_END};
static const tp_shape bench_3d_f16a_small[] = {TP_SHAPE3(8192, 8192, 16), TP_SHAPE_END};
#define INT4_F16A_OPS(K, G, NAME, B2, B3)                                                          \
    static const qparam param_f16a_##K##_##G = {K, G, 1};                                           \
    static const tp_op gemv_f16a_##K##_##G = {                                                     \
        .name = "gemv", .variant = NAME, .out_type = TP_OUT_F32, .cmp = TP_CMP_REL_L2, .bound = 1e-5, \
        .param = &param_f16a_##K##_##G, .setup = qsetup, .teardown = qteardown, .reference = gemv_ref, \
        .bytes = gemv_f16a_bytes_##K##_##G, .flops = gemv_flops, .items = items_w,                  \
        .verify_shapes = verify_2d_f16a, .bench_shapes = B2, .memory_bound = 1};                    \
    static const tp_op gemm_f16a_##K##_##G = {                                                     \
        .name = "gemm", .variant = NAME, .out_type = TP_OUT_F32, .cmp = TP_CMP_REL_L2, .bound = 1e-5, \
        .param = &param_f16a_##K##_##G, .setup = qsetup, .teardown = qteardown, .reference = gemm_ref, \
        .bytes = gemm_f16a_bytes_##K##_##G, .flops = gemm_flops, .items = items_w,                  \
        .verify_shapes = verify_3d_f16a, .bench_shapes = B3};
/* bytes actually read/written with fp16 activations and fp32 outputs */
#define F16A_BYTES_FNS(K, G)                                                                        \
    static double gemv_f16a_bytes_##K##_##G(const tp_shape *s) {                                    \
        return packed_bytes(K, G, s) + 2.0 * s->d[1] + 4.0 * s->d[0];                               \
    }                                                                                               \
    static double gemm_f16a_bytes_##K##_##G(const tp_shape *s) {                                    \
        return packed_bytes(K, G, s) + s->d[2] * (2.0 * s->d[1] + 4.0 * s->d[0]);                    \
    }

#ifdef TENPAK_HAVE_CUDA
/* The CUDA backend (kernels/cuda): prepare uploads the packed matrix and the activations. */
#include "kernels/cuda/tp_cuda.h"
static void *q_cuda_prepare_any(const tp_case *c, int allow_tc) {
    const qctx *x = c->ctx;
    const qparam *p = c->op->param;
    return tp_cuda_q_prepare(&x->q, x->X, x->batch, c->op->name, p->f16a, allow_tc);
}
static void *q_cuda_prepare(const tp_case *c) { return q_cuda_prepare_any(c, 1); }
static void *q_cuda_simt_prepare(const tp_case *c) { return q_cuda_prepare_any(c, 0); }
#define CUDA_Q_KERNEL(OP, BACKEND, PREP)                                                            \
    {.op = &OP, .backend = BACKEND, .run = tp_cuda_q_run, .available = tp_cuda_available,            \
     .flags = TP_K_DEVICE, .prepare = PREP, .sync = tp_cuda_sync, .fetch = tp_cuda_q_fetch,          \
     .release = tp_cuda_q_release},
#define INT4_CUDA_KERNELS(K, G)                                                                     \
    CUDA_Q_KERNEL(dequant_##K##_##G, "cuda", q_cuda_prepare)                                        \
    CUDA_Q_KERNEL(gemv_##K##_##G, "cuda", q_cuda_prepare)                                           \
    CUDA_Q_KERNEL(gemm_##K##_##G, "cuda", q_cuda_prepare)
#define INT4_F16A_CUDA_KERNELS(K, G)                                                                \
    CUDA_Q_KERNEL(gemv_f16a_##K##_##G, "cuda", q_cuda_prepare)                                      \
    CUDA_Q_KERNEL(gemv_f16a_##K##_##G, "cuda-simt", q_cuda_simt_prepare)                            \
    CUDA_Q_KERNEL(gemm_f16a_##K##_##G, "cuda", q_cuda_prepare)                                      \
    CUDA_Q_KERNEL(gemm_f16a_##K##_##G, "cuda-simt", q_cuda_simt_prepare)
#else
#define INT4_CUDA_KERNELS(K, G)
#define INT4_F16A_CUDA_KERNELS(K, G)
#endif

/* GEMV_FLAGS: TP_K_ISA, plus TP_K_AVX512 where the codec has an AVX-512 GEMV (int4, int4r2, nf4), so verify
 * runs it at both AVX-512 levels (BW and VNNI) as well as at AVX2 and portable; the GEMM takes the same
 * flags (int4 at the top level runs on AMX where the CPU has it: tp_cpu_amx) */
#define INT4_KERNELS(K, G, GEMV_FLAGS)                                                              \
    {.op = &quant_##K##_##G, .backend = "ref", .run = quant_run},                                   \
    {.op = &dequant_##K##_##G, .backend = "ref", .run = dequant_ref_run},                            \
    {.op = &dequant_##K##_##G, .backend = "cpu", .run = dequant_cpu_run, .flags = TP_K_ISA},         \
    {.op = &gemv_##K##_##G, .backend = "ref", .run = gemv_ref_run},                                  \
    {.op = &gemv_##K##_##G, .backend = "cpu", .run = gemv_cpu_run, .flags = GEMV_FLAGS},             \
    {.op = &gemm_##K##_##G, .backend = "ref", .run = gemm_ref_run},                                  \
    {.op = &gemm_##K##_##G, .backend = "cpu", .run = gemm_cpu_run, .flags = GEMV_FLAGS},             \
    INT4_CUDA_KERNELS(K, G)
#define INT4_F16A_KERNELS(K, G)                                                                     \
    {.op = &gemv_f16a_##K##_##G, .backend = "ref", .run = gemv_ref_run},                             \
    {.op = &gemm_f16a_##K##_##G, .backend = "ref", .run = gemm_ref_run},                             \
    INT4_F16A_CUDA_KERNELS(K, G)

INT4_OPS(TP_Q_INT4, 8, "int4_g8")
INT4_OPS(TP_Q_INT4, 16, "int4_g16")
INT4_OPS(TP_Q_INT4, 32, "int4_g32")
INT4_OPS(TP_Q_INT4, 64, "int4_g64")
INT4_OPS(TP_Q_INT4, 128, "int4_g128")
INT4_OPS(TP_Q_INT4R2, 16, "int4r2_g16")
INT4_OPS(TP_Q_NF4, 64, "nf4_g64")
INT4_A8_OPS(64, "int4_g64_a8")
INT4_A8_OPS(128, "int4_g128_a8")
F16A_BYTES_FNS(TP_Q_INT4, 8)
F16A_BYTES_FNS(TP_Q_INT4, 16)
F16A_BYTES_FNS(TP_Q_INT4, 32)
F16A_BYTES_FNS(TP_Q_INT4, 64)
F16A_BYTES_FNS(TP_Q_INT4, 128)
F16A_BYTES_FNS(TP_Q_INT4R2, 16)
F16A_BYTES_FNS(TP_Q_NF4, 64)
INT4_F16A_OPS(TP_Q_INT4, 8, "int4_g8_f16a", bench_2d_f16a_small, bench_3d_f16a_small)
INT4_F16A_OPS(TP_Q_INT4, 16, "int4_g16_f16a", bench_2d_f16a_small, bench_3d_f16a_small)
INT4_F16A_OPS(TP_Q_INT4, 32, "int4_g32_f16a", bench_2d_f16a_small, bench_3d_f16a_small)
INT4_F16A_OPS(TP_Q_INT4, 64, "int4_g64_f16a", bench_2d_f16a_small, bench_3d_f16a_small)
INT4_F16A_OPS(TP_Q_INT4, 128, "int4_g128_f16a", bench_2d_f16a, bench_3d_f16a)
INT4_F16A_OPS(TP_Q_INT4R2, 16, "int4r2_g16_f16a", bench_2d_f16a_small, bench_3d_f16a_small)
INT4_F16A_OPS(TP_Q_NF4, 64, "nf4_g64_f16a", bench_2d_f16a_small, bench_3d_f16a_small)

const tp_kernel tp_kernels_int4[] = {
    INT4_KERNELS(TP_Q_INT4, 8, TP_K_ISA | TP_K_AVX512)
    INT4_KERNELS(TP_Q_INT4, 16, TP_K_ISA | TP_K_AVX512)
    INT4_KERNELS(TP_Q_INT4, 32, TP_K_ISA | TP_K_AVX512)
    INT4_KERNELS(TP_Q_INT4, 64, TP_K_ISA | TP_K_AVX512)
    INT4_KERNELS(TP_Q_INT4, 128, TP_K_ISA | TP_K_AVX512)
    INT4_KERNELS(TP_Q_INT4R2, 16, TP_K_ISA | TP_K_AVX512)
    INT4_KERNELS(TP_Q_NF4, 64, TP_K_ISA | TP_K_AVX512)
    INT4_A8_KERNELS(64)
    INT4_A8_KERNELS(128)
    INT4_F16A_KERNELS(TP_Q_INT4, 8)
    INT4_F16A_KERNELS(TP_Q_INT4, 16)
    INT4_F16A_KERNELS(TP_Q_INT4, 32)
    INT4_F16A_KERNELS(TP_Q_INT4, 64)
    INT4_F16A_KERNELS(TP_Q_INT4, 128)
    INT4_F16A_KERNELS(TP_Q_INT4R2, 16)
    INT4_F16A_KERNELS(TP_Q_NF4, 64)
    {0}};
