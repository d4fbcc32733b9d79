/* Codecs over whole weight matrices, named by spec strings:
 *
 *   spec    := stage ('+' stage)*
 *   stage   := method [':' key '=' value (',' key '=' value)*]
 *   e.g.  int4:g=16    int4r2:g=16    nf4:g=64    int4:g=128,refine=4
 *         awq:g=128,alpha=0.5    awq:g=128,search=1    mixed:budget=4.5[,awq=1]
 *         gptq:g=128[,act_order=0][,damp=0.01][,clip=1]
 *
 * Calibrated methods (pipeline/calib.h gives the statistics):
 *   awq    s_c = mean|x_c|^alpha normalised to geometric mean 1 (tp_awq_scales), stored as fp16 per
 *          input column; the int4 codes are those of W diag(s); decode = dequant / s_c. The cols x 2
 *          bytes of s count in the blob, so in bits/weight. search=1: per tensor, alpha is the one of
 *          {0, 1/8, ..., 1} with the least sum_c mean(x_c^2) ||dW_c||^2 (AWQ's grid search, with the
 *          diagonal of E[x x^T] in place of the activations); alpha=0 is plain int4 plus s = 1.
 *   mixed  per-tensor codec chosen by tenpak compress among int4 g=128..8 with and without
 *          refine=4, nf4, int4r2 where the budget allows, gptq, and (awq=1) awq with its alpha
 *          searched per tensor (tp_codec_mixed_candidates), to minimise the summed (KLD-scaled) proxy within
 *          `budget` bits/weight over the tensors it covers (pipeline/compress.h says how); each
 *          record stores its chosen spec.
 *   gptq   GPTQ (Frantar et al. 2022) on the int4 g-group format: the blob, decode and packed kernels
 *          are int4:g=G's (so the GPU path and every int4 consumer run it); only the encoder differs.
 *          Columns are quantised one at a time (act_order=1, the default: by descending diag of H;
 *          act_order=0: in index order), each one's
 *          error compensated on the columns not yet quantised through the Cholesky factor of the
 *          damped inverse of H = X^T X, calibration's full second moment of the layer input
 *          (tp_calib_xtx); a group's scale/offset are min/max of its error-updated weights when the
 *          quantiser enters it (clip=1: the clipped range of those weights with the least
 *          diag(H)-weighted squared rounding error, tp_int4_clip_ref; clip=0, the default, is min/max
 *          and is left out of the canonical spec). damp (0..1] times mean(diag H) is added to the
 *          diagonal.
 *          include/tenpak/gptq.h states it exactly; a tensor without statistics gets H = I (= int4).
 * Parameters are non-negative integers (gptq's clip 0 or 1) except alpha (0..1), budget (4.25..16) and damp (0..1].
 *
 * A chain A+B encodes W with A, then encodes the residual W - A(W) with B; decoding adds the
 * stages. Each method turns a rows x cols fp32 matrix (groups along a row = the input dimension)
 * into a byte blob whose size follows from the shape and parameters, and back.
 * Adding a method: its own file pipeline/codec_NAME.c defining a tp_codec_method with the check of
 * its parameters (pipeline/codec_methods.h), and one line in pipeline/codec.c's method table. */
#ifndef TENPAK_PIPELINE_CODEC_H
#define TENPAK_PIPELINE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "tenpak/quant.h"
#include "tenpak/tenpak.h"

#define TP_CODEC_MAX_STAGES 4
#define TP_CODEC_MAX_PARAMS 8

typedef struct tp_codec_param {
    char key[16];
    double value;
} tp_codec_param;

struct tp_codec_method;
struct tp_codec_exec;

typedef struct tp_codec_stage {
    const struct tp_codec_method *method;
    int nparams;
    tp_codec_param params[TP_CODEC_MAX_PARAMS]; /* every key of the method, defaults filled in */
    /* calibration statistics of the matrix being encoded (per input column, cols long; NULL when
     * none): mean |x_c| and mean x_c^2, set by tp_codec_set_calib, not owned */
    const float *act_absmean, *act_sqmean;
    /* the full second moment: cols x cols sum_n x x^T (tp_calib_xtx) over act_nsamples rows, set by
     * tp_codec_set_calib_xtx, not owned; NULL when none (gptq then uses the identity) */
    const double *act_xtx;
    int64_t act_nsamples;
} tp_codec_stage;

typedef struct tp_codec {
    int nstages;
    tp_codec_stage stages[TP_CODEC_MAX_STAGES];
    char spec[256]; /* canonical: every parameter written out (a key added later only when not at its default) */
} tp_codec;

typedef struct tp_codec_method {
    const char *name;
    const char *defaults; /* "g=128,refine=0": the keys it accepts, with their defaults */
    /* blob bytes for a rows x cols matrix (exact: decode rejects any other length) */
    size_t (*blob_bytes)(const tp_codec_stage *s, int64_t rows, int64_t cols);
    /* bits/weight the format's arithmetic promises for a rows x cols matrix, ignoring padding */
    double (*theory_bpw)(const tp_codec_stage *s, int64_t rows, int64_t cols);
    tp_status (*encode)(const tp_codec_stage *s, const float *W, int64_t rows, int64_t cols, uint8_t *blob,
                        tp_err *e);
    /* decode and ADD into W (so chains sum their stages) */
    tp_status (*decode_add)(const tp_codec_stage *s, const uint8_t *blob, int64_t rows, int64_t cols, float *W,
                            tp_err *e);
    /* the method's kernels for packed execution (pipeline/linear.h); NULL: none, the model must
     * be run with --exec dequant */
    const struct tp_codec_exec *exec;
    /* the parsed parameters' ranges: TP_ERR_ARG with a message naming spec; index: the stage's
     * position in the chain. NULL: no check */
    tp_status (*check)(const tp_codec_stage *s, const char *spec, int index, tp_err *e);
    /* optional: the parameters against the rows x cols matrix `what` (tp_codec_check_shape) */
    tp_status (*check_shape)(const tp_codec_stage *s, const char *spec, int64_t rows, int64_t cols, const char *what,
                             tp_err *e);
} tp_codec_method;

