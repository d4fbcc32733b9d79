/* fp32 CPU forward pass: see model.h for the contract and the memory modes. */
#include "pipeline/model.h"
#include "tenpak/matvec.h"

#include "pipeline/gguf_model.h"
#include "pipeline/linear.h"
#include "pipeline/vecmath.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One weight matrix as the forward pass uses it. rows x cols is the file layout seen as 2-D. */
typedef struct wmat {
    const tp_st_tensor *t;
    int64_t rows, cols;
    int linear_layout; /* 1: [out, in] (nn.Linear, embeddings), 0: [in, out] (GPT-2 Conv1D) */
    float *f32;        /* cached fp32 copy (F32 mode), owned; NULL until first use */
    const float *ovr;  /* caller-owned override */
    float *bias;       /* owned, [out], or NULL */
    tp_linear *packed; /* owned: the weight in its codec's format (tp_model_set_packed), or NULL */
} wmat;

typedef struct layer {
    float *n1w, *n1b, *n2w, *n2b; /* norms (b NULL for RMSNorm) */
    wmat qkv;                     /* GPT-2 fused c_attn */
    wmat q, k, v, o;              /* Llama family (o also GPT-2's attn.c_proj) */
    wmat fc, proj;                /* GPT-2 mlp.c_fc / mlp.c_proj */
    wmat gate, up, down;          /* Llama family */
} layer;

struct tp_model {
    tp_model_config c;
    tp_st_set *st;
    tp_weight_mode mode;
    int cap, kvd, qd; /* KV capacity; kv width KVH*hd; query width H*hd */
    wmat emb, pos, head;
    wmat *headp; /* &emb when tied, else &head */
    int tied;
    float *nfw, *nfb;
    layer *L;
    wmat **all;
    size_t nall;
    float *kc, *vc; /* [n_layer][cap][kvd] */
    int cached;
    float *rope_cos, *rope_sin; /* [cap][hd/2] */
    /* activations, sized for `rows` rows */
    int rows;
    float *x, *h, *q, *att, *ff1, *ff2, *S;
    float *wscratch; /* PER_LAYER conversion target */
    size_t wscratch_n;
    int head_blk; /* lm_head rows per sgemm call, the same in every weight mode (see head()) */
    float *lbuf; /* logits block for the NLL path */
    int lbuf_rows;
    tp_weight_hook hook;
    void *hook_user;
    tp_act_sink act_sink; /* calibration: sees every linear layer's input; NULL = no-op */
    void *act_user;
    double gemm_s, gemm_flops;
    struct kept { void *p; void (*fn)(void *); } *kept; /* tp_model_adopt */
    int nkept;
    int npacked;
    tp_device device; /* where tp_model_forward_nll runs (see the device section at the end) */
    void *cuda;       /* tp_cuda_model *, NULL until --device cuda */
    int cuda_stale;   /* weights changed since they were uploaded */
};
static void device_release(tp_model *m);

#define ATT_BLOCK 256
#define HEAD_BLOCK_FLOATS (8u << 20) /* lm_head multiplied in blocks of at most this many floats */

const tp_model_config *tp_model_cfg(const tp_model *m) { return &m->c; }
const tp_st_set *tp_model_files(const tp_model *m) { return m->st; }
tp_weight_mode tp_model_weight_mode(const tp_model *m) { return m->mode; }
int tp_model_capacity(const tp_model *m) { return m->cap; }
int tp_model_cached(const tp_model *m) { return m->cached; }
void tp_model_reset(tp_model *m) { m->cached = 0; }
size_t tp_model_num_weights(const tp_model *m) { return m->nall; }
const tp_st_tensor *tp_model_weight(const tp_model *m, size_t i) { return i < m->nall ? m->all[i]->t : NULL; }
void tp_model_gemm_stats(const tp_model *m, double *s, double *f) { *s = m->gemm_s; *f = m->gemm_flops; }
void tp_model_gemm_stats_reset(tp_model *m) { m->gemm_s = m->gemm_flops = 0; }

static void drop_caches(tp_model *m) {
    m->cuda_stale = 1;
    for (size_t i = 0; i < m->nall; i++) { tp_free(m->all[i]->f32); m->all[i]->f32 = NULL; }
}

void tp_model_set_act_sink(tp_model *m, tp_act_sink fn, void *user) {
    m->act_sink = fn;
    m->act_user = user;
}

void tp_model_set_weight_hook(tp_model *m, tp_weight_hook fn, void *user) {
    m->hook = fn;
    m->hook_user = user;
    drop_caches(m);
}

/* the weight matrix named name (tp_model_weight's names), NULL if none */
static wmat *find_w(const tp_model *m, const char *name) {
    for (size_t i = 0; i < m->nall; i++)
        if (!strcmp(m->all[i]->t->name, name)) return m->all[i];
    return NULL;
}

tp_status tp_model_override_weight(tp_model *m, const char *name, const float *data, tp_err *e) {
    const wmat *w = find_w(m, name);
    if (!w) return tp_fail(e, TP_ERR_ARG, "override: '%s' is not a weight matrix of this model", name);
    /* a tied head shares emb's tensor: both entries see the override */
    for (size_t j = 0; j < m->nall; j++)
        if (m->all[j]->t == w->t) { tp_free(m->all[j]->f32); m->all[j]->f32 = NULL; m->all[j]->ovr = data; }
    m->cuda_stale = 1; /* the device copy (--device cuda) must be uploaded again */
    return TP_OK;
}

