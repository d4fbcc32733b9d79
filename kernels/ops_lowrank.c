/* Registry family: low rank (lowrank_rK, lowrank_rK_imp) and tenpakx (tenpakx_r32_d4k256_g32).
 * Ops: fit (reference only: LAPACK's SVD; checked by its property: the Frobenius error is the
 * Eckart-Young optimum of a double-precision SVD, up to the fp16 rounding of the factors),
 * product (exact), gemv (relative L2); tenpakx: fit (property: every element within half an INT4
 * step of the original, the last stage's guarantee), decode (exact), gemv (relative L2). */
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tenpak/lowrank.h"
#include "tenpak/registry.h"

typedef struct lrparam {
    int rank;
    int importance;
    int tenpakx;
} lrparam;

typedef struct lrctx {
    float *W, *X, *imp;
    tp_lowrank lr;
    tp_tenpakx tx;
    uint16_t *f16; /* gemv: the factors' binary16 image (tp_lowrank_pack), for the cpu-f16 backend */
} lrctx;

#define PAR(c) ((const lrparam *)(c)->op->param)
#define CTX(c) ((const lrctx *)(c)->ctx)

static const tp_tenpakx_cfg TX_CFG = {32, 4, 256, 32, 0, 0};

/* kappa = ||sum of |terms| per output|| / ||y|| in double (about 0.64 sqrt(terms) for random
 * data): a case is kept if kappa <= 8 sqrt(terms) */
static int lowrank_conditioned(const tp_lowrank *m, const float *x) {
    double yy = 0, aa = 0, t[64], ta[64];
    if (m->rank > 64) return 1;
    for (int k = 0; k < m->rank; k++) {
        t[k] = ta[k] = 0;
        for (int64_t c = 0; c < m->cols; c++) {
            t[k] += (double)m->R[k * m->cols + c] * x[c];
            ta[k] += fabs((double)m->R[k * m->cols + c] * x[c]);
        }
    }
    for (int64_t i = 0; i < m->rows; i++) {
        double y = 0, a = 0;
        for (int k = 0; k < m->rank; k++) {
            y += (double)m->L[i * m->rank + k] * t[k];
            a += fabs((double)m->L[i * m->rank + k]) * ta[k];
        }
        yy += y * y;
        aa += a * a;
    }
    return aa <= 64.0 * (double)m->rank * (m->cols + 1.0) * yy;
}

