/* Codec spec parsing and the method table. See pipeline/codec.h. */
#include "pipeline/codec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/calib.h"
#include "tenpak/quant.h"

/* ---- the INT4 family: blob = tp_qmat_pack image ---- */
static int qkind_of(const tp_codec_stage *s) {
    const char *n = s->method->name;
    /* gptq writes the int4 format (pipeline/codec_gptq.c): only its encoder differs */
    return !strcmp(n, "int4") || !strcmp(n, "gptq") ? TP_Q_INT4 : !strcmp(n, "int4r2") ? TP_Q_INT4R2 : TP_Q_NF4;
}
static size_t q_blob_bytes(const tp_codec_stage *s, int64_t rows, int64_t cols) {
    double bpw = tp_qkind_bits_per_weight((tp_qkind)qkind_of(s), (int)tp_codec_param_get(s, "g"), rows, cols);
    return (size_t)llround(bpw * (double)rows * (double)cols / 8.0);
}
static double q_theory_bpw(const tp_codec_stage *s, int64_t rows, int64_t cols) {
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
static tp_status q_decode_add(const tp_codec_stage *s, const uint8_t *blob, int64_t rows, int64_t cols, float *W,
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
typedef struct q_packed {
    tp_qmat q;
    int owned;
    float *s; /* awq: the channel scales s_c, cols floats; NULL otherwise */
} q_packed;

static void q_close(void *vp) {
    q_packed *p = vp;
    if (!p) return;
    if (p->owned) tp_qmat_free(&p->q);
    free(p->s);
    free(p);
}

static q_packed *q_open_image(tp_qkind kind, int g, const uint8_t *img, int64_t rows, int64_t cols, tp_err *e) {
    q_packed *p = calloc(1, sizeof *p);
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
    return q_open_image((tp_qkind)qkind_of(s), (int)tp_codec_param_get(s, "g"), blob, rows, cols, e);
}

static tp_status q_mul(const void *vp, const float *X, int64_t n, float *Y) {
    const q_packed *p = vp;
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

static void q_row(const void *vp, int64_t r, float *dst) {
    const q_packed *p = vp;
    tp_qmat one = p->q; /* row r alone: the same arrays from its first byte / group */
    one.rows = 1;
    one.codes = p->q.codes + r * p->q.code_stride;
    one.scale = p->q.scale + r * p->q.ngroups;
    if (p->q.offset) one.offset = p->q.offset + r * p->q.ngroups;
    if (p->q.rcodes) one.rcodes = p->q.rcodes + r * p->q.rcode_stride;
    if (p->q.rscale) one.rscale = p->q.rscale + r * p->q.ngroups;
    tp_dequantize_cpu(&one, dst);
    if (p->s)
        for (int64_t c = 0; c < p->q.cols; c++) dst[c] /= p->s[c];
}

static void q_corrupt(void *vp, uint64_t k) {
    q_packed *p = vp; /* both codes of one byte move by 8 or more steps */
    p->q.codes[k % (uint64_t)(p->q.rows * p->q.code_stride)] ^= 0x88;
}

static size_t q_bytes(const void *vp) {
    const q_packed *p = vp;
    return sizeof *p + (p->owned ? tp_qmat_bytes(&p->q) : 0) + (p->s ? (size_t)p->q.cols * sizeof(float) : 0);
}

static const tp_codec_exec q_exec = {q_open, q_mul, q_row, q_corrupt, q_bytes, q_close};

const tp_qmat *tp_codec_exec_qmat(const tp_codec_exec *x, const void *view) {
    return x == &q_exec && view ? &((const q_packed *)view)->q : NULL;
}

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
    q_packed *p = q_open_image(TP_Q_INT4, (int)tp_codec_param_get(s, "g"), blob + 2 * cols, rows, cols, e);
    if (!p) { free(sf); return NULL; }
    p->s = sf;
    return p;
}

static const tp_codec_exec awq_exec = {awq_open, q_mul, q_row, q_corrupt, q_bytes, q_close};

/* ---- mixed: per-tensor group sizes under a bits/weight budget ----
 * tenpak compress measures every tensor's sensitivity at each candidate (tp_codec_mixed_candidates)
 * and writes each record with its chosen candidate's spec. Alone (one matrix, as `tenpak codecs`
 * sees it) the method is the finest candidate whose bytes fit the budget for that shape. */
static const int mixed_groups[] = {128, 64, 32}; /* coarsest first */
static void mixed_stage_for(const tp_codec_stage *s, int g, tp_codec_stage *out);
static int mixed_pick_alone(const tp_codec_stage *s, int64_t rows, int64_t cols) {
    double budget = tp_codec_param_get(s, "budget");
    int best = mixed_groups[0];
    for (size_t i = 0; i < sizeof mixed_groups / sizeof mixed_groups[0]; i++) {
        tp_codec_stage st;
        mixed_stage_for(s, mixed_groups[i], &st);
        if (8.0 * (double)st.method->blob_bytes(&st, rows, cols) <= budget * (double)rows * (double)cols + 1e-9)
            best = mixed_groups[i];
    }
    return best;
}
static size_t mixed_blob_bytes(const tp_codec_stage *s, int64_t rows, int64_t cols) {
    tp_codec_stage st;
    mixed_stage_for(s, mixed_pick_alone(s, rows, cols), &st);
    return st.method->blob_bytes(&st, rows, cols);
}
static double mixed_theory_bpw(const tp_codec_stage *s, int64_t rows, int64_t cols) {
    tp_codec_stage st;
    mixed_stage_for(s, mixed_pick_alone(s, rows, cols), &st);
    return st.method->theory_bpw(&st, rows, cols);
}
static tp_status mixed_encode(const tp_codec_stage *s, const float *W, int64_t rows, int64_t cols, uint8_t *blob,
                              tp_err *e) {
    tp_codec_stage st;
    mixed_stage_for(s, mixed_pick_alone(s, rows, cols), &st);
    return st.method->encode(&st, W, rows, cols, blob, e);
}
static tp_status mixed_decode_add(const tp_codec_stage *s, const uint8_t *blob, int64_t rows, int64_t cols, float *W,
                                  tp_err *e) {
    tp_codec_stage st;
    mixed_stage_for(s, mixed_pick_alone(s, rows, cols), &st);
    return st.method->decode_add(&st, blob, rows, cols, W, e);
}

/* pipeline/codec_gptq.c */
tp_status tp_codec_gptq_encode(const tp_codec_stage *s, const float *W, int64_t rows, int64_t cols, uint8_t *blob,
                               tp_err *e);

static const tp_codec_method methods[] = {
    {"int4", "g=128,refine=0", q_blob_bytes, q_theory_bpw, q_encode, q_decode_add, &q_exec},
    {"int4r2", "g=16,refine=0", q_blob_bytes, q_theory_bpw, q_encode, q_decode_add, &q_exec},
    {"nf4", "g=64", q_blob_bytes, q_theory_bpw, q_encode, q_decode_add, &q_exec},
    {"awq", "g=128,alpha=0.5,search=0,refine=0", awq_blob_bytes, awq_theory_bpw, awq_encode, awq_decode_add, &awq_exec},
    /* records store the chosen int4 / awq spec, never "mixed": nothing to execute */
    {"gptq", "g=128,act_order=0,damp=0.01", q_blob_bytes, q_theory_bpw, tp_codec_gptq_encode, q_decode_add, &q_exec},
    {"mixed", "budget=4.5,awq=0", mixed_blob_bytes, mixed_theory_bpw, mixed_encode, mixed_decode_add, NULL},
};
#define NMETHODS (sizeof methods / sizeof methods[0])
#define M_INT4 (&methods[0])
#define M_AWQ (&methods[3])

/* the candidate stage of a mixed stage at group size g: int4:g=G,refine=0 or awq:g=G,alpha=0.5,refine=0 */
static void mixed_stage_for(const tp_codec_stage *s, int g, tp_codec_stage *out) {
    memset(out, 0, sizeof *out);
    int awq = tp_codec_param_get(s, "awq") != 0;
    out->method = awq ? M_AWQ : M_INT4;
    int k = 0;
    snprintf(out->params[k].key, sizeof out->params[k].key, "g");
    out->params[k++].value = g;
    if (awq) {
        snprintf(out->params[k].key, sizeof out->params[k].key, "alpha");
        out->params[k++].value = 0.5;
        snprintf(out->params[k].key, sizeof out->params[k].key, "search");
        out->params[k++].value = 1;
    }
    snprintf(out->params[k].key, sizeof out->params[k].key, "refine");
    out->params[k++].value = 0;
    out->nparams = k;
    out->act_absmean = s->act_absmean;
    out->act_sqmean = s->act_sqmean;
}

int tp_codec_is_mixed(const tp_codec *c) { return c->nstages == 1 && !strcmp(c->stages[0].method->name, "mixed"); }
double tp_codec_mixed_budget(const tp_codec *c) { return tp_codec_is_mixed(c) ? tp_codec_param_get(&c->stages[0], "budget") : 0; }

/* Every per-tensor codec that could beat the others somewhere: int4 and (awq=1) awq at g = 128 ..
 * 8, each without and with refinement (refine=4), nf4 at g = 128, 64, 32, int4r2 at g = 128 ..
 * 16 and gptq at g = 128 .. 8 (measured where the calibration holds X^T X). A format is a candidate when its bits/weight are at most budget + 1 (a tensor may take up
 * to a bit more than the average where others take less); g = 128, 64, 32 always are. Sorted by
 * bits/weight, ties keeping this order. awq candidates carry search=1: the allocator searches each
 * tensor's alpha once per g and stores it (search=0), so refine=4 runs at that alpha only. */
int tp_codec_mixed_candidates(const tp_codec *c, char out[][96], int max) {
    if (!tp_codec_is_mixed(c)) return 0;
    double budget = tp_codec_param_get(&c->stages[0], "budget"), bpw[TP_MIXED_MAX_CANDIDATES];
    int awq = tp_codec_param_get(&c->stages[0], "awq") != 0, n = 0;
    static const int gs[] = {128, 64, 32, 16, 8};
    char spec[96];
    for (int m = 0; m < 5; m++)
        for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++)
            for (int refine = 0; refine <= 4; refine += 4) {
                int g = gs[i];
                double b = m == 2 ? 4.0 + 16.0 / g : m == 3 ? 6.0 + 48.0 / g : 4.0 + 32.0 / g;
                if ((m == 1 && !awq) || (m == 2 && (refine || g < 32)) || (m == 3 && g < 16) || (m == 4 && refine))
                    continue;
                if (g < 32 && b > budget + 1.0 + 1e-9) continue;
                if (m == 3 && b > budget + 1.0 + 1e-9) continue;
                if (m == 0) snprintf(spec, sizeof spec, "int4:g=%d,refine=%d", g, refine);
                else if (m == 1) snprintf(spec, sizeof spec, "awq:g=%d,alpha=0.5,search=1,refine=%d", g, refine);
                else if (m == 2) snprintf(spec, sizeof spec, "nf4:g=%d", g);
                else if (m == 3) snprintf(spec, sizeof spec, "int4r2:g=%d,refine=%d", g, refine);
                else snprintf(spec, sizeof spec, "gptq:g=%d", g);
                if (n == max || n == TP_MIXED_MAX_CANDIDATES) return n;
                int k = n++; /* insertion by bits/weight, stable */
                while (k > 0 && bpw[k - 1] > b) {
                    bpw[k] = bpw[k - 1];
                    memcpy(out[k], out[k - 1], 96);
                    k--;
                }
                bpw[k] = b;
                snprintf(out[k], 96, "%s", spec);
            }
    return n;
}

int tp_codec_needs_calib(const tp_codec *c) {
    for (int i = 0; i < c->nstages; i++)
        if (c->stages[i].method == M_AWQ || !strcmp(c->stages[i].method->name, "mixed")) return 1;
    return tp_codec_needs_xtx(c);
}

int tp_codec_needs_xtx(const tp_codec *c) {
    for (int i = 0; i < c->nstages; i++) /* mixed: its gptq candidates and the full proxy */
        if (!strcmp(c->stages[i].method->name, "gptq") || !strcmp(c->stages[i].method->name, "mixed")) return 1;
    return 0;
}

void tp_codec_set_calib_xtx(tp_codec *c, const double *xtx, int64_t nsamples) {
    for (int i = 0; i < c->nstages; i++) {
        c->stages[i].act_xtx = xtx;
        c->stages[i].act_nsamples = xtx ? nsamples : 0;
    }
}

void tp_codec_set_calib(tp_codec *c, const float *absmean, const float *sqmean) {
    for (int i = 0; i < c->nstages; i++) {
        c->stages[i].act_absmean = absmean;
        c->stages[i].act_sqmean = sqmean;
    }
}

/* The VQ, 2:4 and low-rank methods live beside their kernels (kernels/codec_k3.c). */
extern const tp_codec_method tp_codec_methods_k3[];
extern const size_t tp_codec_methods_k3_count;

static const tp_codec_method *find_method(const char *name) {
    for (size_t i = 0; i < NMETHODS; i++)
        if (!strcmp(methods[i].name, name)) return &methods[i];
    for (size_t i = 0; i < tp_codec_methods_k3_count; i++)
        if (!strcmp(tp_codec_methods_k3[i].name, name)) return &tp_codec_methods_k3[i];
    return NULL;
}

const char *tp_codec_methods(void) {
    static char buf[256];
    if (!buf[0]) {
        for (size_t i = 0; i < NMETHODS; i++)
            snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", i ? ", " : "", methods[i].name);
        for (size_t i = 0; i < tp_codec_methods_k3_count; i++)
            snprintf(buf + strlen(buf), sizeof buf - strlen(buf), ", %s", tp_codec_methods_k3[i].name);
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), " (aliases: svd, tenpakx, sparse24+int4)");
    }
    return buf;
}

