/* tenpak compress / eval: a whole checkpoint through a codec into an artifact, and back into a
 * model whose perplexity is measured with the same protocol as `tenpak ppl`. */
#include "pipeline/compress.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "pipeline/artifact.h"
#include "pipeline/artifact_model.h"
#include "pipeline/codec.h"
#include "pipeline/config.h"
#include "pipeline/model.h"
#include "pipeline/paired.h"
#include "pipeline/safetensors.h"
#include "pipeline/sensitivity.h"
#include "pipeline/tokenizer.h"
#include "tenpak/files.h"
#include "tenpak/sha256.h"

/* ---- which tensors a codec applies to ---- */
static int is_embedding(const char *name) {
    return strstr(name, "embed") || strstr(name, "wte") || strstr(name, "wpe") || strstr(name, "lm_head");
}
static int in_selection(const char *name, const char *select) {
    if (!strcmp(select, "mlp")) return strstr(name, ".mlp.") != NULL;
    if (!strcmp(select, "attn")) return strstr(name, ".attn.") || strstr(name, ".self_attn.");
    return 1;
}

/* index of the first NaN or Inf of a float tensor (its raw bits: exponent all ones), -1 if none */
static int64_t first_nonfinite(const tp_st_tensor *t) {
    const uint8_t *d = t->data;
    for (int64_t i = 0; i < t->numel; i++) {
        uint32_t u;
        uint16_t h;
        switch (t->dtype) {
        case TP_ST_F32: memcpy(&u, d + 4 * i, 4); if ((u & 0x7f800000u) == 0x7f800000u) return i; break;
        case TP_ST_F16: memcpy(&h, d + 2 * i, 2); if ((h & 0x7c00u) == 0x7c00u) return i; break;
        case TP_ST_BF16: memcpy(&h, d + 2 * i, 2); if ((h & 0x7f80u) == 0x7f80u) return i; break;
        default: return -1;
        }
    }
    return -1;
}

static char *read_text(const char *path, tp_err *e) {
    size_t n;
    return tp_read_file(path, &n, e);
}

