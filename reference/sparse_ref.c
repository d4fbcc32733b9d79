/* Reference (scalar, obviously right) for 2:4 sparsity: pruning, the compressed format and the
 * sparse product. Layout and definitions: include/tenpak/sparse.h. */
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

/* ---- pruning ---- */
void tp_prune24_ref(const float *W, int64_t rows, int64_t cols, const float *importance, float *P) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c0 = 0; c0 < cols; c0 += 4) {
            double sc[4];
            for (int i = 0; i < 4; i++) {
                int64_t c = c0 + i;
                sc[i] = c < cols ? fabs((double)W[r * cols + c]) * (importance ? fabs((double)importance[c]) : 1.0)
                                 : -1.0; /* padding never wins */
            }
            int a = 0;
            for (int i = 1; i < 4; i++)
                if (sc[i] > sc[a]) a = i;
            int b = a == 0 ? 1 : 0;
            for (int i = 0; i < 4; i++)
                if (i != a && sc[i] > sc[b]) b = i;
            for (int i = 0; i < 4 && c0 + i < cols; i++)
                P[r * cols + c0 + i] = (i == a || i == b) ? W[r * cols + c0 + i] : 0.0f;
        }
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

/* ---- compress / decompress ---- */
static void set_field(tp_sp24 *s, int64_t r, int64_t j, int f) {
    uint16_t *w = &s->meta[r * s->meta_stride + (j >> 2)];
    int sh = 4 * (int)(j & 3);
    *w = (uint16_t)((*w & ~(15u << sh)) | ((unsigned)f << sh));
}

tp_status tp_sp24_compress_ref(tp_sp24 *s, const float *P, int refine_iters) {
    const int64_t cols = s->cols, N = s->nkept;
    float *kept = s->vkind == TP_SP_INT4 ? malloc((size_t)(s->rows * N) * sizeof(float)) : NULL;
    if (s->vkind == TP_SP_INT4 && !kept) return TP_ERR_NOMEM;
    memset(s->meta, 0, (size_t)(s->rows * s->meta_stride) * 2);
    for (int64_t r = 0; r < s->rows; r++)
        for (int64_t j = 0; j < s->ngroups; j++) {
            int idx[2], n = 0;
            for (int i = 0; i < 4; i++) {
                int64_t c = 4 * j + i;
                if (c < cols && P[r * cols + c] != 0.0f) {
                    if (n == 2) {
                        free(kept);
                        return TP_ERR_ARG;
                    }
                    idx[n++] = i;
                }
            }
            /* fill up with the lowest zero positions, then sort the pair */
            for (int i = 0; i < 4 && n < 2; i++)
                if (!(n == 1 && idx[0] == i)) {
                    int64_t c = 4 * j + i;
                    if (c >= cols || P[r * cols + c] == 0.0f) idx[n++] = i;
                }
            if (idx[0] > idx[1]) { int t = idx[0]; idx[0] = idx[1]; idx[1] = t; }
            set_field(s, r, j, idx[0] | (idx[1] << 2));
            for (int t = 0; t < 2; t++) {
                int64_t c = 4 * j + idx[t];
                float v = c < cols ? P[r * cols + c] : 0.0f;
                size_t k = (size_t)(r * N + 2 * j + t);
                if (s->vkind == TP_SP_F32) s->vf32[k] = v;
                else if (s->vkind == TP_SP_F16) s->vf16[k] = tp_f32_to_f16(v);
                else kept[k] = v;
            }
        }
    if (kept) tp_quantize_ref(&s->q, kept, refine_iters);
    free(kept);
    return TP_OK;
}

void tp_sp24_decompress_ref(const tp_sp24 *s, float *W) {
    const int64_t cols = s->cols;
    memset(W, 0, (size_t)(s->rows * cols) * sizeof(float));
    for (int64_t r = 0; r < s->rows; r++)
        for (int64_t j = 0; j < s->ngroups; j++) {
            int f = tp_sp24_field(s, r, j);
            for (int t = 0; t < 2; t++) {
                int64_t c = 4 * j + ((f >> (2 * t)) & 3);
                if (c < cols) W[r * cols + c] = tp_sp24_value(s, r, 2 * j + t);
            }
        }
}

void tp_sp24_gemm_ref(const tp_sp24 *s, const float *X, int64_t batch, float *Y) {
    const int64_t cols = s->cols;
    for (int64_t b = 0; b < batch; b++)
        for (int64_t r = 0; r < s->rows; r++) {
            double acc = 0;
            for (int64_t j = 0; j < s->ngroups; j++) {
                int f = tp_sp24_field(s, r, j);
                for (int t = 0; t < 2; t++) {
                    int64_t c = 4 * j + ((f >> (2 * t)) & 3);
                    if (c < cols) acc += (double)tp_sp24_value(s, r, 2 * j + t) * X[b * cols + c];
                }
            }
            Y[b * s->rows + r] = (float)acc;
        }
}

tp_status tp_sp24_roundtrip(const float *W, int64_t rows, int64_t cols, tp_sp_vkind vk, int g,
                            const float *importance, float *out, size_t *packed, tp_err *e) {
    tp_sp24 s;
    tp_status st = tp_sp24_alloc(&s, vk, rows, cols, g);
    if (st != TP_OK) return tp_fail(e, st, "sparse24: cannot allocate %lldx%lld", (long long)rows, (long long)cols);
    tp_prune24_cpu(W, rows, cols, importance, out);
    st = tp_sp24_compress_cpu(&s, out, 0);
    if (st == TP_OK) {
        tp_sp24_decompress_cpu(&s, out);
        if (packed) *packed = tp_sp24_bytes(&s);
    } else
        tp_fail(e, st, "sparse24: compress failed");
    tp_sp24_free(&s);
    return st;
}