static void free_w(wmat *w) { tp_free(w->f32); tp_free(w->bias); tp_linear_free(w->packed); }

tp_status tp_model_set_packed(tp_model *m, const char *name, tp_linear *l, tp_err *e) {
    wmat *w = find_w(m, name);
    if (!w) return tp_fail(e, TP_ERR_ARG, "packed: '%s' is not a weight matrix of this model", name);
    /* the packed matrix is [out, in]: the file's shape, or its transpose for a Conv1D */
    int64_t out = w->linear_layout ? w->rows : w->cols, in = w->linear_layout ? w->cols : w->rows;
    if (tp_linear_rows(l) != out || tp_linear_cols(l) != in)
        return tp_fail(e, TP_ERR_FORMAT, "packed '%s' is %lldx%lld, the model multiplies by %lldx%lld ([out, in])", name,
                       (long long)tp_linear_rows(l), (long long)tp_linear_cols(l), (long long)out, (long long)in);
    if (w->packed) m->npacked--;
    tp_linear_free(w->packed);
    w->packed = l;
    m->npacked++;
    tp_free(w->f32);
    w->f32 = NULL;
    m->cuda_stale = 1;
    return TP_OK;
}

tp_linear *tp_model_packed(const tp_model *m, const char *name) {
    const wmat *w = find_w(m, name);
    return w ? w->packed : NULL;
}

tp_status tp_model_adopt(tp_model *m, void *p, void (*fn)(void *), tp_err *e) {
    struct kept *k = realloc(m->kept, (size_t)(m->nkept + 1) * sizeof *k);
    if (!k) { fn(p); return tp_fail(e, TP_ERR_NOMEM, "out of memory"); }
    m->kept = k;
    m->kept[m->nkept].p = p;
    m->kept[m->nkept++].fn = fn;
    return TP_OK;
}

void tp_model_free(tp_model *m) {
    if (!m) return;
    if (m->L)
        for (int l = 0; l < m->c.n_layer; l++) {
            layer *L = &m->L[l];
            tp_free(L->n1w); tp_free(L->n1b); tp_free(L->n2w); tp_free(L->n2b);
            wmat *ws[] = {&L->qkv, &L->q, &L->k, &L->v, &L->o, &L->fc, &L->proj, &L->gate, &L->up, &L->down};
            for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) free_w(ws[i]);
        }
    free_w(&m->emb);
    free_w(&m->pos);
    if (!m->tied) free_w(&m->head);
    tp_free(m->nfw); tp_free(m->nfb);
    free(m->L); free(m->all);
    tp_free(m->kc); tp_free(m->vc); tp_free(m->rope_cos); tp_free(m->rope_sin);
    tp_free(m->x); tp_free(m->h); tp_free(m->q); tp_free(m->att); tp_free(m->ff1); tp_free(m->ff2); tp_free(m->S);
    tp_free(m->wscratch); tp_free(m->lbuf);
    device_release(m);
    /* what the weights point into (an artifact's map, decoded buffers) goes last, latest first */
    for (int i = m->nkept - 1; i >= 0; i--) m->kept[i].fn(m->kept[i].p);
    free(m->kept);
    tp_st_close(m->st);
    free(m);
}

/* ---- loading ---- */

typedef struct loader { tp_model *m; const char *dir; tp_err *e; tp_status rc; uint8_t *used; } loader;

static const tp_st_tensor *need(loader *ld, const char *name, int64_t d0, int64_t d1, int optional) {
    if (ld->rc != TP_OK) return NULL;
    const tp_st_tensor *t = tp_st_find(ld->m->st, name);
    if (!t) {
        if (!optional) ld->rc = tp_fail(ld->e, TP_ERR_FORMAT, "%s: tensor '%s' missing from the safetensors", ld->dir, name);
        return NULL;
    }
    ld->used[t - tp_st_at(ld->m->st, 0)] = 1;
    int ok = tp_st_is_float(t->dtype) && (d1 ? (t->ndim == 2 && t->shape[0] == d0 && t->shape[1] == d1)
                                              : (t->ndim == 1 && t->shape[0] == d0));
    if (!ok) {
        char got[96] = "", want[48];
        for (int i = 0; i < t->ndim && i < 4; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? "x" : "", (long long)t->shape[i]);
        if (d1) snprintf(want, sizeof want, "%lldx%lld", (long long)d0, (long long)d1);
        else snprintf(want, sizeof want, "%lld", (long long)d0);
        ld->rc = tp_fail(ld->e, TP_ERR_FORMAT, "%s: tensor '%s' is %s [%s], expected a float tensor [%s]", ld->dir,
                         name, tp_st_dtype_name(t->dtype), got, want);
        return NULL;
    }
    return t;
}

static float *load_vec(loader *ld, const char *name, int64_t n, int optional) {
    const tp_st_tensor *t = need(ld, name, n, 0, optional);
    if (!t) return NULL;
    float *v = tp_alloc((size_t)n * sizeof *v);
    if (!v) { ld->rc = tp_fail(ld->e, TP_ERR_NOMEM, "%s: out of memory", ld->dir); return NULL; }
    tp_st_to_f32(t, v);
    return v;
}

/* A matrix named name with file shape d0 x d1; linear_layout says whether it is [out, in]. */
static void load_mat(loader *ld, wmat *w, const char *name, int64_t d0, int64_t d1, int linear_layout,
                     const char *bias_name, int64_t nbias, int bias_optional) {
    memset(w, 0, sizeof *w);
    w->t = need(ld, name, d0, d1, 0);
    if (!w->t) return;
    w->rows = d0;
    w->cols = d1;
    w->linear_layout = linear_layout;
    if (bias_name) w->bias = load_vec(ld, bias_name, nbias, bias_optional);
    tp_model *m = ld->m;
    m->all[m->nall++] = w;
}

