/* The INT4 codec family: int4 (asymmetric, FP16 scale + offset per group), int4r2 (int4 plus an
 * INT2 residual with its own FP16 scale per group) and nf4 (QLoRA's NormalFloat-4 with an FP16
 * absmax scale per group).
 *
 * Layout (all row-major, groups run along a row, i.e. along the input dimension):
 *   W is rows x cols fp32. Each row is split into ceil(cols/g) groups; the last group of a row is
 *   short when cols % g != 0 (it has cols % g elements and its own scale/offset).
 *
 *   codes   : 4-bit codes, two per byte, each row starting on a byte boundary
 *             (row stride = ceil(cols/2) bytes). Nibble order: element 2i of a row is the LOW
 *             nibble of byte i, element 2i+1 the HIGH nibble. An odd row ends with a zero high nibble.
 *   scale   : rows x ceil(cols/g) FP16 values (binary16 bits), row-major.
 *   offset  : same shape (int4, int4r2 only).
 *   rcodes  : int4r2 only: 2-bit residual codes, four per byte, each row on a byte boundary
 *             (row stride = ceil(cols/4)); element 4i+j sits in bits [2j, 2j+1] of byte i.
 *   rscale  : int4r2 only: rows x ceil(cols/g) FP16 residual scales.
 *
 * Dequantisation (the definition; every backend must produce these exact fp32 values):
 *   int4  : w = q*s + o                       (q in 0..15; q*s is exact in fp32, one rounding)
 *   int4r2: w = (q*s + o) + (r - 1.5f)*rs      (r in 0..3; left sum rounded to fp32 first)
 *   nf4   : w = NF4[q] * s                     (NF4: the 16 QLoRA levels in [-1, 1], as fp32)
 */
#ifndef TENPAK_QUANT_H
#define TENPAK_QUANT_H

#include "tenpak/tenpak.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tp_qkind { TP_Q_INT4 = 0, TP_Q_INT4R2 = 1, TP_Q_NF4 = 2 } tp_qkind;

typedef struct tp_qmat {
    tp_qkind kind;
    int64_t rows, cols;
    int g;                /* group size */
    int64_t ngroups;      /* groups per row = ceil(cols / g) */
    int64_t code_stride;  /* bytes per row of codes = ceil(cols / 2) */
    int64_t rcode_stride; /* bytes per row of residual codes = ceil(cols / 4) (int4r2) */
    uint8_t *codes;
    uint16_t *scale;
    uint16_t *offset;     /* NULL for nf4 */
    uint8_t *rcodes;      /* int4r2 only */
    uint16_t *rscale;     /* int4r2 only */
} tp_qmat;

/* ---- the format: levels, storage, packing (common/quant.c) ---- */
extern const float TP_NF4_LEVELS[16];

const char *tp_qkind_name(tp_qkind k);
/* Allocates the buffers of a quantised matrix (codes zeroed). */
tp_status tp_qmat_alloc(tp_qmat *q, tp_qkind kind, int64_t rows, int64_t cols, int g);
void tp_qmat_free(tp_qmat *q);
/* Packed size in bytes (codes + every scale/offset array), exactly what an artifact stores. */
size_t tp_qmat_bytes(const tp_qmat *q);
/* Bits per weight of a kind/group size from the packed size of a rows x cols matrix. */
double tp_qkind_bits_per_weight(tp_qkind kind, int g, int64_t rows, int64_t cols);

/* The packed arrays laid end to end (codes, scale, offset, rcodes, rscale; tp_qmat_bytes long),
 * little-endian: the byte image an artifact stores. unpack fills a tp_qmat allocated with the
 * same kind and shape. */
void tp_qmat_pack(const tp_qmat *q, void *dst);
void tp_qmat_unpack(tp_qmat *q, const void *src);
/* A tp_qmat whose arrays point into src, a pack image (no copy): returns 0 and leaves q zeroed
 * when src's FP16 arrays would not be 2-byte aligned (then allocate and unpack instead). Such a
 * view owns nothing: never tp_qmat_free it. src must outlive it. */
int tp_qmat_view(tp_qmat *q, tp_qkind kind, int64_t rows, int64_t cols, int g, const void *src);

static inline int tp_qmat_code(const tp_qmat *q, int64_t r, int64_t c) {
    uint8_t b = q->codes[r * q->code_stride + (c >> 1)];
    return (c & 1) ? (b >> 4) : (b & 15);
}
/* Rows [r0, r1) of q as a matrix of their own: the same arrays, offset (nothing is copied). */
static inline tp_qmat tp_qmat_rows(const tp_qmat *q, int64_t r0, int64_t r1) {
    tp_qmat v = *q;
    v.rows = r1 - r0;
    v.codes = q->codes + r0 * q->code_stride;
    v.scale = q->scale + r0 * q->ngroups;
    if (q->offset) v.offset = q->offset + r0 * q->ngroups;
    if (q->rcodes) v.rcodes = q->rcodes + r0 * q->rcode_stride;
    if (q->rscale) v.rscale = q->rscale + r0 * q->ngroups;
    return v;
}

static inline int tp_qmat_rcode(const tp_qmat *q, int64_t r, int64_t c) {
    uint8_t b = q->rcodes[r * q->rcode_stride + (c >> 2)];
    return (b >> (2 * (c & 3))) & 3;
}

