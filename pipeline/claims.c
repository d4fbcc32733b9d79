/* Claims verification: see pipeline/claims.h. */
#include "pipeline/claims.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline/artifact.h"
#include "pipeline/codec.h"
#include "pipeline/compress.h"
#include "pipeline/stats.h"

const char *tp_claim_status_name(tp_claim_status s) {
    static const char *n[] = {"VERIFIED", "FAILED", "NEEDS MODEL", "UNSUPPORTED", "ERROR", "INCONCLUSIVE"};
    return s < TP_CLAIM_NSTATUS ? n[s] : "?";
}

static double num(const cJSON *o, const char *k, double dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static void resolve(char *out, size_t n, const char *base, const char *p) {
    if (p[0] == '/') snprintf(out, n, "%s", p);
    else snprintf(out, n, "%s/%s", base, p);
}

static void result(cJSON *results, const cJSON *c, tp_claim_status st, const char *reason, int counts[TP_CLAIM_NSTATUS]) {
    cJSON *r = cJSON_CreateObject();
    const char *keys[] = {"name", "model", "codec", "select", "dataset", "source"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (tp_json_str(c, keys[i])) cJSON_AddStringToObject(r, keys[i], tp_json_str(c, keys[i]));
    cJSON_AddStringToObject(r, "status", tp_claim_status_name(st));
    cJSON_AddStringToObject(r, "reason", reason ? reason : "");
    const cJSON *cl = cJSON_GetObjectItemCaseSensitive(c, "claimed");
    cJSON_AddNumberToObject(r, "claimed_ratio_fp32", num(cl, "ratio_fp32", NAN));
    cJSON_AddNumberToObject(r, "claimed_ppl_delta_percent", num(cl, "ppl_delta_percent", NAN));
    if (tp_json_str(c, "metric")) {
        cJSON_AddStringToObject(r, "metric", tp_json_str(c, "metric"));
        cJSON_AddNumberToObject(r, "claimed_value", num(cl, tp_json_str(c, "metric"), NAN));
    }
    cJSON_AddItemToArray(results, r);
    counts[st]++;
}

/* ---- what was measured, and the judgement ---- */
static const char *const metric_names[TP_CLAIM_NMETRICS] = {"ppl_delta_percent", "kld_mean", "top1_agreement"};

static int metric_index(const char *name) {
    for (int i = 0; name && i < TP_CLAIM_NMETRICS; i++)
        if (!strcmp(name, metric_names[i])) return i;
    return -1;
}

typedef struct measured {
    double ratio, delta, ppl, baseline_ppl, artifact_bytes, tokens;
    int has_ci;                         /* value / ci below are known (a paired evaluation) */
    double value[TP_CLAIM_NMETRICS];    /* by metric_names */
    tp_interval ci[TP_CLAIM_NMETRICS];
} measured;

/* a row of this run's report (tp_claims_opts.known) */
static void measured_from_known(const cJSON *k, measured *m) {
    memset(m, 0, sizeof *m);
    m->ratio = num(k, "ratio_fp32", 0);
    m->artifact_bytes = num(k, "artifact_bytes", 0);
    m->ppl = num(k, "ppl", 0);
    m->baseline_ppl = num(k, "baseline_ppl", 0);
    m->delta = 100.0 * (m->ppl - m->baseline_ppl) / m->baseline_ppl;
    m->tokens = num(k, "tokens", 0);
    m->has_ci = 1;
    for (int i = 0; i < TP_CLAIM_NMETRICS; i++) {
        m->value[i] = num(k, metric_names[i], NAN);
        m->has_ci &= tp_interval_from_json(k, metric_names[i], &m->ci[i]) && !isnan(m->value[i]);
    }
    if (m->has_ci) m->delta = m->value[0];
}

static void measured_from_eval(const tp_eval_result *er, measured *m) {
    memset(m, 0, sizeof *m);
    m->ratio = (double)er->size.fp32_bytes / (double)er->size.artifact_bytes;
    m->artifact_bytes = (double)er->size.artifact_bytes;
    m->ppl = er->ppl.ppl;
    m->baseline_ppl = er->baseline.ppl;
    m->delta = er->paired ? er->stats.ppl_delta_percent : 100.0 * (m->ppl - m->baseline_ppl) / m->baseline_ppl;
    m->tokens = (double)er->tokens;
    m->has_ci = er->paired;
    const tp_token_stats *s = &er->stats;
    double v[TP_CLAIM_NMETRICS] = {s->ppl_delta_percent, s->kld_mean, s->top1_agreement};
    tp_interval ci[TP_CLAIM_NMETRICS] = {s->ppl_delta_percent_ci, s->kld_mean_ci, s->top1_agreement_ci};
    memcpy(m->value, v, sizeof v);
    memcpy(m->ci, ci, sizeof ci);
}

/* the ratio check shared by both kinds of claim: "" or " OUT" */
static int ratio_ok(const cJSON *c, const measured *m, double *claimed, double *tol) {
    const cJSON *cl = cJSON_GetObjectItemCaseSensitive(c, "claimed"), *t = cJSON_GetObjectItemCaseSensitive(c, "tolerance");
    *claimed = num(cl, "ratio_fp32", NAN);
    *tol = num(t, "ratio_rel", 0.05);
    return isnan(*claimed) || fabs(m->ratio - *claimed) <= *tol * *claimed;
}

/* A claim naming its metric: the claim's side is metric <= claimed + tolerance for the PPL delta
 * and the KLD (lower is better), metric >= claimed - tolerance for top-1 agreement. VERIFIED when
 * the whole 95% interval is on that side, FAILED when it is wholly on the other (or the ratio is
 * out of tolerance), INCONCLUSIVE otherwise. */
static tp_claim_status judge_metric(const cJSON *c, int mi, const measured *m, char *msg, size_t n) {
    const cJSON *cl = cJSON_GetObjectItemCaseSensitive(c, "claimed"), *t = cJSON_GetObjectItemCaseSensitive(c, "tolerance");
    char tk[64];
    snprintf(tk, sizeof tk, "%s_abs", metric_names[mi]);
    double claimed = num(cl, metric_names[mi], 0), tol = num(t, tk, 0), cr, rt;
    int higher_better = mi == 2, rok = ratio_ok(c, m, &cr, &rt);
    double bound = higher_better ? claimed - tol : claimed + tol;
    tp_interval ci = m->ci[mi];
    int inside = higher_better ? ci.lo >= bound : ci.hi <= bound;
    int outside = higher_better ? ci.hi < bound : ci.lo > bound;
    tp_claim_status st = !rok || outside ? TP_CLAIM_FAILED : inside ? TP_CLAIM_VERIFIED : TP_CLAIM_INCONCLUSIVE;
    int k = snprintf(msg, n, "%s %.6g, 95%% interval [%.6g, %.6g] vs claim %s %.6g (%.6g %s %.6g)", metric_names[mi],
                     m->value[mi], ci.lo, ci.hi, higher_better ? ">=" : "<=", bound, claimed, higher_better ? "-" : "+", tol);
    if (k > 0 && (size_t)k < n)
        snprintf(msg + k, n - (size_t)k, "%s; ratio %.3fx%s", inside ? ": interval on the claim's side"
                 : outside ? ": interval on the other side" : ": interval straddles the bound",
                 m->ratio, rok ? "" : " OUT of tolerance");
    return st;
}

/* A claim without a metric (the original format): a reproduction check, both measured numbers
 * within tolerance of the claimed ones; the PPL delta's interval is shown when it was measured. */
static tp_claim_status judge_legacy(const cJSON *c, const measured *m, int capped, char *msg, size_t n) {
    const cJSON *cl = cJSON_GetObjectItemCaseSensitive(c, "claimed"), *tol = cJSON_GetObjectItemCaseSensitive(c, "tolerance");
    double cratio, tr, cdelta = num(cl, "ppl_delta_percent", 0), td = num(tol, "ppl_delta_abs", 0.5);
    int ok_ratio = ratio_ok(c, m, &cratio, &tr), ok_delta = fabs(m->delta - cdelta) <= td;
    char ci[96] = "";
    if (m->has_ci) snprintf(ci, sizeof ci, " [95%% interval %+.3f%%, %+.3f%%]", m->ci[0].lo, m->ci[0].hi);
    snprintf(msg, n, "ratio %.3fx (claimed %.2fx, tol %.0f%%)%s; ppl delta %+.3f%%%s (claimed %+.2f%%, tol %.2f)%s%s",
             m->ratio, cratio, 100 * tr, ok_ratio ? "" : " OUT", m->delta, ci, cdelta, td, ok_delta ? "" : " OUT",
             capped ? " [quick check: --max-tokens]" : "");
    return ok_ratio && ok_delta ? TP_CLAIM_VERIFIED : TP_CLAIM_FAILED;
}

static void add_measured(cJSON *r, const measured *m, const char *canonical) {
    cJSON_AddNumberToObject(r, "measured_ratio_fp32", m->ratio);
    cJSON_AddNumberToObject(r, "measured_ppl_delta_percent", m->delta);
    cJSON_AddNumberToObject(r, "measured_ppl", m->ppl);
    cJSON_AddNumberToObject(r, "baseline_ppl", m->baseline_ppl);
    cJSON_AddNumberToObject(r, "artifact_bytes", m->artifact_bytes);
    cJSON_AddNumberToObject(r, "tokens", m->tokens);
    cJSON_AddStringToObject(r, "codec_canonical", canonical);
    if (!m->has_ci) return;
    for (int i = 0; i < TP_CLAIM_NMETRICS; i++) {
        char key[96];
        snprintf(key, sizeof key, "measured_%s", metric_names[i]);
        if (i) cJSON_AddNumberToObject(r, key, m->value[i]);
        snprintf(key, sizeof key, "measured_%s_ci95", metric_names[i]);
        cJSON *a = cJSON_AddArrayToObject(r, key);
        cJSON_AddItemToArray(a, cJSON_CreateNumber(m->ci[i].lo));
        cJSON_AddItemToArray(a, cJSON_CreateNumber(m->ci[i].hi));
    }
}

/* a claim's shape: name, model_dir, codec, data; claimed.ratio_fp32 + ppl_delta_percent, or a
 * known metric and claimed.<metric> */
static tp_status check_claim(const char *path, int idx, const cJSON *c, tp_err *e) {
    const char *req[] = {"name", "model_dir", "codec", "data"};
    for (size_t k = 0; k < 4; k++)
        if (!tp_json_str(c, req[k])) return tp_fail(e, TP_ERR_FORMAT, "%s: claim %d lacks \"%s\"", path, idx, req[k]);
    const cJSON *cl = cJSON_GetObjectItemCaseSensitive(c, "claimed"), *mt = cJSON_GetObjectItemCaseSensitive(c, "metric");
    if (mt) {
        int mi = metric_index(cJSON_IsString(mt) ? mt->valuestring : NULL);
        if (mi < 0)
            return tp_fail(e, TP_ERR_FORMAT, "%s: claim %d (%s): metric must be ppl_delta_percent, kld_mean or top1_agreement",
                           path, idx, tp_json_str(c, "name"));
        if (!cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(cl, metric_names[mi])))
            return tp_fail(e, TP_ERR_FORMAT, "%s: claim %d (%s) lacks claimed.%s", path, idx, tp_json_str(c, "name"),
                           metric_names[mi]);
        return TP_OK;
    }
    if (!cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(cl, "ratio_fp32")) ||
        !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(cl, "ppl_delta_percent")))
        return tp_fail(e, TP_ERR_FORMAT, "%s: claim %d (%s) lacks claimed.ratio_fp32 / ppl_delta_percent", path, idx,
                       tp_json_str(c, "name"));
    return TP_OK;
}