/* The spellings of the experiment log and the issues, rewritten to method chains:
 *   svd:rank=R                          -> lowrank:r=R
 *   tenpakx:rank=R,d=D,k=K,res=int4:g=G -> lowrank:r=R,imp=1+vq:d=D,k=K,imp=1+int4:g=G
 *   sparse24+int4:g=G                   -> sparse24:v=4,g=G
 * Returns 0 when the text is not one of them (then it is parsed as it is), -1 when it is one but
 * malformed: values are plain decimals and each key comes once, as in the grammar itself. */
static int alias_num(const char **p, long *v) {
    const char *q = *p;
    long x = 0;
    if (*q < '0' || *q > '9') return 0;
    for (; *q >= '0' && *q <= '9'; q++)
        if ((x = x * 10 + (*q - '0')) > 1000000000L) return 0;
    *v = x;
    *p = q;
    return 1;
}
static int rewrite_alias(const char *in, char *out, size_t n) {
    long r = 32, d = 4, k = 256, g = 32;
    const char *p;
    if (!strncmp(in, "svd:rank=", 9)) {
        p = in + 9;
        if (!alias_num(&p, &r) || *p) return -1;
        snprintf(out, n, "lowrank:r=%ld", r);
        return 1;
    }
    if (!strcmp(in, "svd")) { snprintf(out, n, "lowrank:r=64"); return 1; }
    if (!strncmp(in, "tenpakx", 7) && (in[7] == 0 || in[7] == ':')) {
        static const char *const keys[] = {"rank=", "d=", "k=", "res=int4:g="};
        long *vals[] = {&r, &d, &k, &g};
        int seen[4] = {0};
        p = in + 7;
        if (*p == ':') {
            p++;
            while (*p) {
                int i = 0;
                while (i < 4 && strncmp(p, keys[i], strlen(keys[i]))) i++;
                if (i == 4 || seen[i]++) return -1;
                p += strlen(keys[i]);
                if (!alias_num(&p, vals[i])) return -1;
                if (*p == ',' && p[1]) p++;
                else if (*p) return -1;
            }
        }
        /* importance-weighted SVD and VQ: the experiment log's calibration-free proxy */
        snprintf(out, n, "lowrank:r=%ld,imp=1+vq:d=%ld,k=%ld,imp=1+int4:g=%ld", r, d, k, g);
        return 1;
    }
    if (!strncmp(in, "sparse24+int4:g=", 16)) {
        p = in + 16;
        if (!alias_num(&p, &g) || *p) return -1;
        snprintf(out, n, "sparse24:v=4,g=%ld", g);
        return 1;
    }
    if (!strcmp(in, "sparse24+int4")) { snprintf(out, n, "sparse24:v=4,g=128"); return 1; }
    return 0;
}

