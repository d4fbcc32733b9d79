/* fp32 CPU forward pass: linear layers (fp32 sgemm / GEMV, fp16 GEMV, packed codecs), norms,
 * RoPE, causal attention over the KV cache, the MLP, the lm_head and the per-token NLL. See
 * model.h for the contract and the memory modes. */
#include "pipeline/model_internal.h"
#include "tenpak/matvec.h"

#include "pipeline/gguf_model.h"
#include "kernels/cpu/vecmath_cpu.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ATT_BLOCK 256

typedef struct mv_job {
    const float *B;
    int ldb, K;
    const float *a;
    float alpha, beta;
    float *c;
    int N, transB;
} mv_job;
static void mv_part(void *ctx, int i, int n) {
    const mv_job *j = ctx;
    int64_t o0 = (int64_t)j->N * i / n, o1 = (int64_t)j->N * (i + 1) / n;
    if (j->transB) tp_matvec_rows(j->B, j->ldb, j->K, j->a, j->alpha, j->beta, j->c, o0, o1);
    else tp_matvec_cols(j->B, j->ldb, j->K, j->a, j->alpha, j->beta, j->c, o0, o1);
}

/* Tasks of a one-row product over N outputs of K inputs each, for the worker pool: about 32k
 * weights a task (blocks of whole outputs), one task below that. Every output's sum is computed
 * whole by one task, so the split changes nothing in the result. */
static int out_tasks(int64_t N, int64_t K) {
    int64_t per = (32768 + K - 1) / K, n = (N + per - 1) / per;
    return n < 1 ? 1 : n > 4096 ? 4096 : (int)n;
}

/* fp16 weights as stored, one activation row (TP_WEIGHTS_F16 decoding): y = W x (+ y) */
typedef struct hv_job { const uint16_t *W; int64_t K; const float *x; float beta; float *y; int64_t N; } hv_job;
static void hv_part(void *ctx, int i, int n) {
    const hv_job *j = ctx;
    tp_matvec_rows_f16(j->W, j->K, j->K, j->x, 1.0f, j->beta, j->y, j->N * i / n, j->N * (i + 1) / n);
}
/* W of w as fp16 [out, in] straight from the file, when the fp16 kernel may read it */
static const uint16_t *f16_direct(const tp_model *m, const wmat *w, int nrows) {
    if (m->mode != TP_WEIGHTS_F16 || nrows != 1 || w->ovr || w->packed || m->hook || !w->linear_layout ||
        w->t->dtype != TP_ST_F16 || ((uintptr_t)w->t->data & 1))
        return NULL;
    return (const uint16_t *)(const void *)w->t->data;
}
/* Y (row stride ldy) = X W^T (+ Y when accumulate) with W in its codec's format, counted with the
 * products' time and FLOPs like gemm() */
static tp_status packed_mul(tp_model *m, tp_linear *l, const float *X, int n, float *Y, int ldy, int accumulate,
                            tp_err *e) {
    double t0 = tp_now();
    tp_status rc = tp_linear_mul(l, X, n, Y, ldy, accumulate, e);
    m->gemm_s += tp_now() - t0;
    m->gemm_flops += 2.0 * n * (double)tp_linear_rows(l) * (double)tp_linear_cols(l);
    return rc;
}

static void hgemv(tp_model *m, const uint16_t *W, int out, int in, const float *x, float beta, float *y) {
    double t0 = tp_now();
    hv_job j = {W, in, x, beta, y, out};
    tp_par_run(out_tasks(out, in), hv_part, &j);
    m->gemm_s += tp_now() - t0;
    m->gemm_flops += 2.0 * out * in;
}

static void gemm(tp_model *m, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                 int transB, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    double t0 = tp_now();
    /* one row (incremental decoding): a matrix-vector product, which reads the weights once where
     * sgemm would first pack (copy) them all, and sums in a fixed order whatever the thread count
     * (tenpak/matvec.h), so `tenpak zip` decodes on any number of threads */
    if (M == 1) {
        mv_job j = {B, ldb, K, A, alpha, beta, C, N, transB};
        tp_par_run(out_tasks(N, K), mv_part, &j);
    } else {
        tp_pool_nap(); /* OpenBLAS's threads get the cores */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, transB ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb,
                    beta, C, ldc);
    }
    m->gemm_s += tp_now() - t0;
    m->gemm_flops += 2.0 * M * N * K;
}

