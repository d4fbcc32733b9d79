/* Baselines in the same bench run as the CUDA kernels: cuBLAS FP16 GEMV/GEMM on the dense
 * matrix (fp16 inputs, fp32 accumulation and output, through cublasGemmEx), and the
 * device-to-device copy that is the roofline of every memory-bound kernel. */
#include <cublas_v2.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/common.cuh"

/* ---- dense fp16 GEMV / GEMM through cuBLAS ---- */
struct dense_state {
    tp_cu_state base;
    cublasHandle_t h;
    int64_t rows, cols, batch;
    int ncopy, next;
    uint16_t *W[8]; /* rotated copies of the weights (fp16 bits) */
    uint16_t *X;    /* batch x cols fp16 */
    float *Y;       /* batch x rows */
};

extern "C" void *tp_cuda_dense_prepare(const uint16_t *W, const float *X, int64_t rows, int64_t cols,
                                       int64_t batch) {
    dense_state *s = (dense_state *)calloc(1, sizeof *s);
    if (!s) return NULL;
    s->rows = rows;
    s->cols = cols;
    s->batch = batch;
    size_t wbytes = (size_t)(rows * cols) * 2;
    s->ncopy = tp_cu_rotation(wbytes);
    for (int i = 0; i < s->ncopy; i++) {
        TP_CU(&s->base, cudaMalloc((void **)&s->W[i], wbytes));
        if (!s->base.failed) TP_CU(&s->base, cudaMemcpy(s->W[i], W, wbytes, cudaMemcpyHostToDevice));
    }
    uint16_t *xh = (uint16_t *)malloc((size_t)(batch * cols) * 2);
    if (!xh) s->base.failed = 1;
    else {
        for (int64_t i = 0; i < batch * cols; i++) xh[i] = tp_f32_to_f16(X[i]);
        TP_CU(&s->base, cudaMalloc((void **)&s->X, (size_t)(batch * cols) * 2));
        if (!s->base.failed)
            TP_CU(&s->base, cudaMemcpy(s->X, xh, (size_t)(batch * cols) * 2, cudaMemcpyHostToDevice));
        free(xh);
    }
    TP_CU(&s->base, cudaMalloc((void **)&s->Y, (size_t)(batch * rows) * 4));
    cublasStatus_t cs = cublasCreate(&s->h);
    if (cs == CUBLAS_STATUS_SUCCESS) cs = cublasSetStream(s->h, cudaStreamPerThread); /* graph capture */
    if (cs != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "cuda: cublasCreate failed (%d)\n", (int)cs);
        s->base.failed = 1;
        s->h = NULL;
    }
    return s;
}

extern "C" tp_status tp_cuda_dense_run(const tp_case *c, void *state, void *out) {
    (void)c;
    (void)out;
    dense_state *s = (dense_state *)state;
    if (!s || s->base.failed) return TP_OK;
    const float one = 1.0f, zero = 0.0f;
    const uint16_t *W = s->W[s->next];
    s->next = (s->next + 1) % s->ncopy;
    /* Row-major W (rows x cols) is column-major cols x rows: C (rows x batch, column-major,
     * i.e. batch x rows row-major) = W^T-as-stored * X. */
    cublasStatus_t cs = cublasGemmEx(s->h, CUBLAS_OP_T, CUBLAS_OP_N, (int)s->rows, (int)s->batch,
                                     (int)s->cols, &one, W, CUDA_R_16F, (int)s->cols, s->X, CUDA_R_16F,
                                     (int)s->cols, &zero, s->Y, CUDA_R_32F, (int)s->rows,
                                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (cs != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "cuda: cublasGemmEx failed (%d)\n", (int)cs);
        s->base.failed = 1;
    }
    return TP_OK;
}


extern "C" void tp_cuda_dense_fetch(const tp_case *c, void *state, void *out) {
    dense_state *s = (dense_state *)state;
    if (s && !s->base.failed)
        TP_CU(&s->base, cudaMemcpy(out, s->Y, (size_t)(s->batch * s->rows) * 4, cudaMemcpyDeviceToHost));
    if (!s || s->base.failed) tp_cu_nan_fill((float *)out, c->out_count);
}

