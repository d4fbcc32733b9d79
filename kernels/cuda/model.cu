/* The fp32 forward pass of pipeline/model_forward.c on a CUDA device (contract: tp_cuda_model.h).
 *
 * Each kernel below is a transcription of the CPU function of the same name in pipeline/model_forward.c
 * (layernorm, rmsnorm, act, rope, the masked softmax of attention, nll), one block per row where
 * a row needs a reduction, so it can be read side by side with the CPU code. Reductions that the
 * CPU does in double (norm statistics, the NLL's sum of exponentials) are done in double here.
 * Matmuls, including attention's Q K^T and P V per head and block of query rows (as the CPU does
 * them), are cublasSgemm calls in PEDANTIC math mode: fp32 products and sums, no TF32.
 *
 * Napkin math, llama-mini window of 1024 tokens: ~2 x 21.7 M params x 1024 = 44 GFLOP of linear
 * layers and lm_head plus ~2 x 6 x 6 x 1024^2 x 64 = 3 GFLOP of attention; fp32 CUDA-core
 * sgemm on an H200 runs at tens of TFLOP/s, so a window should take a few milliseconds and the
 * elementwise kernels (memory-bound, a few MB each) are not expected to matter. */
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/tp_cuda.h"
#include "kernels/cuda/tp_cuda_model.h"

#define TPB 256                       /* threads per block of the row kernels (a power of two) */
#define S_FLOATS ((size_t)32 << 20)   /* attention score block: at most this many floats */
#define LOGIT_FLOATS ((size_t)32 << 20) /* logits block of the NLL: at most this many floats */
#define QMUL_MAX 16                   /* packed products of up to this many rows run the packed kernels */

/* A weight matrix in one of three formats: fp32 (w) or fp16 (w16) in file layout, or a packed
 * INT4-family matrix (q, always [out, in]). */
struct dmat {
    float *w;         /* file layout rows x cols */
    uint16_t *w16;    /* the same, binary16 */
    tp_cuda_qdev *q;  /* packed: rows = out, cols = in, linear = 1 */
    int64_t rows, cols;
    int linear;       /* 1: [out, in]; 0: [in, out] */
    float *bias;      /* [out] or NULL */
};

struct dlayer {
    float *n1w, *n1b, *n2w, *n2b;
    dmat qkv, q, k, v, o, fc, proj, gate, up, down;
};

struct tp_cuda_model {
    tp_cuda_model_shape s;
    int failed;
    char name[256];
    cudaStream_t st;   /* the calling thread's default stream, where tp_cuda_qdev_* launch too */
    cublasHandle_t h;  /* fp32 products: PEDANTIC (no TF32) */
    cublasHandle_t h16; /* fp16 x fp16 -> fp32 products: default math (tensor cores) */
    int kvd, qd, qw;   /* kv width, query width, width of the q buffer (GPT-2: fused 3d) */
    dmat emb, pos, head;
    float *nfw, *nfb;
    dlayer *L;
    float *rope_cos, *rope_sin;
    float *kc, *vc;    /* [n_layer][cap][kvd] */
    int cached;
    int att_rows;      /* query rows per attention block: att_rows x cap floats of scores */
    float *S;
    int logit_rows;
    float *logits;     /* logit_rows x vocab */
    int rows;          /* activations allocated for this many rows */
    float *x, *hb, *q, *att, *ff1, *ff2;
    uint16_t *x16;     /* rows x max(d, F, qd) binary16 activations of fp16 / packed products */
    const float *x16_of; /* x16 holds this input (x16_rows x x16_cols) until a kernel writes to it: */
    int x16_rows, x16_cols; /* products sharing an input (q, k, v; gate, up) convert it once */
    float *ytmp;       /* rows x max(out) products of packed matrices before bias / accumulate */
    size_t ytmp_n;
    float *wtmp;       /* one packed matrix dequantised (products of more than QMUL_MAX rows) */
    size_t wtmp_n;
    int32_t *ids, *tg;
    /* decode steps as one CUDA graph (TENPAK_CUDA_GRAPH=0 turns it off): the step's position in
     * device memory (dpos), its key/value rows staged in kt / vt, the graph captured after the first
     * eager step and replayed until a buffer or weight it uses moves */
    int graphs;        /* 1: capture and replay decode steps */
    int step;          /* 1 while a step's launches are issued with device positions */
    int *dpos;
    float *kt, *vt;
    void *ws;          /* cuBLAS workspace (a captured cuBLAS call may not allocate) */
    cudaGraphExec_t gexec;
    double *nll;
};

/* ---- errors: every CUDA / cuBLAS call checked; the first failure marks the model failed ---- */

