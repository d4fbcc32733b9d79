/* A GGUF file as a model (config, tensors under Hugging Face names, tokenizer): see gguf_model.h. */
#include "pipeline/gguf_model.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pipeline/artifact_model.h"
#include "pipeline/codec.h"
#include "pipeline/linear.h"
#include "pipeline/model.h"
#include "tenpak/ggml.h"
#include "tenpak/sha256.h"

int tp_gguf_is_model_path(const char *path) {
    size_t n = strlen(path);
    struct stat st;
    if (n < 5 || strcasecmp(path + n - 5, ".gguf")) return 0;
    return !(stat(path, &st) == 0 && S_ISDIR(st.st_mode));
}

/* ---- config ---- */

#define MAX_SIZE (1 << 24) /* any one size of the model: absurd values fail before allocating */

static tp_status need_u32(const tp_gguf *g, const char *arch, const char *key, int *v, int required, tp_err *e) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    uint32_t u = 0;
    int found = 0;
    tp_status s = tp_gguf_get_u32(g, k, &u, &found, e);
    if (s != TP_OK) return s;
    if (!found) {
        if (required) return tp_fail(e, TP_ERR_FORMAT, "%s: metadata '%s' is missing", tp_gguf_path(g), k);
        return TP_OK;
    }
    if (u == 0 || u > MAX_SIZE)
        return tp_fail(e, TP_ERR_FORMAT, "%s: metadata '%s' = %u is out of range (1..%d)", tp_gguf_path(g), k, u, MAX_SIZE);
    *v = (int)u;
    return TP_OK;
}
/* A float the converter wrote as f32 from config.json's decimal (1e-05): the shortest decimal that
 * rounds to that f32, as a double, so that the forward pass gets the checkpoint's own value. */
static double f32_decimal(double f) {
    float x = (float)f;
    if ((double)x != f || !isfinite(f)) return f; /* an f64 value: as written */
    char b[40];
    for (int p = 1; p <= 9; p++) {
        snprintf(b, sizeof b, "%.*g", p, f);
        double d = strtod(b, NULL);
        if ((float)d == x) return d;
    }
    return f;
}
static tp_status get_real(const tp_gguf *g, const char *k, double *v, int *found, tp_err *e) {
    tp_status s = tp_gguf_get_f64(g, k, v, found, e);
    const tp_gguf_kv *kv = tp_gguf_find_kv(g, k);
    if (s == TP_OK && kv && kv->type == TP_GGUF_F32) *v = f32_decimal(*v);
    return s;
}
static tp_status need_f64(const tp_gguf *g, const char *arch, const char *key, double *v, tp_err *e) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    int found = 0;
    return get_real(g, k, v, &found, e);
}

