/* Registry family: LoRA (lora_<base>_r<r>, alpha = 2r).
 * Ops: gemv (y = W x + s B A x; relative L2), gemm = BGMV (each batch column picks one of
 * `_aN` adapters; relative L2), gemm `_sN` = SGMV (the columns in N + 2 contiguous segments, each
 * with one of N adapters, one segment empty, so some adapter repeats; relative L2), merge (fp32 base: exact; INT4 base: the re-quantised packed
 * image, exact). Bases: fp32, INT4 g128, NF4 g64 (QLoRA). Inputs: base weights as ops_int4.c,
 * A ~ N(0, 1/cols), B ~ N(0, 0.02^2), activations standard normal, adapter of each column
 * uniform. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tenpak/lora.h"
#include "tenpak/registry.h"

typedef struct lparam {
    int quant;       /* 0: fp32 base; else the tp_qkind + 1 */
    int g, r, nad;   /* group, rank, adapters */
    int sgmv;        /* gemm: segments (SGMV) instead of a per-column index (BGMV) */
} lparam;

typedef struct lctx {
    float *W, *X;
    tp_qmat q;
    tp_lora ad[8];
    int nad;
    int32_t *idx;    /* adapter of each column (SGMV: its segment's, for the conditioning check) */
    int32_t seg[16], sad[16];
    int nseg;
    int64_t batch;
    tp_lora_base base;
} lctx;

#define PAR(c) ((const lparam *)(c)->op->param)
#define CTX(c) ((const lctx *)(c)->ctx)

/* kappa = ||sum of |terms| per output|| / ||y|| (norm-wise condition of the outputs, in
 * double): about 0.64 sqrt(terms) for random data, but a case with very few outputs (1x1) can
 * cancel to a tiny y, where any fp32 summation order, the reference's included, is far from the
 * exact result in relative terms (seen: 2e-5 at 1x1). Such a case measures the data, not the
 * kernel: the activations and the adapters' B are drawn again (from the same generator, so a
 * seed still replays) until kappa <= 8 sqrt(terms). */
static int well_conditioned(lctx *x, const lparam *p, tp_rng *rng) {
    const int64_t rows = x->base.rows, cols = x->base.cols;
    float *Wd = x->W;
    if (p->quant) {
        Wd = tp_alloc((size_t)(rows * cols) * 4);
        if (!Wd) return 0;
        tp_dequantize_ref(&x->q, Wd);
    }
    const double terms = (double)cols + p->r * (1.0 + cols);
    int ok = 0;
    for (int attempt = 0; attempt < 1000; attempt++) {
        double yy = 0, aa = 0;
        for (int64_t b = 0; b < x->batch; b++) {
            const tp_lora *l = &x->ad[x->idx[b]];
            const float *xb = x->X + b * cols;
            const double s = tp_lora_scale(l);
            double t[64], ta[64];
            for (int k = 0; k < l->r; k++) {
                t[k] = ta[k] = 0;
                for (int64_t i = 0; i < cols; i++) {
                    t[k] += (double)l->A[k * cols + i] * xb[i];
                    ta[k] += fabs((double)l->A[k * cols + i] * xb[i]);
                }
            }
            for (int64_t r = 0; r < rows; r++) {
                double y = 0, a = 0;
                for (int64_t i = 0; i < cols; i++) {
                    y += (double)Wd[r * cols + i] * xb[i];
                    a += fabs((double)Wd[r * cols + i] * xb[i]);
                }
                for (int k = 0; k < l->r; k++) {
                    y += s * l->B[r * l->r + k] * t[k];
                    a += fabs(s * l->B[r * l->r + k]) * ta[k];
                }
                yy += y * y;
                aa += a * a;
            }
        }
        ok = aa <= 64.0 * terms * yy;
        if (ok) break;
        /* with one column y = x (w + s sum_k B_k A_k): x alone cannot change kappa, B can */
        for (int64_t i = 0; i < x->batch * cols; i++) x->X[i] = tp_rng_normal(rng);
        for (int a = 0; a < x->nad; a++)
            for (int64_t i = 0; i < rows * p->r; i++) x->ad[a].B[i] = tp_rng_normal(rng) * 0.02f;
    }
    if (Wd != x->W) tp_free(Wd);
    return ok;
}

