/* tenpak report: a matrix of codecs x models x datasets, measured end to end (compress -> artifact
 * -> eval), written as JSON (the source of every number) and as the experiment log's markdown,
 * with gnuplot plots. See pipeline/report.h; report_internal.h says how the files divide the work.
 * tp_report_run's steps, in order: read_config, resolve_paths, make_out_dirs, start_results
 * (provenance, protocol), run_model per model (run_codec per codec: compress, then eval_dataset per
 * dataset), the derived results (report_pareto.c), run_claims, write_outputs. */
#include "pipeline/report_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pipeline/artifact.h"
#include "pipeline/calib.h"
#include "pipeline/claims.h"
#include "pipeline/codec.h"
#include "pipeline/compress.h"
#include "pipeline/stats.h"

static void slug(const char *in, char *out, size_t n) {
    size_t k = 0;
    for (; *in && k + 1 < n; in++) out[k++] = (*in >= 'a' && *in <= 'z') || (*in >= '0' && *in <= '9') ? *in : '_';
    out[k] = 0;
}

static tp_status write_text(const char *path, const char *text, tp_err *e) {
    return tp_write_file_atomic(path, text, strlen(text), e);
}

/* "1m23s" */
static void fmt_secs(double s, char *buf, size_t n) {
    long t = (long)(s + 0.5);
    if (t >= 60) snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, n, "%lds", t);
}

/* The progress line of one step of the matrix: what it does, the time since the run began and,
 * once a row is done, what the rows left should take at the average pace so far. */