/* Every tensor of the checkpoint is used or known: one the forward pass does not read (a layer
 * the config does not count, q_norm of another architecture, anything else) would be ignored and
 * the results silently wrong, so it is refused, listed. Known: buffers transformers recomputes and
 * ignores too (attention masks, RoPE inverse frequencies) and a stored lm_head that tying replaces. */
static tp_status check_unused(loader *ld) {
    static const char *const known[] = {".attn.bias", ".attn.masked_bias", ".rotary_emb.inv_freq", NULL};
    const tp_st_set *set = ld->m->st;
    size_t n = tp_st_count(set), bad = 0;
    char list[400] = "";
    for (size_t i = 0; i < n; i++) {
        if (ld->used[i]) continue;
        const char *name = tp_st_at(set, i)->name;
        size_t nl = strlen(name);
        int ok = ld->m->tied && (!strcmp(name, "lm_head.weight") || !strcmp(name, "transformer.lm_head.weight"));
        for (int k = 0; !ok && known[k]; k++) {
            size_t kl = strlen(known[k]);
            ok = nl > kl && !strcmp(name + nl - kl, known[k]);
        }
        if (ok) continue;
        if (bad++ < 4) snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", bad > 1 ? ", " : "", name);
    }
    if (!bad) return TP_OK;
    return tp_fail(ld->e, TP_ERR_FORMAT, "%s: %zu tensor%s in the safetensors that the %s config.json does not use: %s%s "
                   "(another architecture, or a config that does not match the checkpoint)", ld->dir, bad,
                   bad > 1 ? "s" : "", ld->m->c.model_type, list, bad > 4 ? ", ..." : "");
}

static void rope_tables(tp_model *m) {
    const tp_model_config *c = &m->c;
    int half = c->head_dim / 2;
    for (int i = 0; i < half; i++) {
        /* float32 arithmetic as transformers does it, so angles round the same way */
        float inv = 1.0f / powf((float)c->rope_theta, (float)(2 * i) / (float)c->head_dim);
        if (c->rope_type == TP_ROPE_LINEAR) {
            inv = inv / (float)c->rope_factor;
        } else if (c->rope_type == TP_ROPE_LLAMA3) {
            double low_wl = c->rope_orig_ctx / c->rope_low_freq_factor;
            double high_wl = c->rope_orig_ctx / c->rope_high_freq_factor;
            double wl = 2 * M_PI / inv;
            if (wl > low_wl) inv = (float)(inv / c->rope_factor);
            else if (wl >= high_wl) {
                double sm = (c->rope_orig_ctx / wl - c->rope_low_freq_factor) /
                            (c->rope_high_freq_factor - c->rope_low_freq_factor);
                inv = (float)((1 - sm) * inv / c->rope_factor + sm * inv);
            }
        }
        for (int p = 0; p < m->cap; p++) {
            float a = (float)p * inv;
            m->rope_cos[(size_t)p * half + i] = cosf(a);
            m->rope_sin[(size_t)p * half + i] = sinf(a);
        }
    }
}