tp_status tp_gguf_config(const tp_gguf *g, tp_model_config *c, tp_err *e) {
    const char *path = tp_gguf_path(g);
    memset(c, 0, sizeof *c);
    char *arch = NULL;
    tp_status s = tp_gguf_get_str(g, "general.architecture", &arch, NULL, e);
    if (s != TP_OK) return s;
    if (strcmp(arch, "llama") && strcmp(arch, "gpt2")) {
        s = tp_fail(e, TP_ERR_UNSUPPORTED, "%s: general.architecture '%.64s' is not supported (llama, gpt2)", path, arch);
        free(arch);
        return s;
    }
    snprintf(c->model_type, sizeof c->model_type, "%s", arch);
    int llama = !strcmp(arch, "llama");
    c->arch = llama ? TP_ARCH_LLAMA : TP_ARCH_GPT2;
    c->act = llama ? TP_ACT_SILU : TP_ACT_GELU_NEW;
    c->bos_id = c->eos_id = -1;
    if ((s = need_u32(g, arch, "context_length", &c->n_ctx, 1, e)) != TP_OK ||
        (s = need_u32(g, arch, "embedding_length", &c->d_model, 1, e)) != TP_OK ||
        (s = need_u32(g, arch, "block_count", &c->n_layer, 1, e)) != TP_OK ||
        (s = need_u32(g, arch, "feed_forward_length", &c->d_ff, 1, e)) != TP_OK ||
        (s = need_u32(g, arch, "attention.head_count", &c->n_head, 1, e)) != TP_OK)
        goto done;
    c->n_kv_head = c->n_head;
    if ((s = need_u32(g, arch, "attention.head_count_kv", &c->n_kv_head, 0, e)) != TP_OK) goto done;
    if ((s = need_u32(g, arch, "attention.key_length", &c->head_dim, 0, e)) != TP_OK) goto done;
    if (!c->head_dim) c->head_dim = c->d_model / c->n_head;
    if (c->n_layer > 4096) { s = tp_fail(e, TP_ERR_FORMAT, "%s: %s.block_count %d is absurd", path, arch, c->n_layer); goto done; }
    if (llama) {
        c->norm_eps = 0;
        int found = 0;
        char k[128];
        snprintf(k, sizeof k, "%s.attention.layer_norm_rms_epsilon", arch);
        if ((s = get_real(g, k, &c->norm_eps, &found, e)) != TP_OK) goto done;
        if (!found) { s = tp_fail(e, TP_ERR_FORMAT, "%s: metadata '%s' is missing", path, k); goto done; }
        c->rope_theta = 10000.0;
        if ((s = need_f64(g, arch, "rope.freq_base", &c->rope_theta, e)) != TP_OK) goto done;
        int rot = 0;
        if ((s = need_u32(g, arch, "rope.dimension_count", &rot, 0, e)) != TP_OK) goto done;
        if (rot && rot != c->head_dim) {
            s = tp_fail(e, TP_ERR_UNSUPPORTED, "%s: llama.rope.dimension_count %d differs from the head size %d (partial "
                        "rotary is not supported)", path, rot, c->head_dim);
            goto done;
        }
        char *st = NULL;
        snprintf(k, sizeof k, "%s.rope.scaling.type", arch);
        if ((s = tp_gguf_get_str(g, k, &st, &found, e)) != TP_OK) goto done;
        c->rope_type = TP_ROPE_DEFAULT;
        if (found && strcmp(st, "none")) {
            if (strcmp(st, "linear")) {
                s = tp_fail(e, TP_ERR_UNSUPPORTED, "%s: %s '%.32s' is not supported (none, linear)", path, k, st);
                free(st);
                goto done;
            }
            c->rope_type = TP_ROPE_LINEAR;
            if ((s = need_f64(g, arch, "rope.scaling.factor", &c->rope_factor, e)) != TP_OK) { free(st); goto done; }
            if (!(c->rope_factor > 0)) {
                s = tp_fail(e, TP_ERR_FORMAT, "%s: linear RoPE scaling needs %s.rope.scaling.factor > 0", path, arch);
                free(st);
                goto done;
            }
        }
        free(st);
        if (tp_gguf_find_tensor(g, "rope_freqs.weight")) {
            s = tp_fail(e, TP_ERR_UNSUPPORTED, "%s: per-dimension RoPE frequencies (rope_freqs.weight) are not supported",
                        path);
            goto done;
        }
        c->tie_embeddings = tp_gguf_find_tensor(g, "output.weight") == NULL;
    } else {
        int found = 0;
        if ((s = get_real(g, "gpt2.attention.layer_norm_epsilon", &c->norm_eps, &found, e)) != TP_OK) goto done;
        if (!found) c->norm_eps = 1e-5;
        c->tie_embeddings = 1;
    }
    const tp_gguf_kv *toks = NULL;
    int found = 0;
    if ((s = tp_gguf_get_arr(g, "tokenizer.ggml.tokens", TP_GGUF_STRING, &toks, &found, e)) != TP_OK) goto done;
    if (found) c->vocab = toks->arr_n > MAX_SIZE ? -1 : (int)toks->arr_n;
    else if ((s = need_u32(g, arch, "vocab_size", &c->vocab, 1, e)) != TP_OK) goto done;
    uint32_t id;
    if ((s = tp_gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &id, &found, e)) != TP_OK) goto done;
    if (found) c->bos_id = id > MAX_SIZE ? -1 : (int)id;
    if ((s = tp_gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &id, &found, e)) != TP_OK) goto done;
    if (found) c->eos_id = id > MAX_SIZE ? -1 : (int)id;
    if (!(c->norm_eps > 0) || (llama && !(c->rope_theta > 0))) {
        s = tp_fail(e, TP_ERR_FORMAT, "%s: the norm epsilon (%g) and RoPE base (%g) must be > 0", path, c->norm_eps,
                    c->rope_theta);
        goto done;
    }
    if (c->vocab <= 0 || c->n_head % c->n_kv_head || c->head_dim <= 0 || (long long)c->head_dim * c->n_head > MAX_SIZE ||
        (!llama && c->d_model % c->n_head) || (llama && c->head_dim % 2)) {
        s = tp_fail(e, TP_ERR_FORMAT, "%s: inconsistent sizes (layers %d, hidden %d, heads %d/%d, head_dim %d, vocab %d)",
                    path, c->n_layer, c->d_model, c->n_head, c->n_kv_head, c->head_dim, c->vocab);
        goto done;
    }
done:
    free(arch);
    return s;
}

/* ---- tensors under Hugging Face names ---- */

/* a quantised matrix: [rows = out][cols = in] rows of ggml blocks, run packed (tp_gguf_model_attach) */
typedef struct qtensor { char *name; int type; const uint8_t *data; size_t nbytes; int64_t rows, cols; } qtensor;
typedef struct owner { tp_gguf *g; void **bufs; size_t nbufs; qtensor *q; size_t nq; } owner;
static void owner_free(void *p) {
    owner *o = p;
    if (!o) return;
    for (size_t i = 0; i < o->nbufs; i++) free(o->bufs[i]);
    free(o->bufs);
    for (size_t i = 0; i < o->nq; i++) free(o->q[i].name);
    free(o->q);
    tp_gguf_close(o->g);
    free(o);
}
static void *owner_alloc(owner *o, size_t n) {
    void **nb = realloc(o->bufs, (o->nbufs + 1) * sizeof *nb);
    if (!nb) return NULL;
    o->bufs = nb;
    void *p = malloc(n ? n : 1);
    if (p) o->bufs[o->nbufs++] = p;
    return p;
}

/* per-layer names: GGUF suffix -> HF suffix; flags: 1 = llama rotary permutation (q), 2 = (k),
 * 4 = GPT-2 Conv1D weight (stored [out, in] in the GGUF) */
typedef struct nmap { const char *gguf, *hf; int flags; } nmap;
static const nmap LLAMA_L[] = {
    {"attn_norm.weight", "input_layernorm.weight", 0}, {"attn_q.weight", "self_attn.q_proj.weight", 1},
    {"attn_q.bias", "self_attn.q_proj.bias", 1},       {"attn_k.weight", "self_attn.k_proj.weight", 2},
    {"attn_k.bias", "self_attn.k_proj.bias", 2},       {"attn_v.weight", "self_attn.v_proj.weight", 0},
    {"attn_v.bias", "self_attn.v_proj.bias", 0},       {"attn_output.weight", "self_attn.o_proj.weight", 0},
    {"attn_output.bias", "self_attn.o_proj.bias", 0},  {"ffn_norm.weight", "post_attention_layernorm.weight", 0},
    {"ffn_gate.weight", "mlp.gate_proj.weight", 0},    {"ffn_up.weight", "mlp.up_proj.weight", 0},
    {"ffn_down.weight", "mlp.down_proj.weight", 0},    {NULL, NULL, 0}};
