/* Registry family: vector quantisation (vq_dDkK) and vq + INT4 residual (vqr_dDkK_gG).
 * Ops: kmeans (train + encode, the packed byte image; cpu bit-identical to the reference),
 * encode (codes, exact), decode (exact), gemv (the lookup-GEMV, relative L2); for vqr: fit,
 * decode, gemv. vq_d3k7 is the awkward variant (d and K not SIMD-friendly) for verify only.
 * Inputs: weights with log-normal row scales and rare outliers (as ops_int4.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tenpak/registry.h"
#include "tenpak/vq.h"

typedef struct vparam {
    int d, K;
    int g;         /* > 0: vq + INT4 residual of group g */
    int refine;    /* residual refinement iterations */
    int importance;
    int iters;     /* Lloyd iterations of the kmeans / fit ops (0: default) */
} vparam;

typedef struct vctx {
    float *W, *X;
    tp_vqr m; /* m.vq always; m.res when g > 0 */
} vctx;

#define PAR(c) ((const vparam *)(c)->op->param)
#define CTX(c) ((vctx *)(c)->ctx)

static tp_kmeans_opts fit_opts(const tp_case *c) {
    tp_kmeans_opts o = {.seed = c->seed, .max_iters = PAR(c)->iters, .importance = PAR(c)->importance};
    return o;
}

static tp_status vsetup(tp_case *c, tp_rng *rng) {
    const vparam *p = PAR(c);
    int64_t rows = c->shape.d[0], cols = c->shape.d[1];
    vctx *x = calloc(1, sizeof *x);
    if (!x) return TP_ERR_NOMEM;
    c->ctx = x;
    x->W = tp_alloc((size_t)(rows * cols) * 4);
    x->X = tp_alloc((size_t)cols * 4);
    if (!x->W || !x->X) return TP_ERR_NOMEM;
    for (int64_t r = 0; r < rows; r++) {
        float rs = 0.02f * expf(0.5f * tp_rng_normal(rng));
        for (int64_t i = 0; i < cols; i++) {
            float v = tp_rng_normal(rng) * rs;
            if (tp_rng_below(rng, 256) == 0) v *= 8.0f;
            x->W[r * cols + i] = v;
        }
    }
    for (int64_t i = 0; i < cols; i++) x->X[i] = tp_rng_normal(rng);
    tp_status st = p->g > 0 ? tp_vqr_alloc(&x->m, rows, cols, p->d, p->K, p->g)
                            : tp_vq_alloc(&x->m.vq, rows, cols, p->d, p->K);
    if (st != TP_OK) return st;
    const char *op = c->op->name;
    if (strcmp(op, "kmeans") && strcmp(op, "fit")) {
        /* inputs, not under test: made at the best ISA whatever level the driver left set */
        tp_isa saved = tp_cpu_isa();
        tp_cpu_set_isa(tp_cpu_best_isa());
        /* centroids drawn from W's own vectors (plus a little noise), the codes by nearest
         * centroid, for vqr the INT4 residual by tp_vqr_fit's own stage: k-means++ and Lloyd
         * iterations here took most of the suite's time (K 4096: seconds per case), and a
         * trained codebook's quality does not matter to encode / decode / gemv */
        tp_vqmat *m = &x->m.vq;
        float *V = tp_alloc((size_t)(rows * m->nvec * p->d) * sizeof(float));
        if (!V) {
            tp_cpu_set_isa(saved);
            return TP_ERR_NOMEM;
        }
        tp_vq_vectors(x->W, rows, cols, p->d, V);
        for (int k = 0; k < p->K; k++) {
            const float *v = V + (size_t)tp_rng_below(rng, (uint32_t)(rows * m->nvec)) * p->d;
            for (int j = 0; j < p->d; j++) m->codebook[(size_t)k * p->d + j] = v[j] + 0.002f * tp_rng_normal(rng);
        }
        tp_free(V);
        st = tp_vq_encode_cpu(m, x->W);
        if (st == TP_OK && p->g > 0) st = tp_vqr_residual(&x->m, x->W, p->refine);
        /* the GEMV's column-major copy of the codes, made once as a loader would (not timed) */
        if (st == TP_OK && !strcmp(op, "gemv")) st = tp_vq_prepare(m);
        tp_cpu_set_isa(saved);
        if (st != TP_OK) return st;
    }
    if (!strcmp(op, "kmeans") || !strcmp(op, "fit")) {
        c->out_bytes = p->g > 0 ? tp_vqr_bytes(&x->m) : tp_vq_bytes(&x->m.vq);
        c->out_count = c->out_bytes;
    } else if (!strcmp(op, "encode")) {
        c->out_count = (size_t)(rows * x->m.vq.nvec) * (p->K <= 256 ? 1 : 2);
        c->out_bytes = c->out_count;
    } else if (!strcmp(op, "decode")) {
        c->out_count = (size_t)(rows * cols);
        c->out_bytes = c->out_count * 4;
    } else {
        c->out_count = (size_t)rows;
        c->out_bytes = c->out_count * 4;
    }
    return TP_OK;
}

