/* 2:4 semi-structured sparsity: pruning, the compressed format (values fp32 / fp16 / INT4 plus
 * 2-bit position metadata), compress / decompress, sparse GEMV and GEMM.
 *
 * Pruning: every row is cut into aligned groups of 4 columns (c = 4j .. 4j+3). In each group the
 * 2 entries of largest |w| (or |w| * importance[c] when a per-column importance is given) are
 * kept, the other 2 set to zero; ties go to the lower column. A short last group (cols % 4 != 0)
 * is padded with zeros that can never beat a real entry, so at most 2 real entries survive there
 * too. The pruned matrix therefore has at most 2 non-zeros in every aligned group of 4 of a row.
 *
 * Compressed layout (row-major W, rows x cols; G = ceil(cols/4) groups per row, N = 2G kept
 * values per row):
 *   values : rows x N, row-major. Kept entry 2j+t (t = 0, 1) of a row is the t-th kept entry of
 *            group j in ascending column order. This is the value section cuSPARSELt and
 *            CUTLASS use for a row-major sparse A operand (half the columns, same rows).
 *            Stored as fp32, fp16 (binary16 bits), or INT4: a tp_qmat of rows x N quantising the
 *            kept values only (groups of g kept values, g = 64 -> 128 dense columns).
 *   meta   : one 4-bit field per group: bits [1:0] = column of kept entry 0 within the group,
 *            bits [3:2] = column of kept entry 1, idx0 < idx1 (so a field is one of 0x4, 0x8,
 *            0xC, 0x9, 0xD, 0xE). Four groups per 16-bit little-endian word, group j of a row in
 *            bits [4(j%4)+3 : 4(j%4)] of word j/4; each row starts on a word boundary
 *            (meta_stride = ceil(G/4) words); unused fields of the last word are 0.
 *            This is the logical metadata of the sm_80+ mma.sp instructions for 16-bit operands
 *            (2 bits per kept element, non-decreasing within a group) before CUTLASS's
 *            interleaved reordering; the CUDA backend either applies that reordering
 *            (cutlass::reorder_meta) or decompresses and lets cusparseLtSpMMACompress pack it.
 *   padding positions (column >= cols) of a short last group hold the value 0.
 *
 * Decompression (the definition): W[r][4j + idx_t] = value(r, 2j+t), every other entry 0.
 * For INT4 values the value is the tp_qmat dequantisation (q*s + o, see quant.h).
 */
#ifndef TENPAK_SPARSE_H
#define TENPAK_SPARSE_H

#include "tenpak/quant.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tp_sp_vkind { TP_SP_F32 = 0, TP_SP_F16 = 1, TP_SP_INT4 = 2 } tp_sp_vkind;

typedef struct tp_sp24 {
    tp_sp_vkind vkind;
    int64_t rows, cols;
    int64_t ngroups;     /* G = ceil(cols/4) */
    int64_t nkept;       /* N = 2G values per row */
    int64_t meta_stride; /* uint16 words per row = ceil(G/4) */
    uint16_t *meta;      /* rows x meta_stride */
    float *vf32;         /* TP_SP_F32: rows x N */
    uint16_t *vf16;      /* TP_SP_F16: rows x N */
    tp_qmat q;           /* TP_SP_INT4: rows x N, group g (kept values) */
} tp_sp24;

/* The default INT4 group, in kept values (= 128 dense columns). */
#define TP_SP24_INT4_G 64

/* ---- storage and packing (common/sparse24.c) ---- */
const char *tp_sp_vkind_name(tp_sp_vkind k);
/* g is used for TP_SP_INT4 only. */
tp_status tp_sp24_alloc(tp_sp24 *s, tp_sp_vkind vk, int64_t rows, int64_t cols, int g);
void tp_sp24_free(tp_sp24 *s);
/* Packed bytes: meta + values (+ INT4 scales/offsets). */
size_t tp_sp24_bytes(const tp_sp24 *s);
size_t tp_sp24_bytes_for(tp_sp_vkind vk, int g, int64_t rows, int64_t cols);
/* The byte image: meta, then values (fp32 / fp16 little-endian, or tp_qmat_pack). */
void tp_sp24_pack(const tp_sp24 *s, void *dst);
void tp_sp24_unpack(tp_sp24 *s, const void *src);

static inline int tp_sp24_field(const tp_sp24 *s, int64_t r, int64_t j) {
    return (s->meta[r * s->meta_stride + (j >> 2)] >> (4 * (j & 3))) & 15;
}
/* fp32 value of kept entry k of row r (the definition, any value kind) */
float tp_sp24_value(const tp_sp24 *s, int64_t r, int64_t k);
/* Exact mask check: 1 if every aligned group of 4 of every row of P has <= 2 non-zeros. */
int tp_is_24_sparse(const float *P, int64_t rows, int64_t cols);

/* ---- reference (reference/sparse_ref.c) ---- */
/* P = W pruned to 2:4 (rows x cols, zeros where dropped); importance: cols floats or NULL. */
void tp_prune24_ref(const float *W, int64_t rows, int64_t cols, const float *importance, float *P);
/* Compress a matrix that is already 2:4 (e.g. the output of prune). Positions: the non-zeros of
 * each group, filled up with the lowest-index zero positions. Values: stored as vkind; INT4
 * quantises the kept values with tp_quantize_ref(refine_iters). Returns TP_ERR_ARG if some group
 * has more than 2 non-zeros. */
tp_status tp_sp24_compress_ref(tp_sp24 *s, const float *P, int refine_iters);
void tp_sp24_decompress_ref(const tp_sp24 *s, float *W);
/* Y (batch x rows) = X (batch x cols) W^T, double accumulation; batch 1 is the GEMV */
void tp_sp24_gemm_ref(const tp_sp24 *s, const float *X, int64_t batch, float *Y);

/* ---- cpu backend (kernels/cpu/sparse_cpu.c): threaded, dispatches on tp_cpu_isa() ---- */
void tp_prune24_cpu(const float *W, int64_t rows, int64_t cols, const float *importance, float *P);
/* Same output as the reference, bit for bit, for TP_SP_F32 / TP_SP_F16 (INT4: via the reference quantiser). */
tp_status tp_sp24_compress_cpu(tp_sp24 *s, const float *P, int refine_iters);
void tp_sp24_decompress_cpu(const tp_sp24 *s, float *W);
/* TP_ERR_NOMEM when their scratch (padded x, per-thread row buffers) cannot be allocated */
tp_status tp_sp24_gemv_cpu(const tp_sp24 *s, const float *x, float *y);
tp_status tp_sp24_gemm_cpu(const tp_sp24 *s, const float *X, int64_t batch, float *Y);


#ifdef __cplusplus
}
#endif
#endif