/* Y[n, out] (row stride ldy) = X[n, in] W (+ bias), or += when accumulate. */
static tp_status linear(tp_model *m, wmat *w, const float *X, int n, float *Y, int ldy, int accumulate, tp_err *e) {
    tp_status rc = TP_OK;
    const uint16_t *H = f16_direct(m, w, n);
    const float *W = w->packed || H ? NULL : tp_model_wget(m, w, &rc, e);
    if (!W && !w->packed && !H) return rc;
    int in = (int)(w->linear_layout ? w->cols : w->rows), out = (int)(w->linear_layout ? w->rows : w->cols);
    if (m->act_sink) m->act_sink(m->act_user, w->t->name, X, n, in); /* reads X only */
    if (w->bias) {
        for (int i = 0; i < n; i++) {
            float *y = Y + (size_t)i * ldy;
            if (accumulate) for (int j = 0; j < out; j++) y[j] += w->bias[j];
            else memcpy(y, w->bias, (size_t)out * sizeof *y);
        }
    }
    float beta = (w->bias || accumulate) ? 1.0f : 0.0f;
    if (H) {
        hgemv(m, H, out, in, X, beta, Y);
        return TP_OK;
    }
    if (w->packed) return packed_mul(m, w->packed, X, n, Y, ldy, beta != 0.0f, e);
    gemm(m, n, out, in, 1.0f, X, in, W, w->linear_layout ? in : out, w->linear_layout, beta, Y, ldy);
    return TP_OK;
}

/* Y_i = X W_i for k weights of one input (q, k, v; gate, up). One decoded row by packed weights
 * goes through one run of the worker pool for all of them (tp_linear_mul1_multi: the same bits as
 * one product after the other); anything else is linear() k times. */
static tp_status linear_multi(tp_model *m, wmat *const *w, int k, const float *X, int n, float *const *Y,
                              const int *ldy, tp_err *e) {
    int fused = n == 1 && !m->act_sink && !m->hook;
    for (int i = 0; fused && i < k; i++) fused = w[i]->packed && !w[i]->bias && !w[i]->ovr;
    if (fused) {
        tp_linear *l[TP_QGEMV_MULTI];
        double flops = 0;
        for (int i = 0; i < k; i++) {
            l[i] = w[i]->packed;
            flops += 2.0 * (double)tp_linear_rows(l[i]) * (double)tp_linear_cols(l[i]);
        }
        double t0 = tp_now();
        tp_status rc = tp_linear_mul1_multi(l, k, X, Y, e);
        m->gemm_s += tp_now() - t0;
        m->gemm_flops += flops;
        return rc;
    }
    for (int i = 0; i < k; i++) {
        tp_status rc = linear(m, w[i], X, n, Y[i], ldy[i], 0, e);
        if (rc != TP_OK) return rc;
    }
    return TP_OK;
}

/* ---- elementwise pieces ---- */

static void layernorm(const float *x, float *y, int n, int d, const float *w, const float *b, double eps) {
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * d;
        float *yi = y + (size_t)i * d;
        double mean = 0, var = 0;
        for (int j = 0; j < d; j++) mean += xi[j];
        mean /= d;
        for (int j = 0; j < d; j++) var += (xi[j] - mean) * (xi[j] - mean);
        var /= d;
        float r = (float)(1.0 / sqrt(var + eps));
        for (int j = 0; j < d; j++) yi[j] = (float)(xi[j] - mean) * r * w[j] + b[j];
    }
}

static void rmsnorm(const float *x, float *y, int n, int d, const float *w, double eps) {
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * d;
        float *yi = y + (size_t)i * d;
        double ss = 0;
        for (int j = 0; j < d; j++) ss += (double)xi[j] * xi[j];
        float r = (float)(1.0 / sqrt(ss / d + eps));
        for (int j = 0; j < d; j++) yi[j] = w[j] * (xi[j] * r);
    }
}

