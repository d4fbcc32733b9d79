/* Calibration statistics for activation-aware codecs (awq, mixed).
 *
 * The fp32 model runs over calibration text (by default the first 8192 tokens of
 * <shared>/datasets/corpus/brown.txt.gz: training-corpus text, never an evaluation file) and
 * records, for every linear layer's input X[n][in], per input channel c:
 *     absmean[c] = mean_n |X[n][c]|      (AWQ's activation magnitude)
 *     sqmean[c]  = mean_n  X[n][c]^2     (the diagonal of E[x x^T]: the Fisher/Hessian-style weight
 *                                         of an error in column c, used by the sensitivity search)
 * through tp_model_set_act_sink, which leaves the forward's results unchanged.
 * With TP_CALIB_XTX (tp_calib_collect_ex; codecs that need it: tp_codec_needs_xtx) it also keeps
 * the full second-moment sum per weight,
 *     xtx[a][b] = sum_n X[n][a] X[n][b]   (in x in, double, both triangles filled)
 * (E[x x^T] = xtx / rows; GPTQ's Hessian 2 X^T X up to a factor). Memory: in^2 x 8 bytes per
 * weight (llama-mini: 1.2 MB at in = 384, 8 MB at 1024, 84 MB for its 42 linear weights; a 7B
 * model's 4096-wide inputs would need 134 MB each), so it is only collected when asked for. */
#ifndef TENPAK_PIPELINE_CALIB_H
#define TENPAK_PIPELINE_CALIB_H

#include <stddef.h>
#include <stdint.h>

#include "tenpak/tenpak.h"

#define TP_CALIB_DEFAULT_TOKENS 8192

typedef struct tp_calib_tensor {
    char *name;          /* the weight's tensor name in the checkpoint */
    int in;              /* input channels */
    uint64_t rows;       /* activation rows seen */
    double *abs_sum, *sq_sum;
    float *absmean, *sqmean; /* filled when collection ends */
    double *xtx;         /* TP_CALIB_XTX only: in x in sum of x x^T over the rows seen, else NULL */
} tp_calib_tensor;

typedef struct tp_calib {
    int n, cap;
    tp_calib_tensor *t;
    size_t tokens;       /* tokens run through the model */
    char path[4096];     /* the calibration text */
    char sha256[65];     /* of the text bytes used (the prefix read) */
    unsigned flags;      /* TP_CALIB_* it was collected with */
} tp_calib;

#define TP_CALIB_XTX 1u /* also collect X^T X per weight (tp_calib_xtx) */

/* <shared>/datasets/corpus/brown.txt.gz */
const char *tp_calib_default_path(void);

/* Refuses evaluation text: a file named wiki.test* (WikiText-2 test). The caller (tenpak report)
 * also refuses a path equal to one of its datasets. Reads only the prefix of text_path (a .gz file
 * through zlib) needed for `tokens` tokens (0: TP_CALIB_DEFAULT_TOKENS), runs it in windows of
 * min(1024, the model's context). */
tp_status tp_calib_collect(const char *model_dir, const char *text_path, size_t tokens, tp_calib **out, tp_err *e);
/* The same with flags (0 or TP_CALIB_XTX); tp_calib_collect is flags = 0. */
tp_status tp_calib_collect_ex(const char *model_dir, const char *text_path, size_t tokens, unsigned flags,
                              tp_calib **out, tp_err *e);
void tp_calib_free(tp_calib *c);

/* The statistics of one weight (NULL if it was not seen or its input width differs from in). */
const float *tp_calib_absmean(const tp_calib *c, const char *name, int64_t in);
const float *tp_calib_sqmean(const tp_calib *c, const char *name, int64_t in);
/* X^T X of one weight's input (in x in, row-major, symmetric) and the number of rows it sums
 * (*nsamples, may be NULL); NULL (and *nsamples = 0) if not collected (no TP_CALIB_XTX), not seen,
 * or of another width. */
const double *tp_calib_xtx(const tp_calib *c, const char *name, int64_t in, int64_t *nsamples);

/* AWQ per-input-channel scales, as stored (fp16):
 *   a_c = max(absmean[c], 1e-6 * max_c absmean)   (a dead channel gets the floor, not 0)
 *   s_c = a_c^alpha / geomean_c(a_c^alpha)         (geometric mean 1), clamped to [2^-12, 2^12]
 * rounded to nearest fp16. absmean NULL or all zero: every s_c = 1. */
void tp_awq_scales(const float *absmean, int64_t cols, double alpha, uint16_t *s16);

#endif
