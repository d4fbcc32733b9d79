/* config.json parsing: see config.h. */
#include "pipeline/config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tenpak/files.h"

static const cJSON *item(const cJSON *o, const char *k) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNull(j) ? NULL : j;
}
/* First present numeric key among names (NULL-terminated); returns 1 if found. */
static int get_num(const cJSON *o, double *v, const char *a, const char *b) {
    const cJSON *j = item(o, a);
    if (!j && b) j = item(o, b);
    if (!cJSON_IsNumber(j)) return 0;
    *v = j->valuedouble;
    return 1;
}
/* an integer in int's range (tested before any conversion: converting a double outside it is
 * undefined, as fuzz_config found with 5e+257); NaN and infinities fail */
static int is_int(double d) { return d == floor(d) && fabs(d) <= 2147483647.0; }
static int get_int(const cJSON *o, int *v, const char *a, const char *b) {
    double d;
    if (!get_num(o, &d, a, b) || !is_int(d)) return 0;
    *v = (int)d;
    return 1;
}
static int get_bool(const cJSON *o, const char *k, int dflt) {
    const cJSON *j = item(o, k);
    return cJSON_IsBool(j) ? cJSON_IsTrue(j) : dflt;
}

/* A key that is present (not null) with the wrong type: "rms_norm_eps": "x" must not silently
 * become a default. kind: 'n' number, 'i' integer. */
static const char *wrong_type(const cJSON *o, const char *const *keys, char kind) {
    for (; *keys; keys++) {
        const cJSON *j = item(o, *keys);
        if (j && (!cJSON_IsNumber(j) || !isfinite(j->valuedouble) || (kind == 'i' && !is_int(j->valuedouble))))
            return *keys;
    }
    return NULL;
}

/* "model.layers.12.mlp..." / "transformer.h.3.attn...": the layer index, or -1 */
static long layer_of(const char *name) {
    for (const char *p = name; *p; p++) {
        if (p != name && p[-1] != '.') continue;
        size_t k = !strncmp(p, "layers.", 7) ? 7 : !strncmp(p, "h.", 2) ? 2 : 0;
        if (!k || p[k] < '0' || p[k] > '9') continue;
        char *end;
        long l = strtol(p + k, &end, 10);
        if (*end == '.' && l >= 0 && l < 1000000) return l;
    }
    return -1;
}

/* The checkpoint beside config.json (its index, or the one model.safetensors' header) must have
 * exactly the layers the config names: a config of 3 layers over a 6-layer checkpoint would load
 * and ignore the rest. No checkpoint there: nothing to compare. */
static tp_status check_layers(const char *path, int n_layer, tp_err *e) {
    const char *slash = strrchr(path, '/');
    size_t dl = slash ? (size_t)(slash - path) : 1;
    char *ip = malloc(dl + 40);
    if (!ip) return tp_fail(e, TP_ERR_NOMEM, "out of memory");
    snprintf(ip, dl + 40, "%.*s/model.safetensors.index.json", (int)dl, slash ? path : ".");
    cJSON *root = NULL;
    const cJSON *names = NULL;
    tp_err ignore;
    if (access(ip, F_OK) == 0) {
        size_t n;
        char *t = tp_read_file(ip, &n, &ignore);
        root = t ? cJSON_ParseWithLength(t, n) : NULL;
        free(t);
        names = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    } else {
        snprintf(ip, dl + 40, "%.*s/model.safetensors", (int)dl, slash ? path : ".");
        size_t size;
        int fd = access(ip, F_OK) == 0 ? tp_open_input(ip, &size, &ignore) : -1;
        uint8_t h8[8];
        if (fd >= 0 && size >= 8 && read(fd, h8, 8) == 8) {
            uint64_t hl = 0;
            for (int i = 7; i >= 0; i--) hl = hl << 8 | h8[i];
            char *t = hl <= size - 8 && hl <= (100u << 20) ? malloc(hl + 1) : NULL;
            if (t && read(fd, t, hl) == (ssize_t)hl) root = cJSON_ParseWithLength(t, hl);
            free(t);
        }
        if (fd >= 0) close(fd);
        names = root;
    }
    /* a damaged checkpoint is the safetensors reader's to report, with its own message */
    long top = -1;
    const char *top_name = NULL;
    if (cJSON_IsObject(names))
        for (const cJSON *it = names->child; it; it = it->next) {
            long l = it->string ? layer_of(it->string) : -1;
            if (l > top) { top = l; top_name = it->string; }
        }
    tp_status s = TP_OK;
    if (top >= 0 && top + 1 != n_layer)
        s = tp_fail(e, TP_ERR_FORMAT, "%s: %d layers, but the checkpoint beside it has %ld (tensors up to %s)", path, n_layer,
                    top + 1, top_name);
    cJSON_Delete(root);
    free(ip);
    return s;
}