static inline float act(tp_act a, float x) {
    switch (a) {
    case TP_ACT_GELU_NEW: return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    case TP_ACT_GELU: return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f));
    case TP_ACT_SILU: return x / (1.0f + expf(-x));
    case TP_ACT_RELU: return x > 0 ? x : 0;
    }
    return x;
}

/* rotate_half RoPE (transformers' Llama layout: pairs (i, i + hd/2)) on rows of a [n, heads*hd]
 * matrix with row stride ld, row r at position pos0 + r. */
static void rope(const tp_model *m, float *X, int n, int ld, int heads, int pos0) {
    int hd = m->c.head_dim, half = hd / 2;
    for (int r = 0; r < n; r++) {
        const float *cs = m->rope_cos + (size_t)(pos0 + r) * half, *sn = m->rope_sin + (size_t)(pos0 + r) * half;
        for (int h = 0; h < heads; h++) {
            float *v = X + (size_t)r * ld + (size_t)h * hd;
            for (int i = 0; i < half; i++) {
                float a = v[i], b = v[i + half];
                v[i] = a * cs[i] - b * sn[i];
                v[i + half] = b * cs[i] + a * sn[i];
            }
        }
    }
}

/* Activations for n rows, in three buffers where a layer's values that are never live at once
 * share one (the peak RSS of a prefill, e.g. TinyLlama's int4 model, counts every touched page):
 *   x   [n, d]          the residual stream
 *   h   [n, max(d, qd)] the normed input of the attention and the MLP; att, the attention's
 *                       output, is written after the q/k/v products have read h
 *   q   [n, Q], Q = max(query width, MLP width): the query (GPT-2: the fused q|k|v), read by the
 *                       attention only; then ff1 (and ff2 after it: Llama's up) in the MLP
 * att, ff1 and ff2 point into h and q; only x, h, q and S own memory. */
static void act_widths(const tp_model *m, size_t *hw, size_t *qw) {
    const tp_model_config *c = &m->c;
    int gpt2 = c->arch == TP_ARCH_GPT2;
    size_t d = (size_t)c->d_model, qd = (size_t)m->qd, F = (size_t)c->d_ff, fw = gpt2 ? F : 2 * F;
    *hw = d > qd ? d : qd;
    *qw = gpt2 ? 3 * d : qd;
    if (fw > *qw) *qw = fw;
}
size_t tp_model_act_row_bytes(const tp_model *m) {
    size_t hw, qw;
    act_widths(m, &hw, &qw);
    return ((size_t)m->c.d_model + hw + qw) * sizeof(float);
}

static tp_status ensure_rows(tp_model *m, int n, tp_err *e) {
    if (n <= m->rows) return TP_OK;
    const tp_model_config *c = &m->c;
    int gpt2 = c->arch == TP_ARCH_GPT2;
    size_t d = (size_t)c->d_model, F = (size_t)c->d_ff, hw, qw;
    act_widths(m, &hw, &qw);
    tp_free(m->x); tp_free(m->h); tp_free(m->q); tp_free(m->S);
    m->att = m->ff1 = m->ff2 = NULL;
    m->x = tp_alloc((size_t)n * d * 4);
    m->h = tp_alloc((size_t)n * hw * 4);
    m->q = tp_alloc((size_t)n * qw * 4);
    m->S = tp_alloc((size_t)ATT_BLOCK * (size_t)m->cap * 4);
    if (!m->x || !m->h || !m->q || !m->S) {
        m->rows = 0;
        return tp_fail(e, TP_ERR_NOMEM, "out of memory for activations of %d rows", n);
    }
    m->att = m->h;
    m->ff1 = m->q;
    m->ff2 = gpt2 ? NULL : m->q + (size_t)n * F;
    m->rows = n;
    return TP_OK;
}

/* Masked softmax of score rows: row i (position p0 + i) sees keys [lo, p] where lo is kstart or
 * the sliding-window start; every other key gets weight 0. */
