/* A paired evaluation of two models over the same windows: see paired.h. */
#include "pipeline/paired.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/vecmath_cpu.h"

/* the scored rows of one window: logits lb (base) and lc (compressed), rows x V */
typedef struct rows_ctx {
    const float *lb, *lc;
    float *scratch; /* one row of V floats per task */
    int V, rows;
    const int32_t *tg;
    double *lpb, *lpc, *kl;
    int32_t *tb, *tc;
} rows_ctx;

static int32_t argmax_row(const float *l, int V, float mx) {
    for (int v = 0; v < V; v++)
        if (l[v] == mx) return v;
    return 0; /* a NaN row */
}

/* log-sum-exp of a row as tp_model_forward_nll computes it; *mx gets the row's max, *S its sum */
static double lse_row(const float *l, int V, float *mx, double *S) {
    *mx = tp_vmax(l, (size_t)V);
    *S = tp_vsumexp(l, (size_t)V, *mx);
    return log(*S) + (double)*mx;
}

static void one_row(const rows_ctx *c, int i, float *p) {
    size_t V = (size_t)c->V;
    const float *b = c->lb + (size_t)i * V, *q = c->lc + (size_t)i * V;
    float mb, mc;
    double Sb, Sc;
    double lsb = lse_row(b, c->V, &mb, &Sb), lsc = lse_row(q, c->V, &mc, &Sc);
    c->lpb[i] = -(lsb - (double)b[c->tg[i]]); /* the negated NLL of tp_model_forward_nll */
    c->lpc[i] = -(lsc - (double)q[c->tg[i]]);
    c->tb[i] = argmax_row(b, c->V, mb);
    c->tc[i] = argmax_row(q, c->V, mc);
    memcpy(p, b, V * sizeof *p);
    tp_vexp_inplace(p, V, mb); /* p_v S_b */
    double acc = 0;
    for (size_t v = 0; v < V; v++) acc += (double)p[v] * ((double)b[v] - (double)q[v]);
    double kl = acc / Sb - lsb + lsc;
    c->kl[i] = kl > 0 ? kl : 0;
}

static void rows_part(void *vc, int t, int nt) {
    rows_ctx *c = vc;
    for (int i = c->rows * t / nt; i < c->rows * (t + 1) / nt; i++) one_row(c, i, c->scratch + (size_t)t * (size_t)c->V);
}

typedef struct bufs { int32_t *win; float *lb, *lc, *scratch; int nt; } bufs;

static tp_status bufs_alloc(bufs *b, int ctx, int V, tp_err *e) {
    b->nt = tp_par_threads();
    if (b->nt < 1) b->nt = 1;
    b->win = malloc((size_t)ctx * sizeof *b->win);
    b->lb = malloc((size_t)ctx * (size_t)V * sizeof *b->lb);
    b->lc = malloc((size_t)ctx * (size_t)V * sizeof *b->lc);
    b->scratch = malloc((size_t)b->nt * (size_t)V * sizeof *b->scratch);
    if (b->win && b->lb && b->lc && b->scratch) return TP_OK;
    return tp_fail(e, TP_ERR_NOMEM, "paired evaluation: out of memory for 2 x %d x %d logits", ctx, V);
}
static void bufs_free(bufs *b) { free(b->win); free(b->lb); free(b->lc); free(b->scratch); }

static tp_status check_pair(tp_model *base, tp_model *comp, const tp_ppl_opts *o, int *ctx, int *stride, tp_err *e) {
    if (o->device != TP_DEVICE_CPU)
        return tp_fail(e, TP_ERR_UNSUPPORTED, "paired evaluation (KLD, top-1) runs on the cpu only (logits)");
    if (tp_model_cfg(base)->vocab != tp_model_cfg(comp)->vocab)
        return tp_fail(e, TP_ERR_ARG, "paired evaluation: vocabularies differ (%d vs %d)", tp_model_cfg(base)->vocab,
                       tp_model_cfg(comp)->vocab);
    int c2, s2;
    tp_status rc = tp_ppl_resolve(base, o, ctx, stride, e);
    if (rc == TP_OK) rc = tp_ppl_resolve(comp, o, &c2, &s2, e);
    if (rc == TP_OK && (c2 != *ctx || s2 != *stride))
        return tp_fail(e, TP_ERR_ARG, "paired evaluation: the models' contexts differ (%d vs %d)", *ctx, c2);
    if (rc == TP_OK) rc = tp_model_set_device(base, TP_DEVICE_CPU, e);
    if (rc == TP_OK) rc = tp_model_set_device(comp, TP_DEVICE_CPU, e);
    return rc;
}