static void vteardown(tp_case *c) {
    vctx *x = c->ctx;
    if (!x) return;
    tp_free(x->W);
    tp_free(x->X);
    tp_vqr_free(&x->m);
    free(x);
}

/* ---- kmeans (vq) / fit (vqr): the packed image of a fresh fit ---- */
static tp_status fit_with(const tp_case *c, void *out, int cpu) {
    const vparam *p = PAR(c);
    const vctx *x = CTX(c);
    int64_t rows = c->shape.d[0], cols = c->shape.d[1];
    tp_kmeans_opts o = fit_opts(c);
    tp_vqr m;
    tp_status st = p->g > 0 ? tp_vqr_alloc(&m, rows, cols, p->d, p->K, p->g) : tp_vq_alloc(&m.vq, rows, cols, p->d, p->K);
    if (st != TP_OK) return st;
    if (p->g == 0) memset(&m.res, 0, sizeof m.res);
    if (cpu) {
        st = p->g > 0 ? tp_vqr_fit(&m, x->W, &o, p->refine) : tp_vq_fit(&m.vq, x->W, &o, NULL);
    } else {
        /* the reference path, step by step */
        int64_t n = rows * m.vq.nvec;
        float *V = malloc((size_t)(n * p->d) * 4), *imp = p->importance ? malloc((size_t)n * 4) : NULL;
        st = V && (!p->importance || imp) ? TP_OK : TP_ERR_NOMEM;
        if (st == TP_OK) {
            tp_vq_vectors(x->W, rows, cols, p->d, V);
            if (imp) tp_vq_importance(x->W, rows, cols, p->d, imp);
            st = tp_kmeans_ref(V, n, p->d, p->K, imp, &o, m.vq.codebook, NULL);
        }
        free(V);
        free(imp);
        if (st == TP_OK) st = tp_vq_encode_ref(&m.vq, x->W);
        if (st == TP_OK && p->g > 0) {
            float *R = malloc((size_t)(rows * cols) * 4);
            if (R) {
                tp_vq_decode_ref(&m.vq, R);
                for (int64_t i = 0; i < rows * cols; i++) R[i] = x->W[i] - R[i];
                tp_quantize_ref(&m.res, R, p->refine);
                free(R);
            } else
                st = TP_ERR_NOMEM;
        }
    }
    if (st == TP_OK) {
        tp_vq_pack(&m.vq, out);
        if (p->g > 0) tp_qmat_pack(&m.res, (unsigned char *)out + tp_vq_bytes(&m.vq));
    }
    tp_vqr_free(&m);
    return st;

}
static tp_status fit_ref(const tp_case *c, void *out) { return fit_with(c, out, 0); }
static tp_status fit_ref_run(const tp_case *c, void *s, void *out) { (void)s; return fit_with(c, out, 0); }
static tp_status fit_cpu_run(const tp_case *c, void *s, void *out) { (void)s; return fit_with(c, out, 1); }

/* ---- encode: the codes array ---- */
static tp_status encode_with(const tp_case *c, void *out, int cpu) {
    const vctx *x = CTX(c);
    tp_vqmat m;
    tp_status st = tp_vq_alloc(&m, x->m.vq.rows, x->m.vq.cols, x->m.vq.d, x->m.vq.K);
    if (st != TP_OK) return st;
    memcpy(m.codebook, x->m.vq.codebook, (size_t)m.K * m.d * 4);
    st = cpu ? tp_vq_encode_cpu(&m, x->W) : tp_vq_encode_ref(&m, x->W);
    if (st == TP_OK) memcpy(out, m.codes8 ? (void *)m.codes8 : (void *)m.codes16, c->out_bytes);
    tp_vq_free(&m);
    return st;
}
static tp_status encode_ref(const tp_case *c, void *out) { return encode_with(c, out, 0); }
static tp_status encode_ref_run(const tp_case *c, void *s, void *out) { (void)s; return encode_with(c, out, 0); }
static tp_status encode_cpu_run(const tp_case *c, void *s, void *out) { (void)s; return encode_with(c, out, 1); }