tp_status tp_model_load(const char *dir, const tp_model_opts *opts, tp_model **out, tp_err *e) {
    *out = NULL;
    tp_model_opts o = {0};
    if (opts) o = *opts;
    tp_model *m = calloc(1, sizeof *m);
    if (!m) return tp_fail(e, TP_ERR_NOMEM, "out of memory");
    int gguf = tp_gguf_is_model_path(dir); /* --model FILE.gguf: config and tensors from it (gguf_model.h) */
    char *cpath = malloc(strlen(dir) + 16);
    if (!cpath) { free(m); return tp_fail(e, TP_ERR_NOMEM, "out of memory"); }
    sprintf(cpath, "%s/config.json", dir);
    tp_status rc = gguf ? tp_gguf_model_open(dir, &m->c, &m->st, e) : tp_config_load(cpath, &m->c, e);
    free(cpath);
    if (rc != TP_OK) { free(m); return rc; }
    if (!gguf) rc = tp_model_files_open(dir, &m->st, e);
    if (rc != TP_OK) { free(m); return rc; }
    const tp_model_config *c = &m->c;
    m->cap = o.max_ctx > 0 ? o.max_ctx : c->n_ctx;
    if (c->arch == TP_ARCH_GPT2 && m->cap > c->n_ctx) m->cap = c->n_ctx; /* learned positions end there */
    m->kvd = c->n_kv_head * c->head_dim;
    m->qd = c->n_head * c->head_dim;
    m->L = calloc((size_t)c->n_layer, sizeof *m->L);
    m->all = calloc((size_t)c->n_layer * 10 + 3, sizeof *m->all);
    if (!m->L || !m->all) { tp_model_free(m); return tp_fail(e, TP_ERR_NOMEM, "out of memory"); }
    loader ld = {m, dir, e, TP_OK, calloc(tp_st_count(m->st) + 1, 1)};
    if (!ld.used) { tp_model_free(m); return tp_fail(e, TP_ERR_NOMEM, "out of memory"); }
    char n1[256], n2[256];
    int64_t d = c->d_model, V = c->vocab, F = c->d_ff;
    if (c->arch == TP_ARCH_GPT2) {
        /* openai-community/gpt2 names tensors without the "transformer." prefix */
        const char *pre = tp_st_find(m->st, "transformer.wte.weight") ? "transformer." : "";
#define NM(buf, ...) (snprintf(buf, sizeof buf, __VA_ARGS__), buf)
        load_mat(&ld, &m->emb, NM(n1, "%swte.weight", pre), V, d, 1, NULL, 0, 0);
        load_mat(&ld, &m->pos, NM(n1, "%swpe.weight", pre), c->n_ctx, d, 1, NULL, 0, 0);
        for (int l = 0; l < c->n_layer && ld.rc == TP_OK; l++) {
            layer *L = &m->L[l];
            L->n1w = load_vec(&ld, NM(n1, "%sh.%d.ln_1.weight", pre, l), d, 0);
            L->n1b = load_vec(&ld, NM(n1, "%sh.%d.ln_1.bias", pre, l), d, 0);
            load_mat(&ld, &L->qkv, NM(n1, "%sh.%d.attn.c_attn.weight", pre, l), d, 3 * d, 0,
                     NM(n2, "%sh.%d.attn.c_attn.bias", pre, l), 3 * d, 0);
            load_mat(&ld, &L->o, NM(n1, "%sh.%d.attn.c_proj.weight", pre, l), d, d, 0,
                     NM(n2, "%sh.%d.attn.c_proj.bias", pre, l), d, 0);
            L->n2w = load_vec(&ld, NM(n1, "%sh.%d.ln_2.weight", pre, l), d, 0);
            L->n2b = load_vec(&ld, NM(n1, "%sh.%d.ln_2.bias", pre, l), d, 0);
            load_mat(&ld, &L->fc, NM(n1, "%sh.%d.mlp.c_fc.weight", pre, l), d, F, 0,
                     NM(n2, "%sh.%d.mlp.c_fc.bias", pre, l), F, 0);
            load_mat(&ld, &L->proj, NM(n1, "%sh.%d.mlp.c_proj.weight", pre, l), F, d, 0,
                     NM(n2, "%sh.%d.mlp.c_proj.bias", pre, l), d, 0);
        }
        m->nfw = load_vec(&ld, NM(n1, "%sln_f.weight", pre), d, 0);
        m->nfb = load_vec(&ld, NM(n1, "%sln_f.bias", pre), d, 0);
        m->tied = 1; /* GPT2LMHeadModel's lm_head is wte */
    } else {
        int64_t qd = m->qd, kvd = m->kvd;
        load_mat(&ld, &m->emb, "model.embed_tokens.weight", V, d, 1, NULL, 0, 0);
        for (int l = 0; l < c->n_layer && ld.rc == TP_OK; l++) {
            layer *L = &m->L[l];
            const char *p = "model.layers";
            L->n1w = load_vec(&ld, NM(n1, "%s.%d.input_layernorm.weight", p, l), d, 0);
            load_mat(&ld, &L->q, NM(n1, "%s.%d.self_attn.q_proj.weight", p, l), qd, d, 1,
                     NM(n2, "%s.%d.self_attn.q_proj.bias", p, l), qd, 1);
            load_mat(&ld, &L->k, NM(n1, "%s.%d.self_attn.k_proj.weight", p, l), kvd, d, 1,
                     NM(n2, "%s.%d.self_attn.k_proj.bias", p, l), kvd, 1);
            load_mat(&ld, &L->v, NM(n1, "%s.%d.self_attn.v_proj.weight", p, l), kvd, d, 1,
                     NM(n2, "%s.%d.self_attn.v_proj.bias", p, l), kvd, 1);
            load_mat(&ld, &L->o, NM(n1, "%s.%d.self_attn.o_proj.weight", p, l), d, qd, 1,
                     NM(n2, "%s.%d.self_attn.o_proj.bias", p, l), d, 1);
            L->n2w = load_vec(&ld, NM(n1, "%s.%d.post_attention_layernorm.weight", p, l), d, 0);
            load_mat(&ld, &L->gate, NM(n1, "%s.%d.mlp.gate_proj.weight", p, l), F, d, 1,
                     NM(n2, "%s.%d.mlp.gate_proj.bias", p, l), F, 1);
            load_mat(&ld, &L->up, NM(n1, "%s.%d.mlp.up_proj.weight", p, l), F, d, 1,
                     NM(n2, "%s.%d.mlp.up_proj.bias", p, l), F, 1);
            load_mat(&ld, &L->down, NM(n1, "%s.%d.mlp.down_proj.weight", p, l), d, F, 1,
                     NM(n2, "%s.%d.mlp.down_proj.bias", p, l), d, 1);
        }
        m->nfw = load_vec(&ld, "model.norm.weight", d, 0);
        m->tied = c->tie_embeddings || !tp_st_find(m->st, "lm_head.weight");
        if (!c->tie_embeddings && m->tied && ld.rc == TP_OK)
            ld.rc = tp_fail(e, TP_ERR_FORMAT, "%s: tie_word_embeddings is false but 'lm_head.weight' is missing", dir);
        if (!m->tied) load_mat(&ld, &m->head, "lm_head.weight", V, d, 1, NULL, 0, 0);
#undef NM
    }
    if (ld.rc == TP_OK) ld.rc = check_unused(&ld);
    free(ld.used);
    if (ld.rc != TP_OK) { tp_model_free(m); return ld.rc; }
    m->headp = m->tied ? &m->emb : &m->head;

    /* memory mode, scratch for the largest matrix (lm_head goes in blocks) */
    size_t f32_total = 0, biggest = 0;
    for (size_t i = 0; i < m->nall; i++) {
        size_t n = (size_t)m->all[i]->t->numel;
        f32_total += n * 4;
        if (m->all[i] != &m->emb && m->all[i] != &m->head && m->all[i] != &m->pos && n > biggest) biggest = n;
    }
    m->mode = o.weights;
    if (m->mode == TP_WEIGHTS_AUTO) m->mode = f32_total <= ((size_t)1 << 30) ? TP_WEIGHTS_F32 : TP_WEIGHTS_PER_LAYER;
    /* a multiple of 64 rows, so every block of an fp32 copy starts 64-byte aligned like wscratch */
    m->head_blk = (int)((HEAD_BLOCK_FLOATS / (size_t)d) & ~(size_t)63);
    if (m->head_blk < 64) m->head_blk = 64;
    if (m->mode != TP_WEIGHTS_F32) {
        size_t hb = (size_t)m->head_blk * (size_t)d;
        m->wscratch_n = biggest > hb ? biggest : hb;
        m->wscratch = tp_alloc(m->wscratch_n * sizeof(float));
    }
    size_t kvn = (size_t)c->n_layer * (size_t)m->cap * (size_t)m->kvd;
    m->kc = tp_alloc(kvn * sizeof(float));
    m->vc = tp_alloc(kvn * sizeof(float));
    if (c->arch == TP_ARCH_LLAMA) {
        m->rope_cos = tp_alloc((size_t)m->cap * (size_t)(c->head_dim / 2) * sizeof(float));
        m->rope_sin = tp_alloc((size_t)m->cap * (size_t)(c->head_dim / 2) * sizeof(float));
        if (m->rope_cos && m->rope_sin) rope_tables(m);
    }
    if (!m->kc || !m->vc || (m->mode != TP_WEIGHTS_F32 && !m->wscratch) ||
        (c->arch == TP_ARCH_LLAMA && (!m->rope_cos || !m->rope_sin))) {
        tp_model_free(m);
        return tp_fail(e, TP_ERR_NOMEM, "%s: out of memory for the KV cache (%zu MB)", dir, kvn * 8 >> 20);
    }
    /* a GGUF's quantised matrices: packed views into its map (gguf_model.h) */
    if (gguf && (rc = tp_gguf_model_attach(m, e)) != TP_OK) { tp_model_free(m); return rc; }
    *out = m;
    return TP_OK;
}

