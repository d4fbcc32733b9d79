/* tenpak codecs: every codec with its bits/weight computed from the packed size that the
 * quantiser actually allocates (codes, scales, offsets, residuals: every byte counted). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "pipeline/safetensors.h"
#include "tenpak/quant.h"

typedef struct codec_row {
    const char *name;
    tp_qkind kind;
    int g;
} codec_row;

static const codec_row rows[] = {
    {"int4:g=8", TP_Q_INT4, 8},     {"int4:g=16", TP_Q_INT4, 16},   {"int4:g=32", TP_Q_INT4, 32},
    {"int4:g=64", TP_Q_INT4, 64},   {"int4:g=128", TP_Q_INT4, 128}, {"int4r2:g=16", TP_Q_INT4R2, 16},
    {"nf4:g=64", TP_Q_NF4, 64},
};

/* The linear-layer weights of a checkpoint: 2-D float tensors, embeddings and lm_head left out.
 * GPT-2's Conv1D weights are stored [in, out]; they are transposed so groups run along the input
 * dimension as for every other model. */
static int is_linear(const tp_st_tensor *t) {
    return t->ndim == 2 && tp_st_is_float(t->dtype) && !strstr(t->name, "embed") && !strstr(t->name, "wte") &&
           !strstr(t->name, "wpe") && !strstr(t->name, "lm_head");
}
static int is_conv1d(const tp_st_tensor *t) { return strncmp(t->name, "transformer.h.", 14) == 0; }

/* Relative Frobenius error of every codec (min/max and refined) over a model's linear layers. */
static int model_errors(const char *dir, cJSON *out) {
    tp_st_set *set;
    tp_err e;
    if (tp_model_files_open(dir, &set, &e) != TP_OK) {
        fprintf(stderr, "tenpak codecs: %s\n", e.msg);
        return 1;
    }
    typedef struct { const char *name; tp_qkind kind; int g, refine; double err, ref; } acc;
    acc a[] = {{"int4:g=8", TP_Q_INT4, 8, 0, 0, 0},      {"int4:g=8,refine=4", TP_Q_INT4, 8, 4, 0, 0},
               {"int4:g=16", TP_Q_INT4, 16, 0, 0, 0},    {"int4:g=16,refine=4", TP_Q_INT4, 16, 4, 0, 0},
               {"int4:g=32", TP_Q_INT4, 32, 0, 0, 0},    {"int4:g=32,refine=4", TP_Q_INT4, 32, 4, 0, 0},
               {"int4:g=64", TP_Q_INT4, 64, 0, 0, 0},    {"int4:g=64,refine=4", TP_Q_INT4, 64, 4, 0, 0},
               {"int4:g=128", TP_Q_INT4, 128, 0, 0, 0},  {"int4:g=128,refine=4", TP_Q_INT4, 128, 4, 0, 0},
               {"int4r2:g=16", TP_Q_INT4R2, 16, 0, 0, 0}, {"int4r2:g=16,refine=4", TP_Q_INT4R2, 16, 4, 0, 0},
               {"nf4:g=64", TP_Q_NF4, 64, 0, 0, 0}};
    const size_t na = sizeof a / sizeof a[0];
    int64_t nweights = 0, ntensors = 0;
    for (size_t i = 0; i < tp_st_count(set); i++) {
        const tp_st_tensor *t = tp_st_at(set, i);
        if (!is_linear(t)) continue;
        int64_t R = t->shape[0], C = t->shape[1];
        float *raw = tp_alloc((size_t)(R * C) * 4), *W = tp_alloc((size_t)(R * C) * 4), *D = tp_alloc((size_t)(R * C) * 4);
        if (!raw || !W || !D) abort();
        tp_st_to_f32(t, raw);
        if (is_conv1d(t)) { /* [in, out] -> W[out][in] */
            for (int64_t r = 0; r < R; r++)
                for (int64_t c = 0; c < C; c++) W[c * R + r] = raw[r * C + c];
            int64_t tmp = R; R = C; C = tmp;
        } else memcpy(W, raw, (size_t)(R * C) * 4);
        double norm = 0;
        for (int64_t k = 0; k < R * C; k++) norm += (double)W[k] * W[k];
        for (size_t j = 0; j < na; j++) {
            tp_qmat q;
            if (tp_qmat_alloc(&q, a[j].kind, R, C, a[j].g) != TP_OK) abort();
            tp_quantize_ref(&q, W, a[j].refine);
            tp_dequantize_cpu(&q, D);
            double err = 0;
            for (int64_t k = 0; k < R * C; k++) err += ((double)D[k] - W[k]) * ((double)D[k] - W[k]);
            a[j].err += err;
            a[j].ref += norm;
            tp_qmat_free(&q);
        }
        nweights += R * C;
        ntensors++;
        tp_free(raw); tp_free(W); tp_free(D);
    }
    tp_st_close(set);
    printf("\nreconstruction error on %s: %lld linear tensors, %lld weights (embeddings and lm_head excluded)\n",
           dir, (long long)ntensors, (long long)nweights);
    printf("%-22s %14s %12s\n", "codec", "rel_frobenius", "vs_minmax");
    for (size_t j = 0; j < na; j++) {
        double rel = a[j].ref > 0 ? sqrt(a[j].err / a[j].ref) : 0;
        char vs[32] = "";
        if (a[j].refine) {
            double base = sqrt(a[j - 1].err / a[j - 1].ref);
            snprintf(vs, sizeof vs, "%+.1f%%", 100.0 * (rel - base) / base);
        }
        printf("%-22s %14.5f %12s\n", a[j].name, rel, vs);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "model", dir);
        cJSON_AddStringToObject(o, "codec", a[j].name);
        cJSON_AddNumberToObject(o, "rel_frobenius_error", rel);
        cJSON_AddNumberToObject(o, "weights", (double)nweights);
        cJSON_AddItemToArray(out, o);
    }
    return 0;
}

