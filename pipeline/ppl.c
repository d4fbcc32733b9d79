/* Perplexity protocols: see ppl.h. */
#include "pipeline/ppl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

tp_status tp_ppl_run(tp_model *m, const int32_t *ids, size_t n, const tp_ppl_opts *o, tp_ppl_result *r, tp_err *e) {
    memset(r, 0, sizeof *r);
    int ctx = o->ctx > 0 ? o->ctx : tp_model_cfg(m)->n_ctx;
    if (ctx > tp_model_capacity(m)) {
        if (o->ctx > 0)
            return tp_fail(e, TP_ERR_ARG, "ppl: --ctx %d exceeds the model's context capacity %d", ctx, tp_model_capacity(m));
        ctx = tp_model_capacity(m);
    }
    int stride = o->stride > 0 ? o->stride : (ctx < 512 ? ctx : 512);
    if (ctx < 2) return tp_fail(e, TP_ERR_ARG, "ppl: context %d is too small", ctx);
    size_t total = tp_ppl_count(n, o, ctx, stride);
    if (!total)
        return tp_fail(e, TP_ERR_ARG, "ppl: %zu tokens are too few to score with ctx %d (%s protocol)", n, ctx,
                       tp_ppl_protocol_name(o->protocol));
    r->ctx = ctx;
    r->stride = o->protocol == TP_PPL_HF ? stride : ctx;
    tp_status drc = tp_model_set_device(m, o->device, e); /* a no-op for the CPU, as before */
    if (drc != TP_OK) return drc;
    int32_t *win = malloc((size_t)ctx * sizeof *win);
    double *nll = malloc((size_t)ctx * sizeof *nll);
    if (!win || !nll) { free(win); free(nll); return tp_fail(e, TP_ERR_NOMEM, "ppl: out of memory"); }
    tp_model_gemm_stats_reset(m);
    double t0 = tp_now();
    tp_status rc = TP_OK;
    size_t prev_end = 0;
    size_t nchunks = n / (size_t)ctx;
    for (size_t b = 0, c = 0; rc == TP_OK; ) {
        size_t end, first;
        if (o->protocol == TP_PPL_LLAMACPP) {
            if (c >= nchunks) break;
            b = c * (size_t)ctx;
            end = b + (size_t)ctx;
            first = (size_t)ctx / 2;
        } else {
            end = b + (size_t)ctx < n ? b + (size_t)ctx : n;
            size_t L = end - b, trg = end - prev_end;
            first = L > trg ? L - trg : 0;
            if (first < 1) first = 1;
            first -= 1; /* row first-1 predicts the first scored token */
        }
        int L = (int)(end - b);
        memcpy(win, ids + b, (size_t)L * sizeof *win);
        if (o->protocol == TP_PPL_LLAMACPP && o->bos >= 0) win[0] = o->bos;
        if ((int)first < L - 1) {
            tp_model_reset(m);
            rc = tp_model_forward_nll(m, win, L, 0, (int)first, L - 1, win + first + 1, nll, e);
            if (rc == TP_OK) {
                for (int i = (int)first; i < L - 1; i++) r->nll_sum += nll[i - (int)first];
                r->scored += (size_t)(L - 1 - (int)first);
                r->forward_tokens += (size_t)L;
                r->windows++;
            }
        }
        if (o->progress) o->progress(o->user, r->scored, total);
        if (o->protocol == TP_PPL_LLAMACPP) { c++; continue; }
        prev_end = end;
        if (end == n) break;
        b += (size_t)stride;
    }
    r->seconds = tp_now() - t0;
    tp_model_gemm_stats(m, &r->gemm_seconds, &r->gemm_flops);
    free(win);
    free(nll);
    if (rc != TP_OK) return rc;
    r->ppl = exp(r->nll_sum / (double)r->scored);
    return TP_OK;
}
