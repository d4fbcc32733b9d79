/* tenpak bench-model: see bench_model.h. The parent prepares the token ids, forks one child per
 * row (the child loads, warms up, times, and sends its figures back through a pipe), then
 * measures the copy bandwidth and writes the table and the JSON. */
#include "pipeline/bench_model.h"
#ifdef TENPAK_HAVE_CUDA
#include "kernels/cuda/tp_cuda.h"
#endif

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pipeline/gguf_model.h"
#include "pipeline/linear.h"
#include "tenpak/bench.h"

#define IDS_SEED 42u

void tp_bench_model_codec_name(const char *spec, char *dst, size_t cap) {
    size_t i = 0;
    for (; spec[i] && i + 1 < cap; i++) dst[i] = strchr(":,=+/ ", spec[i]) ? '_' : spec[i];
    if (cap) dst[i] = 0;
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* Bytes per element of a matrix that is not packed, as the model's weight mode reads it: its fp32
 * copy (F32), the fp16 file data (F16: the fp16 kernel; the row is the "fp16 weights" deployment
 * whatever the file's dtype), or the file data converted on use (PER_LAYER). Under --exec dequant
 * in PER_LAYER mode the decoded fp32 matrices count at the file's dtype: a small undercount of a
 * reference path, not a deployment. */
static double elem_bytes(tp_weight_mode mode, const tp_st_tensor *t) {
    if (mode == TP_WEIGHTS_F32) return 4;
    if (mode == TP_WEIGHTS_F16) return 2;
    return (double)tp_st_dtype_size(t->dtype);
}

/* The bytes model (what the roofline divides by the copy bandwidth): a forward pass of n tokens
 * reads every weight matrix it multiplies by once, whatever n (prefill shares each read among its
 * n rows; the lm_head is read whole even for the last row only): a packed matrix its packed format
 * (tp_linear_format_bytes), any other numel x its mode's bytes per element (elem_bytes). The
 * embeddings are looked up, not multiplied: the token embedding reads n rows (n x d_model
 * elements, at its bytes per element: a packed one its format bytes / rows per row) unless it is
 * also the lm_head (tied: then it is read whole, as the head), and GPT-2's position embedding n
 * rows. Norm weights and biases (every 1-D tensor of the checkpoint) count once, as the fp32
 * vectors the model holds. Activations, the KV cache and logits are not weights: not counted. */
double tp_bench_model_weight_bytes(const tp_model *m, int n) {
    size_t nw = tp_model_num_weights(m);
    int tied = 1; /* an untied head is listed as lm_head.weight (model.h) */
    for (size_t i = 0; i < nw; i++)
        if (!strcmp(tp_model_weight(m, i)->name, "lm_head.weight")) tied = 0;
    double bytes = 0;
    for (size_t i = 0; i < nw; i++) {
        const tp_st_tensor *t = tp_model_weight(m, i);
        const struct tp_linear *l = tp_model_packed(m, t->name);
        double whole = l ? (double)tp_linear_format_bytes(l) : (double)t->numel * elem_bytes(tp_model_weight_mode(m), t);
        int tok_emb = ends_with(t->name, "wte.weight") || !strcmp(t->name, "model.embed_tokens.weight");
        int pos_emb = ends_with(t->name, "wpe.weight");
        if ((tok_emb && !tied) || pos_emb) bytes += whole / (double)t->shape[0] * n;
        else bytes += whole;
    }
    const tp_st_set *set = tp_model_files(m);
    for (size_t i = 0; i < tp_st_count(set); i++) {
        const tp_st_tensor *t = tp_st_at(set, i);
        if (t->ndim == 1 && tp_st_is_float(t->dtype)) bytes += 4.0 * (double)t->numel;
    }
    return bytes;
}

/* ---- one row, in a child process ---- */

typedef struct row_msg {
    int ok;
    char err[512];
    char spec[256];     /* fp32, fp16, or the artifact's canonical codec spec */
    char given[256];    /* the artifact's spec as compress was given it ("" when not recorded) */
    char mode[16];      /* the weight mode the row ran in */
    double pp_bytes, tg_bytes; /* tp_bench_model_weight_bytes for n = pp and n = 1 */
    double peak_rss;
    int reps;           /* followed by pp_s[reps], pp_cpu[reps], tg_s[reps], tg_cpu[reps] */
} row_msg;

typedef struct row {
    const char *artifact; /* NULL: a checkpoint row */
    tp_weight_mode weights;
    row_msg r;
    double *t;            /* 4 x reps seconds, in row_msg's order */
    char codec[256];      /* the <codec> of the benchmark names */
} row;

static double device_copy_bandwidth(void) {
#ifdef TENPAK_HAVE_CUDA
    return tp_cuda_copy_bandwidth();
#else
    return 0;
#endif
}

static const char *mode_name(tp_weight_mode m) {
    return m == TP_WEIGHTS_F32 ? "f32" : m == TP_WEIGHTS_F16 ? "f16" : m == TP_WEIGHTS_PER_LAYER ? "per-layer" : "auto";
}

static tp_status run_row(const tp_bench_model_opts *o, const row *rw, const int32_t *ids, row_msg *r, double *t,
                         tp_err *e) {
    int need = o->pp > o->tg ? o->pp : o->tg;
    /* the KV cache only as long as the longer test: the model's default would count its whole
     * context in the peak RSS */
    tp_model_opts mo = {.weights = rw->weights, .max_ctx = need};
    tp_model *m = NULL;
    tp_peak_rss_reset(); /* the row's process: what it inherited from the parent, then its own */
    tp_status s;
    if (rw->artifact) {
        tp_artifact_model info;
        if ((s = tp_model_load_artifact(rw->artifact, o->model_dir, o->exec, &mo, &m, &info, e)) != TP_OK) return s;
        snprintf(r->spec, sizeof r->spec, "%s", info.codec);
        snprintf(r->given, sizeof r->given, "%s", info.codec_given);
        if (!info.files_checked)
            fprintf(stderr, "bench-model: note: %s records no sha256 of config.json and tokenizer.json (made by an older "
                    "tenpak): they were not checked\n", rw->artifact);
    } else {
        if ((s = tp_model_load(o->model_dir, &mo, &m, e)) != TP_OK) return s;
        snprintf(r->spec, sizeof r->spec, "%s", rw->weights == TP_WEIGHTS_F16 ? "fp16" : "fp32");
    }
    snprintf(r->mode, sizeof r->mode, "%s", mode_name(tp_model_weight_mode(m)));
    if (o->device != TP_DEVICE_CPU && (s = tp_model_set_device(m, o->device, e)) != TP_OK) {
        tp_model_free(m);
        return s;
    }
    if (tp_model_capacity(m) < need) {
        s = tp_fail(e, TP_ERR_ARG, "%s: %d tokens do not fit the model's context of %d positions", o->model_dir, need,
                    tp_model_capacity(m));
        tp_model_free(m);
        return s;
    }
    r->pp_bytes = tp_bench_model_weight_bytes(m, o->pp > 0 ? o->pp : 1);
    r->tg_bytes = tp_bench_model_weight_bytes(m, 1);
    float *logits = malloc((size_t)tp_model_cfg(m)->vocab * sizeof *logits);
    if (!logits) { tp_model_free(m); return tp_fail(e, TP_ERR_NOMEM, "out of memory"); }
    int R = o->repetitions;
    double *pp_s = t, *pp_cpu = t + R, *tg_s = t + 2 * R, *tg_cpu = t + 3 * R;
    /* warm-up, untimed: fp32 copies made, BLAS buffers and thread pools started, pages touched */
    if (o->pp > 0) {
        tp_model_reset(m);
        s = tp_model_forward(m, ids, o->pp, 0, o->pp - 1, logits, e);
    }
    for (int i = 0; s == TP_OK && i < (o->tg < 4 ? o->tg : 4); i++) {
        if (i == 0) tp_model_reset(m);
        s = tp_model_forward(m, &ids[i], 1, i, 0, logits, e);
    }
    for (int k = 0; s == TP_OK && o->pp > 0 && k < R; k++) {
        tp_model_reset(m);
        double c0 = tp_cpu_time(), t0 = tp_now();
        s = tp_model_forward(m, ids, o->pp, 0, o->pp - 1, logits, e);
        pp_s[k] = tp_now() - t0;
        pp_cpu[k] = tp_cpu_time() - c0;
    }
    for (int k = 0; s == TP_OK && o->tg > 0 && k < R; k++) {
        tp_model_reset(m);
        double c0 = tp_cpu_time(), t0 = tp_now();
        for (int i = 0; s == TP_OK && i < o->tg; i++) s = tp_model_forward(m, &ids[i], 1, i, 0, logits, e);
        tg_s[k] = tp_now() - t0;
        tg_cpu[k] = tp_cpu_time() - c0;
    }
    free(logits);
    tp_model_free(m);
    r->peak_rss = (double)tp_peak_rss_bytes();
    return s;
}

static int write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return 0;
        c += w;
        n -= (size_t)w;
    }
    return 1;
}
static size_t read_all(int fd, void *p, size_t n) {
    char *c = p;
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, c + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    return got;
}

