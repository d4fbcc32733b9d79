/* cuSPARSELt baseline of the 2:4 fp16 GEMM (gemm/sparse24_f16_f16a/cusparselt).
 *
 * Built when the cuSPARSELt header was found at configure time (TENPAK_CUSPARSELT_INCLUDE,
 * default .gpu/cusparselt/include, from the nvidia-cusparselt-cu13 wheel); the library is loaded
 * at run time with dlopen: $TENPAK_CUSPARSELT_LIB (a file or a folder), then the usual
 * site-packages folders of a PyTorch install (nvidia/cusparselt/lib, nvidia/cu13/lib, torch/lib).
 *
 * The same op: D (rows x batch, column-major = Y batch x rows) = A (rows x cols, row-major, the
 * dense pruned fp16 matrix decompressed from the tp_sp24) * B (cols x batch, column-major = X
 * row-major), fp32 compute. prepare pads every dimension to a multiple of 64 (zeros), compresses
 * A with cusparseLtSpMMACompress, and picks the kernel with cusparseLtMatmulSearch (not timed).
 * D is fp32 when the library accepts it, else fp16 (then the 1e-5 bound will fail, and says so).
 */
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/tp_cuda_sparse.h"

#ifndef TENPAK_HAVE_CUSPARSELT

extern "C" int tp_cusparselt_available(char *why, size_t n) {
    if (why && n) snprintf(why, n, "cuSPARSELt not found: built without its header (TENPAK_CUSPARSELT_INCLUDE)");
    return 0;
}
extern "C" void *tp_cusparselt_prepare(const tp_sp24 *s, const float *X, int64_t batch) {
    (void)s;
    (void)X;
    (void)batch;
    return NULL;
}
extern "C" tp_status tp_cusparselt_run(const tp_case *c, void *state, void *out) {
    (void)c;
    (void)state;
    (void)out;
    return TP_OK;
}
extern "C" void tp_cusparselt_fetch(const tp_case *c, void *state, void *out) {
    (void)state;
    tp_cu_nan_fill((float *)out, c->out_count);
}
extern "C" void tp_cusparselt_release(void *state) { (void)state; }

#else

#include <cusparseLt.h>
#include <dlfcn.h>
#include <glob.h>

#define CSL_FUNCS(X)                                                                               \
    X(cusparseLtInit) X(cusparseLtDestroy) X(cusparseLtGetErrorString) X(cusparseLtDenseDescriptorInit) \
    X(cusparseLtStructuredDescriptorInit) X(cusparseLtMatDescriptorDestroy)                          \
    X(cusparseLtMatmulDescriptorInit) X(cusparseLtMatmulAlgSelectionInit)                            \
    X(cusparseLtMatmulAlgSelectionDestroy) X(cusparseLtMatmulPlanInit) X(cusparseLtMatmulPlanDestroy) \
    X(cusparseLtMatmulGetWorkspace) X(cusparseLtMatmul) X(cusparseLtMatmulSearch)                    \
    X(cusparseLtSpMMACompressedSize) X(cusparseLtSpMMACompress)

#define X(f) typedef decltype(&f) f##_fn;
CSL_FUNCS(X)
#undef X
static struct {
#define X(f) f##_fn f;
    CSL_FUNCS(X)
#undef X
} L;
static int lib_state = -1;
static char lib_why[600];

static void *try_open(const char *path) {
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    return h;
}

static void *open_lib(void) {
    const char *env = getenv("TENPAK_CUSPARSELT_LIB");
    char buf[1200];
    if (env && *env) {
        void *h = try_open(env);
        if (h) return h;
        snprintf(buf, sizeof buf, "%s/libcusparseLt.so.0", env);
        if ((h = try_open(buf))) return h;
    }
    static const char *pats[] = {
        "/opt/torch/.venv/lib/python3*/site-packages/nvidia/cusparselt/lib/libcusparseLt.so.0",
        "/opt/torch/.venv/lib/python3*/site-packages/nvidia/cu13/lib/libcusparseLt.so.0",
        "/opt/torch/.venv/lib/python3*/site-packages/torch/lib/libcusparseLt.so.0",
        "/usr/local/lib/python3*/*-packages/nvidia/cusparselt/lib/libcusparseLt.so.0",
        "/usr/local/lib/python3*/*-packages/nvidia/cu13/lib/libcusparseLt.so.0",
        "/usr/local/lib/python3*/*-packages/torch/lib/libcusparseLt.so.0",
        "/usr/lib/python3*/*-packages/nvidia/cusparselt/lib/libcusparseLt.so.0",
        "/usr/lib/python3*/*-packages/nvidia/cu13/lib/libcusparseLt.so.0",
        "/usr/lib/python3*/*-packages/torch/lib/libcusparseLt.so.0",
    };
    for (size_t i = 0; i < sizeof pats / sizeof pats[0]; i++) {
        glob_t g;
        if (glob(pats[i], 0, NULL, &g) == 0) {
            for (size_t k = 0; k < g.gl_pathc; k++) {
                void *h = try_open(g.gl_pathv[k]);
                if (h) {
                    globfree(&g);
                    return h;
                }
            }
        }
        globfree(&g);
    }
    return try_open("libcusparseLt.so.0"); /* LD_LIBRARY_PATH */
}

