/* The forward pass of pipeline/model_forward.c on a CUDA device (kernels/cuda/model.cu), for
 * `tenpak ppl / eval / bench-model --device cuda`. Callable from C; only built with TENPAK_HAVE_CUDA.
 *
 * The caller (pipeline/model_cuda.c) describes the architecture, then hands over every tensor once:
 * each weight matrix in one of three formats, which decides how its products run on the device:
 *   fp32 (set_mat: the tensor after overrides and the weight hook) - cublasSgemm with
 *        CUBLAS_PEDANTIC_MATH (no TF32: the products are fp32 as on the CPU);
 *   fp16 (set_mat16: the fp16-weights mode) - activations rounded to binary16, cublasGemmEx with
 *        fp32 accumulation;
 *   packed (set_qmat: an artifact's int4 / int4r2 / nf4 record, never decoded on the host) - up to
 *        16 rows through the INT4 family's kernels (kernels/cuda/int4.cu, activations rounded to
 *        binary16, exact products, fp32 sums); more rows through the matrix dequantised into a
 *        scratch buffer and cublasSgemm.
 * The device keeps these weights, a KV cache of `cap` positions and the activations of one window.
 * A window's forward pass runs entirely on the device, everything but the products in the simple
 * kernels of model.cu (each a plain transcription of the CPU code in pipeline/model_forward.c); only the
 * per-token NLLs or the requested rows' logits come back.
 *
 * Errors: every CUDA / cuBLAS return code is checked; a failure returns a tp_status with a
 * one-line message naming the call, and leaves the model unusable (every later call fails). */
#ifndef TENPAK_CUDA_MODEL_H
#define TENPAK_CUDA_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "tenpak/quant.h"
#include "tenpak/tenpak.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tp_cuda_model_shape {
    int gpt2;  /* 1: GPT-2 (LayerNorm, learned positions, fused qkv, MLP fc/proj); 0: Llama family */
    int act;   /* tp_act of pipeline/config.h: 0 gelu_new, 1 gelu, 2 silu, 3 relu */
    int n_layer, d_model, n_head, n_kv_head, head_dim, d_ff, vocab;
    int cap;            /* KV cache positions (and rows of the RoPE tables / GPT-2 positions) */
    int sliding_window; /* 0: full causal attention */
    double norm_eps;
} tp_cuda_model_shape;

/* Where a tensor goes. Vectors (norms, biases) are numel floats; matrices are in file layout. */
typedef enum tp_cuda_slot {
    TP_CU_EMB = 0,  /* [vocab, d] */
    TP_CU_POS,      /* GPT-2 [n_ctx, d] (at least cap rows) */
    TP_CU_HEAD,     /* untied lm_head [vocab, d]; absent when tied (the embedding is used) */
    TP_CU_NORM_F_W, TP_CU_NORM_F_B,
    /* per layer */
    TP_CU_N1W, TP_CU_N1B, TP_CU_N2W, TP_CU_N2B,
    TP_CU_QKV, TP_CU_Q, TP_CU_K, TP_CU_V, TP_CU_O, TP_CU_FC, TP_CU_PROJ, TP_CU_GATE, TP_CU_UP, TP_CU_DOWN,
    TP_CU_NSLOTS
} tp_cuda_slot;

typedef struct tp_cuda_model tp_cuda_model;

/* Fails with "no CUDA device (...)" when none is usable. */
tp_status tp_cuda_model_create(const tp_cuda_model_shape *s, tp_cuda_model **out, tp_err *e);
void tp_cuda_model_free(tp_cuda_model *cm);
/* "NVIDIA H200" etc. */
const char *tp_cuda_model_device_name(const tp_cuda_model *cm);

/* Vectors: norms (TP_CU_NORM_F_*, TP_CU_N1W..TP_CU_N2B), n floats. layer -1 for model-wide slots. */
tp_status tp_cuda_model_set_vec(tp_cuda_model *cm, tp_cuda_slot slot, int layer, const float *v, int64_t n,
                                tp_err *e);
/* Matrices in file layout rows x cols; linear = 1 for [out, in] (nn.Linear, embeddings), 0 for
 * [in, out] (GPT-2 Conv1D). bias: [out] floats or NULL. */
tp_status tp_cuda_model_set_mat(tp_cuda_model *cm, tp_cuda_slot slot, int layer, const float *w, int64_t rows,
                                int64_t cols, int linear, const float *bias, tp_err *e);
/* The same slot in fp16 (binary16 bits, file layout), or packed ([out, in]: q->rows = out). The
 * arrays are copied; q may be a view into a memory-mapped artifact. */
tp_status tp_cuda_model_set_mat16(tp_cuda_model *cm, tp_cuda_slot slot, int layer, const uint16_t *w16, int64_t rows,
                                  int64_t cols, int linear, const float *bias, tp_err *e);
tp_status tp_cuda_model_set_qmat(tp_cuda_model *cm, tp_cuda_slot slot, int layer, const tp_qmat *q, const float *bias,
                                 tp_err *e);
/* RoPE tables [cap][head_dim/2] (the CPU's own, so angles are bit-identical). */
tp_status tp_cuda_model_set_rope(tp_cuda_model *cm, const float *cos_t, const float *sin_t, tp_err *e);

/* The contract of tp_model_forward_nll (pipeline/model.h) with the device's own KV cache: runs
 * ids[0..n) at positions pos0.. (pos0 <= the device's cached positions, pos0 + n <= cap) and
 * writes nll[i - row0] = -log softmax(logits_i)[targets[i - row0]] for rows [row0, row1).
 * Arguments are checked by the caller. */
tp_status tp_cuda_model_forward_nll(tp_cuda_model *cm, const int32_t *ids, int n, int pos0, int row0, int row1,
                                    const int32_t *targets, double *nll, tp_err *e);

/* The contract of tp_model_forward (pipeline/model.h): runs ids[0..n) at positions pos0.. and, when
 * logits is not NULL, copies the logits of rows [row0, n) into it (host memory, (n - row0) x vocab). */
tp_status tp_cuda_model_forward_logits(tp_cuda_model *cm, const int32_t *ids, int n, int pos0, int row0,
                                       float *logits, tp_err *e);

#ifdef __cplusplus
}
#endif
#endif
