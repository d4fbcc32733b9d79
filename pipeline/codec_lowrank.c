/* The lowrank method (truncated SVD, fp16 factors; include/tenpak/lowrank.h): r, imp (columns
 * weighted by mean |w|). svd:rank=R is an alias of lowrank:r=R and tenpakx of the chain
 * lowrank+vq+int4 (pipeline/codec.c). The blob is tp_lowrank_pack's image: L then R in fp16.
 * Packed execution: the factored GEMV, one per row of the activations. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/codec_methods.h"
#include "tenpak/lowrank.h"

#define P(s, k) tp_codec_param_get((s), (k))

static size_t lr_blob(const tp_codec_stage *s, int64_t rows, int64_t cols) {
    return tp_lowrank_bytes_for(rows, cols, (int)P(s, "r"));
}
/* fp16 factors: 16 r (rows + cols) / (rows cols) bits per weight */
static double lr_theory(const tp_codec_stage *s, int64_t rows, int64_t cols) {
    return 16.0 * P(s, "r") * (double)(rows + cols) / ((double)rows * (double)cols);
}
static tp_status lr_encode(const tp_codec_stage *s, const float *W, int64_t rows, int64_t cols, uint8_t *blob,
                           tp_err *e) {
    tp_lowrank m;
    float *imp = P(s, "imp") != 0 ? tp_alloc((size_t)cols * sizeof(float)) : NULL;
    if ((P(s, "imp") != 0 && !imp) || tp_lowrank_alloc(&m, rows, cols, (int)P(s, "r")) != TP_OK) {
        tp_free(imp);
        return tp_codec_oom(e, rows, cols);
    }
    tp_status st = imp ? tp_col_importance(W, rows, cols, imp) : TP_OK;
    if (st == TP_OK) st = tp_lowrank_fit(&m, W, imp, e);
    else tp_codec_oom(e, rows, cols);
    if (st == TP_OK) tp_lowrank_pack(&m, blob);
    tp_lowrank_free(&m);
    tp_free(imp);
    return st;
}
static tp_status lr_decode_add(const tp_codec_stage *s, const uint8_t *blob, int64_t rows, int64_t cols, float *W,
                               tp_err *e) {
    tp_lowrank m;
    float *D = tp_alloc((size_t)(rows * cols) * sizeof(float));
    if (!D || tp_lowrank_alloc(&m, rows, cols, (int)P(s, "r")) != TP_OK) {
        tp_free(D);
        return tp_codec_oom(e, rows, cols);
    }
    tp_lowrank_unpack(&m, blob);
    tp_lowrank_product_cpu(&m, D);
    tp_codec_add_into(W, D, rows * cols);
    tp_lowrank_free(&m);
    tp_free(D);
    return TP_OK;
}

/* The packed view: the binary16 factors where the blob holds them (the artifact is mapped; x86 is
 * little-endian, as the image), copied only when the blob is not 2-byte aligned. The GEMV widens
 * them as it reads (tp_lowrank16_gemv_cpu: the bits of the fp32 GEMV on the unpacked factors, from
 * half the bytes, and no fp32 copy of them in memory). */
typedef struct lrview {
    tp_lowrank16 v;
    uint16_t *owned;
} lrview;
static void *lr_open(const tp_codec_stage *s, const uint8_t *blob, int64_t rows, int64_t cols, tp_err *e) {
    lrview *p = calloc(1, sizeof *p);
    if (!p) return tp_codec_oom_null(e, rows, cols);
    const int r = (int)P(s, "r");
    const uint16_t *f = (const uint16_t *)(const void *)blob;
    if ((uintptr_t)blob % sizeof(uint16_t)) {
        const size_t nb = tp_lowrank_bytes_for(rows, cols, r);
        if (!(p->owned = malloc(nb))) {
            free(p);
            return tp_codec_oom_null(e, rows, cols);
        }
        memcpy(p->owned, blob, nb);
        f = p->owned;
    }
    p->v = (tp_lowrank16){.rows = rows, .cols = cols, .rank = r, .L = f, .R = f + rows * r};
    return p;
}
static tp_status lr_mul(const void *vp, const float *X, int64_t n, float *Y) {
    const tp_lowrank16 *m = &((const lrview *)vp)->v;
    for (int64_t i = 0; i < n; i++)
        if (tp_lowrank16_gemv_cpu(m, X + i * m->cols, Y + i * m->rows) != TP_OK) return TP_ERR_NOMEM;
    return TP_OK;
}
static void lr_row(const void *vp, int64_t r, float *dst) {
    const tp_lowrank16 *m = &((const lrview *)vp)->v; /* lr(r, j) as lowrank.h defines it: fmaf in t order */
    for (int64_t j = 0; j < m->cols; j++) {
        float acc = 0;
        for (int t = 0; t < m->rank; t++)
            acc = fmaf(tp_f16_to_f32(m->L[r * m->rank + t]), tp_f16_to_f32(m->R[(int64_t)t * m->cols + j]), acc);
        dst[j] = acc;
    }
}
static void lr_corrupt(void *vp, uint64_t k) {
    lrview *p = vp; /* one factor of L moved far, in the loaded view (a private mapping or the copy) */
    tp_lowrank16 *m = &p->v;
    size_t i = (size_t)(k % (uint64_t)(m->rows * m->rank));
    uint16_t *L = (uint16_t *)(uintptr_t)m->L;
    L[i] = tp_f32_to_f16(-8.0f * tp_f16_to_f32(L[i]) + 1.0f);
}
static size_t lr_bytes(const void *vp) {
    const lrview *p = vp;
    return sizeof *p + (p->owned ? tp_lowrank_bytes_for(p->v.rows, p->v.cols, p->v.rank) : 0);
}
static void lr_close(void *vp) {
    lrview *p = vp;
    if (p) free(p->owned);
    free(p);
}
static const tp_codec_exec lr_exec = {lr_open, lr_mul, lr_row, lr_corrupt, lr_bytes, lr_close};

/* r in 1..TP_CODEC_MAX_RANK (and, against a matrix, at most min(rows, cols)) */
static tp_status lr_check(const tp_codec_stage *s, const char *spec, int index, tp_err *e) {
    (void)index;
    tp_status st = tp_codec_check_integers(s, spec, NULL, e);
    if (st != TP_OK) return st;
    if (P(s, "r") < 1 || P(s, "r") > TP_CODEC_MAX_RANK)
        return tp_fail(e, TP_ERR_ARG, "codec '%s': r must be in 1..%d (and at most min(rows, cols) of each tensor)",
                       spec, TP_CODEC_MAX_RANK);
    return TP_OK;
}

/* a rank beyond min(rows, cols) stores more than the matrix and fits nothing better */
static tp_status lr_check_shape(const tp_codec_stage *s, const char *spec, int64_t rows, int64_t cols, const char *what,
                                tp_err *e) {
    double r = P(s, "r");
    int64_t m = rows < cols ? rows : cols;
    if (r > (double)m)
        return tp_fail(e, TP_ERR_ARG, "codec '%s': r=%g exceeds min(rows, cols) = %lld of %s (%lldx%lld)", spec, r,
                       (long long)m, what ? what : "the matrix", (long long)rows, (long long)cols);
    return TP_OK;
}

const tp_codec_method tp_codec_lowrank = {"lowrank", "r=32,imp=0", lr_blob, lr_theory, lr_encode, lr_decode_add,
                                          &lr_exec, lr_check, lr_check_shape};