typedef struct softmax_ctx { float *S; int nk, rows, p0, kstart, win; } softmax_ctx;
static void softmax_part(void *vc, int t, int nt) {
    softmax_ctx *c = vc;
    for (int i = c->rows * t / nt; i < c->rows * (t + 1) / nt; i++) {
        float *s = c->S + (size_t)i * c->nk;
        int p = c->p0 + i, lo = (c->win > 0 && p - c->win + 1 > c->kstart) ? p - c->win + 1 : c->kstart;
        int a = lo - c->kstart, b = p - c->kstart; /* inclusive */
        float mx = tp_vmax(s + a, (size_t)(b - a + 1));
        float inv = 1.0f / tp_vexp_inplace(s + a, (size_t)(b - a + 1), mx);
        for (int j = 0; j < a; j++) s[j] = 0;
        for (int j = a; j <= b; j++) s[j] *= inv;
        for (int j = b + 1; j < c->nk; j++) s[j] = 0;
    }
}

/* Activations over n floats, split across threads when large. */
typedef struct act_ctx { float *g; const float *u; size_t n; tp_act a; } act_ctx;
static void act_part(void *vc, int t, int nt) {
    act_ctx *c = vc;
    size_t i0 = c->n * (size_t)t / (size_t)nt, i1 = c->n * (size_t)(t + 1) / (size_t)nt;
    float *g = c->g + i0;
    size_t n = i1 - i0;
    if (c->a == TP_ACT_GELU_NEW && !c->u) { tp_vgelu_new(g, n); return; }
    if (c->a == TP_ACT_SILU && c->u) { tp_vswiglu(g, c->u + i0, n); return; }
    for (size_t j = 0; j < n; j++) g[j] = act(c->a, g[j]) * (c->u ? c->u[i0 + j] : 1.0f);
}
static void apply_act(float *g, const float *u, size_t n, tp_act a) {
    act_ctx c = {g, u, n, a};
    int nt = n >= 65536 ? tp_par_threads() : 1;
    if (nt > 1) tp_par_run(nt, act_part, &c);
    else act_part(&c, 0, 1);
}

/* One decoded row's attention, a head a task (the worker pool takes the heads together instead of
 * the calling thread taking them one after another while the others wait): per head the same
 * products as attention()'s one-row gemm() calls (each output's sum whole, in the matvec's fixed
 * order) and the same softmax, into a scratch row of its own, so the bits are those of the loop. */
typedef struct head_ctx {
    const tp_model *m;
    const float *Q, *K, *V;
    float *S, *out;
    int nk, kstart, pos, hd, grp, win;
    float scale;
} head_ctx;
static void head_part(void *vc, int h, int nh) {
    const head_ctx *c = vc;
    const int kh = h / c->grp, kvd = c->m->kvd;
    float *S = c->S + (size_t)h * c->nk;
    (void)nh;
    tp_matvec_rows(c->K + (size_t)c->kstart * kvd + (size_t)kh * c->hd, kvd, c->hd, c->Q + (size_t)h * c->hd, c->scale,
                   0.0f, S, 0, c->nk);
    softmax_ctx sc = {S, c->nk, 1, c->pos, c->kstart, c->win};
    softmax_part(&sc, 0, 1);
    tp_matvec_cols(c->V + (size_t)c->kstart * kvd + (size_t)kh * c->hd, kvd, c->nk, S, 1.0f, 0.0f,
                   c->out + (size_t)h * c->hd, 0, c->hd);
}

/* Causal attention of rows [0, n) (positions pos0..) of one layer. Q: [n, qd] with row stride qs;
 * K/V cache rows [0, pos0 + n) of the layer; output att [n, qd]. */
