/* tenpak artifact -> GGUF: see gguf_export.h for the mapping of codecs to ggml types. */
#include "pipeline/gguf_export.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pipeline/artifact.h"
#include "pipeline/artifact_model.h"
#include "pipeline/codec.h"
#include "pipeline/config.h"
#include "pipeline/gguf.h"
#include "pipeline/gguf_model.h"
#include "tenpak/ggml.h"
#include "tenpak/quant.h"

typedef struct bufs { void **p; size_t n; int oom; } bufs;
static void *keep(bufs *b, void *p) {
    if (!p) { b->oom = 1; return NULL; }
    void **q = realloc(b->p, (b->n + 1) * sizeof *q);
    if (!q) { free(p); b->oom = 1; return NULL; }
    b->p = q;
    b->p[b->n++] = p;
    return p;
}
static void bufs_free(bufs *b) {
    for (size_t i = 0; i < b->n; i++) free(b->p[i]);
    free(b->p);
}

/* GGUF row h*hd + 2j + s holds HF row h*hd + s*hd/2 + j (llama.cpp's rotary layout) */
static void permute_rows(uint8_t *dst, const uint8_t *src, int heads, int hd, size_t rb) {
    for (int h = 0; h < heads; h++)
        for (int s = 0; s < 2; s++)
            for (int j = 0; j < hd / 2; j++)
                memcpy(dst + (size_t)(h * hd + 2 * j + s) * rb, src + (size_t)(h * hd + s * (hd / 2) + j) * rb, rb);
}

/* tenpak int4 (g = 32, cols % 32 == 0) -> Q4_1 blocks, row after row */
static void int4_to_q4_1(const tp_qmat *q, uint8_t *dst) {
    int64_t nb = q->cols / 32;
    for (int64_t r = 0; r < q->rows; r++)
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *blk = dst + ((size_t)r * (size_t)nb + (size_t)b) * 20;
            uint16_t d = q->scale[r * q->ngroups + b], m = q->offset[r * q->ngroups + b];
            blk[0] = (uint8_t)d; blk[1] = (uint8_t)(d >> 8);
            blk[2] = (uint8_t)m; blk[3] = (uint8_t)(m >> 8);
            for (int j = 0; j < 16; j++)
                blk[4 + j] = (uint8_t)(tp_qmat_code(q, r, b * 32 + j) | tp_qmat_code(q, r, b * 32 + j + 16) << 4);
        }
}

/* ---- tokenizer.model: ModelProto { repeated SentencePiece pieces = 1 { piece = 1; score = 2; type = 3 } } ---- */

typedef struct sp_piece { const char *s; size_t n; float score; int32_t type; } sp_piece;
static int varint(const uint8_t *p, size_t len, size_t *i, uint64_t *v) {
    *v = 0;
    for (int sh = 0; sh < 64; sh += 7) {
        if (*i >= len) return 0;
        uint8_t c = p[(*i)++];
        *v |= (uint64_t)(c & 0x7f) << sh;
        if (!(c & 0x80)) return 1;
    }
    return 0;
}
/* one field: its number, wire type and (for length-delimited) the bytes; 0 when malformed */
static int field(const uint8_t *p, size_t len, size_t *i, uint32_t *f, uint32_t *wt, const uint8_t **d, uint64_t *v) {
    uint64_t key;
    if (!varint(p, len, i, &key)) return 0;
    *f = (uint32_t)(key >> 3);
    *wt = (uint32_t)(key & 7);
    *d = NULL;
    switch (*wt) {
    case 0: return varint(p, len, i, v);
    case 1: if (len - *i < 8) return 0; *d = p + *i; *i += 8; return 1;
    case 5: if (len - *i < 4) return 0; *d = p + *i; *i += 4; return 1;
    case 2:
        if (!varint(p, len, i, v) || *v > len - *i) return 0;
        *d = p + *i;
        *i += (size_t)*v;
        return 1;
    default: return 0;
    }
}
static tp_status sp_parse(const char *path, const uint8_t *p, size_t len, sp_piece **out, size_t *n, tp_err *e) {
    *out = NULL;
    *n = 0;
    size_t cap = 0, i = 0;
    while (i < len) {
        uint32_t f, wt;
        const uint8_t *d;
        uint64_t v;
        if (!field(p, len, &i, &f, &wt, &d, &v)) goto bad;
        if (f != 1 || wt != 2) continue;
        sp_piece sp = {"", 0, 0.0f, 1};
        size_t j = 0, m = (size_t)v;
        while (j < m) {
            uint32_t g, wt2;
            const uint8_t *d2;
            uint64_t v2;
            if (!field(d, m, &j, &g, &wt2, &d2, &v2)) goto bad;
            if (g == 1 && wt2 == 2) { sp.s = (const char *)d2; sp.n = (size_t)v2; }
            else if (g == 2 && wt2 == 5) { uint32_t b = (uint32_t)d2[0] | (uint32_t)d2[1] << 8 | (uint32_t)d2[2] << 16 | (uint32_t)d2[3] << 24; memcpy(&sp.score, &b, 4); }
            else if (g == 3 && wt2 == 0) sp.type = (int32_t)v2;
        }
        if (*n == cap) {
            cap = cap ? 2 * cap : 1024;
            sp_piece *q = realloc(*out, cap * sizeof *q);
            if (!q) { free(*out); *out = NULL; return tp_fail(e, TP_ERR_NOMEM, "%s: out of memory", path); }
            *out = q;
        }
        (*out)[(*n)++] = sp;
    }
    return TP_OK;
bad:
    free(*out);
    *out = NULL;
    return tp_fail(e, TP_ERR_FORMAT, "%s: not a SentencePiece model (malformed protobuf at byte %zu)", path, i);
}

