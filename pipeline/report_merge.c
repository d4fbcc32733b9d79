/* tenpak report merge: `tenpak bench --json` results from several machines and shards into one
 * cross-hardware table and plot (pipeline/report.h). */
#include <cjson/cJSON.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pipeline/artifact.h"
#include "pipeline/report_internal.h"
#include "tenpak/files.h"

static const char *jstr(const cJSON *o, const char *k, const char *d) {
    const char *s = tp_json_str(o, k);
    return s && *s ? s : d;
}

/* one input file */
typedef struct input {
    const char *path;
    cJSON *json;
    const cJSON *ctx, *benchmarks, *matrix;
    const char *version, *sha, *mname, *run_id;
    int shard, shards; /* 1-based; 0 without a matrix */
    int machine;
} input;

/* one machine: what `merge` keys a column by */
typedef struct machine { char host[128], proc[256], isa[32], build[160], label[600]; } machine;

/* one benchmark at one machine */
typedef struct mcell { int have; double t_ns, bps; int file; } mcell;
typedef struct mrow {
    char name[256], op[64], shape[96];
    int baseline, order;
    mcell *at; /* one per machine */
} mrow;

/* gnuplot and markdown take the labels inside quotes and table cells */
static void clean(char *s) {
    for (; *s; s++)
        if (*s == '\'' || *s == '"' || *s == '|' || *s == '\n' || *s == '\\') *s = ' ';
}

/* distinct values of a per-input string, "a (x.json, y.json); b (z.json)" */
static int distinct(const input *in, int nf, const char *(*get)(const input *), tp_sbuf *desc) {
    int nd = 0;
    for (int f = 0; f < nf; f++) {
        int seen = 0;
        for (int g = 0; g < f; g++) seen |= !strcmp(get(&in[g]), get(&in[f]));
        if (seen) continue;
        tp_sb_printf(desc, "%s%s (", nd ? "; " : "", get(&in[f]));
        int k = 0;
        for (int g = f; g < nf; g++)
            if (!strcmp(get(&in[g]), get(&in[f]))) tp_sb_printf(desc, "%s%s", k++ ? ", " : "", in[g].path);
        tp_sb_printf(desc, ")");
        nd++;
    }
    return nd;
}
static const char *get_version(const input *i) { return i->version; }
static const char *get_matrix(const input *i) {
    static char b[8][200];
    static int k;
    char *s = b[k++ & 7];
    if (!i->sha) return "no matrix";
    snprintf(s, 200, "matrix %s sha256 %.16s", i->mname, i->sha);
    return s;
}

/* Missing shards of every (matrix, run, shard count) among the inputs; prints each incomplete
 * group to *msg and the JSON list; returns how many shards are missing in all. */
static int missing_shards(const input *in, int nf, tp_sbuf *msg, cJSON *groups) {
    int total = 0;
    for (int f = 0; f < nf; f++) {
        if (!in[f].sha) continue;
        int first = 1;
        for (int g = 0; g < f; g++)
            if (in[g].sha && !strcmp(in[g].sha, in[f].sha) && !strcmp(in[g].run_id, in[f].run_id) &&
                in[g].shards == in[f].shards)
                first = 0;
        if (!first) continue;
        int n = in[f].shards;
        char *have = calloc((size_t)n + 1, 1);
        if (!have) continue;
        for (int g = f; g < nf; g++)
            if (in[g].sha && !strcmp(in[g].sha, in[f].sha) && !strcmp(in[g].run_id, in[f].run_id) &&
                in[g].shards == n && in[g].shard >= 1 && in[g].shard <= n)
                have[in[g].shard] = 1;
        cJSON *gj = cJSON_CreateObject();
        cJSON_AddStringToObject(gj, "matrix", in[f].mname);
        cJSON_AddStringToObject(gj, "sha256", in[f].sha);
        cJSON_AddStringToObject(gj, "run_id", in[f].run_id);
        cJSON_AddNumberToObject(gj, "shard_count", n);
        cJSON *pj = cJSON_AddArrayToObject(gj, "present"), *mj = cJSON_AddArrayToObject(gj, "missing");
        int nmiss = 0;
        for (int s = 1; s <= n; s++) {
            cJSON_AddItemToArray(have[s] ? pj : mj, cJSON_CreateNumber(s));
            nmiss += !have[s];
        }
        cJSON_AddItemToArray(groups, gj);
        if (nmiss) {
            tp_sb_printf(msg, "%smatrix '%s' (sha256 %.16s)%s%s: shard%s ", total ? "; " : "", in[f].mname, in[f].sha,
               *in[f].run_id ? ", run " : "", in[f].run_id, nmiss > 1 ? "s" : "");
            int k = 0;
            for (int s = 1; s <= n; s++)
                if (!have[s]) tp_sb_printf(msg, "%s%d", k++ ? ", " : "", s);
            tp_sb_printf(msg, " of %d missing (present: ", n);
            k = 0;
            for (int s = 1; s <= n; s++)
                if (have[s]) tp_sb_printf(msg, "%s%d", k++ ? ", " : "", s);
            tp_sb_printf(msg, "%s)", k ? "" : "none");
        }
        total += nmiss;
        free(have);
    }
    return total;
}

