/* The awq method (activation-aware INT4; pipeline/codec.h states it): g, alpha, search, refine.
 * Its blob is the channel scales then an int4 image, multiplied through the INT4 family's packed
 * view (pipeline/codec_int4.c) with the activations divided by the scales. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/calib.h"
#include "pipeline/codec_methods.h"

/* ---- awq: activation-aware INT4 ----
 * blob = s[cols] (fp16, tp_awq_scales of the calibration's mean |x_c|) then the int4 image of
 * W diag(s). Decoding: W[r][c] = dequant(q)[r][c] / s_c. A tensor without statistics gets s = 1. */
static size_t int4_bytes(int g, int64_t rows, int64_t cols) {
    return (size_t)llround(tp_qkind_bits_per_weight(TP_Q_INT4, g, rows, cols) * (double)rows * (double)cols / 8.0);
}
static size_t awq_blob_bytes(const tp_codec_stage *s, int64_t rows, int64_t cols) {
    return 2 * (size_t)cols + int4_bytes((int)tp_codec_param_get(s, "g"), rows, cols);
}
static double awq_theory_bpw(const tp_codec_stage *s, int64_t rows, int64_t cols) {
    (void)cols;
    return 4.0 + 32.0 / tp_codec_param_get(s, "g") + 16.0 / (double)rows;
}
/* one awq attempt at alpha: s16 and the packed int4 image of W diag(s); returns the Fisher-style
 * error sum_c w_c sum_r (dequant/s_c - W)^2 (w_c = mean x_c^2, else 1) when err is wanted */
static double awq_try(const tp_codec_stage *s, const float *W, int64_t rows, int64_t cols, double alpha, tp_qmat *q,
                      float *Ws, uint16_t *s16, int want_err) {
    tp_awq_scales(s->act_absmean, cols, alpha, s16);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) Ws[r * cols + c] = W[r * cols + c] * tp_f16_to_f32(s16[c]);
    tp_quantize_ref(q, Ws, (int)tp_codec_param_get(s, "refine"));
    if (!want_err) return 0;
    tp_dequantize_cpu(q, Ws);
    double err = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            double d = (double)(Ws[r * cols + c] / tp_f16_to_f32(s16[c])) - W[r * cols + c];
            err += (s->act_sqmean ? (double)s->act_sqmean[c] : 1.0) * d * d;
        }
    return err;
}

/* AWQ's grid search over alpha in {0, 1/8, ..., 1}, by the activation-weighted error */
static double awq_search(const tp_codec_stage *s, const float *W, int64_t rows, int64_t cols, tp_qmat *q, float *Ws,
                         uint16_t *s16) {
    double best = INFINITY, alpha = 0;
    for (int k = 0; k <= 8; k++) {
        double err = awq_try(s, W, rows, cols, k / 8.0, q, Ws, s16, 1);
        if (err < best) { best = err; alpha = k / 8.0; }
    }
    return alpha;
}

tp_status tp_codec_awq_search_alpha(const tp_codec *c, const float *W, int64_t rows, int64_t cols, double *alpha,
                                    tp_err *e) {
    const tp_codec_stage *s = &c->stages[0];
    if (c->nstages != 1 || strcmp(s->method->name, "awq"))
        return tp_fail(e, TP_ERR_ARG, "codec '%s': the alpha search needs one awq stage", c->spec);
    *alpha = tp_codec_param_get(s, "alpha");
    if (!s->act_absmean) return TP_OK; /* no statistics: encode keeps the spec's alpha */
    uint16_t *s16 = malloc((size_t)cols * sizeof *s16);
    float *Ws = tp_alloc((size_t)(rows * cols) * sizeof(float));
    tp_qmat q;
    if (!s16 || !Ws || tp_qmat_alloc(&q, TP_Q_INT4, rows, cols, (int)tp_codec_param_get(s, "g")) != TP_OK) {
        free(s16);
        tp_free(Ws);
        return tp_fail(e, TP_ERR_NOMEM, "out of memory quantising a %lldx%lld matrix", (long long)rows, (long long)cols);
    }
    *alpha = awq_search(s, W, rows, cols, &q, Ws, s16);
    tp_qmat_free(&q);
    tp_free(Ws);
    free(s16);
    return TP_OK;
}