static void attention(tp_model *m, const float *Q, int qs, const float *K, const float *V, int n, int pos0) {
    const tp_model_config *c = &m->c;
    int hd = c->head_dim, H = c->n_head, grp = c->n_head / c->n_kv_head, win = c->sliding_window;
    float scale = 1.0f / sqrtf((float)hd);
    if (n == 1 && H > 1 && H <= ATT_BLOCK && (size_t)H * (size_t)(pos0 + 1) * (size_t)hd >= 65536) {
        int kstart = win > 0 && pos0 - win + 1 > 0 ? pos0 - win + 1 : 0, nk = pos0 + 1 - kstart;
        head_ctx hc = {m, Q, K, V, m->S, m->att, nk, kstart, pos0, hd, grp, win, scale};
        double t0 = tp_now();
        tp_par_run(H, head_part, &hc);
        m->gemm_s += tp_now() - t0;
        m->gemm_flops += 4.0 * H * (double)nk * hd;
        return;
    }
    for (int h = 0; h < H; h++) {
        int kh = h / grp;
        for (int r0 = 0; r0 < n; r0 += ATT_BLOCK) {
            int r1 = r0 + ATT_BLOCK < n ? r0 + ATT_BLOCK : n, rb = r1 - r0;
            int kend = pos0 + r1, kstart = 0;
            if (win > 0 && pos0 + r0 - win + 1 > 0) kstart = pos0 + r0 - win + 1;
            int nk = kend - kstart;
            float *S = m->S;
            gemm(m, rb, nk, hd, scale, Q + (size_t)r0 * qs + (size_t)h * hd, qs,
                 K + (size_t)kstart * m->kvd + (size_t)kh * hd, m->kvd, 1, 0.0f, S, nk);
            softmax_ctx sc = {S, nk, rb, pos0 + r0, kstart, win};
            int nt = (size_t)rb * nk >= 65536 ? tp_par_threads() : 1;
            if (nt > 1) tp_par_run(nt, softmax_part, &sc);
            else softmax_part(&sc, 0, 1);
            gemm(m, rb, hd, nk, 1.0f, S, nk, V + (size_t)kstart * m->kvd + (size_t)kh * hd, m->kvd, 0, 0.0f,
                 m->att + (size_t)r0 * m->qd + (size_t)h * hd, m->qd);
        }
    }
}

/* The arguments of a forward pass (any device): tokens in range, positions within the cache. */
tp_status tp_model_check_args(const tp_model *m, const int32_t *ids, int n, int pos0, tp_err *e) {
    const tp_model_config *c = &m->c;
    if (n <= 0 || !ids) return tp_fail(e, TP_ERR_ARG, "forward: need at least one token");
    if (pos0 < 0 || pos0 > m->cached)
        return tp_fail(e, TP_ERR_ARG, "forward: pos0 %d but only %d positions are cached", pos0, m->cached);
    if (pos0 + n > m->cap)
        return tp_fail(e, TP_ERR_ARG, "forward: positions up to %d exceed the context capacity %d", pos0 + n, m->cap);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab)
            return tp_fail(e, TP_ERR_ARG, "forward: token id %d out of range [0, %d)", ids[i], c->vocab);
    return TP_OK;
}

/* Everything up to the final norm: m->h holds the normed hidden states of rows [0, n). The
 * arguments are checked and the activations sized for n rows by the caller (begin()). */