static tp_status lsetup(tp_case *c, tp_rng *rng) {
    const lparam *p = PAR(c);
    int64_t rows = c->shape.d[0], cols = c->shape.d[1];
    int64_t batch = c->shape.nd > 2 ? c->shape.d[2] : 1;
    lctx *x = calloc(1, sizeof *x);
    if (!x) return TP_ERR_NOMEM;
    c->ctx = x;
    x->batch = batch;
    x->nad = p->nad;
    x->W = tp_alloc((size_t)(rows * cols) * 4);
    x->X = tp_alloc((size_t)(batch * cols) * 4);
    x->idx = calloc((size_t)batch, sizeof(int32_t));
    if (!x->W || !x->X || !x->idx) return TP_ERR_NOMEM;
    for (int64_t r = 0; r < rows; r++) {
        float rs = 0.02f * expf(0.5f * tp_rng_normal(rng));
        for (int64_t i = 0; i < cols; i++) {
            float v = tp_rng_normal(rng) * rs;
            if (tp_rng_below(rng, 256) == 0) v *= 8.0f;
            x->W[r * cols + i] = v;
        }
    }
    for (int64_t i = 0; i < batch * cols; i++) x->X[i] = tp_rng_normal(rng);
    for (int a = 0; a < p->nad; a++) {
        tp_lora *l = &x->ad[a];
        if (tp_lora_alloc(l, rows, cols, p->r, 2.0f * p->r) != TP_OK) return TP_ERR_NOMEM;
        float as = 1.0f / sqrtf((float)cols);
        for (int64_t i = 0; i < (int64_t)p->r * cols; i++) l->A[i] = tp_rng_normal(rng) * as;
        for (int64_t i = 0; i < rows * p->r; i++) l->B[i] = tp_rng_normal(rng) * 0.02f;
    }
    for (int64_t b = 0; b < batch; b++) x->idx[b] = (int32_t)tp_rng_below(rng, (uint32_t)p->nad);
    if (p->sgmv) {
        /* nad + 2 segments (so some adapter repeats), random cuts, then segment e made empty */
        const int ns = p->nad + 2;
        x->nseg = ns;
        x->seg[0] = 0;
        x->seg[ns] = (int32_t)batch;
        for (int s = 1; s < ns; s++) {
            int32_t v = (int32_t)tp_rng_below(rng, (uint32_t)batch + 1), j = s;
            for (; j > 1 && x->seg[j - 1] > v; j--) x->seg[j] = x->seg[j - 1];
            x->seg[j] = v;
        }
        const int e = (int)tp_rng_below(rng, (uint32_t)ns);
        if (e + 1 < ns) x->seg[e + 1] = x->seg[e];
        else x->seg[e] = (int32_t)batch;
        for (int s = 0; s < ns; s++) {
            x->sad[s] = (int32_t)tp_rng_below(rng, (uint32_t)p->nad);
            for (int64_t b = x->seg[s]; b < x->seg[s + 1]; b++) x->idx[b] = x->sad[s];
        }
    }
    x->base = (tp_lora_base){.W = x->W, .q = NULL, .rows = rows, .cols = cols};
    if (p->quant) {
        if (tp_qmat_alloc(&x->q, (tp_qkind)(p->quant - 1), rows, cols, p->g) != TP_OK) return TP_ERR_NOMEM;
        tp_quantize_ref(&x->q, x->W, 0);
        x->base.W = NULL;
        x->base.q = &x->q;
    }
    /* a large case has so many outputs that its norm cannot cancel: checked only where cheap */
    if (strcmp(c->op->name, "merge") && rows * cols * batch <= (1 << 22) && !well_conditioned(x, p, rng))
        return TP_ERR_INTERNAL;
    if (!strcmp(c->op->name, "merge")) {
        c->out_bytes = p->quant ? tp_qmat_bytes(&x->q) : (size_t)(rows * cols) * 4;
        c->out_count = p->quant ? c->out_bytes : (size_t)(rows * cols);
    } else {
        c->out_count = (size_t)(rows * batch);
        c->out_bytes = c->out_count * 4;
    }
    return TP_OK;
}

