/* What the files of the forward pass share (private to pipeline/model_*.c; the contract is
 * pipeline/model.h): the model struct and the functions one file defines for another.
 *   model_load.c    accessors, weight override / hook / packed, loading a checkpoint, weights as fp32
 *   model_forward.c the CPU forward pass (norms, attention, MLP, lm_head, NLL)
 *   model_cuda.c    the device section: upload to and forward on a CUDA GPU (kernels/cuda/model.cu) */
#ifndef TENPAK_PIPELINE_MODEL_INTERNAL_H
#define TENPAK_PIPELINE_MODEL_INTERNAL_H

#include "pipeline/model.h"
#include "pipeline/linear.h"

/* One weight matrix as the forward pass uses it. rows x cols is the file layout seen as 2-D. */
typedef struct wmat {
    const tp_st_tensor *t;
    int64_t rows, cols;
    int linear_layout; /* 1: [out, in] (nn.Linear, embeddings), 0: [in, out] (GPT-2 Conv1D) */
    float *f32;        /* cached fp32 copy (F32 mode), owned; NULL until first use */
    const float *ovr;  /* caller-owned override */
    float *bias;       /* owned, [out], or NULL */
    tp_linear *packed; /* owned: the weight in its codec's format (tp_model_set_packed), or NULL */
} wmat;

typedef struct layer {
    float *n1w, *n1b, *n2w, *n2b; /* norms (b NULL for RMSNorm) */
    wmat qkv;                     /* GPT-2 fused c_attn */
    wmat q, k, v, o;              /* Llama family (o also GPT-2's attn.c_proj) */
    wmat fc, proj;                /* GPT-2 mlp.c_fc / mlp.c_proj */
    wmat gate, up, down;          /* Llama family */
} layer;

struct tp_model {
    tp_model_config c;
    tp_st_set *st;
    tp_weight_mode mode;
    int cap, kvd, qd; /* KV capacity; kv width KVH*hd; query width H*hd */
    wmat emb, pos, head;
    wmat *headp; /* &emb when tied, else &head */
    int tied;
    float *nfw, *nfb;
    layer *L;
    wmat **all;
    size_t nall;
    float *kc, *vc; /* [n_layer][cap][kvd] */
    int cached;
    float *rope_cos, *rope_sin; /* [cap][hd/2] */
    /* activations, sized for `rows` rows */
    int rows;
    float *x, *h, *q, *att, *ff1, *ff2, *S; /* att, ff1, ff2 share h's and q's memory (ensure_rows) */
    float *wscratch; /* PER_LAYER conversion target */
    size_t wscratch_n;
    int head_blk; /* lm_head rows per sgemm call, the same in every weight mode (see head()) */
    float *lbuf; /* logits block for the NLL path */
    int lbuf_rows;
    int prefill_chunk; /* CPU forward: rows per trunk pass (model_forward.c); <= 0: all at once */
    tp_weight_hook hook;
    void *hook_user;
    tp_act_sink act_sink; /* calibration: sees every linear layer's input; NULL = no-op */
    void *act_user;
    double gemm_s, gemm_flops;
    struct kept { void *p; void (*fn)(void *); } *kept; /* tp_model_adopt */
    int nkept;
    int npacked;
    tp_device device; /* where tp_model_forward_nll runs (model_cuda.c) */
    void *cuda;       /* tp_cuda_model *, NULL until --device cuda */
    int cuda_stale;   /* weights changed since they were uploaded */
};

#define HEAD_BLOCK_FLOATS (8u << 20) /* lm_head multiplied in blocks of at most this many floats */

/* ---- weights as fp32 (model_load.c) ---- */
/* rows [r0, r0 + nr) of w in fp32 into dst: override, weight hook, or the file's rows converted */
tp_status tp_model_wfill(tp_model *m, const wmat *w, int64_t r0, int64_t nr, float *dst, tp_err *e);
/* The whole matrix in fp32: override, cached copy, or converted now (cached in F32 mode, into
 * the shared scratch in PER_LAYER mode, valid until the next tp_model_wget). */
const float *tp_model_wget(tp_model *m, wmat *w, tp_status *rc, tp_err *e);

/* ---- the forward pass (model_forward.c) ---- */
/* Bytes of activations one row of a CPU pass holds (ensure_rows): what chunked prefill bounds. */
size_t tp_model_act_row_bytes(const tp_model *m);
/* The arguments of a forward pass (any device): tokens in range, positions within the cache. */
tp_status tp_model_check_args(const tp_model *m, const int32_t *ids, int n, int pos0, tp_err *e);

/* ---- devices (model_cuda.c) ---- */
void tp_model_device_release(tp_model *m);
/* The argument checks, then the device's forward pass with logits / with per-token NLL. */
tp_status tp_model_device_forward(tp_model *m, const int32_t *ids, int n, int pos0, int row0, float *logits,
                                  tp_err *e);
tp_status tp_model_device_forward_nll(tp_model *m, const int32_t *ids, int n, int pos0, int row0, int row1,
                                      const int32_t *targets, double *nll, tp_err *e);

#endif
