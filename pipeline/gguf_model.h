/* A GGUF file as a model: `--model FILE.gguf` wherever `--model DIR` works.
 *
 * Supported: general.architecture "llama" and "gpt2", tensors F32, F16 and BF16 (memory-mapped
 * where they lie, except the few that must be reordered: see below).
 *  - config (tp_model_config) from the metadata: {arch}.context_length, .embedding_length,
 *    .block_count, .feed_forward_length, .attention.head_count(_kv), .attention.key_length,
 *    .attention.layer_norm_rms_epsilon (llama) / .attention.layer_norm_epsilon (gpt2),
 *    .rope.freq_base, .rope.dimension_count (must be the head size), .rope.scaling.type (none or
 *    linear with .rope.scaling.factor); vocabulary size from tokenizer.ggml.tokens; BOS/EOS from
 *    tokenizer.ggml.bos_token_id / eos_token_id.
 *  - tensors presented under Hugging Face names (model.layers.N.self_attn.q_proj.weight, ...,
 *    transformer.h.N.attn.c_attn.weight) through tp_st_set_wrap, so the forward pass is the one
 *    the checkpoints use. llama's attn_q / attn_k rows are un-permuted from llama.cpp's rotary
 *    layout (GGUF row h*hd + 2j + s is HF row h*hd + s*hd/2 + j, with the KV head count for k)
 *    and GPT-2's [out, in] matrices transposed back to Conv1D's [in, out]: those copies, in the
 *    file's dtype, are the only weight bytes not read from the map.
 *  - the tokenizer from tokenizer.ggml.*: "llama" (tokens, scores, token_type: SentencePiece BPE
 *    with byte fallback; merges derived from the scores as transformers' LlamaConverter does, so
 *    the ids equal tokenizer.json's) and "gpt2" (tokens, merges, pre "gpt-2": byte-level BPE), built
 *    as the tokenizer.json those converters write and loaded by pipeline/tokenizer.c.
 * Anything else (another architecture, a quantised tensor type, a missing or mistyped key, an
 * unexpected tensor) fails with one line naming the file and the problem. */
#ifndef TENPAK_PIPELINE_GGUF_MODEL_H
#define TENPAK_PIPELINE_GGUF_MODEL_H

#include "pipeline/config.h"
#include "pipeline/gguf.h"
#include "pipeline/safetensors.h"
#include "pipeline/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when path names a GGUF model (a name ending in ".gguf" that is not a folder) */
int tp_gguf_is_model_path(const char *path);

tp_status tp_gguf_config(const tp_gguf *g, tp_model_config *c, tp_err *e);
/* Opens path: its config and its tensors under HF names (the set owns the open file). */
tp_status tp_gguf_model_open(const char *path, tp_model_config *c, tp_st_set **st, tp_err *e);
tp_status tp_gguf_tokenizer(const tp_gguf *g, tp_tokenizer **out, tp_err *e);
/* The config of a --model argument: DIR/config.json, or a FILE.gguf's metadata. */
tp_status tp_model_config_load(const char *model, tp_model_config *c, tp_err *e);
/* tp_model_tokenizer_load (tokenizer.h) is defined in gguf_model.c */
struct tp_model;
/* The GGUF name of a Hugging Face tensor name (llama: 1, else gpt2): 1 and out, or 0 if it has none.
 * flags: 1 / 2 = llama's q / k rows to permute for llama.cpp's rotary layout (with the head /
 * KV head count), 4 = a GPT-2 Conv1D weight ([in, out] in the checkpoint, [out, in] in GGUF). */
int tp_gguf_name_of_hf(int llama, const char *hf, char *out, size_t n, int *flags);
/* After tp_model_load of a GGUF: every quantised matrix becomes a packed linear over its blocks
 * in the map (tp_ggml_matmul_cpu; embedding rows by tp_ggml_dequant_cpu): no fp32 copy. */
tp_status tp_gguf_model_attach(struct tp_model *m, tp_err *e);
/* `tenpak eval --artifact F.gguf --model DIR` (and every --artifact): the GGUF run as the
 * compressed model (its quantised matrices packed), measured against DIR, the checkpoint it came
 * from, which must have the same architecture and sizes. info: the GGUF's size, its tensor types
 * as the codec ("gguf:Q4_1x36+F32x13"), DIR's sha256; files_checked 0 (a GGUF records no source). */
struct tp_model_opts;
struct tp_artifact_model;
tp_status tp_gguf_model_load_artifact(const char *gguf, const char *model_dir, const struct tp_model_opts *mopts,
                                      struct tp_model **out, struct tp_artifact_model *info, tp_err *e);

#ifdef __cplusplus
}
#endif
#endif