static const nmap LLAMA_G[] = {{"token_embd.weight", "model.embed_tokens.weight", 0},
                               {"output_norm.weight", "model.norm.weight", 0},
                               {"output.weight", "lm_head.weight", 0}, {NULL, NULL, 0}};
static const nmap GPT2_L[] = {
    {"attn_norm.weight", "ln_1.weight", 0},        {"attn_norm.bias", "ln_1.bias", 0},
    {"attn_qkv.weight", "attn.c_attn.weight", 4},  {"attn_qkv.bias", "attn.c_attn.bias", 0},
    {"attn_output.weight", "attn.c_proj.weight", 4}, {"attn_output.bias", "attn.c_proj.bias", 0},
    {"ffn_norm.weight", "ln_2.weight", 0},         {"ffn_norm.bias", "ln_2.bias", 0},
    {"ffn_up.weight", "mlp.c_fc.weight", 4},       {"ffn_up.bias", "mlp.c_fc.bias", 0},
    {"ffn_down.weight", "mlp.c_proj.weight", 4},   {"ffn_down.bias", "mlp.c_proj.bias", 0},
    {NULL, NULL, 0}};
static const nmap GPT2_G[] = {{"token_embd.weight", "transformer.wte.weight", 0},
                              {"position_embd.weight", "transformer.wpe.weight", 0},
                              {"output_norm.weight", "transformer.ln_f.weight", 0},
                              {"output_norm.bias", "transformer.ln_f.bias", 0}, {NULL, NULL, 0}};

int tp_gguf_name_of_hf(int llama, const char *hf, char *out, size_t n, int *flags) {
    const nmap *lm = llama ? LLAMA_L : GPT2_L, *gm = llama ? LLAMA_G : GPT2_G;
    const char *pre = llama ? "model.layers." : "transformer.h.";
    if (!llama && strncmp(hf, "transformer.", 12) && (!strncmp(hf, "h.", 2) || !strncmp(hf, "w", 1) || !strncmp(hf, "ln_f.", 5))) {
        /* openai-community/gpt2 names tensors without the "transformer." prefix */
        char buf[300];
        snprintf(buf, sizeof buf, "transformer.%s", hf);
        return tp_gguf_name_of_hf(llama, buf, out, n, flags);
    }
    *flags = 0;
    for (const nmap *m = gm; m->gguf; m++)
        if (!strcmp(m->hf, hf)) { snprintf(out, n, "%s", m->gguf); return 1; }
    if (strncmp(hf, pre, strlen(pre))) return 0;
    const char *p = hf + strlen(pre);
    char *end;
    long layer = strtol(p, &end, 10);
    if (end == p || *end != '.' || layer < 0) return 0;
    for (const nmap *m = lm; m->gguf; m++)
        if (!strcmp(m->hf, end + 1)) {
            snprintf(out, n, "blk.%ld.%s", layer, m->gguf);
            *flags = m->flags;
            return 1;
        }
    return 0;
}

static int st_dtype(int ggml_type, tp_st_dtype *d) {
    switch (ggml_type) {
    case 0: *d = TP_ST_F32; return 1;
    case 1: *d = TP_ST_F16; return 1;
    case 30: *d = TP_ST_BF16; return 1;
    default: return 0;
    }
}

/* "blk.N.rest" -> N and rest (N without leading zeros, below n_layer) */
static int split_blk(const char *name, int n_layer, int *layer, const char **rest) {
    if (strncmp(name, "blk.", 4)) return 0;
    const char *p = name + 4;
    long v = 0;
    const char *q = p;
    while (*q >= '0' && *q <= '9' && q - p < 6) v = v * 10 + (*q++ - '0');
    if (q == p || *q != '.' || (q - p > 1 && *p == '0') || v >= n_layer) return 0;
    *layer = (int)v;
    *rest = q + 1;
    return 1;
}

static tp_status add_q(owner *o, const char *name, const tp_gguf_tensor *t, const uint8_t *data, const char *path,
                       tp_err *e) {
    qtensor *q = realloc(o->q, (o->nq + 1) * sizeof *q);
    if (!q) return tp_fail(e, TP_ERR_NOMEM, "%s: out of memory", path);
    o->q = q;
    q += o->nq;
    if (!(q->name = strdup(name))) return tp_fail(e, TP_ERR_NOMEM, "%s: out of memory", path);
    q->type = t->type;
    q->data = data;
    q->nbytes = t->nbytes;
    q->cols = t->ne[0];
    q->rows = t->ne[1];
    o->nq++;
    return TP_OK;
}

/* ---- the packed path of quantised tensors: a codec method outside the codec table ---- */