typedef struct progress { double t0; int total, done; } progress;
static void progress_line(const progress *pg, int step, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void progress_line(const progress *pg, int step, const char *fmt, ...) {
    char el[32], left[48] = "estimate after the first row";
    double elapsed = tp_now() - pg->t0;
    fmt_secs(elapsed, el, sizeof el);
    if (pg->done > 0) {
        char l[32];
        fmt_secs(elapsed / pg->done * (pg->total - pg->done), l, sizeof l);
        snprintf(left, sizeof left, "about %s left", l);
    }
    fprintf(stderr, "[%d/%d, %s elapsed, %s] ", step, pg->total, el, left);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* One run of the matrix: the config, where things are, the results as they grow. */
typedef struct run {
    const tp_report_opts *o;
    const char *cfgpath;
    cJSON *cfg;
    const cJSON *models, *datasets, *codecs, *proto;
    char models_dir[4096], shared[2048];
    char calpath[4096];
    const char *calrel; /* the config's calibration path, NULL for the default */
    size_t caltokens;
    const char *out;
    tp_ppl_opts po;
    size_t max_tokens;
    cJSON *root, *bases, *rows;
    progress pg;
    int step;
} run;

/* dataset path: absolute, or relative to the shared directory */
static void dataset_path(const run *R, const cJSON *ds, char *out, size_t n) {
    const char *dp = jstr_or(ds, "path", "");
    if (dp[0] == '/') snprintf(out, n, "%s", dp);
    else snprintf(out, n, "%s/%s", R->shared, dp);
}

/* The config: non-empty models, datasets and codecs, every codec spec valid before time is spent. */
static tp_status read_config(run *R, tp_err *e) {
    size_t n;
    char *text = tp_read_file(R->cfgpath, &n, e);
    if (!text) return TP_ERR_IO;
    R->cfg = cJSON_ParseWithLength(text, n);
    free(text);
    if (!R->cfg) return tp_fail(e, TP_ERR_FORMAT, "%s: not valid JSON", R->cfgpath);
    R->models = cJSON_GetObjectItemCaseSensitive(R->cfg, "models");
    R->datasets = cJSON_GetObjectItemCaseSensitive(R->cfg, "datasets");
    R->codecs = cJSON_GetObjectItemCaseSensitive(R->cfg, "codecs");
    R->proto = cJSON_GetObjectItemCaseSensitive(R->cfg, "protocol");
    if (!cJSON_IsArray(R->models) || !cJSON_IsArray(R->datasets) || !cJSON_IsArray(R->codecs) ||
        !cJSON_GetArraySize(R->models) || !cJSON_GetArraySize(R->datasets) || !cJSON_GetArraySize(R->codecs))
        return tp_fail(e, TP_ERR_FORMAT, "%s: needs non-empty \"models\", \"datasets\" and \"codecs\" arrays",
                       R->cfgpath);
    const cJSON *c;
    cJSON_ArrayForEach(c, R->codecs) {
        tp_codec cc;
        if (!tp_json_str(c, "spec") || tp_codec_parse(tp_json_str(c, "spec"), &cc, e) != TP_OK) {
            if (!tp_json_str(c, "spec")) tp_fail(e, TP_ERR_FORMAT, "%s: a codec entry lacks \"spec\"", R->cfgpath);
            return TP_ERR_FORMAT;
        }
    }
    return TP_OK;
}

/* The models and shared directories; the calibration text (awq, mixed): the config's "calibration"
 * {path relative to the shared directory, tokens}, else the default; never one of the evaluation
 * datasets. */
static tp_status resolve_paths(run *R, tp_err *e) {
    const tp_report_opts *o = R->o;
    const char *env = getenv("TENPAK_MODELS_DIR");
    snprintf(R->shared, sizeof R->shared, "%s", o->data_dir ? o->data_dir : tp_shared_dir());
    if (o->models_dir) snprintf(R->models_dir, sizeof R->models_dir, "%s", o->models_dir);
    else if (env && *env) snprintf(R->models_dir, sizeof R->models_dir, "%s", env);
    else snprintf(R->models_dir, sizeof R->models_dir, "%s/models", R->shared);
    const cJSON *calcfg = cJSON_GetObjectItemCaseSensitive(R->cfg, "calibration");
    const char *cp = R->calrel = jstr_or(calcfg, "path", NULL);
    if (!cp) snprintf(R->calpath, sizeof R->calpath, "%s", tp_calib_default_path());
    else if (cp[0] == '/') snprintf(R->calpath, sizeof R->calpath, "%s", cp);
    else snprintf(R->calpath, sizeof R->calpath, "%s/%s", R->shared, cp);
    R->caltokens = (size_t)jnum(calcfg, "tokens", 0);
    const cJSON *c;
    cJSON_ArrayForEach(c, R->datasets) {
        char dpath[4096];
        dataset_path(R, c, dpath, sizeof dpath);
        char r1[4096], r2[4096];
        if (realpath(dpath, r1) && realpath(R->calpath, r2) ? !strcmp(r1, r2) : !strcmp(dpath, R->calpath))
            return tp_fail(e, TP_ERR_FORMAT, "%s: the calibration text %s is also evaluation dataset '%s'", R->cfgpath,
                           R->calpath, jstr_or(c, "name", ""));
    }
    return TP_OK;
}

static void make_out_dirs(const char *out) {
    static const char *const sub[] = {"results", "plots", "artifacts"};
    char dir[4096];
    for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++) {
        snprintf(dir, sizeof dir, "%s/%s", out, sub[i]);
        tp_report_mkdirs(dir);
    }
}

/* The results' head: provenance (date, command, git commit, machine, compiler, config) and the
 * protocol; the models and datasets as configured; empty baselines and rows. */
static void start_results(run *R) {
    const tp_report_opts *o = R->o;
    R->po.protocol = jstr_or(R->proto, "name", "hf") && !strcmp(jstr_or(R->proto, "name", "hf"), "llamacpp")
                         ? TP_PPL_LLAMACPP : TP_PPL_HF;
    R->po.ctx = (int)jnum(R->proto, "ctx", 0);
    R->po.stride = (int)jnum(R->proto, "stride", 0);
    R->max_tokens = o->max_tokens_set ? o->max_tokens : (size_t)jnum(R->proto, "max_tokens", 0);

    cJSON *root = R->root = cJSON_CreateObject();
    cJSON *prov = cJSON_AddObjectToObject(root, "provenance");
    char buf[512], date[64];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S %Z", localtime(&now));
    cJSON_AddStringToObject(prov, "date", date);
    cJSON_AddStringToObject(prov, "command", o->command ? o->command : "tenpak report");
    tp_report_capture("git rev-parse HEAD 2>/dev/null", buf, sizeof buf);
    char dirty[64];
    tp_report_capture("git status --porcelain --untracked-files=no 2>/dev/null | head -1", dirty, sizeof dirty);
    snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s", buf[0] ? (dirty[0] ? " (with uncommitted changes)" : "") : "unknown");
    cJSON_AddStringToObject(prov, "git_commit", buf);
    cJSON_AddStringToObject(prov, "cpu", tp_cpu_model());
    snprintf(buf, sizeof buf, "%d", tp_num_threads());
    cJSON_AddStringToObject(prov, "threads", buf);
#ifdef __clang__
    cJSON_AddStringToObject(prov, "compiler", __VERSION__); /* "Debian Clang 14.0.6" */
#else
    cJSON_AddStringToObject(prov, "compiler", "gcc " __VERSION__);
#endif
    cJSON_AddStringToObject(prov, "config", R->cfgpath);
    cJSON_AddStringToObject(prov, "models_dir", R->models_dir);
    cJSON_AddStringToObject(prov, "results_json", "results/report.json");
    cJSON *pj = cJSON_AddObjectToObject(root, "protocol");
    cJSON_AddStringToObject(pj, "name", tp_ppl_protocol_name(R->po.protocol));
    cJSON_AddNumberToObject(pj, "ctx", R->po.ctx);
    cJSON_AddNumberToObject(pj, "stride", R->po.stride);
    cJSON_AddNumberToObject(pj, "max_tokens", (double)R->max_tokens);
    cJSON_AddItemToObject(root, "models", cJSON_Duplicate(R->models, 1));
    cJSON_AddItemToObject(root, "datasets", cJSON_Duplicate(R->datasets, 1));
    R->bases = cJSON_AddArrayToObject(root, "baselines");
    R->rows = cJSON_AddArrayToObject(root, "rows");
    R->pg = (progress){tp_now(), cJSON_GetArraySize(R->models) * cJSON_GetArraySize(R->codecs), 0};
}

/* the uncompressed model's numbers on a dataset, measured by the first row that needs them */
static cJSON *baseline_json(const char *model, const char *dataset, const tp_eval_result *er) {
    cJSON *nb = cJSON_CreateObject();
    cJSON_AddStringToObject(nb, "model", model);
    cJSON_AddStringToObject(nb, "dataset", dataset);
    cJSON_AddStringToObject(nb, "model_sha256", er->model_sha256);
    cJSON_AddStringToObject(nb, "data_sha256", er->data_sha256);
    cJSON_AddNumberToObject(nb, "tokens", (double)er->tokens);
    cJSON_AddNumberToObject(nb, "scored_tokens", (double)er->baseline.scored);
    cJSON_AddNumberToObject(nb, "nll_sum", er->baseline.nll_sum);
    cJSON_AddNumberToObject(nb, "ppl", er->baseline.ppl);
    cJSON_AddNumberToObject(nb, "decode_tokens_per_second", er->baseline_decode_tps);
    return nb;
}

/* one row of the results: a codec on a model and dataset */
static cJSON *row_json(const char *model, const char *dataset, const cJSON *codec, const tp_compress_opts *co,
                       const tp_compress_result *cr, const tp_eval_result *er) {
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "model", model);
    cJSON_AddStringToObject(r, "dataset", dataset);
    cJSON_AddStringToObject(r, "codec", er->codec);
    cJSON_AddStringToObject(r, "select", co->select);
    cJSON_AddStringToObject(r, "lossless", co->lossless);
    if (tp_json_str(codec, "name")) cJSON_AddStringToObject(r, "name", tp_json_str(codec, "name"));
    cJSON_AddNumberToObject(r, "artifact_bytes", (double)er->size.artifact_bytes);
    cJSON_AddNumberToObject(r, "fp32_bytes", (double)er->size.fp32_bytes);
    cJSON_AddNumberToObject(r, "fp16_bytes", (double)er->size.fp16_bytes);
    cJSON_AddNumberToObject(r, "ratio_fp32", (double)er->size.fp32_bytes / (double)er->size.artifact_bytes);
    cJSON_AddNumberToObject(r, "ratio_fp16", (double)er->size.fp16_bytes / (double)er->size.artifact_bytes);
    cJSON_AddNumberToObject(r, "bits_per_weight", 8.0 * (double)er->size.compressed_bytes / (double)er->size.compressed_numel);
    cJSON_AddNumberToObject(r, "bits_per_weight_model", 8.0 * (double)er->size.artifact_bytes / (double)er->size.total_numel);
    cJSON_AddNumberToObject(r, "theory_bits_per_weight", er->size.theory_bpw);
    cJSON_AddNumberToObject(r, "rel_frobenius_error", er->size.rel_error);
    cJSON_AddNumberToObject(r, "tokens", (double)er->tokens);
    cJSON_AddNumberToObject(r, "scored_tokens", (double)er->ppl.scored);
    cJSON_AddNumberToObject(r, "nll_sum", er->ppl.nll_sum);
    cJSON_AddNumberToObject(r, "ppl", er->ppl.ppl);
    cJSON_AddNumberToObject(r, "baseline_ppl", er->baseline.ppl);
    cJSON_AddNumberToObject(r, "ppl_delta_percent", 100.0 * (er->ppl.ppl - er->baseline.ppl) / er->baseline.ppl);
    if (er->paired) {
        tp_token_stats_json(&er->stats, r); /* ppl_delta_percent from the same sums, intervals, KLD, top-1 */
        cJSON_AddNumberToObject(r, "top1_percent", 100.0 * er->stats.top1_agreement);
        cJSON_AddNumberToObject(r, "nll_mean_stderr", er->ppl.nll_stderr);
    }
    cJSON_AddNumberToObject(r, "eval_seconds", er->ppl.seconds);
    cJSON_AddStringToObject(r, "exec", "packed");
    cJSON_AddNumberToObject(r, "decode_tokens_per_second", er->decode_tps);
    cJSON_AddNumberToObject(r, "peak_rss_bytes", (double)er->peak_rss_bytes);
    cJSON_AddNumberToObject(r, "peak_rss_mib", (double)er->peak_rss_bytes / 1048576.0);
    if (cr->calib_tokens) {
        cJSON_AddNumberToObject(r, "calib_tokens", (double)cr->calib_tokens);
        cJSON_AddStringToObject(r, "calib_sha256", cr->calib_sha256);
    }
    return r;
}

