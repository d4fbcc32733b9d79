/* The sparse24 method (2:4 sparsity; include/tenpak/sparse.h): v (kept values as fp32 = 32, fp16 =
 * 16 or INT4 = 4), g (the INT4 group, in kept values), imp (pruning weighted by column
 * importance); sparse24+int4:g=G is an alias of sparse24:v=4,g=G (pipeline/codec.c). The blob is
 * tp_sp24_pack's image: metadata, then the values (INT4: with their scales). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/codec_methods.h"
#include "tenpak/lowrank.h"
#include "tenpak/sparse.h"

#define P(s, k) tp_codec_param_get((s), (k))

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
        return tp_codec_oom(e, rows, cols);
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
        return tp_codec_oom(e, rows, cols);
    }
    tp_sp24_unpack(&m, blob);
    tp_sp24_decompress_cpu(&m, D);
    tp_codec_add_into(W, D, rows * cols);
    tp_sp24_free(&m);
    tp_free(D);
    return TP_OK;
}

static void *sp_open(const tp_codec_stage *s, const uint8_t *blob, int64_t rows, int64_t cols, tp_err *e) {
    tp_sp24 *m = malloc(sizeof *m);
    if (!m || tp_sp24_alloc(m, sp_kind(s), rows, cols, (int)P(s, "g")) != TP_OK) { free(m); return tp_codec_oom_null(e, rows, cols); }
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
    if (m->vkind == TP_SP_INT4) one.q = tp_qmat_rows(&m->q, r, r + 1);
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

/* g a power of two in 8..4096, v 4, 16 or 32 */
static tp_status sp_check(const tp_codec_stage *s, const char *spec, int index, tp_err *e) {
    (void)index;
    tp_status st = tp_codec_check_integers(s, spec, NULL, e);
    if (st == TP_OK) st = tp_codec_check_group(s, spec, e);
    if (st != TP_OK) return st;
    if (P(s, "v") != 4 && P(s, "v") != 16 && P(s, "v") != 32)
        return tp_fail(e, TP_ERR_ARG, "codec '%s': v (2:4 value format) must be 4, 16 or 32", spec);
    return TP_OK;
}

const tp_codec_method tp_codec_sparse24 = {"sparse24", "v=16,g=64,imp=0", sp_blob, sp_theory, sp_encode, sp_decode_add,
                                           &sp_exec, sp_check, NULL};