static tp_status lrsetup(tp_case *c, tp_rng *rng) {
    const lrparam *p = PAR(c);
    int64_t rows = c->shape.d[0], cols = c->shape.d[1];
    lrctx *x = calloc(1, sizeof *x);
    if (!x) return TP_ERR_NOMEM;
    c->ctx = x;
    x->W = tp_alloc((size_t)(rows * cols) * 4);
    x->X = tp_alloc((size_t)cols * 4);
    x->imp = tp_alloc((size_t)cols * 4);
    if (!x->W || !x->X || !x->imp) return TP_ERR_NOMEM;
    /* trained weights have a decaying spectrum: a low-rank part plus noise */
    for (int64_t r = 0; r < rows; r++) {
        float rs = 0.02f * expf(0.5f * tp_rng_normal(rng));
        for (int64_t i = 0; i < cols; i++) x->W[r * cols + i] = tp_rng_normal(rng) * rs;
    }
    {
        float u[8], *v = malloc((size_t)cols * 8 * sizeof(float));
        if (!v) return TP_ERR_NOMEM;
        for (int64_t i = 0; i < cols * 8; i++) v[i] = tp_rng_normal(rng) * 0.02f;
        for (int64_t r = 0; r < rows; r++) {
            for (int k = 0; k < 8; k++) u[k] = tp_rng_normal(rng) / (1.0f + k);
            for (int64_t i = 0; i < cols; i++)
                for (int k = 0; k < 8; k++) x->W[r * cols + i] += u[k] * v[k * cols + i];
        }
        free(v);
    }
    for (int64_t i = 0; i < cols; i++) x->X[i] = tp_rng_normal(rng);
    if (tp_col_importance(x->W, rows, cols, x->imp) != TP_OK) return TP_ERR_NOMEM;
    const char *op = c->op->name;
    tp_err e;
    if (p->tenpakx) {
        if (tp_tenpakx_alloc(&x->tx, rows, cols, &TX_CFG) != TP_OK) return TP_ERR_NOMEM;
        if (strcmp(op, "fit")) {
            tp_isa saved = tp_cpu_isa();
            tp_cpu_set_isa(tp_cpu_best_isa());
            tp_status st = TP_OK;
            if (rows * cols <= (1 << 20)) st = tp_tenpakx_fit(&x->tx, x->W, &TX_CFG, &e);
            else {
                /* bench sizes: random fp16 factors (a 4096^2 SVD would dominate the run), real VQ
                 * and INT4 stages */
                for (int64_t i = 0; i < rows * x->tx.lr.rank; i++) x->tx.lr.L[i] = tp_f16_to_f32(tp_f32_to_f16(tp_rng_normal(rng) * 0.01f));
                for (int64_t i = 0; i < cols * x->tx.lr.rank; i++) x->tx.lr.R[i] = tp_f16_to_f32(tp_f32_to_f16(tp_rng_normal(rng) * 0.01f));
                tp_kmeans_opts o = {.seed = c->seed, .max_iters = 3, .max_train = 65536};
                st = tp_vq_fit(&x->tx.vq, x->W, &o, NULL);
                float *D = tp_alloc((size_t)(rows * cols) * 4);
                if (!D) return TP_ERR_NOMEM;
                tp_vq_decode_cpu(&x->tx.vq, D);
                for (int64_t i = 0; i < rows * cols; i++) D[i] = x->W[i] - D[i];
                tp_quantize_ref(&x->tx.res, D, 0);
                tp_free(D);
            }
            /* the GEMV's column-major copy of the VQ codes (tp_vq_prepare), made once */
            if (st == TP_OK && !strcmp(op, "gemv")) st = tp_vq_prepare(&x->tx.vq);
            tp_cpu_set_isa(saved);
            if (st != TP_OK) return st;
        }
    } else {
        if (tp_lowrank_alloc(&x->lr, rows, cols, p->rank) != TP_OK) return TP_ERR_NOMEM;
        /* a GEMV with few outputs (1x1: y = x sum_k L_k R_k) can cancel to a tiny y, where any
         * fp32 order is far from the exact sum in relative terms (seen: 9e-5 at 1x1): the
         * factors are drawn again until the norm-wise condition is <= 8 sqrt(terms) (see
         * lowrank_conditioned; same generator, so a seed still replays) */
        int tries = 0;
        do {
            for (int64_t i = 0; i < rows * p->rank; i++) x->lr.L[i] = tp_f16_to_f32(tp_f32_to_f16(tp_rng_normal(rng) * 0.1f));
            for (int64_t i = 0; i < cols * p->rank; i++) x->lr.R[i] = tp_f16_to_f32(tp_f32_to_f16(tp_rng_normal(rng) * 0.1f));
        } while (!strcmp(op, "gemv") && rows * cols <= (1 << 20) && !lowrank_conditioned(&x->lr, x->X) && ++tries < 1000);
        if (tries == 1000) return TP_ERR_INTERNAL;
        if (!strcmp(op, "gemv")) {
            if (!(x->f16 = tp_alloc(tp_lowrank_bytes(&x->lr)))) return TP_ERR_NOMEM;
            tp_lowrank_pack(&x->lr, x->f16);
        }
    }
    if (!strcmp(op, "fit")) {
        c->out_bytes = p->tenpakx ? tp_tenpakx_bytes(&x->tx) : tp_lowrank_bytes(&x->lr);
        c->out_count = c->out_bytes;
    } else if (!strcmp(op, "gemv")) {
        c->out_count = (size_t)rows;
        c->out_bytes = c->out_count * 4;
    } else {
        c->out_count = (size_t)(rows * cols);
        c->out_bytes = c->out_count * 4;
    }
    return TP_OK;
}

