/* tenpak codecs: every codec with its bits/weight computed from the packed size that the
 * quantiser actually allocates (codes, scales, offsets, residuals: every byte counted). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/json_out.h"
#include "pipeline/codec.h"
#include "pipeline/safetensors.h"
#include "tenpak/quant.h"

/* The table's codecs: every family at its default settings, the INT4 group sweep, and the
 * experiment log's composite codecs. Sizes come from tp_codec_blob_bytes, the byte count
 * compress writes (codebooks, factors, metadata and scales counted). */
static const char *const table_specs[] = {
    "int4:g=8", "int4:g=16", "int4:g=32", "int4:g=64", "int4:g=128", "int4r2:g=16", "nf4:g=64",
    "vq:d=4,k=256", "vq:d=8,k=256", "vq:d=4,k=4096", "vq:d=8,k=256+int4:g=32", "vq:d=4,k=256+int4:g=16,refine=4",
    "tenpakx:rank=32,d=4,k=256,res=int4:g=32", "sparse24", "sparse24:v=32", "sparse24+int4:g=128", "svd:rank=64",
    /* calibrated: awq adds one fp16 scale per input column; mixed, for one matrix alone, is the
     * finest candidate within its budget (over a model, tenpak compress mixes group sizes) */
    "awq:g=32", "awq:g=64", "awq:g=128", "mixed:budget=4.5", "mixed:budget=4.75",
    /* gptq stores int4's format: int4:g=128's bytes, its codes chosen on calibration activations */
    "gptq:g=128",
};

/* The linear-layer weights of a checkpoint: 2-D float tensors, embeddings and lm_head left out.
 * GPT-2's Conv1D weights are stored [in, out]; they are transposed so groups run along the input
 * dimension as for every other model. */
static int is_linear(const tp_st_tensor *t) {
    return t->ndim == 2 && tp_st_is_float(t->dtype) && !strstr(t->name, "embed") && !strstr(t->name, "wte") &&
           !strstr(t->name, "wpe") && !strstr(t->name, "lm_head");
}
static int is_conv1d(const tp_st_tensor *t) { return strncmp(t->name, "transformer.h.", 14) == 0; }

/* Relative Frobenius error of each codec over a model's linear layers, through the same
 * encode/decode as tenpak compress. */
static const char *const error_specs[] = {
    "int4:g=8", "int4:g=8,refine=4", "int4:g=16", "int4:g=16,refine=4", "int4:g=32", "int4:g=32,refine=4",
    "int4:g=64", "int4:g=64,refine=4", "int4:g=128", "int4:g=128,refine=4", "int4r2:g=16", "int4r2:g=16,refine=4",
    "nf4:g=64"};

static int model_errors(const char *dir, const char *const *specs, int nspecs, cJSON *out) {
    tp_st_set *set;
    tp_err e;
    if (tp_model_files_open(dir, &set, &e) != TP_OK) {
        fprintf(stderr, "tenpak codecs: %s\n", e.msg);
        return 1;
    }
    double *err = calloc((size_t)nspecs, sizeof *err), norm = 0;
    tp_codec *cs = calloc((size_t)nspecs, sizeof *cs);
    if (!err || !cs) {
        fprintf(stderr, "tenpak codecs: out of memory\n");
        free(err); free(cs); tp_st_close(set);
        return 1;
    }
    for (int j = 0; j < nspecs; j++)

        if (tp_codec_parse(specs[j], &cs[j], &e) != TP_OK) {
            fprintf(stderr, "tenpak codecs: %s\n", e.msg);
            free(err); free(cs); tp_st_close(set);
            return 1;
        }
    int64_t nweights = 0, ntensors = 0;
    for (size_t i = 0; i < tp_st_count(set); i++) {
        const tp_st_tensor *t = tp_st_at(set, i);
        if (!is_linear(t)) continue;
        int64_t R = t->shape[0], C = t->shape[1];
        float *raw = tp_alloc((size_t)(R * C) * 4), *W = tp_alloc((size_t)(R * C) * 4), *D = tp_alloc((size_t)(R * C) * 4);
        if (!raw || !W || !D) {
            fprintf(stderr, "tenpak codecs: %s: out of memory\n", t->name);
            tp_free(raw); tp_free(W); tp_free(D);
            free(err); free(cs); tp_st_close(set);
            return 1;
        }
        tp_st_to_f32(t, raw);
        if (is_conv1d(t)) { /* [in, out] -> W[out][in] */
            for (int64_t r = 0; r < R; r++)
                for (int64_t c = 0; c < C; c++) W[c * R + r] = raw[r * C + c];
            int64_t tmp = R; R = C; C = tmp;
        } else memcpy(W, raw, (size_t)(R * C) * 4);
        for (int64_t k = 0; k < R * C; k++) norm += (double)W[k] * W[k];
        for (int j = 0; j < nspecs; j++) {
            size_t nb = tp_codec_blob_bytes(&cs[j], R, C);
            uint8_t *blob = tp_alloc(nb);
            if (!blob || tp_codec_encode(&cs[j], W, R, C, blob, &e) != TP_OK ||
                tp_codec_decode(&cs[j], blob, nb, R, C, D, &e) != TP_OK) {
                fprintf(stderr, "tenpak codecs: %s: %s\n", t->name, blob ? e.msg : "out of memory");
                tp_free(blob); tp_free(raw); tp_free(W); tp_free(D);
                free(err); free(cs); tp_st_close(set);
                return 1;
            }
            for (int64_t k = 0; k < R * C; k++) err[j] += ((double)D[k] - W[k]) * ((double)D[k] - W[k]);
            tp_free(blob);
        }
        nweights += R * C;
        ntensors++;
        tp_free(raw); tp_free(W); tp_free(D);
    }
    tp_st_close(set);
    printf("\nreconstruction error on %s: %lld linear tensors, %lld weights (embeddings and lm_head excluded)\n",
           dir, (long long)ntensors, (long long)nweights);
    printf("%-44s %14s %12s\n", "codec", "rel_frobenius", "vs_minmax");
    for (int j = 0; j < nspecs; j++) {
        double rel = norm > 0 ? sqrt(err[j] / norm) : 0;
        char vs[32] = "";
        /* a refined row follows its min/max twin */
        if (j > 0 && strstr(specs[j], "refine=") && !strncmp(specs[j], specs[j - 1], strlen(specs[j - 1]))) {
            double base = sqrt(err[j - 1] / norm);
            snprintf(vs, sizeof vs, "%+.1f%%", 100.0 * (rel - base) / base);
        }
        printf("%-44s %14.5f %12s\n", cs[j].spec, rel, vs);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "model", dir);
        cJSON_AddStringToObject(o, "codec", cs[j].spec);
        cJSON_AddNumberToObject(o, "rel_frobenius_error", rel);
        cJSON_AddNumberToObject(o, "weights", (double)nweights);
        cJSON_AddItemToArray(out, o);
    }
    free(err);
    free(cs);
    return 0;
}