static tp_status tokenizer_llama(tp_gguf_w *w, const char *dir, const tp_model_config *c, bufs *b, tp_err *e) {
    char path[4200];
    snprintf(path, sizeof path, "%s/tokenizer.model", dir);
    size_t len;
    uint8_t *p = tp_read_file(path, &len, e);
    if (!p)
        return tp_fail(e, TP_ERR_IO, "%s: a llama GGUF needs the SentencePiece model's scores: %s", path, e->msg);
    keep(b, p);
    sp_piece *sp;
    size_t n;
    tp_status s = sp_parse(path, p, len, &sp, &n, e);
    if (s != TP_OK) return s;
    keep(b, sp);
    if ((int64_t)n != c->vocab)
        return tp_fail(e, TP_ERR_FORMAT, "%s has %zu pieces, config.json's vocab_size is %d", path, n, c->vocab);
    const char **tok = keep(b, malloc(n * sizeof *tok));
    size_t *tl = keep(b, malloc(n * sizeof *tl));
    float *sc = keep(b, malloc(n * sizeof *sc));
    int32_t *ty = keep(b, malloc(n * sizeof *ty));
    if (b->oom) return tp_fail(e, TP_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) { tok[i] = sp[i].s; tl[i] = sp[i].n; sc[i] = sp[i].score; ty[i] = sp[i].type; }
    tp_gguf_w_str(w, "tokenizer.ggml.model", "llama");
    tp_gguf_w_str(w, "tokenizer.ggml.pre", "default");
    tp_gguf_w_arr_str(w, "tokenizer.ggml.tokens", tok, tl, n);
    tp_gguf_w_arr_f32(w, "tokenizer.ggml.scores", sc, n);
    tp_gguf_w_arr_i32(w, "tokenizer.ggml.token_type", ty, n);
    tp_gguf_w_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)(c->bos_id >= 0 ? c->bos_id : 1));
    tp_gguf_w_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)(c->eos_id >= 0 ? c->eos_id : 2));
    tp_gguf_w_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    tp_gguf_w_bool(w, "tokenizer.ggml.add_bos_token", 1);
    tp_gguf_w_bool(w, "tokenizer.ggml.add_eos_token", 0);
    return TP_OK;
}