static void lrteardown(tp_case *c) {
    lrctx *x = c->ctx;
    if (!x) return;
    tp_free(x->W);
    tp_free(x->X);
    tp_free(x->imp);
    tp_lowrank_free(&x->lr);
    tp_tenpakx_free(&x->tx);
    tp_free(x->f16);
    free(x);
}

/* ---- low rank fit: reference only, property-checked ---- */
static tp_status lrfit_ref(const tp_case *c, void *out) {
    const lrctx *x = CTX(c);
    tp_lowrank m;
    tp_err e;
    tp_status st = tp_lowrank_alloc(&m, x->lr.rows, x->lr.cols, x->lr.rank);
    if (st != TP_OK) return st;
    if ((st = tp_lowrank_fit(&m, x->W, PAR(c)->importance ? x->imp : NULL, &e)) == TP_OK) tp_lowrank_pack(&m, out);
    tp_lowrank_free(&m);
    return st;
}
static tp_status lrfit_run(const tp_case *c, void *s, void *out) { (void)s; return lrfit_ref(c, out); }

/* error / (optimal error from a double SVD + the fp16 rounding allowance), weighted */
static double lrfit_property(const tp_case *c, const void *out) {
    const lrctx *x = CTX(c);
    const int64_t rows = x->lr.rows, cols = x->lr.cols, mn = rows < cols ? rows : cols;
    const int imp = PAR(c)->importance;
    tp_lowrank m;
    if (tp_lowrank_alloc(&m, rows, cols, x->lr.rank) != TP_OK) return INFINITY;
    tp_lowrank_unpack(&m, out);
    float *P = malloc((size_t)(rows * cols) * 4);
    double *A = malloc((size_t)(rows * cols) * 8), *S = malloc((size_t)mn * 8);
    double worst = INFINITY;
    if (!P || !A || !S) goto done;
    tp_lowrank_product_ref(&m, P);
    double err = 0, norm = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < cols; i++) {
            double s = imp ? x->imp[i] : 1.0, w = x->W[r * cols + i];
            A[r * cols + i] = w * s;
            err += (w - P[r * cols + i]) * s * (w - P[r * cols + i]) * s;
            norm += w * s * w * s;
        }
    if (LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'N', (lapack_int)rows, (lapack_int)cols, A, (lapack_int)cols, S,
                       NULL, 1, NULL, (lapack_int)cols) == 0) {
        double tail = 0;
        for (int64_t t = x->lr.rank; t < mn; t++) tail += S[t] * S[t];
        /* fp16 factors: each product term carries ~2^-11 relative rounding */
        double bound = sqrt(tail) * (1 + 1e-3) + 0x1p-9 * sqrt(norm) + 1e-30;
        worst = sqrt(err) / bound;
        if (!isfinite(worst)) worst = INFINITY;
    }
done:
    free(P);
    free(A);
    free(S);
    tp_lowrank_free(&m);
    return worst;
}
/* self-test: the top singular pair's first L entry set to 64 */
static void lrfit_corrupt(const tp_case *c, void *out, tp_rng *rng) {
    (void)c;
    (void)rng;
    unsigned char *b = out;
    b[0] = 0x00;
    b[1] = 0x54; /* binary16 64.0 */
}

static tp_status product_ref(const tp_case *c, void *out) { tp_lowrank_product_ref(&CTX(c)->lr, out); return TP_OK; }
static tp_status product_ref_run(const tp_case *c, void *s, void *out) { (void)s; return product_ref(c, out); }
static tp_status product_cpu_run(const tp_case *c, void *s, void *out) { (void)s; tp_lowrank_product_cpu(&CTX(c)->lr, out); return TP_OK; }
static tp_status lrgemv_ref(const tp_case *c, void *out) { return tp_lowrank_gemv_ref(&CTX(c)->lr, CTX(c)->X, out); }
static tp_status lrgemv_ref_run(const tp_case *c, void *s, void *out) { (void)s; return lrgemv_ref(c, out); }
static tp_status lrgemv_cpu_run(const tp_case *c, void *s, void *out) { (void)s; return tp_lowrank_gemv_cpu(&CTX(c)->lr, CTX(c)->X, out); }
/* the packed model's path: the binary16 factors as the artifact holds them */
static tp_status lrgemv_f16_run(const tp_case *c, void *s, void *out) {
    (void)s;
    const tp_lowrank *m = &CTX(c)->lr;
    const tp_lowrank16 v = {m->rows, m->cols, m->rank, CTX(c)->f16, CTX(c)->f16 + m->rows * m->rank};
    return tp_lowrank16_gemv_cpu(&v, CTX(c)->X, out);
}

