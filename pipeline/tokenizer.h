/* Hugging Face tokenizer.json, the BPE kinds that causal LMs use, reproducing `tokenizers` ids
 * exactly:
 *  - byte-level BPE (GPT-2; Llama-3, Qwen2, SmolLM-style Split regex + ByteLevel pre-tokenizers),
 *    regexes run by PCRE2 in UTF + UCP mode;
 *  - SentencePiece-style BPE (Llama-2, TinyLlama, Mistral: Prepend/Replace normaliser or Metaspace
 *    pre-tokenizer, byte fallback <0xNN>, BOS from a TemplateProcessing post-processor).
 * Added tokens are split out of the text first (leftmost-longest), as tokenizers does.
 * Anything else (WordPiece, Unigram, other normalisers...) fails at load with a message naming
 * the file and the component.
 *
 * Known approximation: an NFC normaliser (Qwen2) is applied as the identity; this is exact for
 * text already in NFC (most text, and all of WikiText). */
#ifndef TENPAK_PIPELINE_TOKENIZER_H
#define TENPAK_PIPELINE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "tenpak/tenpak.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tp_tokenizer tp_tokenizer;

/* path: a tokenizer.json. */
tp_status tp_tokenizer_load(const char *path, tp_tokenizer **out, tp_err *e);
/* The same from a tokenizer.json's text held in memory; path names it in messages (the GGUF
 * reader builds one from a file's tokenizer.ggml.* metadata: pipeline/gguf_model.c). */
tp_status tp_tokenizer_load_text(const char *path, const char *text, size_t len, tp_tokenizer **out, tp_err *e);
/* The tokenizer of a --model argument: DIR/tokenizer.json, or a FILE.gguf's tokenizer.ggml.*
 * metadata (defined in pipeline/gguf_model.c). */
tp_status tp_model_tokenizer_load(const char *model, tp_tokenizer **out, tp_err *e);
void tp_tokenizer_free(tp_tokenizer *t);

/* Encodes text[0..len) (any bytes; invalid UTF-8 falls back to bytes). add_special: add what the
 * post-processor adds (e.g. Llama's BOS). *ids is malloc'ed (free it), *n its count. A character
 * the vocabulary cannot encode (no token, no unk token, no byte fallback) fails with TP_ERR_FORMAT
 * naming it: tokenizers would drop it silently. */
tp_status tp_tokenizer_encode(const tp_tokenizer *t, const char *text, size_t len, int add_special, int32_t **ids,
                              size_t *n, tp_err *e);
/* Decodes ids to text (malloc'ed, NUL-terminated, *len without the NUL). skip_special drops
 * special added tokens (BOS/EOS...). */
tp_status tp_tokenizer_decode(const tp_tokenizer *t, const int32_t *ids, size_t n, int skip_special, char **text,
                              size_t *len, tp_err *e);

int tp_tokenizer_vocab_size(const tp_tokenizer *t); /* largest id + 1 */
/* The token's string as the decoder sees it (bytes for byte-level models); NULL if no such id. */
const char *tp_tokenizer_piece(const tp_tokenizer *t, int32_t id, size_t *len);
/* Ids the post-processor puts before / after a single sequence (e.g. BOS). */
size_t tp_tokenizer_prefix(const tp_tokenizer *t, const int32_t **ids);
size_t tp_tokenizer_suffix(const tp_tokenizer *t, const int32_t **ids);
/* "byte-level BPE" or "SentencePiece BPE" */
const char *tp_tokenizer_kind(const tp_tokenizer *t);

#ifdef __cplusplus
}
#endif
#endif