static tp_status tokenizer_gpt2(tp_gguf_w *w, const char *dir, const tp_model_config *c, bufs *b, tp_err *e) {
    char path[4200];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    size_t len;
    char *text = tp_read_file(path, &len, e);
    if (!text) return TP_ERR_IO;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    tp_status s = TP_OK;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(m, "vocab"), *merges = cJSON_GetObjectItemCaseSensitive(m, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), *it;
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges)) {
        cJSON_Delete(root);
        return tp_fail(e, TP_ERR_FORMAT, "%s: no BPE vocab and merges", path);
    }
    int n = c->vocab;
    const char **tok = keep(b, calloc((size_t)n, sizeof *tok));
    int32_t *ty = keep(b, calloc((size_t)n, sizeof *ty));
    int nm = cJSON_GetArraySize(merges), k = 0;
    const char **mg = keep(b, calloc((size_t)nm + 1, sizeof *mg));
    if (b->oom) { cJSON_Delete(root); return tp_fail(e, TP_ERR_NOMEM, "out of memory"); }
    cJSON_ArrayForEach(it, vocab) {
        int64_t id = -1;
        if (!tp_json_int(it, 0, n - 1, &id)) {
            s = tp_fail(e, TP_ERR_FORMAT, "%s: token '%s' has an id outside the vocab of %d", path, it->string, n);
            break;
        }
        tok[id] = keep(b, strdup(it->string));
        ty[id] = 1; /* NORMAL */
    }
    cJSON_ArrayForEach(it, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        const char *ct = tp_json_str(it, "content");
        int64_t i = -1;
        if (s != TP_OK || !tp_json_int(id, 0, n - 1, &i) || !ct) continue;
        if (!tok[i]) tok[i] = keep(b, strdup(ct));
        ty[i] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "special")) ? 3 : 4; /* CONTROL / USER_DEFINED */
    }
    for (int i = 0; i < n && s == TP_OK; i++)
        if (!tok[i]) s = tp_fail(e, TP_ERR_FORMAT, "%s: no token with id %d (the vocab has holes)", path, i);
    cJSON_ArrayForEach(it, merges) {
        if (s != TP_OK) break;
        if (cJSON_IsString(it)) mg[k++] = keep(b, strdup(it->valuestring));
        else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 && cJSON_IsString(it->child) &&
                 cJSON_IsString(it->child->next)) {
            size_t l = strlen(it->child->valuestring) + strlen(it->child->next->valuestring) + 2;
            char *x = keep(b, malloc(l));
            if (x) snprintf(x, l, "%s %s", it->child->valuestring, it->child->next->valuestring);
            mg[k++] = x;
        } else s = tp_fail(e, TP_ERR_FORMAT, "%s: merge #%d is neither \"a b\" nor [a, b]", path, k);
    }
    cJSON_Delete(root);
    if (s != TP_OK) return s;
    if (b->oom) return tp_fail(e, TP_ERR_NOMEM, "out of memory");
    tp_gguf_w_str(w, "tokenizer.ggml.model", "gpt2");
    tp_gguf_w_str(w, "tokenizer.ggml.pre", "gpt-2");
    tp_gguf_w_arr_str(w, "tokenizer.ggml.tokens", tok, NULL, (uint64_t)n);
    tp_gguf_w_arr_i32(w, "tokenizer.ggml.token_type", ty, (uint64_t)n);
    tp_gguf_w_arr_str(w, "tokenizer.ggml.merges", mg, NULL, (uint64_t)k);
    if (c->bos_id >= 0) tp_gguf_w_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)c->bos_id);
    if (c->eos_id >= 0) tp_gguf_w_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)c->eos_id);
    tp_gguf_w_bool(w, "tokenizer.ggml.add_bos_token", 0);
    return TP_OK;
}

static void metadata(tp_gguf_w *w, const tp_model_config *c, const char *name) {
    int llama = c->arch == TP_ARCH_LLAMA;
    const char *a = llama ? "llama" : "gpt2";
    char k[96];
#define KEY(s) (snprintf(k, sizeof k, "%s." s, a), k)
    tp_gguf_w_str(w, "general.architecture", a);
    tp_gguf_w_str(w, "general.name", name);
    tp_gguf_w_u32(w, KEY("context_length"), (uint32_t)c->n_ctx);
    tp_gguf_w_u32(w, KEY("embedding_length"), (uint32_t)c->d_model);
    tp_gguf_w_u32(w, KEY("block_count"), (uint32_t)c->n_layer);
    tp_gguf_w_u32(w, KEY("feed_forward_length"), (uint32_t)c->d_ff);
    tp_gguf_w_u32(w, KEY("attention.head_count"), (uint32_t)c->n_head);
    if (llama) {
        tp_gguf_w_u32(w, KEY("attention.head_count_kv"), (uint32_t)c->n_kv_head);
        tp_gguf_w_u32(w, KEY("rope.dimension_count"), (uint32_t)c->head_dim);
        if (c->head_dim * c->n_head != c->d_model) tp_gguf_w_u32(w, KEY("attention.key_length"), (uint32_t)c->head_dim);
        tp_gguf_w_f32(w, KEY("attention.layer_norm_rms_epsilon"), (float)c->norm_eps);
        tp_gguf_w_f32(w, KEY("rope.freq_base"), (float)c->rope_theta);
        if (c->rope_type == TP_ROPE_LINEAR) {
            tp_gguf_w_str(w, KEY("rope.scaling.type"), "linear");
            tp_gguf_w_f32(w, KEY("rope.scaling.factor"), (float)c->rope_factor);
        }
        tp_gguf_w_u32(w, KEY("vocab_size"), (uint32_t)c->vocab);
    } else {
        tp_gguf_w_f32(w, KEY("attention.layer_norm_epsilon"), (float)c->norm_eps);
    }
#undef KEY
}

