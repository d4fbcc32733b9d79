/* Calibration: per-input-channel activation statistics of every linear layer. See calib.h. */
#include "pipeline/calib.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/compress.h"
#include "pipeline/model.h"
#include "pipeline/tokenizer.h"
#include "tenpak/sha256.h"

const char *tp_calib_default_path(void) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/datasets/corpus/brown.txt.gz", tp_shared_dir());
    return buf;
}

/* The first max_bytes bytes of a file (gunzipped when it ends in .gz), cut after the last newline
 * (or at a UTF-8 character boundary when there is none) so no character is split. */
static char *read_prefix(const char *path, size_t max_bytes, size_t *len, tp_err *e) {
    size_t n = 0;
    char *buf = tp_read_text(path, max_bytes, "calibration text", &n, e);
    if (!buf) return NULL;
    if (n == max_bytes) { /* a prefix: end it cleanly */
        size_t k = n;
        while (k > n / 2 && buf[k - 1] != '\n') k--;
        if (k > n / 2) n = k;
        else
            while (n > 0 && ((unsigned char)buf[n - 1] & 0xC0) == 0x80) n--;
        if (n > 0 && ((unsigned char)buf[n - 1] & 0xC0) == 0xC0) n--; /* a lead byte without its tail */
    }
    if (n == 0) { free(buf); tp_fail(e, TP_ERR_FORMAT, "%s: empty calibration text", path); return NULL; }
    buf[n] = 0;
    *len = n;
    return buf;
}

typedef struct sink_ctx {
    tp_calib *c;
    int failed;
    double *xd; /* TP_CALIB_XTX: X in double for dsyrk, xd_n doubles */
    size_t xd_n;
} sink_ctx;

static tp_calib_tensor *find(const tp_calib *c, const char *name) {
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->t[i].name, name)) return &c->t[i];
    return NULL;
}

static void sink(void *user, const char *name, const float *X, int n, int in) {
    sink_ctx *s = user;
    tp_calib *c = s->c;
    tp_calib_tensor *t = find(c, name);
    if (!t) {
        if (c->n == c->cap) {
            int nc = c->cap ? 2 * c->cap : 64;
            tp_calib_tensor *nt = realloc(c->t, (size_t)nc * sizeof *nt);
            if (!nt) { s->failed = 1; return; }
            c->t = nt;
            c->cap = nc;
        }
        t = &c->t[c->n];
        memset(t, 0, sizeof *t);
        t->name = strdup(name);
        t->in = in;
        t->abs_sum = calloc((size_t)in, sizeof(double));
        t->sq_sum = calloc((size_t)in, sizeof(double));
        if (c->flags & TP_CALIB_XTX) t->xtx = calloc((size_t)in * (size_t)in, sizeof(double));
        if (!t->name || !t->abs_sum || !t->sq_sum || ((c->flags & TP_CALIB_XTX) && !t->xtx)) {
            free(t->name); free(t->abs_sum); free(t->sq_sum); free(t->xtx);
            s->failed = 1;
            return;
        }
        c->n++;
    }
    if (t->in != in) { s->failed = 1; return; }
    for (int r = 0; r < n; r++) {
        const float *x = X + (size_t)r * in;
        for (int k = 0; k < in; k++) {
            t->abs_sum[k] += fabs((double)x[k]);
            t->sq_sum[k] += (double)x[k] * x[k];
        }
    }
    t->rows += (uint64_t)n;
    if (t->xtx && n > 0) { /* upper triangle of xtx += X^T X (mirrored when collection ends) */
        size_t need = (size_t)n * (size_t)in;
        if (need > s->xd_n) {
            free(s->xd);
            s->xd_n = 0;
            if (!(s->xd = malloc(need * sizeof *s->xd))) { s->failed = 1; return; }
            s->xd_n = need;
        }
        for (size_t k = 0; k < need; k++) s->xd[k] = X[k];
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, in, n, 1.0, s->xd, in, 1.0, t->xtx, in);
    }
}

void tp_calib_free(tp_calib *c) {
    if (!c) return;
    for (int i = 0; i < c->n; i++) {
        free(c->t[i].name); free(c->t[i].abs_sum); free(c->t[i].sq_sum);
        free(c->t[i].absmean); free(c->t[i].sqmean); free(c->t[i].xtx);
    }
    free(c->t);
    free(c);
}

tp_status tp_calib_collect(const char *model_dir, const char *text_path, size_t tokens, tp_calib **out, tp_err *e) {
    return tp_calib_collect_ex(model_dir, text_path, tokens, 0, out, e);
}

