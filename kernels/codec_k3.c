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
/* Every code of a vq blob names a centroid: k need not be a power of two, so a code of
 * tp_vq_code_bits(k) bits can point past the codebook in a damaged or forged blob. */
static tp_status vq_codes_check(const uint8_t *blob, int64_t rows, int64_t cols, int d, int K, tp_err *e) {
    const int b = tp_vq_code_bits(K);
    if (((int64_t)1 << b) == K) return TP_OK;
    const uint8_t *c8 = blob + (size_t)K * (size_t)d * 2;
    const int64_t n = rows * ((cols + d - 1) / d);
    uint64_t pos = 0;
    for (int64_t i = 0; i < n; i++, pos += (uint64_t)b) {
        uint32_t c = 0;
        for (int k = 0; k < b; k++) c |= (uint32_t)(c8[(pos + (uint64_t)k) >> 3] >> ((pos + (uint64_t)k) & 7) & 1) << k;
        if (c >= (uint32_t)K)
            return tp_fail(e, TP_ERR_FORMAT, "vq blob for %lldx%lld: code %u of vector %lld is past its %d centroids "
                           "(damaged or forged)", (long long)rows, (long long)cols, c, (long long)i, K);
    }
    return TP_OK;
}

static tp_status vq_decode_add(const tp_codec_stage *s, const uint8_t *blob, int64_t rows, int64_t cols, float *W,
                               tp_err *e) {
    tp_status cs = vq_codes_check(blob, rows, cols, (int)P(s, "d"), (int)P(s, "k"), e);
    if (cs != TP_OK) return cs;
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
    tp_status st = imp ? tp_col_importance(W, rows, cols, imp) : TP_OK;
    if (st == TP_OK) {
        tp_prune24_cpu(W, rows, cols, imp, Pr);
        st = tp_sp24_compress_cpu(&m, Pr, 0);
    }
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
    tp_status st = imp ? tp_col_importance(W, rows, cols, imp) : TP_OK;
    if (st == TP_OK) st = tp_lowrank_fit(&m, W, imp, e);
    else oom(e, rows, cols);
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

/* ---- packed execution (pipeline/codec.h's tp_codec_exec): each family's own GEMV / GEMM on an
 * unpacked copy of its packed format (codes, metadata, fp16 factors: never the fp32 matrix).
 * vq and lowrank have GEMV kernels only: n rows are n GEMVs. */
static void *nomem(tp_err *e, int64_t rows, int64_t cols) {
    oom(e, rows, cols);
    return NULL;
}

static void *vq_open(const tp_codec_stage *s, const uint8_t *blob, int64_t rows, int64_t cols, tp_err *e) {
    if (vq_codes_check(blob, rows, cols, (int)P(s, "d"), (int)P(s, "k"), e) != TP_OK) return NULL;
    tp_vqmat *m = malloc(sizeof *m);
    if (!m || tp_vq_alloc(m, rows, cols, (int)P(s, "d"), (int)P(s, "k")) != TP_OK) { free(m); return nomem(e, rows, cols); }
    tp_vq_unpack(m, blob);
    if (tp_vq_prepare(m) != TP_OK) { tp_vq_free(m); free(m); return nomem(e, rows, cols); }
    return m;
}
static tp_status vq_mul(const void *p, const float *X, int64_t n, float *Y) {
    const tp_vqmat *m = p;
    for (int64_t i = 0; i < n; i++)
        if (tp_vq_gemv_cpu(m, X + i * m->cols, Y + i * m->rows) != TP_OK) return TP_ERR_NOMEM;
    return TP_OK;
}
static void vq_row(const void *p, int64_t r, float *dst) {
    const tp_vqmat *m = p;
    for (int64_t v = 0; v < m->nvec; v++) {
        const float *c = m->codebook + (size_t)tp_vq_code(m, r, v) * (size_t)m->d;
        for (int j = 0; j < m->d && v * m->d + j < m->cols; j++) dst[v * m->d + j] = c[j];
    }
}
static void vq_corrupt(void *p, uint64_t k) {
    tp_vqmat *m = p; /* another centroid for one vector, and the GEMV's column-major copy remade */
    size_t i = (size_t)(k % (uint64_t)(m->rows * m->nvec));
    if (m->codes8) m->codes8[i] = (uint8_t)((m->codes8[i] + m->K / 2) % m->K);
    else m->codes16[i] = (uint16_t)((m->codes16[i] + m->K / 2) % m->K);
    tp_vq_unprepare(m);
    if (tp_vq_prepare(m) != TP_OK) tp_vq_unprepare(m); /* the scalar lookup then reads codes8 */
}
static size_t vq_bytes(const void *p) {
    const tp_vqmat *m = p;
    return sizeof *m + (size_t)m->K * (size_t)m->d * sizeof(float) +
           (size_t)(m->rows * m->nvec) * (m->codes8 ? 1 : 2) + (m->codes8t ? (size_t)(m->rows_t * m->nvec) : 0);
}
static void vq_close(void *p) {
    if (p) tp_vq_free(p);
    free(p);
}
static const tp_codec_exec vq_exec = {vq_open, vq_mul, vq_row, vq_corrupt, vq_bytes, vq_close};

static void *sp_open(const tp_codec_stage *s, const uint8_t *blob, int64_t rows, int64_t cols, tp_err *e) {
    tp_sp24 *m = malloc(sizeof *m);
    if (!m || tp_sp24_alloc(m, sp_kind(s), rows, cols, (int)P(s, "g")) != TP_OK) { free(m); return nomem(e, rows, cols); }
    tp_sp24_unpack(m, blob);
    return m;
}
static tp_status sp_mul(const void *p, const float *X, int64_t n, float *Y) {
    return n == 1 ? tp_sp24_gemv_cpu(p, X, Y) : tp_sp24_gemm_cpu(p, X, n, Y);
}
static void sp_row(const void *p, int64_t r, float *dst) {
    const tp_sp24 *m = p;
    tp_sp24 one = *m; /* row r alone: each array from that row's start */
    one.rows = 1;
    one.meta = m->meta + r * m->meta_stride;
    if (m->vf32) one.vf32 = m->vf32 + r * m->nkept;
    if (m->vf16) one.vf16 = m->vf16 + r * m->nkept;
    if (m->vkind == TP_SP_INT4) {
        one.q.rows = 1;
        one.q.codes = m->q.codes + r * m->q.code_stride;
        one.q.scale = m->q.scale + r * m->q.ngroups;
        one.q.offset = m->q.offset + r * m->q.ngroups;
    }
    tp_sp24_decompress_cpu(&one, dst);
}
static void sp_corrupt(void *p, uint64_t k) {
    tp_sp24 *m = p; /* one kept value moved far: its sign and magnitude (fp), or both codes of a byte */
    size_t i = (size_t)(k % (uint64_t)(m->rows * m->nkept));
    if (m->vf32) m->vf32[i] = -8.0f * m->vf32[i] + 1.0f;
    else if (m->vf16) m->vf16[i] = tp_f32_to_f16(-8.0f * tp_f16_to_f32(m->vf16[i]) + 1.0f);
    else m->q.codes[i % (size_t)(m->rows * m->q.code_stride)] ^= 0x88;
}
static size_t sp_bytes(const void *p) { return sizeof(tp_sp24) + tp_sp24_bytes(p); }
static void sp_close(void *p) {
    if (p) tp_sp24_free(p);
    free(p);
}
static const tp_codec_exec sp_exec = {sp_open, sp_mul, sp_row, sp_corrupt, sp_bytes, sp_close};

static void *lr_open(const tp_codec_stage *s, const uint8_t *blob, int64_t rows, int64_t cols, tp_err *e) {
    tp_lowrank *m = malloc(sizeof *m);
    if (!m || tp_lowrank_alloc(m, rows, cols, (int)P(s, "r")) != TP_OK) { free(m); return nomem(e, rows, cols); }
    tp_lowrank_unpack(m, blob);
    return m;
}
static tp_status lr_mul(const void *p, const float *X, int64_t n, float *Y) {
    const tp_lowrank *m = p;
    for (int64_t i = 0; i < n; i++)
        if (tp_lowrank_gemv_cpu(m, X + i * m->cols, Y + i * m->rows) != TP_OK) return TP_ERR_NOMEM;
    return TP_OK;
}
static void lr_row(const void *p, int64_t r, float *dst) {
    const tp_lowrank *m = p; /* lr(r, j) as lowrank.h defines it: fmaf in t order */
    for (int64_t j = 0; j < m->cols; j++) {
        float acc = 0;
        for (int t = 0; t < m->rank; t++) acc = fmaf(m->L[r * m->rank + t], m->R[(int64_t)t * m->cols + j], acc);
        dst[j] = acc;
    }
}
static void lr_corrupt(void *p, uint64_t k) {
    tp_lowrank *m = p; /* one factor of L moved far */
    size_t i = (size_t)(k % (uint64_t)(m->rows * m->rank));
    m->L[i] = -8.0f * m->L[i] + 1.0f;
}
static size_t lr_bytes(const void *p) {
    const tp_lowrank *m = p;
    return sizeof *m + (size_t)m->rank * (size_t)(m->rows + m->cols) * sizeof(float);
}
static void lr_close(void *p) {
    if (p) tp_lowrank_free(p);
    free(p);
}
static const tp_codec_exec lr_exec = {lr_open, lr_mul, lr_row, lr_corrupt, lr_bytes, lr_close};

const tp_codec_method tp_codec_methods_k3[] = {
    {"vq", "d=4,k=256,iters=25,imp=0,seed=0", vq_blob, vq_theory, vq_encode, vq_decode_add, &vq_exec},
    {"sparse24", "v=16,g=64,imp=0", sp_blob, sp_theory, sp_encode, sp_decode_add, &sp_exec},
    {"lowrank", "r=32,imp=0", lr_blob, lr_theory, lr_encode, lr_decode_add, &lr_exec},
};
const size_t tp_codec_methods_k3_count = sizeof tp_codec_methods_k3 / sizeof tp_codec_methods_k3[0];
