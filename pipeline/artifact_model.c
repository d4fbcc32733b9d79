/* A model from an artifact: see artifact_model.h. */
#include "pipeline/artifact_model.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "pipeline/artifact.h"
#include "pipeline/codec.h"
#include "pipeline/config.h"
#include "pipeline/gguf_model.h"
#include "pipeline/linear.h"
#include "tenpak/quant.h"
#include "tenpak/sha256.h"

const char *tp_exec_name(tp_exec x) { return x == TP_EXEC_DEQUANT ? "dequant" : "packed"; }
int tp_exec_parse(const char *s, tp_exec *x) {
    if (!strcmp(s, "packed")) *x = TP_EXEC_PACKED;
    else if (!strcmp(s, "dequant")) *x = TP_EXEC_DEQUANT;
    else return 0;
    return 1;
}

/* VmHWM of /proc/self/status, which tp_peak_rss_reset can lower; getrusage's maximum (never
 * lowered) where /proc is not there */
uint64_t tp_peak_rss_bytes(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    unsigned long long kb = 0;
    int found = 0;
    while (f && !found && fgets(line, sizeof line, f)) found = sscanf(line, "VmHWM: %llu kB", &kb) == 1;
    if (f) fclose(f);
    if (found) return (uint64_t)kb * 1024u;
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? (uint64_t)ru.ru_maxrss * 1024u : 0;
}

int tp_peak_rss_reset(void) {
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t w = write(fd, "5", 1); /* "5": reset the peak resident set size to the current one */
    close(fd);
    return w == 1;
}

tp_status tp_artifact_source_dir(const char *artifact, char *dir, size_t n, tp_err *e) {
    tp_artifact a;
    tp_status s = tp_artifact_open(artifact, &a, e);
    if (s != TP_OK) return s;
    const char *d = tp_json_str(cJSON_GetObjectItemCaseSensitive(a.header, "source"), "dir");
    if (d) snprintf(dir, n, "%s", d);
    else s = tp_fail(e, TP_ERR_FORMAT, "%s: header lacks the source model", artifact);
    tp_artifact_close(&a);
    return s;
}

tp_status tp_source_file_sha256(const char *dir, const char *name, char hex[65], tp_err *e) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (access(path, F_OK) != 0) {
        snprintf(hex, 65, "%s", TP_SOURCE_ABSENT);
        return TP_OK;
    }
    size_t n;
    char *b = tp_read_file(path, &n, e);
    if (!b) return TP_ERR_IO;
    uint8_t d[32];
    tp_sha256(b, n, d);
    tp_sha256_hex(d, hex);
    free(b);
    return TP_OK;
}

/* the recorded sha256 of dir/name (key in the header's source), if any, against the file now;
 * detail (may be empty) says what differs */
static tp_status check_source_file(const char *artifact, const cJSON *src, const char *key, const char *dir,
                                   const char *name, const char *detail, int *checked, tp_err *e) {
    const char *want = tp_json_str(src, key);
    if (!want) {
        *checked = 0;
        return TP_OK;
    }
    char have[65];
    tp_status s = tp_source_file_sha256(dir, name, have, e);
    if (s == TP_OK && strcmp(have, want))
        s = tp_fail(e, TP_ERR_ARG, "%s was made with %s of sha256 %.12s..., but %s/%s has %.12s...%s%s: it changed since "
                    "(compress again, or use the folder it was made from)", artifact, name, want, dir, name, have,
                    *detail ? ", " : "", detail);
    return s;
}

/* The config the artifact records (its header's "config": config.json as it was; artifacts of
 * every tenpak version have it) against dir/config.json now, field by field: what differs that
 * the forward pass would see, named in what ("rms_norm_eps 1e-05, now 2e-05"), else "". A config
 * that does not parse is the model loader's to report. */
