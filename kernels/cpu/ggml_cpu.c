/* cpu backend of the ggml block formats: validation, threading on the worker pool, and dispatch
 * by tp_cpu_isa() to the AVX-512, AVX2 or portable instance of kernels/cpu/ggml_body.h (this file
 * holds the portable one). Tasks are cut by the problem's size alone (DQ_TASK elements, ROW_TASK
 * rows), so every result is the same at any thread count. */
#include <stdlib.h>

#include "kernels/cpu/ggml_cpu.h"
#include "kernels/cpu/cpu_common.h"

/* ---- the portable instance: one lane ---- */
#define GG_SUFFIX portable
#define VF float
#define VLEN 1
#define VZERO() 0.0f
#define VSET1(f) (f)
#define VLOAD(p) (*(p))
#define VSTORE(p, v) (*(p) = (v))
#define VFMA(a, b, c) ((a) * (b) + (c))
#define VMUL(a, b) ((a) * (b))
#define VADD(a, b) ((a) + (b))
#define VHSUM(v) (v)
#define VCVT8(p) ((float)*(p))
#define VF16(p) gg_h(p)
#define VBF16(p) tp_bf16_to_f32((uint16_t)((p)[0] | (p)[1] << 8))
#define F16S(h) tp_f16_to_f32(h)
#include "kernels/cpu/ggml_body.h"

#define DQ_TASK (1 << 16) /* elements per dequant task (a multiple of 256) */
#define ROW_TASK 64       /* rows per matmul task (a multiple of the 4-row pass) */

static int is_float_type(int t) { return t == TP_GGML_F32 || t == TP_GGML_F16 || t == TP_GGML_BF16; }

typedef struct gjob {
    int type;
    tp_isa isa;
    const uint8_t *src;
    int64_t nb, per_task; /* dequant: blocks, blocks per task */
    float *dst;
    size_t rb;
    int64_t rows, cols, n;
    const float *X, *xsum;
    float *Y;
} gjob;

static void dequant_task(void *vj, int task, int ntasks) {
    const gjob *j = vj;
    (void)ntasks;
    const int64_t b0 = (int64_t)task * j->per_task, nb = j->nb - b0 < j->per_task ? j->nb - b0 : j->per_task;
    const int64_t E = tp_ggml_block_elems(j->type);
    const uint8_t *s = j->src + (size_t)b0 * tp_ggml_block_bytes(j->type);
    float *d = j->dst + b0 * E;
    if (j->isa >= TP_ISA_AVX512) tp_ggml_dequant_blocks_avx512(j->type, s, nb, d);
    else if (j->isa >= TP_ISA_AVX2) tp_ggml_dequant_blocks_avx2(j->type, s, nb, d);
    else tp_ggml_dequant_blocks_portable(j->type, s, nb, d);
}

static void run_tasks(int ntasks, double work, void (*fn)(void *, int, int), gjob *j) {
    if (work >= TP_CPU_PAR_MIN && ntasks > 1) tp_pool_run(ntasks, fn, j);
    else
        for (int t = 0; t < ntasks; t++) fn(j, t, ntasks);
}

static tp_status check(int type, tp_err *e) {
    if (!tp_ggml_type_known(type)) return tp_fail(e, TP_ERR_UNSUPPORTED, "ggml type %d is not supported", type);
    return TP_OK;
}

tp_status tp_ggml_dequant_cpu(int type, const void *src, int64_t n, float *dst, tp_err *e) {
    tp_status st = check(type, e);
    if (st != TP_OK) return st;
    const int64_t E = tp_ggml_block_elems(type);
    if (n < 0 || n % E)
        return tp_fail(e, TP_ERR_ARG, "ggml %s: %lld elements is not a multiple of %lld", tp_ggml_type_name(type),
                       (long long)n, (long long)E);
    if (!n) return TP_OK;
    if (!src || !dst) return tp_fail(e, TP_ERR_ARG, "ggml %s dequant: NULL buffer", tp_ggml_type_name(type));
    gjob j = {.type = type, .isa = tp_cpu_isa(), .src = src, .nb = n / E, .per_task = DQ_TASK / E, .dst = dst};
    run_tasks((int)((j.nb + j.per_task - 1) / j.per_task), (double)n, dequant_task, &j);
    return TP_OK;
}