/* ---- tenpakx ---- */
static tp_status txfit_ref(const tp_case *c, void *out) {
    const lrctx *x = CTX(c);
    tp_tenpakx m;
    tp_err e;
    tp_tenpakx_cfg cfg = TX_CFG;
    cfg.seed = c->seed;
    tp_status st = tp_tenpakx_alloc(&m, x->tx.lr.rows, x->tx.lr.cols, &cfg);
    if (st != TP_OK) return st;
    if ((st = tp_tenpakx_fit(&m, x->W, &cfg, &e)) != TP_OK) {
        tp_tenpakx_free(&m);
        return st;
    }
    unsigned char *o = out;
    tp_lowrank_pack(&m.lr, o);
    o += tp_lowrank_bytes(&m.lr);
    tp_vq_pack(&m.vq, o);
    o += tp_vq_bytes(&m.vq);
    tp_qmat_pack(&m.res, o);
    tp_tenpakx_free(&m);
    return TP_OK;
}
static tp_status txfit_run(const tp_case *c, void *s, void *out) { (void)s; return txfit_ref(c, out); }
static size_t tx_res_offset(const lrctx *x) { return tp_lowrank_bytes(&x->tx.lr) + tp_vq_bytes(&x->tx.vq); }
/* every element within half an INT4 step of W (plus the fp32 roundings of the 3-term sum) */
static double txfit_property(const tp_case *c, const void *out) {
    const lrctx *x = CTX(c);
    tp_tenpakx m;
    if (tp_tenpakx_alloc(&m, x->tx.lr.rows, x->tx.lr.cols, &TX_CFG) != TP_OK) return INFINITY;
    const unsigned char *o = out;
    tp_lowrank_unpack(&m.lr, o);
    tp_vq_unpack(&m.vq, o + tp_lowrank_bytes(&m.lr));
    tp_qmat_unpack(&m.res, o + tx_res_offset(x));
    const int64_t rows = m.lr.rows, cols = m.lr.cols;
    float *D = malloc((size_t)(rows * cols) * 4), *P = malloc((size_t)(rows * cols) * 4), *V = malloc((size_t)(rows * cols) * 4);
    /* no scratch: no check, and the worst ratio stays infinite */
    const int ok = D && P && V && tp_tenpakx_decode_ref(&m, D) == TP_OK;
    double worst = ok ? 0 : INFINITY;
    if (ok) {
        tp_lowrank_product_ref(&m.lr, P);
        tp_vq_decode_ref(&m.vq, V);
    }
    for (int64_t r = 0; ok && r < rows; r++)

        for (int64_t i = 0; i < cols; i++) {
            size_t k = (size_t)(r * cols + i);
            double s = tp_f16_to_f32(m.res.scale[r * m.res.ngroups + i / m.res.g]);
            double slack = 0x1p-22 * (fabs(P[k]) + fabs(V[k]) + fabs(D[k]) + fabs(x->W[k])) + 1e-30;
            double ratio = fabs((double)D[k] - x->W[k]) / (0.5 * s + slack);
            if (!(ratio <= worst)) worst = ratio;
        }
    free(D);
    free(P);
    free(V);
    tp_tenpakx_free(&m);
    return worst;
}
/* self-test: one residual code moved by 8 steps; where that group's scale is 0 (a fit that is
 * already exact, e.g. 1x1: the rank-1 factors reproduce W) a code move changes nothing, so the
 * group's offset is moved by 1 instead */