typedef struct gview { int type; const uint8_t *W; int64_t rows, cols; size_t rb; } gview;
static size_t g_blob_bytes(const tp_codec_stage *s, int64_t rows, int64_t cols) {
    return tp_ggml_row_bytes((int)tp_codec_param_get(s, "type"), cols) * (size_t)rows;
}
static double g_bpw(const tp_codec_stage *s, int64_t rows, int64_t cols) {
    return 8.0 * (double)g_blob_bytes(s, rows, cols) / ((double)rows * (double)cols);
}
static tp_status g_decode_add(const tp_codec_stage *s, const uint8_t *blob, int64_t rows, int64_t cols, float *W,
                              tp_err *e) {
    int type = (int)tp_codec_param_get(s, "type");
    size_t rb = tp_ggml_row_bytes(type, cols);
    float *row = malloc((size_t)cols * sizeof *row);
    if (!row) return tp_fail(e, TP_ERR_NOMEM, "out of memory");
    tp_status st = TP_OK;
    for (int64_t r = 0; r < rows && st == TP_OK; r++) {
        st = tp_ggml_dequant_cpu(type, blob + (size_t)r * rb, cols, row, e);
        for (int64_t c = 0; c < cols && st == TP_OK; c++) W[r * cols + c] += row[c];
    }
    free(row);
    return st;
}
static void *g_open(const tp_codec_stage *s, const uint8_t *blob, int64_t rows, int64_t cols, tp_err *e) {
    gview *v = malloc(sizeof *v);
    if (!v) { tp_fail(e, TP_ERR_NOMEM, "out of memory"); return NULL; }
    v->type = (int)tp_codec_param_get(s, "type");
    v->W = blob;
    v->rows = rows;
    v->cols = cols;
    v->rb = tp_ggml_row_bytes(v->type, cols);
    return v;
}
static tp_status g_mul(const void *p, const float *X, int64_t n, float *Y) {
    const gview *v = p;
    tp_err e;
    return tp_ggml_matmul_cpu(v->type, v->W, v->rows, v->cols, X, n, Y, &e);
}
static void g_row(const void *p, int64_t r, float *dst) {
    const gview *v = p;
    tp_err e;
    tp_ggml_dequant_cpu(v->type, v->W + (size_t)r * v->rb, v->cols, dst, &e);
}
static void g_corrupt(void *p, uint64_t k) { (void)p; (void)k; } /* the map is read-only */
static size_t g_bytes(const void *p) { (void)p; return sizeof(gview); }
static void g_close(void *p) { free(p); }
static const tp_codec_exec GGML_EXEC = {g_open, g_mul, g_row, g_corrupt, g_bytes, g_close};
static const tp_codec_method GGML_METHOD = {"ggml", "type=0", g_blob_bytes, g_bpw, NULL, g_decode_add, &GGML_EXEC,
                                           NULL, NULL};

tp_status tp_gguf_model_attach(struct tp_model *m, tp_err *e) {
    const owner *o = tp_st_set_owner(tp_model_files(m), owner_free);
    if (!o) return TP_OK;
    for (size_t i = 0; i < o->nq; i++) {
        const qtensor *q = &o->q[i];
        char spec[64], what[512];
        snprintf(spec, sizeof spec, "ggml:%s", tp_ggml_type_name(q->type));
        snprintf(what, sizeof what, "%s: tensor %s", tp_gguf_path(o->g), q->name);
        tp_linear *l = NULL;
        tp_status s = tp_linear_open_method(&GGML_METHOD, spec, q->type, q->data, q->nbytes, q->rows, q->cols, what, &l, e);
        if (s == TP_OK && (s = tp_model_set_packed(m, q->name, l, e)) != TP_OK) tp_linear_free(l);
        if (s != TP_OK) return s;
    }
    return TP_OK;
}