static void hex32(const uint8_t d[32], char out[65]) {
    for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

void tp_compress_result_free(tp_compress_result *r) {
    free(r->plan);
    r->plan = NULL;
}

/* W[rows][cols] of a 2-D tensor, groups along the input dimension (GPT-2 Conv1D transposed) */
static void load_matrix(const tp_st_tensor *t, int transposed, float *raw, float *W) {
    int64_t cols = transposed ? t->shape[0] : t->shape[1];
    tp_st_to_f32(t, raw);
    if (transposed)
        for (int64_t a = 0; a < t->shape[0]; a++)
            for (int64_t b = 0; b < t->shape[1]; b++) W[b * cols + a] = raw[a * t->shape[1] + b];
    else memcpy(W, raw, (size_t)t->numel * 4);
}

typedef struct mixed_entry {
    size_t tensor;       /* index in the safetensors set */
    uint64_t numel;
    int pick;
} mixed_entry;

/* Which proxy the allocator ranks by: 1 the full trace((W - W^) E[x x^T] (W - W^)^T), 0 its
 * diagonal (pipeline/sensitivity.h). `tenpak calib-check` measures how each ranks tensors by the
 * KLD of quantising them alone (reports/codec_quality.md). */
#define MIXED_FULL_PROXY 1

/* Tokens of calibration text over which each tensor's KLD at the reference candidate is measured
 * (the proxy's per-tensor scale), unless tp_compress_opts.mixed_kld_tokens says otherwise */
#define MIXED_KLD_TOKENS 1024

static tp_status mixed_kld_gains(const char *model_dir, size_t tokens, tp_st_set *set, const mixed_entry *me, int n, int conv1d,
                                 const tp_calib *cal, const tp_mixed_choice *ch, int nc, int ref, double *gain,
                                 size_t *kld_tokens, tp_err *e) {
    int32_t *ids = NULL;
    size_t nids = 0;
    tp_codec rc;
    tp_status s = tp_codec_parse(ch[ref].spec, &rc, e);
    if (s == TP_OK) s = tp_calib_text_ids(model_dir, cal->path, tokens, &ids, &nids, e);
    tp_model *m = NULL;
    if (s == TP_OK) s = tp_model_load(model_dir, NULL, &m, e);
    const char **names = calloc((size_t)(n ? n : 1), sizeof *names);
    float **Ds = calloc((size_t)(n ? n : 1), sizeof *Ds);
    double *kld = calloc((size_t)(n ? n : 1), sizeof *kld);
    if (s == TP_OK && (!names || !Ds || !kld)) s = tp_fail(e, TP_ERR_NOMEM, "out of memory");
    for (int j = 0; s == TP_OK && j < n; j++) {
        const tp_st_tensor *t = tp_st_at(set, me[j].tensor);
        int transposed = conv1d && !is_embedding(t->name);
        int64_t rows = transposed ? t->shape[1] : t->shape[0], cols = transposed ? t->shape[0] : t->shape[1];
        size_t nb = tp_codec_blob_bytes(&rc, rows, cols);
        float *raw = tp_alloc((size_t)t->numel * 4), *W = tp_alloc((size_t)t->numel * 4), *D = tp_alloc((size_t)t->numel * 4);
        uint8_t *blob = tp_alloc(nb);
        if (!raw || !W || !D || !blob) s = tp_fail(e, TP_ERR_NOMEM, "out of memory for %s", t->name);
        if (s == TP_OK) {
            load_matrix(t, transposed, raw, W);
            s = tp_codec_encode(&rc, W, rows, cols, blob, e);
        }
        if (s == TP_OK) s = tp_codec_decode(&rc, blob, nb, rows, cols, D, e);
        if (s == TP_OK) { /* the file's layout, as the model's override takes it */
            if (transposed)
                for (int64_t r = 0; r < rows; r++)
                    for (int64_t q = 0; q < cols; q++) raw[q * rows + r] = D[r * cols + q];
            else memcpy(raw, D, (size_t)t->numel * 4);
            Ds[j] = raw;
            names[j] = t->name;
            raw = NULL;
        }
        tp_free(raw); tp_free(W); tp_free(D); tp_free(blob);
    }
    if (s == TP_OK) s = tp_tensor_klds(m, ids, nids, n, names, (const float *const *)Ds, kld, 1, e);
    for (int j = 0; s == TP_OK && j < n; j++) {
        double p = ch[(size_t)j * (size_t)nc + (size_t)ref].sens;
        gain[j] = p > 0 ? (kld[j] > 1e-12 ? kld[j] : 1e-12) / p : 0;
    }
    if (s == TP_OK) *kld_tokens = nids;
    for (int j = 0; Ds && j < n; j++) tp_free(Ds[j]);
    free(names); free(Ds); free(kld); free(ids);
    tp_model_free(m);
    return s;
}

/* ---- the allocated plan against the uniform candidates, measured ---- */
typedef struct plan_result {
    int uniform;       /* -1: the allocated plan, else the candidate index every tensor takes */
    double bpw, proxy; /* bits/weight over the covered tensors; summed (scaled) proxy */
    double kld, nll;   /* measured: mean KL(base || plan), mean true-token NLL change */
} plan_result;
typedef struct plan_check {
    plan_result *p;
    int np;
    int chosen; /* -1 allocated, else uniform candidate */
    double chosen_kld;
} plan_check;
static void plan_check_free(plan_check *pc) { free(pc->p); pc->p = NULL; pc->np = 0; }

/* Decodes each tensor's kept blob of candidate pk[j] into the file layout (Ds[j], tp_alloc'd) */
static tp_status decode_plan(tp_st_set *set, const mixed_entry *me, int n, int conv1d, const tp_mixed_choice *ch, int nc,
                             const int *pk, float **Ds, tp_err *e) {
    tp_status s = TP_OK;
    for (int j = 0; s == TP_OK && j < n; j++) {
        const tp_st_tensor *t = tp_st_at(set, me[j].tensor);
        const tp_mixed_choice *c = &ch[(size_t)j * (size_t)nc + (size_t)pk[j]];
        int transposed = conv1d && !is_embedding(t->name);
        int64_t rows = transposed ? t->shape[1] : t->shape[0], cols = transposed ? t->shape[0] : t->shape[1];
        tp_codec cc;
        if (!c->blob) return tp_fail(e, TP_ERR_INTERNAL, "%s: candidate %s was not kept", t->name, c->spec);
        if ((s = tp_codec_parse(c->spec, &cc, e)) != TP_OK) break;
        float *D = tp_alloc((size_t)t->numel * 4);
        if (!Ds[j]) Ds[j] = tp_alloc((size_t)t->numel * 4);
        if (!D || !Ds[j]) { tp_free(D); s = tp_fail(e, TP_ERR_NOMEM, "out of memory for %s", t->name); break; }
        s = tp_codec_decode(&cc, c->blob, c->bytes, rows, cols, D, e);
        if (s == TP_OK) {
            if (transposed)
                for (int64_t r = 0; r < rows; r++)
                    for (int64_t q = 0; q < cols; q++) Ds[j][q * rows + r] = D[r * cols + q];
            else memcpy(Ds[j], D, (size_t)t->numel * 4);
        }
        tp_free(D);
    }
    return s;
}

/* Measures the allocated plan (pick) and every uniform candidate whose bytes fit limit: the KLD of
 * the whole model over the calibration text's first `tokens` tokens. When a uniform candidate
 * measures lower than the plan, pick becomes it (the least KLD is what is written). */
static tp_status mixed_check_plans(const char *model_dir, const char *text_path, size_t tokens, tp_st_set *set, const mixed_entry *me, int n,
                                   int conv1d, const tp_mixed_choice *ch, int nc, double limit, int *pick,
                                   plan_check *pc, tp_err *e) {
    memset(pc, 0, sizeof *pc);
    pc->chosen = -1;
    pc->p = calloc((size_t)nc + 1, sizeof *pc->p);
    int *pk = malloc((size_t)(n ? n : 1) * sizeof *pk);
    float **Ds = calloc((size_t)(n ? n : 1), sizeof *Ds);
    const char **names = calloc((size_t)(n ? n : 1), sizeof *names);
    tp_status s = TP_OK;
    if (!pc->p || !pk || !Ds || !names) s = tp_fail(e, TP_ERR_NOMEM, "out of memory");
    int32_t *ids = NULL;
    size_t nids = 0;
    tp_model *m = NULL;
    tp_kld_ref *ref = NULL;
    if (s == TP_OK) s = tp_calib_text_ids(model_dir, text_path, tokens, &ids, &nids, e);
    if (s == TP_OK) s = tp_model_load(model_dir, NULL, &m, e);
    if (s == TP_OK) s = tp_kld_ref_init(m, ids, nids, &ref, e);
    uint64_t numel = 0;
    for (int j = 0; s == TP_OK && j < n; j++) { names[j] = tp_st_at(set, me[j].tensor)->name; numel += me[j].numel; }
    for (int q = -1; s == TP_OK && q < nc; q++) {
        double bytes = 0, proxy = 0;
        for (int j = 0; j < n; j++) {
            pk[j] = q < 0 ? pick[j] : q;
            const tp_mixed_choice *c = &ch[(size_t)j * (size_t)nc + (size_t)pk[j]];
            bytes += c->bytes == SIZE_MAX ? INFINITY : (double)c->bytes;
            proxy += c->sens;
        }
        if (q >= 0 && !(bytes <= limit)) continue;
        plan_result *r = &pc->p[pc->np];
        r->uniform = q;
        r->bpw = numel ? 8.0 * bytes / (double)numel : 0;
        r->proxy = proxy;
        if (q >= 0) { /* the allocated plan may be this uniform one already */
            int same = 1;
            for (int j = 0; j < n && same; j++) same = pick[j] == q;
            if (same) { r->kld = pc->p[0].kld; r->nll = pc->p[0].nll; pc->np++; continue; }
        }
        if ((s = decode_plan(set, me, n, conv1d, ch, nc, pk, Ds, e)) != TP_OK) break;
        s = tp_kld_ref_measure(ref, n, names, (const float *const *)Ds, &r->kld, &r->nll, e);
        pc->np++;
    }
    if (s == TP_OK && pc->np) {
        int best = 0;
        for (int q = 1; q < pc->np; q++)
            if (pc->p[q].kld < pc->p[best].kld) best = q;
        pc->chosen = pc->p[best].uniform;
        pc->chosen_kld = pc->p[best].kld;
        if (pc->chosen >= 0)
            for (int j = 0; j < n; j++) pick[j] = pc->chosen;
    }
    tp_kld_ref_free(ref);
    tp_model_free(m);
    free(ids);
    for (int j = 0; Ds && j < n; j++) tp_free(Ds[j]);
    free(Ds); free(names); free(pk);
    return s;
}

/* measure every covered tensor at every candidate and choose (tp_mixed_allocate; see compress.h).
 * specs gets each tensor's chosen spec (nt x 96). */
static tp_status mixed_plan(const char *model_dir, size_t kld_tokens_opt, const tp_codec *main, tp_st_set *set,
                            const uint8_t *covered, int conv1d, const tp_calib *cal,
                            mixed_entry **out, int *nout, char (**chosen)[96], cJSON **json, char **text, tp_err *e) {
    char tmpl[TP_MIXED_MAX_CANDIDATES][96];
    int nc = tp_codec_mixed_candidates(main, tmpl, TP_MIXED_MAX_CANDIDATES);
    for (int k = 0; k < nc; k++) { /* canonical, as records store them (awq's alpha is each tensor's own) */
        tp_codec cc;
        if (tp_codec_parse(tmpl[k], &cc, e) != TP_OK) return TP_ERR_INTERNAL;
        snprintf(tmpl[k], sizeof tmpl[k], "%.95s", cc.spec);
    }
    size_t nt = tp_st_count(set);
    mixed_entry *me = calloc(nt ? nt : 1, sizeof *me);
    tp_mixed_choice *ch = calloc((nt ? nt : 1) * (size_t)nc, sizeof *ch);
    int *pick = calloc(nt ? nt : 1, sizeof *pick);
    char (*cs)[96] = calloc(nt ? nt : 1, sizeof *cs);
    if (!me || !ch || !pick || !cs) {
        free(me); free(ch); free(pick); free(cs);
        return tp_fail(e, TP_ERR_NOMEM, "out of memory");
    }
    int n = 0, full = 1;
    tp_status s = TP_OK;
    uint64_t numel = 0;
    for (size_t i = 0; i < nt && s == TP_OK; i++) {
        if (!covered[i]) continue;
        const tp_st_tensor *t = tp_st_at(set, i);
        int transposed = conv1d && !is_embedding(t->name);
        int64_t rows = transposed ? t->shape[1] : t->shape[0], cols = transposed ? t->shape[0] : t->shape[1];
        float *raw = tp_alloc((size_t)t->numel * 4), *W = tp_alloc((size_t)t->numel * 4);
        if (!raw || !W) s = tp_fail(e, TP_ERR_NOMEM, "out of memory for %s", t->name);
        if (s == TP_OK) load_matrix(t, transposed, raw, W);
        const float *sq = tp_calib_sqmean(cal, t->name, cols), *am = tp_calib_absmean(cal, t->name, cols);
        int64_t nx = 0; /* X^T X where the statistics hold it: gptq candidates, and the full proxy */
        const double *xtx = tp_calib_xtx(cal, t->name, cols, &nx);
        full &= xtx != NULL && MIXED_FULL_PROXY;
        me[n].tensor = i;
        me[n].numel = (uint64_t)t->numel;
        int got = 0;
        if (s == TP_OK)
            s = tp_mixed_measure_ex(main, W, rows, cols, am, sq, xtx, nx, MIXED_FULL_PROXY, cal != NULL,
                                    ch + (size_t)n * (size_t)nc, &got, e);
        if (s == TP_OK && got != nc) s = tp_fail(e, TP_ERR_INTERNAL, "%s: %d of %d mixed candidates measured", t->name, got, nc);
        numel += me[n].numel;
        n++;
        tp_free(raw); tp_free(W);
    }
    /* each tensor's proxy scaled to the truth: gain_j = KLD of quantising tensor j alone with the
     * reference candidate (int4:g=128) / its proxy there, over the calibration text's first tokens */
    double *gain = calloc((size_t)(n ? n : 1), sizeof *gain);
    int ref = -1;
    for (int k = 0; k < nc; k++) ref = strcmp(tmpl[k], "int4:g=128,refine=0") ? ref : k;
    size_t kld_tokens = 0;
    if (s == TP_OK && !gain) s = tp_fail(e, TP_ERR_NOMEM, "out of memory");
    if (s == TP_OK && cal && ref >= 0)
        s = mixed_kld_gains(model_dir, kld_tokens_opt ? kld_tokens_opt : MIXED_KLD_TOKENS, set, me, n, conv1d, cal, ch,
                            nc, ref, gain, &kld_tokens, e);
    for (int j = 0; s == TP_OK && kld_tokens && j < n; j++)
        for (int k = 0; k < nc; k++) ch[(size_t)j * (size_t)nc + (size_t)k].sens *= gain[j];
    double budget = tp_codec_mixed_budget(main), limit = budget * (double)numel / 8.0;
    if (s == TP_OK && (s = tp_mixed_allocate(ch, n, nc, limit, pick, e)) != TP_OK) {
        char why[sizeof e->msg];
        snprintf(why, sizeof why, "%s", e->msg);
        tp_fail(e, TP_ERR_ARG, "%s: budget %.4g bits/weight: %s", main->spec, budget, why);
    }
    /* the plan against every uniform candidate that fits, by the measured KLD of the whole model */
    plan_check pc = {0};
    if (s == TP_OK && kld_tokens)
        s = mixed_check_plans(model_dir, cal->path, kld_tokens, set, me, n, conv1d, ch, nc, limit, pick, &pc, e);
    tp_mixed_free_blobs(ch, (size_t)n * (size_t)nc);
    if (s != TP_OK) { free(me); free(ch); free(pick); free(cs); free(gain); plan_check_free(&pc); return s; }
    uint64_t bytes = 0;
    double total = 0, best_uniform = INFINITY;
    int best_k = -1;
    for (int j = 0; j < n; j++) {
        me[j].pick = pick[j];
        const tp_mixed_choice *c = &ch[(size_t)j * (size_t)nc + (size_t)pick[j]];
        bytes += c->bytes;
        total += c->sens;
        snprintf(cs[me[j].tensor], 96, "%s", c->spec);
    }
    for (int k = 0; k < nc; k++) { /* the best single codec within the budget, for comparison */
        double ub = 0, us = 0;
        for (int j = 0; j < n; j++) { ub += (double)ch[(size_t)j * (size_t)nc + (size_t)k].bytes; us += ch[(size_t)j * (size_t)nc + (size_t)k].sens; }
        if (ub <= limit && us < best_uniform) { best_uniform = us; best_k = k; }
    }
    const char *proxy = full ? "full" : "diag";
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "budget_bits_per_weight", budget);
    cJSON_AddNumberToObject(j, "bits_per_weight", numel ? 8.0 * (double)bytes / (double)numel : 0);
    cJSON_AddStringToObject(j, "proxy", proxy);
    cJSON_AddStringToObject(j, "sensitivity", full ? "trace((W - W^) E[x x^T] (W - W^)^T)"
                                                   : "sum over rows and input channels c of mean(x_c^2) * (W - W^)^2");
    if (kld_tokens) {
        cJSON_AddStringToObject(j, "kld_reference", tmpl[ref]);
        cJSON_AddNumberToObject(j, "kld_tokens", (double)kld_tokens);
        cJSON_AddStringToObject(j, "kld_scaling", "each tensor's proxy times KLD(tensor alone at kld_reference) / its proxy "
                                                  "there: the sensitivity is in nats of KLD");
    }
    cJSON_AddNumberToObject(j, "sensitivity_total", total);
    if (pc.np) {
        cJSON *kc = cJSON_AddObjectToObject(j, "kld_check");
        cJSON_AddNumberToObject(kc, "tokens", (double)kld_tokens);
        cJSON_AddStringToObject(kc, "measure", "the whole model with every covered tensor replaced by the plan's decoded "
                                               "weights: mean KL(base || plan) over the first kld_tokens tokens of the "
                                               "calibration text (held-in), nats; nll_delta: mean change of the true next "
                                               "token's negative log-likelihood there");
        cJSON_AddStringToObject(kc, "rule", "the allocated plan and every uniform candidate that fits the budget are "
                                            "measured; the one with the least kld is written");
        cJSON *pa = cJSON_AddArrayToObject(kc, "plans");
        for (int q = 0; q < pc.np; q++) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "plan", pc.p[q].uniform < 0 ? "allocated" : tmpl[pc.p[q].uniform]);
            cJSON_AddNumberToObject(x, "bits_per_weight", pc.p[q].bpw);
            cJSON_AddNumberToObject(x, "sensitivity_total", pc.p[q].proxy);
            cJSON_AddNumberToObject(x, "kld", pc.p[q].kld);
            cJSON_AddNumberToObject(x, "nll_delta", pc.p[q].nll);
            cJSON_AddItemToArray(pa, x);
        }
        cJSON_AddStringToObject(kc, "chosen", pc.chosen < 0 ? "allocated" : tmpl[pc.chosen]);
        cJSON_AddNumberToObject(kc, "chosen_kld", pc.chosen_kld);
    }
    if (best_k >= 0) {
        cJSON_AddStringToObject(j, "best_uniform_codec", tmpl[best_k]);
        cJSON_AddNumberToObject(j, "best_uniform_sensitivity", best_uniform);
    }
    cJSON *cands = cJSON_AddArrayToObject(j, "candidates");
    for (int k = 0; k < nc; k++) cJSON_AddItemToArray(cands, cJSON_CreateString(tmpl[k]));
    cJSON *ts = cJSON_AddArrayToObject(j, "tensors");
    size_t cap = 1024 + (size_t)n * 200 + (size_t)pc.np * 120, used = 0;
    char *tx = malloc(cap);
    if (tx)
        used += (size_t)snprintf(tx, cap, "mixed plan (%s, %d tensors, %.4f bits/weight of a %.4g budget, %d candidates, "
                                          "%s proxy%s %.5g; best single codec within the budget: %s %.5g):\n  %-48s %-40s %s\n",
                                 main->spec, n, numel ? 8.0 * (double)bytes / (double)numel : 0, budget, nc, proxy,
                                 kld_tokens ? " scaled to KLD" : "", total,
                                 best_k >= 0 ? tmpl[best_k] : "none", best_k >= 0 ? best_uniform : 0, "tensor", "codec",
                                 "sensitivity");
    if (tx && pc.np) {
        used += (size_t)snprintf(tx + used, cap - used,
                                 "  measured on %zu calibration tokens (whole model vs fp32; least KLD is written):\n"
                                 "    %-40s %8s %12s %10s %10s\n", kld_tokens, "plan", "bits/w", "proxy", "KLD", "dNLL");
        for (int q = 0; q < pc.np && used < cap; q++)
            used += (size_t)snprintf(tx + used, cap - used, "    %-40s %8.4f %12.5g %10.5f %+10.5f%s\n",
                                     pc.p[q].uniform < 0 ? "allocated plan" : tmpl[pc.p[q].uniform], pc.p[q].bpw,
                                     pc.p[q].proxy, pc.p[q].kld, pc.p[q].nll,
                                     pc.p[q].uniform == pc.chosen ? "  <- written" : "");
    }
    for (int k = 0; k < n; k++) {
        cJSON *x = cJSON_CreateObject();
        const char *name = tp_st_at(set, me[k].tensor)->name;
        const tp_mixed_choice *c = &ch[(size_t)k * (size_t)nc + (size_t)me[k].pick];
        cJSON_AddStringToObject(x, "name", name);
        cJSON_AddStringToObject(x, "codec", c->spec);
        cJSON_AddNumberToObject(x, "candidate", me[k].pick);
        if (kld_tokens) cJSON_AddNumberToObject(x, "kld_gain", gain[k]);
        cJSON *sa = cJSON_AddArrayToObject(x, "sensitivity");
        cJSON *ba = cJSON_AddArrayToObject(x, "bytes");
        for (int q = 0; q < nc; q++) {
            cJSON_AddItemToArray(sa, cJSON_CreateNumber(ch[(size_t)k * (size_t)nc + (size_t)q].sens));
            cJSON_AddItemToArray(ba, cJSON_CreateNumber((double)ch[(size_t)k * (size_t)nc + (size_t)q].bytes));
        }
        cJSON_AddItemToArray(ts, x);
        if (tx && used < cap) used += (size_t)snprintf(tx + used, cap - used, "  %-48s %-40s %.4g\n", name, c->spec, c->sens);
    }
    free(ch);
    free(pick);
    free(gain);
    plan_check_free(&pc);
    *out = me;
    *nout = n;
    *chosen = cs;
    *json = j;
    *text = tx;
    return TP_OK;
}


