/* Sensitivity proxies, the mixed allocator and the proxy-vs-KLD check. See sensitivity.h. */
#include "pipeline/sensitivity.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline/calib.h"
#include "pipeline/compress.h"
#include "pipeline/model.h"
#include "pipeline/stats.h"
#include "pipeline/tokenizer.h"
#include "tenpak/sha256.h"

double tp_proxy_diag(const float *W, const float *D, int64_t rows, int64_t cols, const float *sqmean) {
    double s = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            double d = (double)D[r * cols + c] - W[r * cols + c];
            s += (sqmean ? (double)sqmean[c] : 1.0) * d * d;
        }
    return s;
}

double tp_proxy_full(const float *W, const float *D, int64_t rows, int64_t cols, const double *H) {
    /* sum_r d_r^T H d_r, one row at a time: T = H d_r (symmetric H) */
    double *d = malloc((size_t)cols * sizeof *d), *t = malloc((size_t)cols * sizeof *t), s = 0;
    if (!d || !t) { free(d); free(t); return NAN; }
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t c = 0; c < cols; c++) d[c] = (double)D[r * cols + c] - W[r * cols + c];
        cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)cols, (int)cols, 1.0, H, (int)cols, d, 1, 0.0, t, 1);
        for (int64_t c = 0; c < cols; c++) s += d[c] * t[c];
    }
    free(d);
    free(t);
    return s;
}

static const double *rank_key;
static int rank_cmp(const void *a, const void *b) {
    double x = rank_key[*(const size_t *)a], y = rank_key[*(const size_t *)b];
    return x < y ? -1 : x > y;
}
static void ranks(const double *x, size_t n, double *rk) {
    size_t *ix = malloc(n * sizeof *ix);
    if (!ix) { for (size_t i = 0; i < n; i++) rk[i] = NAN; return; }
    for (size_t i = 0; i < n; i++) ix[i] = i;
    rank_key = x;
    qsort(ix, n, sizeof *ix, rank_cmp);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j + 1 < n && x[ix[j + 1]] == x[ix[i]]) j++;
        for (size_t k = i; k <= j; k++) rk[ix[k]] = 0.5 * (double)(i + j) + 1.0;
        i = j + 1;
    }
    free(ix);
}

double tp_spearman(const double *x, const double *y, size_t n) {
    if (n < 2) return NAN;
    double *rx = malloc(n * sizeof *rx), *ry = malloc(n * sizeof *ry);
    double r = NAN;
    if (rx && ry) {
        ranks(x, n, rx);
        ranks(y, n, ry);
        r = tp_pearson(rx, ry, n);
    }
    free(rx);
    free(ry);
    return r;
}

/* ---- the mixed allocator ---- */
tp_status tp_mixed_measure(const tp_codec *mixed, const float *W, int64_t rows, int64_t cols, const float *absmean,
                           const float *sqmean, const double *xtx, int64_t nsamples, int full, tp_mixed_choice *out,
                           int *n, tp_err *e) {
    return tp_mixed_measure_ex(mixed, W, rows, cols, absmean, sqmean, xtx, nsamples, full, 0, out, n, e);
}

void tp_mixed_free_blobs(tp_mixed_choice *ch, size_t count) {
    for (size_t i = 0; ch && i < count; i++) {
        tp_free(ch[i].blob);
        ch[i].blob = NULL;
    }
}