static tp_status map_tensors(owner *o, const tp_model_config *c, tp_st_set **out, tp_err *e) {
    tp_gguf *g = o->g;
    const char *path = tp_gguf_path(g);
    size_t n = tp_gguf_num_tensors(g);
    tp_st_tensor *ts = calloc(n ? n : 1, sizeof *ts);
    char **names = calloc(n ? n : 1, sizeof *names);
    size_t k = 0;
    tp_status s = TP_OK;
    int llama = c->arch == TP_ARCH_LLAMA;
    const nmap *lm = llama ? LLAMA_L : GPT2_L, *gm = llama ? LLAMA_G : GPT2_G;
    if (!ts || !names) { s = tp_fail(e, TP_ERR_NOMEM, "%s: out of memory", path); goto done; }
    for (size_t i = 0; i < n && s == TP_OK; i++) {
        const tp_gguf_tensor *t = tp_gguf_tensor_at(g, i);
        const nmap *hit = NULL;
        int layer = -1;
        const char *rest;
        if (split_blk(t->name, c->n_layer, &layer, &rest)) {
            for (const nmap *m = lm; m->gguf && !hit; m++)
                if (!strcmp(m->gguf, rest)) hit = m;
        } else {
            for (const nmap *m = gm; m->gguf && !hit; m++)
                if (!strcmp(m->gguf, t->name)) hit = m;
        }
        if (!llama && !strcmp(t->name, "output.weight")) {
            /* convert_hf_to_gguf writes GPT-2's tied lm_head again: accept it when it is token_embd's copy */
            const tp_gguf_tensor *te = tp_gguf_find_tensor(g, "token_embd.weight");
            if (te && te->type == t->type && te->nbytes == t->nbytes && !memcmp(te->data, t->data, t->nbytes)) continue;
            s = tp_fail(e, TP_ERR_UNSUPPORTED, "%s: gpt2 tensor 'output.weight' differs from token_embd.weight (an "
                        "untied GPT-2 lm_head is not supported)", path);
            break;
        }
        if (!hit) {
            s = tp_fail(e, TP_ERR_UNSUPPORTED, "%s: tensor '%s' is not one tenpak's %s uses", path, t->name, c->model_type);
            break;
        }
        tp_st_dtype d;
        int quant = !st_dtype(t->type, &d);
        if (quant && (t->ndim != 2 || !tp_ggml_type_known(t->type))) {
            s = tp_fail(e, TP_ERR_UNSUPPORTED, "%s: tensor '%s' is %s: only matrices may be quantised", path, t->name,
                        tp_gguf_type_name(t->type));
            break;
        }
        if (quant) d = TP_ST_F32; /* shape-checked by the loader, never read: multiplied packed */
        char nm[256];
        if (layer >= 0) snprintf(nm, sizeof nm, "%s.%d.%s", llama ? "model.layers" : "transformer.h", layer, hit->hf);
        else snprintf(nm, sizeof nm, "%s", hit->hf);
        tp_st_tensor *x = &ts[k];
        names[k] = strdup(nm);
        if (!names[k]) { s = tp_fail(e, TP_ERR_NOMEM, "%s: out of memory", path); break; }
        x->name = names[k];
        k++;
        x->dtype = d;
        x->ndim = t->ndim;
        for (int j = 0; j < t->ndim; j++) x->shape[j] = t->ne[t->ndim - 1 - j]; /* GGUF ne[0] is innermost */
        x->numel = t->nelem;
        x->nbytes = t->nbytes;
        x->data = quant ? NULL : t->data;
        size_t es = tp_st_dtype_size(d);
        if ((hit->flags & 3) && t->ndim <= 2) {
            /* undo llama.cpp's rotary permutation: rows come as (head, j, half), HF has (head, half, j) */
            int64_t rows = t->ndim == 2 ? t->ne[1] : t->ne[0];
            size_t rb = t->ndim == 2 ? t->nbytes / (size_t)rows : es;
            int heads = (hit->flags & 1) ? c->n_head : c->n_kv_head, hd = c->head_dim;
            if (rows != (int64_t)heads * hd) {
                s = tp_fail(e, TP_ERR_FORMAT, "%s: tensor '%s' has %lld rows, expected %d heads x %d", path, t->name,
                            (long long)rows, heads, hd);
                break;
            }
            uint8_t *dst = owner_alloc(o, t->nbytes);
            if (!dst) { s = tp_fail(e, TP_ERR_NOMEM, "%s: out of memory", path); break; }
            for (int h = 0; h < heads; h++)
                for (int half = 0; half < 2; half++)
                    for (int j = 0; j < hd / 2; j++)
                        memcpy(dst + (size_t)(h * hd + half * (hd / 2) + j) * rb,
                               t->data + (size_t)(h * hd + 2 * j + half) * rb, rb);
            x->data = quant ? NULL : dst;
            if (quant) s = add_q(o, nm, t, dst, path, e);
        } else if (quant) {
            /* [out, in] as GGUF stores it is what the packed path wants, GPT-2's Conv1D included */
            s = add_q(o, nm, t, t->data, path, e);
            if (hit->flags & 4) { x->shape[0] = t->ne[0]; x->shape[1] = t->ne[1]; }
        } else if ((hit->flags & 4) && t->ndim == 2) {
            /* GPT-2 Conv1D: the GGUF holds [out, in]; the checkpoint layout is [in, out] */
            int64_t cols = t->ne[0], rows = t->ne[1];
            uint8_t *dst = owner_alloc(o, t->nbytes);
            if (!dst) { s = tp_fail(e, TP_ERR_NOMEM, "%s: out of memory", path); break; }
            for (int64_t r = 0; r < rows; r++)
                for (int64_t q = 0; q < cols; q++)
                    memcpy(dst + ((size_t)q * (size_t)rows + (size_t)r) * es, t->data + ((size_t)r * (size_t)cols + (size_t)q) * es, es);
            x->data = dst;
            x->shape[0] = cols;
            x->shape[1] = rows;
        }
    }
    if (s == TP_OK) {
        size_t size;
        const uint8_t *map = tp_gguf_map(g, &size);
        s = tp_st_set_wrap(path, map, size, ts, k, o, owner_free, out, e);
        o = NULL; /* the set owns it now, or freed it */
    }
done:
    for (size_t i = 0; i < k; i++) free(names[i]);
    free(names);
    free(ts);
    if (o) owner_free(o);
    return s;
}

tp_status tp_gguf_model_open(const char *path, tp_model_config *c, tp_st_set **st, tp_err *e) {
    *st = NULL;
    owner *o = calloc(1, sizeof *o);
    if (!o) return tp_fail(e, TP_ERR_NOMEM, "%s: out of memory", path);
    tp_status s = tp_gguf_open(path, &o->g, e);
    if (s == TP_OK) s = tp_gguf_config(o->g, c, e);
    if (s != TP_OK) { owner_free(o); return s; }
    return map_tensors(o, c, st, e);
}

/* ---- tokenizer: the tokenizer.json the HF converters would have written ---- */

typedef struct strmap { const char **s; size_t *n; int32_t *id; size_t mask; } strmap;
static uint64_t hstr(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}
static int32_t sm_get(const strmap *m, const char *s, size_t n) {
    for (size_t i = hstr(s, n) & m->mask; m->s[i]; i = (i + 1) & m->mask)
        if (m->n[i] == n && !memcmp(m->s[i], s, n)) return m->id[i];
    return -1;
}
/* 0 when s is already there */
static int sm_put(strmap *m, const char *s, size_t n, int32_t id) {
    size_t i = hstr(s, n) & m->mask;
    for (; m->s[i]; i = (i + 1) & m->mask)
        if (m->n[i] == n && !memcmp(m->s[i], s, n)) return 0;
    m->s[i] = s;
    m->n[i] = n;
    m->id[i] = id;
    return 1;
}

typedef struct merge { double score; uint64_t seq; int32_t l, r; size_t lpos; int32_t piece; } merge;
static int cmp_merge(const void *a, const void *b) {
    const merge *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1; /* higher score first */
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}
static int cmp_local(const void *a, const void *b) {
    const merge *x = a, *y = b;
    if (x->l != y->l) return x->l < y->l ? -1 : 1;
    return x->r < y->r ? -1 : x->r > y->r;
}