/* sum (D - W)^2 and sum W^2 into *err / *norm in double, in 8 interleaved partial sums (lane k % 8)
 * added in a fixed order: the same value on every run, and vectorisable (one serial chain of
 * doubles over TinyLlama's 1.1e9 weights took 15% of `tenpak compress`). */
static void sq_err_norm(const float *D, const float *W, size_t n, double *err, double *norm) {
    double e[8] = {0}, w[8] = {0};
    size_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int j = 0; j < 8; j++) {
            double d = (double)D[k + j] - (double)W[k + j];
            e[j] += d * d;
            w[j] += (double)W[k + j] * (double)W[k + j];
        }
    for (int j = 0; k + (size_t)j < n; j++) {
        double d = (double)D[k + j] - (double)W[k + j];
        e[j] += d * d;
        w[j] += (double)W[k + j] * (double)W[k + j];
    }
    *err += ((e[0] + e[1]) + (e[2] + e[3])) + ((e[4] + e[5]) + (e[6] + e[7]));
    *norm += ((w[0] + w[1]) + (w[2] + w[3])) + ((w[4] + w[5]) + (w[6] + w[7]));
}

tp_status tp_compress_model(const tp_compress_opts *o, const char *out_path, tp_compress_result *r, tp_err *e) {
    memset(r, 0, sizeof *r);
    double t0 = tp_now();
    const char *select = o->select ? o->select : "linear", *lossless = o->lossless ? o->lossless : "none";
    if (strcmp(select, "linear") && strcmp(select, "mlp") && strcmp(select, "attn"))
        return tp_fail(e, TP_ERR_ARG, "--select must be linear, mlp or attn, got '%s'", select);
    if (tp_lossless_level(lossless) < 0)
        return tp_fail(e, TP_ERR_ARG, "--lossless must be none, zstd (level 19) or zstd:LEVEL (1..22), got '%s'", lossless);
    tp_codec main;
    tp_status s = tp_codec_parse(o->codec, &main, e);
    if (s != TP_OK) return s;
    int need_calib = tp_codec_needs_calib(&main), need_xtx = tp_codec_needs_xtx(&main);
    tp_codec ov[TP_MAX_OVERRIDES];
    regex_t re[TP_MAX_OVERRIDES];
    int nre = 0;
    for (int i = 0; i < o->noverrides && s == TP_OK; i++) {
        if (regcomp(&re[i], o->override_re[i], REG_EXTENDED | REG_NOSUB) != 0) {
            s = tp_fail(e, TP_ERR_ARG, "bad override regex '%s'", o->override_re[i]);
            break;
        }
        nre++;
        if (strcmp(o->override_spec[i], "none")) {
            s = tp_codec_parse(o->override_spec[i], &ov[i], e);
            if (s == TP_OK && tp_codec_is_mixed(&ov[i]))
                s = tp_fail(e, TP_ERR_ARG, "--override %s: mixed is a whole-model codec, not an override", o->override_spec[i]);
            if (s == TP_OK) need_calib |= tp_codec_needs_calib(&ov[i]);
            if (s == TP_OK) need_xtx |= tp_codec_needs_xtx(&ov[i]);
        }
    }
    char cfgpath[4096];
    snprintf(cfgpath, sizeof cfgpath, "%s/config.json", o->model_dir);
    char *cfgtext = s == TP_OK ? read_text(cfgpath, e) : NULL;
    cJSON *cfg = cfgtext ? cJSON_Parse(cfgtext) : NULL;
    if (s == TP_OK && cfgtext && !cfg) s = tp_fail(e, TP_ERR_FORMAT, "%s: not valid JSON", cfgpath);
    if (s == TP_OK && !cfgtext) s = TP_ERR_IO;
    /* recorded in the artifact, which eval checks (artifact_model.h) */
    char cfg_sha[65] = "", tok_sha[65] = "";
    if (cfgtext) {
        uint8_t d[32];
        tp_sha256(cfgtext, strlen(cfgtext), d);
        tp_sha256_hex(d, cfg_sha);
    }
    if (s == TP_OK) s = tp_source_file_sha256(o->model_dir, "tokenizer.json", tok_sha, e);
    free(cfgtext);
    /* the config as the model loader reads it: types, epsilon, RoPE base, layers present */
    tp_model_config mcfg;
    if (s == TP_OK) s = tp_config_load(cfgpath, &mcfg, e);
    /* the checkpoint loads as the model that eval runs (every tensor it needs, none it would ignore,
     * pipeline/model_load.c): refused now, not after the work. Weights stay in the map; a 1-position cache */
    if (s == TP_OK) {
        tp_model_opts mo = {.weights = TP_WEIGHTS_F32, .max_ctx = 1};
        tp_model *chk = NULL;
        s = tp_model_load(o->model_dir, &mo, &chk, e);
        tp_model_free(chk);
    }
    const char *mtype = cfg ? tp_json_str(cfg, "model_type") : NULL;
    int conv1d = mtype && !strcmp(mtype, "gpt2"); /* GPT-2 stores Conv1D weights [in, out] */
    tp_st_set *set = NULL;
    if (s == TP_OK) s = tp_model_files_open(o->model_dir, &set, e);
    uint8_t dg[32];
    char sha[65] = "";
    if (s == TP_OK && (s = tp_st_sha256(set, dg, e)) == TP_OK) hex32(dg, sha);
    /* calibration statistics, before the output file exists */
    tp_calib *owncal = NULL;
    const tp_calib *cal = o->calib;
    if (s == TP_OK && need_calib && !cal) {
        s = tp_calib_collect_ex(o->model_dir, o->calib_data, o->calib_tokens, need_xtx ? TP_CALIB_XTX : 0, &owncal, e);
        cal = owncal;
    } else if (s == TP_OK && need_xtx && !(cal->flags & TP_CALIB_XTX)) {
        /* gptq needs X^T X, which the caller's statistics lack: collected again from the same text */
        s = tp_calib_collect_ex(o->model_dir, cal->path, cal->tokens, TP_CALIB_XTX, &owncal, e);
        cal = owncal;
    }
    if (cal) {
        r->calib_tokens = cal->tokens;
        snprintf(r->calib_sha256, sizeof r->calib_sha256, "%s", cal->sha256);
    }
    /* which codec every tensor gets: 0 kept, 1 main, 2 + k override k */
    size_t nt = set ? tp_st_count(set) : 0;
    int *which = calloc(nt ? nt : 1, sizeof *which);
    uint8_t *covered = calloc(nt ? nt : 1, 1);
    if (s == TP_OK && (!which || !covered)) s = tp_fail(e, TP_ERR_NOMEM, "out of memory");
    int ov_used[TP_MAX_OVERRIDES] = {0};
    for (size_t i = 0; s == TP_OK && i < nt; i++) {
        const tp_st_tensor *t = tp_st_at(set, i);
        int linear = t->ndim == 2 && tp_st_is_float(t->dtype);
        if (linear && (is_embedding(t->name) ? o->compress_embeddings : in_selection(t->name, select))) which[i] = 1;
        for (int k = 0; k < nre; k++)
            if (regexec(&re[k], t->name, 0, NULL, 0) == 0) {
                which[i] = strcmp(o->override_spec[k], "none") && linear ? 2 + k : 0;
                ov_used[k] = 1;
                break;
            }
        covered[i] = which[i] == 1;
        /* a NaN or Inf weight would make every error and perplexity meaningless (NaN, or 0) */
        int64_t bad = tp_st_is_float(t->dtype) ? first_nonfinite(t) : -1;
        if (bad >= 0)
            s = tp_fail(e, TP_ERR_FORMAT, "%s: tensor %s holds a non-finite value (NaN or Inf) at element %lld: refusing to compress it",
                        o->model_dir, t->name, (long long)bad);
        /* the codec's parameters against this tensor, before any output exists */
        if (s == TP_OK && which[i]) {
            int transposed = conv1d && !is_embedding(t->name);
            int64_t rows = transposed ? t->shape[1] : t->shape[0], cols = transposed ? t->shape[0] : t->shape[1];
            const tp_codec *c = which[i] == 1 ? &main : &ov[which[i] - 2];
            char what[300];
            snprintf(what, sizeof what, "tensor %s", t->name);
            s = tp_codec_check_shape(c, rows, cols, what, e);
        }
    }
    for (int k = 0; s == TP_OK && k < nre; k++)
        if (!ov_used[k])
            s = tp_fail(e, TP_ERR_ARG, "--override %s=%s matches no tensor of %s (first match wins: an earlier override "
                        "may take them)", o->override_re[k], o->override_spec[k], o->model_dir);
    mixed_entry *plan = NULL;
    int nplan = 0;
    cJSON *plan_json = NULL;
    char (*plan_spec)[96] = NULL; /* mixed: each covered tensor's chosen spec, by tensor index */
    if (s == TP_OK && tp_codec_is_mixed(&main))
        s = mixed_plan(o->model_dir, o->mixed_kld_tokens, &main, set, covered, conv1d, cal, &plan, &nplan, &plan_spec, &plan_json, &r->plan, e);
    tp_art_writer *w = NULL;
    if (s == TP_OK) s = tp_artw_open(out_path, &w, e);
    double err = 0, norm = 0, theory_bits = 0; /* theory: summed over the compressed tensors */
    for (size_t i = 0; s == TP_OK && i < nt; i++) {
        const tp_st_tensor *t = tp_st_at(set, i);
        r->ntensors++;
        r->total_numel += (uint64_t)t->numel;
        r->fp32_bytes += (uint64_t)t->numel * 4;
        r->fp16_bytes += (uint64_t)t->numel * 2;
        tp_codec cc;
        const tp_codec *c = which[i] == 0 ? NULL : which[i] == 1 ? &main : &ov[which[i] - 2];
        tp_codec pc;
        if (c == &main && plan) {
            if ((s = tp_codec_parse(plan_spec[i], &pc, e)) != TP_OK) break;
            c = &pc;
        }
        cJSON *rec = cJSON_CreateObject();
        cJSON_AddStringToObject(rec, "name", t->name);
        cJSON *shape = cJSON_AddArrayToObject(rec, "shape");
        for (int d = 0; d < t->ndim; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
        cJSON_AddStringToObject(rec, "dtype", tp_st_dtype_name(t->dtype));
        if (!c) {
            cJSON_AddStringToObject(rec, "codec", "raw");
            s = tp_artw_add(w, rec, t->data, t->nbytes, lossless, e);
            continue;
        }
        int transposed = conv1d && !is_embedding(t->name);
        int64_t rows = transposed ? t->shape[1] : t->shape[0], cols = transposed ? t->shape[0] : t->shape[1];
        cc = *c;
        tp_codec_set_calib(&cc, tp_calib_absmean(cal, t->name, cols), tp_calib_sqmean(cal, t->name, cols));
        int64_t nxtx = 0;
        const double *xtx = tp_calib_xtx(cal, t->name, cols, &nxtx);
        tp_codec_set_calib_xtx(&cc, xtx, nxtx);
        c = &cc;
        size_t n = (size_t)t->numel, nb = tp_codec_blob_bytes(c, rows, cols);
        float *raw = tp_alloc(n * 4), *W = tp_alloc(n * 4), *D = tp_alloc(n * 4);
        uint8_t *blob = tp_alloc(nb);
        if (!raw || !W || !D || !blob) s = tp_fail(e, TP_ERR_NOMEM, "out of memory for %s", t->name);
        if (s == TP_OK) {
            load_matrix(t, transposed, raw, W);
            s = tp_codec_encode(c, W, rows, cols, blob, e);
        }
        if (s == TP_OK) s = tp_codec_decode(c, blob, nb, rows, cols, D, e);
        if (s == TP_OK) {
            sq_err_norm(D, W, n, &err, &norm);
            cJSON_AddStringToObject(rec, "codec", c->spec);
            cJSON_AddNumberToObject(rec, "rows", (double)rows);
            cJSON_AddNumberToObject(rec, "cols", (double)cols);
            cJSON_AddBoolToObject(rec, "transposed", transposed);
            uint64_t before = tp_artw_payload_bytes(w);
            s = tp_artw_add(w, rec, blob, nb, lossless, e);
            rec = NULL;
            r->compressed_bytes += tp_artw_payload_bytes(w) - before;
            r->compressed_numel += n;
            r->ncompressed++;
            theory_bits += tp_codec_theory_bpw(c, rows, cols) * (double)n;
            if (!o->quiet && isatty(2)) fprintf(stderr, "\r  compressed %d tensors ...", r->ncompressed);
        }
        cJSON_Delete(rec);
        tp_free(raw); tp_free(W); tp_free(D); tp_free(blob);
    }
    if (!o->quiet && isatty(2) && r->ncompressed) fputc('\n', stderr);
    if (s == TP_OK && r->ncompressed == 0)
        s = tp_fail(e, TP_ERR_ARG, "%s: the selection matched no tensor", o->model_dir);
    if (s == TP_OK) {
        cJSON *h = cJSON_CreateObject();
        cJSON_AddStringToObject(h, "format", "tenpak-artifact");
        cJSON_AddNumberToObject(h, "version", 1);
        cJSON_AddStringToObject(h, "codec", main.spec);
        cJSON_AddStringToObject(h, "codec_given", o->codec);
        cJSON_AddStringToObject(h, "select", select);
        cJSON_AddBoolToObject(h, "compress_embeddings", o->compress_embeddings);
        cJSON *ovs = cJSON_AddArrayToObject(h, "overrides");
        for (int k = 0; k < o->noverrides; k++) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "match", o->override_re[k]);
            cJSON_AddStringToObject(x, "codec", strcmp(o->override_spec[k], "none") ? ov[k].spec : "none");
            cJSON_AddItemToArray(ovs, x);
        }
        cJSON_AddStringToObject(h, "lossless", lossless);
        cJSON *src = cJSON_AddObjectToObject(h, "source");
        cJSON_AddStringToObject(src, "dir", o->model_dir);
        cJSON_AddStringToObject(src, "sha256", sha);
        cJSON_AddStringToObject(src, "config_sha256", cfg_sha);
        cJSON_AddStringToObject(src, "tokenizer_sha256", tok_sha);
        cJSON_AddStringToObject(src, "model_type", mtype ? mtype : "");
        cJSON_AddItemToObject(h, "config", cfg);
        cfg = NULL;
        if (cal) {
            cJSON *cj = cJSON_AddObjectToObject(h, "calibration");
            cJSON_AddStringToObject(cj, "path", cal->path);
            cJSON_AddStringToObject(cj, "sha256", cal->sha256);
            cJSON_AddNumberToObject(cj, "tokens", (double)cal->tokens);
            cJSON_AddStringToObject(cj, "statistics", "per input channel mean |x| (awq) and mean x^2 (mixed)");
        }
        if (plan_json) {
            cJSON_AddItemToObject(h, "mixed", plan_json);
            plan_json = NULL;
        }
        cJSON_AddNumberToObject(h, "theory_bits_per_weight", theory_bits / (double)r->compressed_numel);
        cJSON_AddNumberToObject(h, "rel_frobenius_error", norm > 0 ? sqrt(err / norm) : 0);
        s = tp_artw_finish(w, h, &r->artifact_bytes, e);
        w = NULL;
    }
    tp_artw_abort(w);
    cJSON_Delete(cfg);
    cJSON_Delete(plan_json);
    free(plan);
    free(plan_spec);
    (void)nplan;
    free(which);
    free(covered);
    tp_calib_free(owncal);
    tp_st_close(set);
    for (int k = 0; k < nre; k++) regfree(&re[k]);
    r->theory_bpw = r->compressed_numel ? theory_bits / (double)r->compressed_numel : 0;
    r->rel_error = norm > 0 ? sqrt(err / norm) : 0;
    r->seconds = tp_now() - t0;
    if (s != TP_OK) tp_compress_result_free(r);
    return s;
}