/* The artifact art of a codec on a model, evaluated on one dataset (with the model's baseline the
 * first time): a baseline where it was measured and a row into the results, a summary on stderr. */
static tp_status eval_dataset(run *R, const char *model, const cJSON *ds, const char *art, const cJSON *codec,
                              const tp_compress_opts *co, const tp_compress_result *cr, tp_err *e) {
    char dpath[4096];
    dataset_path(R, ds, dpath, sizeof dpath);
    const char *dsname = jstr_or(ds, "name", "");
    const cJSON *b = tp_report_find_baseline(R->bases, model, dsname);
    tp_eval_opts eo = {.artifact = art, .data = dpath, .tail_chars = (size_t)jnum(ds, "tail_chars", 0),
                       .max_tokens = R->max_tokens, .ppl = R->po, .decode_tokens = 64};
    if (b) {
        eo.skip_baseline = 1;
        eo.baseline_ppl = jnum(b, "ppl", 0);
        eo.baseline_nll = jnum(b, "nll_sum", 0);
    }
    tp_eval_result er;
    progress_line(&R->pg, R->step, "%s: %s on %s%s ...", model, co->codec, dsname,
                  b ? "" : " (and the uncompressed baseline)");
    tp_status s = tp_eval_artifact(&eo, &er, e);
    if (s != TP_OK) return s;
    if (!b) cJSON_AddItemToArray(R->bases, baseline_json(model, dsname, &er));
    cJSON_AddItemToArray(R->rows, row_json(model, dsname, codec, co, cr, &er));
    fprintf(stderr, "        ppl %.4f vs %.4f (%+.2f%%), %.2fx vs fp32", er.ppl.ppl, er.baseline.ppl,
            100.0 * (er.ppl.ppl - er.baseline.ppl) / er.baseline.ppl,
            (double)er.size.fp32_bytes / (double)er.size.artifact_bytes);
    if (er.paired)
        fprintf(stderr, ", delta interval [%+.2f%%, %+.2f%%], KLD %.5f, top-1 %.2f%%", er.stats.ppl_delta_percent_ci.lo,
                er.stats.ppl_delta_percent_ci.hi, er.stats.kld_mean, 100 * er.stats.top1_agreement);
    fputc('\n', stderr);
    return TP_OK;
}

