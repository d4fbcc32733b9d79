/* Per-tensor sensitivity: the proxies that predict how much quantising one weight matrix moves the
 * model, the `mixed` codec's allocator that spends a bits/weight budget by them, and the check of a
 * proxy against the truth (`tenpak calib-check`).
 *
 * Proxies of replacing W by D (rows x cols, the input dimension along a row), with calibration
 * activations x of the layer (pipeline/calib.h):
 *   diag  sum_r sum_c mean(x_c^2) (W - D)_rc^2            = E||(W - D) x||^2 without cross terms
 *   full  trace((W - D) H (W - D)^T), H = E[x x^T]        = E||(W - D) x||^2 exactly
 * The truth (tp_calib_check): the mean KL(base || quantised) of the next-token distributions over
 * calibration text when only that tensor is quantised; the proxies are judged by the Spearman rank
 * correlation with it over the tensors. */
#ifndef TENPAK_PIPELINE_SENSITIVITY_H
#define TENPAK_PIPELINE_SENSITIVITY_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "pipeline/codec.h"
#include "tenpak/tenpak.h"

/* sqmean NULL: every weight 1 (plain squared error) */
double tp_proxy_diag(const float *W, const float *D, int64_t rows, int64_t cols, const float *sqmean);
/* H: cols x cols, row-major, symmetric (E[x x^T]; X^T X gives the same times the rows summed) */
double tp_proxy_full(const float *W, const float *D, int64_t rows, int64_t cols, const double *H);
/* Spearman's rank correlation (ties get their average rank); NAN when a side has no variance */
double tp_spearman(const double *x, const double *y, size_t n);

/* ---- the mixed allocator ----
 * One tensor's candidates (tp_codec_mixed_candidates of the mixed codec), each measured: its spec
 * as stored (awq with the tensor's searched alpha, search=0), blob bytes and proxy. */
typedef struct tp_mixed_choice {
    char spec[96];
    size_t bytes;
    double sens;
    uint8_t *blob; /* tp_mixed_measure_ex with keep_blobs: the encoded blob (tp_alloc'd, `bytes` long), else NULL */
} tp_mixed_choice;

/* Encodes W with every candidate of `mixed` and measures each: the full proxy when full is set and
 * xtx (X^T X over nsamples rows, tp_calib_xtx) is given, E[x x^T] = xtx / nsamples, else diag with
 * sqmean. gptq candidates, which need xtx, are skipped without it. out holds
 * TP_MIXED_MAX_CANDIDATES; *n gets the count; skipped candidates get bytes SIZE_MAX and an
 * infinite proxy, so indices stay aligned. */
tp_status tp_mixed_measure(const tp_codec *mixed, const float *W, int64_t rows, int64_t cols, const float *absmean,
                           const float *sqmean, const double *xtx, int64_t nsamples, int full, tp_mixed_choice *out,
                           int *n, tp_err *e);
/* The same, keeping each candidate's blob in out[k].blob when keep_blobs is set (so a plan can be
 * decoded and measured whole afterwards without encoding again); tp_mixed_free_blobs frees them. */
tp_status tp_mixed_measure_ex(const tp_codec *mixed, const float *W, int64_t rows, int64_t cols, const float *absmean,
                              const float *sqmean, const double *xtx, int64_t nsamples, int full, int keep_blobs,
                              tp_mixed_choice *out, int *n, tp_err *e);
void tp_mixed_free_blobs(tp_mixed_choice *ch, size_t count);

/* Chooses pick[j] in [0, nc) for each of n tensors (choice j * nc + k: tensor j's candidate k, the
 * same candidate index meaning the same codec template for every tensor) to minimise the summed
 * proxy with the summed bytes at most limit_bytes:
 *   1. from each tensor's fewest bytes, greedy steps along each tensor's lower convex hull of
 *      (bytes, proxy), the largest proxy drop per added byte first, while they fit;
 *   2. every uniform assignment (all tensors candidate k) that fits replaces it when lower, so a
 *      budget equal to a uniform codec's bytes never ends above that codec's proxy;
 *   3. single moves and pair moves (one tensor down, one up) that lower the sum and fit, until none.
 * Fails (TP_ERR_ARG) when even the fewest bytes exceed the limit. */
tp_status tp_mixed_allocate(const tp_mixed_choice *ch, int n, int nc, double limit_bytes, int *pick, tp_err *e);

/* ---- the proxy against the truth ---- */
typedef struct tp_calib_check_opts {
    const char *model_dir;
    const char *codec;      /* one codec applied to one tensor at a time (not mixed) */
    const char *calib_data; /* NULL: tp_calib_default_path() */
    size_t calib_tokens;    /* statistics (diag and H) over this many tokens; 0: TP_CALIB_DEFAULT_TOKENS */
    size_t kld_tokens;      /* KLD over this many tokens of the same text; 0: 2048 */
    const char *select;     /* as compress: "linear" (default), "mlp", "attn" */
    int quiet;
} tp_calib_check_opts;

/* The first `tokens` tokens of a calibration text (a .gz read through zlib) by the model's
 * tokenizer; refuses evaluation text (wiki.test*) as tp_calib_collect does. ids malloc'd. */
tp_status tp_calib_text_ids(const char *model_dir, const char *path, size_t tokens, int32_t **ids, size_t *n, tp_err *e);

/* The truth: kld[k] = mean over ids[0..n) (windows of min(1024, the model's context), every
 * position) of KL(base || model with weight names[k] replaced by Dfile[k]) of the next-token
 * distributions, each tensor replaced alone (Dfile: the weight in its file layout, tp_alloc'd). m
 * is left as it was. */
struct tp_model;
tp_status tp_tensor_klds(struct tp_model *m, const int32_t *ids, size_t n, int nt, const char *const *names,
                         const float *const *Dfile, double *kld, int quiet, tp_err *e);

/* The truth for a whole plan: the base model's next-token log-probabilities over ids[0..n) (windows
 * of min(1024, the model's context), every position) are computed once (n x vocab floats); then
 * tp_kld_ref_measure replaces every weight names[k] by Dfile[k] at once (file layout) and gives the
 * mean KL(base || replaced) and the mean change of the true next token's negative log-likelihood
 * (nats; positions whose next token lies in the same window), restoring the model after. */
typedef struct tp_kld_ref tp_kld_ref;
tp_status tp_kld_ref_init(struct tp_model *m, const int32_t *ids, size_t n, tp_kld_ref **out, tp_err *e);
tp_status tp_kld_ref_measure(tp_kld_ref *r, int nt, const char *const *names, const float *const *Dfile, double *kld,
                             double *nll_delta, tp_err *e);
void tp_kld_ref_free(tp_kld_ref *r);

/* JSON {model, codec, calibration {path, sha256, tokens}, kld_tokens, tensors: [{name, rows, cols,
 * proxy_diag, proxy_full, kld_mean}], spearman_diag, spearman_full, pearson_log_diag,
 * pearson_log_full, seconds} */
tp_status tp_calib_check(const tp_calib_check_opts *o, cJSON **out, tp_err *e);

#endif
