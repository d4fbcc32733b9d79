/* CPU fp32 forward pass of GPT-2 and Llama-family causal LMs loaded from Hugging Face folders.
 *
 * Matmuls go through OpenBLAS cblas_sgemm (threaded); attention is causal (optionally with a
 * sliding window) and computed with sgemm per head over blocks of query rows. A KV cache holds the
 * keys/values of positions [0, tp_model_cached()) so text can be fed a window at a time (prefill)
 * or one token at a time (incremental decoding), always getting the next-token logits.
 *
 * Weight memory (see README): weights stay in their file dtype inside the mmap'd safetensors.
 *  - TP_WEIGHTS_F32: every weight matrix is converted once to an fp32 copy (4 bytes/param more;
 *    fastest; fine for small models).
 *  - TP_WEIGHTS_PER_LAYER: each matrix is converted right before its matmul into one scratch
 *    buffer sized for the largest matrix (the lm_head in blocks of rows), so resident memory is
 *    the fp16 mapping N + one matrix in fp32 + KV cache + activations: a 7B fp16 model (N = 13.5 GB)
 *    runs in well under 1.3 N at ctx 1024.
 *  - TP_WEIGHTS_F16: as PER_LAYER, except that one-row products (decoding) read an fp16 [out, in]
 *    weight where it lies in the file, through the fp16 GEMV (tp_matvec_rows_f16): the "fp16
 *    weights" row of `tenpak bench-model`. GPT-2's Conv1D ([in, out]) weights, other dtypes and
 *    prefill rows (n > 1) are converted per layer.
 *  - TP_WEIGHTS_AUTO (default): F32 when all fp32 copies total at most 1 GiB, else PER_LAYER.
 * The two modes give bit-identical logits on every CPU and BLAS build by construction: each mode
 * makes the same BLAS calls, of the same shapes, on 64-byte-aligned matrices (the fp32 copies and
 * the scratch buffer come from tp_alloc; the lm_head goes in the same row blocks in both).
 *
 * Substituting weights (codec pipeline): a weight hook is asked for every matrix before the file
 * data is used, and tp_model_override_weight installs a caller-owned fp32 matrix by tensor name.
 * Both see/give the tensor in its file layout (e.g. [out, in] for nn.Linear, [in, out] for GPT-2
 * Conv1D). Changing either drops cached fp32 copies, so the next forward uses the new weights. */
#ifndef TENPAK_PIPELINE_MODEL_H
#define TENPAK_PIPELINE_MODEL_H

#include <stdint.h>

#include "pipeline/config.h"
#include "pipeline/safetensors.h"
#include "tenpak/tenpak.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tp_weight_mode {
    TP_WEIGHTS_AUTO = 0,
    TP_WEIGHTS_F32 = 1,
    TP_WEIGHTS_PER_LAYER = 2,
    TP_WEIGHTS_F16 = 3 /* linear weights multiplied in fp16 as stored (an fp16 GEMV / GEMM); see below */
} tp_weight_mode;

typedef struct tp_model_opts {
    tp_weight_mode weights;
    int max_ctx; /* KV cache capacity in positions; 0: the config's context length */
} tp_model_opts;

/* Fills dst with rows [row0, row0 + nrows) of tensor `name` (seen as [shape[0], numel/shape[0]],
 * file layout) in fp32. Returns 1 when it filled dst, 0 to let the model read the file, -1 on error
 * (the forward pass then fails with a message naming the tensor). */
typedef int (*tp_weight_hook)(void *user, const char *name, const tp_st_tensor *t, int64_t row0, int64_t nrows,
                              float *dst);

typedef struct tp_model tp_model;

/* Calibration: called with the input X[n][in] (row-major) of every linear layer's matmul, by the
 * weight's tensor name, before the product. It must only read X; the forward's results are
 * unchanged. Used by pipeline/calib.c to collect per-input-channel activation statistics. */
typedef void (*tp_act_sink)(void *user, const char *weight_name, const float *X, int n, int in);

/* Loads dir/config.json and dir's safetensors. opts may be NULL (defaults). */
tp_status tp_model_load(const char *dir, const tp_model_opts *opts, tp_model **out, tp_err *e);
void tp_model_free(tp_model *m);

const tp_model_config *tp_model_cfg(const tp_model *m);
const tp_st_set *tp_model_files(const tp_model *m);
tp_weight_mode tp_model_weight_mode(const tp_model *m); /* F32 or PER_LAYER after AUTO resolved */
int tp_model_capacity(const tp_model *m);               /* KV cache positions */

/* The weight matrices the forward pass multiplies by (every linear weight, embeddings and lm_head
 * if untied), by tensor name in file order of layers: the codec's candidates. */
size_t tp_model_num_weights(const tp_model *m);
const tp_st_tensor *tp_model_weight(const tp_model *m, size_t i);

void tp_model_set_weight_hook(tp_model *m, tp_weight_hook fn, void *user);
void tp_model_set_act_sink(tp_model *m, tp_act_sink fn, void *user); /* fn NULL: off */
/* data: numel floats in file layout, owned by the caller, alive until replaced or the model is
 * freed; NULL removes the override. An override equal to the file's weights gives the same bits as
 * the file when data is 64-byte aligned (tp_alloc), as the model's own copies are. Fails if name is not one of tp_model_weight(). */
tp_status tp_model_override_weight(tp_model *m, const char *name, const float *data, tp_err *e);