/* One codec on one model: calibration first where the codec needs it and the model has none yet
 * (*mcal, shared by the model's calibrated codecs), compress into an artifact, evaluate it on
 * every dataset, remove it unless kept (evaluated or not). */
static tp_status run_codec(run *R, const char *model, const char *mdir, const cJSON *c, tp_calib **mcal,
                           tp_err *e) {
    tp_status s;
    R->step++;
    tp_codec cc;
    tp_codec_parse(tp_json_str(c, "spec"), &cc, e);
    if (tp_codec_needs_calib(&cc) && !*mcal) {
        progress_line(&R->pg, R->step, "%s: calibration on %s ...", model, R->calpath);
        if ((s = tp_calib_collect(mdir, R->calpath, R->caltokens, mcal, e)) != TP_OK) return s;
        if (!cJSON_GetObjectItemCaseSensitive(R->root, "calibration")) {
            cJSON *cj = cJSON_AddObjectToObject(R->root, "calibration");
            cJSON_AddStringToObject(cj, "path", R->calrel ? R->calrel : "datasets/corpus/brown.txt.gz");
            cJSON_AddStringToObject(cj, "sha256", (*mcal)->sha256);
            cJSON_AddNumberToObject(cj, "tokens", (double)(*mcal)->tokens);
        }
    }
    char sl[256], art[4400];
    slug(tp_json_str(c, "spec"), sl, sizeof sl);
    snprintf(art, sizeof art, "%s/artifacts/%s__%s__%s.tpk", R->out, model, sl, jstr_or(c, "select", "linear"));
    tp_compress_opts co = {.model_dir = mdir, .codec = tp_json_str(c, "spec"), .select = jstr_or(c, "select", "linear"),
                           .lossless = jstr_or(c, "lossless", "none"), .quiet = 1, .calib = *mcal};
    tp_compress_result cr;
    progress_line(&R->pg, R->step, "%s: compress %s (%s) ...", model, co.codec, co.select);
    if ((s = tp_compress_model(&co, art, &cr, e)) != TP_OK) return s;
    tp_compress_result_free(&cr);
    const cJSON *ds;
    cJSON_ArrayForEach(ds, R->datasets) {
        if ((s = eval_dataset(R, model, ds, art, c, &co, &cr, e)) != TP_OK) break;
    }
    if (!R->o->keep_artifacts) unlink(art); /* also after a failed evaluation */
    R->pg.done++;
    return s;
}