static tp_status trunk(tp_model *m, const int32_t *ids, int n, int pos0, tp_err *e) {
    const tp_model_config *c = &m->c;
    tp_status rc = TP_OK;
    int d = c->d_model, F = c->d_ff;
    size_t lay = (size_t)m->cap * m->kvd;
    m->cached = pos0; /* invalid positions beyond pos0 are overwritten below */

    /* embeddings */
    for (int i = 0; i < n; i++) {
        float *xi = m->x + (size_t)i * d;
        if (m->emb.packed) {
            if ((rc = tp_linear_row(m->emb.packed, ids[i], xi, e)) != TP_OK) return rc;
        } else if (m->emb.ovr || m->emb.f32) memcpy(xi, (m->emb.ovr ? m->emb.ovr : m->emb.f32) + (size_t)ids[i] * d, (size_t)d * 4);
        else if ((rc = tp_model_wfill(m, &m->emb, ids[i], 1, xi, e)) != TP_OK) return rc;
        if (c->arch == TP_ARCH_GPT2) {
            float *pe = m->h; /* scratch row */
            if (m->pos.packed) {
                if ((rc = tp_linear_row(m->pos.packed, pos0 + i, pe, e)) != TP_OK) return rc;
            } else if (m->pos.ovr || m->pos.f32) pe = (float *)(m->pos.ovr ? m->pos.ovr : m->pos.f32) + (size_t)(pos0 + i) * d;
            else if ((rc = tp_model_wfill(m, &m->pos, pos0 + i, 1, pe, e)) != TP_OK) return rc;
            for (int j = 0; j < d; j++) xi[j] += pe[j];
        }
    }
    if (m->mode == TP_WEIGHTS_F32) {
        /* keep embeddings as fp32 copies too (first call converts them) */
        if (!m->emb.packed && !m->emb.ovr && !m->emb.f32 && !tp_model_wget(m, &m->emb, &rc, e)) return rc;
        if (c->arch == TP_ARCH_GPT2 && !m->pos.packed && !m->pos.ovr && !m->pos.f32 && !tp_model_wget(m, &m->pos, &rc, e)) return rc;
    }

    for (int l = 0; l < c->n_layer; l++) {
        layer *L = &m->L[l];
        float *Kl = m->kc + l * lay, *Vl = m->vc + l * lay;
        if (c->arch == TP_ARCH_GPT2) {
            layernorm(m->x, m->h, n, d, L->n1w, L->n1b, c->norm_eps);
            if ((rc = linear(m, &L->qkv, m->h, n, m->q, 3 * d, 0, e)) != TP_OK) return rc;
            for (int i = 0; i < n; i++) {
                memcpy(Kl + (size_t)(pos0 + i) * m->kvd, m->q + (size_t)i * 3 * d + d, (size_t)d * 4);
                memcpy(Vl + (size_t)(pos0 + i) * m->kvd, m->q + (size_t)i * 3 * d + 2 * d, (size_t)d * 4);
            }
            attention(m, m->q, 3 * d, Kl, Vl, n, pos0);
            if ((rc = linear(m, &L->o, m->att, n, m->x, d, 1, e)) != TP_OK) return rc;
            layernorm(m->x, m->h, n, d, L->n2w, L->n2b, c->norm_eps);
            if ((rc = linear(m, &L->fc, m->h, n, m->ff1, F, 0, e)) != TP_OK) return rc;
            apply_act(m->ff1, NULL, (size_t)n * F, c->act);
            if ((rc = linear(m, &L->proj, m->ff1, n, m->x, d, 1, e)) != TP_OK) return rc;
        } else {
            rmsnorm(m->x, m->h, n, d, L->n1w, c->norm_eps);
            {
                wmat *const w[3] = {&L->q, &L->k, &L->v};
                float *const y[3] = {m->q, Kl + (size_t)pos0 * m->kvd, Vl + (size_t)pos0 * m->kvd};
                const int ld[3] = {m->qd, m->kvd, m->kvd};
                if ((rc = linear_multi(m, w, 3, m->h, n, y, ld, e)) != TP_OK) return rc;
            }
            rope(m, m->q, n, m->qd, c->n_head, pos0);
            rope(m, Kl + (size_t)pos0 * m->kvd, n, m->kvd, c->n_kv_head, pos0);
            attention(m, m->q, m->qd, Kl, Vl, n, pos0);
            if ((rc = linear(m, &L->o, m->att, n, m->x, d, 1, e)) != TP_OK) return rc;
            rmsnorm(m->x, m->h, n, d, L->n2w, c->norm_eps);
            {
                wmat *const w[2] = {&L->gate, &L->up};
                float *const y[2] = {m->ff1, m->ff2};
                const int ld[2] = {F, F};
                if ((rc = linear_multi(m, w, 2, m->h, n, y, ld, e)) != TP_OK) return rc;
            }
            apply_act(m->ff1, m->ff2, (size_t)n * F, c->act);
            if ((rc = linear(m, &L->down, m->ff1, n, m->x, d, 1, e)) != TP_OK) return rc;
        }
    }
    if (c->arch == TP_ARCH_GPT2) layernorm(m->x, m->h, n, d, m->nfw, m->nfb, c->norm_eps);
    else rmsnorm(m->x, m->h, n, d, m->nfw, c->norm_eps);
    m->cached = pos0 + n;
    return TP_OK;
}