/* ---- weights as fp32 ---- */

static tp_status wfill(tp_model *m, const wmat *w, int64_t r0, int64_t nr, float *dst, tp_err *e) {
    if (w->ovr) {
        memcpy(dst, w->ovr + r0 * w->cols, (size_t)(nr * w->cols) * sizeof *dst);
        return TP_OK;
    }
    if (m->hook) {
        int r = m->hook(m->hook_user, w->t->name, w->t, r0, nr, dst);
        if (r < 0) return tp_fail(e, TP_ERR_INTERNAL, "weight hook failed for '%s'", w->t->name);
        if (r > 0) return TP_OK;
    }
    tp_st_rows_to_f32(w->t, r0, nr, dst);
    return TP_OK;
}

/* The whole matrix in fp32: override, cached copy, or converted now (cached in F32 mode, into
 * the shared scratch in PER_LAYER mode, valid until the next wget). */
static const float *wget(tp_model *m, wmat *w, tp_status *rc, tp_err *e) {
    if (w->ovr) return w->ovr;
    if (w->f32) return w->f32;
    float *dst;
    if (m->mode == TP_WEIGHTS_F32) {
        dst = w->f32 = tp_alloc((size_t)w->t->numel * sizeof(float));
        if (!dst) { *rc = tp_fail(e, TP_ERR_NOMEM, "out of memory converting '%s'", w->t->name); return NULL; }
    } else {
        dst = m->wscratch;
    }
    *rc = wfill(m, w, 0, w->rows, dst, e);
    if (*rc != TP_OK) { if (w->f32) { tp_free(w->f32); w->f32 = NULL; } return NULL; }
    return dst;
}

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
    } else cblas_sgemm(CblasRowMajor, CblasNoTrans, transB ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb,
                     beta, C, ldc);
    m->gemm_s += tp_now() - t0;
    m->gemm_flops += 2.0 * M * N * K;
}

