/* ggml's block formats (the tensor types of GGUF files, llama.cpp's quantisations): sizes, a scalar
 * reference dequantiser written from the definitions below (reference/ggml_ref.c), and the cpu
 * backend's dequantisation and fused GEMV / GEMM (kernels/cpu/ggml_cpu.c, AVX2 and AVX-512 paths).
 *
 * ---------------------------------------------------------------------------------------------
 * Block formats (every multi-byte field little-endian; fp16 = IEEE binary16; a tensor row is its
 * blocks one after another, with no padding between blocks or rows; a block is not aligned)
 *
 * F32 (id 0), F16 (1), BF16 (30): one element per "block" (4, 2, 2 bytes). BF16 is the high 16
 *   bits of an fp32. Dequantisation is the exact widening.
 *
 * 32-element blocks. "nibble order": byte j of qs holds element j in its LOW nibble and element
 * j + 16 in its HIGH nibble (j = 0..15), i.e. the low nibbles are elements 0..15 of the block and
 * the high nibbles elements 16..31 (checked against the gguf package by verify/test_ggml_gguf.c).
 *
 *   Q4_0 (id 2), 18 bytes:  d fp16 | qs[16]
 *        w[j] = d * (q[j] - 8),  q[j] = 4-bit code (nibble order above)
 *   Q4_1 (id 3), 20 bytes:  d fp16 | m fp16 | qs[16]
 *        w[j] = d * q[j] + m   (tenpak's int4 g=32 arithmetic, q s + o; but int4 packs element 2i
 *        in the low nibble of byte i: codes must be re-packed, never re-quantised, to export it)
 *   Q5_0 (id 6), 22 bytes:  d fp16 | qh u32 | qs[16]
 *        q[j] = nibble | (bit j of qh) << 4;  w[j] = d * (q[j] - 16)
 *   Q5_1 (id 7), 24 bytes:  d fp16 | m fp16 | qh u32 | qs[16]
 *        w[j] = d * q[j] + m  (q as Q5_0's)
 *   Q8_0 (id 8), 34 bytes:  d fp16 | qs[32] int8
 *        w[j] = d * qs[j]
 *
 * K-quants: 256-element super-blocks of sub-blocks.
 *
 *   Q4_K (id 12), 144 bytes: d fp16 | dmin fp16 | scales[12] | qs[128]
 *        8 sub-blocks of 32. Sub-block s has a 6-bit scale sc[s] and a 6-bit min mn[s] packed in
 *        scales[12] (b = scales):
 *          s < 4: sc = b[s] & 63,                          mn = b[s + 4] & 63
 *          s >= 4: sc = (b[s + 4] & 15) | (b[s - 4] >> 6) << 4,
 *                  mn = (b[s + 4] >> 4) | (b[s] >> 6) << 4
 *        Codes: 4 chunks of 64 elements, chunk c uses qs[32c .. 32c + 31]: byte 32c + j holds
 *        element 64c + j in its LOW nibble (sub-block 2c) and 64c + 32 + j in its HIGH nibble
 *        (sub-block 2c + 1).
 *        w = (d * sc[s]) * q - (dmin * mn[s])
 *   Q5_K (id 13), 176 bytes: d fp16 | dmin fp16 | scales[12] | qh[32] | qs[128]
 *        as Q4_K, and the code's bit 4 for element 32s + j (sub-block s) is bit s of qh[j].
 *        w = (d * sc[s]) * q - (dmin * mn[s]),  q in 0..31
 *   Q6_K (id 14), 210 bytes: ql[128] | qh[64] | scales[16] int8 | d fp16
 *        Two halves of 128 elements; element 128h + k (k = 0..127) has
 *          low 4 bits: nibble (k >= 64 ? HIGH : LOW) of ql[64h + k % 64],
 *          high 2 bits: bits 2*(k / 32) .. 2*(k / 32) + 1 of qh[32h + k % 32];
 *        q = that 6-bit value - 32 (-32..31); sixteen sub-blocks of 16 elements, element i uses
 *        scales[i / 16].  w = (d * scales[i / 16]) * q
 *
 * Every product above is exact in fp32 (fp16 significand 11 bits x at most 12 more bits of
 * integers), so each format's value is ONE fp32 rounding of the exact d*q (+ m): computed with or
 * without FMA it is the same float. Every backend returns exactly these floats (to the bit).
 * NaN or infinite fp16 scales give NaN/inf outputs (payload unspecified); finite inputs are exact.
 * --------------------------------------------------------------------------------------------- */