int tp_cmd_codecs(int argc, char **argv) {
    const char *json = NULL, *v, *models[8], *extra[16];
    int nmodels = 0, nextra = 0;
    long long R = 4096, C = 4096;
    for (int i = 1; i < argc; i++) {
        if (tp_arg(argc, argv, &i, "--json", &v)) json = v;
        else if (tp_arg(argc, argv, &i, "--model", &v)) {
            if (nmodels == 8) { fprintf(stderr, "tenpak codecs: at most 8 --model\n"); return 2; }
            models[nmodels++] = v;
        } else if (tp_arg(argc, argv, &i, "--codec", &v)) {
            if (nextra == 16) { fprintf(stderr, "tenpak codecs: at most 16 --codec\n"); return 2; }
            extra[nextra++] = v;
        } else if (tp_arg(argc, argv, &i, "--shape", &v)) {
            int used = 0;
            if (sscanf(v, "%lldx%lld%n", &R, &C, &used) != 2 || v[used] || R < 1 || C < 1) {
                fprintf(stderr, "tenpak codecs: --shape needs ROWSxCOLS, got '%s'\n", v);
                return 2;
            }
        } else if (tp_flag(argv, i, "--help")) {
            printf("usage: tenpak codecs [--shape ROWSxCOLS] [--model DIR]... [--codec SPEC]... [--json FILE]\n"
                   "  Prints each codec's stored bytes and bits/weight for a matrix of the shape (default\n"
                   "  4096x4096): the bytes tenpak compress writes (codebooks, factors, metadata counted).\n"
                   "  With --model, also the relative Frobenius reconstruction error over the checkpoint's\n"
                   "  linear layers of the INT4 family (min/max and refined) and of every --codec given.\n"
                   "  awq and mixed need calibration statistics, which only tenpak compress collects: here\n"
                   "  they are sized, and their errors (with --codec) are those without statistics (s = 1).\n");
            return 0;
        } else {
            fprintf(stderr, "tenpak codecs: unknown option '%s' (see --help)\n", argv[i]);
            return 2;
        }
    }
    cJSON *arr = cJSON_CreateArray();
    printf("codec bits/weight for a %lldx%lld fp32 matrix (the bytes tenpak compress stores for it):\n", R, C);
    printf("%-44s %14s %12s %12s %10s %10s\n", "codec", "packed_bytes", "bits/weight", "theory", "vs_fp32", "vs_fp16");
    int nt = (int)(sizeof table_specs / sizeof table_specs[0]);
    for (int i = 0; i < nt + nextra; i++) {
        tp_codec c;
        tp_err e;
        if (tp_codec_parse(i < nt ? table_specs[i] : extra[i - nt], &c, &e) != TP_OK) {
            fprintf(stderr, "tenpak codecs: %s\n", e.msg);
            cJSON_Delete(arr);
            return 2;
        }
        size_t bytes = tp_codec_blob_bytes(&c, R, C);
        double bpw = 8.0 * (double)bytes / ((double)R * (double)C);
        printf("%-44s %14zu %12.4f %12.4f %9.2fx %9.2fx\n", c.spec, bytes, bpw, tp_codec_theory_bpw(&c, R, C),
               32.0 / bpw, 16.0 / bpw);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "codec", c.spec);
        cJSON_AddNumberToObject(o, "rows", (double)R);
        cJSON_AddNumberToObject(o, "cols", (double)C);
        cJSON_AddNumberToObject(o, "packed_bytes", (double)bytes);
        cJSON_AddNumberToObject(o, "bits_per_weight", bpw);
        cJSON_AddItemToArray(arr, o);
    }
    int rc = 0;
    cJSON *errs = cJSON_CreateArray();
    const char *specs[64];
    int ns = 0;
    for (size_t k = 0; k < sizeof error_specs / sizeof error_specs[0]; k++) specs[ns++] = error_specs[k];
    for (int k = 0; k < nextra; k++) specs[ns++] = extra[k];
    for (int m = 0; m < nmodels && !rc; m++) rc = model_errors(models[m], specs, ns, errs);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "codecs", arr);
    cJSON_AddItemToObject(root, "reconstruction", errs);
    arr = root;
    if (json && !rc) rc = tp_cli_json_out("codecs", json, arr);
    cJSON_Delete(arr);
    return rc;
}
