/* The INT4 family's format (layout in include/tenpak/quant.h): the NF4 levels, tp_qmat storage
 * (alloc / free / byte count / pack / unpack / zero-copy view) and bits per weight. The
 * quantisers and products are in reference/quant_ref.c and kernels/cpu. */
#include <stdlib.h>
#include <string.h>

#include "tenpak/quant.h"

/* QLoRA's NormalFloat-4 levels (Dettmers et al. 2023, appendix), rounded to fp32. */
const float TP_NF4_LEVELS[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

const char *tp_qkind_name(tp_qkind k) {
    switch (k) {
    case TP_Q_INT4: return "int4";
    case TP_Q_INT4R2: return "int4r2";
    case TP_Q_NF4: return "nf4";
    }
    return "?";
}

/* the shape fields of a tp_qmat (everything but its arrays), zeroing the rest */
static void qmat_shape(tp_qmat *q, tp_qkind kind, int64_t rows, int64_t cols, int g) {
    memset(q, 0, sizeof *q);
    q->kind = kind;
    q->rows = rows;
    q->cols = cols;
    q->g = g;
    q->ngroups = (cols + g - 1) / g;
    q->code_stride = (cols + 1) / 2;
    q->rcode_stride = kind == TP_Q_INT4R2 ? (cols + 3) / 4 : 0;
}

tp_status tp_qmat_alloc(tp_qmat *q, tp_qkind kind, int64_t rows, int64_t cols, int g) {
    memset(q, 0, sizeof *q);
    if (rows <= 0 || cols <= 0 || g <= 0) return TP_ERR_ARG;
    qmat_shape(q, kind, rows, cols, g);
    size_t ns = (size_t)(rows * q->ngroups);
    q->codes = tp_alloc((size_t)(rows * q->code_stride));
    q->scale = tp_alloc(ns * 2);
    int ok = q->codes && q->scale;
    if (kind != TP_Q_NF4) {
        q->offset = tp_alloc(ns * 2);
        ok = ok && q->offset;
    }
    if (kind == TP_Q_INT4R2) {
        q->rcodes = tp_alloc((size_t)(rows * q->rcode_stride));
        q->rscale = tp_alloc(ns * 2);
        ok = ok && q->rcodes && q->rscale;
    }
    if (!ok) {
        tp_qmat_free(q);
        return TP_ERR_NOMEM;
    }
    memset(q->codes, 0, (size_t)(rows * q->code_stride));
    if (q->rcodes) memset(q->rcodes, 0, (size_t)(rows * q->rcode_stride));
    return TP_OK;
}

void tp_qmat_free(tp_qmat *q) {
    tp_free(q->codes);
    tp_free(q->scale);
    tp_free(q->offset);
    tp_free(q->rcodes);
    tp_free(q->rscale);
    memset(q, 0, sizeof *q);
}

size_t tp_qmat_bytes(const tp_qmat *q) {
    size_t ns = (size_t)(q->rows * q->ngroups);
    size_t b = (size_t)(q->rows * q->code_stride) + 2 * ns; /* codes + scale */
    if (q->kind != TP_Q_NF4) b += 2 * ns;                    /* offset */
    if (q->kind == TP_Q_INT4R2) b += (size_t)(q->rows * q->rcode_stride) + 2 * ns;
    return b;
}

/* (pointer, byte count) of each packed array in storage order */
static int qmat_parts(const tp_qmat *q, void *ptr[5], size_t len[5]) {
    size_t ns = (size_t)(q->rows * q->ngroups) * 2;
    int n = 0;
    ptr[n] = q->codes; len[n++] = (size_t)(q->rows * q->code_stride);
    ptr[n] = q->scale; len[n++] = ns;
    if (q->kind != TP_Q_NF4) { ptr[n] = q->offset; len[n++] = ns; }
    if (q->kind == TP_Q_INT4R2) {
        ptr[n] = q->rcodes; len[n++] = (size_t)(q->rows * q->rcode_stride);
        ptr[n] = q->rscale; len[n++] = ns;
    }
    return n;
}
void tp_qmat_pack(const tp_qmat *q, void *dst) {
    void *ptr[5];
    size_t len[5];
    int n = qmat_parts(q, ptr, len);
    unsigned char *d = dst;
    for (int i = 0; i < n; i++) { memcpy(d, ptr[i], len[i]); d += len[i]; }
}
void tp_qmat_unpack(tp_qmat *q, const void *src) {
    void *ptr[5];
    size_t len[5];
    int n = qmat_parts(q, ptr, len);
    const unsigned char *s = src;
    for (int i = 0; i < n; i++) { memcpy(ptr[i], s, len[i]); s += len[i]; }
}

int tp_qmat_view(tp_qmat *q, tp_qkind kind, int64_t rows, int64_t cols, int g, const void *src) {
    memset(q, 0, sizeof *q);
    if (rows <= 0 || cols <= 0 || g <= 0) return 0;
    qmat_shape(q, kind, rows, cols, g);
    /* the arrays in storage order (qmat_parts): codes, scale, offset, rcodes, rscale */
    unsigned char *p = (unsigned char *)(uintptr_t)src;
    size_t ns = (size_t)(rows * q->ngroups) * 2;
    q->codes = p;
    p += rows * q->code_stride;
    q->scale = (uint16_t *)(void *)p;
    p += ns;
    if (kind != TP_Q_NF4) { q->offset = (uint16_t *)(void *)p; p += ns; }
    if (kind == TP_Q_INT4R2) {
        q->rcodes = p;
        p += rows * q->rcode_stride;
        q->rscale = (uint16_t *)(void *)p;
    }
    if (((uintptr_t)q->scale | (uintptr_t)q->offset | (uintptr_t)q->rscale) & 1) {
        memset(q, 0, sizeof *q);
        return 0;
    }
    return 1;
}

double tp_qkind_bits_per_weight(tp_qkind kind, int g, int64_t rows, int64_t cols) {
    tp_qmat q;
    /* computed from the same size formula the allocator uses, without allocating */
    qmat_shape(&q, kind, rows, cols, g);
    return 8.0 * (double)tp_qmat_bytes(&q) / (double)(rows * cols);
}