static void lteardown(tp_case *c) {
    lctx *x = c->ctx;
    if (!x) return;
    tp_free(x->W);
    tp_free(x->X);
    free(x->idx);
    if (x->q.codes) tp_qmat_free(&x->q);
    for (int a = 0; a < 8; a++)
        if (x->ad[a].A) tp_lora_free(&x->ad[a]);
    free(x);
}

static tp_status bgmv_ref(const tp_case *c, void *out) {
    const lctx *x = CTX(c);
    return tp_lora_bgmv_ref(&x->base, x->ad, x->nad, x->idx, x->X, x->batch, out);
}
static tp_status bgmv_ref_run(const tp_case *c, void *s, void *out) { (void)s; return bgmv_ref(c, out); }
static tp_status sgmv_ref(const tp_case *c, void *out) {
    const lctx *x = CTX(c);
    return tp_lora_sgmv_ref(&x->base, x->ad, x->nad, x->seg, x->sad, x->nseg, x->X, x->batch, out);
}
static tp_status sgmv_ref_run(const tp_case *c, void *s, void *out) { (void)s; return sgmv_ref(c, out); }
static tp_status sgmv_cpu_run(const tp_case *c, void *s, void *out) {
    (void)s;
    const lctx *x = CTX(c);
    return tp_lora_sgmv_cpu(&x->base, x->ad, x->nad, x->seg, x->sad, x->nseg, x->X, x->batch, out);
}
static tp_status bgmv_cpu_run(const tp_case *c, void *s, void *out) {
    (void)s;
    const lctx *x = CTX(c);
    if (x->batch == 1) return tp_lora_gemv_cpu(&x->base, &x->ad[x->idx[0]], x->X, out);
    return tp_lora_bgmv_cpu(&x->base, x->ad, x->nad, x->idx, x->X, x->batch, out);
}

static tp_status merge_with(const tp_case *c, void *out, int cpu) {
    const lctx *x = CTX(c);
    if (!x->base.q) {
        if (cpu) tp_lora_merge_cpu(x->W, &x->ad[0], out);
        else tp_lora_merge_ref(x->W, &x->ad[0], out);
        return TP_OK;
    }
    tp_qmat m;
    tp_status st = tp_qmat_alloc(&m, x->q.kind, x->q.rows, x->q.cols, x->q.g);
    if (st != TP_OK) return st;
    st = cpu ? tp_lora_merge_q_cpu(&x->q, &x->ad[0], &m) : tp_lora_merge_q_ref(&x->q, &x->ad[0], &m);
    if (st == TP_OK) tp_qmat_pack(&m, out);
    tp_qmat_free(&m);
    return st;
}
static tp_status merge_ref(const tp_case *c, void *out) { return merge_with(c, out, 0); }
static tp_status merge_ref_run(const tp_case *c, void *s, void *out) { (void)s; return merge_with(c, out, 0); }
static tp_status merge_cpu_run(const tp_case *c, void *s, void *out) { (void)s; return merge_with(c, out, 1); }

/* ---- napkin math: base bytes + adapter (A and B fp32) + activations ---- */
#define NW(s) ((double)(s)->d[0] * (double)(s)->d[1])
static double w_items(const tp_shape *s) { return NW(s); }
static double base_bytes(const lparam *p, const tp_shape *s) {
    return p->quant ? tp_qkind_bits_per_weight((tp_qkind)(p->quant - 1), p->g, s->d[0], s->d[1]) / 8.0 * NW(s)
                    : 4 * NW(s);
}
#define LORA_FNS(NAME)                                                                              \
    static double gbytes_##NAME(const tp_shape *s) {                                                \
        const lparam *p = &param_##NAME;                                                            \
        double b = s->nd > 2 ? (double)s->d[2] : 1;                                                 \
        return base_bytes(p, s) + 4.0 * p->r * (s->d[0] + s->d[1]) * (b < p->nad ? b : p->nad) +   \
               4.0 * b * (s->d[0] + s->d[1]);                                                       \
    }                                                                                               \
    static double gflops_##NAME(const tp_shape *s) {                                                \
        double b = s->nd > 2 ? (double)s->d[2] : 1;                                                 \
        return 2.0 * b * (NW(s) + param_##NAME.r * (double)(s->d[0] + s->d[1]));                    \
    }

