/* tenpak codecs: every codec with its bits/weight computed from the packed size that the
 * quantiser actually allocates (codes, scales, offsets, residuals: every byte counted). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
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

int tp_cmd_codecs(int argc, char **argv) {
    const char *json = NULL, *v;
    long long R = 4096, C = 4096;
    for (int i = 1; i < argc; i++) {
        if (tp_arg(argc, argv, &i, "--json", &v)) json = v;
        else if (tp_arg(argc, argv, &i, "--shape", &v)) {
            int used = 0;
            if (sscanf(v, "%lldx%lld%n", &R, &C, &used) != 2 || v[used] || R < 1 || C < 1) {
                fprintf(stderr, "tenpak codecs: --shape needs ROWSxCOLS, got '%s'\n", v);
                return 2;
            }
        } else if (tp_flag(argv, i, "--help")) {
            printf("usage: tenpak codecs [--shape ROWSxCOLS] [--json FILE]\n"
                   "  Prints each codec's packed bytes and bits/weight for a matrix of the shape\n"
                   "  (default 4096x4096), from the sizes the quantiser allocates.\n");
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
    if (json) {
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
