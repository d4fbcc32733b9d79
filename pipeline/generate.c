/* Greedy and sampled generation over the model's KV cache (see generate.h). */
#include "pipeline/generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct cand {
    float v;
    int32_t id;
} cand;

/* The total order of candidates: larger logit first, then lower id. Keeping it total is what
 * makes top-k (and so a seeded draw) independent of the scan order. */
static int better(cand a, cand b) { return a.v > b.v || (a.v == b.v && a.id < b.id); }

static int cmp_better(const void *pa, const void *pb) {
    cand a = *(const cand *)pa, b = *(const cand *)pb;
    return better(a, b) ? -1 : better(b, a) ? 1 : 0;
}

/* Min-heap on `better`: h[0] is the worst kept candidate, so a newcomer replaces it iff better. */
static void sift_down(cand *h, int k, int i) {
    for (;;) {
        int w = i, l = 2 * i + 1, r = l + 1;
        if (l < k && better(h[w], h[l])) w = l;
        if (r < k && better(h[w], h[r])) w = r;
        if (w == i) return;
        cand t = h[i]; h[i] = h[w]; h[w] = t;
        i = w;
    }
}
static void sift_up(cand *h, int i) {
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!better(h[p], h[i])) return;
        cand t = h[i]; h[i] = h[p]; h[p] = t;
        i = p;
    }
}

tp_status tp_gen_choose(const float *logits, int vocab, double temp, int top_k, tp_rng *rng, int32_t *id, tp_err *e) {
    if (vocab <= 0) return tp_fail(e, TP_ERR_ARG, "generate: vocabulary of %d tokens", vocab);
    int best = 0;
    for (int v = 0; v < vocab; v++) {
        /* -inf is a legitimate "never"; NaN or +inf means the forward pass broke */
        if (isnan(logits[v]) || logits[v] == INFINITY)
            return tp_fail(e, TP_ERR_INTERNAL, "generate: logit of token %d is %s", v, isnan(logits[v]) ? "NaN" : "+inf");
        if (logits[v] > logits[best]) best = v; /* strict: ties stay with the lowest id */
    }
    if (temp == 0 || top_k == 1 || logits[best] == -INFINITY) { *id = best; return TP_OK; }
    double mx = logits[best];
    if (top_k <= 0 || top_k >= vocab) {
        /* all tokens, walked in id order; the weights are recomputed identically in both passes */
        double sum = 0, cum = 0;
        for (int v = 0; v < vocab; v++) sum += exp(((double)logits[v] - mx) / temp);
        double u = tp_rng_uniform(rng) * sum;
        for (int v = 0; v < vocab; v++) {
            double w = exp(((double)logits[v] - mx) / temp);
            cum += w;
            if (w > 0 && u < cum) { *id = v; return TP_OK; }
        }
        *id = best; /* unreachable: u < sum == the final cum */
        return TP_OK;
    }
    cand *h = malloc((size_t)top_k * sizeof *h);
    if (!h) return tp_fail(e, TP_ERR_NOMEM, "generate: out of memory for top-%d", top_k);
    int k = 0;
    for (int v = 0; v < vocab; v++) {
        cand c = {logits[v], v};
        if (k < top_k) { h[k] = c; sift_up(h, k++); }
        else if (better(c, h[0])) { h[0] = c; sift_down(h, k, 0); }
    }
    qsort(h, (size_t)k, sizeof *h, cmp_better);
    double sum = 0, cum = 0;
    for (int i = 0; i < k; i++) sum += exp(((double)h[i].v - mx) / temp);
    double u = tp_rng_uniform(rng) * sum;
    *id = h[0].id;
    for (int i = 0; i < k; i++) {
        double w = exp(((double)h[i].v - mx) / temp);
        cum += w;
        if (w > 0 && u < cum) { *id = h[i].id; break; }
    }
    free(h);
    return TP_OK;
}

void tp_gen_result_free(tp_gen_result *r) {
    if (!r) return;
    free(r->ids);
    memset(r, 0, sizeof *r);
}

tp_status tp_generate(tp_model *m, const int32_t *prompt, size_t n_prompt, const tp_gen_opts *o, tp_gen_result *r,
                      tp_err *e) {
    memset(r, 0, sizeof *r);
    int V = tp_model_cfg(m)->vocab, cap = tp_model_capacity(m);
    if (n_prompt == 0 || !prompt) return tp_fail(e, TP_ERR_ARG, "empty prompt: nothing to condition on");
    if (o->n < 0) return tp_fail(e, TP_ERR_ARG, "generate: %d tokens to generate (must be >= 0)", o->n);
    if (!(o->temp >= 0) || isinf(o->temp))
        return tp_fail(e, TP_ERR_ARG, "generate: temperature %g (must be finite and >= 0; 0 is greedy)", o->temp);
    if (o->top_k < 0) return tp_fail(e, TP_ERR_ARG, "generate: top-k %d (must be >= 0; 0 keeps all)", o->top_k);
    if (o->eos >= V) return tp_fail(e, TP_ERR_ARG, "generate: end token %d is outside the vocabulary of %d", o->eos, V);
    if (n_prompt > (size_t)cap)
        return tp_fail(e, TP_ERR_ARG, "prompt of %zu tokens is longer than the model's context of %d positions",
                       n_prompt, cap);
    if (n_prompt + (size_t)o->n > (size_t)cap)
        return tp_fail(e, TP_ERR_ARG,
                       "prompt of %zu tokens + %d to generate = %zu exceeds the model's context of %d positions",
                       n_prompt, o->n, n_prompt + (size_t)o->n, cap);
    float *logits = malloc((size_t)V * sizeof *logits);
    int32_t *ids = o->n ? malloc((size_t)o->n * sizeof *ids) : NULL;
    if (!logits || (o->n && !ids)) {
        free(logits); free(ids);
        return tp_fail(e, TP_ERR_NOMEM, "generate: out of memory");
    }
    tp_rng rng;
    tp_rng_seed(&rng, o->seed);
    tp_status s;
    size_t n = 0;
    int hit_eos = 0;
    double t0 = tp_now();
    /* prefill: the whole prompt in one pass, only its last row through the lm_head */
    s = tp_model_forward(m, prompt, (int)n_prompt, 0, (int)n_prompt - 1, logits, e);
    double t1 = tp_now(), decode_s = 0, ttft = t1 - t0;
    for (int i = 0; s == TP_OK && i < o->n; i++) {
        double ts = tp_now();
        if (i > 0) s = tp_model_forward(m, &ids[i - 1], 1, (int)(n_prompt + (size_t)i - 1), 0, logits, e);
        if (s == TP_OK) s = tp_gen_choose(logits, V, o->temp, o->top_k, &rng, &ids[i], e);
        double te = tp_now();
        if (s != TP_OK) break;
        if (i == 0) ttft = te - t0;
        else decode_s += te - ts;
        n = (size_t)i + 1;
        if (o->on_token) o->on_token(o->user, ids[i]);
        if (o->eos >= 0 && ids[i] == o->eos) { hit_eos = 1; break; }
    }
    free(logits);
    if (s != TP_OK) {
        free(ids);
        return s;
    }
    r->ids = ids;
    r->n = n;
    r->n_prompt = n_prompt;
    r->hit_eos = hit_eos;
    r->prefill_s = t1 - t0;
    r->ttft_s = ttft;
    r->decode_s = decode_s;
    r->prefill_tps = r->prefill_s > 0 ? (double)n_prompt / r->prefill_s : 0;
    r->decode_tps = n > 1 && decode_s > 0 ? (double)(n - 1) / decode_s : 0;
    return TP_OK;
}