/* ---- decode / gemv ---- */
static tp_status decode_ref(const tp_case *c, void *out) {
    if (PAR(c)->g > 0) return tp_vqr_decode_ref(&CTX(c)->m, out);
    tp_vq_decode_ref(&CTX(c)->m.vq, out);
    return TP_OK;
}
static tp_status decode_ref_run(const tp_case *c, void *s, void *out) { (void)s; return decode_ref(c, out); }
static tp_status decode_cpu_run(const tp_case *c, void *s, void *out) {
    (void)s;
    if (PAR(c)->g > 0) return tp_vqr_decode_cpu(&CTX(c)->m, out);
    tp_vq_decode_cpu(&CTX(c)->m.vq, out);
    return TP_OK;
}
static tp_status gemv_ref(const tp_case *c, void *out) {
    if (PAR(c)->g > 0) return tp_vqr_gemv_ref(&CTX(c)->m, CTX(c)->X, out);
    tp_vq_gemv_ref(&CTX(c)->m.vq, CTX(c)->X, out);
    return TP_OK;
}
static tp_status gemv_ref_run(const tp_case *c, void *s, void *out) { (void)s; return gemv_ref(c, out); }
static tp_status gemv_cpu_run(const tp_case *c, void *s, void *out) {
    (void)s;
    if (PAR(c)->g > 0) return tp_vqr_gemv_cpu(&CTX(c)->m, CTX(c)->X, out);
    return tp_vq_gemv_cpu(&CTX(c)->m.vq, CTX(c)->X, out);
}

/* the gather lookup (AVX-512 / AVX2 gathers; plain VQ only): kept for side-by-side timing */
static tp_status gemv_gather_run(const tp_case *c, void *s, void *out) {
    (void)s;
    return tp_vq_gemv_cpu_gather(&CTX(c)->m.vq, CTX(c)->X, out);
}

/* the scalar lookup over the row-major codes, ignoring the prepared copy: kept for side-by-side
 * timing of what the column-major layout buys */
static tp_status gemv_rowmajor_run(const tp_case *c, void *s, void *out) {
    (void)s;
    return tp_vq_gemv_cpu_rowmajor(&CTX(c)->m.vq, CTX(c)->X, out);
}

/* ---- napkin math ---- */
#define NW(s) ((double)(s)->d[0] * (double)(s)->d[1])
static double w_items(const tp_shape *s) { return NW(s); }
static double gemv_flops(const tp_shape *s) { return 2 * NW(s); }

static const tp_shape verify_fit[] = {TP_SHAPE2(1, 1), TP_SHAPE2(3, 7), TP_SHAPE2(17, 100),
                                      TP_SHAPE2(64, 129), TP_SHAPE_END};
static const tp_shape verify_fit_small[] = {TP_SHAPE2(1, 1), TP_SHAPE2(3, 7), TP_SHAPE2(17, 100), TP_SHAPE_END};
/* encode / decode: cpu only */
static const tp_shape verify_2d_cpu[] = {
    TP_SHAPE2(1, 1), TP_SHAPE2(3, 7), TP_SHAPE2(5, 33), TP_SHAPE2(17, 100), TP_SHAPE2(64, 129),
    TP_SHAPE2(31, 1000), TP_SHAPE2(9, 2050), TP_SHAPE_END};
static const tp_shape verify_2d[] = {
    TP_SHAPE2(1, 1), TP_SHAPE2(3, 7), TP_SHAPE2(5, 33), TP_SHAPE2(17, 100), TP_SHAPE2(64, 129),
    TP_SHAPE2(31, 1000), TP_SHAPE2(9, 2050),
#ifdef TENPAK_HAVE_CUDA
    TP_SHAPE2(33, 4096), TP_SHAPE2(1100, 1024), /* the GPU kernel's fast path (nvec % 64 == 0), row blocks */
#endif
    TP_SHAPE_END};
static const tp_shape verify_enc_bigk[] = {TP_SHAPE2(1, 1), TP_SHAPE2(3, 7), TP_SHAPE2(17, 100),
                                           TP_SHAPE2(2, 2050), TP_SHAPE_END};