tp_status tp_config_load(const char *path, tp_model_config *c, tp_err *e) {
    memset(c, 0, sizeof *c);
    size_t len;
    char *text = tp_read_file(path, &len, e);
    if (!text) return TP_ERR_IO;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    tp_status rc = tp_config_parse_json(root, path, c, e);
    if (rc == TP_OK) rc = check_layers(path, c->n_layer, e);
    cJSON_Delete(root);
    return rc;
}

tp_status tp_config_parse_json(const cJSON *root, const char *path, tp_model_config *c, tp_err *e) {
    memset(c, 0, sizeof *c);
    if (!root || !cJSON_IsObject(root)) return tp_fail(e, TP_ERR_FORMAT, "%s: not a well-formed JSON object", path);
    tp_status rc = TP_OK;
    static const char *const ints[] = {"n_layer", "n_embd", "n_head", "vocab_size", "n_positions", "n_ctx", "n_inner",
                                       "num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size",
                                       "num_key_value_heads", "head_dim", "max_position_embeddings", "bos_token_id",
                                       "sliding_window", NULL};
    /* eos_token_id may be a list (Llama-3); a number must be an integer */
    static const char *const eos[] = {"eos_token_id", NULL};
    static const char *const nums[] = {"layer_norm_epsilon", "rms_norm_eps", "rope_theta", NULL};
    const char *bad = wrong_type(root, ints, 'i'), *want = "an integer";
    if (!bad && cJSON_IsNumber(item(root, "eos_token_id"))) bad = wrong_type(root, eos, 'i');
    if (!bad && (bad = wrong_type(root, nums, 'n'))) want = "a finite number";
    if (bad) {
        rc = tp_fail(e, TP_ERR_FORMAT, "%s: \"%s\" must be %s", path, bad, want);
        goto done;
    }
    const cJSON *mt = item(root, "model_type");
    if (!cJSON_IsString(mt)) {
        rc = tp_fail(e, TP_ERR_FORMAT, "%s: no \"model_type\"", path);
        goto done;
    }
    snprintf(c->model_type, sizeof c->model_type, "%s", mt->valuestring);
    c->bos_id = c->eos_id = -1;
    get_int(root, &c->bos_id, "bos_token_id", NULL);
    get_int(root, &c->eos_id, "eos_token_id", NULL); /* a list (Llama-3) leaves -1: unused here */
    if (!strcmp(mt->valuestring, "gpt2")) {
        c->arch = TP_ARCH_GPT2;
        int ok = get_int(root, &c->n_layer, "n_layer", NULL) && get_int(root, &c->d_model, "n_embd", NULL) &&
                 get_int(root, &c->n_head, "n_head", NULL) && get_int(root, &c->vocab, "vocab_size", NULL);
        if (!ok) { rc = tp_fail(e, TP_ERR_FORMAT, "%s: gpt2 config needs n_layer, n_embd, n_head, vocab_size", path); goto done; }
        if (!get_int(root, &c->n_ctx, "n_positions", "n_ctx")) c->n_ctx = 1024;
        if (!get_int(root, &c->d_ff, "n_inner", NULL)) c->d_ff = 4 * c->d_model;
        c->n_kv_head = c->n_head;
        if (!get_num(root, &c->norm_eps, "layer_norm_epsilon", NULL)) c->norm_eps = 1e-5;
        const cJSON *af = item(root, "activation_function");
        const char *a = cJSON_IsString(af) ? af->valuestring : "gelu_new";
        if (!strcmp(a, "gelu_new") || !strcmp(a, "gelu_pytorch_tanh")) c->act = TP_ACT_GELU_NEW;
        else if (!strcmp(a, "gelu")) c->act = TP_ACT_GELU;
        else if (!strcmp(a, "relu")) c->act = TP_ACT_RELU;
        else { rc = tp_fail(e, TP_ERR_UNSUPPORTED, "%s: activation_function '%s' not supported", path, a); goto done; }
        /* GPT2LMHeadModel always ties lm_head to wte */
        c->tie_embeddings = get_bool(root, "tie_word_embeddings", 1);
        if (get_bool(root, "scale_attn_by_inverse_layer_idx", 0) || get_bool(root, "reorder_and_upcast_attn", 0) ||
            !get_bool(root, "scale_attn_weights", 1)) {
            rc = tp_fail(e, TP_ERR_UNSUPPORTED, "%s: non-default gpt2 attention scaling options are not supported", path);
            goto done;
        }
    } else if (!strcmp(mt->valuestring, "llama") || !strcmp(mt->valuestring, "qwen2") ||
               !strcmp(mt->valuestring, "mistral")) {
        c->arch = TP_ARCH_LLAMA;
        int ok = get_int(root, &c->n_layer, "num_hidden_layers", NULL) &&
                 get_int(root, &c->d_model, "hidden_size", NULL) &&
                 get_int(root, &c->n_head, "num_attention_heads", NULL) &&
                 get_int(root, &c->d_ff, "intermediate_size", NULL) && get_int(root, &c->vocab, "vocab_size", NULL);
        if (!ok) {
            rc = tp_fail(e, TP_ERR_FORMAT,
                         "%s: %s config needs num_hidden_layers, hidden_size, num_attention_heads, intermediate_size, "
                         "vocab_size", path, c->model_type);
            goto done;
        }
        if (!get_int(root, &c->n_kv_head, "num_key_value_heads", NULL)) c->n_kv_head = c->n_head;
        if (!get_int(root, &c->head_dim, "head_dim", NULL)) c->head_dim = 0;
        if (!get_int(root, &c->n_ctx, "max_position_embeddings", NULL)) c->n_ctx = 2048;
        if (!get_num(root, &c->norm_eps, "rms_norm_eps", NULL)) c->norm_eps = 1e-6;
        const cJSON *ha = item(root, "hidden_act");
        const char *a = cJSON_IsString(ha) ? ha->valuestring : "silu";
        if (!strcmp(a, "silu") || !strcmp(a, "swish")) c->act = TP_ACT_SILU;
        else if (!strcmp(a, "gelu_pytorch_tanh") || !strcmp(a, "gelu_new")) c->act = TP_ACT_GELU_NEW;
        else if (!strcmp(a, "gelu")) c->act = TP_ACT_GELU;
        else { rc = tp_fail(e, TP_ERR_UNSUPPORTED, "%s: hidden_act '%s' not supported", path, a); goto done; }
        /* LlamaConfig, Qwen2Config and MistralConfig all default to an untied lm_head */
        c->tie_embeddings = get_bool(root, "tie_word_embeddings", 0);
        int sw = 0;
        if (get_int(root, &sw, "sliding_window", NULL) && sw > 0) {
            /* qwen2 only applies it when use_sliding_window is true */
            if (strcmp(mt->valuestring, "qwen2") || get_bool(root, "use_sliding_window", 0)) c->sliding_window = sw;
        }
        /* RoPE: transformers 5 writes rope_parameters {rope_theta, rope_type, ...}; older checkpoints
         * write rope_theta at the top level and optional rope_scaling {type|rope_type, factor, ...}. */
        const cJSON *rp = item(root, "rope_parameters");
        const cJSON *rs = item(root, "rope_scaling");
        if (rp && !cJSON_IsObject(rp)) { rc = tp_fail(e, TP_ERR_FORMAT, "%s: rope_parameters must be an object", path); goto done; }
        static const char *const rnums[] = {"rope_theta", "factor", "low_freq_factor", "high_freq_factor", NULL};
        const cJSON *rsc = rp ? rp : (cJSON_IsObject(rs) ? rs : NULL);
        if (rsc && (bad = wrong_type(rsc, rnums, 'n'))) {
            rc = tp_fail(e, TP_ERR_FORMAT, "%s: RoPE \"%s\" must be a finite number", path, bad);
            goto done;
        }
        c->rope_theta = 10000.0;
        if (!(rp && get_num(rp, &c->rope_theta, "rope_theta", NULL))) get_num(root, &c->rope_theta, "rope_theta", NULL);
        const cJSON *sc = rp ? rp : (cJSON_IsObject(rs) ? rs : NULL);
        c->rope_type = TP_ROPE_DEFAULT;
        if (sc) {
            const cJSON *ty = item(sc, "rope_type");
            if (!ty) ty = item(sc, "type");
            const char *t = cJSON_IsString(ty) ? ty->valuestring : "default";
            if (!strcmp(t, "default")) c->rope_type = TP_ROPE_DEFAULT;
            else if (!strcmp(t, "linear")) c->rope_type = TP_ROPE_LINEAR;
            else if (!strcmp(t, "llama3")) c->rope_type = TP_ROPE_LLAMA3;
            else { rc = tp_fail(e, TP_ERR_UNSUPPORTED, "%s: RoPE type '%s' not supported", path, t); goto done; }
            if (c->rope_type != TP_ROPE_DEFAULT && !get_num(sc, &c->rope_factor, "factor", NULL)) {
                rc = tp_fail(e, TP_ERR_FORMAT, "%s: RoPE type '%s' needs a factor", path, t);
                goto done;
            }
            if (c->rope_type == TP_ROPE_LLAMA3 &&
                !(get_num(sc, &c->rope_low_freq_factor, "low_freq_factor", NULL) &&
                  get_num(sc, &c->rope_high_freq_factor, "high_freq_factor", NULL) &&
                  get_int(sc, &c->rope_orig_ctx, "original_max_position_embeddings", NULL))) {
                rc = tp_fail(e, TP_ERR_FORMAT, "%s: llama3 RoPE needs low/high_freq_factor and "
                             "original_max_position_embeddings", path);
                goto done;
            }
        }
    } else {
        rc = tp_fail(e, TP_ERR_UNSUPPORTED, "%s: unknown model_type '%s' (supported: gpt2, llama, qwen2, mistral)",
                     path, mt->valuestring);
        goto done;
    }
    /* a non-positive epsilon or base divides by zero or takes a root of a negative: NaN, silently */
    if (!(c->norm_eps > 0)) {
        rc = tp_fail(e, TP_ERR_FORMAT, "%s: the norm epsilon (%s) must be > 0, got %g", path,
                     c->arch == TP_ARCH_GPT2 ? "layer_norm_epsilon" : "rms_norm_eps", c->norm_eps);
        goto done;
    }
    if (c->arch == TP_ARCH_LLAMA && !(c->rope_theta > 0)) {
        rc = tp_fail(e, TP_ERR_FORMAT, "%s: rope_theta must be > 0, got %g", path, c->rope_theta);
        goto done;
    }
    if (c->rope_type != TP_ROPE_DEFAULT && !(c->rope_factor > 0)) {
        rc = tp_fail(e, TP_ERR_FORMAT, "%s: the RoPE factor must be > 0, got %g", path, c->rope_factor);
        goto done;
    }
    if (!c->head_dim && c->n_head > 0) c->head_dim = c->d_model / c->n_head;
    if (c->n_layer <= 0 || c->d_model <= 0 || c->n_head <= 0 || c->n_kv_head <= 0 || c->head_dim <= 0 ||
        c->d_ff <= 0 || c->vocab <= 0 || c->n_ctx <= 0 || c->n_head % c->n_kv_head ||
        (c->arch == TP_ARCH_GPT2 && c->d_model % c->n_head) || (c->arch == TP_ARCH_LLAMA && c->head_dim % 2)) {
        rc = tp_fail(e, TP_ERR_FORMAT, "%s: inconsistent sizes (layers %d, hidden %d, heads %d/%d, head_dim %d)", path,
                     c->n_layer, c->d_model, c->n_head, c->n_kv_head, c->head_dim);
    }
done:
    return rc;
}

