/* Text generation with a loaded model (a checkpoint, or an artifact rebuilt by
 * pipeline/artifact_model.h, packed or dequantised): what `tenpak generate` runs.
 *
 * The prompt is run in one forward pass at positions 0.. (whatever the KV cache held is
 * discarded), keeping only its last row's logits; every later token costs one single-token
 * forward through the KV cache. The last token chosen is not fed back, since nothing would read
 * its logits: afterwards the cache holds the prompt and all generated tokens but the last.
 *
 * Choosing a token from a row of logits:
 *  - temp == 0 (greedy): the argmax, ties to the lowest id;
 *  - temp > 0: softmax(logits / temp) over the top_k largest logits (ties to the lowest id;
 *    top_k 0 or >= vocab: all of them), drawn with the seeded tenpak rng (xoshiro256**), so a
 *    seed gives the same ids on every machine whose logits are the same bits. top_k 1 is greedy.
 * A NaN or +inf logit is an error, never a silent pick. */
#ifndef TENPAK_PIPELINE_GENERATE_H
#define TENPAK_PIPELINE_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "pipeline/model.h"
#include "tenpak/tenpak.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tp_gen_opts {
    int n;          /* tokens to generate; 0: prefill only (timed), nothing generated */
    double temp;    /* 0: greedy; > 0: sampled */
    int top_k;      /* sampling: keep the top_k largest logits; 0: all */
    uint64_t seed;  /* sampling: tp_rng_seed(seed) */
    int32_t eos;    /* stop right after generating this id (it is kept in ids); -1: never stop early.
                     * A zeroed struct would stop at id 0: start from TP_GEN_OPTS_INIT. */
    /* called with each new token as soon as it is chosen (outside the timed sections) */
    void (*on_token)(void *user, int32_t id);
    void *user;
} tp_gen_opts;

#define TP_GEN_OPTS_INIT {.n = 0, .temp = 0.0, .top_k = 0, .seed = 0, .eos = -1, .on_token = NULL, .user = NULL}

typedef struct tp_gen_result {
    int32_t *ids;       /* the generated tokens (malloc'd; NULL when n is 0) */
    size_t n;           /* how many: opts.n, or fewer when eos came */
    size_t n_prompt;
    int hit_eos;        /* 1: stopped at opts.eos */
    double prefill_s;   /* the prompt's forward pass */
    double ttft_s;      /* start to the first new token chosen (n 0: to its logits, = prefill) */
    double decode_s;    /* the single-token forwards and choices after the first token */
    double prefill_tps; /* n_prompt / prefill_s */
    double decode_tps;  /* (n - 1) / decode_s: one forward per token after the first; 0 if n < 2 */
} tp_gen_result;

/* Generates up to o->n tokens after prompt[0..n_prompt) (ids as the tokenizer gave them, BOS
 * included where it adds one). Refused with TP_ERR_ARG: an empty prompt, a prompt longer than
 * the model's KV capacity or prompt + n beyond it (nothing is truncated), n < 0, temp < 0 or NaN,
 * top_k < 0, eos >= vocab. The model must be on the cpu device. On failure r is zeroed. */
tp_status tp_generate(tp_model *m, const int32_t *prompt, size_t n_prompt, const tp_gen_opts *o, tp_gen_result *r,
                      tp_err *e);
void tp_gen_result_free(tp_gen_result *r);

/* One token from a row of vocab logits by the rule above (temp 0 ignores rng and top_k). The
 * reference the decode loop uses; exposed for tests. */
tp_status tp_gen_choose(const float *logits, int vocab, double temp, int top_k, tp_rng *rng, int32_t *id, tp_err *e);

#ifdef __cplusplus
}
#endif
#endif