/* Every codec on one model (a folder name under the models directory, or an absolute path). */
static tp_status run_model(run *R, const cJSON *mo, tp_err *e) {
    if (!cJSON_IsString(mo)) return tp_fail(e, TP_ERR_FORMAT, "%s: models are folder names", R->cfgpath);
    char mdir[8400];
    if (mo->valuestring[0] == '/') snprintf(mdir, sizeof mdir, "%s", mo->valuestring);
    else snprintf(mdir, sizeof mdir, "%s/%s", R->models_dir, mo->valuestring);
    tp_calib *mcal = NULL; /* this model's calibration statistics, shared by its calibrated codecs */
    tp_status s = TP_OK;
    const cJSON *c;
    cJSON_ArrayForEach(c, R->codecs) {
        if ((s = run_codec(R, mo->valuestring, mdir, c, &mcal, e)) != TP_OK) break;
    }
    tp_calib_free(mcal);
    return s;
}

/* The config's claims files, verified into the results' "claims"; the matrix's own measurements
 * go with them, so claims about the same runs are not run twice. */
static tp_status run_claims(run *R, tp_err *e) {
    tp_status s = TP_OK;
    cJSON *cl = cJSON_AddArrayToObject(R->root, "claims");
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(R->cfg, "claims");
    cJSON *known = cJSON_CreateArray();
    const cJSON *r, *c;
    cJSON_ArrayForEach(r, R->rows) {
        const cJSON *ds, *dsm = NULL;
        cJSON_ArrayForEach(ds, R->datasets) if (!strcmp(jstr_or(ds, "name", ""), jstr_or(r, "dataset", "?"))) dsm = ds;
        if (!dsm) continue;
        cJSON *k = cJSON_Duplicate(r, 1);
        cJSON_AddStringToObject(k, "model_dir", jstr_or(r, "model", ""));
        cJSON_AddStringToObject(k, "data", jstr_or(dsm, "path", ""));
        cJSON_AddNumberToObject(k, "tail_chars", jnum(dsm, "tail_chars", 0));
        cJSON_AddNumberToObject(k, "max_tokens", (double)R->max_tokens);
        cJSON_AddItemToArray(known, k);
    }
    cJSON_ArrayForEach(c, files) {
        if (!cJSON_IsString(c)) continue;
        tp_claims_opts qo = {.models_dir = R->models_dir, .data_dir = R->shared, .max_tokens = R->max_tokens,
                             .known = known};
        int counts[TP_CLAIM_NSTATUS] = {0};
        fprintf(stderr, "claims: %s\n", c->valuestring);
        if ((s = tp_claims_verify_file(c->valuestring, &qo, cl, counts, e)) != TP_OK) break;
    }
    cJSON_Delete(known);
    return s;
}