static const tp_shape bench_fit[] = {TP_SHAPE2(4096, 4096), TP_SHAPE_END};
static const tp_shape bench_fit_small[] = {TP_SHAPE2(1024, 1024), TP_SHAPE_END};
static const tp_shape bench_2d[] = {TP_SHAPE2(4096, 4096), TP_SHAPE_END};
/* K256 variants: with the CUDA backend also the GPU GEMV's bench shape (8192x8192) */
static const tp_shape bench_2d_k256[] = {TP_SHAPE2(4096, 4096),
#ifdef TENPAK_HAVE_CUDA
                                         TP_SHAPE2(8192, 8192),
#endif
                                         TP_SHAPE_END};

#define VQ_FIT(NAME, D, K, G, REF, IMP, IT, OPNAME, VNAME, VFIT, BFIT)                              \
    static const vparam param_##NAME = {D, K, G, REF, IMP, IT};                                      \
    static double packed_##NAME(const tp_shape *s) {                                                 \
        return (double)(G > 0 ? tp_vqr_bytes_for(s->d[0], s->d[1], D, K, G) : tp_vq_bytes_for(s->d[0], s->d[1], D, K)); \
    }                                                                                                \
    static double fbytes_##NAME(const tp_shape *s) { return 4 * NW(s) + packed_##NAME(s); }           \
    static const tp_op fit_##NAME = {                                                                \
        .name = OPNAME, .variant = VNAME, .out_type = TP_OUT_BYTES,                                  \
        .cmp = TP_CMP_EXACT, .param = &param_##NAME, .setup = vsetup, .teardown = vteardown,         \
        .reference = fit_ref, .bytes = fbytes_##NAME, .items = w_items, .verify_shapes = VFIT,      \
        .bench_shapes = BFIT};
#define VQ_MAT(NAME, VNAME, BMAT, VENC)                                                                    \
    static double gbytes_##NAME(const tp_shape *s) { return packed_##NAME(s) + 4.0 * (s->d[0] + s->d[1]); } \
    static const tp_op encode_##NAME = {                                                             \
        .name = "encode", .variant = VNAME, .out_type = TP_OUT_BYTES, .cmp = TP_CMP_EXACT,           \
        .param = &param_##NAME, .setup = vsetup, .teardown = vteardown, .reference = encode_ref,     \
        .bytes = fbytes_##NAME, .items = w_items, .verify_shapes = VENC, .bench_shapes = BMAT}; \
    static const tp_op decode_##NAME = {                                                             \
        .name = "decode", .variant = VNAME, .out_type = TP_OUT_F32, .cmp = TP_CMP_EXACT,             \
        .param = &param_##NAME, .setup = vsetup, .teardown = vteardown, .reference = decode_ref,     \
        .bytes = fbytes_##NAME, .items = w_items, .verify_shapes = verify_2d_cpu, .bench_shapes = BMAT, \
        .memory_bound = 1};                                                                          \
    static const tp_op gemv_##NAME = {                                                               \
        .name = "gemv", .variant = VNAME, .out_type = TP_OUT_F32, .cmp = TP_CMP_REL_L2, .bound = 1e-5, \
        .param = &param_##NAME, .setup = vsetup, .teardown = vteardown, .reference = gemv_ref,       \
        .bytes = gbytes_##NAME, .flops = gemv_flops, .items = w_items, .verify_shapes = verify_2d,  \
        .bench_shapes = BMAT};

