/* Perplexity of a token sequence under a model, by one of two published protocols.
 *
 * TP_PPL_HF (default; Hugging Face's perplexity guide): windows of `ctx` tokens starting every
 * `stride` tokens; window [b, e) scores only the tokens after the previous window's end, so every
 * token but the very first is scored exactly once (scored = n - 1 when stride <= ctx).
 * TP_PPL_LLAMACPP (llama.cpp's perplexity tool): floor(n / ctx) non-overlapping chunks of ctx
 * tokens; the first token of each chunk is replaced by BOS when the tokenizer adds one; only the
 * second half is scored (rows ctx/2 .. ctx-2 predicting the next token: ctx - 1 - ctx/2 per chunk).
 *
 * ppl = exp(nll_sum / scored), nll in nats, accumulated in double. */
#ifndef TENPAK_PIPELINE_PPL_H
#define TENPAK_PIPELINE_PPL_H

#include <stddef.h>
#include <stdint.h>

#include "pipeline/model.h"
#include "tenpak/tenpak.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tp_ppl_protocol { TP_PPL_HF = 0, TP_PPL_LLAMACPP = 1 } tp_ppl_protocol;

typedef struct tp_ppl_opts {
    tp_ppl_protocol protocol;
    int ctx;          /* window; 0: the model's context (capped by its KV capacity) */
    int stride;       /* HF protocol only; 0: 512 (or ctx if smaller) */
    int32_t bos;      /* llamacpp protocol: id put at each chunk start, -1 for none */
    tp_device device; /* where the windows run (tp_model_set_device; before the clock starts) */
    /* called after every window with tokens scored so far and the total to score */
    void (*progress)(void *user, size_t scored, size_t total);
    void *user;
} tp_ppl_opts;

typedef struct tp_ppl_result {
    double nll_sum, ppl;
    double nll_sq_sum, nll_stderr;          /* sum of squared NLLs; standard error of the mean NLL */
    size_t scored, windows, forward_tokens; /* forward_tokens: rows run through the model */
    int ctx, stride;                        /* as resolved */
    double seconds, gemm_seconds, gemm_flops;
} tp_ppl_result;

const char *tp_ppl_protocol_name(tp_ppl_protocol p); /* "hf" / "llamacpp" */
/* Tokens the protocol will score for n tokens (0 if none: too few tokens). */
size_t tp_ppl_count(size_t n, const tp_ppl_opts *o, int ctx, int stride);

/* ctx and stride as tp_ppl_run resolves them for model m (0 in o: the defaults above). */
tp_status tp_ppl_resolve(tp_model *m, const tp_ppl_opts *o, int *ctx, int *stride, tp_err *e);

/* The protocol's windows over n tokens: window k runs ids [b, end) and scores its rows
 * [first, end - b - 1) (row i predicts token b + i + 1); a window may score nothing (first >=
 * end - b - 1). Returns 0 past the last window. */
typedef struct tp_ppl_window { size_t b, end; int first; } tp_ppl_window;
int tp_ppl_window_at(const tp_ppl_opts *o, size_t n, int ctx, int stride, size_t k, tp_ppl_window *w);
/* Copies window w's ids into win (BOS first under the llamacpp protocol); returns its length. */
int tp_ppl_window_fill(const tp_ppl_opts *o, const int32_t *ids, const tp_ppl_window *w, int32_t *win);

tp_status tp_ppl_run(tp_model *m, const int32_t *ids, size_t n, const tp_ppl_opts *o, tp_ppl_result *r, tp_err *e);

#ifdef __cplusplus
}
#endif
#endif