static void gemv_task(void *vj, int task, int ntasks) {
    const gjob *j = vj;
    (void)ntasks;
    const int64_t r0 = (int64_t)task * ROW_TASK, r1 = r0 + ROW_TASK < j->rows ? r0 + ROW_TASK : j->rows;
    if (j->isa >= TP_ISA_AVX512) tp_ggml_gemv_rows_avx512(j->type, j->src, j->rb, j->cols, j->X, j->xsum, r0, r1, j->Y);
    else if (j->isa >= TP_ISA_AVX2) tp_ggml_gemv_rows_avx2(j->type, j->src, j->rb, j->cols, j->X, j->xsum, r0, r1, j->Y);
    else tp_ggml_gemv_rows_portable(j->type, j->src, j->rb, j->cols, j->X, j->xsum, r0, r1, j->Y);
}

static void gemm_task(void *vj, int task, int ntasks) {
    const gjob *j = vj;
    (void)ntasks;
    const int64_t r0 = (int64_t)task * ROW_TASK, r1 = r0 + ROW_TASK < j->rows ? r0 + ROW_TASK : j->rows;
    if (j->isa >= TP_ISA_AVX512)
        tp_ggml_gemm_rows_avx512(j->type, j->src, j->rb, j->rows, j->cols, j->X, j->n, r0, r1, j->Y);
    else if (j->isa >= TP_ISA_AVX2)
        tp_ggml_gemm_rows_avx2(j->type, j->src, j->rb, j->rows, j->cols, j->X, j->n, r0, r1, j->Y);
    else tp_ggml_gemm_rows_portable(j->type, j->src, j->rb, j->rows, j->cols, j->X, j->n, r0, r1, j->Y);
}

tp_status tp_ggml_matmul_cpu(int type, const void *W, int64_t rows, int64_t cols, const float *X, int64_t n,
                             float *Y, tp_err *e) {
    tp_status st = check(type, e);
    if (st != TP_OK) return st;
    const char *name = tp_ggml_type_name(type);
    const int64_t E = tp_ggml_block_elems(type);
    if (rows < 0 || cols <= 0 || n < 0 || cols % E)
        return tp_fail(e, TP_ERR_ARG, "ggml %s matmul: bad shape %lld x %lld (n %lld; cols a multiple of %lld)", name,
                       (long long)rows, (long long)cols, (long long)n, (long long)E);
    if (!rows || !n) return TP_OK;
    if (!W || !X || !Y) return tp_fail(e, TP_ERR_ARG, "ggml %s matmul: NULL buffer", name);
    gjob j = {.type = type, .isa = tp_cpu_isa(), .src = W, .rb = tp_ggml_row_bytes(type, cols), .rows = rows,
              .cols = cols, .n = n, .X = X, .Y = Y};
    const int ntasks = (int)((rows + ROW_TASK - 1) / ROW_TASK);
    const double work = (double)rows * (double)cols * (double)n;
    if (n > 1 || is_float_type(type)) {
        run_tasks(ntasks, work, gemm_task, &j);
        return TP_OK;
    }
    float *xsum = NULL;
    if (type == TP_GGML_Q4_1 || type == TP_GGML_Q5_1 || type == TP_GGML_Q4_K || type == TP_GGML_Q5_K) {
        xsum = tp_alloc((size_t)(cols / 32) * sizeof(float));
        if (!xsum) return tp_fail(e, TP_ERR_NOMEM, "ggml %s matmul: out of memory", name);
        for (int64_t g = 0; g < cols / 32; g++) {
            float s = 0;
            for (int i = 0; i < 32; i++) s += X[32 * g + i];
            xsum[g] = s;
        }
    }
    j.xsum = xsum;
    run_tasks(ntasks, work, gemv_task, &j);
    tp_free(xsum);
    return TP_OK;
}