static void config_diff(const cJSON *header, const char *dir, char *what, size_t n) {
    const cJSON *rec = cJSON_GetObjectItemCaseSensitive(header, "config");
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    what[0] = 0;
    tp_model_config want, have;
    tp_err ignore;
    if (rec && access(path, F_OK) == 0 && tp_config_parse_json(rec, "config", &want, &ignore) == TP_OK &&
        tp_config_load(path, &have, &ignore) == TP_OK)
        (void)tp_config_diff(&want, &have, what, n);
}

static void close_artifact(void *p) {
    tp_artifact_close(p);
    free(p);
}

/* The record's dtype and shape are the checkpoint tensor's (a raw record's bytes being equal does
 * not make its header true). */
static tp_status check_meta(const tp_artifact *a, const cJSON *rec, const tp_st_tensor *t, tp_err *e) {
    const char *name = tp_json_str(rec, "name"), *dt = tp_json_str(rec, "dtype");
    if (!dt || strcmp(dt, tp_st_dtype_name(t->dtype)))
        return tp_fail(e, TP_ERR_FORMAT, "%s: tensor %s: record dtype %s, the checkpoint's is %s", a->path, name,
                       dt ? dt : "(none)", tp_st_dtype_name(t->dtype));
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(rec, "shape");
    int ok = cJSON_IsArray(sh) && cJSON_GetArraySize(sh) == t->ndim;
    for (int i = 0; ok && i < t->ndim; i++) {
        const cJSON *d = cJSON_GetArrayItem(sh, i);
        ok = cJSON_IsNumber(d) && d->valuedouble == (double)t->shape[i];
    }
    if (!ok) return tp_fail(e, TP_ERR_FORMAT, "%s: tensor %s: record shape does not match the checkpoint", a->path, name);
    return TP_OK;
}

/* install's failure messages name the file and the tensor (the codec's own do not) */
static tp_status in_record(const tp_artifact *a, const char *name, tp_status s, tp_err *e) {
    if (s == TP_OK || !e || strstr(e->msg, a->path)) return s;
    char msg[sizeof e->msg];
    snprintf(msg, sizeof msg, "%s", e->msg);
    return tp_fail(e, s, "%s: tensor %s: %s", a->path, name, msg);
}

/* One compressed record into the model: packed (a view of the map, or of a decoded zstd record
 * the model then keeps) or decoded to fp32 in the model's file layout. */
static tp_status install(tp_model *m, const tp_artifact *a, const cJSON *rec, const tp_st_tensor *t, tp_exec exec,
                         tp_artifact_model *info, tp_err *e) {
    const char *name = tp_json_str(rec, "name"), *codec = tp_json_str(rec, "codec");
    const cJSON *jr = cJSON_GetObjectItemCaseSensitive(rec, "rows"), *jc = cJSON_GetObjectItemCaseSensitive(rec, "cols");
    int transposed = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "transposed"));
    /* within the tensor's size before any product: a forged 1e300 must neither overflow nor reach a loop */
    double lim = (double)t->numel;
    int64_t rows = cJSON_IsNumber(jr) && jr->valuedouble >= 1 && jr->valuedouble <= lim ? (int64_t)jr->valuedouble : -1;
    int64_t cols = cJSON_IsNumber(jc) && jc->valuedouble >= 1 && jc->valuedouble <= lim ? (int64_t)jc->valuedouble : -1;
    if (t->ndim != 2 || rows <= 0 || cols <= 0 || rows * cols != t->numel || rows != (transposed ? t->shape[1] : t->shape[0]))
        return tp_fail(e, TP_ERR_FORMAT, "%s: tensor %s: record shape does not match the checkpoint", a->path, name);
    const uint8_t *data;
    uint8_t *owned;
    size_t len;
    tp_status s = tp_artifact_record_view(a, rec, &data, &len, &owned, e);
    if (s != TP_OK) return s;
    if (owned && (s = tp_model_adopt(m, owned, tp_free, e)) != TP_OK) return s;
    if (exec == TP_EXEC_PACKED) {
        char what[600];
        snprintf(what, sizeof what, "%s: tensor %s", a->path, name);
        tp_linear *l;
        if ((s = tp_linear_open(codec, data, len, rows, cols, what, &l, e)) != TP_OK) return s;
        info->packed_bytes += tp_linear_bytes(l);
        info->format_bytes += tp_linear_format_bytes(l);
        if ((s = tp_model_set_packed(m, name, l, e)) != TP_OK) tp_linear_free(l);
        return s;
    }
    tp_codec c;
    if ((s = tp_codec_parse(codec, &c, e)) != TP_OK) return s;
    float *D = tp_alloc((size_t)t->numel * 4), *F = transposed ? tp_alloc((size_t)t->numel * 4) : D;
    if (!D || !F) {
        tp_free(D);
        if (F != D) tp_free(F);
        return tp_fail(e, TP_ERR_NOMEM, "out of memory decoding %s", name);
    }
    s = tp_codec_decode(&c, data, len, rows, cols, D, e);
    if (transposed) {
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < cols; j++) F[j * rows + i] = D[i * cols + j];
        tp_free(D);
    }
    if (s != TP_OK) { tp_free(F); return s; }
    if ((s = tp_model_adopt(m, F, tp_free, e)) != TP_OK) return s;
    return tp_model_override_weight(m, name, F, e);
}