static int has_param(const tp_codec_stage *s, const char *key) {
    for (int i = 0; i < s->nparams; i++)
        if (!strcmp(s->params[i].key, key)) return 1;
    return 0;
}

double tp_codec_param_get(const tp_codec_stage *s, const char *key) {
    for (int i = 0; i < s->nparams; i++)
        if (!strcmp(s->params[i].key, key)) return s->params[i].value;
    return 0;
}

static int is_valid_group(double g) {
    return g >= 8 && g <= 4096 && g == floor(g) && ((long)g & ((long)g - 1)) == 0;
}

/* parse "k=v,k=v" into the stage, over the method's defaults */
static tp_status parse_params(tp_codec_stage *st, char *text, const char *spec, tp_err *e) {
    char defs[128];
    snprintf(defs, sizeof defs, "%s", st->method->defaults);
    st->nparams = 0;
    for (char *save = NULL, *kv = strtok_r(defs, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        *eq = 0;
        snprintf(st->params[st->nparams].key, sizeof st->params[0].key, "%s", kv);
        st->params[st->nparams++].value = atof(eq + 1);
    }
    if (!text) return TP_OK;
    /* strict: key=value items separated by single commas, none empty, no key twice, values plain
     * decimals (digits, optionally '.' and digits: no sign, exponent, hex, inf or nan) */
    int given[TP_CODEC_MAX_PARAMS] = {0};
    for (char *kv = text;;) {
        char *comma = strchr(kv, ',');
        if (comma) *comma = 0;
        char *eq = strchr(kv, '=');
        if (!*kv) return tp_fail(e, TP_ERR_ARG, "codec '%s': empty parameter (a stray ',' or ':')", spec);
        if (!eq) return tp_fail(e, TP_ERR_ARG, "codec '%s': '%s' is not key=value", spec, kv);
        *eq = 0;
        const char *v = eq + 1, *q = v;
        while (*q >= '0' && *q <= '9') q++;
        if (q > v && *q == '.' && q[1] >= '0' && q[1] <= '9')
            for (q++; *q >= '0' && *q <= '9'; q++) {}
        if (q == v || *q) return tp_fail(e, TP_ERR_ARG, "codec '%s': %s needs a plain decimal number, got '%s'", spec, kv, v);
        int found = -1;
        for (int i = 0; i < st->nparams; i++)
            if (!strcmp(st->params[i].key, kv)) found = i;
        if (found < 0)
            return tp_fail(e, TP_ERR_ARG, "codec '%s': %s takes no parameter '%s' (it takes %s)", spec,
                           st->method->name, kv, st->method->defaults);
        if (given[found]++) return tp_fail(e, TP_ERR_ARG, "codec '%s': %s is given twice", spec, kv);
        st->params[found].value = strtod(v, NULL);
        if (!comma) break;
        kv = comma + 1;
    }
    return TP_OK;
}

tp_status tp_codec_parse(const char *spec, tp_codec *c, tp_err *e) {
    memset(c, 0, sizeof *c);
    if (!spec || !*spec || strlen(spec) >= 200) return tp_fail(e, TP_ERR_ARG, "empty or overlong codec spec");
    char buf[256];
    int alias = rewrite_alias(spec, buf, sizeof buf);
    if (alias < 0)
        return tp_fail(e, TP_ERR_ARG, "codec '%s': a malformed alias (its values are plain decimal numbers, each key "
                       "once: svd:rank=R, tenpakx:rank=R,d=D,k=K,res=int4:g=G, sparse24+int4:g=G)", spec);
    if (!alias) snprintf(buf, sizeof buf, "%s", spec);
    size_t bl = strlen(buf);
    if (buf[0] == '+' || buf[bl - 1] == '+' || strstr(buf, "++"))
        return tp_fail(e, TP_ERR_ARG, "codec '%s': empty stage (a stray '+')", spec);
    for (char *save = NULL, *stage = strtok_r(buf, "+", &save); stage; stage = strtok_r(NULL, "+", &save)) {
        if (c->nstages == TP_CODEC_MAX_STAGES) return tp_fail(e, TP_ERR_ARG, "codec '%s': too many stages", spec);
        char *colon = strchr(stage, ':');
        if (colon) *colon = 0;
        tp_codec_stage *st = &c->stages[c->nstages];
        st->method = find_method(stage);
        if (!st->method)
            return tp_fail(e, TP_ERR_ARG, "codec '%s': unknown method '%s' (known: %s)", spec, stage, tp_codec_methods());
        tp_status s = parse_params(st, colon ? colon + 1 : NULL, spec, e);
        if (s != TP_OK) return s;
        for (int k = 0; k < st->nparams; k++) {
            double v = st->params[k].value;
            if (!strcmp(st->params[k].key, "alpha") || !strcmp(st->params[k].key, "budget") ||
                !strcmp(st->params[k].key, "damp"))
                continue; /* real-valued */
            if (v < 0 || v != floor(v) || v > 1e9)
                return tp_fail(e, TP_ERR_ARG, "codec '%s': %s must be a non-negative integer", spec, st->params[k].key);
        }
        double g = tp_codec_param_get(st, "g"), refine = tp_codec_param_get(st, "refine");
        if (has_param(st, "g") && !is_valid_group(g))
            return tp_fail(e, TP_ERR_ARG, "codec '%s': g must be a power of two in 8..4096, got %g", spec, g);
        if (has_param(st, "alpha") && !(tp_codec_param_get(st, "alpha") >= 0 && tp_codec_param_get(st, "alpha") <= 1))
            return tp_fail(e, TP_ERR_ARG, "codec '%s': alpha must be in 0..1", spec);
        if (has_param(st, "budget") && !(tp_codec_param_get(st, "budget") >= 4.25 && tp_codec_param_get(st, "budget") <= 16))
            return tp_fail(e, TP_ERR_ARG, "codec '%s': budget (bits/weight) must be in 4.25..16 (g=128 costs 4.25)", spec);
        if ((has_param(st, "awq") && tp_codec_param_get(st, "awq") > 1) ||
            (has_param(st, "search") && tp_codec_param_get(st, "search") > 1))
            return tp_fail(e, TP_ERR_ARG, "codec '%s': awq and search are 0 or 1", spec);
        if (has_param(st, "act_order") && tp_codec_param_get(st, "act_order") > 1)
            return tp_fail(e, TP_ERR_ARG, "codec '%s': act_order is 0 or 1", spec);
        if (has_param(st, "damp") && !(tp_codec_param_get(st, "damp") > 0 && tp_codec_param_get(st, "damp") <= 1))
            return tp_fail(e, TP_ERR_ARG, "codec '%s': damp must be in (0, 1] (a fraction of mean(diag H))", spec);
        if (!strcmp(st->method->name, "mixed") && (c->nstages > 0 || strchr(spec, '+')))
            return tp_fail(e, TP_ERR_ARG, "codec '%s': mixed chooses a whole tensor's codec and cannot be chained", spec);
        if (refine > 100) return tp_fail(e, TP_ERR_ARG, "codec '%s': refine must be in 0..100", spec);
        if (has_param(st, "d") && (tp_codec_param_get(st, "d") < 1 || tp_codec_param_get(st, "d") > 16))
            return tp_fail(e, TP_ERR_ARG, "codec '%s': d must be in 1..16", spec);
        if (has_param(st, "k") && (tp_codec_param_get(st, "k") < 2 || tp_codec_param_get(st, "k") > 65536))
            return tp_fail(e, TP_ERR_ARG, "codec '%s': k must be in 2..65536", spec);
        if (has_param(st, "r") && (tp_codec_param_get(st, "r") < 1 || tp_codec_param_get(st, "r") > TP_CODEC_MAX_RANK))
            return tp_fail(e, TP_ERR_ARG, "codec '%s': r must be in 1..%d (and at most min(rows, cols) of each tensor)",
                           spec, TP_CODEC_MAX_RANK);
        if (has_param(st, "v") && tp_codec_param_get(st, "v") != 4 && tp_codec_param_get(st, "v") != 16 &&
            tp_codec_param_get(st, "v") != 32)
            return tp_fail(e, TP_ERR_ARG, "codec '%s': v (2:4 value format) must be 4, 16 or 32", spec);
        c->nstages++;
    }
    if (!c->nstages) return tp_fail(e, TP_ERR_ARG, "codec '%s': no stage", spec);
    /* canonical spec: every parameter written out */
    size_t used = 0;
    for (int i = 0; i < c->nstages; i++) {
        const tp_codec_stage *st = &c->stages[i];
        if (used >= sizeof c->spec) break;
        used += (size_t)snprintf(c->spec + used, sizeof c->spec - used, "%s%s", i ? "+" : "", st->method->name);
        for (int k = 0; k < st->nparams && used < sizeof c->spec; k++) {
            /* plain decimals, so the canonical spec parses again (never %g's 1e+06 or 1e-05) */
            char num[48];
            double v = st->params[k].value;
            if (v == floor(v)) snprintf(num, sizeof num, "%.0f", v);
            else {
                snprintf(num, sizeof num, "%g", v);
                if (strchr(num, 'e')) {
                    snprintf(num, sizeof num, "%.12f", v);
                    for (size_t l = strlen(num); l > 2 && num[l - 1] == '0' && num[l - 2] != '.'; l--) num[l - 1] = 0;
                }
            }
            used += (size_t)snprintf(c->spec + used, sizeof c->spec - used, "%s%s=%s", k ? "," : ":", st->params[k].key, num);
        }
    }
    if (used >= sizeof c->spec) return tp_fail(e, TP_ERR_ARG, "codec '%s': too long once written out", spec);
    return TP_OK;
}

size_t tp_codec_blob_bytes(const tp_codec *c, int64_t rows, int64_t cols) {
    size_t n = 0;
    for (int i = 0; i < c->nstages; i++) n += c->stages[i].method->blob_bytes(&c->stages[i], rows, cols);
    return n;
}

double tp_codec_theory_bpw(const tp_codec *c, int64_t rows, int64_t cols) {
    double b = 0;
    for (int i = 0; i < c->nstages; i++) b += c->stages[i].method->theory_bpw(&c->stages[i], rows, cols);
    return b;
}

tp_status tp_codec_check_shape(const tp_codec *c, int64_t rows, int64_t cols, const char *what, tp_err *e) {
    for (int i = 0; i < c->nstages; i++) {
        const tp_codec_stage *s = &c->stages[i];
        double r = has_param(s, "r") ? tp_codec_param_get(s, "r") : 0;
        int64_t m = rows < cols ? rows : cols;
        if (r > (double)m) /* a rank beyond min(rows, cols) stores more than the matrix and fits nothing better */
            return tp_fail(e, TP_ERR_ARG, "codec '%s': r=%g exceeds min(rows, cols) = %lld of %s (%lldx%lld)", c->spec, r,
                           (long long)m, what ? what : "the matrix", (long long)rows, (long long)cols);
        /* a codebook of more centroids than the matrix has vectors fits nothing better and its k-means
         * runs for ever (vq:k=65536 on a 384x384 matrix); vectors longer than a row are padding */
        if (!strcmp(s->method->name, "vq")) {
            double d = tp_codec_param_get(s, "d"), k = tp_codec_param_get(s, "k");
            double nvec = (double)rows * ceil((double)cols / (d >= 1 ? d : 1));
            if (d > (double)cols)
                return tp_fail(e, TP_ERR_ARG, "codec '%s': d=%g exceeds the %lld columns of %s (%lldx%lld)", c->spec, d,
                               (long long)cols, what ? what : "the matrix", (long long)rows, (long long)cols);
            if (k > nvec)
                return tp_fail(e, TP_ERR_ARG, "codec '%s': k=%g exceeds the %.0f vectors of %s (%lldx%lld, d=%g)", c->spec,
                               k, nvec, what ? what : "the matrix", (long long)rows, (long long)cols, d);
        }
    }
    return TP_OK;
}

tp_status tp_codec_encode(const tp_codec *c, const float *W, int64_t rows, int64_t cols, uint8_t *blob, tp_err *e) {
    tp_status cs = tp_codec_check_shape(c, rows, cols, NULL, e);
    if (cs != TP_OK) return cs;
    size_t n = (size_t)(rows * cols);
    float *res = NULL; /* the residual the next stage encodes */
    const float *cur = W;
    tp_status st = TP_OK;
    for (int i = 0; i < c->nstages && st == TP_OK; i++) {
        const tp_codec_stage *s = &c->stages[i];
        st = s->method->encode(s, cur, rows, cols, blob, e);
        if (st != TP_OK || i + 1 == c->nstages) break;
        if (!res) {
            res = tp_alloc(n * sizeof(float));
            if (!res) { st = tp_fail(e, TP_ERR_NOMEM, "out of memory"); break; }
            memcpy(res, W, n * sizeof(float));
        }
        /* res -= decode(stage): decode_add into a negated copy */
        for (size_t k = 0; k < n; k++) res[k] = -res[k];
        st = s->method->decode_add(s, blob, rows, cols, res, e);
        for (size_t k = 0; k < n; k++) res[k] = -res[k];
        cur = res;
        blob += s->method->blob_bytes(s, rows, cols);
    }
    tp_free(res);
    return st;
}

tp_status tp_codec_decode(const tp_codec *c, const uint8_t *blob, size_t len, int64_t rows, int64_t cols, float *W,
                          tp_err *e) {
    if (len != tp_codec_blob_bytes(c, rows, cols))
        return tp_fail(e, TP_ERR_FORMAT, "%s blob for %lldx%lld is %zu bytes, expected %zu", c->spec, (long long)rows,
                       (long long)cols, len, tp_codec_blob_bytes(c, rows, cols));
    memset(W, 0, (size_t)(rows * cols) * sizeof(float));
    for (int i = 0; i < c->nstages; i++) {
        const tp_codec_stage *s = &c->stages[i];
        tp_status st = s->method->decode_add(s, blob, rows, cols, W, e);
        if (st != TP_OK) return st;
        blob += s->method->blob_bytes(s, rows, cols);
    }
    return TP_OK;
}