int tp_config_diff(const tp_model_config *a, const tp_model_config *b, char *what, size_t n) {
    static const char *const acts[] = {"gelu_new", "gelu", "silu", "relu"}, *const ropes[] = {"default", "linear", "llama3"};
    const int g = a->arch == TP_ARCH_GPT2;
    if (strcmp(a->model_type, b->model_type)) {
        snprintf(what, n, "model_type %s, now %s", a->model_type, b->model_type);
        return 1;
    }
#define INT_FIELD(f, name)                                               \
    if (a->f != b->f) {                                                  \
        snprintf(what, n, "%s %d, now %d", name, (int)a->f, (int)b->f); \
        return 1;                                                        \
    }
#define NUM_FIELD(f, name)                                                   \
    if (a->f != b->f) {                                                      \
        snprintf(what, n, "%s %.9g, now %.9g", name, (double)a->f, (double)b->f); \
        return 1;                                                            \
    }
#define NAMED_FIELD(f, name, names)                                                     \
    if (a->f != b->f) {                                                                 \
        snprintf(what, n, "%s %s, now %s", name, names[(int)a->f], names[(int)b->f]); \
        return 1;                                                                       \
    }
    INT_FIELD(n_layer, g ? "n_layer" : "num_hidden_layers")
    INT_FIELD(d_model, g ? "n_embd" : "hidden_size")
    INT_FIELD(n_head, g ? "n_head" : "num_attention_heads")
    INT_FIELD(n_kv_head, "num_key_value_heads")
    INT_FIELD(head_dim, "head_dim")
    INT_FIELD(d_ff, g ? "n_inner" : "intermediate_size")
    INT_FIELD(vocab, "vocab_size")
    INT_FIELD(n_ctx, g ? "n_positions" : "max_position_embeddings")
    NUM_FIELD(norm_eps, g ? "layer_norm_epsilon" : "rms_norm_eps")
    NAMED_FIELD(act, g ? "activation_function" : "hidden_act", acts)
    INT_FIELD(tie_embeddings, "tie_word_embeddings")
    INT_FIELD(sliding_window, "sliding_window")
    NUM_FIELD(rope_theta, "rope_theta")
    NAMED_FIELD(rope_type, "RoPE type", ropes)
    NUM_FIELD(rope_factor, "RoPE factor")
    NUM_FIELD(rope_low_freq_factor, "RoPE low_freq_factor")
    NUM_FIELD(rope_high_freq_factor, "RoPE high_freq_factor")
    INT_FIELD(rope_orig_ctx, "original_max_position_embeddings")
    INT_FIELD(bos_id, "bos_token_id")
    INT_FIELD(eos_id, "eos_token_id")
#undef INT_FIELD
#undef NUM_FIELD
#undef NAMED_FIELD
    return 0;
}