/* Packed weights (compressed inference, pipeline/linear.h): the model multiplies by l, in its
 * codec's format, wherever it would multiply by tensor `name` (a linear layer, the embeddings'
 * rows, the lm_head), and owns l from then on (on failure the caller keeps it). l is [out, in]:
 * the file's shape, or its transpose for a GPT-2 Conv1D weight. No fp32 copy of a packed weight
 * is ever made. CPU device only. */
struct tp_linear;
tp_status tp_model_set_packed(tp_model *m, const char *name, struct tp_linear *l, tp_err *e);
struct tp_linear *tp_model_packed(const tp_model *m, const char *name); /* NULL: not packed */
/* The model frees p with fn when it is freed (after its weights): what packed weights or
 * overrides point into, e.g. an artifact's map. On failure fn(p) has been called. */
tp_status tp_model_adopt(tp_model *m, void *p, void (*fn)(void *), tp_err *e);

/* KV cache: positions [0, cached) are in it. */
int tp_model_cached(const tp_model *m);
void tp_model_reset(tp_model *m);

/* Runs ids[0..n) at positions pos0 .. pos0+n-1 (0 <= pos0 <= cached, pos0 + n <= capacity; a
 * pos0 below cached rewinds the cache), leaving cached = pos0 + n. Writes the logits of rows
 * [row0, n) to logits ((n - row0) x vocab floats, row-major); logits may be NULL (no lm_head).
 * Incremental decoding: tp_model_forward(m, &tok, 1, cached, 0, logits, e). */
tp_status tp_model_forward(tp_model *m, const int32_t *ids, int n, int pos0, int row0, float *logits, tp_err *e);

/* Same, but instead of logits writes nll[i - row0] = -log softmax(logits_i)[targets[i - row0]]
 * for rows i in [row0, row1) (row1 <= n), in double precision, holding only a block of logits at
 * a time. For a window ids[0..n) scored on itself: targets = ids + row0 + 1, row1 = n - 1. */
tp_status tp_model_forward_nll(tp_model *m, const int32_t *ids, int n, int pos0, int row0, int row1,
                               const int32_t *targets, double *nll, tp_err *e);

/* Chunked prefill (CPU device): a forward pass of more than `rows` tokens runs as consecutive
 * passes of at most `rows` tokens each (as equal as can be), each at its positions and attending
 * to the KV cache the ones before it filled, as incremental decoding does; the requested logits /
 * NLLs are computed chunk by chunk. The activations are then only ever sized for `rows` tokens.
 * The logits agree with one pass over all n rows to float rounding (the products have other
 * shapes); the split depends on n and `rows` only, never on the thread count or the weight mode.
 * Every chunk reads every weight again (a packed one is dequantised again, model_forward.c), and
 * runs the products on fewer rows. Measured on a 2-vCPU Zen 4 in one process, chunked and unchunked
 * passes alternating: llama-mini's pp512 (5.6 MB of activations) in 2 chunks of 256 ran 6.5% (fp32)
 * and 7.6% (int4) slower; TinyLlama-shaped pp512 (31 MB of activations, 5% of its int4 artifact) in
 * 2 chunks 8% (fp32) and 9% (int4) slower, in 4 chunks of 128 20-30% slower. So the default chunks
 * only passes whose activations would pass TP_PREFILL_CHUNK_BYTES, into chunks of at least
 * TP_PREFILL_CHUNK rows: a model whose int4 artifact is ~10x its prefill activations gets +9.5%
 * peak RSS instead of +14.8% (TinyLlama-shaped, bench-model) for that prefill time. rows <= 0: every pass at once. $TENPAK_PREFILL_CHUNK (rows; 0: off)
 * replaces the default at load. While an activation sink is set no pass is chunked (calibration
 * sees every row of an input in one call). */
#define TP_PREFILL_CHUNK 256
#define TP_PREFILL_CHUNK_BYTES ((size_t)16 << 20)
void tp_model_set_prefill_chunk(tp_model *m, int rows);
int tp_model_prefill_chunk(const tp_model *m);

/* Where tp_model_forward and tp_model_forward_nll run. TP_DEVICE_CPU (default) is the code above,
 * unchanged. TP_DEVICE_CUDA (kernels/cuda/tp_cuda_model.h): every tensor is uploaded now (again on
 * the next forward after an override or the weight hook changes): packed weights (artifacts with
 * --exec packed) as their INT4-family records, multiplied by the GPU's INT4 kernels with binary16
 * activations (any other packed codec fails, naming the tensor and --exec dequant); in
 * TP_WEIGHTS_F16 mode the other matrices in fp16 (cublasGemmEx, binary16 activations, fp32 sums);
 * else in fp32 (overrides and the weight hook applied; cublasSgemm without TF32). Each window's
 * forward pass runs on the GPU with its own KV cache; only the NLLs or the requested logits come
 * back. Fails with "... built without CUDA" or "no CUDA device (...)". Changing the device
 * empties the KV cache. */
typedef enum tp_device { TP_DEVICE_CPU = 0, TP_DEVICE_CUDA = 1 } tp_device;
tp_status tp_model_set_device(tp_model *m, tp_device d, tp_err *e);
tp_device tp_model_device(const tp_model *m);
const char *tp_device_name(tp_device d);             /* "cpu" / "cuda" */
const char *tp_model_device_desc(const tp_model *m); /* "cpu" or the GPU's name ("NVIDIA H200") */

/* Time spent in sgemm and its FLOP count since the last reset (for efficiency reports). */
void tp_model_gemm_stats(const tp_model *m, double *seconds, double *flops);
void tp_model_gemm_stats_reset(tp_model *m);

#ifdef __cplusplus
}
#endif
#endif