static void txfit_corrupt(const tp_case *c, void *out, tp_rng *rng) {
    const lrctx *x = CTX(c);
    const tp_qmat *q = &x->tx.res;
    int64_t r = tp_rng_below(rng, (uint32_t)q->rows), col = tp_rng_below(rng, (uint32_t)q->cols);
    unsigned char *base = (unsigned char *)out + tx_res_offset(x);
    unsigned char *b = base + r * q->code_stride + col / 2;
    *b ^= (col & 1) ? 0x80 : 0x08;
    size_t ns = (size_t)(q->rows * q->ngroups), gi = (size_t)(r * q->ngroups + col / q->g);
    unsigned char *sp = base + (size_t)(q->rows * q->code_stride) + 2 * gi, *op = sp + 2 * ns;
    uint16_t s16, o16;
    memcpy(&s16, sp, 2);
    if (tp_f16_to_f32(s16) != 0) return;
    memcpy(&o16, op, 2);
    o16 = tp_f32_to_f16(tp_f16_to_f32(o16) + 1.0f);
    memcpy(op, &o16, 2);
}
static tp_status txdecode_ref(const tp_case *c, void *out) { return tp_tenpakx_decode_ref(&CTX(c)->tx, out); }
static tp_status txdecode_ref_run(const tp_case *c, void *s, void *out) { (void)s; return txdecode_ref(c, out); }
static tp_status txdecode_cpu_run(const tp_case *c, void *s, void *out) { (void)s; return tp_tenpakx_decode_cpu(&CTX(c)->tx, out); }
static tp_status txgemv_ref(const tp_case *c, void *out) { return tp_tenpakx_gemv_ref(&CTX(c)->tx, CTX(c)->X, out); }
static tp_status txgemv_ref_run(const tp_case *c, void *s, void *out) { (void)s; return txgemv_ref(c, out); }
static tp_status txgemv_cpu_run(const tp_case *c, void *s, void *out) { (void)s; return tp_tenpakx_gemv_cpu(&CTX(c)->tx, CTX(c)->X, out); }

/* ---- napkin math ---- */
#define NW(s) ((double)(s)->d[0] * (double)(s)->d[1])
static double w_items(const tp_shape *s) { return NW(s); }
static double fit_bytes(const tp_shape *s) { return 4 * NW(s); }
static double prod_bytes(const tp_shape *s) { return 4 * NW(s); }
static double lr32_gbytes(const tp_shape *s) { return 4.0 * 32 * (s->d[0] + s->d[1]) + 4.0 * (s->d[0] + s->d[1]); }
static double lr64_gbytes(const tp_shape *s) { return 4.0 * 64 * (s->d[0] + s->d[1]) + 4.0 * (s->d[0] + s->d[1]); }
static double lr32_gflops(const tp_shape *s) { return 2.0 * 32 * (s->d[0] + s->d[1]); }
static double lr64_gflops(const tp_shape *s) { return 2.0 * 64 * (s->d[0] + s->d[1]); }
static double tx_bytes(const tp_shape *s) { return (double)tp_tenpakx_bytes_for(s->d[0], s->d[1], &TX_CFG) + 4.0 * (s->d[0] + s->d[1]); }
static double tx_dbytes(const tp_shape *s) { return (double)tp_tenpakx_bytes_for(s->d[0], s->d[1], &TX_CFG) + 4 * NW(s); }
static double tx_gflops(const tp_shape *s) { return 2 * NW(s); }

static const tp_shape verify_fit[] = {TP_SHAPE2(1, 1), TP_SHAPE2(3, 7), TP_SHAPE2(17, 100), TP_SHAPE2(100, 17),
                                      TP_SHAPE2(64, 129), TP_SHAPE_END};
static const tp_shape verify_2d[] = {TP_SHAPE2(1, 1), TP_SHAPE2(3, 7), TP_SHAPE2(17, 100), TP_SHAPE2(64, 129),
                                     TP_SHAPE2(31, 1000), TP_SHAPE2(130, 2048), TP_SHAPE_END};