static int int4_g32(const char *spec) {
    tp_codec c;
    tp_err e;
    if (tp_codec_parse(spec, &c, &e) != TP_OK || c.nstages != 1) return 0;
    return !strcmp(c.stages[0].method->name, "int4") && tp_codec_param_get(&c.stages[0], "g") == 32;
}

static tp_status add_tensor(tp_gguf_w *w, const tp_artifact *a, const cJSON *rec, const tp_model_config *c,
                            int allow_f16, bufs *b, tp_gguf_export_result *r, int *has_f16, tp_err *e) {
    const char *name = tp_json_str(rec, "name"), *codec = tp_json_str(rec, "codec"), *dt = tp_json_str(rec, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(rec, "shape");
    int llama = c->arch == TP_ARCH_LLAMA, flags = 0;
    char gname[300];
    if (!name || !codec || !dt || !cJSON_IsArray(shape))
        return tp_fail(e, TP_ERR_FORMAT, "%s: a tensor record lacks name, codec, dtype or shape", a->path);
    if (!tp_gguf_name_of_hf(llama, name, gname, sizeof gname, &flags))
        return tp_fail(e, TP_ERR_UNSUPPORTED, "%s: tensor %s has no GGUF name for %s", a->path, name, c->model_type);
    int nd = cJSON_GetArraySize(shape);
    int64_t sh[2] = {0, 1};
    if (nd < 1 || nd > 2) return tp_fail(e, TP_ERR_FORMAT, "%s: tensor %s has %d dimensions", a->path, name, nd);
    for (int i = 0; i < nd; i++) {
        /* each dimension under 2^31, so the products below stay inside int64_t */
        if (!tp_json_int(cJSON_GetArrayItem(shape, i), 1, INT32_MAX, &sh[i]))
            return tp_fail(e, TP_ERR_FORMAT, "%s: tensor %s has a bad shape", a->path, name);
    }
    int heads = (flags & 1) ? c->n_head : c->n_kv_head;
    uint8_t *blob = NULL;
    size_t len = 0;
    tp_status s = tp_artifact_read_record(a, rec, &blob, &len, e);
    if (s != TP_OK) return s;
    /* out: [orow][ocol] in GGUF order (ne = {ocol, orow}) */
    int64_t orow = nd == 2 ? sh[0] : 1, ocol = nd == 2 ? sh[1] : sh[0];
    int type;
    uint8_t *out = NULL;
    size_t outn = 0;
    if (!strcmp(codec, "raw")) {
        int st = !strcmp(dt, "F32") ? TP_GGML_F32 : !strcmp(dt, "F16") ? TP_GGML_F16 : !strcmp(dt, "BF16") ? TP_GGML_BF16 : -1;
        size_t es = st == TP_GGML_F32 ? 4 : 2;
        if (st < 0 || len != (size_t)(sh[0] * sh[1]) * es) {
            tp_free(blob);
            return tp_fail(e, TP_ERR_FORMAT, "%s: raw tensor %s is %s of %zu bytes: not F32/F16/BF16 of its shape",
                           a->path, name, dt, len);
        }
        r->nraw++;
        if (nd == 1) { /* norms and biases in F32, as llama.cpp's converter writes them */
            float *f = malloc((size_t)sh[0] * 4);
            for (int64_t i = 0; f && i < sh[0]; i++) {
                uint16_t h = (uint16_t)(blob[2 * i] | blob[2 * i + 1] << 8);
                if (st == TP_GGML_F32) memcpy(&f[i], blob + 4 * i, 4);
                else f[i] = st == TP_GGML_F16 ? tp_f16_to_f32(h) : tp_bf16_to_f32(h);
            }
            out = (uint8_t *)f;
            outn = (size_t)sh[0] * 4;
            type = TP_GGML_F32;
        } else if ((flags & 4)) { /* GPT-2 Conv1D [in, out] -> [out, in] */
            out = malloc(len);
            for (int64_t i = 0; out && i < sh[0]; i++)
                for (int64_t j = 0; j < sh[1]; j++)
                    memcpy(out + ((size_t)j * (size_t)sh[0] + (size_t)i) * es, blob + ((size_t)i * (size_t)sh[1] + (size_t)j) * es, es);
            orow = sh[1];
            ocol = sh[0];
            outn = len;
            type = st;
        } else {
            out = malloc(len);
            if (out) memcpy(out, blob, len);
            outn = len;
            type = st;
        }
        if (type == TP_GGML_F16) *has_f16 = 1;
    } else {
        const cJSON *jr = cJSON_GetObjectItemCaseSensitive(rec, "rows"), *jc = cJSON_GetObjectItemCaseSensitive(rec, "cols");
        int transposed = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "transposed"));
        int64_t rows = 0, cols = 0;
        if (!tp_json_int(jr, 1, INT32_MAX, &rows) || !tp_json_int(jc, 1, INT32_MAX, &cols) || rows * cols != sh[0] * sh[1]) {
            tp_free(blob);
            return tp_fail(e, TP_ERR_FORMAT, "%s: tensor %s: rows x cols does not match its shape", a->path, name);
        }
        /* the record is [rows][cols]; a GPT-2 Conv1D one must be stored transposed ([out, in]) */
        if ((flags & 4) && !transposed && !allow_f16) {
            tp_free(blob);
            return tp_fail(e, TP_ERR_UNSUPPORTED, "%s: tensor %s (codec %s) is stored [in, out]: no exact GGUF layout", a->path,
                           name, codec);
        }
        if (int4_g32(codec) && cols % 32 == 0 && (!(flags & 4) || transposed)) {
            tp_qmat q, own = {0};
            if (!tp_qmat_view(&q, TP_Q_INT4, rows, cols, 32, blob)) {
                if (tp_qmat_alloc(&own, TP_Q_INT4, rows, cols, 32) != TP_OK) { tp_free(blob); return tp_fail(e, TP_ERR_NOMEM, "out of memory"); }
                tp_qmat_unpack(&own, blob);
                q = own;
            }
            outn = (size_t)rows * (size_t)(cols / 32) * 20;
            out = malloc(outn);
            if (out) int4_to_q4_1(&q, out);
            if (own.codes) tp_qmat_free(&own);
            type = TP_GGML_Q4_1;
            r->nq4_1++;
        } else if (allow_f16) {
            tp_codec cd;
            float *W = tp_alloc((size_t)(rows * cols) * sizeof *W);
            if (!W) { tp_free(blob); return tp_fail(e, TP_ERR_NOMEM, "out of memory decoding %s", name); }
            if ((s = tp_codec_parse(codec, &cd, e)) == TP_OK) s = tp_codec_decode(&cd, blob, len, rows, cols, W, e);
            if (s != TP_OK) { tp_free(W); tp_free(blob); return s; }
            int tr = (flags & 4) && !transposed; /* a Conv1D decoded [in, out]: to [out, in] */
            outn = (size_t)(rows * cols) * 2;
            uint16_t *h = malloc(outn);
            for (int64_t i = 0; h && i < rows; i++)
                for (int64_t j = 0; j < cols; j++)
                    h[tr ? (size_t)j * (size_t)rows + (size_t)i : (size_t)i * (size_t)cols + (size_t)j] = tp_f32_to_f16(W[i * cols + j]);
            tp_free(W);
            out = (uint8_t *)h;
            orow = tr ? cols : rows;
            ocol = tr ? rows : cols;
            type = TP_GGML_F16;
            *has_f16 = 1;
            r->nf16_decoded++;
        } else {
            tp_free(blob);
            return tp_fail(e, TP_ERR_UNSUPPORTED, "%s: tensor %s has codec %s, which has no exact GGUF type (int4:g=32 is Q4_1); "
                           "--allow-f16 writes it decoded as F16", a->path, name, codec);
        }
        if (!(flags & 4) || transposed) { orow = rows; ocol = cols; }
    }
    tp_free(blob);
    if (!keep(b, out)) return tp_fail(e, TP_ERR_NOMEM, "out of memory converting %s", name);
    if ((flags & 3) && orow == (int64_t)heads * c->head_dim) {
        uint8_t *p = keep(b, malloc(outn));
        if (!p) return tp_fail(e, TP_ERR_NOMEM, "out of memory converting %s", name);
        permute_rows(p, out, heads, c->head_dim, outn / (size_t)orow);
        out = p;
    } else if (flags & 3) {
        return tp_fail(e, TP_ERR_FORMAT, "%s: tensor %s has %lld rows, expected %d heads x %d", a->path, name,
                       (long long)orow, heads, c->head_dim);
    }
    int64_t ne[2] = {ocol, orow};
    tp_gguf_w_tensor(w, gname, type, nd, ne, out, outn);
    r->ntensors++;
    return TP_OK;
}