tp_status tp_calib_collect_ex(const char *model_dir, const char *text_path, size_t tokens, unsigned flags,
                              tp_calib **out, tp_err *e) {
    *out = NULL;
    if (flags & ~TP_CALIB_XTX) return tp_fail(e, TP_ERR_ARG, "calibration: unknown flags 0x%x", flags);
    if (!text_path) text_path = tp_calib_default_path();
    if (!tokens) tokens = TP_CALIB_DEFAULT_TOKENS;
    const char *base = strrchr(text_path, '/');
    base = base ? base + 1 : text_path;
    if (!strncmp(base, "wiki.test", 9))
        return tp_fail(e, TP_ERR_ARG, "%s: evaluation text cannot be calibration text (use the training corpus, e.g. %s)",
                       text_path, tp_calib_default_path());
    size_t len = 0;
    /* about 4 bytes per token in English BPE; 16 leaves room for code and markup */
    char *text = read_prefix(text_path, tokens * 16 + 4096, &len, e);
    if (!text) return TP_ERR_IO;
    tp_calib *c = calloc(1, sizeof *c);
    if (!c) { free(text); return tp_fail(e, TP_ERR_NOMEM, "out of memory"); }
    snprintf(c->path, sizeof c->path, "%s", text_path);
    c->flags = flags;
    uint8_t dg[32];
    tp_sha256(text, len, dg);
    for (int i = 0; i < 32; i++) snprintf(c->sha256 + 2 * i, 3, "%02x", dg[i]);
    char tpath[4200];
    snprintf(tpath, sizeof tpath, "%s/tokenizer.json", model_dir);
    tp_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    tp_status s = tp_tokenizer_load(tpath, &tok, e);
    if (s == TP_OK) s = tp_tokenizer_encode(tok, text, len, 1, &ids, &n, e);
    tp_tokenizer_free(tok);
    free(text);
    if (s == TP_OK && n < 2) s = tp_fail(e, TP_ERR_FORMAT, "%s: calibration text gives %zu tokens", text_path, n);
    if (n > tokens) n = tokens;
    tp_model *m = NULL;
    tp_model_opts mo = {0};
    if (s == TP_OK) s = tp_model_load(model_dir, &mo, &m, e);
    sink_ctx sc = {c, 0, NULL, 0};
    if (s == TP_OK) {
        int ctx = tp_model_capacity(m) < 1024 ? tp_model_capacity(m) : 1024;
        tp_model_set_act_sink(m, sink, &sc);
        for (size_t off = 0; off < n && s == TP_OK; off += (size_t)ctx) {
            int w = (int)(n - off < (size_t)ctx ? n - off : (size_t)ctx);
            s = tp_model_forward(m, ids + off, w, 0, w, NULL, e);
        }
        tp_model_set_act_sink(m, NULL, NULL);
        if (s == TP_OK && sc.failed) s = tp_fail(e, TP_ERR_NOMEM, "calibration: out of memory or inconsistent layer width");
    }
    tp_model_free(m);
    free(ids);
    free(sc.xd);
    c->tokens = n;
    for (int i = 0; s == TP_OK && i < c->n; i++) {
        tp_calib_tensor *t = &c->t[i];
        t->absmean = malloc((size_t)t->in * sizeof(float));
        t->sqmean = malloc((size_t)t->in * sizeof(float));
        if (!t->absmean || !t->sqmean) { s = tp_fail(e, TP_ERR_NOMEM, "out of memory"); break; }
        for (int k = 0; k < t->in; k++) {
            t->absmean[k] = (float)(t->abs_sum[k] / (double)t->rows);
            t->sqmean[k] = (float)(t->sq_sum[k] / (double)t->rows);
        }
        for (int a = 0; t->xtx && a < t->in; a++) /* the lower triangle from the upper */
            for (int b = 0; b < a; b++) t->xtx[(size_t)a * t->in + b] = t->xtx[(size_t)b * t->in + a];
    }
    if (s != TP_OK) { tp_calib_free(c); return s; }
    *out = c;
    return TP_OK;
}

const float *tp_calib_absmean(const tp_calib *c, const char *name, int64_t in) {
    const tp_calib_tensor *t = c ? find(c, name) : NULL;
    return t && t->in == in ? t->absmean : NULL;
}
const float *tp_calib_sqmean(const tp_calib *c, const char *name, int64_t in) {
    const tp_calib_tensor *t = c ? find(c, name) : NULL;
    return t && t->in == in ? t->sqmean : NULL;
}

const double *tp_calib_xtx(const tp_calib *c, const char *name, int64_t in, int64_t *nsamples) {
    const tp_calib_tensor *t = c ? find(c, name) : NULL;
    int ok = t && t->in == in && t->xtx;
    if (nsamples) *nsamples = ok ? (int64_t)t->rows : 0;
    return ok ? t->xtx : NULL;
}

void tp_awq_scales(const float *absmean, int64_t cols, double alpha, uint16_t *s16) {
    double mx = 0;
    for (int64_t k = 0; absmean && k < cols; k++)
        if (absmean[k] > mx) mx = absmean[k];
    if (!absmean || !(mx > 0) || !isfinite(mx) || cols <= 0) {
        for (int64_t k = 0; k < cols; k++) s16[k] = tp_f32_to_f16(1.0f);
        return;
    }
    double floor_ = 1e-6 * mx, logsum = 0;
    for (int64_t k = 0; k < cols; k++) {
        double a = absmean[k] > floor_ ? absmean[k] : floor_;
        logsum += alpha * log(a);
    }
    double lg = logsum / (double)cols;
    for (int64_t k = 0; k < cols; k++) {
        double a = absmean[k] > floor_ ? absmean[k] : floor_;
        double s = exp(alpha * log(a) - lg);
        if (s < 1.0 / 4096) s = 1.0 / 4096;
        if (s > 4096) s = 4096;
        s16[k] = tp_f32_to_f16((float)s);
    }
}
