/* Claims: published "codec X on model Y gives ratio R at PPL delta D" rows, and their
 * verification by running what each needs.
 *
 * A claims file is JSON: {"claims": [claim, ...]} with each claim
 *   name, model (display name), model_dir (folder, relative to the models directory),
 *   codec (tenpak spec), select ("linear" | "mlp" | "attn"), dataset (display name),
 *   data (path, relative to the shared data directory), tail_chars (optional),
 *   protocol {name: "hf" | "llamacpp", ctx, stride, max_tokens (0 = the whole file)},
 *   claimed {ratio_fp32, ppl_delta_percent}, tolerance {ratio_rel, ppl_delta_abs}, source.
 * Such a claim is a reproduction check: VERIFIED when both measured numbers are within tolerance
 * of the claimed ones, FAILED when either is outside (both numbers shown, and the PPL delta's 95%
 * interval when the paired evaluation measured it).
 * A claim may instead name its metric: "metric": "ppl_delta_percent" | "kld_mean" |
 * "top1_agreement", claimed {<metric>, ratio_fp32 (optional)}, tolerance {<metric>_abs (default 0),
 * ratio_rel}. Its side is metric <= claimed + tolerance (PPL delta, KLD: lower is better) or
 * metric >= claimed - tolerance (top-1 agreement), judged on the 95% interval of the paired
 * evaluation (pipeline/stats.h): VERIFIED when the whole interval is on the claim's side, FAILED
 * when it is wholly on the other side (or the ratio is out of tolerance), INCONCLUSIVE otherwise;
 * the interval is printed.
 * Other statuses: NEEDS MODEL (the model folder is absent here), UNSUPPORTED (the codec spec is
 * not one tenpak implements; the reason is given), ERROR (it could not be run: the message says
 * why). */
#ifndef TENPAK_PIPELINE_CLAIMS_H
#define TENPAK_PIPELINE_CLAIMS_H

#include <cjson/cJSON.h>

#include "tenpak/tenpak.h"

typedef enum tp_claim_status {
    TP_CLAIM_VERIFIED = 0,
    TP_CLAIM_FAILED,
    TP_CLAIM_NEEDS_MODEL,
    TP_CLAIM_UNSUPPORTED,
    TP_CLAIM_ERROR,
    TP_CLAIM_INCONCLUSIVE,
    TP_CLAIM_NSTATUS
} tp_claim_status;
#define TP_CLAIM_NMETRICS 3 /* ppl_delta_percent, kld_mean, top1_agreement */

const char *tp_claim_status_name(tp_claim_status s);

typedef struct tp_claims_opts {
    const char *models_dir; /* NULL: $TENPAK_MODELS_DIR, else <shared>/models */
    const char *data_dir;   /* NULL: the shared directory */
    const char *tmp_dir;    /* where artifacts are written while verifying; NULL: $TMPDIR or /tmp */
    size_t max_tokens;      /* > 0: cap every claim's protocol (a quick check, marked in the output) */
    int quiet;
    /* measurements already made in this run (tenpak report's rows): a claim whose model folder,
     * canonical codec, selection, data file, tail and token count match one is judged on it
     * instead of being run again. Each: {model_dir, codec, select, data, tail_chars, max_tokens,
     * ratio_fp32, ppl_delta_percent, ppl, baseline_ppl, artifact_bytes, tokens, and the paired
     * statistics' fields (tp_token_stats_json) when measured}. */
    const cJSON *known;
} tp_claims_opts;

/* Verifies every claim of the file; appends one result object per claim to results (name,
 * model, codec, status, reason, claimed and measured numbers, metric, claimed_value and the
 * measured intervals measured_<metric>_ci95). Counts per status in counts[TP_CLAIM_NSTATUS].
 * Fails only when the file itself is unreadable or malformed. */
tp_status tp_claims_verify_file(const char *path, const tp_claims_opts *o, cJSON *results, int counts[TP_CLAIM_NSTATUS],
                                tp_err *e);

#endif