static tp_status cu_err(tp_cuda_model *cm, tp_err *e, const char *what, const char *why, int line) {
    if (cm) cm->failed = 1;
    return tp_fail(e, TP_ERR_INTERNAL, "cuda: %s failed: %s (kernels/cuda/model.cu:%d)", what, why, line);
}
#define CK(call)                                                                                  \
    do {                                                                                          \
        cudaError_t r_ = (call);                                                                  \
        if (r_ != cudaSuccess) return cu_err(cm, e, #call, cudaGetErrorString(r_), __LINE__);     \
    } while (0)
#define CB(call)                                                                                  \
    do {                                                                                          \
        cublasStatus_t r_ = (call);                                                               \
        if (r_ != CUBLAS_STATUS_SUCCESS) return cu_err(cm, e, #call, cublasGetStatusString(r_), __LINE__); \
    } while (0)
#define LAUNCHED(name) CK(cudaGetLastError()) /* launch configuration / missing kernel image */
#define TRY(x)                                                                                    \
    do {                                                                                          \
        tp_status s_ = (x);                                                                       \
        if (s_ != TP_OK) return s_;                                                               \
    } while (0)

/* ---- kernels ---- */

__device__ double block_sum(double v, double *sh) {
    int t = threadIdx.x;
    sh[t] = v;
    __syncthreads();
    for (int k = TPB / 2; k > 0; k >>= 1) {
        if (t < k) sh[t] += sh[t + k];
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads(); /* everyone has read sh[0] before sh is reused */
    return r;
}

__device__ float block_max(float v, float *sh) {
    int t = threadIdx.x;
    sh[t] = v;
    __syncthreads();
    for (int k = TPB / 2; k > 0; k >>= 1) {
        if (t < k) sh[t] = fmaxf(sh[t], sh[t + k]);
        __syncthreads();
    }
    float r = sh[0];
    __syncthreads();
    return r;
}

/* x[i] = emb[ids[i]] (+ pos[pos0 + i] for GPT-2) */
/* Position arguments: kernels that depend on the position take pos0 and dpos; with dpos (a device
 * int, the decode step's position) *dpos replaces pos0, so one captured graph serves every step. */
static __device__ __forceinline__ int posof(int pos0, const int *dpos) { return dpos ? *dpos : pos0; }

__global__ void embed_kernel(float *x, const float *emb, const float *pos, const int32_t *ids, int d, int pos0,
                             const int *dpos) {
    pos0 = posof(pos0, dpos);
    int i = blockIdx.x;
    const float *er = emb + (size_t)ids[i] * d;
    const float *pr = pos ? pos + (size_t)(pos0 + i) * d : NULL;
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
        float v = er[j];
        if (pr) v += pr[j];
        x[(size_t)i * d + j] = v;
    }
}

/* x[i] = emb16[ids[i]] (+ pos[pos0 + i]): the fp16 embedding */
__global__ void embed16_kernel(float *x, const uint16_t *emb, const float *pos, const int32_t *ids, int d, int pos0,
                               const int *dpos) {
    pos0 = posof(pos0, dpos);
    int i = blockIdx.x;
    const uint16_t *er = emb + (size_t)ids[i] * d;
    const float *pr = pos ? pos + (size_t)(pos0 + i) * d : NULL;
    for (int j = threadIdx.x; j < d; j += blockDim.x) {
        float v = __half2float(__ushort_as_half(er[j]));
        if (pr) v += pr[j];
        x[(size_t)i * d + j] = v;
    }
}

/* x[i] += pos[pos0 + i] (after a packed embedding's rows) */
__global__ void addpos_kernel(float *x, const float *pos, int d, int pos0, const int *dpos) {
    pos0 = posof(pos0, dpos);
    int i = blockIdx.x;
    for (int j = threadIdx.x; j < d; j += blockDim.x) x[(size_t)i * d + j] += pos[(size_t)(pos0 + i) * d + j];
}

/* H[i * cols + j] = binary16(X[i * ldx + j]), round to nearest even */
__global__ void to_f16_kernel(uint16_t *H, const float *X, int n, int cols, int ldx) {
    size_t total = (size_t)n * cols;
    for (size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x; k < total; k += (size_t)gridDim.x * blockDim.x) {
        size_t i = k / cols, j = k % cols;
        H[k] = __half_as_ushort(__float2half_rn(X[i * ldx + j]));
    }
}

/* Y[i * ldy + r] = (accumulate ? Y : 0) + T[i * out + r] (+ bias[r]) */
__global__ void combine_kernel(float *Y, int ldy, const float *T, int out, const float *bias, int accumulate) {
    const float *t = T + (size_t)blockIdx.x * out;
    float *y = Y + (size_t)blockIdx.x * ldy;
    for (int r = threadIdx.x; r < out; r += blockDim.x) {
        float v = t[r];
        if (bias) v += bias[r];
        y[r] = accumulate ? y[r] + v : v;
    }
}

/* one block per row; statistics in double as pipeline/model_forward.c's layernorm */
__global__ void layernorm_kernel(const float *x, float *y, int d, const float *w, const float *b, double eps) {
    __shared__ double sh[TPB];
    const float *xi = x + (size_t)blockIdx.x * d;
    float *yi = y + (size_t)blockIdx.x * d;
    double s = 0;
    for (int j = threadIdx.x; j < d; j += TPB) s += xi[j];
    double mean = block_sum(s, sh) / d;
    double v = 0;
    for (int j = threadIdx.x; j < d; j += TPB) v += (xi[j] - mean) * (xi[j] - mean);
    double var = block_sum(v, sh) / d;
    float r = (float)(1.0 / sqrt(var + eps));
    for (int j = threadIdx.x; j < d; j += TPB) yi[j] = (float)(xi[j] - mean) * r * w[j] + b[j];
}

__global__ void rmsnorm_kernel(const float *x, float *y, int d, const float *w, double eps) {
    __shared__ double sh[TPB];
    const float *xi = x + (size_t)blockIdx.x * d;
    float *yi = y + (size_t)blockIdx.x * d;
    double ss = 0;
    for (int j = threadIdx.x; j < d; j += TPB) ss += (double)xi[j] * xi[j];
    ss = block_sum(ss, sh);
    float r = (float)(1.0 / sqrt(ss / d + eps));
    for (int j = threadIdx.x; j < d; j += TPB) yi[j] = w[j] * (xi[j] * r);
}

/* Y[i, 0..out) = bias (or += bias when accumulate), row stride ldy */
__global__ void bias_kernel(float *Y, int ldy, const float *bias, int out, int accumulate) {
    float *y = Y + (size_t)blockIdx.x * ldy;
    for (int j = threadIdx.x; j < out; j += blockDim.x) y[j] = accumulate ? y[j] + bias[j] : bias[j];
}

__device__ float act_f(int a, float x) {
    switch (a) {
    case 0: return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x))); /* gelu_new */
    case 1: return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f));                          /* gelu */
    case 2: return x / (1.0f + expf(-x));                                                       /* silu */
    case 3: return x > 0 ? x : 0;                                                               /* relu */
    }
    return x;
}

/* g = act(g) (* u when u: SwiGLU), n floats */
__global__ void act_kernel(float *g, const float *u, size_t n, int a) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        g[i] = act_f(a, g[i]) * (u ? u[i] : 1.0f);
}

/* rotate_half RoPE on row blockIdx.x (position pos0 + row) of a [n, heads*hd] matrix, stride ld */
__global__ void rope_kernel(float *X, int ld, int heads, int hd, const float *cos_t, const float *sin_t, int pos0,
                            const int *dpos) {
    pos0 = posof(pos0, dpos);
    int r = blockIdx.x, half = hd / 2;
    const float *cs = cos_t + (size_t)(pos0 + r) * half, *sn = sin_t + (size_t)(pos0 + r) * half;
    for (int k = threadIdx.x; k < heads * half; k += blockDim.x) {
        int h = k / half, i = k % half;
        float *v = X + (size_t)r * ld + (size_t)h * hd;
        float a = v[i], b = v[i + half];
        v[i] = a * cs[i] - b * sn[i];
        v[i + half] = b * cs[i] + a * sn[i];
    }
}

/* Masked softmax of score row blockIdx.x (position p0 + row; row length nk, keys from kstart):
 * keys [lo, p] where lo is kstart or the sliding-window start; every other key gets 0. The
 * reductions' barriers separate the passes (the last pass reads entries other threads wrote). */
__global__ void softmax_kernel(float *S, int nk, int p0, int kstart, int win) {
    __shared__ double shd[TPB];
    __shared__ float shf[TPB];
    float *s = S + (size_t)blockIdx.x * nk;
    int p = p0 + blockIdx.x, lo = (win > 0 && p - win + 1 > kstart) ? p - win + 1 : kstart;
    int a = lo - kstart, b = p - kstart; /* inclusive */
    float mx = -INFINITY;
    for (int j = a + threadIdx.x; j <= b; j += TPB) mx = fmaxf(mx, s[j]);
    mx = block_max(mx, shf);
    double sum = 0;
    for (int j = a + threadIdx.x; j <= b; j += TPB) {
        float v = expf(s[j] - mx);
        s[j] = v;
        sum += v;
    }
    float inv = 1.0f / (float)block_sum(sum, shd);
    for (int j = threadIdx.x; j < nk; j += TPB) s[j] = (j >= a && j <= b) ? s[j] * inv : 0.0f;
}