static int load_lib(void) {
    if (lib_state >= 0) return lib_state;
    char why[400];
    if (!tp_cuda_available(why, sizeof why)) {
        snprintf(lib_why, sizeof lib_why, "%s", why);
        return lib_state = 0;
    }
    void *h = open_lib();
    if (!h) {
        snprintf(lib_why, sizeof lib_why,
                 "cuSPARSELt not found: libcusparseLt.so.0 not in $TENPAK_CUSPARSELT_LIB, PyTorch's site-packages "
                 "or the loader path");
        return lib_state = 0;
    }
#define X(f)                                                                                      \
    if (!(L.f = (f##_fn)dlsym(h, #f))) {                                                    \
        snprintf(lib_why, sizeof lib_why, "cuSPARSELt not found: libcusparseLt.so.0 lacks " #f);  \
        return lib_state = 0;                                                                     \
    }
    CSL_FUNCS(X)
#undef X
    return lib_state = 1;
}

extern "C" int tp_cusparselt_available(char *why, size_t n) {
    int ok = load_lib();
    if (!ok && why && n) snprintf(why, n, "%s", lib_why);
    return ok;
}

struct csl_state {
    tp_cu_state base;
    int have_handle, have_plan, nA, next, d16;
    /* the opaque structs are 512 bytes in this header, 1024 in some older releases: each is
     * followed by slack so a library built with larger ones cannot write past them */
    cusparseLtHandle_t h;
    unsigned char pad_h[4096];
    cusparseLtMatDescriptor_t mA;
    unsigned char pad_a[4096];
    cusparseLtMatDescriptor_t mB;
    unsigned char pad_b[4096];
    cusparseLtMatDescriptor_t mC;
    unsigned char pad_c[4096];
    cusparseLtMatmulDescriptor_t mm;
    unsigned char pad_mm[4096];
    cusparseLtMatmulAlgSelection_t alg;
    unsigned char pad_alg[4096];
    cusparseLtMatmulPlan_t plan;
    unsigned char pad_plan[4096];
    int64_t rows, batch, Mp, Np, Kp;
    void *Ac[8]; /* compressed copies */
    void *B, *D, *ws;
};

static int csl_ok(csl_state *s, cusparseStatus_t e, const char *what) {
    if (e == CUSPARSE_STATUS_SUCCESS) return 1;
    fprintf(stderr, "cusparselt: %s failed: %s (%d)\n", what, L.cusparseLtGetErrorString(e), (int)e);
    s->base.failed = 1;
    return 0;
}
#define CSL(s, call) csl_ok((s), (call), #call)

/* descriptors + plan for an output type; 1 on success (no message: the caller may retry) */
static int csl_plan(csl_state *s, cudaDataType dt, int a_trans) {
    const int64_t M = s->Mp, N = s->Np, K = s->Kp;
    /* A is row-major M x K in memory: either that (op N) or column-major K x M (op T) */
    if ((a_trans ? L.cusparseLtStructuredDescriptorInit(&s->h, &s->mA, K, M, K, 16, CUDA_R_16F, CUSPARSE_ORDER_COL,
                                                        CUSPARSELT_SPARSITY_50_PERCENT)
                 : L.cusparseLtStructuredDescriptorInit(&s->h, &s->mA, M, K, K, 16, CUDA_R_16F, CUSPARSE_ORDER_ROW,
                                                        CUSPARSELT_SPARSITY_50_PERCENT)) != CUSPARSE_STATUS_SUCCESS)
        return 0;
    if (L.cusparseLtDenseDescriptorInit(&s->h, &s->mB, K, N, K, 16, CUDA_R_16F, CUSPARSE_ORDER_COL) !=
        CUSPARSE_STATUS_SUCCESS) {
        L.cusparseLtMatDescriptorDestroy(&s->mA);
        return 0;
    }
    if (L.cusparseLtDenseDescriptorInit(&s->h, &s->mC, M, N, M, 16, dt, CUSPARSE_ORDER_COL) !=
        CUSPARSE_STATUS_SUCCESS) {
        L.cusparseLtMatDescriptorDestroy(&s->mA);
        L.cusparseLtMatDescriptorDestroy(&s->mB);
        return 0;
    }
    if (L.cusparseLtMatmulDescriptorInit(&s->h, &s->mm, a_trans ? CUSPARSE_OPERATION_TRANSPOSE : CUSPARSE_OPERATION_NON_TRANSPOSE,
                                         CUSPARSE_OPERATION_NON_TRANSPOSE, &s->mA, &s->mB, &s->mC, &s->mC,
                                         CUSPARSE_COMPUTE_32F) == CUSPARSE_STATUS_SUCCESS &&
        L.cusparseLtMatmulAlgSelectionInit(&s->h, &s->alg, &s->mm, CUSPARSELT_MATMUL_ALG_DEFAULT) ==
            CUSPARSE_STATUS_SUCCESS) {
        if (L.cusparseLtMatmulPlanInit(&s->h, &s->plan, &s->mm, &s->alg) == CUSPARSE_STATUS_SUCCESS) return 1;
        L.cusparseLtMatmulAlgSelectionDestroy(&s->alg);
    }
    L.cusparseLtMatDescriptorDestroy(&s->mA);
    L.cusparseLtMatDescriptorDestroy(&s->mB);
    L.cusparseLtMatDescriptorDestroy(&s->mC);
    return 0;
}

static int64_t up64(int64_t a) { return (a + 63) / 64 * 64; }

extern "C" void *tp_cusparselt_prepare(const tp_sp24 *sp, const float *X, int64_t batch) {
    csl_state *s = (csl_state *)calloc(1, sizeof *s);
    if (!s) return NULL;
    if (!load_lib()) {
        s->base.failed = 1;
        return s;
    }
    s->rows = sp->rows;
    s->batch = batch;
    s->Mp = up64(sp->rows);
    s->Np = up64(batch);
    s->Kp = up64(sp->cols);
    if (!CSL(s, L.cusparseLtInit(&s->h))) return s;
    s->have_handle = 1;
    {
        /* fp32 D first (the op's output), A row-major then transposed; fp16 D as a last resort */
        static const struct { cudaDataType dt; int at; } tries[] = {
            {CUDA_R_32F, 0}, {CUDA_R_32F, 1}, {CUDA_R_16F, 0}, {CUDA_R_16F, 1}};
        int k = 0;
        while (k < 4 && !csl_plan(s, tries[k].dt, tries[k].at)) k++;
        if (k == 4) {
            fprintf(stderr, "cusparselt: no plan for fp16 x fp16 (fp32 or fp16 output, A row- or column-major)\n");
            s->base.failed = 1;
            return s;
        }
        s->d16 = tries[k].dt == CUDA_R_16F;
        if (s->d16) fprintf(stderr, "cusparselt: fp32 output not supported: fp16 output (rounded) used\n");
    }
    s->have_plan = 1;
    /* dense pruned fp16 A, padded, row-major Mp x Kp */
    const size_t abytes = (size_t)(s->Mp * s->Kp) * 2;
    uint16_t *ha = (uint16_t *)calloc(abytes, 1);
    uint16_t *hb = (uint16_t *)calloc((size_t)(s->Np * s->Kp), 2);
    if (!ha || !hb) {
        free(ha);
        free(hb);
        s->base.failed = 1;
        return s;
    }
    for (int64_t r = 0; r < sp->rows; r++)
        for (int64_t j = 0; j < sp->ngroups; j++) {
            const int f = tp_sp24_field(sp, r, j);
            for (int t = 0; t < 2; t++) {
                const int64_t c = 4 * j + ((f >> (2 * t)) & 3);
                if (c < sp->cols) ha[r * s->Kp + c] = sp->vf16[r * sp->nkept + 2 * j + t];
            }
        }
    for (int64_t b = 0; b < batch; b++)
        for (int64_t i = 0; i < sp->cols; i++) hb[b * s->Kp + i] = tp_f32_to_f16(X[b * sp->cols + i]);
    void *dA = NULL, *cbuf = NULL;
    size_t csize = 0, cbsize = 0, wsize = 0;
    TP_CU(&s->base, cudaMalloc(&dA, abytes));
    TP_CU(&s->base, cudaMalloc(&s->B, (size_t)(s->Np * s->Kp) * 2));
    TP_CU(&s->base, cudaMalloc(&s->D, (size_t)(s->Mp * s->Np) * 4));
    if (!s->base.failed) TP_CU(&s->base, cudaMemcpy(dA, ha, abytes, cudaMemcpyHostToDevice));
    if (!s->base.failed) TP_CU(&s->base, cudaMemcpy(s->B, hb, (size_t)(s->Np * s->Kp) * 2, cudaMemcpyHostToDevice));
    if (!s->base.failed) TP_CU(&s->base, cudaMemset(s->D, 0xff, (size_t)(s->Mp * s->Np) * 4));
    free(ha);
    free(hb);
    if (!s->base.failed && CSL(s, L.cusparseLtSpMMACompressedSize(&s->h, &s->plan, &csize, &cbsize)) &&
        CSL(s, L.cusparseLtMatmulGetWorkspace(&s->h, &s->plan, &wsize))) {
        if (cbsize) TP_CU(&s->base, cudaMalloc(&cbuf, cbsize));
        if (wsize) TP_CU(&s->base, cudaMalloc(&s->ws, wsize));
        s->nA = tp_cu_rotation(csize);
        for (int i = 0; i < s->nA && !s->base.failed; i++) {
            TP_CU(&s->base, cudaMalloc(&s->Ac[i], csize));
            if (!s->base.failed) CSL(s, L.cusparseLtSpMMACompress(&s->h, &s->plan, dA, s->Ac[i], cbuf, 0));
        }
    }
    if (!s->base.failed) {
        const float one = 1.0f, zero = 0.0f;
        cudaStream_t st0 = 0;
        CSL(s, L.cusparseLtMatmulSearch(&s->h, &s->plan, &one, s->Ac[0], s->B, &zero, s->D, s->D, s->ws, &st0, 1));
        /* the search may want a larger workspace for the chosen kernel */
        size_t w2 = 0;
        if (!s->base.failed && CSL(s, L.cusparseLtMatmulGetWorkspace(&s->h, &s->plan, &w2)) && w2 > wsize) {
            cudaFree(s->ws);
            s->ws = NULL;
            TP_CU(&s->base, cudaMalloc(&s->ws, w2));
        }
        if (!s->base.failed) TP_CU(&s->base, cudaDeviceSynchronize());
        if (!s->base.failed) TP_CU(&s->base, cudaMemset(s->D, 0xff, (size_t)(s->Mp * s->Np) * 4)); /* poison again */
    }
    cudaFree(dA);
    cudaFree(cbuf);
    return s;
}

extern "C" tp_status tp_cusparselt_run(const tp_case *c, void *state, void *out) {
    (void)c;
    (void)out;
    csl_state *s = (csl_state *)state;
    if (!s || s->base.failed) return TP_OK;
    const float one = 1.0f, zero = 0.0f;
    cudaStream_t st0 = 0;
    void *A = s->Ac[s->next];
    s->next = (s->next + 1) % s->nA;
    CSL(s, L.cusparseLtMatmul(&s->h, &s->plan, &one, A, s->B, &zero, s->D, s->D, s->ws, &st0, 1));
    return TP_OK;
}

extern "C" void tp_cusparselt_fetch(const tp_case *c, void *state, void *out) {
    csl_state *s = (csl_state *)state;
    float *o = (float *)out;
    if (s && !s->base.failed) {
        const size_t esz = s->d16 ? 2 : 4;
        void *tmp = malloc((size_t)(s->rows * s->batch) * esz);
        if (!tmp) s->base.failed = 1;
        else {
            /* D is column-major Mp x Np: column b holds Y[b][0..rows) */
            TP_CU(&s->base, cudaMemcpy2D(tmp, (size_t)s->rows * esz, s->D, (size_t)s->Mp * esz, (size_t)s->rows * esz,
                                         (size_t)s->batch, cudaMemcpyDeviceToHost));
            if (!s->base.failed) {
                if (s->d16)
                    for (int64_t i = 0; i < s->rows * s->batch; i++) o[i] = tp_f16_to_f32(((uint16_t *)tmp)[i]);
                else memcpy(o, tmp, (size_t)(s->rows * s->batch) * 4);
            }
            free(tmp);
        }
    }
    if (!s || s->base.failed) tp_cu_nan_fill(o, c->out_count);
}

extern "C" void tp_cusparselt_release(void *state) {
    csl_state *s = (csl_state *)state;
    if (!s) return;
    for (int i = 0; i < s->nA; i++) cudaFree(s->Ac[i]);
    cudaFree(s->B);
    cudaFree(s->D);
    cudaFree(s->ws);
    if (s->have_plan) {
        L.cusparseLtMatmulPlanDestroy(&s->plan);
        L.cusparseLtMatmulAlgSelectionDestroy(&s->alg);
        L.cusparseLtMatDescriptorDestroy(&s->mA);
        L.cusparseLtMatDescriptorDestroy(&s->mB);
        L.cusparseLtMatDescriptorDestroy(&s->mC);
    }
    if (s->have_handle) L.cusparseLtDestroy(&s->h);
    free(s);
}

#endif
