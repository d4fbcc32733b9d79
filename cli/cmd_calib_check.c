/* tenpak calib-check: how well the sensitivity proxies rank a model's tensors by their true effect
 * (pipeline/sensitivity.h): per tensor the diagonal and full proxies of one codec and the mean KLD
 * of the model's output when only that tensor is quantised, with Spearman rank correlations. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/json_out.h"
#include "pipeline/artifact.h"
#include "pipeline/calib.h"
#include "pipeline/codec.h"
#include "pipeline/sensitivity.h"

static void usage(FILE *f) {
    fprintf(f, "usage: tenpak calib-check --model DIR --codec SPEC [--calib FILE] [--calib-tokens N] [--kld-tokens N]\n"
               "                          [--select linear|mlp|attn] [--json FILE]\n"
               "  For every selected linear weight: SPEC applied to it alone, the proxies\n"
               "    diag = sum_c mean(x_c^2) ||(W - W^)_c||^2   full = trace((W - W^) E[x x^T] (W - W^)^T)\n"
               "  (statistics over the first --calib-tokens tokens of --calib, default %d of %s)\n"
               "  and the true effect: mean KL(base || quantised) of the next-token distributions over the\n"
               "  first --kld-tokens tokens (default 2048) of the same calibration text, never evaluation text.\n"
               "  Prints the table and the Spearman rank correlation of each proxy with the KLD.\n",
            TP_CALIB_DEFAULT_TOKENS, tp_calib_default_path());
}

static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

int tp_cmd_calib_check(int argc, char **argv) {
    tp_calib_check_opts o = {0};
    const char *json = NULL, *v;
    long long x;
    for (int i = 1; i < argc; i++) {
        if (tp_arg(argc, argv, &i, "--model", &v)) o.model_dir = v;
        else if (tp_arg(argc, argv, &i, "--codec", &v)) o.codec = v;
        else if (tp_arg(argc, argv, &i, "--calib", &v)) o.calib_data = v;
        else if (tp_arg(argc, argv, &i, "--select", &v)) o.select = v;
        else if (tp_arg(argc, argv, &i, "--json", &v)) json = v;
        else if (tp_arg(argc, argv, &i, "--calib-tokens", &v)) {
            if (!tp_arg_int("calib-check", "--calib-tokens", v, 2, 1000000000LL, &x)) return 2;
            o.calib_tokens = (size_t)x;
        } else if (tp_arg(argc, argv, &i, "--kld-tokens", &v)) {
            if (!tp_arg_int("calib-check", "--kld-tokens", v, 2, 1000000000LL, &x)) return 2;
            o.kld_tokens = (size_t)x;
        } else if (tp_flag(argv, i, "--help")) { usage(stdout); return 0; }
        else {
            fprintf(stderr, "tenpak calib-check: unknown option '%s' (see --help)\n", argv[i]);
            return 2;
        }
    }
    if (!o.model_dir || !o.codec) { usage(stderr); return 2; }
    if (!tp_cli_output("calib-check", "--json", json)) return 2;
    cJSON *r = NULL;
    tp_err e;
    if (tp_calib_check(&o, &r, &e) != TP_OK) {
        fprintf(stderr, "tenpak calib-check: %s\n", e.msg);
        return 1;
    }
    const cJSON *cal = cJSON_GetObjectItemCaseSensitive(r, "calibration"), *t;
    printf("model         %s\ncodec         %s (each tensor alone)\n", o.model_dir, tp_json_str(r, "codec"));
    printf("statistics    %s, first %.0f tokens (sha256 %s)\n", tp_json_str(cal, "path"), num(cal, "tokens"),
           tp_json_str(cal, "sha256"));
    printf("KLD           mean KL(base || quantised) over the first %.0f tokens of the same text, nats\n\n",
           num(r, "kld_tokens"));
    printf("%-44s %10s %14s %14s %12s\n", "tensor", "shape", "proxy diag", "proxy full", "KLD mean");
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(r, "tensors")) {
        char shape[32];
        snprintf(shape, sizeof shape, "%.0fx%.0f", num(t, "rows"), num(t, "cols"));
        printf("%-44s %10s %14.6g %14.6g %12.6g\n", tp_json_str(t, "name"), shape, num(t, "proxy_diag"), num(t, "proxy_full"),
               num(t, "kld_mean"));
    }
    printf("\nSpearman rank correlation with the KLD: diag %.4f, full %.4f (Pearson of logs: diag %.4f, full %.4f; "
           "%d tensors, %.1f s)\n",
           num(r, "spearman_diag"), num(r, "spearman_full"), num(r, "pearson_log_diag"), num(r, "pearson_log_full"),
           cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "tensors")), num(r, "seconds"));
    int rc = json ? tp_cli_json_out("calib-check", json, r) : 0;
    cJSON_Delete(r);
    return rc;
}