/* ---- text ---- */
char *tp_read_text(const char *path, size_t max_bytes, const char *what, size_t *len, tp_err *e) {
    size_t pl = strlen(path);
    const char *sp = what ? " " : "", *w = what ? what : "";
    if (!(pl > 3 && !strcmp(path + pl - 3, ".gz"))) {
        if (!max_bytes) return tp_read_file(path, len, e);
        if (access(path, R_OK) != 0) { tp_fail(e, TP_ERR_IO, "%s: cannot open%s%s", path, sp, w); return NULL; }
        int fd = tp_open_input(path, NULL, e); /* a regular file only: a FIFO would block */
        FILE *f = fd >= 0 ? fdopen(fd, "rb") : NULL;
        if (fd >= 0 && !f) { close(fd); tp_fail(e, TP_ERR_NOMEM, "%s: out of memory", path); }
        if (!f) return NULL;
        char *buf = malloc(max_bytes + 1);
        if (!buf) { fclose(f); tp_fail(e, TP_ERR_NOMEM, "%s: out of memory", path); return NULL; }
        size_t n = fread(buf, 1, max_bytes, f);
        fclose(f);
        buf[n] = 0;
        *len = n;
        return buf;
    }
    if (access(path, R_OK) != 0) { tp_fail(e, TP_ERR_IO, "%s: cannot open%s%s", path, sp, w); return NULL; }
    int fd = tp_open_input(path, NULL, e); /* a regular file only: a FIFO would block */
    gzFile f = fd >= 0 ? gzdopen(fd, "rb") : NULL;
    if (fd >= 0 && !f) { close(fd); tp_fail(e, TP_ERR_NOMEM, "%s: out of memory", path); }
    if (!f) return NULL;
    size_t cap = max_bytes ? max_bytes + 1 : 1 << 20, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) { gzclose(f); tp_fail(e, TP_ERR_NOMEM, "%s: out of memory", path); return NULL; }
        size_t want = cap - n - 1;
        if (want > (1u << 30)) want = 1u << 30;
        if (!want) break; /* max_bytes read */
        int k = gzread(f, buf + n, (unsigned)want);
        if (k < 0) { free(buf); gzclose(f); tp_fail(e, TP_ERR_FORMAT, "%s: corrupt gzip stream", path); return NULL; }
        if (k == 0) break;
        n += (size_t)k;
        if (!max_bytes && cap - n < 2) { char *nb = realloc(buf, cap * 2); if (!nb) free(buf); buf = nb; cap *= 2; }
    }
    int zerr = Z_OK;
    gzerror(f, &zerr);
    gzclose(f);
    if (zerr != Z_OK && zerr != Z_STREAM_END) { /* gzread returns 0, not -1, on a truncated stream */
        free(buf);
        tp_fail(e, TP_ERR_FORMAT, "%s: corrupt gzip stream (truncated or damaged)", path);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

tp_status tp_load_text_tokens(const char *model_dir, const char *path, size_t tail_chars, int32_t **ids, size_t *n,
                              int32_t *bos, char sha_hex[65], tp_err *e) {
    size_t len = 0;
    char *text = tp_read_text(path, 0, NULL, &len, e);
    if (!text) return TP_ERR_IO;
    const char *start = text;
    if (tail_chars > 0) { /* the last tail_chars UTF-8 characters (continuation bytes don't count) */
        size_t k = len, chars = 0;
        while (k > 0 && chars < tail_chars) {
            k--;
            if (((unsigned char)text[k] & 0xC0) != 0x80) chars++;
        }
        start = text + k;
        len -= k;
    }
    uint8_t dg[32];
    tp_sha256(start, len, dg);
    hex32(dg, sha_hex);
    char tpath[4096];
    snprintf(tpath, sizeof tpath, "%s/tokenizer.json", model_dir);
    tp_tokenizer *tok;
    tp_status s = tp_tokenizer_load(tpath, &tok, e);
    if (s == TP_OK) {
        s = tp_tokenizer_encode(tok, start, len, 1, ids, n, e);
        const int32_t *pre;
        *bos = tp_tokenizer_prefix(tok, &pre) ? pre[0] : -1;
        tp_tokenizer_free(tok);
    }
    free(text);
    return s;
}

/* ---- eval ---- */
static tp_status ppl_of(tp_model *m, const int32_t *ids, size_t n, const tp_ppl_opts *po, int32_t bos,
                        tp_ppl_result *r, tp_err *e) {
    tp_ppl_opts o = *po;
    o.bos = bos;
    return tp_ppl_run(m, ids, n, &o, r, e);
}

/* Decode speed: the text's first tokens fed one at a time through the KV cache, each with its
 * logits, as generation and zip run the model (after the perplexity pass, so no weight is
 * converted on first use inside the timing). */
static tp_status decode_speed(tp_model *m, const int32_t *ids, size_t n, int steps, double *tps, tp_err *e) {
    *tps = 0;
    if ((size_t)steps > n) steps = (int)n;
    if (steps > tp_model_capacity(m)) steps = tp_model_capacity(m);
    if (steps <= 0 || tp_model_device(m) != TP_DEVICE_CPU) return TP_OK;
    float *logits = malloc((size_t)tp_model_cfg(m)->vocab * sizeof *logits);
    if (!logits) return tp_fail(e, TP_ERR_NOMEM, "out of memory");
    tp_model_reset(m);
    tp_status s = TP_OK;
    double t0 = tp_now();
    for (int i = 0; i < steps && s == TP_OK; i++) s = tp_model_forward(m, ids + i, 1, i, 0, logits, e);
    double dt = tp_now() - t0;
    free(logits);
    if (s == TP_OK && dt > 0) *tps = steps / dt;
    return s;
}

/* the dump's metadata line: what was compared on what */
static char *dump_header(const tp_eval_opts *o, const tp_eval_result *r, const char *model_dir) {
    cJSON *h = cJSON_CreateObject();
    cJSON_AddStringToObject(h, "artifact", o->artifact);
    cJSON_AddStringToObject(h, "codec", r->codec);
    cJSON_AddStringToObject(h, "model_dir", model_dir);
    cJSON_AddStringToObject(h, "model_sha256", r->model_sha256);
    cJSON_AddStringToObject(h, "data", o->data);
    cJSON_AddStringToObject(h, "data_sha256", r->data_sha256);
    cJSON_AddNumberToObject(h, "tail_chars", (double)o->tail_chars);
    cJSON_AddStringToObject(h, "protocol", tp_ppl_protocol_name(o->ppl.protocol));
    cJSON_AddNumberToObject(h, "ctx", r->ppl.ctx);
    cJSON_AddNumberToObject(h, "stride", r->ppl.stride);
    cJSON_AddNumberToObject(h, "tokens", (double)r->tokens);
    char *s = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    return s;
}

/* compressed model m and the uncompressed one side by side over the same windows; frees m */
static tp_status eval_paired(const tp_eval_opts *o, tp_model *m, const char *model_dir, const int32_t *ids, size_t n,
                             int32_t bos, tp_eval_result *r, tp_err *e) {
    tp_model *b = NULL;
    tp_paired_result pr;
    memset(&pr, 0, sizeof pr);
    tp_ppl_opts po = o->ppl;
    po.bos = bos;
    tp_status s = tp_model_load(model_dir, NULL, &b, e);
    if (s == TP_OK) s = tp_paired_run(b, m, ids, n, &po, &pr, e);
    if (s == TP_OK) {
        r->ppl = pr.comp;
        r->baseline = pr.base;
        r->paired = 1;
        s = tp_token_stats_compute(&pr.tokens, &o->boot, &r->stats, e);
    }
    if (s == TP_OK && o->dump_tokens) {
        char *h = dump_header(o, r, model_dir);
        s = tp_token_cols_dump(&pr.tokens, &o->boot, h, o->dump_tokens, e);
        free(h);
    }
    tp_token_cols_free(&pr.tokens);
    /* the baseline's decode first and freed, so that the peak RSS measured over the compressed
     * model's decode is that of the compressed model alone */
    if (s == TP_OK && !o->skip_baseline) s = decode_speed(b, ids, n, o->decode_tokens, &r->baseline_decode_tps, e);
    tp_model_free(b);
    tp_peak_rss_reset();
    if (s == TP_OK) s = decode_speed(m, ids, n, o->decode_tokens, &r->decode_tps, e);
    r->peak_rss_bytes = tp_peak_rss_bytes();
    tp_model_free(m);
    return s;
}

/* the compressed model, then the uncompressed baseline in a model of its own (no KLD); frees m */
static tp_status eval_apart(const tp_eval_opts *o, tp_model *m, const char *model_dir, const int32_t *ids, size_t n,
                            int32_t bos, tp_eval_result *r, tp_err *e) {
    tp_peak_rss_reset(); /* only the compressed model is loaded */
    tp_status s = ppl_of(m, ids, n, &o->ppl, bos, &r->ppl, e);
    if (s == TP_OK) s = decode_speed(m, ids, n, o->decode_tokens, &r->decode_tps, e);
    r->peak_rss_bytes = tp_peak_rss_bytes(); /* the compressed model's run, before the baseline's */
    tp_model_free(m);
    if (s == TP_OK && !o->skip_baseline) {
        tp_model *b = NULL;
        if ((s = tp_model_load(model_dir, NULL, &b, e)) == TP_OK) s = ppl_of(b, ids, n, &o->ppl, bos, &r->baseline, e);
        if (s == TP_OK) s = decode_speed(b, ids, n, o->decode_tokens, &r->baseline_decode_tps, e);
        tp_model_free(b);
    }
    if (s == TP_OK && o->skip_baseline) {
        r->baseline.ppl = o->baseline_ppl;
        r->baseline.nll_sum = o->baseline_nll;
    }
    return s;
}

tp_status tp_eval_artifact(const tp_eval_opts *o, tp_eval_result *r, tp_err *e) {
    memset(r, 0, sizeof *r);
    if (o->dump_tokens && (o->no_paired || o->ppl.device != TP_DEVICE_CPU))
        return tp_fail(e, TP_ERR_ARG, "eval: --dump-tokens needs the paired evaluation (cpu)");
    tp_model *m = NULL;
    tp_artifact_model info;
    tp_status s = tp_model_load_artifact(o->artifact, o->model_dir, o->exec, NULL, &m, &info, e);
    if (s != TP_OK) return s;
    r->size = info.size;
    snprintf(r->codec, sizeof r->codec, "%s", info.codec);
    snprintf(r->model_type, sizeof r->model_type, "%s", info.model_type);
    snprintf(r->model_sha256, sizeof r->model_sha256, "%s", info.model_sha256);
    r->exec = o->exec;
    r->files_checked = info.files_checked;
    int32_t *ids = NULL;
    size_t n = 0;
    int32_t bos = -1;
    s = tp_load_text_tokens(info.model_dir, o->data, o->tail_chars, &ids, &n, &bos, r->data_sha256, e);
    if (s == TP_OK && o->max_tokens && o->max_tokens < n) n = o->max_tokens;
    r->tokens = n;
    if (s != TP_OK) tp_model_free(m);
    else if (!o->no_paired && o->ppl.device == TP_DEVICE_CPU) s = eval_paired(o, m, info.model_dir, ids, n, bos, r, e);
    else s = eval_apart(o, m, info.model_dir, ids, n, bos, r, e);
    free(ids);
    return s;
}