/* both models' logits of rows [first, L) of the window, each forward timed into its result */
static tp_status forward_pair(tp_model *base, tp_model *comp, const bufs *b, int L, int first, tp_paired_result *r,
                              tp_err *e) {
    double t0 = tp_now();
    tp_model_reset(base);
    tp_status rc = tp_model_forward(base, b->win, L, 0, first, b->lb, e);
    double t1 = tp_now();
    r->base.seconds += t1 - t0;
    if (rc != TP_OK) return rc;
    tp_model_reset(comp);
    rc = tp_model_forward(comp, b->win, L, 0, first, b->lc, e);
    r->comp.seconds += tp_now() - t1;
    return rc;
}

/* appends the window's scored rows to r->tokens and the perplexity sums */
static void score_window(const bufs *b, int V, const tp_ppl_window *w, int L, tp_paired_result *r) {
    tp_token_cols *t = &r->tokens;
    size_t k0 = t->n;
    int rows = L - 1 - w->first;
    rows_ctx c = {b->lb, b->lc, b->scratch, V, rows, b->win + w->first + 1,
                  t->lp_base + k0, t->lp_comp + k0, t->kl + k0, t->top_base + k0, t->top_comp + k0};
    tp_par_run(b->nt, rows_part, &c);
    for (int j = 0; j < rows; j++) {
        t->pos[k0 + (size_t)j] = (uint64_t)(w->b + (size_t)w->first + 1 + (size_t)j);
        t->target[k0 + (size_t)j] = b->win[w->first + 1 + j];
        double nb = -t->lp_base[k0 + (size_t)j], nc = -t->lp_comp[k0 + (size_t)j];
        r->base.nll_sum += nb;
        r->base.nll_sq_sum += nb * nb;
        r->comp.nll_sum += nc;
        r->comp.nll_sq_sum += nc * nc;
    }
    t->n += (size_t)rows;
    tp_ppl_result *p[2] = {&r->base, &r->comp};
    for (int m = 0; m < 2; m++) {
        p[m]->scored += (size_t)rows;
        p[m]->forward_tokens += (size_t)L;
        p[m]->windows++;
    }
}

static void finish(tp_ppl_result *p, int ctx, int stride, const tp_ppl_opts *o) {
    p->ctx = ctx;
    p->stride = o->protocol == TP_PPL_HF ? stride : ctx;
    p->ppl = exp(p->nll_sum / (double)p->scored);
    p->nll_stderr = tp_stderr_from_sums(p->nll_sum, p->nll_sq_sum, p->scored);
}

tp_status tp_paired_run(tp_model *base, tp_model *comp, const int32_t *ids, size_t n, const tp_ppl_opts *o,
                        tp_paired_result *r, tp_err *e) {
    memset(r, 0, sizeof *r);
    int ctx, stride, V = tp_model_cfg(base)->vocab;
    tp_status rc = check_pair(base, comp, o, &ctx, &stride, e);
    if (rc != TP_OK) return rc;
    size_t total = tp_ppl_count(n, o, ctx, stride);
    if (!total)
        return tp_fail(e, TP_ERR_ARG, "ppl: %zu tokens are too few to score with ctx %d (%s protocol)", n, ctx,
                       tp_ppl_protocol_name(o->protocol));
    bufs b = {0};
    if ((rc = bufs_alloc(&b, ctx, V, e)) == TP_OK) rc = tp_token_cols_reserve(&r->tokens, total, e);
    tp_model_gemm_stats_reset(base);
    tp_model_gemm_stats_reset(comp);
    tp_ppl_window w;
    for (size_t k = 0; rc == TP_OK && tp_ppl_window_at(o, n, ctx, stride, k, &w); k++) {
        int L = tp_ppl_window_fill(o, ids, &w, b.win);
        if (w.first < L - 1 && (rc = forward_pair(base, comp, &b, L, w.first, r, e)) == TP_OK) score_window(&b, V, &w, L, r);
        if (rc == TP_OK && o->progress) o->progress(o->user, r->comp.scored, total);
    }
    bufs_free(&b);
    if (rc != TP_OK) {
        tp_token_cols_free(&r->tokens);
        return rc;
    }
    tp_model_gemm_stats(base, &r->base.gemm_seconds, &r->base.gemm_flops);
    tp_model_gemm_stats(comp, &r->comp.gemm_seconds, &r->comp.gemm_flops);
    finish(&r->base, ctx, stride, o);
    finish(&r->comp, ctx, stride, o);
    return TP_OK;
}