/* Y[n, out] (row stride ldy) = X[n, in] W (+ bias), or += when accumulate. */
static tp_status linear(tp_model *m, wmat *w, const float *X, int n, float *Y, int ldy, int accumulate, tp_err *e) {
    tp_status rc = TP_OK;
    const uint16_t *H = f16_direct(m, w, n);
    const float *W = w->packed || H ? NULL : wget(m, w, &rc, e);
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

static tp_status ensure_rows(tp_model *m, int n, tp_err *e) {
    if (n <= m->rows) return TP_OK;
    const tp_model_config *c = &m->c;
    size_t d = (size_t)c->d_model, q = c->arch == TP_ARCH_GPT2 ? 3 * d : (size_t)m->qd, F = (size_t)c->d_ff;
    tp_free(m->x); tp_free(m->h); tp_free(m->q); tp_free(m->att); tp_free(m->ff1); tp_free(m->ff2); tp_free(m->S);
    m->x = tp_alloc((size_t)n * d * 4);
    m->h = tp_alloc((size_t)n * d * 4);
    m->q = tp_alloc((size_t)n * q * 4);
    m->att = tp_alloc((size_t)n * (size_t)m->qd * 4);
    m->ff1 = tp_alloc((size_t)n * F * 4);
    m->ff2 = tp_alloc((size_t)n * F * 4);
    m->S = tp_alloc((size_t)ATT_BLOCK * (size_t)m->cap * 4);
    if (!m->x || !m->h || !m->q || !m->att || !m->ff1 || !m->ff2 || !m->S) {
        m->rows = 0;
        return tp_fail(e, TP_ERR_NOMEM, "out of memory for activations of %d rows", n);
    }
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

/* Causal attention of rows [0, n) (positions pos0..) of one layer. Q: [n, qd] with row stride qs;
 * K/V cache rows [0, pos0 + n) of the layer; output att [n, qd]. */
static void attention(tp_model *m, const float *Q, int qs, const float *K, const float *V, int n, int pos0) {
    const tp_model_config *c = &m->c;
    int hd = c->head_dim, H = c->n_head, grp = c->n_head / c->n_kv_head, win = c->sliding_window;
    float scale = 1.0f / sqrtf((float)hd);
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
static tp_status check_forward_args(const tp_model *m, const int32_t *ids, int n, int pos0, tp_err *e) {
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

/* Everything up to the final norm: m->h holds the normed hidden states of rows [0, n). */
static tp_status trunk(tp_model *m, const int32_t *ids, int n, int pos0, tp_err *e) {
    const tp_model_config *c = &m->c;
    tp_status rc = check_forward_args(m, ids, n, pos0, e);
    if (rc != TP_OK) return rc;
    rc = ensure_rows(m, n, e);
    if (rc != TP_OK) return rc;
    int d = c->d_model, F = c->d_ff;
    size_t lay = (size_t)m->cap * m->kvd;
    m->cached = pos0; /* invalid positions beyond pos0 are overwritten below */

    /* embeddings */
    for (int i = 0; i < n; i++) {
        float *xi = m->x + (size_t)i * d;
        if (m->emb.packed) {
            if ((rc = tp_linear_row(m->emb.packed, ids[i], xi, e)) != TP_OK) return rc;
        } else if (m->emb.ovr || m->emb.f32) memcpy(xi, (m->emb.ovr ? m->emb.ovr : m->emb.f32) + (size_t)ids[i] * d, (size_t)d * 4);
        else if ((rc = wfill(m, &m->emb, ids[i], 1, xi, e)) != TP_OK) return rc;
        if (c->arch == TP_ARCH_GPT2) {
            float *pe = m->h; /* scratch row */
            if (m->pos.packed) {
                if ((rc = tp_linear_row(m->pos.packed, pos0 + i, pe, e)) != TP_OK) return rc;
            } else if (m->pos.ovr || m->pos.f32) pe = (float *)(m->pos.ovr ? m->pos.ovr : m->pos.f32) + (size_t)(pos0 + i) * d;
            else if ((rc = wfill(m, &m->pos, pos0 + i, 1, pe, e)) != TP_OK) return rc;
            for (int j = 0; j < d; j++) xi[j] += pe[j];
        }
    }
    if (m->mode == TP_WEIGHTS_F32) {
        /* keep embeddings as fp32 copies too (first call converts them) */
        if (!m->emb.packed && !m->emb.ovr && !m->emb.f32 && !wget(m, &m->emb, &rc, e)) return rc;
        if (c->arch == TP_ARCH_GPT2 && !m->pos.packed && !m->pos.ovr && !m->pos.f32 && !wget(m, &m->pos, &rc, e)) return rc;
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
        if (!(W = wget(m, w, &rc, e))) return rc;
    }
    for (int v0 = 0; v0 < V; v0 += blk) {
        int nv = V - v0 < blk ? V - v0 : blk;
        const float *B = W ? W + (size_t)v0 * d : m->wscratch;
        if (!W) {
            tp_status rc = wfill(m, w, v0, nv, m->wscratch, e);
            if (rc != TP_OK) return rc;
        }
        gemm(m, nr, nv, d, 1.0f, Hs, d, B, d, 1, 0.0f, logits + v0, V);
    }
    return TP_OK;
}

static tp_status device_forward(tp_model *m, const int32_t *ids, int n, int pos0, int row0, float *logits,
                                tp_err *e);

tp_status tp_model_forward(tp_model *m, const int32_t *ids, int n, int pos0, int row0, float *logits, tp_err *e) {
    if (row0 < 0 || row0 > n) return tp_fail(e, TP_ERR_ARG, "forward: row0 %d outside [0, %d]", row0, n);
    if (m->device != TP_DEVICE_CPU) return device_forward(m, ids, n, pos0, row0, logits, e);
    tp_status rc = trunk(m, ids, n, pos0, e);
    if (rc != TP_OK || !logits || row0 == n) return rc;
    return head(m, m->h + (size_t)row0 * m->c.d_model, n - row0, logits, e);
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

static tp_status device_forward_nll(tp_model *m, const int32_t *ids, int n, int pos0, int row0, int row1,
                                    const int32_t *targets, double *nll, tp_err *e);

tp_status tp_model_forward_nll(tp_model *m, const int32_t *ids, int n, int pos0, int row0, int row1,
                               const int32_t *targets, double *nll, tp_err *e) {
    if (row0 < 0 || row1 > n || row0 > row1)
        return tp_fail(e, TP_ERR_ARG, "forward: rows [%d, %d) outside [0, %d]", row0, row1, n);
    int V = m->c.vocab;
    for (int i = row0; i < row1; i++)
        if (targets[i - row0] < 0 || targets[i - row0] >= V)
            return tp_fail(e, TP_ERR_ARG, "forward: target id %d out of range [0, %d)", targets[i - row0], V);
    if (m->device != TP_DEVICE_CPU) return device_forward_nll(m, ids, n, pos0, row0, row1, targets, nll, e);
    tp_status rc = trunk(m, ids, n, pos0, e);
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
    for (int r0 = row0; r0 < row1; r0 += blk) {
        int nr = row1 - r0 < blk ? row1 - r0 : blk;
        if ((rc = head(m, m->h + (size_t)r0 * m->c.d_model, nr, m->lbuf, e)) != TP_OK) return rc;
        nll_ctx nc = {m->lbuf, V, nr, targets + (r0 - row0), nll + (r0 - row0)};
        tp_par_run(tp_par_threads(), nll_part, &nc);
    }
    return TP_OK;
}

/* ---- devices: tp_model_forward(_nll) on a CUDA GPU (kernels/cuda/model.cu) ----
 * The CPU path above is untouched by this section: with TP_DEVICE_CPU (the default) nothing here
 * runs. With TP_DEVICE_CUDA every tensor is handed to the device once, and again after an
 * override or the weight hook changes: a packed weight (an artifact loaded with --exec packed) as
 * its INT4-family record, never decoded on the host (other codecs fail, naming the tensor); in
 * TP_WEIGHTS_F16 mode every other matrix in fp16; else in fp32 as the CPU would use it. */
#ifdef TENPAK_HAVE_CUDA
#include "kernels/cuda/tp_cuda_model.h"
#endif

const char *tp_device_name(tp_device d) { return d == TP_DEVICE_CUDA ? "cuda" : "cpu"; }
tp_device tp_model_device(const tp_model *m) { return m->device; }

const char *tp_model_device_desc(const tp_model *m) {
#ifdef TENPAK_HAVE_CUDA
    if (m->device == TP_DEVICE_CUDA && m->cuda) return tp_cuda_model_device_name(m->cuda);
#endif
    return tp_device_name(m->device);
}

static void device_release(tp_model *m) {
#ifdef TENPAK_HAVE_CUDA
    tp_cuda_model_free(m->cuda);
#endif
    m->cuda = NULL;
}

#ifdef TENPAK_HAVE_CUDA
/* A packed weight to the device: its INT4-family matrix as the artifact holds it. */
static tp_status cuda_put_packed(tp_model *m, tp_cuda_slot slot, int layer, const wmat *w, tp_err *e) {
    const tp_qmat *q = tp_linear_qmat(w->packed);
    if (!q)
        return tp_fail(e, TP_ERR_UNSUPPORTED, "--device cuda: tensor '%s' (codec %s) has no CUDA kernel on the packed "
                       "path; run it with --exec dequant", w->t->name, tp_linear_spec(w->packed));
    return tp_cuda_model_set_qmat(m->cuda, slot, layer, q, w->bias, e);
}

/* The fp16-weights mode: the matrix rounded to binary16 (file layout) */
static tp_status cuda_put_f16(tp_model *m, tp_cuda_slot slot, int layer, const wmat *w, const float *data,
                              tp_err *e) {
    size_t n = (size_t)w->t->numel;
    uint16_t *h = tp_alloc(n * sizeof *h);
    if (!h) return tp_fail(e, TP_ERR_NOMEM, "out of memory converting '%s' for the GPU", w->t->name);
    for (size_t i = 0; i < n; i++) h[i] = tp_f32_to_f16(data[i]);
    tp_status rc = tp_cuda_model_set_mat16(m->cuda, slot, layer, h, w->rows, w->cols, w->linear_layout, w->bias, e);
    tp_free(h);
    return rc;
}

/* One matrix to the device: packed as packed; else its override or cached fp32 copy as is, or
 * converted into tmp; in fp16 in TP_WEIGHTS_F16 mode (GPT-2's positions stay fp32). */
static tp_status cuda_put_mat(tp_model *m, tp_cuda_slot slot, int layer, const wmat *w, float **tmp, size_t *tmpn,
                              tp_err *e) {
    if (!w->t) return TP_OK; /* not part of this architecture */
    if (w->packed) return cuda_put_packed(m, slot, layer, w, e);
    const float *data = w->ovr ? w->ovr : w->f32;
    if (!data) {
        size_t need = (size_t)w->t->numel;
        if (need > *tmpn) {
            tp_free(*tmp);
            if (!(*tmp = tp_alloc(need * sizeof(float)))) {
                *tmpn = 0;
                return tp_fail(e, TP_ERR_NOMEM, "out of memory converting '%s' for the GPU", w->t->name);
            }
            *tmpn = need;
        }
        tp_status rc = wfill(m, w, 0, w->rows, *tmp, e);
        if (rc != TP_OK) return rc;
        data = *tmp;
    }
    if (m->mode == TP_WEIGHTS_F16 && slot != TP_CU_POS) return cuda_put_f16(m, slot, layer, w, data, e);
    return tp_cuda_model_set_mat(m->cuda, slot, layer, data, w->rows, w->cols, w->linear_layout, w->bias, e);
}

static tp_status cuda_upload(tp_model *m, tp_err *e) {
    const tp_model_config *c = &m->c;
    int d = c->d_model, gpt2 = c->arch == TP_ARCH_GPT2;
    float *tmp = NULL;
    size_t tmpn = 0;
    tp_status rc = TP_OK;
#define PUT_MAT(slot, layer, w) if (rc == TP_OK) rc = cuda_put_mat(m, slot, layer, w, &tmp, &tmpn, e)
#define PUT_VEC(slot, layer, v) if (rc == TP_OK && (v)) rc = tp_cuda_model_set_vec(m->cuda, slot, layer, v, d, e)
    PUT_MAT(TP_CU_EMB, -1, &m->emb);
    if (gpt2) PUT_MAT(TP_CU_POS, -1, &m->pos);
    if (!m->tied) PUT_MAT(TP_CU_HEAD, -1, &m->head);
    PUT_VEC(TP_CU_NORM_F_W, -1, m->nfw);
    PUT_VEC(TP_CU_NORM_F_B, -1, m->nfb);
    for (int l = 0; l < c->n_layer; l++) {
        layer *L = &m->L[l];
        PUT_VEC(TP_CU_N1W, l, L->n1w);
        PUT_VEC(TP_CU_N1B, l, L->n1b);
        PUT_VEC(TP_CU_N2W, l, L->n2w);
        PUT_VEC(TP_CU_N2B, l, L->n2b);
        if (gpt2) {
            PUT_MAT(TP_CU_QKV, l, &L->qkv);
            PUT_MAT(TP_CU_O, l, &L->o);
            PUT_MAT(TP_CU_FC, l, &L->fc);
            PUT_MAT(TP_CU_PROJ, l, &L->proj);
        } else {
            PUT_MAT(TP_CU_Q, l, &L->q);
            PUT_MAT(TP_CU_K, l, &L->k);
            PUT_MAT(TP_CU_V, l, &L->v);
            PUT_MAT(TP_CU_O, l, &L->o);
            PUT_MAT(TP_CU_GATE, l, &L->gate);
            PUT_MAT(TP_CU_UP, l, &L->up);
            PUT_MAT(TP_CU_DOWN, l, &L->down);
        }
    }
#undef PUT_MAT
#undef PUT_VEC
    if (rc == TP_OK && !gpt2) rc = tp_cuda_model_set_rope(m->cuda, m->rope_cos, m->rope_sin, e);
    tp_free(tmp);
    if (rc == TP_OK) m->cuda_stale = 0;
    return rc;
}
#endif

tp_status tp_model_set_device(tp_model *m, tp_device d, tp_err *e) {
    if (d == TP_DEVICE_CPU) {
        if (m->device != TP_DEVICE_CPU) { m->device = TP_DEVICE_CPU; m->cached = 0; }
        return TP_OK;
    }
    if (d != TP_DEVICE_CUDA) return tp_fail(e, TP_ERR_ARG, "unknown device %d", (int)d);
#ifndef TENPAK_HAVE_CUDA
    return tp_fail(e, TP_ERR_UNSUPPORTED, "--device cuda: this tenpak was built without CUDA");
#else
    const tp_model_config *c = &m->c;
    if (!m->cuda) {
        tp_cuda_model_shape s = {c->arch == TP_ARCH_GPT2, (int)c->act, c->n_layer, c->d_model, c->n_head,
                                 c->n_kv_head, c->head_dim, c->d_ff, c->vocab, m->cap, c->sliding_window,
                                 c->norm_eps};
        tp_cuda_model *cm = NULL;
        tp_status rc = tp_cuda_model_create(&s, &cm, e);
        if (rc != TP_OK) return rc;
        m->cuda = cm;
        m->cuda_stale = 1;
    }
    if (m->cuda_stale) {
        tp_status rc = cuda_upload(m, e);
        if (rc != TP_OK) { device_release(m); m->device = TP_DEVICE_CPU; return rc; }
    }
    if (m->device != TP_DEVICE_CUDA) { m->device = TP_DEVICE_CUDA; m->cached = 0; }
    return TP_OK;
#endif
}

/* The argument checks of trunk(), then the device's forward pass with logits. */
static tp_status device_forward(tp_model *m, const int32_t *ids, int n, int pos0, int row0, float *logits,
                                tp_err *e) {
    tp_status ac = check_forward_args(m, ids, n, pos0, e);
    if (ac != TP_OK) return ac;
#ifdef TENPAK_HAVE_CUDA
    if (m->cuda_stale) {
        tp_status rc = tp_model_set_device(m, TP_DEVICE_CUDA, e);
        if (rc != TP_OK) return rc;
    }
    tp_status rc = tp_cuda_model_forward_logits(m->cuda, ids, n, pos0, row0, logits, e);
    m->cached = rc == TP_OK ? pos0 + n : 0;
    return rc;
#else
    (void)row0; (void)logits;
    return tp_fail(e, TP_ERR_UNSUPPORTED, "forward: this tenpak was built without CUDA");
#endif
}

/* The argument checks of trunk(), then the device's forward pass. */
static tp_status device_forward_nll(tp_model *m, const int32_t *ids, int n, int pos0, int row0, int row1,
                                    const int32_t *targets, double *nll, tp_err *e) {
    tp_status ac = check_forward_args(m, ids, n, pos0, e);
    if (ac != TP_OK) return ac;
#ifdef TENPAK_HAVE_CUDA
    if (m->cuda_stale) { /* weights changed since the upload (override / hook) */
        tp_status rc = tp_model_set_device(m, TP_DEVICE_CUDA, e);
        if (rc != TP_OK) return rc;
    }
    tp_status rc = tp_cuda_model_forward_nll(m->cuda, ids, n, pos0, row0, row1, targets, nll, e);
    m->cached = rc == TP_OK ? pos0 + n : 0;
    return rc;
#else
    (void)row0; (void)row1; (void)targets; (void)nll;
    return tp_fail(e, TP_ERR_UNSUPPORTED, "forward: this tenpak was built without CUDA");
#endif
}