static cJSON *jstrn(const char *s, size_t n) {
    char *t = malloc(n + 1);
    if (!t) return NULL;
    memcpy(t, s, n);
    t[n] = 0;
    cJSON *j = cJSON_CreateString(t);
    free(t);
    return j;
}

tp_status tp_gguf_tokenizer(const tp_gguf *g, tp_tokenizer **out, tp_err *e) {
    *out = NULL;
    const char *path = tp_gguf_path(g);
    char *model = NULL, *pre = NULL;
    const tp_gguf_kv *toks = NULL, *scores = NULL, *types = NULL, *merges = NULL;
    int found, add_bos = -1, add_eos = 0;
    uint32_t bos = 0, eos = 0, unk = 0;
    int has_bos = 0, has_eos = 0, has_unk = 0;
    strmap sm = {0};
    merge *mg = NULL;
    cJSON *root = NULL;
    char *text = NULL;
    tp_status s = tp_gguf_get_str(g, "tokenizer.ggml.model", &model, NULL, e);
    if (s != TP_OK) goto done;
    int llama = !strcmp(model, "llama");
    if (!llama && strcmp(model, "gpt2")) {
        s = tp_fail(e, TP_ERR_UNSUPPORTED, "%s: tokenizer.ggml.model '%.32s' is not supported (llama, gpt2)", path, model);
        goto done;
    }
    if ((s = tp_gguf_get_str(g, "tokenizer.ggml.pre", &pre, &found, e)) != TP_OK) goto done;
    if (found && strcmp(pre, "default") && (llama || strcmp(pre, "gpt-2"))) {
        s = tp_fail(e, TP_ERR_UNSUPPORTED, "%s: tokenizer.ggml.pre '%.32s' is not supported with tokenizer model '%s'",
                    path, pre, model);
        goto done;
    }
    if ((s = tp_gguf_get_arr(g, "tokenizer.ggml.tokens", TP_GGUF_STRING, &toks, NULL, e)) != TP_OK ||
        (s = tp_gguf_get_arr(g, "tokenizer.ggml.token_type", TP_GGUF_I32, &types, &found, e)) != TP_OK ||
        (s = tp_gguf_get_arr(g, "tokenizer.ggml.scores", TP_GGUF_F32, &scores, llama ? NULL : &found, e)) != TP_OK ||
        (s = tp_gguf_get_arr(g, "tokenizer.ggml.merges", TP_GGUF_STRING, &merges, llama ? &found : NULL, e)) != TP_OK ||
        (s = tp_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos, &found, e)) != TP_OK ||
        (s = tp_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &add_eos, &found, e)) != TP_OK ||
        (s = tp_gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &bos, &has_bos, e)) != TP_OK ||
        (s = tp_gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &eos, &has_eos, e)) != TP_OK ||
        (s = tp_gguf_get_u32(g, "tokenizer.ggml.unknown_token_id", &unk, &has_unk, e)) != TP_OK)
        goto done;
    uint64_t n = toks->arr_n;
    if (n == 0 || n > MAX_SIZE || (scores && scores->arr_n != n) || (types && types->arr_n != n)) {
        s = tp_fail(e, TP_ERR_FORMAT, "%s: tokenizer.ggml.tokens has %llu entries, scores %lld, token_type %lld", path,
                    (unsigned long long)n, scores ? (long long)scores->arr_n : -1LL,
                    types ? (long long)types->arr_n : -1LL);
        goto done;
    }
    if ((has_bos && bos >= n) || (has_eos && eos >= n) || (has_unk && unk >= n)) {
        s = tp_fail(e, TP_ERR_FORMAT, "%s: a tokenizer.ggml special token id is past the %llu tokens", path,
                    (unsigned long long)n);
        goto done;
    }
    if (add_bos < 0) add_bos = llama; /* llama.cpp's defaults: SentencePiece adds BOS, GPT-2 does not */
    if (add_bos && !has_bos) { s = tp_fail(e, TP_ERR_FORMAT, "%s: add_bos_token without tokenizer.ggml.bos_token_id", path); goto done; }
    if (add_eos && !has_eos) { s = tp_fail(e, TP_ERR_FORMAT, "%s: add_eos_token without tokenizer.ggml.eos_token_id", path); goto done; }
    size_t cap = 16;
    while (cap < 2 * (size_t)n) cap *= 2;
    sm.mask = cap - 1;
    sm.s = calloc(cap, sizeof *sm.s);
    sm.n = calloc(cap, sizeof *sm.n);
    sm.id = calloc(cap, sizeof *sm.id);
    root = cJSON_CreateObject();
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    cJSON *jm = cJSON_AddObjectToObject(root, "model");
    cJSON *vocab = jm ? cJSON_AddObjectToObject(jm, "vocab") : NULL;
    cJSON *jmerges = jm ? cJSON_AddArrayToObject(jm, "merges") : NULL;
    if (!sm.s || !sm.n || !sm.id || !added || !vocab || !jmerges) { s = tp_fail(e, TP_ERR_NOMEM, "%s: out of memory", path); goto done; }
    cJSON_AddStringToObject(jm, "type", "BPE");
    for (uint64_t i = 0; i < n; i++) {
        const tp_gguf_str *t = &toks->strs[i];
        if (!t->len || memchr(t->s, 0, (size_t)t->len)) {
            s = tp_fail(e, TP_ERR_FORMAT, "%s: tokenizer.ggml.tokens[%llu] is empty or holds a NUL byte", path,
                        (unsigned long long)i);
            goto done;
        }
        int32_t ty = types ? (int32_t)tp_gguf_arr_i64(types, i) : 1;
        /* llama.cpp token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte */
        if (ty == 2 || ty == 3 || ty == 4) {
            cJSON *a = cJSON_CreateObject();
            cJSON_AddItemToArray(added, a);
            cJSON_AddNumberToObject(a, "id", (double)i);
            cJSON_AddItemToObject(a, "content", jstrn(t->s, (size_t)t->len));
            cJSON_AddBoolToObject(a, "special", ty != 4);
        }
        /* a repeated piece keeps its first id (it could never be produced twice) */
        if (sm_put(&sm, t->s, (size_t)t->len, (int32_t)i)) {
            cJSON *num = cJSON_CreateNumber((double)i);
            char *key = malloc((size_t)t->len + 1);
            if (!key || !num) { free(key); cJSON_Delete(num); s = tp_fail(e, TP_ERR_NOMEM, "%s: out of memory", path); goto done; }
            memcpy(key, t->s, (size_t)t->len);
            key[t->len] = 0;
            cJSON_AddItemToObject(vocab, key, num);
            free(key);
        }
    }
    if (llama) {
        /* merges as transformers' SentencePieceExtractor derives them: for every piece (in id
         * order) every split into two pieces of the vocab, a piece's splits ordered by (left id, right
         * id), then all stably sorted by the piece's score, highest first */
        size_t nm = 0, cm = 1024;
        mg = malloc(cm * sizeof *mg);
        if (!mg) { s = tp_fail(e, TP_ERR_NOMEM, "%s: out of memory", path); goto done; }
        for (uint64_t i = 0; i < n; i++) {
            const tp_gguf_str *t = &toks->strs[i];
            size_t first = nm;
            for (size_t p = 1; p < t->len; p++) {
                if (((uint8_t)t->s[p] & 0xC0) == 0x80) continue; /* split between characters only */
                int32_t l = sm_get(&sm, t->s, p), r = sm_get(&sm, t->s + p, (size_t)t->len - p);
                if (l < 0 || r < 0) continue;
                if (nm == cm) {
                    merge *q = realloc(mg, 2 * cm * sizeof *mg);
                    if (!q) { s = tp_fail(e, TP_ERR_NOMEM, "%s: out of memory", path); goto done; }
                    mg = q;
                    cm *= 2;
                }
                mg[nm++] = (merge){tp_gguf_arr_f64(scores, i), 0, l, r, p, (int32_t)i};
            }
            qsort(mg + first, nm - first, sizeof *mg, cmp_local);
        }
        for (size_t i = 0; i < nm; i++) mg[i].seq = i;
        qsort(mg, nm, sizeof *mg, cmp_merge);
        for (size_t i = 0; i < nm; i++) {
            const tp_gguf_str *t = &toks->strs[mg[i].piece];
            cJSON *pair = cJSON_CreateArray();
            cJSON_AddItemToArray(jmerges, pair);
            cJSON_AddItemToArray(pair, jstrn(t->s, mg[i].lpos));
            cJSON_AddItemToArray(pair, jstrn(t->s + mg[i].lpos, (size_t)t->len - mg[i].lpos));
        }
        if (has_unk) cJSON_AddItemToObject(jm, "unk_token", jstrn(toks->strs[unk].s, (size_t)toks->strs[unk].len));
        cJSON_AddBoolToObject(jm, "fuse_unk", 1);
        cJSON_AddBoolToObject(jm, "byte_fallback", 1);
        cJSON *norm = cJSON_Parse("{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\xe2\x96\x81\"},"
                                  "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xe2\x96\x81\"}]}");
        cJSON *dec = cJSON_Parse("{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":"
                                 "\"\xe2\x96\x81\"},\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},"
                                 "{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}]}");
        cJSON_AddItemToObject(root, "normalizer", norm);
        cJSON_AddItemToObject(root, "decoder", dec);
    } else {
        for (uint64_t i = 0; i < merges->arr_n; i++)
            cJSON_AddItemToArray(jmerges, jstrn(merges->strs[i].s, (size_t)merges->strs[i].len));
        cJSON_AddItemToObject(root, "pre_tokenizer",
                              cJSON_Parse("{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,"
                                          "\"use_regex\":true}"));
        cJSON_AddItemToObject(root, "decoder", cJSON_Parse("{\"type\":\"ByteLevel\",\"add_prefix_space\":true,"
                                                            "\"trim_offsets\":true,\"use_regex\":true}"));
    }
    if (add_bos || add_eos) {
        cJSON *pp = cJSON_AddObjectToObject(root, "post_processor");
        cJSON_AddStringToObject(pp, "type", "TemplateProcessing");
        cJSON *single = cJSON_AddArrayToObject(pp, "single");
        cJSON *sp = cJSON_AddObjectToObject(pp, "special_tokens");
        for (int w = 0; w < 3; w++) {
            if (w == 1) {
                cJSON *q = cJSON_CreateObject();
                cJSON *sq = cJSON_AddObjectToObject(q, "Sequence");
                cJSON_AddStringToObject(sq, "id", "A");
                cJSON_AddItemToArray(single, q);
                continue;
            }
            if (!(w == 0 ? add_bos : add_eos)) continue;
            uint32_t id = w == 0 ? bos : eos;
            const char *nm = w == 0 ? "bos" : "eos";
            cJSON *q = cJSON_CreateObject();
            cJSON *stk = cJSON_AddObjectToObject(q, "SpecialToken");
            cJSON_AddStringToObject(stk, "id", nm);
            cJSON_AddItemToArray(single, q);
            cJSON *def = cJSON_AddObjectToObject(sp, nm);
            cJSON *ids = cJSON_AddArrayToObject(def, "ids");
            cJSON_AddItemToArray(ids, cJSON_CreateNumber(id));
        }
    }
    text = cJSON_PrintUnformatted(root);
    if (!text) { s = tp_fail(e, TP_ERR_NOMEM, "%s: out of memory", path); goto done; }
    s = tp_tokenizer_load_text(path, text, strlen(text), out, e);
