/* The model: accessors, weight override / hook / packed weights, loading a checkpoint (config,
 * tensor names and shapes, every tensor used), and weights as fp32. See model.h for the contract
 * and the memory modes; model_internal.h for how the files divide the work. */
#include "pipeline/model_internal.h"

#include "pipeline/gguf_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

void tp_model_set_prefill_chunk(tp_model *m, int rows) { m->prefill_chunk = rows > 0 ? rows : 0; }
int tp_model_prefill_chunk(const tp_model *m) { return m->prefill_chunk; }

/* The default chunk (model.h): rows of at most TP_PREFILL_CHUNK_BYTES of activations, but never
 * under TP_PREFILL_CHUNK rows; TENPAK_PREFILL_CHUNK=ROWS (0: off) replaces it, to measure or bisect. */
static int default_prefill_chunk(const tp_model *m) {
    const char *v = getenv("TENPAK_PREFILL_CHUNK");
    if (v && *v) {
        char *end;
        long r = strtol(v, &end, 10);
        if (!*end && r >= 0 && r <= (1 << 30)) return (int)r;
    }
    size_t rows = TP_PREFILL_CHUNK_BYTES / tp_model_act_row_bytes(m);
    return rows < TP_PREFILL_CHUNK ? TP_PREFILL_CHUNK : rows > (1 << 30) ? 1 << 30 : (int)rows;
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
    tp_free(m->x); tp_free(m->h); tp_free(m->q); tp_free(m->S); /* att, ff1, ff2 point into h and q */
    tp_free(m->wscratch); tp_free(m->lbuf);
    tp_model_device_release(m);
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
    m->prefill_chunk = default_prefill_chunk(m);
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

tp_status tp_model_wfill(tp_model *m, const wmat *w, int64_t r0, int64_t nr, float *dst, tp_err *e) {
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
 * the shared scratch in PER_LAYER mode, valid until the next tp_model_wget). */
const float *tp_model_wget(tp_model *m, wmat *w, tp_status *rc, tp_err *e) {
    if (w->ovr) return w->ovr;
    if (w->f32) return w->f32;
    float *dst;
    if (m->mode == TP_WEIGHTS_F32) {
        dst = w->f32 = tp_alloc((size_t)w->t->numel * sizeof(float));
        if (!dst) { *rc = tp_fail(e, TP_ERR_NOMEM, "out of memory converting '%s'", w->t->name); return NULL; }
    } else {
        dst = m->wscratch;
    }
    *rc = tp_model_wfill(m, w, 0, w->rows, dst, e);
    if (*rc != TP_OK) { if (w->f32) { tp_free(w->f32); w->f32 = NULL; } return NULL; }
    return dst;
}