tp_status tp_mixed_measure_ex(const tp_codec *mixed, const float *W, int64_t rows, int64_t cols, const float *absmean,
                              const float *sqmean, const double *xtx, int64_t nsamples, int full, int keep_blobs,
                              tp_mixed_choice *out, int *n, tp_err *e) {
    char specs[TP_MIXED_MAX_CANDIDATES][96];
    int nc = tp_codec_mixed_candidates(mixed, specs, TP_MIXED_MAX_CANDIDATES);
    double alpha_of_g[16];
    int have_alpha[16] = {0};
    float *D = tp_alloc((size_t)(rows * cols) * sizeof(float));
    if (!D) return tp_fail(e, TP_ERR_NOMEM, "out of memory for a %lldx%lld matrix", (long long)rows, (long long)cols);
    tp_status s = TP_OK;
    *n = 0;
    for (int k = 0; k < nc && s == TP_OK; k++) {
        tp_codec c;
        if ((s = tp_codec_parse(specs[k], &c, e)) != TP_OK) break;
        tp_codec_set_calib(&c, absmean, sqmean);
        tp_codec_set_calib_xtx(&c, xtx, nsamples);
        if (tp_codec_needs_xtx(&c) && !(xtx && nsamples > 0)) {
            tp_mixed_choice *o = &out[(*n)++];
            snprintf(o->spec, sizeof o->spec, "%.95s", c.spec);
            o->bytes = SIZE_MAX;
            o->sens = INFINITY;
            o->blob = NULL;
            continue;
        }
        if (!strcmp(c.stages[0].method->name, "awq") && tp_codec_param_get(&c.stages[0], "search") != 0) {
            /* one search per g (at refine=0), its alpha fixed in the stored spec */
            int g = (int)tp_codec_param_get(&c.stages[0], "g"), lg = 0;
            while ((1 << lg) < g && lg < 15) lg++;
            if (!have_alpha[lg]) {
                tp_codec sc;
                char sspec[96];
                snprintf(sspec, sizeof sspec, "awq:g=%d,search=1,refine=0", g);
                if ((s = tp_codec_parse(sspec, &sc, e)) != TP_OK) break;
                tp_codec_set_calib(&sc, absmean, sqmean);
                if ((s = tp_codec_awq_search_alpha(&sc, W, rows, cols, &alpha_of_g[lg], e)) != TP_OK) break;
                have_alpha[lg] = 1;
            }
            char fixed[96];
            snprintf(fixed, sizeof fixed, "awq:g=%d,alpha=%.6g,search=0,refine=%d", g, alpha_of_g[lg],
                     (int)tp_codec_param_get(&c.stages[0], "refine"));
            if ((s = tp_codec_parse(fixed, &c, e)) != TP_OK) break;
            tp_codec_set_calib(&c, absmean, sqmean);
        }
        size_t nb = tp_codec_blob_bytes(&c, rows, cols);
        uint8_t *blob = tp_alloc(nb);
        if (!blob) { s = tp_fail(e, TP_ERR_NOMEM, "out of memory"); break; }
        s = tp_codec_encode(&c, W, rows, cols, blob, e);
        if (s == TP_OK) s = tp_codec_decode(&c, blob, nb, rows, cols, D, e);
        if (s != TP_OK || !keep_blobs) tp_free(blob);
        if (s != TP_OK) break;
        tp_mixed_choice *o = &out[(*n)++];
        snprintf(o->spec, sizeof o->spec, "%.95s", c.spec);
        o->bytes = nb;
        o->blob = keep_blobs ? blob : NULL;
        o->sens = full && xtx && nsamples > 0 ? tp_proxy_full(W, D, rows, cols, xtx) / (double)nsamples
                                      : tp_proxy_diag(W, D, rows, cols, sqmean);
    }
    tp_free(D);
    return s;
}

