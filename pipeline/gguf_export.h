/* `tenpak export`: a tenpak artifact (.tpk) as a llama.cpp-loadable GGUF (llama, gpt2).
 *
 * Tensors, by their record's codec:
 *  - int4:g=32 (any refine: the format is the same) -> Q4_1, without re-quantising. tenpak's int4
 *    is w = q*s + o with an fp16 scale s and offset o per 32 weights of a row and q in 0..15;
 *    Q4_1 is w = d*q + m with fp16 d and m per 32 weights: d = s and m = o (same sign). Only the
 *    nibble order differs: tenpak packs element 2i of a row in the LOW nibble of byte i and 2i+1 in
 *    the HIGH one; a Q4_1 block packs element j (0..15) in the LOW nibble of qs[j] and j+16 in its
 *    HIGH nibble. Both products are exact in fp32 (an 11-bit significand times a 4-bit code), so
 *    both dequantise to the same floats, bit for bit. The rows need a multiple of 32 columns.
 *  - raw (uncompressed): as stored, F16 / BF16 / F32 for matrices, F32 for 1-D tensors (norms,
 *    biases), as llama.cpp's converter writes them.
 *  - any other codec: refused with one line naming the tensor and the codec, or with allow_f16
 *    decoded (tp_codec_decode) and written as F16 (rounded to nearest: not exact).
 * Layout as convert_hf_to_gguf.py: llama.cpp's tensor names, llama's q/k rows permuted for its
 * rotary layout (Q4_1 rows move as whole rows of blocks), GPT-2's Conv1D matrices [out, in]
 * (raw ones transposed; compressed ones are stored transposed already), the tied lm_head not
 * written. Metadata from the source folder's config.json; the tokenizer from its tokenizer.model
 * (llama: SentencePiece pieces, scores and types, parsed from the protobuf) or tokenizer.json
 * (gpt2: vocab, merges, added tokens as CONTROL). The source folder must be the one the artifact
 * records (its sha256s are checked where recorded). Written to OUT.tmp.XXXXXX and renamed. */
#ifndef TENPAK_PIPELINE_GGUF_EXPORT_H
#define TENPAK_PIPELINE_GGUF_EXPORT_H

#include <stdint.h>

#include "tenpak/tenpak.h"

typedef struct tp_gguf_export_result {
    int ntensors, nq4_1, nf16_decoded, nraw;
    uint64_t file_bytes;
} tp_gguf_export_result;

/* model_dir NULL: the folder the artifact records. */
tp_status tp_gguf_export(const char *artifact, const char *model_dir, const char *out, int allow_f16,
                         tp_gguf_export_result *r, tp_err *e);

#endif
