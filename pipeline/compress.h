/* Whole-model compression into an artifact, and evaluation of an artifact by perplexity.
 * The functions behind `tenpak compress` and `tenpak eval`, which the report also calls. */
#ifndef TENPAK_PIPELINE_COMPRESS_H
#define TENPAK_PIPELINE_COMPRESS_H

#include <stdint.h>

#include "pipeline/calib.h"
#include "pipeline/ppl.h"
#include "pipeline/stats.h"
#include "tenpak/tenpak.h"

#define TP_MAX_OVERRIDES 16

/* Which tensors a codec applies to. Linear layers are the 2-D weights of the transformer blocks;
 * embeddings (token and position) and lm_head are kept unless compress_embeddings is set; norms
 * and biases are always kept. Overrides (first matching POSIX regex on the tensor name) give a
 * tensor its own spec, or "none" to keep it. */
typedef struct tp_compress_opts {
    const char *model_dir;
    const char *codec;    /* spec, e.g. "int4:g=16" */
    const char *select;   /* "linear" (default), "mlp", "attn" */
    const char *lossless; /* "none" (default), "zstd" (level 19) or "zstd:LEVEL" (1..22) */
    int compress_embeddings;
    int noverrides;
    const char *override_re[TP_MAX_OVERRIDES];
    const char *override_spec[TP_MAX_OVERRIDES];
    int quiet;
    /* calibration (codecs awq, mixed): statistics given by the caller, else collected from
     * calib_data (NULL: tp_calib_default_path()) over calib_tokens tokens (0: the default) */
    const tp_calib *calib;
    const char *calib_data;
    size_t calib_tokens;
    /* mixed: tokens of the calibration text over which each tensor's KLD scales its proxy (0: 1024) */
    size_t mixed_kld_tokens;
} tp_compress_opts;

typedef struct tp_compress_result {
    uint64_t artifact_bytes;   /* the file's size: every byte, header included */
    uint64_t fp32_bytes;       /* numel x 4 over every tensor of the model */
    uint64_t fp16_bytes;       /* numel x 2 */
    uint64_t total_numel;
    uint64_t compressed_numel; /* weights of the tensors a codec was applied to */
    uint64_t compressed_bytes; /* stored bytes of those tensors' records */
    int ncompressed, ntensors;
    double theory_bpw;         /* the main codec's arithmetic bits/weight */
    double rel_error;          /* relative Frobenius error over the compressed tensors */
    double seconds;
    size_t calib_tokens;       /* 0: no calibration used */
    char calib_sha256[65];
    char *plan;                /* mixed: the chosen table as text (malloc'd), else NULL */
} tp_compress_result;

/* A mixed codec's choice is measured here: every tensor it covers is encoded with every candidate
 * (tp_codec_mixed_candidates: int4 g=128..8 with and without refine=4, nf4, int4r2 where the budget
 * allows, awq with the tensor's searched alpha when awq=1) and each result's sensitivity proxy
 * measured (pipeline/sensitivity.h: trace((W - W^) E[x x^T] (W - W^)^T) where the calibration holds
 * E[x x^T], else its diagonal sum_c mean(x_c^2) ||(W - W^)_c||^2), scaled per tensor to nats of KLD
 * (the KLD of the model's output over the calibration text's first 1024 tokens with that tensor
 * alone at int4:g=128, over its proxy there: tensors differ in how far an output error travels,
 * which no layer-local proxy sees); tp_mixed_allocate then chooses
 * one candidate per tensor with the least summed proxy whose blob bytes stay within budget x
 * weights / 8 (never above a single candidate that fits the budget everywhere). The proxy is
 * additive over tensors, which the model is not, so the choice is then made safe by measurement:
 * the allocated plan and every uniform candidate that fits the budget are each applied to the whole
 * model and their KLD against the fp32 model measured over the same calibration tokens (held-in);
 * the least is written (a uniform candidate when it measures below the plan). The table goes
 * into the header ("mixed": candidates, per tensor its codec and every candidate's proxy and
 * bytes, and "kld_check": every measured plan's bits/weight, summed proxy, KLD and true-token NLL
 * change, and which was chosen) and r->plan. */
tp_status tp_compress_model(const tp_compress_opts *o, const char *out_path, tp_compress_result *r, tp_err *e);
void tp_compress_result_free(tp_compress_result *r); /* frees r->plan */

/* A text file's bytes, NUL-terminated, gunzipped when its name ends in .gz; max_bytes > 0 reads
 * at most that many (a prefix). A truncated or damaged gzip stream is an error. `what` names the
 * file in the message when it cannot be opened ("calibration text"; NULL: none). */
char *tp_read_text(const char *path, size_t max_bytes, const char *what, size_t *len, tp_err *e);

/* Tokens of a text file (or its last tail_chars UTF-8 characters when tail_chars > 0; a .gz file
 * is decompressed) with the model's tokenizer.json, special tokens added as its post-processor
 * adds them. *bos gets the id the tokenizer puts first, or -1. sha256 (hex) of the text used. */
tp_status tp_load_text_tokens(const char *model_dir, const char *path, size_t tail_chars, int32_t **ids, size_t *n,
                              int32_t *bos, char sha_hex[65], tp_err *e);

typedef struct tp_eval_opts {
    const char *artifact;
    const char *model_dir; /* NULL: the folder recorded in the artifact */
    const char *data;
    size_t tail_chars;
    size_t max_tokens;     /* 0: all */
    tp_ppl_opts ppl;
    int skip_baseline;     /* baseline_ppl given by the caller instead */
    double baseline_ppl, baseline_nll;
    int exec;              /* tp_exec (pipeline/artifact_model.h): 0 packed kernels, 1 dequant to fp32 */
    int decode_tokens;     /* > 0: then time that many one-token steps (decode tokens/s), cpu only */
    /* Paired evaluation (pipeline/paired.h; the cpu default): the uncompressed model runs beside the
     * compressed one over the same windows, giving KLD, top-1 agreement and bootstrap intervals
     * (r->paired, r->stats). With no_paired or --device cuda the two run one after the other and
     * only the perplexities are measured, as before; skip_baseline applies only then. */
    int no_paired;
    tp_boot_opts boot;       /* the intervals' bootstrap (zeros: the defaults of stats.h) */
    const char *dump_tokens; /* paired: the per-token records are written there (tp_token_cols_dump) */
} tp_eval_opts;

typedef struct tp_eval_result {
    tp_compress_result size; /* sizes re-read from the artifact */
    tp_ppl_result ppl, baseline;
    size_t tokens;
    char codec[256], model_sha256[65], data_sha256[65], model_type[32];
    int exec;                /* as run */
    double decode_tps;       /* decode tokens/s of the compressed model (0: not measured) */
    double baseline_decode_tps; /* the same of the uncompressed model (0: not measured or skipped) */
    uint64_t peak_rss_bytes; /* peak RSS over the compressed model's run alone (paired: its decode run, the baseline freed) */
    int paired;              /* 1: stats below were measured, and ppl / baseline come from the paired pass */
    int files_checked;       /* 0: the artifact predates the config/tokenizer sha256 records (unchecked) */
    tp_token_stats stats;
} tp_eval_result;

tp_status tp_eval_artifact(const tp_eval_opts *o, tp_eval_result *r, tp_err *e);

#endif
