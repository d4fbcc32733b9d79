/* The VQ, 2:4 and low-rank codecs as codec-pipeline methods (pipeline/codec.h), so specs such as
 *   vq:d=4,k=256                         PocketLLM-style VQ
 *   vq:d=8,k=256+int4:g=32               vq+int4 v1      (chains encode the residual)
 *   vq:d=4,k=256+int4:g=16,refine=4      vq+int4 v2
 *   lowrank:r=32+vq:d=4,k=256+int4:g=32  tenpakx (decode adds LR, then VQ, then INT4, in order)
 *   sparse24:v=16                        2:4 with fp16 values (v=32 fp32, v=4 INT4 g kept values)
 * run through tenpak compress / eval. The table tp_codec_methods_k3 is joined to the pipeline's
 * own method table by pipeline/codec.c. Blobs are each codec's pack image; blob sizes are the
 * packed sizes (codebooks, factors, metadata and scales all counted). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/codec.h"
#include "tenpak/lowrank.h"
#include "tenpak/sparse.h"
#include "tenpak/vq.h"

#define P(s, k) tp_codec_param_get((s), (k))

static tp_status oom(tp_err *e, int64_t rows, int64_t cols) {
    return tp_fail(e, TP_ERR_NOMEM, "out of memory for a %lldx%lld matrix", (long long)rows, (long long)cols);
}

static tp_status add_into(float *W, const float *D, int64_t n) {
    for (int64_t i = 0; i < n; i++) W[i] += D[i];
    return TP_OK;
}

/* ---- vq: d, k, iters (Lloyd), imp (importance = |w|), seed ---- */
static size_t vq_blob(const tp_codec_stage *s, int64_t rows, int64_t cols) {
    return tp_vq_bytes_for(rows, cols, (int)P(s, "d"), (int)P(s, "k"));
}
static double vq_theory(const tp_codec_stage *s, int64_t rows, int64_t cols) {
    (void)rows;
    (void)cols;
    return tp_vq_code_bits((int)P(s, "k")) / P(s, "d"); }
static tp_status vq_encode(const tp_codec_stage *s, const float *W, int64_t rows, int64_t cols, uint8_t *blob,
                           tp_err *e) {
    tp_vqmat m;
    if (tp_vq_alloc(&m, rows, cols, (int)P(s, "d"), (int)P(s, "k")) != TP_OK) return oom(e, rows, cols);
    tp_kmeans_opts o = {.seed = (uint64_t)P(s, "seed"), .max_iters = (int)P(s, "iters"), .importance = P(s, "imp") != 0};
    tp_status st = tp_vq_fit(&m, W, &o, NULL);
    if (st == TP_OK) tp_vq_pack(&m, blob);
    else tp_fail(e, st, "vq: k-means failed on a %lldx%lld matrix", (long long)rows, (long long)cols);
    tp_vq_free(&m);
    return st;
}
static tp_status vq_decode_add(const tp_codec_stage *s, const uint8_t *blob, int64_t rows, int64_t cols, float *W,
                               tp_err *e) {
    tp_vqmat m;
    float *D = tp_alloc((size_t)(rows * cols) * sizeof(float));
    if (!D || tp_vq_alloc(&m, rows, cols, (int)P(s, "d"), (int)P(s, "k")) != TP_OK) {
        tp_free(D);
        return oom(e, rows, cols);
    }
    tp_vq_unpack(&m, blob);
    tp_vq_decode_cpu(&m, D);
    add_into(W, D, rows * cols);
    tp_vq_free(&m);
    tp_free(D);
    return TP_OK;
}