static const tp_shape bench_fit[] = {TP_SHAPE2(1024, 1024), TP_SHAPE_END};
static const tp_shape bench_2d[] = {TP_SHAPE2(4096, 4096), TP_SHAPE_END};

static const lrparam p_r32 = {32, 0, 0}, p_r64 = {64, 0, 0}, p_r64i = {64, 1, 0}, p_tx = {32, 0, 1};

static const tp_op fit_r32 = {.name = "fit", .variant = "lowrank_r32", .out_type = TP_OUT_BYTES, .cmp = TP_CMP_PROPERTY,
    .param = &p_r32, .setup = lrsetup, .teardown = lrteardown, .reference = lrfit_ref, .property = lrfit_property,
    .corrupt = lrfit_corrupt, .bytes = fit_bytes, .items = w_items, .verify_shapes = verify_fit, .bench_shapes = bench_fit};
static const tp_op fit_r64i = {.name = "fit", .variant = "lowrank_r64_imp", .out_type = TP_OUT_BYTES, .cmp = TP_CMP_PROPERTY,
    .param = &p_r64i, .setup = lrsetup, .teardown = lrteardown, .reference = lrfit_ref, .property = lrfit_property,
    .corrupt = lrfit_corrupt, .bytes = fit_bytes, .items = w_items, .verify_shapes = verify_fit, .bench_shapes = bench_fit};
static const tp_op product_r32 = {.name = "product", .variant = "lowrank_r32", .out_type = TP_OUT_F32, .cmp = TP_CMP_EXACT,
    .param = &p_r32, .setup = lrsetup, .teardown = lrteardown, .reference = product_ref, .bytes = prod_bytes,
    .items = w_items, .verify_shapes = verify_2d, .bench_shapes = bench_2d};
static const tp_op gemv_r32 = {.name = "gemv", .variant = "lowrank_r32", .out_type = TP_OUT_F32, .cmp = TP_CMP_REL_L2,
    .bound = 1e-5, .param = &p_r32, .setup = lrsetup, .teardown = lrteardown, .reference = lrgemv_ref,
    .bytes = lr32_gbytes, .flops = lr32_gflops, .items = w_items, .verify_shapes = verify_2d, .bench_shapes = bench_2d,
    .memory_bound = 1};
static const tp_op gemv_r64 = {.name = "gemv", .variant = "lowrank_r64", .out_type = TP_OUT_F32, .cmp = TP_CMP_REL_L2,
    .bound = 1e-5, .param = &p_r64, .setup = lrsetup, .teardown = lrteardown, .reference = lrgemv_ref,
    .bytes = lr64_gbytes, .flops = lr64_gflops, .items = w_items, .verify_shapes = verify_2d, .bench_shapes = bench_2d,
    .memory_bound = 1};
static const tp_op tx_fit = {.name = "fit", .variant = "tenpakx_r32_d4k256_g32", .out_type = TP_OUT_BYTES,
    .cmp = TP_CMP_PROPERTY, .param = &p_tx, .setup = lrsetup, .teardown = lrteardown, .reference = txfit_ref,
    .property = txfit_property, .corrupt = txfit_corrupt, .bytes = fit_bytes, .items = w_items,
    .verify_shapes = verify_fit, .bench_shapes = bench_fit};
static const tp_op tx_decode = {.name = "decode", .variant = "tenpakx_r32_d4k256_g32", .out_type = TP_OUT_F32,
    .cmp = TP_CMP_EXACT, .param = &p_tx, .setup = lrsetup, .teardown = lrteardown, .reference = txdecode_ref,
    .bytes = tx_dbytes, .items = w_items, .verify_shapes = verify_2d, .bench_shapes = bench_2d, .memory_bound = 1};