tp_status tp_mixed_allocate(const tp_mixed_choice *ch, int n, int nc, double limit, int *pick, tp_err *e) {
    if (n <= 0 || nc <= 0) return TP_OK;
#define B(j, k) ((double)ch[(size_t)(j) * (size_t)nc + (size_t)(k)].bytes)
#define S(j, k) (ch[(size_t)(j) * (size_t)nc + (size_t)(k)].sens)
    double bytes = 0;
    for (int j = 0; j < n; j++) {
        int b = 0;
        for (int k = 1; k < nc; k++)
            if (B(j, k) < B(j, b) || (B(j, k) == B(j, b) && S(j, k) < S(j, b))) b = k;
        pick[j] = b;
        bytes += B(j, b);
    }
    if (bytes > limit)
        return tp_fail(e, TP_ERR_ARG, "the budget (%.0f bytes) is below the coarsest candidates' %.0f bytes", limit, bytes);
    /* 1. greedy along each tensor's lower convex hull of (bytes, proxy) */
    int *hull = malloc((size_t)n * (size_t)nc * sizeof *hull), *hn = calloc((size_t)n, sizeof *hn),
        *hp = calloc((size_t)n, sizeof *hp);
    if (!hull || !hn || !hp) {
        free(hull); free(hn); free(hp);
        return tp_fail(e, TP_ERR_NOMEM, "out of memory");
    }
    for (int j = 0; j < n; j++) {
        int *h = hull + (size_t)j * (size_t)nc, m = 0, cur = pick[j];
        h[m++] = cur;
        for (;;) { /* next hull point: the steepest proxy drop per added byte from cur */
            int nx = -1;
            double best = 0;
            for (int k = 0; k < nc; k++) {
                double db = B(j, k) - B(j, cur), ds = S(j, cur) - S(j, k);
                if (db <= 0 || ds <= 0) continue;
                if (nx < 0 || ds / db > best || (ds / db == best && B(j, k) > B(j, nx))) { best = ds / db; nx = k; }
            }
            if (nx < 0) break;
            h[m++] = cur = nx;
        }
        hn[j] = m;
    }
    for (;;) {
        int bj = -1;
        double best = 0;
        for (int j = 0; j < n; j++) {
            if (hp[j] + 1 >= hn[j]) continue;
            int a = hull[(size_t)j * (size_t)nc + (size_t)hp[j]], b = hull[(size_t)j * (size_t)nc + (size_t)hp[j] + 1];
            double db = B(j, b) - B(j, a), ds = S(j, a) - S(j, b);
            if (bytes + db > limit) continue;
            if (ds / db > best) { best = ds / db; bj = j; }
        }
        if (bj < 0) break;
        int a = hull[(size_t)bj * (size_t)nc + (size_t)hp[bj]], b = hull[(size_t)bj * (size_t)nc + (size_t)hp[bj] + 1];
        bytes += B(bj, b) - B(bj, a);
        pick[bj] = b;
        hp[bj]++;
    }
    free(hull); free(hn); free(hp);
    /* 2. no uniform assignment that fits may beat it */
    double cur = 0;
    for (int j = 0; j < n; j++) cur += S(j, pick[j]);
    for (int k = 0; k < nc; k++) {
        double ub = 0, us = 0;
        for (int j = 0; j < n; j++) { ub += B(j, k); us += S(j, k); }
        if (ub <= limit && us < cur) {
            for (int j = 0; j < n; j++) pick[j] = k;
            cur = us;
            bytes = ub;
        }
    }
    /* 3. single and pair moves while one lowers the sum and fits */
    for (int iter = 0; iter < 100000; iter++) {
        double gain = 1e-12 * fabs(cur);
        int mj = -1, mk = -1, pj = -1, pk = -1;
        for (int j = 0; j < n; j++)
            for (int k = 0; k < nc; k++) {
                double db = B(j, k) - B(j, pick[j]), ds = S(j, pick[j]) - S(j, k);
                if (bytes + db <= limit && ds > gain) { gain = ds; mj = j; mk = k; pj = -1; }
                if (db >= 0) continue; /* a move that frees bytes, paired with one that spends them */
                for (int j2 = 0; j2 < n; j2++) {
                    if (j2 == j) continue;
                    for (int k2 = 0; k2 < nc; k2++) {
                        double db2 = B(j2, k2) - B(j2, pick[j2]), ds2 = S(j2, pick[j2]) - S(j2, k2);
                        if (db2 <= 0 || bytes + db + db2 > limit || ds + ds2 <= gain) continue;
                        gain = ds + ds2; mj = j; mk = k; pj = j2; pk = k2;
                    }
                }
            }
        if (mj < 0) break;
        bytes += B(mj, mk) - B(mj, pick[mj]);
        cur -= S(mj, pick[mj]) - S(mj, mk);
        pick[mj] = mk;
        if (pj >= 0) {
            bytes += B(pj, pk) - B(pj, pick[pj]);
            cur -= S(pj, pick[pj]) - S(pj, pk);
            pick[pj] = pk;
        }
    }
#undef B
#undef S
    return TP_OK;
}

/* ---- the proxy against the truth ---- */
static int is_embedding_name(const char *name) {
    return strstr(name, "embed") || strstr(name, "wte") || strstr(name, "wpe") || strstr(name, "lm_head");
}
static int selected(const char *name, const char *select) {
    if (!strcmp(select, "mlp")) return strstr(name, ".mlp.") != NULL;
    if (!strcmp(select, "attn")) return strstr(name, ".attn.") || strstr(name, ".self_attn.");
    return 1;
}