/* ---- reference (reference/quant_ref.c): the definitions ---- */
/* Quantise W (rows x cols) into q (allocated by the caller with tp_qmat_alloc).
 * int4: min/max initialisation with directed FP16 rounding (offset rounded down, scale rounded up)
 *       so the grid covers the group: every element is within half a step of its code.
 * refine_iters > 0 (int4, int4r2 base): alternating least squares on (scale, offset) given the
 *       codes, re-quantising after each step, keeping the best squared error per group. */
void tp_quantize_ref(tp_qmat *q, const float *W, int refine_iters);
/* One int4 group's min/max (scale, offset) exactly as tp_quantize_ref chooses them (n >= 1), and
 * the nearest code of w on that grid (round half to even, clamped to 0..15): for quantisers that
 * produce the int4 format their own way (GPTQ, include/tenpak/gptq.h). */
void tp_int4_minmax_ref(const float *w, int n, uint16_t *s16, uint16_t *o16);
int tp_int4_code_ref(double w, float s, float o);
/* The clip search (GPTQ's clip=1): the (scale, offset) minimising the group's weighted squared
 * error sum_i wt_i (q_i s + o - w_i)^2 (wt_i >= 0: GPTQ passes the Hessian diagonal of the
 * group's columns) among min/max's pair (tp_int4_minmax_ref, tried first) and the clipped ranges
 * [mn + a R / DIV, mx - b R / DIV] for a, b in 0..STEPS (R = mx - mn; fp16 round-to-nearest of
 * the offset lo and of the scale (hi - offset) / 15). Ties keep the earlier candidate, so the
 * result's weighted error is never above min/max's. n >= 1. */
#define TP_INT4_CLIP_STEPS 12
#define TP_INT4_CLIP_DIV 60.0
void tp_int4_clip_ref(const float *w, const double *wt, int n, uint16_t *s16, uint16_t *o16);
void tp_dequantize_ref(const tp_qmat *q, float *W);
/* y[rows] = W x, accumulated in double */
void tp_qgemv_ref(const tp_qmat *q, const float *x, float *y);
/* X is batch x cols (one activation vector per row), Y is batch x rows: Y[b] = W X[b].
 * Functions of this header that return tp_status need scratch memory: TP_ERR_NOMEM when it cannot
 * be allocated (the output is then incomplete), TP_OK otherwise. */
tp_status tp_qgemm_ref(const tp_qmat *q, const float *X, int64_t batch, float *Y);

/* ---- W4A8 GEMV (int4 only, g a multiple of 64): activations quantised to int8 per group ----
 * The op (after llama.cpp's Q4 x Q8 dot products), defined by the reference:
 *   per group of g elements of x: xs = max|x_i| / 127 (fp32), xq_i = round(x_i / xs) in -127..127
 *   y_r = sum_groups [ s * xs * sum_i (q_i - 8) * xq_i  +  (o + 8 s) * sum_i x_i ]
 * (q s + o = (q - 8) s + (o + 8 s): the centred codes keep the part that sees activation rounding
 * as small as the weights themselves; the rest uses the exact fp32 sum of x.) Its cost against
 * tp_qgemv_ref is stated by the test a8_activation_error. */
void tp_quantize_x8_ref(const float *x, int64_t n, int g, int8_t *xq, float *xs);
tp_status tp_qgemv_a8_ref(const tp_qmat *q, const float *x, float *y);
tp_status tp_qgemv_a8_cpu(const tp_qmat *q, const float *x, float *y);
/* W4A8 GEMM: each activation row X[b] quantised as above (its own group scales); Y[b] as GEMV. */
tp_status tp_qgemm_a8_ref(const tp_qmat *q, const float *X, int64_t batch, float *Y);
tp_status tp_qgemm_a8_cpu(const tp_qmat *q, const float *X, int64_t batch, float *Y);

/* ---- optimised cpu backend (kernels/cpu): dispatches on tp_cpu_isa(), threaded ---- */
void tp_dequantize_cpu(const tp_qmat *q, float *W);
tp_status tp_qgemv_cpu(const tp_qmat *q, const float *x, float *y);
tp_status tp_qgemm_cpu(const tp_qmat *q, const float *X, int64_t batch, float *Y);
/* y_i = Q_i x for k <= TP_QGEMV_MULTI matrices of x's length (q, k and v of a layer; gate and up):
 * every row exactly as tp_qgemv_cpu computes it, in one run of the worker pool instead of k, and x
 * prepared once per group size. TP_ERR_NOMEM when scratch cannot be had (y_i then undefined). */
#define TP_QGEMV_MULTI 4
tp_status tp_qgemv_multi_cpu(const tp_qmat *const *q, int k, const float *x, float *const *y);
/* How the AVX-512 INT4 GEMV walks rows: 4 a pass (x's loads shared; the fastest from cache), 2 or
 * 1 (fewer memory streams a core). Which streams faster from memory is a property of the host
 * and its moment, not of the CPU model: on one 2-vCPU Intel Xeon guest, TinyLlama-shaped int4
 * decode ran +10-11% with 2 rows a pass one day and -6% another (alternating binaries).
 * mode 0: 4 rows; 1 (weights stream from memory, set by the model loader when its packed weights
 * exceed the last-level cache): measured: after a warm-up round, 9 rounds of 64 MiB of GEMV weights take
 * 4, 2 and 1 rows a pass in turn, then the walk with the fastest best round is kept; 2: 2 rows (tests).
 * Setting a mode restarts the measurement. Every row gets the same bits either way. */
void tp_qgemv_set_streaming(int mode);
/* the rows a pass the GEMV walks now: 4, 2 or 1; 0 while mode 1 is still measuring */
int tp_qgemv_streaming_rows(void);


#ifdef __cplusplus
}
#endif
#endif
