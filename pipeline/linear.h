/* A linear layer's weight in its codec's packed format, multiplied by the codec family's own cpu
 * kernels: the deployed path of a compressed model (`tenpak eval --exec packed`, the default).
 *
 * The matrix is W[rows][cols] = [out][in] (groups run along the input dimension, as the codecs
 * encode it; GPT-2's Conv1D weights are stored transposed for this). Y = X W^T for n activation
 * rows goes through each stage's GEMV (n = 1, decoding) or GEMM (n > 1, prefill and perplexity
 * windows); a chain A+B is the sum of its stages' products. The blob (a record of a memory-mapped
 * artifact) is read where it lies where the format allows (the INT4 family); other families hold
 * their unpacked codes, metadata or fp16-valued factors, never an fp32 or fp16 copy of W.
 * `--exec dequant` (pipeline/artifact_model.h) decodes to fp32 instead and is the reference the
 * model-level differential test compares this path with. */
#ifndef TENPAK_PIPELINE_LINEAR_H
#define TENPAK_PIPELINE_LINEAR_H

#include <stddef.h>
#include <stdint.h>

#include "tenpak/quant.h"
#include "tenpak/tenpak.h"

typedef struct tp_linear tp_linear;

/* spec: the record's codec spec; blob: len bytes (tp_codec_blob_bytes of the spec and shape),
 * alive as long as the linear. `what` names the weight in messages ("FILE: tensor NAME"). A codec
 * without a packed kernel fails with a line naming it, the tensor and `--exec dequant`. */
tp_status tp_linear_open(const char *spec, const uint8_t *blob, size_t len, int64_t rows, int64_t cols,
                         const char *what, tp_linear **out, tp_err *e);
void tp_linear_free(tp_linear *l);
/* One stage of a method outside the codec table (the GGUF model's ggml blocks, pipeline/gguf_model.c):
 * m->exec opens blob with one parameter "type" = type; spec names it (e.g. "ggml:Q4_1"). */
struct tp_codec_method;
tp_status tp_linear_open_method(const struct tp_codec_method *m, const char *spec, double type, const uint8_t *blob,
                                size_t len, int64_t rows, int64_t cols, const char *what, tp_linear **out, tp_err *e);

int64_t tp_linear_rows(const tp_linear *l);
int64_t tp_linear_cols(const tp_linear *l);
const char *tp_linear_spec(const tp_linear *l);

/* The INT4-family matrix (int4, int4r2, nf4; one stage, not awq) the linear multiplies by, for the
 * GPU's packed path; NULL for every other codec. */
const tp_qmat *tp_linear_qmat(const tp_linear *l);

/* Y[i * ldy + r] = (accumulate ? Y[i * ldy + r] : 0) + sum_c W[r][c] X[i * cols + c], i < n. */
tp_status tp_linear_mul(tp_linear *l, const float *X, int n, float *Y, int ldy, int accumulate, tp_err *e);

/* One activation row x by k linears of x's length (a layer's q, k and v; gate and up): y[i] =
 * l[i] x, bit for bit what tp_linear_mul gives each, in one run of the worker pool where every
 * one is an INT4-family matrix (tp_linear_qmat) or where one is a chain of stages (every stage of
 * every matrix a task; tp_linear_mul does the same for one chain and one row), else one after the
 * other. */
tp_status tp_linear_mul1_multi(tp_linear *const *l, int k, const float *x, float *const *y, tp_err *e);
/* Row r of W decoded (embedding lookups); fails when a stage has no row decoder. */
tp_status tp_linear_row(const tp_linear *l, int64_t r, float *dst, tp_err *e);

/* The packed format's bytes (the blob's length): what one product reads of the weight. */
size_t tp_linear_format_bytes(const tp_linear *l);

/* Memory held beyond the blob (views, unpacked codes). */
size_t tp_linear_bytes(const tp_linear *l);

/* The planted-fault self-test: one code (or factor) of the first stage changed in memory. */
void tp_linear_corrupt(tp_linear *l, uint64_t k);

#endif