/* Attention of one query row (decoding) for head blockIdx.x, all in one block: the scores of keys
 * [kstart, kend) in shared memory, the masked softmax of softmax_kernel (max, exponentials summed
 * in double), then out = P V with each warp summing a stride of the keys and the warps' partial
 * rows added in shared memory. Replaces per-head sgemm / softmax / sgemm launches (3 per head and
 * layer) when one row is decoded: the same arithmetic, another summation order. */
__global__ void attend1_kernel(const float *Q, const float *K, const float *V, float *out, int kvd, int hd, int grp,
                               int kstart, int kend, float scale, const int *dpos, int win) {
    if (dpos) { /* the graph's step: keys [lo, p] of position p = *dpos */
        kend = *dpos + 1;
        kstart = (win > 0 && *dpos - win + 1 > 0) ? *dpos - win + 1 : 0;
    }
    extern __shared__ float sm[]; /* q[hd], p[kend - kstart], part[warps][hd] */
    __shared__ double shd[TPB];
    __shared__ float shf[TPB];
    const int h = blockIdx.x, kh = h / grp, nk = kend - kstart, t = threadIdx.x;
    const int warps = TPB / 32, w = t >> 5, lane = t & 31;
    float *q = sm, *p = sm + hd, *part = p + nk;
    for (int i = t; i < hd; i += TPB) q[i] = Q[(size_t)h * hd + i];
    __syncthreads();
    float mx = -INFINITY;
    for (int j = t; j < nk; j += TPB) {
        const float *k = K + (size_t)(kstart + j) * kvd + (size_t)kh * hd;
        float a = 0.f;
        for (int i = 0; i < hd; i++) a = fmaf(q[i], k[i], a);
        a *= scale;
        p[j] = a;
        mx = fmaxf(mx, a);
    }
    mx = block_max(mx, shf);
    double sum = 0;
    for (int j = t; j < nk; j += TPB) {
        float v = expf(p[j] - mx);
        p[j] = v;
        sum += v;
    }
    float inv = 1.0f / (float)block_sum(sum, shd); /* its barriers also publish p[] */
    for (int i = lane; i < hd; i += 32) {
        float a = 0.f;
        for (int j = w; j < nk; j += warps) a = fmaf(p[j], V[(size_t)(kstart + j) * kvd + (size_t)kh * hd + i], a);
        part[w * hd + i] = a;
    }
    __syncthreads();
    for (int i = t; i < hd; i += TPB) {
        float a = 0.f;
        for (int k = 0; k < warps; k++) a += part[k * hd + i];
        out[(size_t)h * hd + i] = a * inv;
    }
}

/* The decode step's key and value rows into the layer's cache at position *dpos */
__global__ void kv_store_kernel(float *Kc, float *Vc, const float *k, const float *v, int kvd, const int *dpos) {
    size_t at = (size_t)*dpos * kvd;
    for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < kvd; j += gridDim.x * blockDim.x) {
        Kc[at + j] = k[j];
        Vc[at + j] = v[j];
    }
}

/* nll[i] = logsumexp(row i) - row_i[tg[i]], the sum of exponentials in double */
__global__ void nll_kernel(const float *L, int V, const int32_t *tg, double *nll) {
    __shared__ double shd[TPB];
    __shared__ float shf[TPB];
    const float *l = L + (size_t)blockIdx.x * V;
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < V; j += TPB) mx = fmaxf(mx, l[j]);
    mx = block_max(mx, shf);
    double sum = 0;
    for (int j = threadIdx.x; j < V; j += TPB) sum += exp((double)(l[j] - mx));
    sum = block_sum(sum, shd);
    if (threadIdx.x == 0) nll[blockIdx.x] = log(sum) + (double)mx - (double)l[tg[blockIdx.x]];
}

/* ---- host side ---- */

static void dfree(void *p) {
    if (p) (void)cudaFree(p);
}

static void free_mat(dmat *m) {
    dfree(m->w);
    dfree(m->w16);
    tp_cuda_qdev_free(m->q);
    dfree(m->bias);
    m->w = NULL;
    m->w16 = NULL;
    m->q = NULL;
    m->bias = NULL;
}

extern "C" void tp_cuda_model_free(tp_cuda_model *cm) {
    if (!cm) return;
    dmat *ms[] = {&cm->emb, &cm->pos, &cm->head};
    for (size_t i = 0; i < 3; i++) free_mat(ms[i]);
    if (cm->L)
        for (int l = 0; l < cm->s.n_layer; l++) {
            dlayer *L = &cm->L[l];
            dfree(L->n1w); dfree(L->n1b); dfree(L->n2w); dfree(L->n2b);
            dmat *ws[] = {&L->qkv, &L->q, &L->k, &L->v, &L->o, &L->fc, &L->proj, &L->gate, &L->up, &L->down};
            for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) free_mat(ws[i]);
        }
    free(cm->L);
    dfree(cm->nfw); dfree(cm->nfb); dfree(cm->rope_cos); dfree(cm->rope_sin);
    dfree(cm->kc); dfree(cm->vc); dfree(cm->S); dfree(cm->logits);
    dfree(cm->x); dfree(cm->hb); dfree(cm->q); dfree(cm->att); dfree(cm->ff1); dfree(cm->ff2);
    dfree(cm->x16); dfree(cm->ytmp); dfree(cm->wtmp);
    if (cm->gexec) (void)cudaGraphExecDestroy(cm->gexec);
    dfree(cm->dpos); dfree(cm->kt); dfree(cm->vt); dfree(cm->ws);
    dfree(cm->ids); dfree(cm->tg); dfree(cm->nll);
    if (cm->h) (void)cublasDestroy(cm->h);
    if (cm->h16) (void)cublasDestroy(cm->h16);
    free(cm);
}

extern "C" const char *tp_cuda_model_device_name(const tp_cuda_model *cm) { return cm->name; }

static tp_status dalloc(tp_cuda_model *cm, void **p, size_t bytes, tp_err *e) {
    CK(cudaMalloc(p, bytes ? bytes : 4));
    return TP_OK;
}