#define FIT_KERNELS(NAME)                                                                            \
    {.op = &fit_##NAME, .backend = "ref", .run = fit_ref_run},                                       \
    {.op = &fit_##NAME, .backend = "cpu", .run = fit_cpu_run, .flags = TP_K_ISA},
#define VQ_KERNELS(NAME)                                                                             \
    FIT_KERNELS(NAME)                                                                                \
    {.op = &encode_##NAME, .backend = "ref", .run = encode_ref_run},                                 \
    {.op = &encode_##NAME, .backend = "cpu", .run = encode_cpu_run, .flags = TP_K_ISA},              \
    {.op = &decode_##NAME, .backend = "ref", .run = decode_ref_run},                                 \
    {.op = &decode_##NAME, .backend = "cpu", .run = decode_cpu_run},                                 \
    {.op = &gemv_##NAME, .backend = "ref", .run = gemv_ref_run},                                     \
    {.op = &gemv_##NAME, .backend = "cpu", .run = gemv_cpu_run, .flags = TP_K_ISA | TP_K_AVX512},

VQ_FIT(d4k256, 4, 256, 0, 0, 0, 0, "kmeans", "vq_d4k256", verify_fit, bench_fit)
VQ_MAT(d4k256, "vq_d4k256", bench_2d_k256, verify_2d_cpu)
VQ_FIT(d8k256, 8, 256, 0, 0, 0, 0, "kmeans", "vq_d8k256", verify_fit, bench_fit)
VQ_MAT(d8k256, "vq_d8k256", bench_2d_k256, verify_2d_cpu)
VQ_FIT(d4k256i, 4, 256, 0, 0, 1, 0, "kmeans", "vq_d4k256_imp", verify_fit, bench_fit_small)
VQ_FIT(d4k4096, 4, 4096, 0, 0, 0, 0, "kmeans", "vq_d4k4096", verify_fit_small, NULL)
VQ_MAT(d4k4096, "vq_d4k4096", bench_2d, verify_enc_bigk)
VQ_FIT(d8k4096, 8, 4096, 0, 0, 0, 0, "kmeans", "vq_d8k4096", verify_fit_small, NULL)
VQ_MAT(d8k4096, "vq_d8k4096", bench_2d, verify_enc_bigk)
VQ_FIT(d3k7, 3, 7, 0, 0, 0, 0, "kmeans", "vq_d3k7", verify_2d_cpu, NULL)
VQ_MAT(d3k7, "vq_d3k7", NULL, verify_2d_cpu)
VQ_FIT(v1, 8, 256, 32, 0, 0, 0, "fit", "vqr_d8k256_g32", verify_fit, bench_fit_small)
VQ_MAT(v1, "vqr_d8k256_g32", bench_2d, verify_2d_cpu)
VQ_FIT(v2, 4, 256, 16, 4, 0, 0, "fit", "vqr_d4k256_g16", verify_fit, bench_fit_small)
VQ_MAT(v2, "vqr_d4k256_g16", bench_2d, verify_2d_cpu)

#ifdef TENPAK_HAVE_CUDA
/* The CUDA backend (kernels/cuda/vq.cu): lookup-GEMV for K <= 256 (codebook-table trick) and
 * K <= 4096 (direct gather from a shared-memory codebook); "cuda-emu" runs its
 * per-thread code on the host (TENPAK_CUDA_EMU=1). */
#include "kernels/cuda/tp_cuda_fam.h"
static void *vq_cuda_prepare(const tp_case *c) { return tp_cuda_vq_prepare(&CTX(c)->m.vq, CTX(c)->X); }
static tp_status vq_emu_run(const tp_case *c, void *s, void *out) {
    (void)s;
    return tp_cuda_vq_emulate(&CTX(c)->m.vq, CTX(c)->X, out);
}
#define VQ_CUDA_K(NAME)                                                                              \
    {.op = &gemv_##NAME, .backend = "cuda", .run = tp_cuda_vq_run, .available = tp_cuda_available,    \
     .flags = TP_K_DEVICE, .prepare = vq_cuda_prepare, .sync = tp_cuda_sync, .fetch = tp_cuda_vq_fetch, \
     .release = tp_cuda_vq_release},                                                                 \
    {.op = &gemv_##NAME, .backend = "cuda-emu", .run = vq_emu_run, .available = tp_cuda_emu_available},
#define VQ_CUDA_KERNELS VQ_CUDA_K(d4k256) VQ_CUDA_K(d8k256) VQ_CUDA_K(d3k7) VQ_CUDA_K(d4k4096) VQ_CUDA_K(d8k4096)
#else
#define VQ_CUDA_KERNELS
#endif

#define GATHER_KERNEL(NAME) \
    {.op = &gemv_##NAME, .backend = "cpu-gather", .run = gemv_gather_run, .flags = TP_K_ISA | TP_K_AVX512}, \
    {.op = &gemv_##NAME, .backend = "cpu-rowmajor", .run = gemv_rowmajor_run, .flags = TP_K_ISA},

const tp_kernel tp_kernels_vq[] = {
    VQ_KERNELS(d4k256)
    GATHER_KERNEL(d4k256)
    VQ_KERNELS(d8k256)
    GATHER_KERNEL(d8k256)
    FIT_KERNELS(d4k256i)
    VQ_KERNELS(d4k4096)
    GATHER_KERNEL(d4k4096)
    VQ_KERNELS(d8k4096)
    VQ_KERNELS(d3k7)
    GATHER_KERNEL(d3k7)
    VQ_KERNELS(v1)
    VQ_KERNELS(v2)
    VQ_CUDA_KERNELS
    {0}};
