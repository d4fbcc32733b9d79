/* A paired evaluation: the base model and a compressed one run window by window over the same
 * tokens (the windows of a perplexity protocol, pipeline/ppl.h), in the same process, and every
 * scored token gets both models' log-probability of the true token, both argmax ids and the KL
 * divergence KL(base || compressed) of the two next-token distributions (pipeline/stats.h:
 * tp_token_cols). Both perplexities come from the same pass, so the PPL delta and the KLD are
 * measured on exactly the same scored tokens.
 *
 * Each window runs through tp_model_forward (the trunk of tp_ppl_run's tp_model_forward_nll, then
 * the lm_head on every row from the first scored one in one product instead of blocks), so each
 * model's NLLs are those tp_ppl_run gives (bit-identical with OpenBLAS here; tested to 1e-12). Per row, in double precision over float logits l (m = max l, S = sum exp(l - m) by
 * tp_vsumexp, lse = log S + m, as tp_model_forward_nll does):
 *   logprob = l[target] - lse; KL = sum_v p_v (lb_v - lc_v) - lse_b + lse_c with p_v = exp(lb_v - mb) / S_b,
 * clamped at 0 (rounding can make it -1e-12 when both rows are nearly equal; identical rows give 0
 * exactly). argmax: the lowest id among equal maxima. CPU only (tp_model_forward). Memory: two
 * ctx x vocab float logits buffers (2 x 206 MB for GPT-2's vocabulary at ctx 1024). */
#ifndef TENPAK_PIPELINE_PAIRED_H
#define TENPAK_PIPELINE_PAIRED_H

#include "pipeline/model.h"
#include "pipeline/ppl.h"
#include "pipeline/stats.h"

typedef struct tp_paired_result {
    tp_ppl_result base, comp; /* each model's perplexity from the pass (seconds: the whole pass) */
    tp_token_cols tokens;     /* per scored token; free with tp_token_cols_free */
} tp_paired_result;

/* o's device must be the CPU. base and comp must share the vocabulary (they are the same
 * checkpoint, one of them compressed). */
tp_status tp_paired_run(tp_model *base, tp_model *comp, const int32_t *ids, size_t n, const tp_ppl_opts *o,
                        tp_paired_result *r, tp_err *e);

#endif
