/* tenpak claims verify FILE...: run what each claim needs and mark it VERIFIED / FAILED /
 * NEEDS MODEL / UNSUPPORTED / ERROR. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/json_out.h"
#include "pipeline/artifact.h"
#include "pipeline/claims.h"

int tp_cmd_claims(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "verify")) {
        if (argc >= 2 && !strcmp(argv[1], "--help")) {
            printf("usage: tenpak claims verify FILE... [--models-dir DIR] [--data-dir DIR] [--max-tokens N] [--json FILE]\n"
                   "  Runs what each claim needs (compress + eval) and marks it VERIFIED, FAILED (both\n"
                   "  numbers shown), NEEDS MODEL (the checkpoint is not here: which), UNSUPPORTED or ERROR.\n"
                   "  A claim naming its \"metric\" (ppl_delta_percent, kld_mean, top1_agreement) is judged on\n"
                   "  that metric's 95%% interval: VERIFIED when the whole interval is on the claim's side of\n"
                   "  claimed +/- tolerance.<metric>_abs, FAILED when wholly on the other, else INCONCLUSIVE.\n"
                   "  Models resolve against --models-dir, $TENPAK_MODELS_DIR, else ../shared/models; data\n"
                   "  against --data-dir, else ../shared. --max-tokens caps every claim (a quick check).\n"
                   "  Exit status 1 if any claim FAILED or could not be run (INCONCLUSIVE is not a failure).\n");
            return 0;
        }
        fprintf(stderr, "tenpak claims: usage: tenpak claims verify FILE... (see --help)\n");
        return 2;
    }
    tp_claims_opts o = {0};
    const char *json = NULL, *v, *files[32];
    int nf = 0;
    for (int i = 2; i < argc; i++) {
        if (tp_arg(argc, argv, &i, "--models-dir", &v)) o.models_dir = v;
        else if (tp_arg(argc, argv, &i, "--data-dir", &v)) o.data_dir = v;
        else if (tp_arg(argc, argv, &i, "--json", &v)) json = v;
        else if (tp_arg(argc, argv, &i, "--max-tokens", &v)) {
            long long x;
            if (!tp_arg_int("claims", "--max-tokens", v, 0, 1000000000000LL, &x)) return 2;
            o.max_tokens = (size_t)x;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "tenpak claims: unknown option '%s'\n", argv[i]);
            return 2;
        } else if (nf < 32) files[nf++] = argv[i];
    }
    if (!nf) { fprintf(stderr, "tenpak claims verify: no claims file given\n"); return 2; }
    cJSON *results = cJSON_CreateArray();
    int counts[TP_CLAIM_NSTATUS] = {0};
    for (int f = 0; f < nf; f++) {
        tp_err e;
        if (tp_claims_verify_file(files[f], &o, results, counts, &e) != TP_OK) {
            fprintf(stderr, "tenpak claims: %s\n", e.msg);
            cJSON_Delete(results);
            return 1;
        }
    }
    printf("%-28s %-16s %-26s %-12s %s\n", "claim", "model", "codec", "status", "detail");
    const cJSON *r;
    cJSON_ArrayForEach(r, results) {
        printf("%-28s %-16s %-26s %-12s %s\n", tp_json_str(r, "name"), tp_json_str(r, "model") ? tp_json_str(r, "model") : "",
               tp_json_str(r, "codec"), tp_json_str(r, "status"), tp_json_str(r, "reason"));
    }
    printf("%d verified, %d failed, %d inconclusive, %d need a model, %d unsupported, %d errors\n",
           counts[TP_CLAIM_VERIFIED], counts[TP_CLAIM_FAILED], counts[TP_CLAIM_INCONCLUSIVE], counts[TP_CLAIM_NEEDS_MODEL],
           counts[TP_CLAIM_UNSUPPORTED], counts[TP_CLAIM_ERROR]);
    int rc = counts[TP_CLAIM_FAILED] || counts[TP_CLAIM_ERROR] ? 1 : 0;
    if (json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddItemToObject(root, "results", results);
        results = NULL;
        if (tp_cli_json_out("claims", json, root)) rc = 1;
        cJSON_Delete(root);
    }
    cJSON_Delete(results);
    return rc;
}
