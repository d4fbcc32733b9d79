/* Reference (scalar, obviously right) for 2:4 sparsity: pruning, compression into the format and
 * the sparse product. Layout and definitions: include/tenpak/sparse.h; storage: common/sparse24.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tenpak/sparse.h"

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