done:
    free(text);
    cJSON_Delete(root);
    free(mg);
    free(sm.s); free(sm.n); free(sm.id);
    free(model);
    free(pre);
    return s;
}

tp_status tp_model_tokenizer_load(const char *model, tp_tokenizer **out, tp_err *e) {
    *out = NULL;
    if (tp_gguf_is_model_path(model)) {
        tp_gguf *g = NULL;
        tp_status s = tp_gguf_open(model, &g, e);
        if (s == TP_OK) s = tp_gguf_tokenizer(g, out, e);
        tp_gguf_close(g);
        return s;
    }
    size_t n = strlen(model) + 32;
    char *p = malloc(n);
    if (!p) return tp_fail(e, TP_ERR_NOMEM, "out of memory");
    snprintf(p, n, "%s/tokenizer.json", model);
    tp_status s = tp_tokenizer_load(p, out, e);
    free(p);
    return s;
}

/* ---- a GGUF quantisation evaluated against its source checkpoint (tenpak eval --artifact F.gguf) ---- */

tp_status tp_gguf_model_load_artifact(const char *gguf, const char *model_dir, const tp_model_opts *mopts,
                                      struct tp_model **out, tp_artifact_model *info, tp_err *e) {
    *out = NULL;
    memset(info, 0, sizeof *info);
    if (!model_dir)
        return tp_fail(e, TP_ERR_ARG, "%s: a GGUF records no source checkpoint: give the one it came from with --model DIR",
                       gguf);
    tp_model_config hc;
    char cpath[4200];
    snprintf(cpath, sizeof cpath, "%s/config.json", model_dir);
    tp_status s = tp_config_load(cpath, &hc, e);
    if (s != TP_OK) return s;
    tp_model *m = NULL;
    if ((s = tp_model_load(gguf, mopts, &m, e)) != TP_OK) return s;
    const tp_model_config *c = tp_model_cfg(m);
    if (c->arch != hc.arch || c->n_layer != hc.n_layer || c->d_model != hc.d_model || c->n_head != hc.n_head ||
        c->n_kv_head != hc.n_kv_head || c->head_dim != hc.head_dim || c->d_ff != hc.d_ff || c->vocab != hc.vocab) {
        tp_model_free(m);
        return tp_fail(e, TP_ERR_ARG, "%s is not a quantisation of %s: its %s (layers %d, hidden %d, vocab %d) differs "
                       "from the checkpoint's %s (layers %d, hidden %d, vocab %d)", gguf, model_dir, c->model_type,
                       c->n_layer, c->d_model, c->vocab, hc.model_type, hc.n_layer, hc.d_model, hc.vocab);
    }
    snprintf(info->model_dir, sizeof info->model_dir, "%s", model_dir);
    snprintf(info->model_type, sizeof info->model_type, "%s", c->model_type);
    /* the checkpoint's fingerprint, as for a .tpk (its files, not the GGUF's) */
    tp_st_set *hf = NULL;
    uint8_t dg[32];
    if ((s = tp_model_files_open(model_dir, &hf, e)) == TP_OK && (s = tp_st_sha256(hf, dg, e)) == TP_OK)
        tp_sha256_hex(dg, info->model_sha256);
    tp_st_close(hf);
    if (s != TP_OK) { tp_model_free(m); return s; }
    const owner *o = tp_st_set_owner(tp_model_files(m), owner_free);
    size_t fsize = 0;
    tp_gguf_map(o->g, &fsize);
    info->size.artifact_bytes = fsize;
    /* the codec: the quantised types present, by count ("gguf:Q4_1x36+F32x13") */
    int counts[64] = {0};
    for (size_t i = 0; i < tp_gguf_num_tensors(o->g); i++) {
        const tp_gguf_tensor *t = tp_gguf_tensor_at(o->g, i);
        info->size.ntensors++;
        info->size.total_numel += (uint64_t)t->nelem;
        info->size.fp32_bytes += (uint64_t)t->nelem * 4;
        info->size.fp16_bytes += (uint64_t)t->nelem * 2;
        if (t->type >= 0 && t->type < 64) counts[t->type]++;
        if (t->type != TP_GGML_F32 && t->type != TP_GGML_F16 && t->type != TP_GGML_BF16) {
            info->size.compressed_numel += (uint64_t)t->nelem;
            info->size.compressed_bytes += t->nbytes;
            info->size.ncompressed++;
        }
    }
    if (info->size.compressed_numel)
        info->size.theory_bpw = 8.0 * (double)info->size.compressed_bytes / (double)info->size.compressed_numel;
    size_t k = (size_t)snprintf(info->codec, sizeof info->codec, "gguf");
    for (int t = 0; t < 64 && k < sizeof info->codec; t++)
        if (counts[t])
            k += (size_t)snprintf(info->codec + k, sizeof info->codec - k, "%s%sx%d", k == 4 ? ":" : "+",
                                  tp_gguf_type_name(t), counts[t]);
    for (size_t i = 0; i < o->nq; i++) info->packed_bytes += sizeof(gview);
    info->files_checked = 0;
    *out = m;
    return TP_OK;
}

tp_status tp_model_config_load(const char *model, tp_model_config *c, tp_err *e) {
    if (tp_gguf_is_model_path(model)) {
        tp_gguf *g = NULL;
        tp_status s = tp_gguf_open(model, &g, e);
        if (s == TP_OK) s = tp_gguf_config(g, c, e);
        tp_gguf_close(g);
        return s;
    }
    char p[4200];
    snprintf(p, sizeof p, "%s/config.json", model);
    return tp_config_load(p, c, e);
}