/* The plots, then OUT/results/report.json and OUT/EXPERIMENT_LOG.md. */
static tp_status write_outputs(run *R, tp_err *e) {
    const char *out = R->out;
    cJSON *plots = cJSON_AddArrayToObject(R->root, "plots");
    tp_report_plot_pareto(out, R->root, plots);
    tp_report_plot_kld(out, R->root, plots);
    const char *bench = R->o->bench_json ? R->o->bench_json : tp_json_str(R->cfg, "bench");
    if (bench && access(bench, R_OK) == 0) tp_report_plot_bench(out, bench, plots);
    char *js = cJSON_Print(R->root);
    char path[4200];
    snprintf(path, sizeof path, "%s/results/report.json", out);
    tp_status s = js ? write_text(path, js, e) : tp_fail(e, TP_ERR_NOMEM, "out of memory");
    free(js);
    tp_sbuf md = {0};
    tp_report_markdown(&md, R->root);
    snprintf(path, sizeof path, "%s/EXPERIMENT_LOG.md", out);
    if (s == TP_OK) s = md.p ? write_text(path, md.p, e) : tp_fail(e, TP_ERR_NOMEM, "out of memory");
    free(md.p);
    if (s == TP_OK) fprintf(stderr, "report: %s/EXPERIMENT_LOG.md (numbers from %s/results/report.json)\n", out, out);
    return s;
}

tp_status tp_report_run(const tp_report_opts *o, tp_err *e) {
    run R = {.o = o, .cfgpath = o->config ? o->config : "reports/default.json",
             .out = o->out_dir ? o->out_dir : "reports"};
    tp_status s = read_config(&R, e);
    if (s == TP_OK) s = resolve_paths(&R, e);
    if (s != TP_OK) { cJSON_Delete(R.cfg); return s; }
    make_out_dirs(R.out);
    start_results(&R);
    const cJSON *mo;
    cJSON_ArrayForEach(mo, R.models) {
        if ((s = run_model(&R, mo, e)) != TP_OK) break;
    }
    if (s == TP_OK) {
        tp_report_crossings(R.root);
        tp_report_pareto(R.root);
        s = run_claims(&R, e);
    }
    if (s == TP_OK) s = write_outputs(&R, e);
    cJSON_Delete(R.root);
    cJSON_Delete(R.cfg);
    return s;
}