static tp_status awq_encode(const tp_codec_stage *s, const float *W, int64_t rows, int64_t cols, uint8_t *blob,
                            tp_err *e) {
    uint16_t *s16 = malloc((size_t)cols * sizeof *s16);
    float *Ws = tp_alloc((size_t)(rows * cols) * sizeof(float));
    tp_qmat q;
    int g = (int)tp_codec_param_get(s, "g");
    if (!s16 || !Ws || tp_qmat_alloc(&q, TP_Q_INT4, rows, cols, g) != TP_OK) {
        free(s16);
        tp_free(Ws);
        return tp_fail(e, TP_ERR_NOMEM, "out of memory quantising a %lldx%lld matrix", (long long)rows, (long long)cols);
    }
    double alpha = tp_codec_param_get(s, "alpha");
    if (tp_codec_param_get(s, "search") != 0 && s->act_absmean) alpha = awq_search(s, W, rows, cols, &q, Ws, s16);
    awq_try(s, W, rows, cols, alpha, &q, Ws, s16, 0);
    for (int64_t c = 0; c < cols; c++) { blob[2 * c] = (uint8_t)(s16[c] & 0xFF); blob[2 * c + 1] = (uint8_t)(s16[c] >> 8); }
    tp_qmat_pack(&q, blob + 2 * cols);
    tp_qmat_free(&q);
    tp_free(Ws);
    free(s16);
    return TP_OK;
}
static tp_status awq_decode_add(const tp_codec_stage *s, const uint8_t *blob, int64_t rows, int64_t cols, float *W,
                                tp_err *e) {
    tp_qmat q;
    float *D = tp_alloc((size_t)(rows * cols) * sizeof(float)), *sf = malloc((size_t)cols * sizeof(float));
    if (!D || !sf || tp_qmat_alloc(&q, TP_Q_INT4, rows, cols, (int)tp_codec_param_get(s, "g")) != TP_OK) {
        tp_free(D);
        free(sf);
        return tp_fail(e, TP_ERR_NOMEM, "out of memory decoding a %lldx%lld matrix", (long long)rows, (long long)cols);
    }
    for (int64_t c = 0; c < cols; c++) {
        sf[c] = tp_f16_to_f32((uint16_t)(blob[2 * c] | blob[2 * c + 1] << 8));
        if (!(sf[c] > 0) || !isfinite(sf[c])) {
            tp_qmat_free(&q); tp_free(D); free(sf);
            return tp_fail(e, TP_ERR_FORMAT, "awq blob: channel scale %lld is not a positive number", (long long)c);
        }
    }
    tp_qmat_unpack(&q, blob + 2 * cols);
    tp_dequantize_cpu(&q, D);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) W[r * cols + c] += D[r * cols + c] / sf[c];
    tp_qmat_free(&q);
    tp_free(D);
    free(sf);
    return TP_OK;
}

static void *awq_open(const tp_codec_stage *s, const uint8_t *blob, int64_t rows, int64_t cols, tp_err *e) {
    float *sf = malloc((size_t)cols * sizeof *sf);
    if (!sf) { tp_fail(e, TP_ERR_NOMEM, "out of memory"); return NULL; }
    for (int64_t c = 0; c < cols; c++) {
        sf[c] = tp_f16_to_f32((uint16_t)(blob[2 * c] | blob[2 * c + 1] << 8));
        if (!(sf[c] > 0) || !isfinite(sf[c])) {
            free(sf);
            tp_fail(e, TP_ERR_FORMAT, "awq blob: channel scale %lld is not a positive number", (long long)c);
            return NULL;
        }
    }
    tp_codec_qview *p = tp_codec_qview_open(TP_Q_INT4, (int)tp_codec_param_get(s, "g"), blob + 2 * cols, rows, cols, e);
    if (!p) { free(sf); return NULL; }
    p->s = sf;
    return p;
}

static const tp_codec_exec awq_exec = {awq_open, tp_codec_qview_mul, tp_codec_qview_row, tp_codec_qview_corrupt,
                                       tp_codec_qview_bytes, tp_codec_qview_close};

/* g, alpha in 0..1 (the one real-valued key), search 0 or 1, refine 0..100 */
static tp_status awq_check(const tp_codec_stage *s, const char *spec, int index, tp_err *e) {
    (void)index;
    tp_status st = tp_codec_check_integers(s, spec, "alpha", e);
    if (st == TP_OK) st = tp_codec_check_group(s, spec, e);
    if (st != TP_OK) return st;
    if (!(tp_codec_param_get(s, "alpha") >= 0 && tp_codec_param_get(s, "alpha") <= 1))
        return tp_fail(e, TP_ERR_ARG, "codec '%s': alpha must be in 0..1", spec);
    if (tp_codec_param_get(s, "search") > 1) return tp_fail(e, TP_ERR_ARG, "codec '%s': awq and search are 0 or 1", spec);
    return tp_codec_check_refine(s, spec, e);
}

const tp_codec_method tp_codec_awq = {"awq", "g=128,alpha=0.5,search=0,refine=0", awq_blob_bytes, awq_theory_bpw,
                                      awq_encode, awq_decode_add, &awq_exec, awq_check, NULL};