/* Forks, runs the row in the child, reads its message. The row's label names it in errors. */
static tp_status fork_row(const tp_bench_model_opts *o, row *rw, const int32_t *ids, const char *label, tp_err *e) {
    size_t tbytes = 4 * (size_t)o->repetitions * sizeof(double);
    int fd[2];
    if (pipe(fd)) return tp_fail(e, TP_ERR_IO, "%s: pipe: %s", label, strerror(errno));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return tp_fail(e, TP_ERR_IO, "%s: fork: %s", label, strerror(errno));
    }
    if (pid == 0) {
        close(fd[0]);
        row_msg r;
        memset(&r, 0, sizeof r);
        memset(rw->t, 0, tbytes);
        r.reps = o->repetitions;
        tp_err ce = {{0}};
        r.ok = run_row(o, rw, ids, &r, rw->t, &ce) == TP_OK;
        if (!r.ok) snprintf(r.err, sizeof r.err, "%s", ce.msg);
        int w = write_all(fd[1], &r, sizeof r) && write_all(fd[1], rw->t, tbytes);
        close(fd[1]);
        _exit(w ? 0 : 1); /* no atexit handlers or stdio flushes of the parent's state */
    }
    close(fd[1]);
    size_t got = read_all(fd[0], &rw->r, sizeof rw->r);
    if (got == sizeof rw->r) got += read_all(fd[0], rw->t, tbytes);
    close(fd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (got != sizeof rw->r + tbytes) {
        if (WIFSIGNALED(status))
            return tp_fail(e, TP_ERR_INTERNAL, "%s: the row's process died of signal %d (%s)", label, WTERMSIG(status),
                           strsignal(WTERMSIG(status)));
        return tp_fail(e, TP_ERR_INTERNAL, "%s: the row's process exited (status %d) without its results", label,
                       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    if (!rw->r.ok) return tp_fail(e, TP_ERR_ARG, "%s", rw->r.err);
    /* the names take the spec as the user wrote it (`--codec int4:g=128`: model/<m>/int4_g_128/...),
     * the JSON's "codec" field the canonical one (int4:g=128,refine=0); an artifact from before
     * the given spec was recorded names its rows by the canonical spec */
    tp_bench_model_codec_name(rw->r.given[0] ? rw->r.given : rw->r.spec, rw->codec, sizeof rw->codec);
    return TP_OK;
}

/* ---- token ids ---- */

/* ids[0..n): the start of dir/goldens/wiki.test.ids.u32 when it holds n ids below vocab, else
 * splitmix64(IDS_SEED) mod vocab. `src` says which (JSON context). */
static int32_t *make_ids(const char *dir, int n, int vocab, char *src, size_t cap) {
    int32_t *ids = malloc((size_t)(n > 0 ? n : 1) * sizeof *ids);
    if (!ids) return NULL;
    char path[4200];
    snprintf(path, sizeof path, "%s/goldens/wiki.test.ids.u32", dir);
    size_t len = 0;
    tp_err ignore;
    uint8_t *b = access(path, R_OK) == 0 ? tp_read_file(path, &len, &ignore) : NULL;
    int ok = b && len / 4 >= (size_t)n;
    for (int i = 0; ok && i < n; i++) {
        uint32_t v = (uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 | (uint32_t)b[4 * i + 2] << 16 |
                     (uint32_t)b[4 * i + 3] << 24;
        ok = v < (uint32_t)vocab;
        ids[i] = (int32_t)v;
    }
    free(b);
    if (ok) {
        snprintf(src, cap, "wikitext-2 test ids (%s), first %d", path, n);
        return ids;
    }
    uint64_t x = IDS_SEED;
    for (int i = 0; i < n; i++) {
        uint64_t z = (x += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        ids[i] = (int32_t)((z ^ (z >> 31)) % (uint64_t)vocab);
    }
    snprintf(src, cap, "pseudo-random in [0, %d), splitmix64 seed %u", vocab, IDS_SEED);
    return ids;
}

/* ---- output ---- */

typedef struct test_view {
    const char *kind; /* "pp" / "tg" */
    int tokens;
    const double *s, *cpu;
    double bytes;
} test_view;

static test_view view(const tp_bench_model_opts *o, const row *rw, int tg) {
    int R = o->repetitions;
    test_view v = {tg ? "tg" : "pp", tg ? o->tg : o->pp, rw->t + (tg ? 2 * R : 0), rw->t + (tg ? 3 * R : R),
                   tg ? rw->r.tg_bytes : rw->r.pp_bytes / (o->pp > 0 ? o->pp : 1)};
    return v;
}

static cJSON *entry(const char *name, const char *run_name, const row *rw, const test_view *v, int reps,
                    const char *agg, int rep_index, double real_ns, double cpu_ns, double copy_bw) {
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "name", name);
    cJSON_AddStringToObject(b, "run_name", run_name);
    cJSON_AddStringToObject(b, "run_type", agg ? "aggregate" : "iteration");
    cJSON_AddNumberToObject(b, "repetitions", reps);
    if (!agg) cJSON_AddNumberToObject(b, "repetition_index", rep_index);
    cJSON_AddNumberToObject(b, "threads", 1);
    if (agg) {
        cJSON_AddStringToObject(b, "aggregate_name", agg);
        cJSON_AddStringToObject(b, "aggregate_unit", "time");
    }
    cJSON_AddNumberToObject(b, "iterations", v->tokens); /* real_time and cpu_time are per token */
    cJSON_AddNumberToObject(b, "real_time", real_ns);
    cJSON_AddNumberToObject(b, "cpu_time", cpu_ns);
    cJSON_AddStringToObject(b, "time_unit", "ns");
    cJSON_AddStringToObject(b, "codec", rw->r.spec);
    cJSON_AddStringToObject(b, "weight_mode", rw->r.mode);
    if (rw->artifact) cJSON_AddStringToObject(b, "artifact", rw->artifact);
    if (agg && !strcmp(agg, "stddev")) return b; /* as `tenpak bench`: no counters of a spread */
    double tps = 1e9 / real_ns;
    cJSON_AddNumberToObject(b, "tokens_per_second", tps);
    cJSON_AddNumberToObject(b, "items_per_second", tps);
    cJSON_AddNumberToObject(b, "bytes_per_token", v->bytes);
    cJSON_AddNumberToObject(b, "bytes_per_second", v->bytes * tps);
    /* prefill is compute-bound (each weight read serves pp rows): no roofline for it */
    if (!strcmp(v->kind, "tg") && copy_bw > 0) cJSON_AddNumberToObject(b, "roofline_fraction", v->bytes * tps / copy_bw);
    cJSON_AddNumberToObject(b, "peak_rss_bytes", rw->r.peak_rss);
    return b;
}

static void add_entries(cJSON *arr, const char *model, const tp_bench_model_opts *o, const row *rw, int tg,
                        double copy_bw) {
    test_view v = view(o, rw, tg);
    int R = o->repetitions;
    char name[640], nm[700];
    snprintf(name, sizeof name, "model/%s/%s/%s%d", model, rw->codec, v.kind, v.tokens);
    double *real = malloc(2 * (size_t)R * sizeof *real), *cpu = real ? real + R : NULL;
    if (!real) return;
    for (int k = 0; k < R; k++) {
        real[k] = 1e9 * v.s[k] / v.tokens;
        cpu[k] = 1e9 * v.cpu[k] / v.tokens;
        cJSON_AddItemToArray(arr, entry(name, name, rw, &v, R, NULL, k, real[k], cpu[k], copy_bw));
    }
    if (R > 1) {
        double a[5], c[5];
        tp_bench_aggregates(real, R, a);
        tp_bench_aggregates(cpu, R, c);
        const char *agg[5] = {"mean", "median", "stddev", "min", "max"};
        for (int j = 0; j < 5; j++) {
            snprintf(nm, sizeof nm, "%s_%s", name, agg[j]);
            cJSON_AddItemToArray(arr, entry(nm, name, rw, &v, R, agg[j], 0, a[j], c[j], copy_bw));
        }
    }
    free(real);
}

/* median seconds per token of one test */
static double median_tps(const tp_bench_model_opts *o, const row *rw, int tg) {
    test_view v = view(o, rw, tg);
    double a[5];
    tp_bench_aggregates(v.s, o->repetitions, a);
    return v.tokens / a[1];
}

static void print_table(const tp_bench_model_opts *o, const char *model, const row *rows, int nrows, double copy_bw) {
    FILE *f = o->out;
    fprintf(f, "%-16s %-28s %-8s %12s %12s %9s %13s\n", "model", "codec", "test", "tokens/s", "MB/token", "roofline",
            "peak RSS MiB");
    for (int i = 0; i < nrows; i++) {
        if (!rows[i].r.ok) continue;
        for (int tg = 0; tg < 2; tg++) {
            test_view v = view(o, &rows[i], tg);
            if (v.tokens <= 0) continue;
            char test[32], roof[16] = "-";
            snprintf(test, sizeof test, "%s%d", v.kind, v.tokens);
            double tps = median_tps(o, &rows[i], tg);
            if (tg && copy_bw > 0) snprintf(roof, sizeof roof, "%.1f%%", 100 * v.bytes * tps / copy_bw);
            fprintf(f, "%-16s %-28s %-8s %12.2f %12.3f %9s %13.1f\n", model, rows[i].codec, test, tps, v.bytes * 1e-6,
                    roof, rows[i].r.peak_rss / (1024.0 * 1024.0));
        }
    }
    if (o->tg <= 0 || nrows < 3) return;
    fprintf(f, "\ndecode speed-up (median tg%d tokens/s, this run):\n", o->tg);
    for (int i = 2; i < nrows; i++) {
        if (!rows[i].r.ok) continue;
        double t = median_tps(o, &rows[i], 1);
        fprintf(f, "  %-36s", rows[i].codec);
        for (int b = 0; b < 2; b++)
            if (rows[b].r.ok) fprintf(f, " %6.2fx vs %s", t / median_tps(o, &rows[b], 1), rows[b].codec);
        fprintf(f, "\n");
    }
}

/* the checkpoint folder's base name ("a/b/llama-mini/" -> "llama-mini"), cut to cap - 1 bytes */
static void model_name(const char *dir, char *dst, size_t cap) {
    size_t end = strlen(dir);
    while (end > 1 && dir[end - 1] == '/') end--;
    size_t start = end;
    while (start > 0 && dir[start - 1] != '/') start--;
    if (start == end) start = 0; /* "/" */
    size_t n = end - start < cap - 1 ? end - start : cap - 1;
    memcpy(dst, dir + start, n);
    dst[n] = 0;
}

tp_status tp_bench_model_run(const tp_bench_model_opts *o, int *failed_rows, tp_err *e) {
    *failed_rows = 0;
    if (!o->model_dir) return tp_fail(e, TP_ERR_ARG, "--model is required");
    if (o->repetitions < 1) return tp_fail(e, TP_ERR_ARG, "--repetitions must be at least 1");
    if (o->pp < 0 || o->tg < 0 || (o->pp == 0 && o->tg == 0)) return tp_fail(e, TP_ERR_ARG, "--pp and --tg: nothing to run");
    char model[256], cpath[4200], src[4400];
    model_name(o->model_dir, model, sizeof model);
    /* the context check here, once, rather than as the same failure of every row */
    tp_model_config cfg;
    snprintf(cpath, sizeof cpath, "%s/config.json", o->model_dir);
    tp_status s = tp_model_config_load(o->model_dir, &cfg, e); /* DIR/config.json or FILE.gguf */
    if (s != TP_OK) return s;
    if (o->pp > cfg.n_ctx || o->tg > cfg.n_ctx)
        return tp_fail(e, TP_ERR_ARG, "%s %d is more than %s's context of %d positions", o->pp > cfg.n_ctx ? "--pp" : "--tg",
                       o->pp > cfg.n_ctx ? o->pp : o->tg, model, cfg.n_ctx);
    int need = o->pp > o->tg ? o->pp : o->tg;
    int32_t *ids = make_ids(o->model_dir, need, cfg.vocab, src, sizeof src);
    int nrows = 2 + o->nartifacts, R = o->repetitions;
    row *rows = calloc((size_t)nrows, sizeof *rows);
    double *times = calloc((size_t)nrows * 4 * (size_t)R, sizeof *times);
    if (!ids || !rows || !times) {
        free(ids);
        free(rows);
        free(times);
        return tp_fail(e, TP_ERR_NOMEM, "out of memory");
    }
    tp_status first = TP_OK;
    for (int i = 0; i < nrows; i++) {
        row *rw = &rows[i];
        rw->t = times + (size_t)i * 4 * (size_t)R;
        rw->weights = i == 0 ? TP_WEIGHTS_F32 : i == 1 ? TP_WEIGHTS_F16 : TP_WEIGHTS_AUTO;
        rw->artifact = i >= 2 ? o->artifacts[i - 2] : NULL;
        char label[4200];
        snprintf(label, sizeof label, "%s", rw->artifact ? rw->artifact : i == 0 ? "fp32 row" : "fp16 row");
        double t0 = tp_now();
        tp_err re = {{0}};
        s = fork_row(o, rw, ids, label, &re);
        if (s != TP_OK) {
            rw->r.ok = 0;
            ++*failed_rows;
            if (o->err) fprintf(o->err, "tenpak bench-model: %s\n", re.msg);
            if (first == TP_OK) {
                first = s;
                *e = re;
            }
        } else if (o->progress)
            fprintf(stderr, "bench-model: %s done in %.1f s\n", rw->codec, tp_now() - t0);
    }
    free(ids);
    /* after the last fork: the copy kernel starts OpenMP threads (and CUDA its own), which a forked
     * child would lack */
    double copy_bw = o->device == TP_DEVICE_CUDA ? device_copy_bandwidth() : tp_bench_copy_bandwidth(TP_COPY_MEMORY);
    if (o->out && first == TP_OK) {
        fprintf(o->out, "tenpak bench-model: %s (%s, %d layers, d_model %d, vocab %d); %s, %d threads, isa %s%s;\n"
                        "  device %s; %scopy bandwidth (roofline) %.2f GB/s; tokens: %s; artifacts run %s\n",
                model, cfg.model_type, cfg.n_layer, cfg.d_model, cfg.vocab, tp_cpu_model(), tp_num_threads(),
                tp_isa_name(tp_cpu_isa()), tp_cpu_amx() ? "+amx" : "", tp_device_name(o->device), o->device == TP_DEVICE_CUDA ? "device " : "",
                copy_bw * 1e-9, src, tp_exec_name(o->exec));
        print_table(o, model, rows, nrows, copy_bw);
    }
    if (o->json_path && first == TP_OK) {
        cJSON *root = cJSON_CreateObject(), *ctx = tp_bench_context(copy_bw);
        cJSON_ReplaceItemInObjectCaseSensitive(ctx, "executable", cJSON_CreateString("tenpak bench-model"));
        /* as Google Benchmark does: decode speed on a shared host follows its load */
        double la[3];
        int nla = getloadavg(la, 3);
        if (nla > 0) cJSON_ReplaceItemInObjectCaseSensitive(ctx, "load_avg", cJSON_CreateDoubleArray(la, nla));
        cJSON_AddStringToObject(ctx, "model", model);
        cJSON_AddStringToObject(ctx, "model_dir", o->model_dir);
        cJSON_AddNumberToObject(ctx, "pp", o->pp);
        cJSON_AddNumberToObject(ctx, "tg", o->tg);
        cJSON_AddNumberToObject(ctx, "model_repetitions", R);
        cJSON_AddStringToObject(ctx, "exec", tp_exec_name(o->exec));
        cJSON_AddStringToObject(ctx, "model_device", tp_device_name(o->device));
        cJSON_AddStringToObject(ctx, "token_ids", src);
        cJSON_AddItemToObject(root, "context", ctx);
        cJSON *arr = cJSON_AddArrayToObject(root, "benchmarks");
        for (int i = 0; i < nrows; i++)
            for (int tg = 0; tg < 2; tg++)
                if (tg ? o->tg > 0 : o->pp > 0) add_entries(arr, model, o, &rows[i], tg, copy_bw);
        char *text = cJSON_Print(root);
        if (!text) first = tp_fail(e, TP_ERR_NOMEM, "out of memory");
        else {
            first = tp_write_file_atomic(o->json_path, text, strlen(text), e);
            free(text);
        }
        cJSON_Delete(root);
    }
    free(rows);
    free(times);
    return first;
}
