/* Lossless text compression with a language model (`tenpak zip` / `tenpak unzip`).
 *
 * The text is tokenised; the model runs over the tokens one at a time with its KV cache; each
 * next-token distribution becomes an integer frequency table (total 2^24, every token >= 1) that
 * drives the arithmetic coder or adaptive rANS of include/tenpak/entropy.h.
 *
 * Determinism. The decoder must rebuild exactly the encoder's tables. Logits are quantised to
 * k = round((l - max) * 32) (steps of 1/32 nat) and turned into frequencies with integer
 * arithmetic only (a fixed-point exp table built by an integer recurrence), so two runs agree
 * whenever their logits round to the same k. The same binary on the same machine computes the
 * same logits at any thread count (static work partitioning; tested 1 vs 2 threads). Different
 * backends (CPU vs GPU) or BLAS builds compute logits that differ in the last bits, and a logit
 * that lands on the other side of a rounding boundary then breaks decoding (the checksum and the
 * coder's own checks catch it: unzip fails cleanly, it never returns wrong text). Cross-backend
 * round trips are therefore not promised.
 *
 * Context: when the KV cache is full (the model's context), it is reset and refilled with the
 * last half of the context in one prefill, on both sides at the same token.
 *
 * Text the tokenizer cannot reproduce exactly (decode(encode(text)) != text) is split into lines;
 * lines that round-trip are coded with the model, the rest as raw bytes (8 bits each).
 *
 * Container (.tpz, little-endian):
 *   "TPZ1" | u8 version 1 | u8 coder (1 rANS, 2 AC) | u16 0
 *   sha256 of the model's weights (32): of its safetensors, or of the .tpk artifact file when the
 *   compressed model ran (--artifact) | sha256 of tokenizer.json (32)
 *   u64 original bytes | u64 XXH64 of the original | u32 context | u32 logit steps per nat |
 *   u32 total_bits | u32 segments | per segment: u8 kind (0 tokens, 1 raw), u64 bytes, u64 count
 *   (bytes >= 1; a token segment holds 1 .. bytes tokens, the encoder codes any other line raw; a raw
 *   segment's count is its bytes: the decoder checks these against the sizes before decoding)
 *   u64 payload bytes | payload | u64 XXH64 of everything before it */
#ifndef TENPAK_PIPELINE_LMZIP_H
#define TENPAK_PIPELINE_LMZIP_H

#include <stddef.h>
#include <stdint.h>

#include "tenpak/tenpak.h"

typedef enum tp_lmzip_coder { TP_LMZIP_RANS = 1, TP_LMZIP_AC = 2 } tp_lmzip_coder;

typedef struct tp_lmzip_stats {
    size_t in_bytes, out_bytes, tokens, raw_bytes, segments;
    double model_bits;     /* sum of -log2 p(token) under the model's float probabilities */
    double coded_bits;     /* 8 x the container's bytes */
    size_t payload_bytes;  /* the coded stream alone, without the container's fixed header */
    double seconds;
} tp_lmzip_stats;

/* The language model: a checkpoint folder, or a .tpk artifact run on its codecs' kernels (packed,
 * pipeline/artifact_model.h; model_dir NULL: the folder the artifact records). */
typedef struct tp_lm_source {
    const char *model_dir;
    const char *artifact;
} tp_lm_source;

/* Compresses in[0..n) into a malloc'd container *out (*out_len). */
tp_status tp_lmzip_compress(const tp_lm_source *lm, tp_lmzip_coder coder, const uint8_t *in, size_t n, uint8_t **out,
                            size_t *out_len, tp_lmzip_stats *st, tp_err *e);
tp_status tp_lmzip_decompress(const tp_lm_source *lm, const uint8_t *in, size_t n, uint8_t **out, size_t *out_len,
                              tp_lmzip_stats *st, tp_err *e);

#endif