static const tp_shape verify_2d[] = {
    TP_SHAPE2(1, 1), TP_SHAPE2(3, 7), TP_SHAPE2(17, 100), TP_SHAPE2(64, 129), TP_SHAPE2(31, 1000),
    TP_SHAPE2(130, 2048), TP_SHAPE_END};
static const tp_shape verify_3d[] = {
    TP_SHAPE3(1, 1, 1), TP_SHAPE3(3, 7, 2), TP_SHAPE3(17, 100, 3), TP_SHAPE3(33, 257, 5),
    TP_SHAPE3(64, 1000, 16), TP_SHAPE3(5, 130, 64), TP_SHAPE3(130, 2048, 17), TP_SHAPE_END};
/* SGMV: rows / cols off the multiples of 32 / 128 / 8, batches 1, 5, 16, 19 (two 16-column
 * passes of the CUDA kernel), one case on its word path with a partial row block */
static const tp_shape verify_sgmv[] = {
    TP_SHAPE3(1, 1, 1), TP_SHAPE3(3, 7, 5), TP_SHAPE3(17, 100, 19), TP_SHAPE3(33, 257, 5),
    TP_SHAPE3(37, 256, 1), TP_SHAPE3(64, 1000, 16), TP_SHAPE3(45, 384, 19), TP_SHAPE3(130, 2048, 19),
    TP_SHAPE_END};
static const tp_shape bench_2d[] = {TP_SHAPE2(4096, 4096),
#ifdef TENPAK_HAVE_CUDA
                                    TP_SHAPE2(8192, 8192), /* the INT4 GPU GEMV's bench shape */
#endif
                                    TP_SHAPE_END};
static const tp_shape bench_3d[] = {TP_SHAPE3(4096, 4096, 16), TP_SHAPE_END};

#define LORA_GEMV(NAME, Q, G, R, VNAME)                                                             \
    static const lparam param_##NAME = {Q, G, R, 1, 0};                                             \
    LORA_FNS(NAME)                                                                                  \
    static double mbytes_##NAME(const tp_shape *s) { return 2 * base_bytes(&param_##NAME, s); }     \
    static const tp_op gemv_##NAME = {                                                              \
        .name = "gemv", .variant = VNAME, .out_type = TP_OUT_F32, .cmp = TP_CMP_REL_L2, .bound = 1e-5, \
        .param = &param_##NAME, .setup = lsetup, .teardown = lteardown, .reference = bgmv_ref,      \
        .bytes = gbytes_##NAME, .flops = gflops_##NAME, .items = w_items, .verify_shapes = verify_2d, \
        .bench_shapes = bench_2d, .memory_bound = 1};                                               \
    static const tp_op merge_##NAME = {                                                             \
        .name = "merge", .variant = VNAME, .out_type = Q ? TP_OUT_BYTES : TP_OUT_F32,               \
        .cmp = TP_CMP_EXACT, .param = &param_##NAME, .setup = lsetup, .teardown = lteardown,       \
        .reference = merge_ref, .bytes = mbytes_##NAME, .items = w_items, .verify_shapes = verify_2d, \
        .bench_shapes = bench_2d};
#define LORA_BGMV(NAME, Q, G, R, NAD, VNAME)                                                        \
    static const lparam param_##NAME = {Q, G, R, NAD, 0};                                           \
    LORA_FNS(NAME)                                                                                  \
    static const tp_op gemm_##NAME = {                                                              \
        .name = "gemm", .variant = VNAME, .out_type = TP_OUT_F32, .cmp = TP_CMP_REL_L2, .bound = 1e-5, \
        .param = &param_##NAME, .setup = lsetup, .teardown = lteardown, .reference = bgmv_ref,      \
        .bytes = gbytes_##NAME, .flops = gflops_##NAME, .items = w_items, .verify_shapes = verify_3d, \
        .bench_shapes = bench_3d};

