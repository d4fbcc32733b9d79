/* The 2:4 format (layout in include/tenpak/sparse.h): storage (alloc / free / byte count / pack /
 * unpack), one kept value, and the 2:4 property of a pruned matrix. Pruning, compression and the
 * sparse product are in reference/sparse_ref.c and kernels/cpu. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tenpak/sparse.h"

const char *tp_sp_vkind_name(tp_sp_vkind k) {
    switch (k) {
    case TP_SP_F32: return "f32";
    case TP_SP_F16: return "f16";
    case TP_SP_INT4: return "int4";
    }
    return "?";
}

static void sp_dims(tp_sp24 *s, int64_t rows, int64_t cols) {
    s->rows = rows;
    s->cols = cols;
    s->ngroups = (cols + 3) / 4;
    s->nkept = 2 * s->ngroups;
    s->meta_stride = (s->ngroups + 3) / 4;
}

tp_status tp_sp24_alloc(tp_sp24 *s, tp_sp_vkind vk, int64_t rows, int64_t cols, int g) {
    memset(s, 0, sizeof *s);
    if (rows <= 0 || cols <= 0) return TP_ERR_ARG;
    s->vkind = vk;
    sp_dims(s, rows, cols);
    size_t nv = (size_t)(rows * s->nkept);
    /* +8 bytes: the AVX2 GEMV reads metadata 4 bytes at a time */
    s->meta = tp_alloc((size_t)(rows * s->meta_stride) * 2 + 8);
    int ok = s->meta != NULL;
    if (vk == TP_SP_F32) ok = ok && (s->vf32 = tp_alloc(nv * 4)) != NULL;
    else if (vk == TP_SP_F16) ok = ok && (s->vf16 = tp_alloc(nv * 2)) != NULL;
    else ok = ok && tp_qmat_alloc(&s->q, TP_Q_INT4, rows, s->nkept, g) == TP_OK;
    if (!ok) {
        tp_sp24_free(s);
        return TP_ERR_NOMEM;
    }
    memset(s->meta, 0, (size_t)(rows * s->meta_stride) * 2 + 8);
    return TP_OK;
}

void tp_sp24_free(tp_sp24 *s) {
    tp_free(s->meta);
    tp_free(s->vf32);
    tp_free(s->vf16);
    if (s->q.codes) tp_qmat_free(&s->q);
    memset(s, 0, sizeof *s);
}

size_t tp_sp24_bytes(const tp_sp24 *s) {
    size_t b = (size_t)(s->rows * s->meta_stride) * 2, nv = (size_t)(s->rows * s->nkept);
    if (s->vkind == TP_SP_F32) return b + 4 * nv;
    if (s->vkind == TP_SP_F16) return b + 2 * nv;
    return b + tp_qmat_bytes(&s->q);
}

size_t tp_sp24_bytes_for(tp_sp_vkind vk, int g, int64_t rows, int64_t cols) {
    tp_sp24 s;
    memset(&s, 0, sizeof s);
    s.vkind = vk;
    sp_dims(&s, rows, cols);
    size_t b = (size_t)(rows * s.meta_stride) * 2, nv = (size_t)(rows * s.nkept);
    if (vk == TP_SP_F32) return b + 4 * nv;
    if (vk == TP_SP_F16) return b + 2 * nv;
    /* the INT4 value matrix is rows x N: its size from quant.h's own formula */
    double bpw = tp_qkind_bits_per_weight(TP_Q_INT4, g, rows, s.nkept);
    return b + (size_t)llround(bpw * (double)nv / 8.0);
}

void tp_sp24_pack(const tp_sp24 *s, void *dst) {
    unsigned char *d = dst;
    size_t mb = (size_t)(s->rows * s->meta_stride) * 2, nv = (size_t)(s->rows * s->nkept);
    memcpy(d, s->meta, mb);
    d += mb;
    if (s->vkind == TP_SP_F32) memcpy(d, s->vf32, 4 * nv);
    else if (s->vkind == TP_SP_F16) memcpy(d, s->vf16, 2 * nv);
    else tp_qmat_pack(&s->q, d);
}

void tp_sp24_unpack(tp_sp24 *s, const void *src) {
    const unsigned char *d = src;
    size_t mb = (size_t)(s->rows * s->meta_stride) * 2, nv = (size_t)(s->rows * s->nkept);
    memcpy(s->meta, d, mb);
    d += mb;
    if (s->vkind == TP_SP_F32) memcpy(s->vf32, d, 4 * nv);
    else if (s->vkind == TP_SP_F16) memcpy(s->vf16, d, 2 * nv);
    else tp_qmat_unpack(&s->q, d);
}

float tp_sp24_value(const tp_sp24 *s, int64_t r, int64_t k) {
    size_t i = (size_t)(r * s->nkept + k);
    if (s->vkind == TP_SP_F32) return s->vf32[i];
    if (s->vkind == TP_SP_F16) return tp_f16_to_f32(s->vf16[i]);
    const tp_qmat *q = &s->q;
    size_t si = (size_t)(r * q->ngroups + k / q->g);
    return (float)tp_qmat_code(q, r, k) * tp_f16_to_f32(q->scale[si]) + tp_f16_to_f32(q->offset[si]);
}

int tp_is_24_sparse(const float *P, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c0 = 0; c0 < cols; c0 += 4) {
            int nz = 0;
            for (int64_t c = c0; c < c0 + 4 && c < cols; c++) nz += P[r * cols + c] != 0.0f;
            if (nz > 2) return 0;
        }
    return 1;
}