/* Packed weights larger than the last-level cache stream from memory at every token: the INT4
 * GEMV then walks rows in the order that streams fastest on this CPU (tp_qgemv_set_streaming) */
static void streaming_hint(const tp_artifact_model *info) {
    const int64_t llc = tp_cpu_cache_bytes(3, 0);
    const double w = (double)info->format_bytes + (double)info->packed_bytes;
    tp_qgemv_set_streaming(llc > 0 && w > (double)llc ? 1 : 0);
}

tp_status tp_model_load_artifact(const char *artifact, const char *model_dir, tp_exec exec, const tp_model_opts *mopts,
                                 tp_model **out, tp_artifact_model *info, tp_err *e) {
    *out = NULL;
    memset(info, 0, sizeof *info);
    if (tp_gguf_is_model_path(artifact)) { /* a llama.cpp quantisation against its source (gguf_model.h) */
        tp_status gs = tp_gguf_model_load_artifact(artifact, model_dir, mopts, out, info, e);
        if (gs == TP_OK) streaming_hint(info);
        return gs;
    }
    tp_artifact *a = calloc(1, sizeof *a);
    if (!a) return tp_fail(e, TP_ERR_NOMEM, "out of memory");
    tp_status s = tp_artifact_open(artifact, a, e);
    if (s != TP_OK) { free(a); return s; }
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(a->header, "source");
    const char *dir = model_dir ? model_dir : tp_json_str(src, "dir");
    const char *want_sha = tp_json_str(src, "sha256");
    if (!dir || !want_sha) {
        close_artifact(a);
        return tp_fail(e, TP_ERR_FORMAT, "%s: header lacks the source model", artifact);
    }
    snprintf(info->model_dir, sizeof info->model_dir, "%s", dir);
    snprintf(info->codec, sizeof info->codec, "%s", tp_json_str(a->header, "codec"));
    snprintf(info->codec_given, sizeof info->codec_given, "%s",
             tp_json_str(a->header, "codec_given") ? tp_json_str(a->header, "codec_given") : "");
    snprintf(info->model_type, sizeof info->model_type, "%s", tp_json_str(src, "model_type") ? tp_json_str(src, "model_type") : "");
    char cfg[4200];
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    if (access(cfg, R_OK) != 0) {
        s = tp_fail(e, TP_ERR_IO, "%s: its checkpoint %s%s has no readable config.json (%s): pass the folder with --model",
                    artifact, dir, model_dir ? "" : " (the folder recorded at compress time, relative to where it ran)",
                    strerror(errno));
        close_artifact(a);
        return s;
    }
    /* the config and tokenizer beside the checkpoint are the ones it was made with */
    info->files_checked = 1;
    char what[160];
    config_diff(a->header, dir, what, sizeof what);
    if ((s = check_source_file(artifact, src, "config_sha256", dir, "config.json", what, &info->files_checked, e)) != TP_OK ||
        (s = check_source_file(artifact, src, "tokenizer_sha256", dir, "tokenizer.json", "", &info->files_checked, e)) != TP_OK ||
        /* an older artifact without the sha256: the recorded config still tells a changed field */
        (what[0] && (s = tp_fail(e, TP_ERR_ARG, "%s was made with another config.json than %s/config.json has now: %s "
                                 "(compress again, or use the folder it was made from)", artifact, dir, what)) != TP_OK)) {
        close_artifact(a);
        return s;
    }
    tp_model *m = NULL;
    if ((s = tp_model_load(dir, mopts, &m, e)) != TP_OK) { close_artifact(a); return s; }
    /* from here the model owns the artifact: weights point into its map */
    if ((s = tp_model_adopt(m, a, close_artifact, e)) != TP_OK) { tp_model_free(m); return s; }
    uint8_t dg[32];
    if ((s = tp_st_sha256(tp_model_files(m), dg, e)) == TP_OK) {
        tp_sha256_hex(dg, info->model_sha256);
        if (strcmp(info->model_sha256, want_sha))
            s = tp_fail(e, TP_ERR_ARG, "%s was made from a checkpoint with sha256 %.12s..., but %s has %.12s...", artifact,
                        want_sha, dir, info->model_sha256);
    }
    const tp_st_set *set = tp_model_files(m);
    const cJSON *rec;
    cJSON_ArrayForEach(rec, a->tensors) {
        if (s != TP_OK) break;
        const char *name = tp_json_str(rec, "name"), *codec = tp_json_str(rec, "codec");
        const tp_st_tensor *t = tp_st_find(set, name);
        if (!t) { s = tp_fail(e, TP_ERR_FORMAT, "%s: tensor %s is not in %s", artifact, name, dir); break; }
        info->size.ntensors++;
        info->size.total_numel += (uint64_t)t->numel;
        info->size.fp32_bytes += (uint64_t)t->numel * 4;
        info->size.fp16_bytes += (uint64_t)t->numel * 2;
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(rec, "length");
        if ((s = check_meta(a, rec, t, e)) != TP_OK) break;
        if (!strcmp(codec, "raw")) {
            const uint8_t *data;
            uint8_t *owned;
            size_t len;
            if ((s = tp_artifact_record_view(a, rec, &data, &len, &owned, e)) != TP_OK) break;
            if (len != t->nbytes || memcmp(data, t->data, len))
                s = tp_fail(e, TP_ERR_FORMAT, "%s: raw tensor %s differs from the source checkpoint", artifact, name);
            tp_free(owned);
            continue;
        }
        info->size.compressed_numel += (uint64_t)t->numel;
        int64_t lb = 0;
        info->size.compressed_bytes += tp_json_int(l, 0, (int64_t)9e15, &lb) ? (uint64_t)lb : 0;
        info->size.ncompressed++;
        s = in_record(a, name, install(m, a, rec, t, exec, info, e), e);
    }
    info->size.artifact_bytes = a->size;
    const cJSON *tb = cJSON_GetObjectItemCaseSensitive(a->header, "theory_bits_per_weight");
    const cJSON *re = cJSON_GetObjectItemCaseSensitive(a->header, "rel_frobenius_error");
    info->size.theory_bpw = cJSON_IsNumber(tb) ? tb->valuedouble : 0;
    info->size.rel_error = cJSON_IsNumber(re) ? re->valuedouble : 0;
    if (s == TP_OK && info->size.ntensors != (int)tp_st_count(set))
        s = tp_fail(e, TP_ERR_FORMAT, "%s holds %d tensors, the checkpoint %zu", artifact, info->size.ntensors, tp_st_count(set));
    if (s != TP_OK) { tp_model_free(m); return s; }
    *out = m;
    streaming_hint(info);
    return TP_OK;
}
