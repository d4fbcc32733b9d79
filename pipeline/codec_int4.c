/* The INT4 family as codec methods: int4 (g, refine), int4r2 (g, refine) and nf4 (g); the blob is
 * the tp_qmat_pack image (include/tenpak/quant.h). Its size, decode and packed view
 * (tp_codec_qview) serve awq (pipeline/codec_awq.c) and gptq (pipeline/codec_gptq.c) too. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/codec_methods.h"

static int qkind_of(const tp_codec_stage *s) {
    const char *n = s->method->name;
    /* gptq writes the int4 format (pipeline/codec_gptq.c): only its encoder differs */
    return !strcmp(n, "int4") || !strcmp(n, "gptq") ? TP_Q_INT4 : !strcmp(n, "int4r2") ? TP_Q_INT4R2 : TP_Q_NF4;
}
size_t tp_codec_q_blob_bytes(const tp_codec_stage *s, int64_t rows, int64_t cols) {
    double bpw = tp_qkind_bits_per_weight((tp_qkind)qkind_of(s), (int)tp_codec_param_get(s, "g"), rows, cols);
    return (size_t)llround(bpw * (double)rows * (double)cols / 8.0);
}
double tp_codec_q_theory_bpw(const tp_codec_stage *s, int64_t rows, int64_t cols) {
    (void)rows;
    (void)cols;
    double g = tp_codec_param_get(s, "g");
    switch (qkind_of(s)) {
    case TP_Q_INT4: return 4.0 + 32.0 / g;
    case TP_Q_INT4R2: return 6.0 + 48.0 / g;
    default: return 4.0 + 16.0 / g;
    }
}
static tp_status q_encode(const tp_codec_stage *s, const float *W, int64_t rows, int64_t cols, uint8_t *blob,
                          tp_err *e) {
    tp_qmat q;
    if (tp_qmat_alloc(&q, (tp_qkind)qkind_of(s), rows, cols, (int)tp_codec_param_get(s, "g")) != TP_OK)
        return tp_fail(e, TP_ERR_NOMEM, "out of memory quantising a %lldx%lld matrix", (long long)rows, (long long)cols);
    tp_quantize_ref(&q, W, (int)tp_codec_param_get(s, "refine"));
    tp_qmat_pack(&q, blob);
    tp_qmat_free(&q);
    return TP_OK;
}
tp_status tp_codec_q_decode_add(const tp_codec_stage *s, const uint8_t *blob, int64_t rows, int64_t cols, float *W,
                                tp_err *e) {
    tp_qmat q;
    float *D = tp_alloc((size_t)(rows * cols) * sizeof(float));
    if (!D || tp_qmat_alloc(&q, (tp_qkind)qkind_of(s), rows, cols, (int)tp_codec_param_get(s, "g")) != TP_OK) {
        tp_free(D);
        return tp_fail(e, TP_ERR_NOMEM, "out of memory decoding a %lldx%lld matrix", (long long)rows, (long long)cols);
    }
    tp_qmat_unpack(&q, blob);
    tp_dequantize_cpu(&q, D);
    for (int64_t i = 0; i < rows * cols; i++) W[i] += D[i];
    tp_qmat_free(&q);
    tp_free(D);
    return TP_OK;
}

/* Packed execution of the INT4 family (int4, int4r2, nf4) and of awq: the tp_qmat points into
 * the blob (a copy only where the blob's FP16 arrays are misaligned, e.g. an odd-sized code
 * array of an old artifact); awq divides the activations by its channel scales first,
 * x_c / s_c, where dequant divides the weights: W[r][c] / s_c. */
void tp_codec_qview_close(void *vp) {
    tp_codec_qview *p = vp;
    if (!p) return;
    if (p->owned) tp_qmat_free(&p->q);
    free(p->s);
    free(p);
}

tp_codec_qview *tp_codec_qview_open(tp_qkind kind, int g, const uint8_t *img, int64_t rows, int64_t cols, tp_err *e) {
    tp_codec_qview *p = calloc(1, sizeof *p);
    if (!p) { tp_fail(e, TP_ERR_NOMEM, "out of memory"); return NULL; }
    if (!tp_qmat_view(&p->q, kind, rows, cols, g, img)) {
        if (tp_qmat_alloc(&p->q, kind, rows, cols, g) != TP_OK) {
            free(p);
            tp_fail(e, TP_ERR_NOMEM, "out of memory for a %lldx%lld packed matrix", (long long)rows, (long long)cols);
            return NULL;
        }
        p->owned = 1;
        tp_qmat_unpack(&p->q, img);
    }
    return p;
}