#ifndef TENPAK_GGML_H
#define TENPAK_GGML_H

#include "tenpak/tenpak.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ggml block types, ids as in GGUF */
typedef enum tp_ggml_type {
    TP_GGML_F32 = 0,
    TP_GGML_F16 = 1,
    TP_GGML_Q4_0 = 2,
    TP_GGML_Q4_1 = 3,
    TP_GGML_Q5_0 = 6,
    TP_GGML_Q5_1 = 7,
    TP_GGML_Q8_0 = 8,
    TP_GGML_Q4_K = 12,
    TP_GGML_Q5_K = 13,
    TP_GGML_Q6_K = 14,
    TP_GGML_BF16 = 30
} tp_ggml_type;

#define TP_GGML_QK 32   /* elements of a Q4_0 .. Q8_0 block */
#define TP_GGML_QK_K 256 /* elements of a K-quant super-block */

/* ---- types and sizes (common/ggml.c) ---- */
int tp_ggml_type_known(int type);       /* 1 for the ids above, else 0 */
const char *tp_ggml_type_name(int type); /* "Q4_K", ... ; NULL if unknown */
int64_t tp_ggml_block_elems(int type);   /* 1 for F32/F16/BF16, 32, or 256 for K-quants; 0 unknown */
size_t tp_ggml_block_bytes(int type);    /* bytes per block; 0 unknown */
/* bytes of a row of `cols` elements (cols a positive multiple of the block elements, else 0) */
size_t tp_ggml_row_bytes(int type, int64_t cols);

/* Dequantise n elements (n a multiple of the block elements) of src into dst.
 * _ref: the reference (reference/ggml_ref.c), plain loops from the definitions above.
 * _cpu: the optimised cpu backend (threaded, AVX2 / AVX-512 by tp_cpu_isa()); the same floats.
 * Errors: unknown type (TP_ERR_UNSUPPORTED), NULL pointers, n < 0 or not a multiple (TP_ERR_ARG). */
tp_status tp_ggml_dequant_ref(int type, const void *src, int64_t n, float *dst, tp_err *e);
tp_status tp_ggml_dequant_cpu(int type, const void *src, int64_t n, float *dst, tp_err *e);

/* Fused GEMV / GEMM over a rows x cols matrix W stored row after row in `type` (each row
 * tp_ggml_row_bytes(type, cols) bytes; cols a multiple of the block elements):
 *   Y[i][r] = sum_c W[r][c] X[i][c],  X is n x cols, Y is n x rows  (n = 1: GEMV).
 * _ref: dequantise a row, then each dot product in double (rounded once to fp32).
 * _cpu: threaded over rows, fp32 accumulation; the tasks depend on the shape only, so the result
 *       is the same at any thread count. Within 1e-5 relative L2 of _ref (tenpak verify). */
tp_status tp_ggml_matmul_ref(int type, const void *W, int64_t rows, int64_t cols, const float *X,
                             int64_t n, float *Y, tp_err *e);
tp_status tp_ggml_matmul_cpu(int type, const void *W, int64_t rows, int64_t cols, const float *X,
                             int64_t n, float *Y, tp_err *e);

/* Test inputs (kernels/ops_ggml.c): nblocks random blocks of `type` (elements, for the float
 * types) into dst. Code bytes uniformly random; every fp16 / bf16 / fp32 field finite:
 * wild = 1: any finite value (negative, subnormal, zero, up to the largest), the exactness tests;
 * wild = 0: weight-like (scales about 1e-3, mins about -8 scales, values about 0.02), the GEMV
 *           tests and benchmarks. */
void tp_ggml_fill_random(int type, void *dst, int64_t nblocks, tp_rng *rng, int wild);

#ifdef __cplusplus
}
#endif
#endif
