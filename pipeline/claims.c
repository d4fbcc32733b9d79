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

const char *tp_claim_status_name(tp_claim_status s) {
    static const char *n[] = {"VERIFIED", "FAILED", "NEEDS MODEL", "UNSUPPORTED", "ERROR"};
    return s <= TP_CLAIM_ERROR ? n[s] : "?";
}

static double num(const cJSON *o, const char *k, double dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static void resolve(char *out, size_t n, const char *base, const char *p) {
    if (p[0] == '/') snprintf(out, n, "%s", p);
    else snprintf(out, n, "%s/%s", base, p);
}

static void result(cJSON *results, const cJSON *c, tp_claim_status st, const char *reason, int counts[5]) {
    cJSON *r = cJSON_CreateObject();
    const char *keys[] = {"name", "model", "codec", "select", "dataset", "source"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (tp_json_str(c, keys[i])) cJSON_AddStringToObject(r, keys[i], tp_json_str(c, keys[i]));
    cJSON_AddStringToObject(r, "status", tp_claim_status_name(st));
    cJSON_AddStringToObject(r, "reason", reason ? reason : "");
    const cJSON *cl = cJSON_GetObjectItemCaseSensitive(c, "claimed");
    cJSON_AddNumberToObject(r, "claimed_ratio_fp32", num(cl, "ratio_fp32", NAN));
    cJSON_AddNumberToObject(r, "claimed_ppl_delta_percent", num(cl, "ppl_delta_percent", NAN));
    cJSON_AddItemToArray(results, r);
    counts[st]++;
}

tp_status tp_claims_verify_file(const char *path, const tp_claims_opts *o, cJSON *results, int counts[5], tp_err *e) {
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
        const char *req[] = {"name", "model_dir", "codec", "data"};
        for (size_t k = 0; k < 4; k++)
            if (!tp_json_str(c, req[k])) {
                cJSON_Delete(root);
                return tp_fail(e, TP_ERR_FORMAT, "%s: claim %d lacks \"%s\"", path, idx, req[k]);
            }
        const cJSON *cl = cJSON_GetObjectItemCaseSensitive(c, "claimed");
        if (!cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(cl, "ratio_fp32")) ||
            !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(cl, "ppl_delta_percent"))) {
            cJSON_Delete(root);
            return tp_fail(e, TP_ERR_FORMAT, "%s: claim %d (%s) lacks claimed.ratio_fp32 / ppl_delta_percent", path,
                           idx, tp_json_str(c, "name"));
        }
        idx++;
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
        memset(&er, 0, sizeof er);
        if (kn) { /* the same measurement, made earlier in this run */
            er.size.fp32_bytes = (uint64_t)(num(kn, "ratio_fp32", 0) * num(kn, "artifact_bytes", 0) + 0.5);
            er.size.artifact_bytes = (uint64_t)num(kn, "artifact_bytes", 0);
            er.ppl.ppl = num(kn, "ppl", 0);
            er.baseline.ppl = num(kn, "baseline_ppl", 0);
            er.tokens = (size_t)num(kn, "tokens", 0);
        } else {
            s = tp_compress_model(&co, art, &cr, &re);
            if (s == TP_OK) tp_compress_result_free(&cr);
            if (s == TP_OK) s = tp_eval_artifact(&eo, &er, &re);
            unlink(art);
        }
        if (s != TP_OK) {
            result(results, c, TP_CLAIM_ERROR, re.msg, counts);
            continue;
        }
        const cJSON *cl = cJSON_GetObjectItemCaseSensitive(c, "claimed"), *tol = cJSON_GetObjectItemCaseSensitive(c, "tolerance");
        double cratio = num(cl, "ratio_fp32", 0), cdelta = num(cl, "ppl_delta_percent", 0);
        double mratio = (double)er.size.fp32_bytes / (double)er.size.artifact_bytes;
        double mdelta = 100.0 * (er.ppl.ppl - er.baseline.ppl) / er.baseline.ppl;
        double tr = num(tol, "ratio_rel", 0.05), td2 = num(tol, "ppl_delta_abs", 0.5);
        int ok_ratio = fabs(mratio - cratio) <= tr * cratio, ok_delta = fabs(mdelta - cdelta) <= td2;
        snprintf(msg, sizeof msg, "ratio %.3fx (claimed %.2fx, tol %.0f%%)%s; ppl delta %+.3f%% (claimed %+.2f%%, tol %.2f)%s%s",
                 mratio, cratio, 100 * tr, ok_ratio ? "" : " OUT", mdelta, cdelta, td2, ok_delta ? "" : " OUT",
                 capped ? " [quick check: --max-tokens]" : "");
        result(results, c, ok_ratio && ok_delta ? TP_CLAIM_VERIFIED : TP_CLAIM_FAILED, msg, counts);
        cJSON *r = cJSON_GetArrayItem(results, cJSON_GetArraySize(results) - 1);
        cJSON_AddNumberToObject(r, "measured_ratio_fp32", mratio);
        cJSON_AddNumberToObject(r, "measured_ppl_delta_percent", mdelta);
        cJSON_AddNumberToObject(r, "measured_ppl", er.ppl.ppl);
        cJSON_AddNumberToObject(r, "baseline_ppl", er.baseline.ppl);
        cJSON_AddNumberToObject(r, "artifact_bytes", (double)er.size.artifact_bytes);
        cJSON_AddNumberToObject(r, "tokens", (double)er.tokens);
        cJSON_AddStringToObject(r, "codec_canonical", codec.spec);
    }
    cJSON_Delete(root);
    return TP_OK;
}
