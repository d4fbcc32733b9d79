/* config.json of a Hugging Face causal LM, reduced to what the forward pass needs.
 *
 * Families: "gpt2" (LayerNorm, learned positions, Conv1D weights stored [in, out], gelu_new, tied
 * lm_head) and the Llama family "llama", "qwen2", "mistral" (RMSNorm, RoPE, SwiGLU, grouped-query
 * attention, optional q/k/v/o biases found by tensor presence, tied or untied lm_head). */
#ifndef TENPAK_PIPELINE_CONFIG_H
#define TENPAK_PIPELINE_CONFIG_H

#include "tenpak/tenpak.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tp_arch { TP_ARCH_GPT2 = 0, TP_ARCH_LLAMA = 1 } tp_arch;
typedef enum tp_act { TP_ACT_GELU_NEW = 0, TP_ACT_GELU = 1, TP_ACT_SILU = 2, TP_ACT_RELU = 3 } tp_act;
typedef enum tp_rope_type { TP_ROPE_DEFAULT = 0, TP_ROPE_LINEAR = 1, TP_ROPE_LLAMA3 = 2 } tp_rope_type;

typedef struct tp_model_config {
    char model_type[32];  /* as written in config.json */
    tp_arch arch;
    tp_act act;
    int n_layer, d_model, n_head, n_kv_head, head_dim, d_ff, vocab, n_ctx;
    double norm_eps;
    int tie_embeddings;   /* lm_head shares the token embedding */
    int sliding_window;   /* 0: full causal attention (mistral may set a window) */
    /* RoPE (Llama family) */
    double rope_theta;
    tp_rope_type rope_type;
    double rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_orig_ctx;
    int bos_id, eos_id;   /* -1 when absent */
} tp_model_config;

/* Parses path (a config.json). Unknown model_type, missing sizes or an unsupported RoPE scaling
 * fail with one line naming the file and the problem. */
tp_status tp_config_load(const char *path, tp_model_config *c, tp_err *e);
/* The same from parsed JSON (an artifact's recorded config), path naming it in messages; without
 * tp_config_load's check of the layers against a checkpoint beside it. */
struct cJSON;
tp_status tp_config_parse_json(const struct cJSON *root, const char *path, tp_model_config *c, tp_err *e);
/* 0 when a and b agree on every field the forward pass uses; else 1 and the first that differs,
 * named as config.json names it, with both values ("rms_norm_eps 1e-05, now 2e-05"). */
int tp_config_diff(const tp_model_config *a, const tp_model_config *b, char *what, size_t n);

#ifdef __cplusplus
}
#endif
#endif
