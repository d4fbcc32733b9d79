/* Internal interface between the cpu dispatcher (kernels/cpu/quant_cpu.c) and its ISA-specific
 * row kernels. Each works on rows [r0, r1) so the dispatcher can thread over row blocks. */
#ifndef TENPAK_KERNELS_CPU_QUANT_CPU_H
#define TENPAK_KERNELS_CPU_QUANT_CPU_H

#include "kernels/cpu/cpu_common.h"
#include "tenpak/quant.h"

/* Per-group sums of x (ngroups entries; for a short last group, over its whole 8-chunks):
 * the offset term of the group identity used by the AVX2 GEMV. */
void tp_qgemv_xsum(const tp_qmat *q, const float *x, float *xsum);

/* The AMX INT4 GEMM (kernels/cpu/amx/quant_amx.c): kind int4, g a multiple of 32 dividing cols;
 * call only where tp_cpu_amx(). Y is batch x rows. */
int tp_qgemm_amx_shape_ok(const tp_qmat *q);
tp_status tp_qgemm_amx(const tp_qmat *q, const float *X, int64_t batch, float *Y);

/* The AVX-512 VNNI INT4 GEMM (kernels/cpu/avx512vbmi/qgemm_vnni.c): kind int4, g 32, 64 or a
 * multiple of 128, cols a multiple of 128; call only at the avx512vbmi level. Y is batch x rows. Returns 1
 * when done, 0 when X holds a NaN or an infinity (nothing written), -1 when out of memory. */
int tp_qgemm_vnni_shape_ok(const tp_qmat *q);
int tp_qgemm_vnni(const tp_qmat *q, const float *X, int64_t batch, float *Y);

void tp_dequant_rows_avx2(const tp_qmat *q, int64_t r0, int64_t r1, float *W);
void tp_qgemv_rows_avx2(const tp_qmat *q, const float *x, const float *xsum, int64_t r0,
                        int64_t r1, float *y);
/* Y[b][r] for r in [r0, r1): X is batch x cols, Y batch x rows. tile holds 4*cols floats. */
void tp_qgemm_rows_avx2(const tp_qmat *q, const float *X, int64_t batch, int64_t r0, int64_t r1,
                        float *Y, float *tile);

/* W4A8: xqp is the int8 activations permuted per 64-block (the 32 even elements, then the 32
 * odd ones: the order the nibble split produces); xs[gi] = the group's x scale; xsum as above;
 * xqsum[gi] = the group's sum of xq (for the centring by 8). */
void tp_qgemv_a8_rows_avx2(const tp_qmat *q, const int8_t *xqp, const int8_t *xq, const float *xs,
                           const float *xsum, const int32_t *xqsum, int64_t r0, int64_t r1, float *y);

/* W4A8 GEMM: the per-column arrays of the GEMV one after another (column b at b * cols for
 * xqp/xq, b * ngroups for xs/xsum/xqsum); Y is batch x rows. */
void tp_qgemm_a8_rows_avx2(const tp_qmat *q, const int8_t *xqp, const int8_t *xq, const float *xs,
                           const float *xsum, const int32_t *xqsum, int64_t batch, int64_t r0, int64_t r1,
                           float *Y);

/* The AVX-512 INT4 GEMV (kind int4, g a power of two >= 8; kernels/cpu/avx512/quant_avx512_body.h):
 * x prepared once per call as 3 signed bytes per element per 128-column chunk, then any rows. */
typedef struct tp_qx {
    int64_t nchunk; /* ceil(cols / 128) */
    int64_t pad;    /* floats of gsum / xsg and of a row's scale buffer: a multiple of 16 past
                       the groups and chunks, zero-filled */
    int8_t *limbs;  /* nchunk * 384: per chunk c2, c1, c0, each 64 even then 64 odd elements */
    float *xs;      /* nchunk: 2^-e of each chunk (0 for an all-zero chunk) */
    float *xsg;     /* pad: g <= 128: xs of each group's chunk */
    float *gsum;    /* pad: per group, the sum of the rounded x times its chunk's xs */
    int rpp;        /* rows a pass, 4, 2 or 1 (tp_qgemv_set_streaming) */
} tp_qx;
/* The arrays of a tp_qx for q in one 64-byte aligned block of tp_qx_data_bytes(q) bytes (a multiple
 * of 64): tp_qx_layout points p's arrays into mem and sets nchunk, pad and rpp = 4. */
size_t tp_qx_data_bytes(const tp_qmat *q);
void tp_qx_layout(const tp_qmat *q, uint8_t *mem, tp_qx *p);
/* Returns 0 (nothing usable) when x holds a NaN or an infinity. */
int tp_qx_prep_avx512(const tp_qmat *q, const float *x, tp_qx *p);
int tp_qx_prep_avx512vnni(const tp_qmat *q, const float *x, tp_qx *p);
/* TP_ERR_NOMEM when the scale buffers of more than 1024 groups a row cannot be allocated */
tp_status tp_qgemv_rows_avx512(const tp_qmat *q, const tp_qx *p, int64_t r0, int64_t r1, float *y);
tp_status tp_qgemv_rows_avx512vnni(const tp_qmat *q, const tp_qx *p, int64_t r0, int64_t r1, float *y);

/* The AVX-512 NF4 GEMV (kind nf4, g a power of two >= 32; kernels/cpu/avx512/nf4_avx512.c): x
 * prepared once per call (tp_nf4x_floats(q) floats: per 32 columns the even ones, then the odd). */
int tp_nf4x_ok(const tp_qmat *q);
size_t tp_nf4x_floats(const tp_qmat *q);
void tp_nf4x_prep_avx512(const tp_qmat *q, const float *x, float *xp);
void tp_nf4x_gemv_rows_avx512(const tp_qmat *q, const float *xp, int64_t r0, int64_t r1, float *y);


#endif