static void *q_open(const tp_codec_stage *s, const uint8_t *blob, int64_t rows, int64_t cols, tp_err *e) {
    return tp_codec_qview_open((tp_qkind)qkind_of(s), (int)tp_codec_param_get(s, "g"), blob, rows, cols, e);
}

tp_status tp_codec_qview_mul(const void *vp, const float *X, int64_t n, float *Y) {
    const tp_codec_qview *p = vp;
    const float *Xs = X;
    float *tmp = NULL;
    if (p->s) { /* awq: X diag(1/s) */
        int64_t cols = p->q.cols;
        if (!(tmp = tp_alloc((size_t)(n * cols) * sizeof(float)))) return TP_ERR_NOMEM;
        for (int64_t i = 0; i < n; i++)
            for (int64_t c = 0; c < cols; c++) tmp[i * cols + c] = X[i * cols + c] / p->s[c];
        Xs = tmp;
    }
    tp_status st = n == 1 ? tp_qgemv_cpu(&p->q, Xs, Y) : tp_qgemm_cpu(&p->q, Xs, n, Y);
    tp_free(tmp);
    return st;
}

void tp_codec_qview_row(const void *vp, int64_t r, float *dst) {
    const tp_codec_qview *p = vp;
    const tp_qmat one = tp_qmat_rows(&p->q, r, r + 1); /* row r alone */
    tp_dequantize_cpu(&one, dst);
    if (p->s)
        for (int64_t c = 0; c < p->q.cols; c++) dst[c] /= p->s[c];
}

void tp_codec_qview_corrupt(void *vp, uint64_t k) {
    tp_codec_qview *p = vp; /* both codes of one byte move by 8 or more steps */
    p->q.codes[k % (uint64_t)(p->q.rows * p->q.code_stride)] ^= 0x88;
}

size_t tp_codec_qview_bytes(const void *vp) {
    const tp_codec_qview *p = vp;
    return sizeof *p + (p->owned ? tp_qmat_bytes(&p->q) : 0) + (p->s ? (size_t)p->q.cols * sizeof(float) : 0);
}

const tp_codec_exec tp_codec_q_exec = {q_open, tp_codec_qview_mul, tp_codec_qview_row, tp_codec_qview_corrupt,
                                       tp_codec_qview_bytes, tp_codec_qview_close};

const tp_qmat *tp_codec_exec_qmat(const tp_codec_exec *x, const void *view) {
    return x == &tp_codec_q_exec && view ? &((const tp_codec_qview *)view)->q : NULL;
}

/* int4 / int4r2: g a power of two in 8..4096, refine 0..100; nf4: g */
static tp_status q_check(const tp_codec_stage *s, const char *spec, int index, tp_err *e) {
    (void)index;
    tp_status st = tp_codec_check_integers(s, spec, NULL, e);
    if (st == TP_OK) st = tp_codec_check_group(s, spec, e);
    if (st == TP_OK && tp_codec_has_param(s, "refine")) st = tp_codec_check_refine(s, spec, e);
    return st;
}

const tp_codec_method tp_codec_int4 = {"int4", "g=128,refine=0", tp_codec_q_blob_bytes, tp_codec_q_theory_bpw, q_encode,
                                       tp_codec_q_decode_add, &tp_codec_q_exec, q_check, NULL};
const tp_codec_method tp_codec_int4r2 = {"int4r2", "g=16,refine=0", tp_codec_q_blob_bytes, tp_codec_q_theory_bpw,
                                         q_encode, tp_codec_q_decode_add, &tp_codec_q_exec, q_check, NULL};
const tp_codec_method tp_codec_nf4 = {"nf4", "g=64", tp_codec_q_blob_bytes, tp_codec_q_theory_bpw, q_encode,
                                      tp_codec_q_decode_add, &tp_codec_q_exec, q_check, NULL};