int tp_cmd_codecs(int argc, char **argv) {
    const char *json = NULL, *v, *models[8];
    int nmodels = 0;
    long long R = 4096, C = 4096;
    for (int i = 1; i < argc; i++) {
        if (tp_arg(argc, argv, &i, "--json", &v)) json = v;
        else if (tp_arg(argc, argv, &i, "--model", &v)) {
            if (nmodels == 8) { fprintf(stderr, "tenpak codecs: at most 8 --model\n"); return 2; }
            models[nmodels++] = v;
        } else if (tp_arg(argc, argv, &i, "--shape", &v)) {
            int used = 0;
            if (sscanf(v, "%lldx%lld%n", &R, &C, &used) != 2 || v[used] || R < 1 || C < 1) {
                fprintf(stderr, "tenpak codecs: --shape needs ROWSxCOLS, got '%s'\n", v);
                return 2;
            }
        } else if (tp_flag(argv, i, "--help")) {
            printf("usage: tenpak codecs [--shape ROWSxCOLS] [--model DIR]... [--json FILE]\n"
                   "  Prints each codec's packed bytes and bits/weight for a matrix of the shape\n"
                   "  (default 4096x4096), from the sizes the quantiser allocates. With --model, also\n"
                   "  the relative Frobenius reconstruction error of each codec (min/max and refined)\n"
                   "  over the checkpoint's linear layers.\n");
            return 0;
        } else {
            fprintf(stderr, "tenpak codecs: unknown option '%s' (see --help)\n", argv[i]);
            return 2;
        }
    }
    cJSON *arr = cJSON_CreateArray();
    printf("codec bits/weight for a %lldx%lld fp32 matrix (packed bytes from tp_qmat_alloc):\n", R, C);
    printf("%-14s %6s %14s %12s %10s %10s\n", "codec", "group", "packed_bytes", "bits/weight", "vs_fp32", "vs_fp16");
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        tp_qmat q;
        if (tp_qmat_alloc(&q, rows[i].kind, R, C, rows[i].g) != TP_OK) {
            fprintf(stderr, "tenpak codecs: out of memory for %lldx%lld\n", R, C);
            cJSON_Delete(arr);
            return 1;
        }
        size_t bytes = tp_qmat_bytes(&q);
        tp_qmat_free(&q);
        double bpw = 8.0 * (double)bytes / ((double)R * (double)C);
        printf("%-14s %6d %14zu %12.4f %9.2fx %9.2fx\n", rows[i].name, rows[i].g, bytes, bpw, 32.0 / bpw, 16.0 / bpw);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "codec", rows[i].name);
        cJSON_AddNumberToObject(o, "group", rows[i].g);
        cJSON_AddNumberToObject(o, "rows", (double)R);
        cJSON_AddNumberToObject(o, "cols", (double)C);
        cJSON_AddNumberToObject(o, "packed_bytes", (double)bytes);
        cJSON_AddNumberToObject(o, "bits_per_weight", bpw);
        cJSON_AddItemToArray(arr, o);
    }
    int rc = 0;
    cJSON *errs = cJSON_CreateArray();
    for (int m = 0; m < nmodels && !rc; m++) rc = model_errors(models[m], errs);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "codecs", arr);
    cJSON_AddItemToObject(root, "reconstruction", errs);
    arr = root;
    if (json && !rc) {
        char *text = cJSON_Print(arr);
        tp_err e;
        if (!text || tp_write_file_atomic(json, text, strlen(text), &e) != TP_OK) {
            fprintf(stderr, "tenpak codecs: %s\n", text ? e.msg : "out of memory");
            rc = 1;
        }
        free(text);
    }
    cJSON_Delete(arr);
    return rc;
}