#define LORA_SGMV(NAME, Q, G, R, NAD, VNAME)                                                        \
    static const lparam param_##NAME = {Q, G, R, NAD, 1};                                           \
    LORA_FNS(NAME)                                                                                  \
    static const tp_op gemm_##NAME = {                                                              \
        .name = "gemm", .variant = VNAME, .out_type = TP_OUT_F32, .cmp = TP_CMP_REL_L2, .bound = 1e-5, \
        .param = &param_##NAME, .setup = lsetup, .teardown = lteardown, .reference = sgmv_ref,      \
        .bytes = gbytes_##NAME, .flops = gflops_##NAME, .items = w_items, .verify_shapes = verify_sgmv, \
        .bench_shapes = bench_3d};

#define GEMV_K(NAME)                                                                                \
    {.op = &gemv_##NAME, .backend = "ref", .run = bgmv_ref_run},                                    \
    {.op = &gemv_##NAME, .backend = "cpu", .run = bgmv_cpu_run, .flags = TP_K_ISA},                 \
    {.op = &merge_##NAME, .backend = "ref", .run = merge_ref_run},                                  \
    {.op = &merge_##NAME, .backend = "cpu", .run = merge_cpu_run, .flags = TP_K_ISA},
#define BGMV_K(NAME)                                                                                \
    {.op = &gemm_##NAME, .backend = "ref", .run = bgmv_ref_run},                                    \
    {.op = &gemm_##NAME, .backend = "cpu", .run = bgmv_cpu_run, .flags = TP_K_ISA},
#define SGMV_K(NAME)                                                                                \
    {.op = &gemm_##NAME, .backend = "ref", .run = sgmv_ref_run},                                    \
    {.op = &gemm_##NAME, .backend = "cpu", .run = sgmv_cpu_run, .flags = TP_K_ISA},

#ifdef TENPAK_HAVE_CUDA
/* The CUDA backend (kernels/cuda/lora.cu): fused base + LoRA in one launch ("cuda") and the
 * same kernels as two launches ("cuda-2k", shrink then base + expand) for comparison. */
#include "kernels/cuda/tp_cuda_fam.h"
static void *lora_cuda_prepare_any(const tp_case *c, int fused) {
    const lctx *x = CTX(c);
    return tp_cuda_lora_prepare(x->base.q, x->ad, x->nad, x->idx, x->X, x->batch, fused);
}
static void *lora_cuda_prepare(const tp_case *c) { return lora_cuda_prepare_any(c, 1); }
static void *lora_cuda2_prepare(const tp_case *c) { return lora_cuda_prepare_any(c, 0); }
/* "cuda-emu": the CUDA kernels' per-thread code run on the host in their work decomposition
 * (tp_cuda_lora_emulate), so machines without a GPU test it; only with TENPAK_CUDA_EMU=1 */
static tp_status lora_emu_run(const tp_case *c, void *s, void *out) {
    (void)s;
    const lctx *x = CTX(c);
    return tp_cuda_lora_emulate(x->base.q, x->ad, x->nad, x->idx, x->X, x->batch, out);
}
/* SGMV (lora.cu): shrink kernel per (segment, chunk), then the batched base kernel (codes
 * decoded once for up to 16 columns) with the expand in its epilogue; and its host emulation */
static void *sgmv_cuda_prepare(const tp_case *c) {
    const lctx *x = CTX(c);
    return tp_cuda_sgmv_prepare(x->base.q, x->ad, x->nad, x->seg, x->sad, x->nseg, x->X, x->batch);
}
static tp_status sgmv_emu_run(const tp_case *c, void *s, void *out) {
    (void)s;
    const lctx *x = CTX(c);
    return tp_cuda_sgmv_emulate(x->base.q, x->ad, x->nad, x->seg, x->sad, x->nseg, x->X, x->batch, out);
}
#define LORA_EMU_K(OP) {.op = &OP, .backend = "cuda-emu", .run = lora_emu_run, .available = tp_cuda_emu_available},
#define LORA_CUDA_K(OP, BACKEND, PREP)                                                               \
    {.op = &OP, .backend = BACKEND, .run = tp_cuda_lora_run, .available = tp_cuda_available,          \
     .flags = TP_K_DEVICE, .prepare = PREP, .sync = tp_cuda_sync, .fetch = tp_cuda_lora_fetch,        \
     .release = tp_cuda_lora_release},
#define LORA_CUDA_KERNELS                                                                            \
    LORA_EMU_K(gemv_i4_r16) LORA_EMU_K(gemv_nf4_r16) LORA_EMU_K(gemm_b_i4_a4) LORA_EMU_K(gemm_b_nf4_a4) \
    LORA_CUDA_K(gemv_i4_r8, "cuda", lora_cuda_prepare)                                               \
    LORA_CUDA_K(gemv_i4_r16, "cuda", lora_cuda_prepare)                                              \
    LORA_CUDA_K(gemv_i4_r16, "cuda-2k", lora_cuda2_prepare)                                          \
    LORA_CUDA_K(gemv_i4_r32, "cuda", lora_cuda_prepare)                                              \
    LORA_CUDA_K(gemv_i4_r64, "cuda", lora_cuda_prepare)                                              \
    LORA_CUDA_K(gemv_nf4_r16, "cuda", lora_cuda_prepare)                                             \
    LORA_CUDA_K(gemm_b_i4_a1, "cuda", lora_cuda_prepare)                                             \
    LORA_CUDA_K(gemm_b_i4_a4, "cuda", lora_cuda_prepare)                                             \
    LORA_CUDA_K(gemm_b_i4_a4, "cuda-2k", lora_cuda2_prepare)                                         \
    LORA_CUDA_K(gemm_b_nf4_a4, "cuda", lora_cuda_prepare)                                            \
    {.op = &gemm_s_i4_s4, .backend = "cuda-emu", .run = sgmv_emu_run, .available = tp_cuda_emu_available}, \
    LORA_CUDA_K(gemm_s_i4_s4, "cuda", sgmv_cuda_prepare)
#else
#define LORA_CUDA_KERNELS
#endif

#define QI4 (TP_Q_INT4 + 1)
#define QNF4 (TP_Q_NF4 + 1)
LORA_GEMV(f32_r16, 0, 0, 16, "lora_f32_r16")
LORA_GEMV(i4_r8, QI4, 128, 8, "lora_int4_g128_r8")
LORA_GEMV(i4_r16, QI4, 128, 16, "lora_int4_g128_r16")
LORA_GEMV(i4_r32, QI4, 128, 32, "lora_int4_g128_r32")
LORA_GEMV(i4_r64, QI4, 128, 64, "lora_int4_g128_r64")
LORA_GEMV(nf4_r16, QNF4, 64, 16, "lora_nf4_g64_r16")
LORA_BGMV(b_f32_a3, 0, 0, 16, 3, "lora_f32_r16_a3")
LORA_BGMV(b_i4_a1, QI4, 128, 16, 1, "lora_int4_g128_r16_a1")
LORA_BGMV(b_i4_a4, QI4, 128, 16, 4, "lora_int4_g128_r16_a4")
LORA_BGMV(b_nf4_a4, QNF4, 64, 8, 4, "lora_nf4_g64_r8_a4")
LORA_SGMV(s_i4_s4, QI4, 128, 16, 4, "lora_int4_g128_r16_s4")

const tp_kernel tp_kernels_lora[] = {
    GEMV_K(f32_r16)
    GEMV_K(i4_r8)
    GEMV_K(i4_r16)
    GEMV_K(i4_r32)
    GEMV_K(i4_r64)
    GEMV_K(nf4_r16)
    BGMV_K(b_f32_a3)
    BGMV_K(b_i4_a1)
    BGMV_K(b_i4_a4)
    BGMV_K(b_nf4_a4)
    SGMV_K(s_i4_s4)
    LORA_CUDA_KERNELS
    {0}};