tp_status tp_claims_verify_file(const char *path, const tp_claims_opts *o, cJSON *results, int counts[TP_CLAIM_NSTATUS], tp_err *e) {
    size_t n;
    char *text = tp_read_file(path, &n, e);
    if (!text) return TP_ERR_IO;
    cJSON *root = cJSON_ParseWithLength(text, n);
    free(text);
    const cJSON *claims = root ? cJSON_GetObjectItemCaseSensitive(root, "claims") : NULL;
    if (!cJSON_IsArray(claims)) {
        cJSON_Delete(root);
        return tp_fail(e, TP_ERR_FORMAT, "%s: not a claims file (JSON with a \"claims\" array)", path);
    }
    /* validate every claim before running any */
    int idx = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, claims) {
        if (check_claim(path, idx++, c, e) != TP_OK) {
            cJSON_Delete(root);
            return TP_ERR_FORMAT;
        }
    }
    char models[2048], datadir[2048], tmpd[2048];
    const char *env = getenv("TENPAK_MODELS_DIR");
    if (o->models_dir) snprintf(models, sizeof models, "%s", o->models_dir);
    else if (env && *env) snprintf(models, sizeof models, "%s", env);
    else snprintf(models, sizeof models, "%s/models", tp_shared_dir());
    snprintf(datadir, sizeof datadir, "%s", o->data_dir ? o->data_dir : tp_shared_dir());
    const char *td = o->tmp_dir ? o->tmp_dir : getenv("TMPDIR");
    snprintf(tmpd, sizeof tmpd, "%s", td && *td ? td : "/tmp");

    idx = 0;
    cJSON_ArrayForEach(c, claims) {
        idx++;
        char mdir[4096], cfg[4200], data[4096], msg[8400];
        resolve(mdir, sizeof mdir, models, tp_json_str(c, "model_dir"));
        snprintf(cfg, sizeof cfg, "%s/config.json", mdir);
        tp_codec codec;
        tp_err ce;
        int codec_ok = tp_codec_parse(tp_json_str(c, "codec"), &codec, &ce) == TP_OK;
        if (access(cfg, R_OK) != 0) {
            snprintf(msg, sizeof msg, "model %s not present (looked for %s); codec %s",
                     tp_json_str(c, "model") ? tp_json_str(c, "model") : tp_json_str(c, "model_dir"), mdir,
                     codec_ok ? "implemented here" : "NOT implemented here");
            result(results, c, TP_CLAIM_NEEDS_MODEL, msg, counts);
            continue;
        }
        if (!codec_ok) {
            result(results, c, TP_CLAIM_UNSUPPORTED, ce.msg, counts);
            continue;
        }
        resolve(data, sizeof data, datadir, tp_json_str(c, "data"));
        const cJSON *pr = cJSON_GetObjectItemCaseSensitive(c, "protocol");
        tp_eval_opts eo = {0};
        eo.data = data;
        eo.tail_chars = (size_t)num(c, "tail_chars", 0);
        eo.ppl.protocol = tp_json_str(pr, "name") && !strcmp(tp_json_str(pr, "name"), "llamacpp") ? TP_PPL_LLAMACPP : TP_PPL_HF;
        eo.ppl.ctx = (int)num(pr, "ctx", 0);
        eo.ppl.stride = (int)num(pr, "stride", 0);
        eo.max_tokens = (size_t)num(pr, "max_tokens", 0);
        int capped = o->max_tokens && (!eo.max_tokens || o->max_tokens < eo.max_tokens);
        if (capped) eo.max_tokens = o->max_tokens;
        /* already measured in this run? */
        const cJSON *kn = NULL, *k;
        const char *sel = tp_json_str(c, "select") ? tp_json_str(c, "select") : "linear";
        cJSON_ArrayForEach(k, o->known) {
            if (!strcmp(tp_json_str(k, "model_dir") ? tp_json_str(k, "model_dir") : "", tp_json_str(c, "model_dir")) &&
                !strcmp(tp_json_str(k, "codec") ? tp_json_str(k, "codec") : "", codec.spec) &&
                !strcmp(tp_json_str(k, "select") ? tp_json_str(k, "select") : "", sel) &&
                !strcmp(tp_json_str(k, "data") ? tp_json_str(k, "data") : "", tp_json_str(c, "data")) &&
                (size_t)num(k, "tail_chars", 0) == eo.tail_chars && (size_t)num(k, "max_tokens", 0) == eo.max_tokens)
                kn = k;
        }
        char art[4200];
        snprintf(art, sizeof art, "%s/tenpak-claim-%d-%d.tpk", tmpd, (int)getpid(), idx);
        eo.artifact = art;
        tp_compress_opts co = {.model_dir = mdir, .codec = tp_json_str(c, "codec"), .select = tp_json_str(c, "select"),
                               .lossless = tp_json_str(c, "lossless"), .quiet = 1};
        tp_compress_result cr;
        tp_eval_result er;
        tp_err re;
        if (!o->quiet && !kn) fprintf(stderr, "claim %d/%d: %s (%s on %s)\n", idx, cJSON_GetArraySize(claims),
                               tp_json_str(c, "name"), codec.spec, tp_json_str(c, "model_dir"));
        tp_status s = TP_OK;
        measured m;
        if (kn) measured_from_known(kn, &m); /* the same measurement, made earlier in this run */
        else {
            s = tp_compress_model(&co, art, &cr, &re);
            if (s == TP_OK) tp_compress_result_free(&cr);
            if (s == TP_OK) s = tp_eval_artifact(&eo, &er, &re);
            unlink(art);
            if (s == TP_OK) measured_from_eval(&er, &m);
        }
        if (s != TP_OK) {
            result(results, c, TP_CLAIM_ERROR, re.msg, counts);
            continue;
        }
        int mi = metric_index(tp_json_str(c, "metric"));
        tp_claim_status st;
        if (mi >= 0 && !m.has_ci) {
            st = TP_CLAIM_ERROR;
            snprintf(msg, sizeof msg, "%s needs its 95%% interval, which only the paired (cpu) evaluation gives", metric_names[mi]);
        } else if (mi >= 0) {
            st = judge_metric(c, mi, &m, msg, sizeof msg);
            if (capped) strncat(msg, " [quick check: --max-tokens]", sizeof msg - strlen(msg) - 1);
        } else st = judge_legacy(c, &m, capped, msg, sizeof msg);
        result(results, c, st, msg, counts);
        add_measured(cJSON_GetArrayItem(results, cJSON_GetArraySize(results) - 1), &m, codec.spec);
    }
    cJSON_Delete(root);
    return TP_OK;
}