/* ---- sparse24: v (value bits 32 / 16 / 4), g (INT4 group in kept values), imp ---- */
static tp_sp_vkind sp_kind(const tp_codec_stage *s) {
    int v = (int)P(s, "v");
    return v == 32 ? TP_SP_F32 : v == 4 ? TP_SP_INT4 : TP_SP_F16;
}
static size_t sp_blob(const tp_codec_stage *s, int64_t rows, int64_t cols) {
    return tp_sp24_bytes_for(sp_kind(s), (int)P(s, "g"), rows, cols);
}
static double sp_theory(const tp_codec_stage *s, int64_t rows, int64_t cols) {
    (void)rows;
    (void)cols;
    tp_sp_vkind k = sp_kind(s);
    return 1.0 + (k == TP_SP_F32 ? 16.0 : k == TP_SP_F16 ? 8.0 : 2.0 + 16.0 / P(s, "g"));
}
static tp_status sp_encode(const tp_codec_stage *s, const float *W, int64_t rows, int64_t cols, uint8_t *blob,
                           tp_err *e) {
    tp_sp24 m;
    float *Pr = tp_alloc((size_t)(rows * cols) * sizeof(float));
    float *imp = P(s, "imp") != 0 ? tp_alloc((size_t)cols * sizeof(float)) : NULL;
    if (!Pr || (P(s, "imp") != 0 && !imp) || tp_sp24_alloc(&m, sp_kind(s), rows, cols, (int)P(s, "g")) != TP_OK) {
        tp_free(Pr);
        tp_free(imp);
        return oom(e, rows, cols);
    }
    if (imp) tp_col_importance(W, rows, cols, imp);
    tp_prune24_cpu(W, rows, cols, imp, Pr);
    tp_status st = tp_sp24_compress_cpu(&m, Pr, 0);
    if (st == TP_OK) tp_sp24_pack(&m, blob);
    else tp_fail(e, st, "sparse24: compress failed");
    tp_sp24_free(&m);
    tp_free(Pr);
    tp_free(imp);
    return st;
}
static tp_status sp_decode_add(const tp_codec_stage *s, const uint8_t *blob, int64_t rows, int64_t cols, float *W,
                               tp_err *e) {
    tp_sp24 m;
    float *D = tp_alloc((size_t)(rows * cols) * sizeof(float));
    if (!D || tp_sp24_alloc(&m, sp_kind(s), rows, cols, (int)P(s, "g")) != TP_OK) {
        tp_free(D);
        return oom(e, rows, cols);
    }
    tp_sp24_unpack(&m, blob);
    tp_sp24_decompress_cpu(&m, D);
    add_into(W, D, rows * cols);
    tp_sp24_free(&m);
    tp_free(D);
    return TP_OK;
}

/* ---- lowrank: r, imp (columns weighted by mean |w|) ---- */
static size_t lr_blob(const tp_codec_stage *s, int64_t rows, int64_t cols) {
    return tp_lowrank_bytes_for(rows, cols, (int)P(s, "r"));
}
/* fp16 factors: 16 r (rows + cols) / (rows cols) bits per weight */
static double lr_theory(const tp_codec_stage *s, int64_t rows, int64_t cols) {
    return 16.0 * P(s, "r") * (double)(rows + cols) / ((double)rows * (double)cols);
}
static tp_status lr_encode(const tp_codec_stage *s, const float *W, int64_t rows, int64_t cols, uint8_t *blob,
                           tp_err *e) {
    tp_lowrank m;
    float *imp = P(s, "imp") != 0 ? tp_alloc((size_t)cols * sizeof(float)) : NULL;
    if ((P(s, "imp") != 0 && !imp) || tp_lowrank_alloc(&m, rows, cols, (int)P(s, "r")) != TP_OK) {
        tp_free(imp);
        return oom(e, rows, cols);
    }
    if (imp) tp_col_importance(W, rows, cols, imp);
    tp_status st = tp_lowrank_fit(&m, W, imp, e);
    if (st == TP_OK) tp_lowrank_pack(&m, blob);
    tp_lowrank_free(&m);
    tp_free(imp);
    return st;
}
static tp_status lr_decode_add(const tp_codec_stage *s, const uint8_t *blob, int64_t rows, int64_t cols, float *W,
                               tp_err *e) {
    tp_lowrank m;
    float *D = tp_alloc((size_t)(rows * cols) * sizeof(float));
    if (!D || tp_lowrank_alloc(&m, rows, cols, (int)P(s, "r")) != TP_OK) {
        tp_free(D);
        return oom(e, rows, cols);
    }
    tp_lowrank_unpack(&m, blob);
    tp_lowrank_product_cpu(&m, D);
    add_into(W, D, rows * cols);
    tp_lowrank_free(&m);
    tp_free(D);
    return TP_OK;
}

const tp_codec_method tp_codec_methods_k3[] = {
    {"vq", "d=4,k=256,iters=25,imp=0,seed=0", vq_blob, vq_theory, vq_encode, vq_decode_add},
    {"sparse24", "v=16,g=64,imp=0", sp_blob, sp_theory, sp_encode, sp_decode_add},
    {"lowrank", "r=32,imp=0", lr_blob, lr_theory, lr_encode, lr_decode_add},
};
const size_t tp_codec_methods_k3_count = sizeof tp_codec_methods_k3 / sizeof tp_codec_methods_k3[0];