static tp_status create_inner(tp_cuda_model *cm, tp_err *e) {
    const tp_cuda_model_shape *s = &cm->s;
    cudaDeviceProp pr;
    CK(cudaSetDevice(0));
    CK(cudaGetDeviceProperties(&pr, 0));
    snprintf(cm->name, sizeof cm->name, "%s", pr.name);
    cm->st = cudaStreamPerThread;
    CB(cublasCreate(&cm->h));
    CB(cublasSetStream(cm->h, cm->st));
    CB(cublasSetMathMode(cm->h, CUBLAS_PEDANTIC_MATH)); /* fp32 as on the CPU: no TF32 */
    CB(cublasCreate(&cm->h16));
    CB(cublasSetStream(cm->h16, cm->st));
    const size_t wsb = (size_t)32 << 20;
    TRY(dalloc(cm, &cm->ws, wsb, e));
    CB(cublasSetWorkspace(cm->h, cm->ws, wsb / 2));
    CB(cublasSetWorkspace(cm->h16, (char *)cm->ws + wsb / 2, wsb / 2));
    cm->kvd = s->n_kv_head * s->head_dim;
    {
        const char *g = getenv("TENPAK_CUDA_GRAPH");
        size_t smem = (size_t)(s->head_dim + s->cap + (TPB / 32) * s->head_dim) * sizeof(float);
        cm->graphs = !(g && g[0] == '0') && smem <= 48 * 1024;
    }
    cm->qd = s->n_head * s->head_dim;
    cm->qw = s->gpt2 ? 3 * s->d_model : cm->qd;
    if (!(cm->L = (dlayer *)calloc((size_t)s->n_layer, sizeof *cm->L)))
        return tp_fail(e, TP_ERR_NOMEM, "cuda: out of memory");
    size_t kvn = (size_t)s->n_layer * (size_t)s->cap * (size_t)cm->kvd;
    TRY(dalloc(cm, (void **)&cm->kc, kvn * 4, e));
    TRY(dalloc(cm, (void **)&cm->dpos, 4, e));
    TRY(dalloc(cm, (void **)&cm->kt, (size_t)cm->kvd * 4, e));
    TRY(dalloc(cm, (void **)&cm->vt, (size_t)cm->kvd * 4, e));
    TRY(dalloc(cm, (void **)&cm->vc, kvn * 4, e));
    size_t ar = S_FLOATS / (size_t)s->cap;
    cm->att_rows = ar < 1 ? 1 : ar > 1024 ? 1024 : (int)ar;
    TRY(dalloc(cm, (void **)&cm->S, (size_t)cm->att_rows * (size_t)s->cap * 4, e));
    size_t lr = LOGIT_FLOATS / (size_t)s->vocab;
    cm->logit_rows = lr < 1 ? 1 : lr > (size_t)s->cap ? s->cap : (int)lr;
    TRY(dalloc(cm, (void **)&cm->logits, (size_t)cm->logit_rows * (size_t)s->vocab * 4, e));
    return TP_OK;
}

extern "C" tp_status tp_cuda_model_create(const tp_cuda_model_shape *s, tp_cuda_model **out, tp_err *e) {
    *out = NULL;
    char why[400];
    if (!tp_cuda_available(why, sizeof why)) return tp_fail(e, TP_ERR_UNSUPPORTED, "%s", why);
    if (s->n_layer <= 0 || s->d_model <= 0 || s->n_head <= 0 || s->n_kv_head <= 0 || s->n_head % s->n_kv_head ||
        s->head_dim <= 0 || s->head_dim % 2 || s->d_ff <= 0 || s->vocab <= 0 || s->cap <= 0)
        return tp_fail(e, TP_ERR_ARG, "cuda: unsupported model shape");
    tp_cuda_model *cm = (tp_cuda_model *)calloc(1, sizeof *cm);
    if (!cm) return tp_fail(e, TP_ERR_NOMEM, "cuda: out of memory");
    cm->s = *s;
    tp_status rc = create_inner(cm, e);
    if (rc != TP_OK) { tp_cuda_model_free(cm); return rc; }
    *out = cm;
    return TP_OK;
}

/* (Re)uploads n floats into *dst, allocating when absent. Sizes never change for a slot. */
/* The captured decode step names buffers and weights by address: any upload or reallocation drops it
 * (the next step runs eagerly and captures it again). */
static void drop_graph(tp_cuda_model *cm) {
    if (cm->gexec) (void)cudaGraphExecDestroy(cm->gexec);
    cm->gexec = NULL;
}

static tp_status put(tp_cuda_model *cm, float **dst, const float *src, size_t n, tp_err *e) {
    drop_graph(cm);
    if (!*dst) TRY(dalloc(cm, (void **)dst, n * 4, e));
    CK(cudaMemcpy(*dst, src, n * 4, cudaMemcpyHostToDevice));
    return TP_OK;
}

static float **vec_slot(tp_cuda_model *cm, tp_cuda_slot slot, int layer) {
    if (slot == TP_CU_NORM_F_W) return &cm->nfw;
    if (slot == TP_CU_NORM_F_B) return &cm->nfb;
    if (layer < 0 || layer >= cm->s.n_layer) return NULL;
    dlayer *L = &cm->L[layer];
    switch (slot) {
    case TP_CU_N1W: return &L->n1w;
    case TP_CU_N1B: return &L->n1b;
    case TP_CU_N2W: return &L->n2w;
    case TP_CU_N2B: return &L->n2b;
    default: return NULL;
    }
}

static dmat *mat_slot(tp_cuda_model *cm, tp_cuda_slot slot, int layer) {
    if (slot == TP_CU_EMB) return &cm->emb;
    if (slot == TP_CU_POS) return &cm->pos;
    if (slot == TP_CU_HEAD) return &cm->head;
    if (layer < 0 || layer >= cm->s.n_layer) return NULL;
    dlayer *L = &cm->L[layer];
    switch (slot) {
    case TP_CU_QKV: return &L->qkv;
    case TP_CU_Q: return &L->q;
    case TP_CU_K: return &L->k;
    case TP_CU_V: return &L->v;
    case TP_CU_O: return &L->o;
    case TP_CU_FC: return &L->fc;
    case TP_CU_PROJ: return &L->proj;
    case TP_CU_GATE: return &L->gate;
    case TP_CU_UP: return &L->up;
    case TP_CU_DOWN: return &L->down;
    default: return NULL;
    }
}

extern "C" tp_status tp_cuda_model_set_vec(tp_cuda_model *cm, tp_cuda_slot slot, int layer, const float *v,
                                           int64_t n, tp_err *e) {
    float **p = vec_slot(cm, slot, layer);
    if (!p || n != cm->s.d_model) return tp_fail(e, TP_ERR_ARG, "cuda: bad vector slot %d (layer %d)", (int)slot, layer);
    return put(cm, p, v, (size_t)n, e);
}

/* The slot's matrix before a (re)upload: shapes never change for a slot; another format than the
 * slot held frees the old one. */
static dmat *mat_for(tp_cuda_model *cm, tp_cuda_slot slot, int layer, int64_t rows, int64_t cols, int linear,
                     tp_err *e) {
    drop_graph(cm);
    dmat *m = mat_slot(cm, slot, layer);
    int have = m && (m->w || m->w16 || m->q);
    if (!m || rows <= 0 || cols <= 0 || (have && (m->rows != rows || m->cols != cols || m->linear != linear))) {
        tp_fail(e, TP_ERR_ARG, "cuda: bad matrix slot %d (layer %d, %lldx%lld)", (int)slot, layer, (long long)rows,
                (long long)cols);
        return NULL;
    }
    m->rows = rows;
    m->cols = cols;
    m->linear = linear;
    return m;
}

/* A slot holds one format: the other two are freed (keep: the buffer of the format being set, or
 * NULL when it is made anew) */
static void drop_other_formats(dmat *m, const void *keep) {
    if (m->w != keep) { dfree(m->w); m->w = NULL; }
    if (m->w16 != keep) { dfree(m->w16); m->w16 = NULL; }
    if (m->q != keep) { tp_cuda_qdev_free(m->q); m->q = NULL; }
}

static tp_status put_bias(tp_cuda_model *cm, dmat *m, const float *bias, tp_err *e) {
    if (bias) return put(cm, &m->bias, bias, (size_t)(m->linear ? m->rows : m->cols), e);
    dfree(m->bias);
    m->bias = NULL;
    return TP_OK;
}