/* log-softmax of each of n rows of V logits, in place (double sums) */
static void log_softmax_rows(float *x, int n, int V) {
    for (int i = 0; i < n; i++) {
        float *r = x + (size_t)i * (size_t)V;
        double mx = r[0], z = 0;
        for (int v = 1; v < V; v++) if (r[v] > mx) mx = r[v];
        for (int v = 0; v < V; v++) z += exp((double)r[v] - mx);
        double lz = mx + log(z);
        for (int v = 0; v < V; v++) r[v] = (float)((double)r[v] - lz);
    }
}

/* sum over n rows of KL(p || q) with log-probabilities lp, lq */
static double kl_rows(const float *lp, const float *lq, int n, int V) {
    double s = 0;
    for (int i = 0; i < n; i++) {
        const float *a = lp + (size_t)i * (size_t)V, *b = lq + (size_t)i * (size_t)V;
        double k = 0;
        for (int v = 0; v < V; v++) k += exp((double)a[v]) * ((double)a[v] - b[v]);
        s += k;
    }
    return s;
}

tp_status tp_calib_text_ids(const char *model_dir, const char *path, size_t tokens, int32_t **ids, size_t *n, tp_err *e) {
    *ids = NULL;
    *n = 0;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (!strncmp(base, "wiki.test", 9))
        return tp_fail(e, TP_ERR_ARG, "%s: evaluation text cannot be calibration text", path);
    size_t len = 0;
    char *text = tp_read_text(path, tokens * 16 + 4096, "calibration text", &len, e);
    if (!text) return TP_ERR_IO;
    while (len > 0 && ((unsigned char)text[len - 1] & 0xC0) == 0x80) len--; /* no split character */
    if (len > 0 && ((unsigned char)text[len - 1] & 0xC0) == 0xC0) len--;
    char tpath[4200];
    snprintf(tpath, sizeof tpath, "%s/tokenizer.json", model_dir);
    tp_tokenizer *tok = NULL;
    tp_status s = tp_tokenizer_load(tpath, &tok, e);
    if (s == TP_OK) s = tp_tokenizer_encode(tok, text, len, 1, ids, n, e);
    tp_tokenizer_free(tok);
    free(text);
    if (*n > tokens) *n = tokens;
    if (s == TP_OK && *n < 2) s = tp_fail(e, TP_ERR_FORMAT, "%s: calibration text gives %zu tokens", path, *n);
    if (s != TP_OK) { free(*ids); *ids = NULL; *n = 0; }
    return s;
}

tp_status tp_tensor_klds(tp_model *m, const int32_t *ids, size_t n, int nt, const char *const *names,
                         const float *const *Dfile, double *kld, int quiet, tp_err *e) {
    int V = tp_model_cfg(m)->vocab;
    int ctx = tp_model_capacity(m) < 1024 ? tp_model_capacity(m) : 1024;
    float *lp = tp_alloc((size_t)ctx * (size_t)V * sizeof(float)), *lq = tp_alloc((size_t)ctx * (size_t)V * sizeof(float));
    tp_status s = TP_OK;
    if (!lp || !lq) s = tp_fail(e, TP_ERR_NOMEM, "out of memory for %d x %d logits", ctx, V);
    for (int k = 0; k < nt; k++) kld[k] = 0;
    for (size_t off = 0; s == TP_OK && off < n; off += (size_t)ctx) {
        int w = (int)(n - off < (size_t)ctx ? n - off : (size_t)ctx);
        if ((s = tp_model_forward(m, ids + off, w, 0, 0, lp, e)) != TP_OK) break;
        log_softmax_rows(lp, w, V);
        for (int k = 0; k < nt && s == TP_OK; k++) {
            if (!quiet && isatty(2))
                fprintf(stderr, "\r  KLD: window %zu/%zu, tensor %d/%d ...", off / (size_t)ctx + 1,
                        (n + (size_t)ctx - 1) / (size_t)ctx, k + 1, nt);
            if ((s = tp_model_override_weight(m, names[k], Dfile[k], e)) != TP_OK) break;
            s = tp_model_forward(m, ids + off, w, 0, 0, lq, e);
            tp_status s2 = tp_model_override_weight(m, names[k], NULL, e);
            if (s == TP_OK) s = s2;
            if (s != TP_OK) break;
            log_softmax_rows(lq, w, V);
            kld[k] += kl_rows(lp, lq, w, V);
        }
    }
    if (!quiet && isatty(2)) fputc('\n', stderr);
    for (int k = 0; k < nt && n; k++) kld[k] /= (double)n;
    tp_free(lp);
    tp_free(lq);
    return s;
}

