/* Perplexity protocols: see ppl.h. */
#include "pipeline/ppl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/stats.h"

const char *tp_ppl_protocol_name(tp_ppl_protocol p) { return p == TP_PPL_LLAMACPP ? "llamacpp" : "hf"; }

size_t tp_ppl_count(size_t n, const tp_ppl_opts *o, int ctx, int stride) {
    if (n < 2 || ctx < 2) return 0;
    if (o->protocol == TP_PPL_LLAMACPP) return (n / (size_t)ctx) * (size_t)(ctx - 1 - ctx / 2);
    size_t total = 0, prev_end = 0;
    for (size_t b = 0;; b += (size_t)stride) {
        size_t end = b + (size_t)ctx < n ? b + (size_t)ctx : n, L = end - b, trg = end - prev_end;
        size_t first = (L > trg ? L - trg : 0);
        if (first < 1) first = 1;
        total += L > first ? L - first : 0;
        prev_end = end;
        if (end == n) break;
    }
    return total;
}

tp_status tp_ppl_resolve(tp_model *m, const tp_ppl_opts *o, int *ctx, int *stride, tp_err *e) {
    int c = o->ctx > 0 ? o->ctx : tp_model_cfg(m)->n_ctx;
    if (c > tp_model_capacity(m)) {
        if (o->ctx > 0)
            return tp_fail(e, TP_ERR_ARG, "ppl: --ctx %d exceeds the model's context capacity %d", c, tp_model_capacity(m));
        c = tp_model_capacity(m);
    }
    if (c < 2) return tp_fail(e, TP_ERR_ARG, "ppl: context %d is too small (at least 2)", c);
    /* a stride beyond the window would leave the tokens between two windows unscored */
    if (o->protocol == TP_PPL_HF && o->stride > c)
        return tp_fail(e, TP_ERR_ARG, "ppl: --stride %d exceeds the window --ctx %d (the hf protocol needs stride <= ctx, "
                       "or tokens between windows go unscored)", o->stride, c);
    if (o->stride < 0) return tp_fail(e, TP_ERR_ARG, "ppl: --stride %d is negative", o->stride);
    *ctx = c;
    *stride = o->stride > 0 ? o->stride : (c < 512 ? c : 512);
    return TP_OK;
}

int tp_ppl_window_at(const tp_ppl_opts *o, size_t n, int ctx, int stride, size_t k, tp_ppl_window *w) {
    if (o->protocol == TP_PPL_LLAMACPP) {
        if (k >= n / (size_t)ctx) return 0;
        w->b = k * (size_t)ctx;
        w->end = w->b + (size_t)ctx;
        w->first = ctx / 2;
        return 1;
    }
    size_t prev_end = 0;
    if (k > 0) {
        prev_end = (k - 1) * (size_t)stride + (size_t)ctx < n ? (k - 1) * (size_t)stride + (size_t)ctx : n;
        if (prev_end == n) return 0;
    }
    w->b = k * (size_t)stride;
    if (w->b >= n) return 0;
    w->end = w->b + (size_t)ctx < n ? w->b + (size_t)ctx : n;
    size_t L = w->end - w->b, trg = w->end - prev_end;
    size_t first = L > trg ? L - trg : 0;
    if (first < 1) first = 1;
    w->first = (int)first - 1; /* row first-1 predicts the first scored token */
    return 1;
}

int tp_ppl_window_fill(const tp_ppl_opts *o, const int32_t *ids, const tp_ppl_window *w, int32_t *win) {
    int L = (int)(w->end - w->b);
    memcpy(win, ids + w->b, (size_t)L * sizeof *win);
    if (o->protocol == TP_PPL_LLAMACPP && o->bos >= 0) win[0] = o->bos;
    return L;
}

tp_status tp_ppl_run(tp_model *m, const int32_t *ids, size_t n, const tp_ppl_opts *o, tp_ppl_result *r, tp_err *e) {
    memset(r, 0, sizeof *r);
    int ctx, stride;
    tp_status rc = tp_ppl_resolve(m, o, &ctx, &stride, e);
    if (rc != TP_OK) return rc;
    size_t total = tp_ppl_count(n, o, ctx, stride);
    if (!total)
        return tp_fail(e, TP_ERR_ARG, "ppl: %zu tokens are too few to score with ctx %d (%s protocol)", n, ctx,
                       tp_ppl_protocol_name(o->protocol));
    r->ctx = ctx;
    r->stride = o->protocol == TP_PPL_HF ? stride : ctx;
    if ((rc = tp_model_set_device(m, o->device, e)) != TP_OK) return rc; /* a no-op for the CPU, as before */
    int32_t *win = malloc((size_t)ctx * sizeof *win);
    double *nll = malloc((size_t)ctx * sizeof *nll);
    if (!win || !nll) { free(win); free(nll); return tp_fail(e, TP_ERR_NOMEM, "ppl: out of memory"); }
    tp_model_gemm_stats_reset(m);
    double t0 = tp_now();
    tp_ppl_window w;
    for (size_t k = 0; rc == TP_OK && tp_ppl_window_at(o, n, ctx, stride, k, &w); k++) {
        int L = tp_ppl_window_fill(o, ids, &w, win);
        if (w.first < L - 1) {
            tp_model_reset(m);
            rc = tp_model_forward_nll(m, win, L, 0, w.first, L - 1, win + w.first + 1, nll, e);
            if (rc == TP_OK) {
                for (int i = w.first; i < L - 1; i++) {
                    r->nll_sum += nll[i - w.first];
                    r->nll_sq_sum += nll[i - w.first] * nll[i - w.first];
                }
                r->scored += (size_t)(L - 1 - w.first);
                r->forward_tokens += (size_t)L;
                r->windows++;
            }
        }
        if (o->progress) o->progress(o->user, r->scored, total);
    }
    r->seconds = tp_now() - t0;
    tp_model_gemm_stats(m, &r->gemm_seconds, &r->gemm_flops);
    free(win);
    free(nll);
    if (rc != TP_OK) return rc;
    r->ppl = exp(r->nll_sum / (double)r->scored);
    r->nll_stderr = tp_stderr_from_sums(r->nll_sum, r->nll_sq_sum, r->scored);
    return TP_OK;
}