/* Packed execution of one stage: the matrix stays in its codec's format and the family's cpu
 * kernels multiply by it (the registry's GEMV / GEMM kernels of that family).
 *   open  a kernel-ready view of blob (rows x cols, groups along a row). It may point into blob,
 *         which must outlive it (the artifact's map), or hold its own packed copy where the
 *         layout needs one (never an fp32 or fp16 copy of the matrix).
 *   mul   Y[i][r] = sum_c W[r][c] X[i][c] for i < n: Y is n x rows, X n x cols, row-major;
 *         TP_ERR_NOMEM when the kernel's scratch cannot be allocated.
 *   row   optional: row r of W decoded (W[r][0..cols)), for embedding lookups.
 *   corrupt  the planted-fault self-test: changes one code (or factor) picked by k, in the
 *         loaded view only, by far more than rounding, so a check that compares products fails.
 *   bytes the memory the view holds beyond blob. */
typedef struct tp_codec_exec {
    void *(*open)(const tp_codec_stage *s, const uint8_t *blob, int64_t rows, int64_t cols, tp_err *e);
    tp_status (*mul)(const void *p, const float *X, int64_t n, float *Y);
    void (*row)(const void *p, int64_t r, float *dst);
    void (*corrupt)(void *p, uint64_t k);
    size_t (*bytes)(const void *p);
    void (*close)(void *p);
} tp_codec_exec;

/* The INT4-family matrix (int4 g8..g128 incl. refined, int4r2, nf4) behind a view that exec opened,
 * for kernels outside the codec (the GPU's packed path); NULL for every other method, awq included
 * (its channel scales act on the activations). */
const tp_qmat *tp_codec_exec_qmat(const tp_codec_exec *x, const void *view);

/* Strict: stages joined by single '+', parameters key=value joined by single ',', each key at most
 * once, values plain decimals; anything else (a stray '+' or ',', g=16,g=32, g=0x10, 1e3) is
 * refused. */
tp_status tp_codec_parse(const char *spec, tp_codec *c, tp_err *e);
/* The parameters against the matrix they apply to (what names it in the message): a low-rank r
 * above min(rows, cols) is refused. tp_codec_encode checks it too. */
#define TP_CODEC_MAX_RANK 16384
tp_status tp_codec_check_shape(const tp_codec *c, int64_t rows, int64_t cols, const char *what, tp_err *e);
double tp_codec_param_get(const tp_codec_stage *s, const char *key);
size_t tp_codec_blob_bytes(const tp_codec *c, int64_t rows, int64_t cols);
double tp_codec_theory_bpw(const tp_codec *c, int64_t rows, int64_t cols);
/* blob must hold tp_codec_blob_bytes(); stages are laid out one after the other */
tp_status tp_codec_encode(const tp_codec *c, const float *W, int64_t rows, int64_t cols, uint8_t *blob, tp_err *e);
tp_status tp_codec_decode(const tp_codec *c, const uint8_t *blob, size_t len, int64_t rows, int64_t cols, float *W,
                          tp_err *e);
/* Calibration: every stage of c sees these per-column statistics (NULL: none) when encoding. */
void tp_codec_set_calib(tp_codec *c, const float *absmean, const float *sqmean);
int tp_codec_needs_calib(const tp_codec *c); /* awq, gptq or mixed */
/* ... and the full X^T X per tensor (calib's TP_CALIB_XTX), given to every stage by
 * tp_codec_set_calib_xtx (NULL: none); tp_codec_set_calib leaves it as it is. */
void tp_codec_set_calib_xtx(tp_codec *c, const double *xtx, int64_t nsamples);
int tp_codec_needs_xtx(const tp_codec *c); /* gptq */
int tp_codec_is_mixed(const tp_codec *c);
double tp_codec_mixed_budget(const tp_codec *c);
/* mixed: the candidate specs for its budget, coarsest (fewest bits) first; returns their number
 * (at most TP_MIXED_MAX_CANDIDATES). awq ones read search=1: per tensor the allocator replaces
 * them by the searched alpha with search=0 (tp_codec_awq_search_alpha). */
#define TP_MIXED_MAX_CANDIDATES 32
int tp_codec_mixed_candidates(const tp_codec *c, char out[][96], int max);
/* The alpha awq's search (search=1) would choose for W with c's statistics (c: one awq stage);
 * without statistics the spec's alpha. Encoding with alpha=that,search=0 gives the same blob. */
tp_status tp_codec_awq_search_alpha(const tp_codec *c, const float *W, int64_t rows, int64_t cols, double *alpha,
                                    tp_err *e);
/* Names of all methods, for help texts: "int4, int4r2, nf4" */
const char *tp_codec_methods(void);

#endif