struct tp_kld_ref {
    tp_model *m;
    const int32_t *ids;
    size_t n;
    int ctx, V;
    float *lp; /* n x V base log-probabilities */
    float *lq; /* ctx x V */
};

tp_status tp_kld_ref_init(tp_model *m, const int32_t *ids, size_t n, tp_kld_ref **out, tp_err *e) {
    *out = NULL;
    tp_kld_ref *r = calloc(1, sizeof *r);
    if (!r) return tp_fail(e, TP_ERR_NOMEM, "out of memory");
    r->m = m;
    r->ids = ids;
    r->n = n;
    r->V = tp_model_cfg(m)->vocab;
    r->ctx = tp_model_capacity(m) < 1024 ? tp_model_capacity(m) : 1024;
    r->lp = tp_alloc(n * (size_t)r->V * sizeof(float));
    r->lq = tp_alloc((size_t)r->ctx * (size_t)r->V * sizeof(float));
    tp_status s = TP_OK;
    if (!r->lp || !r->lq) s = tp_fail(e, TP_ERR_NOMEM, "out of memory for %zu x %d logits", n, r->V);
    for (size_t off = 0; s == TP_OK && off < n; off += (size_t)r->ctx) {
        int w = (int)(n - off < (size_t)r->ctx ? n - off : (size_t)r->ctx);
        float *lp = r->lp + off * (size_t)r->V;
        if ((s = tp_model_forward(m, ids + off, w, 0, 0, lp, e)) != TP_OK) break;
        log_softmax_rows(lp, w, r->V);
    }
    if (s != TP_OK) { tp_kld_ref_free(r); return s; }
    *out = r;
    return TP_OK;
}

void tp_kld_ref_free(tp_kld_ref *r) {
    if (!r) return;
    tp_free(r->lp);
    tp_free(r->lq);
    free(r);
}

tp_status tp_kld_ref_measure(tp_kld_ref *r, int nt, const char *const *names, const float *const *Dfile, double *kld,
                             double *nll_delta, tp_err *e) {
    tp_status s = TP_OK;
    int set = 0;
    for (; set < nt && s == TP_OK; set++) s = tp_model_override_weight(r->m, names[set], Dfile[set], e);
    double kl = 0, dn = 0;
    size_t nn = 0;
    for (size_t off = 0; s == TP_OK && off < r->n; off += (size_t)r->ctx) {
        int w = (int)(r->n - off < (size_t)r->ctx ? r->n - off : (size_t)r->ctx);
        const float *lp = r->lp + off * (size_t)r->V;
        if ((s = tp_model_forward(r->m, r->ids + off, w, 0, 0, r->lq, e)) != TP_OK) break;
        log_softmax_rows(r->lq, w, r->V);
        kl += kl_rows(lp, r->lq, w, r->V);
        for (int i = 0; i + 1 < w; i++) {
            int32_t t = r->ids[off + (size_t)i + 1];
            dn += (double)lp[(size_t)i * (size_t)r->V + (size_t)t] - r->lq[(size_t)i * (size_t)r->V + (size_t)t];
            nn++;
        }
    }
    for (int k = 0; k < set; k++) {
        tp_status s2 = tp_model_override_weight(r->m, names[k], NULL, e);
        if (s == TP_OK) s = s2;
    }
    if (kld) *kld = r->n ? kl / (double)r->n : 0;
    if (nll_delta) *nll_delta = nn ? dn / (double)nn : 0;
    return s;
}

typedef struct cc_tensor {
    const char *name;
    int64_t rows, cols;
    float *Dfile; /* the quantised weight in file layout, for tp_model_override_weight */
    double diag, full, kld;
} cc_tensor;