static const tp_op tx_gemv = {.name = "gemv", .variant = "tenpakx_r32_d4k256_g32", .out_type = TP_OUT_F32,
    .cmp = TP_CMP_REL_L2, .bound = 1e-5, .param = &p_tx, .setup = lrsetup, .teardown = lrteardown,
    .reference = txgemv_ref, .bytes = tx_bytes, .flops = tx_gflops, .items = w_items, .verify_shapes = verify_2d,
    .bench_shapes = bench_2d};

#ifdef TENPAK_HAVE_CUDA
/* The CUDA backend (kernels/cuda/lowrank.cu): lowrank GEMV, tenpakx decode (exact); "cuda-emu"
 * runs their per-thread code on the host (TENPAK_CUDA_EMU=1). */
#include "kernels/cuda/tp_cuda_fam.h"
static void *lr_cuda_prepare(const tp_case *c) { return tp_cuda_lowrank_prepare(&CTX(c)->lr, CTX(c)->X); }
static void *tx_cuda_prepare(const tp_case *c) { return tp_cuda_tenpakx_prepare(&CTX(c)->tx); }
static tp_status lr_emu_run(const tp_case *c, void *s, void *out) {
    (void)s;
    tp_cuda_lowrank_emulate(&CTX(c)->lr, CTX(c)->X, out);
    return TP_OK;
}
static tp_status tx_emu_run(const tp_case *c, void *s, void *out) {
    (void)s;
    tp_cuda_tenpakx_emulate(&CTX(c)->tx, out);
    return TP_OK;
}
#define LR_CUDA_K(OP, PREP, EMU)                                                                     \
    {.op = &OP, .backend = "cuda", .run = tp_cuda_lowrank_run, .available = tp_cuda_available,        \
     .flags = TP_K_DEVICE, .prepare = PREP, .sync = tp_cuda_sync, .fetch = tp_cuda_lowrank_fetch,      \
     .release = tp_cuda_lowrank_release},                                                            \
    {.op = &OP, .backend = "cuda-emu", .run = EMU, .available = tp_cuda_emu_available},
#define LOWRANK_CUDA_KERNELS                                                                         \
    LR_CUDA_K(gemv_r32, lr_cuda_prepare, lr_emu_run)                                                 \
    LR_CUDA_K(gemv_r64, lr_cuda_prepare, lr_emu_run)                                                 \
    LR_CUDA_K(tx_decode, tx_cuda_prepare, tx_emu_run)
#else
#define LOWRANK_CUDA_KERNELS
#endif

const tp_kernel tp_kernels_lowrank[] = {
    {.op = &fit_r32, .backend = "ref", .run = lrfit_run},
    {.op = &fit_r64i, .backend = "ref", .run = lrfit_run},
    {.op = &product_r32, .backend = "ref", .run = product_ref_run},
    {.op = &product_r32, .backend = "cpu", .run = product_cpu_run, .flags = TP_K_ISA},
    {.op = &gemv_r32, .backend = "ref", .run = lrgemv_ref_run},
    {.op = &gemv_r32, .backend = "cpu", .run = lrgemv_cpu_run, .flags = TP_K_ISA},
    {.op = &gemv_r32, .backend = "cpu-f16", .run = lrgemv_f16_run, .flags = TP_K_ISA},
    {.op = &gemv_r64, .backend = "ref", .run = lrgemv_ref_run},
    {.op = &gemv_r64, .backend = "cpu", .run = lrgemv_cpu_run, .flags = TP_K_ISA},
    {.op = &gemv_r64, .backend = "cpu-f16", .run = lrgemv_f16_run, .flags = TP_K_ISA},
    {.op = &tx_fit, .backend = "ref", .run = txfit_run},
    {.op = &tx_decode, .backend = "ref", .run = txdecode_ref_run},
    {.op = &tx_decode, .backend = "cpu", .run = txdecode_cpu_run, .flags = TP_K_ISA},
    {.op = &tx_gemv, .backend = "ref", .run = txgemv_ref_run},
    {.op = &tx_gemv, .backend = "cpu", .run = txgemv_cpu_run, .flags = TP_K_ISA | TP_K_AVX512},
    LOWRANK_CUDA_KERNELS
    {0}};