static int parse_name(const char *name, mrow *r) {
    /* op/variant/backend/shape */
    const char *a = strchr(name, '/'), *d = strrchr(name, '/');
    if (!a || a == d) return 0;
    snprintf(r->op, sizeof r->op, "%.*s", (int)(a - name), name);
    snprintf(r->shape, sizeof r->shape, "%s", d + 1);
    return 1;
}

tp_status tp_report_merge(const tp_merge_opts *o, tp_err *e) {
    int nf = o->nf;
    if (nf < 1) return tp_fail(e, TP_ERR_ARG, "merge needs at least one benchmark JSON file");
    input *in = calloc((size_t)nf, sizeof *in);
    machine *ms = calloc((size_t)nf, sizeof *ms);
    mrow *rows = NULL;
    int nm = 0, nr = 0, cap = 0, dups = 0;
    tp_status st = TP_OK;
    tp_sbuf md = {0}, msg = {0};
    cJSON *root = NULL;
    if (!in || !ms) {
        st = tp_fail(e, TP_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* read every input */
    for (int f = 0; f < nf && st == TP_OK; f++) {
        input *x = &in[f];
        x->path = o->files[f];
        size_t n;
        char *text = tp_read_file(x->path, &n, e);
        if (!text) {
            st = TP_ERR_IO;
            break;
        }
        x->json = cJSON_ParseWithLength(text, n);
        free(text);
        x->ctx = cJSON_GetObjectItemCaseSensitive(x->json, "context");
        x->benchmarks = cJSON_GetObjectItemCaseSensitive(x->json, "benchmarks");
        if (!cJSON_IsObject(x->ctx) || !cJSON_IsArray(x->benchmarks)) {
            st = tp_fail(e, TP_ERR_FORMAT, "%s: not a Google Benchmark JSON (context + benchmarks)", x->path);
            break;
        }
        x->version = jstr(x->ctx, "tenpak_version", "unknown version");
        x->matrix = cJSON_GetObjectItemCaseSensitive(x->ctx, "matrix");
        if (cJSON_IsObject(x->matrix)) {
            x->sha = jstr(x->matrix, "sha256", NULL);
            x->mname = jstr(x->matrix, "name", "?");
            x->run_id = jstr(x->matrix, "run_id", "");
            x->shard = (int)jnum(x->matrix, "shard_index", 0);
            x->shards = (int)jnum(x->matrix, "shard_count", 0);
            if (!x->sha || x->shards < 1 || x->shard < 1 || x->shard > x->shards) {
                st = tp_fail(e, TP_ERR_FORMAT, "%s: context.matrix lacks sha256 or a valid shard_index / shard_count",
                             x->path);
                break;
            }
        }
        /* the machine: host, processor (or GPU), ISA level, library build */
        machine m;
        const char *dev = jstr(x->ctx, "device", NULL);
        snprintf(m.host, sizeof m.host, "%s", jstr(x->ctx, "host_name", "?"));
        snprintf(m.proc, sizeof m.proc, "%s", dev ? dev : jstr(x->ctx, "cpu_model", "?"));
        snprintf(m.isa, sizeof m.isa, "%s", jstr(x->ctx, "isa", "?"));
        snprintf(m.build, sizeof m.build, "%s", jstr(x->ctx, "library_build", jstr(x->ctx, "library_build_type", "?")));
        clean(m.host), clean(m.proc), clean(m.isa), clean(m.build);
        snprintf(m.label, sizeof m.label, "%s / %s / %s / %s", m.host, m.proc, m.isa, m.build);
        x->machine = -1;
        for (int i = 0; i < nm; i++)
            if (!strcmp(ms[i].label, m.label)) x->machine = i;
        if (x->machine < 0) {
            ms[nm] = m;
            x->machine = nm++;
        }
    }
    if (st != TP_OK) goto done;

    /* one tenpak version and one matrix, unless told */
    tp_sbuf vd = {0}, mdsc = {0};
    int nv = distinct(in, nf, get_version, &vd), nmat = distinct(in, nf, get_matrix, &mdsc);
    int mixed = nv > 1 || nmat > 1;
    if (mixed && !o->allow_mixed) {
        fprintf(stderr, "tenpak report merge: %s\n", nv > 1 ? vd.p : mdsc.p);
        st = tp_fail(e, TP_ERR_ARG, "the inputs come from %s (listed above); refusing to merge them into one table "
                                    "(--allow-mixed merges them anyway and says so in the table)",
                     nv > 1 ? "different tenpak versions" : "different matrix files (or a matrix run and a plain run)");
    }
    if (mixed && o->allow_mixed) fprintf(stderr, "tenpak report merge: warning: merging mixed inputs: %s%s%s\n",
                                         nv > 1 ? vd.p : "", nv > 1 && nmat > 1 ? "; " : "", nmat > 1 ? mdsc.p : "");
    if (st != TP_OK) {
        free(vd.p), free(mdsc.p);
        goto done;
    }

    /* every shard of every matrix run present, unless told */
    root = cJSON_CreateObject();
    cJSON *groups = cJSON_CreateArray();
    int nmiss = missing_shards(in, nf, &msg, groups);
    if (nmiss && !o->allow_missing) {
        cJSON_Delete(groups);
        free(vd.p), free(mdsc.p);
        fprintf(stderr, "tenpak report merge: incomplete: %s\n", msg.p);
        st = tp_fail(e, TP_ERR_ARG, "%d shard result(s) missing (listed above): no table written, it would be partial "
                                    "(re-run the missing shards, or pass --allow-missing to write it with the gap marked)",
                     nmiss);
        goto done;
    }

    /* the rows: median aggregates (or the single iteration of a 1-repetition run) */
    for (int f = 0; f < nf && st == TP_OK; f++) {
        const cJSON *b;
        cJSON_ArrayForEach(b, in[f].benchmarks) {
            const char *agg = jstr(b, "aggregate_name", ""), *rt = jstr(b, "run_type", "");
            int single = !strcmp(rt, "iteration") && jnum(b, "repetitions", 1) <= 1;
            if (strcmp(agg, "median") && !single) continue;
            const char *name = jstr(b, "run_name", jstr(b, "name", ""));
            int k = -1;
            for (int i = 0; i < nr && k < 0; i++)
                if (!strcmp(rows[i].name, name)) k = i;
            if (k < 0) {
                if (nr == cap) {
                    int nc = cap ? 2 * cap : 64;
                    mrow *nrw = realloc(rows, (size_t)nc * sizeof *nrw);
                    if (!nrw) {
                        st = tp_fail(e, TP_ERR_NOMEM, "out of memory");
                        break;
                    }
                    rows = nrw;
                    cap = nc;
                }
                mrow *r = &rows[nr];
                memset(r, 0, sizeof *r);
                if (!(r->at = calloc((size_t)nm, sizeof *r->at))) {
                    st = tp_fail(e, TP_ERR_NOMEM, "out of memory");
                    break;
                }
                snprintf(r->name, sizeof r->name, "%s", name);
                clean(r->name);
                if (!parse_name(name, r) || tp_json_str(b, "op")) {
                    snprintf(r->op, sizeof r->op, "%s", jstr(b, "op", "?"));
                    snprintf(r->shape, sizeof r->shape, "%s", jstr(b, "shape", "?"));
                }
                /* older results lack the flag: no baseline, so no ratios for them */
                r->baseline = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(b, "baseline"));
                k = nr++;
            }
            mcell *c = &rows[k].at[in[f].machine];
            if (c->have) {
                if (!dups++)
                    fprintf(stderr, "tenpak report merge: warning: %s measured twice on %s (%s and %s): the first is kept\n",
                            name, ms[in[f].machine].label, in[c->file].path, in[f].path);
                continue;
            }
            double scale = !strcmp(jstr(b, "time_unit", "ns"), "us") ? 1e3 : !strcmp(jstr(b, "time_unit", "ns"), "ms") ? 1e6 : 1;
            c->have = 1;
            c->t_ns = jnum(b, "real_time", NAN) * scale;
            c->bps = jnum(b, "bytes_per_second", 0);
            c->file = f;
        }
    }
    if (st != TP_OK) {
        cJSON_Delete(groups);
        free(vd.p), free(mdsc.p);
        goto done;
    }

    /* the matrix's report rows choose and order the table (when every input ran one matrix) */
    const cJSON *rr = nmat == 1 && in[0].matrix ? cJSON_GetObjectItemCaseSensitive(in[0].matrix, "report_rows") : NULL;
    int nrx = cJSON_GetArraySize(rr), shown = 0;
    for (int i = 0; i < nr; i++) rows[i].order = nrx ? -1 : i;
    for (int j = 0; j < nrx; j++) {
        regex_t re;
        const cJSON *x = cJSON_GetArrayItem(rr, j);
        if (!cJSON_IsString(x) || regcomp(&re, x->valuestring, REG_EXTENDED | REG_NOSUB)) continue;
        for (int i = 0; i < nr; i++)
            if (rows[i].order < 0 && !regexec(&re, rows[i].name, 0, NULL, 0)) rows[i].order = j * nr + i;
        regfree(&re);
    }
    int *ord = malloc((size_t)(nr ? nr : 1) * sizeof *ord);
    if (!ord) {
        cJSON_Delete(groups);
        free(vd.p), free(mdsc.p);
        st = tp_fail(e, TP_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < nr; i++)
        if (rows[i].order >= 0) ord[shown++] = i;
    for (int a = 1; a < shown; a++) /* insertion sort by order */
        for (int b = a; b > 0 && rows[ord[b - 1]].order > rows[ord[b]].order; b--) {
            int t = ord[b];
            ord[b] = ord[b - 1];
            ord[b - 1] = t;
        }

    /* JSON */
    cJSON_AddStringToObject(root, "generator", "tenpak report merge");
    cJSON *vs = cJSON_AddArrayToObject(root, "tenpak_versions");
    for (int f = 0; f < nf; f++) {
        int seen = 0;
        for (int g = 0; g < f; g++) seen |= !strcmp(in[g].version, in[f].version);
        if (!seen) cJSON_AddItemToArray(vs, cJSON_CreateString(in[f].version));
    }
    cJSON_AddBoolToObject(root, "mixed", mixed);
    cJSON_AddItemToObject(root, "matrix_runs", groups);
    cJSON_AddBoolToObject(root, "complete", nmiss == 0);
    cJSON_AddNumberToObject(root, "missing_shards", nmiss);
    cJSON *mj = cJSON_AddArrayToObject(root, "machines");
    for (int i = 0; i < nm; i++) {
        cJSON *m = cJSON_CreateObject();
        char id[16];
        snprintf(id, sizeof id, "M%d", i + 1);
        cJSON_AddStringToObject(m, "id", id);
        cJSON_AddStringToObject(m, "machine", ms[i].label);
        cJSON_AddStringToObject(m, "host_name", ms[i].host);
        cJSON_AddStringToObject(m, "processor", ms[i].proc);
        cJSON_AddStringToObject(m, "isa", ms[i].isa);
        cJSON_AddStringToObject(m, "library_build", ms[i].build);
        cJSON *src = cJSON_AddArrayToObject(m, "sources");
        for (int f = 0; f < nf; f++)
            if (in[f].machine == i) cJSON_AddItemToArray(src, cJSON_CreateString(in[f].path));
        cJSON_AddItemToArray(mj, m);
    }
    cJSON *tab = cJSON_AddArrayToObject(root, "benchmarks");

    /* markdown */
    tp_sb_printf(&md, "# Benchmarks across machines\n\nMerged by `tenpak report merge` from %d result file(s) of %d machine(s)", nf, nm);
    if (nmat == 1 && in[0].sha)
        tp_sb_printf(&md, ", matrix `%s` (sha256 %.16s)", in[0].mname, in[0].sha);
    tp_sb_printf(&md, ", tenpak %s.\n\n", nv == 1 ? in[0].version : "(several versions)");
    if (mixed) tp_sb_printf(&md, "**Mixed inputs (merged with --allow-mixed)**: %s%s%s.\n\n", nv > 1 ? vd.p : "", nv > 1 && nmat > 1 ? "; " : "",
                  nmat > 1 ? mdsc.p : "");
    if (nmiss) tp_sb_printf(&md, "**Incomplete (merged with --allow-missing)**: %s. Their cells are absent below.\n\n", msg.p);
    tp_sb_printf(&md, "A machine is a host, its processor (or GPU), the ISA level the cpu backend used and the library build.\n\n"
            "| id | host | processor / GPU | ISA | library build | result files |\n|---|---|---|---|---|---|\n");
    for (int i = 0; i < nm; i++) {
        tp_sb_printf(&md, "| M%d | %s | %s | %s | %s |", i + 1, ms[i].host, ms[i].proc, ms[i].isa, ms[i].build);
        int k = 0;
        for (int f = 0; f < nf; f++)
            if (in[f].machine == i) tp_sb_printf(&md, "%s%s", k++ ? ", " : " ", in[f].path);
        tp_sb_printf(&md, " |\n");
    }
    tp_sb_printf(&md, "\n## Median time per run and bytes/s\n\n| benchmark |");
    for (int i = 0; i < nm; i++) tp_sb_printf(&md, " M%d |", i + 1);
    tp_sb_printf(&md, "\n|---|");
    for (int i = 0; i < nm; i++) tp_sb_printf(&md, "---|");
    tp_sb_printf(&md, "\n");
    tp_sbuf ratio_md = {0};
    int nratio = 0;
    for (int q = 0; q < shown; q++) {
        mrow *r = &rows[ord[q]];
        cJSON *rj = cJSON_CreateObject();
        cJSON_AddStringToObject(rj, "name", r->name);
        cJSON_AddStringToObject(rj, "op", r->op);
        cJSON_AddStringToObject(rj, "shape", r->shape);
        cJSON_AddBoolToObject(rj, "baseline", r->baseline);
        cJSON *per = cJSON_AddArrayToObject(rj, "per_machine");
        tp_sb_printf(&md, "| %s%s |", r->name, r->baseline ? " (baseline)" : "");
        for (int i = 0; i < nm; i++) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "machine", ms[i].label);
            mcell *c = &r->at[i];
            if (!c->have) {
                tp_sb_printf(&md, " - |");
                cJSON_AddItemToArray(per, x);
                continue;
            }
            cJSON_AddNumberToObject(x, "real_time_ms", c->t_ns * 1e-6);
            cJSON_AddNumberToObject(x, "gb_per_s", c->bps * 1e-9);
            cJSON_AddStringToObject(x, "source", in[c->file].path);
            tp_sb_printf(&md, " %.4f ms, %.2f GB/s |", c->t_ns * 1e-6, c->bps * 1e-9);
            /* the ratio to each baseline of the same op and shape measured on this same machine */
            cJSON *vb = NULL;
            for (int b = 0; b < nr && !r->baseline; b++) {
                mrow *br = &rows[b];
                if (!br->baseline || strcmp(br->op, r->op) || strcmp(br->shape, r->shape) || !br->at[i].have) continue;
                if (!vb) vb = cJSON_AddArrayToObject(x, "vs_baseline");
                cJSON *v = cJSON_CreateObject();
                cJSON_AddStringToObject(v, "baseline", br->name);
                cJSON_AddNumberToObject(v, "speedup", br->at[i].t_ns / c->t_ns);
                cJSON_AddItemToArray(vb, v);
            }
            cJSON_AddItemToArray(per, x);
        }
        tp_sb_printf(&md, "\n");
        cJSON_AddItemToArray(tab, rj);
        /* speed-up rows: this kernel against each baseline that some machine measured beside it */
        for (int b = 0; b < nr && !r->baseline; b++) {
            mrow *br = &rows[b];
            if (!br->baseline || strcmp(br->op, r->op) || strcmp(br->shape, r->shape)) continue;
            tp_sb_printf(&ratio_md, "| %s | %s |", r->name, br->name);
            for (int i = 0; i < nm; i++) {
                if (r->at[i].have && br->at[i].have) tp_sb_printf(&ratio_md, " %.2fx |", br->at[i].t_ns / r->at[i].t_ns);
                else tp_sb_printf(&ratio_md, " - |");
            }
            tp_sb_printf(&ratio_md, "\n");
            nratio++;
        }
    }
    if (nratio) {
        tp_sb_printf(&md, "\n## Speed-up over the baseline, per machine\n\nBaseline median time over the kernel's, both measured on "
                "the same machine (never across machines; `-`: not both measured there).\n\n| kernel | baseline |");
        for (int i = 0; i < nm; i++) tp_sb_printf(&md, " M%d |", i + 1);
        tp_sb_printf(&md, "\n|---|---|");
        for (int i = 0; i < nm; i++) tp_sb_printf(&md, "---|");
        tp_sb_printf(&md, "\n%s", ratio_md.p);
    }
    free(ratio_md.p);
    if (shown < nr) tp_sb_printf(&md, "\n%d benchmark(s) outside the matrix's report rows are in merged.json only.\n", nr - shown);
    tp_sb_printf(&md, "\n![GB/s per benchmark and machine](merged.png)\n");
    /* the rows outside the report's choice stay in the JSON */
    for (int i = 0; i < nr; i++) {
        if (rows[i].order >= 0) continue;
        cJSON *rj = cJSON_CreateObject();
        cJSON_AddStringToObject(rj, "name", rows[i].name);
        cJSON_AddBoolToObject(rj, "report_row", 0);
        cJSON *per = cJSON_AddArrayToObject(rj, "per_machine");
        for (int m = 0; m < nm; m++) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "machine", ms[m].label);
            if (rows[i].at[m].have) cJSON_AddNumberToObject(x, "real_time_ms", rows[i].at[m].t_ns * 1e-6);
            cJSON_AddItemToArray(per, x);
        }
        cJSON_AddItemToArray(tab, rj);
    }
    free(vd.p), free(mdsc.p);

    tp_report_mkdirs(o->out);
    char path[4200];
    snprintf(path, sizeof path, "%s/merged.json", o->out);
    char *js = cJSON_Print(root);
    st = js && !md.oom ? tp_write_file_atomic(path, js, strlen(js), e) : tp_fail(e, TP_ERR_NOMEM, "out of memory");
    free(js);
    snprintf(path, sizeof path, "%s/MERGED.md", o->out);
    if (st == TP_OK) st = tp_write_file_atomic(path, md.p, md.n, e);
    /* the plot: GB/s per benchmark, one bar per machine. Every file goes through a registered
     * temporary (tenpak/files.h) and is renamed when complete, gnuplot's images too: a failure or
     * a signal leaves none half-written. gnuplot runs a copy of the script that names the images'
     * temporaries; the script kept names the images themselves. */
    if (st == TP_OK && shown) {
        char dat[4200], gp[4200], img[2][4200];
        snprintf(dat, sizeof dat, "%s/merged.dat", o->out);
        snprintf(gp, sizeof gp, "%s/merged.gp", o->out);
        snprintf(img[0], sizeof img[0], "%s/merged.png", o->out);
        snprintf(img[1], sizeof img[1], "%s/merged.svg", o->out);
        char *tdat = NULL, *tgp = NULL, *trun = NULL, *timg[2] = {NULL, NULL};
        FILE *f[3] = {NULL, NULL, NULL}; /* dat, gp, the script gnuplot runs */
        char **tp[3] = {&tdat, &tgp, &trun};
        const char *const fp[3] = {dat, gp, gp};
        int ok = 1, said = 0; /* said: e holds the failure's message */
        for (int k = 0; k < 3 && ok; k++) {
            int fdk;
            ok = tp_tmp_open(fp[k], &fdk, tp[k], e) == TP_OK;
            if (!ok) said = 1;
            else if (fchmod(fdk, 0644) != 0 || !(f[k] = fdopen(fdk, "w"))) { close(fdk); ok = 0; }
        }
        for (int t = 0; t < 2 && ok; t++) {
            int fdi;
            ok = tp_tmp_open(img[t], &fdi, &timg[t], e) == TP_OK;
            if (ok) { /* gnuplot writes into it; the descriptor is closed whatever fchmod says */
                int mode_ok = fchmod(fdi, 0644) == 0;
                ok = (close(fdi) == 0) && mode_ok;
            }
            else said = 1;
        }
        if (ok) {
            for (int q = 0; q < shown; q++) {
                mrow *r = &rows[ord[q]];
                fprintf(f[0], "\"%s\"", r->name);
                for (int i = 0; i < nm; i++) fprintf(f[0], " %g", r->at[i].have ? r->at[i].bps * 1e-9 : 0.0);
                fprintf(f[0], "\n");
            }
            for (int k = 1; k < 3; k++)
                for (int t = 0; t < 2; t++) {
                    fprintf(f[k], "set terminal %s noenhanced size 1200,760\nset output '%s'\n", t ? "svg" : "pngcairo",
                            k == 1 ? img[t] : timg[t]);
                    fprintf(f[k], "set title 'GB/s per benchmark and machine'\nset style data histograms\nset style fill solid 0.8\n"
                                  "set xtics rotate by -30 font ',8'\nset ylabel 'GB/s'\nset key below left Left reverse\nset bmargin 14\nplot ");
                    for (int i = 0; i < nm; i++)
                        fprintf(f[k], "%s'%s' using %d:xtic(1) title 'M%d: %s'", i ? ", " : "", k == 1 ? dat : tdat, i + 2,
                                i + 1, ms[i].label);
                    fprintf(f[k], "\n");
                }
        }
        for (int k = 0; k < 3; k++)
            if (f[k] && fclose(f[k]) != 0) ok = 0;
        if (ok) {
            char cmd[8600];
            snprintf(cmd, sizeof cmd, "gnuplot '%s' 2>&1", trun);
            FILE *p = popen(cmd, "r");
            if (p) {
                char line[512];
                while (fgets(line, sizeof line, p)) fprintf(stderr, "gnuplot: %s", line);
                pclose(p);
            }
        }
        tp_tmp_discard(trun);
        /* the data and script are kept; an image only when gnuplot made one */
        if (ok) said = !(ok = tp_tmp_commit(tdat, dat, e) == TP_OK);
        else tp_tmp_discard(tdat);
        if (ok) said = !(ok = tp_tmp_commit(tgp, gp, e) == TP_OK);
        else tp_tmp_discard(tgp);
        for (int t = 0; t < 2; t++) {
            struct stat sb;
            if (ok && timg[t] && stat(timg[t], &sb) == 0 && sb.st_size > 0) said = !(ok = tp_tmp_commit(timg[t], img[t], e) == TP_OK);
            else tp_tmp_discard(timg[t]);
        }
        if (!ok) st = said ? TP_ERR_IO : tp_fail(e, TP_ERR_IO, "%s: cannot write the plot files", o->out);
    }
    if (st == TP_OK)
        fprintf(stderr, "merged %d file(s), %d machine(s), %d benchmark(s)%s: %s/MERGED.md, %s/merged.json, %s/merged.png\n",
                nf, nm, shown, nmiss ? " (INCOMPLETE: shards missing)" : "", o->out, o->out, o->out);
    free(ord);
done:
    for (int i = 0; i < nr; i++) free(rows[i].at);
    free(rows);
    for (int f = 0; in && f < nf; f++) cJSON_Delete(in[f].json);
    free(in);
    free(ms);
    free(md.p);
    free(msg.p);
    cJSON_Delete(root);
    return st;
}