extern "C" tp_status tp_cuda_model_set_mat(tp_cuda_model *cm, tp_cuda_slot slot, int layer, const float *w,
                                           int64_t rows, int64_t cols, int linear, const float *bias, tp_err *e) {
    dmat *m = mat_for(cm, slot, layer, rows, cols, linear, e);
    if (!m) return TP_ERR_ARG;
    drop_other_formats(m, m->w);
    TRY(put(cm, &m->w, w, (size_t)(rows * cols), e));
    return put_bias(cm, m, bias, e);
}

extern "C" tp_status tp_cuda_model_set_mat16(tp_cuda_model *cm, tp_cuda_slot slot, int layer, const uint16_t *w16,
                                             int64_t rows, int64_t cols, int linear, const float *bias, tp_err *e) {
    dmat *m = mat_for(cm, slot, layer, rows, cols, linear, e);
    if (!m) return TP_ERR_ARG;
    drop_other_formats(m, m->w16);
    size_t n = (size_t)(rows * cols);
    if (!m->w16) TRY(dalloc(cm, (void **)&m->w16, n * 2, e));
    CK(cudaMemcpy(m->w16, w16, n * 2, cudaMemcpyHostToDevice));
    return put_bias(cm, m, bias, e);
}

extern "C" tp_status tp_cuda_model_set_qmat(tp_cuda_model *cm, tp_cuda_slot slot, int layer, const tp_qmat *q,
                                            const float *bias, tp_err *e) {
    dmat *m = mat_for(cm, slot, layer, q->rows, q->cols, 1, e);
    if (!m) return TP_ERR_ARG;
    drop_other_formats(m, NULL);
    if (!(m->q = tp_cuda_qdev_upload(q)))
        return cu_err(cm, e, "tp_cuda_qdev_upload", "the packed matrix could not be uploaded", __LINE__);
    return put_bias(cm, m, bias, e);
}

extern "C" tp_status tp_cuda_model_set_rope(tp_cuda_model *cm, const float *cos_t, const float *sin_t, tp_err *e) {
    size_t n = (size_t)cm->s.cap * (size_t)(cm->s.head_dim / 2);
    TRY(put(cm, &cm->rope_cos, cos_t, n, e));
    return put(cm, &cm->rope_sin, sin_t, n, e);
}

/* Row-major C[M, N] (ldc) = alpha A[M, K] (lda) op(B) + beta C, op(B) = B^T for B [N, K] (transB)
 * or B for B [K, N]. cuBLAS is column-major, where a row-major X is X^T: C^T = op(B)^T A^T. */
static tp_status gemm(tp_cuda_model *cm, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                      int ldb, int transB, float beta, float *C, int ldc, tp_err *e) {
    if (M <= 0 || N <= 0) return TP_OK;
    CB(cublasSgemm(cm->h, transB ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N, N, M, K, &alpha, B, ldb, A, lda, &beta, C,
                   ldc));
    return TP_OK;
}

/* Row-major C[M, N] (ldc) = A16[M, K] op(B16) + beta C in fp32, A and B binary16 (cublasGemmEx, fp32
 * accumulation: tensor cores); op as gemm() above. */