/* logits[nr, vocab] of hidden rows Hs[nr, d], in blocks of head_blk vocabulary rows in every weight
 * mode: one sgemm per block, of the same shape and alignment whether the block is read from an fp32
 * copy or converted into wscratch just before (PER_LAYER). A BLAS splits and tails a product by its
 * shape, and a tail may sum in another order (OpenBLAS's Core2 and Prescott kernels do), so
 * different blockings would give different bits per mode on some CPUs. */
static tp_status head(tp_model *m, const float *Hs, int nr, float *logits, tp_err *e) {
    int d = m->c.d_model, V = m->c.vocab, blk = m->head_blk;
    wmat *w = m->headp;
    if (w->packed) return packed_mul(m, w->packed, Hs, nr, logits, V, 0, e); /* [V, d]: the family's GEMM, whole */
    const uint16_t *H = f16_direct(m, w, nr);
    if (H) {
        hgemv(m, H, V, d, Hs, 0.0f, logits);
        return TP_OK;
    }
    const float *W = w->ovr ? w->ovr : w->f32;
    if (!W && m->mode == TP_WEIGHTS_F32) {
        tp_status rc = TP_OK;
        if (!(W = tp_model_wget(m, w, &rc, e))) return rc;
    }
    for (int v0 = 0; v0 < V; v0 += blk) {
        int nv = V - v0 < blk ? V - v0 : blk;
        const float *B = W ? W + (size_t)v0 * d : m->wscratch;
        if (!W) {
            tp_status rc = tp_model_wfill(m, w, v0, nv, m->wscratch, e);
            if (rc != TP_OK) return rc;
        }
        gemm(m, nr, nv, d, 1.0f, Hs, d, B, d, 1, 0.0f, logits + v0, V);
    }
    return TP_OK;
}

/* Chunked prefill (model.h): a pass of n rows runs the trunk over nch chunks of at most
 * prefill_chunk rows, chunk i being rows [chunk_at(n, nch, i), chunk_at(n, nch, i + 1)) at their
 * positions, each attending to the KV cache the chunks before it filled: what incremental decoding
 * does one row at a time. The activations (ensure_rows) then never hold more than a chunk: at
 * TinyLlama's shapes 60 KB a row, 30 MB for 512 rows, 5% of its int4 model. The chunks of a pass
 * differ by at most one row (no short tail, which the INT4 GEMM would take on its small-batch
 * kernels). Each chunk re-reads every weight (an fp32 copy from memory, a packed one dequantised
 * and packed by the sgemm again), so chunks stay large enough for that to stay small next to the
 * products. An activation sink sees a whole input per call (calibration statistics), so a pass
 * with one is never chunked. */
static int chunks(const tp_model *m, int n) {
    int ck = m->prefill_chunk;
    if (ck <= 0 || n <= ck || m->act_sink) return 1;
    return (int)(((int64_t)n + ck - 1) / ck);
}
static int chunk_at(int n, int nch, int i) { return (int)((int64_t)n * i / nch); }

/* The checks of any CPU pass, then activations for its largest chunk (ceil(n / nch) rows). */
static tp_status begin(tp_model *m, const int32_t *ids, int n, int pos0, int nch, tp_err *e) {
    tp_status rc = tp_model_check_args(m, ids, n, pos0, e);
    if (rc != TP_OK) return rc;
    return ensure_rows(m, (int)(((int64_t)n + nch - 1) / nch), e);
}