tp_status tp_calib_check(const tp_calib_check_opts *o, cJSON **out, tp_err *e) {
    *out = NULL;
    double t0 = tp_now();
    const char *select = o->select ? o->select : "linear";
    const char *text_path = o->calib_data ? o->calib_data : tp_calib_default_path();
    size_t kld_tokens = o->kld_tokens ? o->kld_tokens : 2048;
    if (strcmp(select, "linear") && strcmp(select, "mlp") && strcmp(select, "attn"))
        return tp_fail(e, TP_ERR_ARG, "--select must be linear, mlp or attn, got '%s'", select);
    tp_codec codec;
    tp_status s = tp_codec_parse(o->codec, &codec, e);
    if (s != TP_OK) return s;
    if (tp_codec_is_mixed(&codec))
        return tp_fail(e, TP_ERR_ARG, "calib-check: %s chooses per tensor; give one codec (e.g. int4:g=128)", codec.spec);
    tp_calib *cal = NULL;
    if (!o->quiet) fprintf(stderr, "calib-check: statistics (mean x^2 and X^T X) over %s ...\n", text_path);
    s = tp_calib_collect_ex(o->model_dir, text_path, o->calib_tokens, TP_CALIB_XTX, &cal, e);
    if (s != TP_OK) return s;
    /* the KLD text: the first kld_tokens tokens of the same calibration text */
    int32_t *ids = NULL;
    size_t n = 0;
    s = tp_calib_text_ids(o->model_dir, text_path, kld_tokens, &ids, &n, e);
    tp_model *m = NULL;
    if (s == TP_OK) s = tp_model_load(o->model_dir, NULL, &m, e);
    /* every selected linear weight quantised alone, with its proxies */
    size_t nw = m ? tp_model_num_weights(m) : 0;
    cc_tensor *ts = calloc(nw ? nw : 1, sizeof *ts);
    int nt = 0;
    if (s == TP_OK && !ts) s = tp_fail(e, TP_ERR_NOMEM, "out of memory");
    const char *mtype = m ? tp_model_cfg(m)->model_type : "";
    int conv1d = !strcmp(mtype, "gpt2"); /* GPT-2 stores Conv1D weights [in, out] */
    for (size_t i = 0; s == TP_OK && i < nw; i++) {
        const tp_st_tensor *t = tp_model_weight(m, i);
        if (t->ndim != 2 || !tp_st_is_float(t->dtype) || is_embedding_name(t->name) || !selected(t->name, select)) continue;
        int transposed = conv1d;
        int64_t rows = transposed ? t->shape[1] : t->shape[0], cols = transposed ? t->shape[0] : t->shape[1];
        float *raw = tp_alloc((size_t)t->numel * 4), *W = tp_alloc((size_t)t->numel * 4), *D = tp_alloc((size_t)t->numel * 4);
        tp_codec c = codec;
        int64_t nx = 0;
        const double *xtx = tp_calib_xtx(cal, t->name, cols, &nx);
        tp_codec_set_calib(&c, tp_calib_absmean(cal, t->name, cols), tp_calib_sqmean(cal, t->name, cols));
        tp_codec_set_calib_xtx(&c, xtx, nx);
        size_t nb = tp_codec_blob_bytes(&c, rows, cols);
        uint8_t *blob = tp_alloc(nb);
        if (!raw || !W || !D || !blob) s = tp_fail(e, TP_ERR_NOMEM, "out of memory for %s", t->name);
        if (s == TP_OK && !xtx) s = tp_fail(e, TP_ERR_INTERNAL, "calib-check: no statistics for %s", t->name);
        if (s == TP_OK) {
            tp_st_to_f32(t, raw);
            if (transposed)
                for (int64_t a = 0; a < t->shape[0]; a++)
                    for (int64_t b = 0; b < t->shape[1]; b++) W[b * cols + a] = raw[a * t->shape[1] + b];
            else memcpy(W, raw, (size_t)t->numel * 4);
            s = tp_codec_encode(&c, W, rows, cols, blob, e);
        }
        if (s == TP_OK) s = tp_codec_decode(&c, blob, nb, rows, cols, D, e);
        if (s == TP_OK) {
            cc_tensor *x = &ts[nt++];
            x->name = t->name;
            x->rows = rows;
            x->cols = cols;
            x->diag = tp_proxy_diag(W, D, rows, cols, tp_calib_sqmean(cal, t->name, cols));
            x->full = tp_proxy_full(W, D, rows, cols, xtx) / (double)nx;
            if (transposed) /* back to the file's [in, out] */
                for (int64_t r = 0; r < rows; r++)
                    for (int64_t q = 0; q < cols; q++) raw[q * rows + r] = D[r * cols + q];
            else memcpy(raw, D, (size_t)t->numel * 4);
            x->Dfile = raw;
            raw = NULL;
        }
        tp_free(raw); tp_free(W); tp_free(D); tp_free(blob);
    }
    if (s == TP_OK) {
        const char **names = malloc((size_t)(nt ? nt : 1) * sizeof *names);
        const float **Ds = malloc((size_t)(nt ? nt : 1) * sizeof *Ds);
        double *kl = calloc((size_t)(nt ? nt : 1), sizeof *kl);
        if (!names || !Ds || !kl) s = tp_fail(e, TP_ERR_NOMEM, "out of memory");
        for (int k = 0; s == TP_OK && k < nt; k++) { names[k] = ts[k].name; Ds[k] = ts[k].Dfile; }
        if (s == TP_OK) s = tp_tensor_klds(m, ids, n, nt, names, Ds, kl, o->quiet, e);
        for (int k = 0; s == TP_OK && k < nt; k++) ts[k].kld = kl[k];
        free(names); free(Ds); free(kl);
    }
    if (s == TP_OK) {
        double *kd = malloc((size_t)(nt ? nt : 1) * sizeof *kd), *pd = malloc((size_t)(nt ? nt : 1) * sizeof *pd),
               *pf = malloc((size_t)(nt ? nt : 1) * sizeof *pf);
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "model", o->model_dir);
        cJSON_AddStringToObject(j, "codec", codec.spec);
        cJSON_AddStringToObject(j, "select", select);
        cJSON *cj = cJSON_AddObjectToObject(j, "calibration");
        cJSON_AddStringToObject(cj, "path", cal->path);
        cJSON_AddStringToObject(cj, "sha256", cal->sha256);
        cJSON_AddNumberToObject(cj, "tokens", (double)cal->tokens);
        cJSON_AddNumberToObject(j, "kld_tokens", (double)n);
        cJSON_AddStringToObject(j, "kld", "mean over the first kld_tokens tokens of the calibration text of "
                                          "KL(base || only this tensor quantised), nats, every position of windows of "
                                          "min(1024, ctx) tokens");
        cJSON *arr = cJSON_AddArrayToObject(j, "tensors");
        for (int k = 0; k < nt; k++) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "name", ts[k].name);
            cJSON_AddNumberToObject(x, "rows", (double)ts[k].rows);
            cJSON_AddNumberToObject(x, "cols", (double)ts[k].cols);
            cJSON_AddNumberToObject(x, "proxy_diag", ts[k].diag);
            cJSON_AddNumberToObject(x, "proxy_full", ts[k].full);
            cJSON_AddNumberToObject(x, "kld_mean", ts[k].kld);
            cJSON_AddItemToArray(arr, x);
            if (kd && pd && pf) {
                kd[k] = log(ts[k].kld > 0 ? ts[k].kld : 1e-300);
                pd[k] = log(ts[k].diag > 0 ? ts[k].diag : 1e-300);
                pf[k] = log(ts[k].full > 0 ? ts[k].full : 1e-300);
            }
        }
        if (kd && pd && pf) {
            cJSON_AddNumberToObject(j, "spearman_diag", tp_spearman(pd, kd, (size_t)nt));
            cJSON_AddNumberToObject(j, "spearman_full", tp_spearman(pf, kd, (size_t)nt));
            cJSON_AddNumberToObject(j, "pearson_log_diag", tp_pearson(pd, kd, (size_t)nt));
            cJSON_AddNumberToObject(j, "pearson_log_full", tp_pearson(pf, kd, (size_t)nt));
        }
        cJSON_AddNumberToObject(j, "seconds", tp_now() - t0);
        free(kd); free(pd); free(pf);
        *out = j;
    }
    for (int k = 0; k < nt; k++) tp_free(ts[k].Dfile);
    free(ts);
    free(ids);
    tp_model_free(m);
    tp_calib_free(cal);
    return s;
}