static tp_status gemm16(tp_cuda_model *cm, int M, int N, int K, const uint16_t *A, int lda, const uint16_t *B, int ldb,
                        int transB, float beta, float *C, int ldc, tp_err *e) {
    if (M <= 0 || N <= 0) return TP_OK;
    const float one = 1.0f;
    CB(cublasGemmEx(cm->h16, transB ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N, N, M, K, &one, B, CUDA_R_16F, ldb, A,
                    CUDA_R_16F, lda, &beta, C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return TP_OK;
}

static int grid_of(size_t n) {
    size_t b = (n + TPB - 1) / TPB;
    return b < 1 ? 1 : b > 4096 ? 4096 : (int)b;
}

/* X [n, in] (row stride ldx) rounded to binary16 into cm->x16 [n, in] */
static tp_status to_f16(tp_cuda_model *cm, const float *X, int n, int in, int ldx, tp_err *e) {
    if (cm->x16_of == X && cm->x16_rows == n && cm->x16_cols == in) return TP_OK; /* converted for the last product */
    to_f16_kernel<<<grid_of((size_t)n * in), TPB, 0, cm->st>>>(cm->x16, X, n, in, ldx);
    LAUNCHED(to_f16_kernel);
    cm->x16_of = X;
    cm->x16_rows = n;
    cm->x16_cols = in;
    return TP_OK;
}

static tp_status grow(tp_cuda_model *cm, float **p, size_t *have, size_t n, tp_err *e) {
    if (n <= *have) return TP_OK;
    drop_graph(cm);
    dfree(*p);
    *p = NULL;
    *have = 0;
    TRY(dalloc(cm, (void **)p, n * 4, e));
    *have = n;
    return TP_OK;
}

/* Y[n, out] (ldy) = X[n, in] W (+ bias), or += when accumulate: pipeline/model_forward.c's linear. fp32
 * weights: cublasSgemm. fp16 weights: the activations rounded to binary16, cublasGemmEx. Packed:
 * up to QMUL_MAX rows through the packed kernels (activations rounded to binary16, as the fp16
 * path), more rows (prefill, perplexity windows) through the dequantised matrix and cublasSgemm. */
static tp_status linear(tp_cuda_model *cm, const dmat *w, const float *X, int n, float *Y, int ldy, int accumulate,
                        tp_err *e) {
    if (!w->w && !w->w16 && !w->q) return tp_fail(e, TP_ERR_INTERNAL, "cuda: a weight matrix was not uploaded");
    int in = (int)(w->linear ? w->cols : w->rows), out = (int)(w->linear ? w->rows : w->cols);
    if (n <= 0) return TP_OK;
    if (Y == cm->x16_of) cm->x16_of = NULL;
    if (w->q && n <= QMUL_MAX) {
        TRY(to_f16(cm, X, n, in, in, e));
        if ((n == 1 || ldy == out) && !w->bias && !accumulate) { /* straight into Y */
            if (!tp_cuda_qdev_mul(w->q, cm->x16, n, Y))
                return cu_err(cm, e, "tp_cuda_qdev_mul", "packed product failed", __LINE__);
            return TP_OK;
        }
        TRY(grow(cm, &cm->ytmp, &cm->ytmp_n, (size_t)n * out, e));
        if (!tp_cuda_qdev_mul(w->q, cm->x16, n, cm->ytmp))
            return cu_err(cm, e, "tp_cuda_qdev_mul", "packed product failed", __LINE__);
        combine_kernel<<<n, TPB, 0, cm->st>>>(Y, ldy, cm->ytmp, out, w->bias, accumulate);
        LAUNCHED(combine_kernel);
        return TP_OK;
    }
    if (w->bias) {
        bias_kernel<<<n, TPB, 0, cm->st>>>(Y, ldy, w->bias, out, accumulate);
        LAUNCHED(bias_kernel);
    }
    float beta = (w->bias || accumulate) ? 1.0f : 0.0f;
    if (w->w16) {
        TRY(to_f16(cm, X, n, in, in, e));
        return gemm16(cm, n, out, in, cm->x16, in, w->w16, (int)w->cols, w->linear, beta, Y, ldy, e);
    }
    const float *W = w->w;
    if (w->q) {
        TRY(grow(cm, &cm->wtmp, &cm->wtmp_n, (size_t)(w->rows * w->cols), e));
        if (!tp_cuda_qdev_dequant(w->q, cm->wtmp))
            return cu_err(cm, e, "tp_cuda_qdev_dequant", "packed dequantisation failed", __LINE__);
        W = cm->wtmp;
    }
    return gemm(cm, n, out, in, 1.0f, X, in, W, (int)w->cols, w->linear, beta, Y, ldy, e);
}

static tp_status ensure_rows(tp_cuda_model *cm, int n, tp_err *e) {
    if (n <= cm->rows) return TP_OK;
    drop_graph(cm);
    size_t d = (size_t)cm->s.d_model, F = (size_t)cm->s.d_ff, N = (size_t)n;
    float **fs[] = {&cm->x, &cm->hb, &cm->q, &cm->att, &cm->ff1, &cm->ff2};
    for (size_t i = 0; i < 6; i++) { dfree(*fs[i]); *fs[i] = NULL; }
    dfree(cm->x16);
    cm->x16 = NULL;
    dfree(cm->ids); dfree(cm->tg); dfree(cm->nll);
    cm->ids = cm->tg = NULL;
    cm->nll = NULL;
    cm->rows = 0;
    TRY(dalloc(cm, (void **)&cm->x, N * d * 4, e));
    TRY(dalloc(cm, (void **)&cm->hb, N * d * 4, e));
    TRY(dalloc(cm, (void **)&cm->q, N * (size_t)cm->qw * 4, e));
    TRY(dalloc(cm, (void **)&cm->att, N * (size_t)cm->qd * 4, e));
    TRY(dalloc(cm, (void **)&cm->ff1, N * F * 4, e));
    TRY(dalloc(cm, (void **)&cm->ff2, N * F * 4, e));
    size_t widest = d > F ? d : F; /* inputs of every product: d, qd (<= the q buffer's width) or F */
    if ((size_t)cm->qd > widest) widest = (size_t)cm->qd;
    TRY(dalloc(cm, (void **)&cm->x16, N * widest * 2 + 16, e));
    TRY(dalloc(cm, (void **)&cm->ids, N * 4, e));
    TRY(dalloc(cm, (void **)&cm->tg, N * 4, e));
    TRY(dalloc(cm, (void **)&cm->nll, N * 8, e));
    cm->rows = n;
    return TP_OK;
}

/* Causal attention of rows [0, n) (positions pos0..) of one layer, per head and block of query
 * rows as pipeline/model_forward.c's attention. Q: [n, qd] with row stride qs; K/V: the layer's cache. */
static tp_status attention(tp_cuda_model *cm, const float *Q, int qs, const float *K, const float *V, int n, int pos0,
                           tp_err *e) {
    const tp_cuda_model_shape *s = &cm->s;
    int hd = s->head_dim, H = s->n_head, grp = s->n_head / s->n_kv_head, win = s->sliding_window;
    float scale = 1.0f / sqrtf((float)hd);
    cm->x16_of = NULL; /* att is written below */
    if (n == 1) { /* decoding: one launch for every head (in a graph step: scores sized for the cache) */
        int kend = pos0 + 1, kstart = (win > 0 && pos0 - win + 1 > 0) ? pos0 - win + 1 : 0;
        size_t smem = (size_t)(hd + (cm->step ? s->cap : kend - kstart) + (TPB / 32) * hd) * sizeof(float);
        if (smem <= 48 * 1024) {
            attend1_kernel<<<H, TPB, smem, cm->st>>>(Q, K, V, cm->att, cm->kvd, hd, grp, kstart, kend, scale,
                                                      cm->step ? cm->dpos : NULL, win);
            LAUNCHED(attend1_kernel);
            return TP_OK;
        }
        if (cm->step) return tp_fail(e, TP_ERR_INTERNAL, "cuda: a graph step's attention does not fit shared memory");
    }
    for (int h = 0; h < H; h++) {
        int kh = h / grp;
        for (int r0 = 0; r0 < n; r0 += cm->att_rows) {
            int r1 = r0 + cm->att_rows < n ? r0 + cm->att_rows : n, rb = r1 - r0;
            int kend = pos0 + r1, kstart = 0;
            if (win > 0 && pos0 + r0 - win + 1 > 0) kstart = pos0 + r0 - win + 1;
            int nk = kend - kstart;
            TRY(gemm(cm, rb, nk, hd, scale, Q + (size_t)r0 * qs + (size_t)h * hd, qs,
                     K + (size_t)kstart * cm->kvd + (size_t)kh * hd, cm->kvd, 1, 0.0f, cm->S, nk, e));
            softmax_kernel<<<rb, TPB, 0, cm->st>>>(cm->S, nk, pos0 + r0, kstart, win);
            LAUNCHED(softmax_kernel);
            TRY(gemm(cm, rb, hd, nk, 1.0f, cm->S, nk, V + (size_t)kstart * cm->kvd + (size_t)kh * hd, cm->kvd, 0, 0.0f,
                     cm->att + (size_t)r0 * cm->qd + (size_t)h * hd, cm->qd, e));
        }
    }
    return TP_OK;
}

/* x[0..n) = the embedding rows of cm->ids (+ GPT-2's positions), in the embedding's format */
static tp_status embed(tp_cuda_model *cm, int n, int pos0, tp_err *e) {
    const tp_cuda_model_shape *s = &cm->s;
    int d = s->d_model;
    const float *pos = s->gpt2 ? cm->pos.w : NULL;
    const int *dp = cm->step ? cm->dpos : NULL;
    if (cm->emb.w) embed_kernel<<<n, TPB, 0, cm->st>>>(cm->x, cm->emb.w, pos, cm->ids, d, pos0, dp);
    else if (cm->emb.w16) embed16_kernel<<<n, TPB, 0, cm->st>>>(cm->x, cm->emb.w16, pos, cm->ids, d, pos0, dp);
    else {
        if (!tp_cuda_qdev_rows(cm->emb.q, cm->ids, n, cm->x))
            return cu_err(cm, e, "tp_cuda_qdev_rows", "packed embedding rows failed", __LINE__);
        if (pos) addpos_kernel<<<n, TPB, 0, cm->st>>>(cm->x, pos, d, pos0, dp);
    }
    LAUNCHED(embed_kernel);
    return TP_OK;
}

/* The trunk of rows [0, n) at positions pos0..: embedding, layers, final norm into cm->hb. */
static tp_status trunk(tp_cuda_model *cm, const int32_t *ids, int n, int pos0, tp_err *e) {
    const tp_cuda_model_shape *s = &cm->s;
    int d = s->d_model, F = s->d_ff;
    size_t lay = (size_t)s->cap * cm->kvd;
    int have_emb = cm->emb.w || cm->emb.w16 || cm->emb.q;
    if (!have_emb || (s->gpt2 && !cm->pos.w) || !cm->nfw || (s->gpt2 && !cm->nfb) || (!s->gpt2 && !cm->rope_cos))
        return tp_fail(e, TP_ERR_INTERNAL, "cuda: the model's tensors were not all uploaded");
    TRY(ensure_rows(cm, n, e));
    cm->cached = pos0; /* positions beyond pos0 are overwritten below */
    if (!cm->step) CK(cudaMemcpyAsync(cm->ids, ids, (size_t)n * 4, cudaMemcpyHostToDevice, cm->st));
    const int *dp = cm->step ? cm->dpos : NULL; /* a graph step: positions from device memory */
    cm->x16_of = NULL;
    TRY(embed(cm, n, pos0, e));
    for (int l = 0; l < s->n_layer; l++) {
        dlayer *L = &cm->L[l];
        float *Kl = cm->kc + l * lay, *Vl = cm->vc + l * lay;
        if (!L->n1w || !L->n2w || (s->gpt2 && (!L->n1b || !L->n2b)))
            return tp_fail(e, TP_ERR_INTERNAL, "cuda: layer %d's norms were not uploaded", l);
        if (s->gpt2) {
            layernorm_kernel<<<n, TPB, 0, cm->st>>>(cm->x, cm->hb, d, L->n1w, L->n1b, s->norm_eps);
            LAUNCHED(layernorm_kernel); cm->x16_of = NULL; /* its output may be the next product's input */
            TRY(linear(cm, &L->qkv, cm->hb, n, cm->q, 3 * d, 0, e));
            /* K and V columns of the fused projection into the cache (kvd == d for GPT-2) */
            if (dp) {
                kv_store_kernel<<<(cm->kvd + TPB - 1) / TPB, TPB, 0, cm->st>>>(Kl, Vl, cm->q + d, cm->q + 2 * d, cm->kvd, dp);
                LAUNCHED(kv_store_kernel);
            } else {
                CK(cudaMemcpy2DAsync(Kl + (size_t)pos0 * cm->kvd, (size_t)cm->kvd * 4, cm->q + d, (size_t)3 * d * 4,
                                     (size_t)d * 4, (size_t)n, cudaMemcpyDeviceToDevice, cm->st));
                CK(cudaMemcpy2DAsync(Vl + (size_t)pos0 * cm->kvd, (size_t)cm->kvd * 4, cm->q + 2 * d, (size_t)3 * d * 4,
                                     (size_t)d * 4, (size_t)n, cudaMemcpyDeviceToDevice, cm->st));
            }
            TRY(attention(cm, cm->q, 3 * d, Kl, Vl, n, pos0, e));
            TRY(linear(cm, &L->o, cm->att, n, cm->x, d, 1, e));
            layernorm_kernel<<<n, TPB, 0, cm->st>>>(cm->x, cm->hb, d, L->n2w, L->n2b, s->norm_eps);
            LAUNCHED(layernorm_kernel); cm->x16_of = NULL; /* its output may be the next product's input */
            TRY(linear(cm, &L->fc, cm->hb, n, cm->ff1, F, 0, e));
            act_kernel<<<1024, TPB, 0, cm->st>>>(cm->ff1, NULL, (size_t)n * F, s->act);
            LAUNCHED(act_kernel); cm->x16_of = NULL; /* its output may be the next product's input */
            TRY(linear(cm, &L->proj, cm->ff1, n, cm->x, d, 1, e));
        } else {
            rmsnorm_kernel<<<n, TPB, 0, cm->st>>>(cm->x, cm->hb, d, L->n1w, s->norm_eps);
            LAUNCHED(rmsnorm_kernel); cm->x16_of = NULL; /* its output may be the next product's input */
            TRY(linear(cm, &L->q, cm->hb, n, cm->q, cm->qd, 0, e));
            /* a graph step stages the new key / value row and stores it at the device position */
            float *kr = dp ? cm->kt : Kl + (size_t)pos0 * cm->kvd, *vr = dp ? cm->vt : Vl + (size_t)pos0 * cm->kvd;
            TRY(linear(cm, &L->k, cm->hb, n, kr, cm->kvd, 0, e));
            TRY(linear(cm, &L->v, cm->hb, n, vr, cm->kvd, 0, e));
            rope_kernel<<<n, TPB, 0, cm->st>>>(cm->q, cm->qd, s->n_head, s->head_dim, cm->rope_cos, cm->rope_sin, pos0,
                                               dp);
            LAUNCHED(rope_kernel);
            rope_kernel<<<n, TPB, 0, cm->st>>>(kr, cm->kvd, s->n_kv_head, s->head_dim, cm->rope_cos, cm->rope_sin, pos0,
                                               dp);
            LAUNCHED(rope_kernel);
            if (dp) {
                kv_store_kernel<<<(cm->kvd + TPB - 1) / TPB, TPB, 0, cm->st>>>(Kl, Vl, cm->kt, cm->vt, cm->kvd, dp);
                LAUNCHED(kv_store_kernel);
            }
            TRY(attention(cm, cm->q, cm->qd, Kl, Vl, n, pos0, e));
            TRY(linear(cm, &L->o, cm->att, n, cm->x, d, 1, e));
            rmsnorm_kernel<<<n, TPB, 0, cm->st>>>(cm->x, cm->hb, d, L->n2w, s->norm_eps);
            LAUNCHED(rmsnorm_kernel); cm->x16_of = NULL; /* its output may be the next product's input */
            TRY(linear(cm, &L->gate, cm->hb, n, cm->ff1, F, 0, e));
            TRY(linear(cm, &L->up, cm->hb, n, cm->ff2, F, 0, e));
            act_kernel<<<1024, TPB, 0, cm->st>>>(cm->ff1, cm->ff2, (size_t)n * F, s->act);
            LAUNCHED(act_kernel); cm->x16_of = NULL; /* its output may be the next product's input */
            TRY(linear(cm, &L->down, cm->ff1, n, cm->x, d, 1, e));
        }
    }
    if (s->gpt2) layernorm_kernel<<<n, TPB, 0, cm->st>>>(cm->x, cm->hb, d, cm->nfw, cm->nfb, s->norm_eps);
    else rmsnorm_kernel<<<n, TPB, 0, cm->st>>>(cm->x, cm->hb, d, cm->nfw, s->norm_eps);
    LAUNCHED(final_norm); cm->x16_of = NULL; /* its output may be the next product's input */
    return TP_OK;
}

/* The lm_head: the untied head or, tied, the embedding */
static const dmat *head_of(tp_cuda_model *cm, tp_err *e) {
    const dmat *hw = (cm->head.w || cm->head.w16 || cm->head.q) ? &cm->head : &cm->emb;
    if (hw->rows != cm->s.vocab || hw->cols != cm->s.d_model || !hw->linear) {
        tp_fail(e, TP_ERR_INTERNAL, "cuda: lm_head is not [vocab, d_model]");
        return NULL;
    }
    return hw;
}

static tp_status forward_inner(tp_cuda_model *cm, const int32_t *ids, int n, int pos0, int row0, int row1,
                               const int32_t *targets, double *nll, tp_err *e) {
    int d = cm->s.d_model, V = cm->s.vocab;
    TRY(trunk(cm, ids, n, pos0, e));
    if (row1 > row0)
        CK(cudaMemcpyAsync(cm->tg, targets, (size_t)(row1 - row0) * 4, cudaMemcpyHostToDevice, cm->st));
    const dmat *hw = head_of(cm, e);
    if (!hw) return TP_ERR_INTERNAL;
    for (int r0 = row0; r0 < row1; r0 += cm->logit_rows) {
        int nr = row1 - r0 < cm->logit_rows ? row1 - r0 : cm->logit_rows;
        TRY(linear(cm, hw, cm->hb + (size_t)r0 * d, nr, cm->logits, V, 0, e));
        nll_kernel<<<nr, TPB, 0, cm->st>>>(cm->logits, V, cm->tg + (r0 - row0), cm->nll + (r0 - row0));
        LAUNCHED(nll_kernel);
    }
    if (row1 > row0)
        CK(cudaMemcpyAsync(nll, cm->nll, (size_t)(row1 - row0) * sizeof(double), cudaMemcpyDeviceToHost, cm->st));
    CK(cudaStreamSynchronize(cm->st)); /* and any error of the kernels above */
    cm->cached = pos0 + n;
    return TP_OK;
}

/* One decode step's launches with device positions (cm->step): trunk and lm_head into cm->logits */
static tp_status step_body(tp_cuda_model *cm, tp_err *e) {
    cm->step = 1;
    tp_status rc = trunk(cm, NULL, 1, 0, e);
    const dmat *hw = rc == TP_OK ? head_of(cm, e) : NULL;
    if (rc == TP_OK && !hw) rc = TP_ERR_INTERNAL;
    if (rc == TP_OK) rc = linear(cm, hw, cm->hb, 1, cm->logits, cm->s.vocab, 0, e);
    cm->step = 0;
    return rc;
}

/* Captures step_body into cm->gexec for the next steps; on any failure graphs are turned off for
 * this model (once, with a line on stderr) and steps run eagerly. */
static void capture_step(tp_cuda_model *cm) {
    cudaGraph_t g = NULL;
    tp_err e2 = {{0}};
    int failed = cm->failed;
    tp_status rc = TP_ERR_INTERNAL;
    cudaError_t ce = cudaStreamBeginCapture(cm->st, cudaStreamCaptureModeThreadLocal);
    if (ce == cudaSuccess) {
        rc = step_body(cm, &e2);
        ce = cudaStreamEndCapture(cm->st, &g);
    }
    if (rc == TP_OK && ce == cudaSuccess) ce = cudaGraphInstantiate(&cm->gexec, g, 0);
    if (g) (void)cudaGraphDestroy(g);
    if (rc != TP_OK || ce != cudaSuccess) {
        fprintf(stderr, "cuda: decode steps run without a CUDA graph (capture failed: %s)\n",
                rc != TP_OK ? e2.msg : cudaGetErrorString(ce));
        (void)cudaGetLastError();
        cm->gexec = NULL;
        cm->graphs = 0;
        cm->failed = failed;
    }
}

/* A decode step: the token and position to the device, then the captured graph (or the same
 * launches eagerly, the first time, capturing them afterwards) */
static tp_status decode_step(tp_cuda_model *cm, const int32_t *id, int pos0, tp_err *e) {
    TRY(ensure_rows(cm, 1, e));
    CK(cudaMemcpyAsync(cm->ids, id, 4, cudaMemcpyHostToDevice, cm->st));
    CK(cudaMemcpyAsync(cm->dpos, &pos0, 4, cudaMemcpyHostToDevice, cm->st));
    if (cm->gexec) {
        CK(cudaGraphLaunch(cm->gexec, cm->st));
        return TP_OK;
    }
    TRY(step_body(cm, e));
    CK(cudaStreamSynchronize(cm->st)); /* pos0 lives on this stack frame; errors show here */
    capture_step(cm);
    return TP_OK;
}

static tp_status forward_logits_inner(tp_cuda_model *cm, const int32_t *ids, int n, int pos0, int row0,
                                      float *logits, tp_err *e) {
    int d = cm->s.d_model, V = cm->s.vocab;
    if (n == 1 && row0 == 0 && logits && cm->graphs) {
        TRY(decode_step(cm, ids, pos0, e));
        CK(cudaMemcpyAsync(logits, cm->logits, (size_t)V * 4, cudaMemcpyDeviceToHost, cm->st));
        CK(cudaStreamSynchronize(cm->st));
        cm->cached = pos0 + 1;
        return TP_OK;
    }
    TRY(trunk(cm, ids, n, pos0, e));
    if (logits && row0 < n) {
        const dmat *hw = head_of(cm, e);
        if (!hw) return TP_ERR_INTERNAL;
        for (int r0 = row0; r0 < n; r0 += cm->logit_rows) {
            int nr = n - r0 < cm->logit_rows ? n - r0 : cm->logit_rows;
            TRY(linear(cm, hw, cm->hb + (size_t)r0 * d, nr, cm->logits, V, 0, e));
            CK(cudaMemcpyAsync(logits + (size_t)(r0 - row0) * V, cm->logits, (size_t)nr * V * 4,
                               cudaMemcpyDeviceToHost, cm->st));
        }
    }
    CK(cudaStreamSynchronize(cm->st));
    cm->cached = pos0 + n;
    return TP_OK;
}

extern "C" tp_status tp_cuda_model_forward_logits(tp_cuda_model *cm, const int32_t *ids, int n, int pos0, int row0,
                                                  float *logits, tp_err *e) {
    if (cm->failed) return tp_fail(e, TP_ERR_INTERNAL, "cuda: the device model failed earlier");
    if (n <= 0 || pos0 < 0 || pos0 > cm->cached || pos0 + n > cm->s.cap || row0 < 0 || row0 > n)
        return tp_fail(e, TP_ERR_ARG, "cuda: forward of %d rows at position %d (logits from row %d) outside the cache",
                       n, pos0, row0);
    tp_status rc = forward_logits_inner(cm, ids, n, pos0, row0, logits, e);
    if (rc != TP_OK) cm->failed = 1;
    return rc;
}

extern "C" tp_status tp_cuda_model_forward_nll(tp_cuda_model *cm, const int32_t *ids, int n, int pos0, int row0,
                                               int row1, const int32_t *targets, double *nll, tp_err *e) {
    if (cm->failed) return tp_fail(e, TP_ERR_INTERNAL, "cuda: the device model failed earlier");
    if (n <= 0 || pos0 < 0 || pos0 > cm->cached || pos0 + n > cm->s.cap || row0 < 0 || row1 > n || row0 > row1)
        return tp_fail(e, TP_ERR_ARG, "cuda: forward of %d rows at position %d (rows [%d, %d)) outside the cache", n,
                       pos0, row0, row1);
    tp_status rc = forward_inner(cm, ids, n, pos0, row0, row1, targets, nll, e);
    if (rc != TP_OK) cm->failed = 1;
    return rc;
}
