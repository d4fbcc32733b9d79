/* cuBLAS, loaded when first used.
 *
 * Linking libcublas (and through it libcublasLt) costs every tenpak process about 210 MB of
 * resident memory before main() runs: the dynamic loader relocates their data, which then counts in
 * the peak RSS that `tenpak generate` / `bench-model` report for a CPU model. So the CUDA build does
 * not link cuBLAS; this file defines the few cuBLAS entry points the backend calls (the symbols
 * cublas_v2.h maps its names to) and forwards each to the library, opened with dlopen on the first
 * call: $TENPAK_CUBLAS_LIB (a file) if set, else libcublas.so.<CUDA major> through the usual search
 * (LD_LIBRARY_PATH, the executable's run path), else the toolkit's library folder seen at configure
 * time (TENPAK_CUBLAS_DIR). When it cannot be opened every entry point returns
 * CUBLAS_STATUS_NOT_INITIALIZED and cublasGetStatusString says why. */
#include <cublas_v2.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef TENPAK_CUBLAS_SONAME
#define TENPAK_CUBLAS_SONAME "libcublas.so"
#endif
#ifndef TENPAK_CUBLAS_DIR
#define TENPAK_CUBLAS_DIR ""
#endif

#define CUBLAS_FUNCS(X)                                                                                         \
    X(cublasCreate_v2, cublasStatus_t, (cublasHandle_t *))                                                      \
    X(cublasDestroy_v2, cublasStatus_t, (cublasHandle_t))                                                       \
    X(cublasSetStream_v2, cublasStatus_t, (cublasHandle_t, cudaStream_t))                                       \
    X(cublasSetWorkspace_v2, cublasStatus_t, (cublasHandle_t, void *, size_t))                                  \
    X(cublasSetMathMode, cublasStatus_t, (cublasHandle_t, cublasMath_t))                                        \
    X(cublasGetStatusString, const char *, (cublasStatus_t))                                                    \
    X(cublasSgemm_v2, cublasStatus_t,                                                                           \
      (cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const float *, const float *, int, \
       const float *, int, const float *, float *, int))                                                       \
    X(cublasGemmEx, cublasStatus_t,                                                                             \
      (cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void *, const void *,        \
       cudaDataType, int, const void *, cudaDataType, int, const void *, void *, cudaDataType, int,            \
       cublasComputeType_t, cublasGemmAlgo_t))

static struct {
#define X(name, ret, args) ret(*name) args;
    CUBLAS_FUNCS(X)
#undef X
} L;
static int lib_ok;
static char lib_why[600];
static pthread_once_t lib_once = PTHREAD_ONCE_INIT;

static void lib_load(void) {
    const char *env = getenv("TENPAK_CUBLAS_LIB");
    void *h = NULL;
    if (env && *env) {
        h = dlopen(env, RTLD_NOW | RTLD_LOCAL);
    } else {
        h = dlopen(TENPAK_CUBLAS_SONAME, RTLD_NOW | RTLD_LOCAL);
        if (!h && TENPAK_CUBLAS_DIR[0]) {
            char path[1024];
            snprintf(path, sizeof path, "%s/%s", TENPAK_CUBLAS_DIR, TENPAK_CUBLAS_SONAME);
            h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        }
    }
    if (!h) {
        const char *why = dlerror();
        snprintf(lib_why, sizeof lib_why, "cuBLAS could not be loaded (%s; set TENPAK_CUBLAS_LIB to the file)",
                 why ? why : TENPAK_CUBLAS_SONAME);
        return;
    }
#define X(name, ret, args)                                                                          \
    if (!(*(void **)&L.name = dlsym(h, #name))) {                                                   \
        snprintf(lib_why, sizeof lib_why, "cuBLAS could not be loaded: the library lacks " #name); \
        return;                                                                                     \
    }
    CUBLAS_FUNCS(X)
#undef X
    lib_ok = 1;
}

static int have(void) {
    pthread_once(&lib_once, lib_load);
    return lib_ok;
}

cublasStatus_t CUBLASWINAPI cublasCreate_v2(cublasHandle_t *handle) {
    return have() ? L.cublasCreate_v2(handle) : CUBLAS_STATUS_NOT_INITIALIZED;
}
cublasStatus_t CUBLASWINAPI cublasDestroy_v2(cublasHandle_t handle) {
    return have() ? L.cublasDestroy_v2(handle) : CUBLAS_STATUS_NOT_INITIALIZED;
}
cublasStatus_t CUBLASWINAPI cublasSetStream_v2(cublasHandle_t handle, cudaStream_t s) {
    return have() ? L.cublasSetStream_v2(handle, s) : CUBLAS_STATUS_NOT_INITIALIZED;
}
cublasStatus_t CUBLASWINAPI cublasSetWorkspace_v2(cublasHandle_t handle, void *ws, size_t bytes) {
    return have() ? L.cublasSetWorkspace_v2(handle, ws, bytes) : CUBLAS_STATUS_NOT_INITIALIZED;
}
cublasStatus_t CUBLASWINAPI cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
    return have() ? L.cublasSetMathMode(handle, mode) : CUBLAS_STATUS_NOT_INITIALIZED;
}
const char *CUBLASWINAPI cublasGetStatusString(cublasStatus_t status) {
    return have() ? L.cublasGetStatusString(status) : lib_why;
}
cublasStatus_t CUBLASWINAPI cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t ta, cublasOperation_t tb, int m,
                                           int n, int k, const float *alpha, const float *A, int lda, const float *B,
                                           int ldb, const float *beta, float *C, int ldc) {
    return have() ? L.cublasSgemm_v2(handle, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)
                  : CUBLAS_STATUS_NOT_INITIALIZED;
}
cublasStatus_t CUBLASWINAPI cublasGemmEx(cublasHandle_t handle, cublasOperation_t ta, cublasOperation_t tb, int m,
                                         int n, int k, const void *alpha, const void *A, cudaDataType At, int lda,
                                         const void *B, cudaDataType Bt, int ldb, const void *beta, void *C,
                                         cudaDataType Ct, int ldc, cublasComputeType_t ct, cublasGemmAlgo_t algo) {
    return have() ? L.cublasGemmEx(handle, ta, tb, m, n, k, alpha, A, At, lda, B, Bt, ldb, beta, C, Ct, ldc, ct, algo)
                  : CUBLAS_STATUS_NOT_INITIALIZED;
}