extern "C" void tp_cuda_dense_release(void *state) {
    dense_state *s = (dense_state *)state;
    if (!s) return;
    for (int i = 0; i < s->ncopy; i++) cudaFree(s->W[i]);
    cudaFree(s->X);
    cudaFree(s->Y);
    if (s->h) cublasDestroy(s->h);
    free(s);
}

/* ---- device-to-device copy ---- */
struct copy_state {
    tp_cu_state base;
    int64_t n;
    float *a, *o;
};

extern "C" void *tp_cuda_copy_prepare(const float *a, int64_t n) {
    copy_state *s = (copy_state *)calloc(1, sizeof *s);
    if (!s) return NULL;
    s->n = n;
    TP_CU(&s->base, cudaMalloc((void **)&s->a, (size_t)n * 4));
    TP_CU(&s->base, cudaMalloc((void **)&s->o, (size_t)n * 4));
    if (!s->base.failed) TP_CU(&s->base, cudaMemcpy(s->a, a, (size_t)n * 4, cudaMemcpyHostToDevice));
    if (!s->base.failed) TP_CU(&s->base, cudaMemset(s->o, 0xff, (size_t)n * 4)); /* NaN poison */
    return s;
}

extern "C" tp_status tp_cuda_copy_run(const tp_case *c, void *state, void *out) {
    (void)c;
    (void)out;
    copy_state *s = (copy_state *)state;
    if (!s || s->base.failed) return TP_OK;
    TP_CU(&s->base, cudaMemcpyAsync(s->o, s->a, (size_t)s->n * 4, cudaMemcpyDeviceToDevice, 0));
    return TP_OK;
}

extern "C" void tp_cuda_copy_fetch(const tp_case *c, void *state, void *out) {
    copy_state *s = (copy_state *)state;
    if (s && !s->base.failed)
        TP_CU(&s->base, cudaMemcpy(out, s->o, (size_t)s->n * 4, cudaMemcpyDeviceToHost));
    if (!s || s->base.failed) tp_cu_nan_fill((float *)out, c->out_count);
}

extern "C" void tp_cuda_copy_release(void *state) {
    copy_state *s = (copy_state *)state;
    if (!s) return;
    cudaFree(s->a);
    cudaFree(s->o);
    free(s);
}

/* The device's copy roofline for whole-model figures (bench-model --device cuda): 256 MiB copied
 * device to device, 3 untimed then 10 timed with events; the fastest, as bytes read + written per
 * second (the convention of copy/d2d/cuda). 0 without a device or on an error. */
extern "C" double tp_cuda_copy_bandwidth(void) {
    char why[400];
    if (!tp_cuda_available(why, sizeof why)) return 0;
    const size_t bytes = (size_t)256 << 20;
    void *a = NULL, *o = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    double best = 0;
    if (cudaMalloc(&a, bytes) == cudaSuccess && cudaMalloc(&o, bytes) == cudaSuccess &&
        cudaMemset(a, 1, bytes) == cudaSuccess && cudaEventCreate(&e0) == cudaSuccess &&
        cudaEventCreate(&e1) == cudaSuccess) {
        for (int i = 0; i < 13; i++) {
            cudaEventRecord(e0, cudaStreamPerThread);
            cudaMemcpyAsync(o, a, bytes, cudaMemcpyDeviceToDevice, cudaStreamPerThread);
            cudaEventRecord(e1, cudaStreamPerThread);
            float ms = 0;
            if (cudaEventSynchronize(e1) != cudaSuccess || cudaEventElapsedTime(&ms, e0, e1) != cudaSuccess) break;
            double bw = 2.0 * (double)bytes / (ms * 1e-3);
            if (i >= 3 && bw > best) best = bw;
        }
    }
    (void)cudaGetLastError();
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    cudaFree(a);
    cudaFree(o);
    return best;
}
