/* Reference (scalar, from the definitions) for ggml's block formats: dequantisation and the
 * matrix product. The layouts are documented in include/tenpak/ggml.h; sizes: common/ggml.c. */
#include <stdlib.h>
#include <string.h>

#include "tenpak/ggml.h"

static float f16(const uint8_t *p) { return tp_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

/* the 6-bit scale and min of sub-block s of a Q4_K / Q5_K super-block (b = its scales[12]) */
static void k_scale_min(const uint8_t *b, int s, int *sc, int *mn) {
    if (s < 4) {
        *sc = b[s] & 63;
        *mn = b[s + 4] & 63;
    } else {
        *sc = (b[s + 4] & 15) | (b[s - 4] >> 6) << 4;
        *mn = (b[s + 4] >> 4) | (b[s] >> 6) << 4;
    }
}

/* One block of `type` at p into out (its block elements). */
static void dequant_block(int type, const uint8_t *p, float *out) {
    switch (type) {
    case TP_GGML_F32: memcpy(out, p, 4); return;
    case TP_GGML_F16: out[0] = f16(p); return;
    case TP_GGML_BF16: out[0] = tp_bf16_to_f32((uint16_t)(p[0] | p[1] << 8)); return;
    case TP_GGML_Q4_0: {
        float d = f16(p);
        for (int j = 0; j < 32; j++) {
            int q = j < 16 ? p[2 + j] & 15 : p[2 + j - 16] >> 4;
            out[j] = d * (float)(q - 8);
        }
        return;
    }
    case TP_GGML_Q4_1: {
        float d = f16(p), m = f16(p + 2);
        for (int j = 0; j < 32; j++) {
            int q = j < 16 ? p[4 + j] & 15 : p[4 + j - 16] >> 4;
            out[j] = d * (float)q + m;
        }
        return;
    }
    case TP_GGML_Q5_0:
    case TP_GGML_Q5_1: {
        const int has_m = type == TP_GGML_Q5_1;
        float d = f16(p), m = has_m ? f16(p + 2) : 0.0f;
        const uint8_t *h = p + 2 + 2 * has_m, *qs = h + 4;
        uint32_t qh = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
        for (int j = 0; j < 32; j++) {
            int q = (j < 16 ? qs[j] & 15 : qs[j - 16] >> 4) | (int)((qh >> j) & 1) << 4;
            out[j] = has_m ? d * (float)q + m : d * (float)(q - 16);
        }
        return;
    }
    case TP_GGML_Q8_0: {
        float d = f16(p);
        for (int j = 0; j < 32; j++) out[j] = d * (float)(int8_t)p[2 + j];
        return;
    }
    case TP_GGML_Q4_K:
    case TP_GGML_Q5_K: {
        const int five = type == TP_GGML_Q5_K;
        float d = f16(p), dmin = f16(p + 2);
        const uint8_t *sc = p + 4, *qh = p + 16, *qs = p + 16 + 32 * five;
        for (int s = 0; s < 8; s++) {
            int a, mn;
            k_scale_min(sc, s, &a, &mn);
            float ds = d * (float)a, ms = dmin * (float)mn;
            for (int j = 0; j < 32; j++) {
                uint8_t b = qs[32 * (s / 2) + j];
                int q = s & 1 ? b >> 4 : b & 15;
                if (five) q |= ((qh[j] >> s) & 1) << 4;
                out[32 * s + j] = ds * (float)q - ms;
            }
        }
        return;
    }
    case TP_GGML_Q6_K: {
        const uint8_t *ql = p, *qh = p + 128;
        const int8_t *scales = (const int8_t *)(p + 192);
        float d = f16(p + 208);
        for (int i = 0; i < 256; i++) {
            int h = i / 128, k = i % 128;
            uint8_t lb = ql[64 * h + k % 64];
            int lo = k >= 64 ? lb >> 4 : lb & 15;
            int hi = (qh[32 * h + k % 32] >> (2 * (k / 32))) & 3;
            out[i] = (d * (float)scales[i / 16]) * (float)((lo | hi << 4) - 32);
        }
        return;
    }
    }
}

static tp_status check_type(int type, tp_err *e) {
    if (!tp_ggml_type_known(type)) return tp_fail(e, TP_ERR_UNSUPPORTED, "ggml type %d is not supported", type);
    return TP_OK;
}

tp_status tp_ggml_dequant_ref(int type, const void *src, int64_t n, float *dst, tp_err *e) {
    tp_status st = check_type(type, e);
    if (st != TP_OK) return st;
    const int64_t elems = tp_ggml_block_elems(type);
    const size_t bytes = tp_ggml_block_bytes(type);
    const char *name = tp_ggml_type_name(type);
    if (n < 0 || n % elems)
        return tp_fail(e, TP_ERR_ARG, "ggml %s: %lld elements is not a multiple of %lld", name, (long long)n,
                       (long long)elems);
    if (n && (!src || !dst)) return tp_fail(e, TP_ERR_ARG, "ggml %s dequant: NULL buffer", name);
    const uint8_t *p = src;
    for (int64_t b = 0; b < n / elems; b++) dequant_block(type, p + (size_t)b * bytes, dst + b * elems);
    return TP_OK;
}

tp_status tp_ggml_matmul_ref(int type, const void *W, int64_t rows, int64_t cols, const float *X, int64_t n,
                             float *Y, tp_err *e) {
    tp_status st = check_type(type, e);
    if (st != TP_OK) return st;
    const int64_t elems = tp_ggml_block_elems(type);
    const char *name = tp_ggml_type_name(type);
    if (rows < 0 || cols <= 0 || n < 0 || cols % elems)
        return tp_fail(e, TP_ERR_ARG, "ggml %s matmul: bad shape %lld x %lld (n %lld; cols a multiple of %lld)",
                       name, (long long)rows, (long long)cols, (long long)n, (long long)elems);
    if (rows && n && (!W || !X || !Y)) return tp_fail(e, TP_ERR_ARG, "ggml %s matmul: NULL buffer", name);
    float *row = malloc((size_t)cols * sizeof(float));
    if (!row) return tp_fail(e, TP_ERR_NOMEM, "ggml %s matmul: out of memory", name);
    const size_t rb = tp_ggml_row_bytes(type, cols);
    for (int64_t r = 0; r < rows; r++) {
        tp_ggml_dequant_ref(type, (const uint8_t *)W + (size_t)r * rb, cols, row, NULL);
        for (int64_t i = 0; i < n; i++) {
            double s = 0;
            for (int64_t c = 0; c < cols; c++) s += (double)row[c] * X[i * cols + c];
            Y[i * rows + r] = (float)s;
        }
    }
    free(row);
    return TP_OK;
}