tp_status tp_gguf_export(const char *artifact, const char *model_dir, const char *out, int allow_f16,
                         tp_gguf_export_result *r, tp_err *e) {
    memset(r, 0, sizeof *r);
    tp_artifact a;
    tp_status s = tp_artifact_open(artifact, &a, e);
    if (s != TP_OK) return s;
    bufs b = {0};
    tp_gguf_w *w = NULL;
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(a.header, "source");
    const char *dir = model_dir ? model_dir : tp_json_str(src, "dir");
    if (!dir) { s = tp_fail(e, TP_ERR_FORMAT, "%s: header lacks the source model: give it with --model DIR", artifact); goto done; }
    /* the folder's config and tokenizer must be the ones the artifact was made with */
    static const char *const files[2][2] = {{"config_sha256", "config.json"}, {"tokenizer_sha256", "tokenizer.json"}};
    for (int i = 0; i < 2 && s == TP_OK; i++) {
        const char *want = tp_json_str(src, files[i][0]);
        char have[65];
        if (!want) continue;
        if ((s = tp_source_file_sha256(dir, files[i][1], have, e)) == TP_OK && strcmp(have, want))
            s = tp_fail(e, TP_ERR_ARG, "%s was made with %s of sha256 %.12s..., but %s/%s has %.12s...", artifact,
                        files[i][1], want, dir, files[i][1], have);
    }
    if (s != TP_OK) goto done;
    tp_model_config c;
    char cpath[4200];
    snprintf(cpath, sizeof cpath, "%s/config.json", dir);
    if ((s = tp_config_load(cpath, &c, e)) != TP_OK) goto done;
    if (strcmp(c.model_type, "llama") && strcmp(c.model_type, "gpt2")) {
        s = tp_fail(e, TP_ERR_UNSUPPORTED, "%s: model_type '%s' cannot be exported yet (llama, gpt2)", artifact, c.model_type);
        goto done;
    }
    if (c.rope_type == TP_ROPE_LLAMA3) {
        s = tp_fail(e, TP_ERR_UNSUPPORTED, "%s: llama3 RoPE scaling cannot be exported yet", artifact);
        goto done;
    }
    w = tp_gguf_w_new(0);
    if (!w) { s = tp_fail(e, TP_ERR_NOMEM, "out of memory"); goto done; }
    const char *base = strrchr(dir, '/');
    metadata(w, &c, base && base[1] ? base + 1 : dir);
    s = c.arch == TP_ARCH_LLAMA ? tokenizer_llama(w, dir, &c, &b, e) : tokenizer_gpt2(w, dir, &c, &b, e);
    int has_f16 = 0;
    const cJSON *rec;
    cJSON_ArrayForEach(rec, a.tensors) {
        if (s != TP_OK) break;
        s = add_tensor(w, &a, rec, &c, allow_f16, &b, r, &has_f16, e);
    }
    if (s != TP_OK) goto done;
    /* llama_ftype: MOSTLY_Q4_1 = 3, MOSTLY_F16 = 1, ALL_F32 = 0 */
    tp_gguf_w_u32(w, "general.file_type", r->nq4_1 ? 3 : has_f16 ? 1 : 0);
    tp_gguf_w_u32(w, "general.quantization_version", 2);
    s = tp_gguf_w_write(w, out, e);
    struct stat st;
    if (s == TP_OK && stat(out, &st) == 0) r->file_bytes = (uint64_t)st.st_size;
done:
    tp_gguf_w_free(w);
    bufs_free(&b);
    tp_artifact_close(&a);
    return s;
}