tp_status tp_model_forward(tp_model *m, const int32_t *ids, int n, int pos0, int row0, float *logits, tp_err *e) {
    if (row0 < 0 || row0 > n) return tp_fail(e, TP_ERR_ARG, "forward: row0 %d outside [0, %d]", row0, n);
    if (m->device != TP_DEVICE_CPU) return tp_model_device_forward(m, ids, n, pos0, row0, logits, e);
    int nch = chunks(m, n), d = m->c.d_model;
    tp_status rc = begin(m, ids, n, pos0, nch, e);
    if (rc != TP_OK) return rc;
    for (int i = 0; rc == TP_OK && i < nch; i++) {
        int c0 = chunk_at(n, nch, i), c1 = chunk_at(n, nch, i + 1), a = row0 > c0 ? row0 : c0;
        rc = trunk(m, ids + c0, c1 - c0, pos0 + c0, e);
        if (rc == TP_OK && logits && a < c1)
            rc = head(m, m->h + (size_t)(a - c0) * d, c1 - a, logits + (size_t)(a - row0) * m->c.vocab, e);
    }
    if (rc != TP_OK) m->cached = pos0; /* a failed pass, chunked or not: the cache is valid up to pos0 */
    return rc;
}

/* nll[i] = logsumexp(row i) - row_i[target i] */
typedef struct nll_ctx { const float *L; int V, rows; const int32_t *tg; double *nll; } nll_ctx;
static void nll_part(void *vc, int t, int nt) {
    nll_ctx *c = vc;
    for (int i = c->rows * t / nt; i < c->rows * (t + 1) / nt; i++) {
        const float *l = c->L + (size_t)i * c->V;
        float mx = tp_vmax(l, (size_t)c->V);
        c->nll[i] = log(tp_vsumexp(l, (size_t)c->V, mx)) + (double)mx - (double)l[c->tg[i]];
    }
}

tp_status tp_model_forward_nll(tp_model *m, const int32_t *ids, int n, int pos0, int row0, int row1,
                               const int32_t *targets, double *nll, tp_err *e) {
    if (row0 < 0 || row1 > n || row0 > row1)
        return tp_fail(e, TP_ERR_ARG, "forward: rows [%d, %d) outside [0, %d]", row0, row1, n);
    int V = m->c.vocab;
    for (int i = row0; i < row1; i++)
        if (targets[i - row0] < 0 || targets[i - row0] >= V)
            return tp_fail(e, TP_ERR_ARG, "forward: target id %d out of range [0, %d)", targets[i - row0], V);
    if (m->device != TP_DEVICE_CPU) return tp_model_device_forward_nll(m, ids, n, pos0, row0, row1, targets, nll, e);
    int nch = chunks(m, n);
    tp_status rc = begin(m, ids, n, pos0, nch, e);
    if (rc != TP_OK) return rc;
    int blk = (int)((HEAD_BLOCK_FLOATS) / (size_t)V);
    if (blk < 16) blk = 16;
    if (blk > 512) blk = 512;
    if (!m->lbuf) {
        m->lbuf = tp_alloc((size_t)blk * V * sizeof(float));
        if (!m->lbuf) return tp_fail(e, TP_ERR_NOMEM, "out of memory for a logits block");
        m->lbuf_rows = blk;
    }
    blk = m->lbuf_rows;
    /* as tp_model_forward: each chunk's scored rows [a, b), in logits blocks of blk rows */
    for (int i = 0; rc == TP_OK && i < nch; i++) {
        int c0 = chunk_at(n, nch, i), c1 = chunk_at(n, nch, i + 1);
        int a = row0 > c0 ? row0 : c0, b = row1 < c1 ? row1 : c1;
        rc = trunk(m, ids + c0, c1 - c0, pos0 + c0, e);
        for (int r0 = a; rc == TP_OK && r0 < b; r0 += blk) {
            int nr = b - r0 < blk ? b - r0 : blk;
            if ((rc = head(m, m->h + (size_t)(r0 - c0) * m->c.d_model, nr, m->lbuf, e)) != TP_OK) break;
            nll_ctx nc = {m->lbuf, V, nr, targets + (r0 - row0), nll + (r0 - row0)};
            tp_par_run(tp_par_threads(), nll_part, &nc);
        }
    }
    if (rc != TP_OK) m->cached = pos0;
    return rc;
}
