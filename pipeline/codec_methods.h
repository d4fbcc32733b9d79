/* The interface between the codec dispatcher (pipeline/codec.c: the method table, spec parsing,
 * chains) and the methods, one file each: pipeline/codec_int4.c (int4, int4r2, nf4), codec_awq.c,
 * codec_gptq.c, codec_mixed.c, codec_vq.c, codec_sparse24.c, codec_lowrank.c. A method file
 * defines its tp_codec_method with the check of its own parameters next to it. */
#ifndef TENPAK_PIPELINE_CODEC_METHODS_H
#define TENPAK_PIPELINE_CODEC_METHODS_H

#include "pipeline/codec.h"

extern const tp_codec_method tp_codec_int4, tp_codec_int4r2, tp_codec_nf4, tp_codec_awq, tp_codec_gptq,
    tp_codec_mixed, tp_codec_vq, tp_codec_sparse24, tp_codec_lowrank;

/* ---- parameter checks the methods share (pipeline/codec.c); spec names the codec in messages ---- */
int tp_codec_has_param(const tp_codec_stage *s, const char *key);
/* every parameter but the real-valued one named `real` (NULL: none) is a non-negative integer */
tp_status tp_codec_check_integers(const tp_codec_stage *s, const char *spec, const char *real, tp_err *e);
/* g, where the method takes it: a power of two in 8..4096 */
tp_status tp_codec_check_group(const tp_codec_stage *s, const char *spec, tp_err *e);
/* refine: 0..100 */
tp_status tp_codec_check_refine(const tp_codec_stage *s, const char *spec, tp_err *e);

/* TP_ERR_NOMEM naming a rows x cols matrix; the _null form for the exec's open */
tp_status tp_codec_oom(tp_err *e, int64_t rows, int64_t cols);
void *tp_codec_oom_null(tp_err *e, int64_t rows, int64_t cols);
/* decode_add's last step: W += D */
static inline void tp_codec_add_into(float *W, const float *D, int64_t n) {
    for (int64_t i = 0; i < n; i++) W[i] += D[i];
}

/* ---- the INT4 family's blob (the tp_qmat_pack image) and packed view (pipeline/codec_int4.c),
 * shared by int4 / int4r2 / nf4, gptq (the same blob) and awq (its int4 part) ---- */
size_t tp_codec_q_blob_bytes(const tp_codec_stage *s, int64_t rows, int64_t cols);
double tp_codec_q_theory_bpw(const tp_codec_stage *s, int64_t rows, int64_t cols);
tp_status tp_codec_q_decode_add(const tp_codec_stage *s, const uint8_t *blob, int64_t rows, int64_t cols, float *W,
                                tp_err *e);
extern const tp_codec_exec tp_codec_q_exec;
/* The view: the tp_qmat points into the blob (a copy only where the blob's FP16 arrays are
 * misaligned); awq adds its channel scales s_c, by which mul divides the activations first. */
typedef struct tp_codec_qview {
    tp_qmat q;
    int owned;
    float *s; /* awq: the channel scales s_c, cols floats; NULL otherwise */
} tp_codec_qview;
tp_codec_qview *tp_codec_qview_open(tp_qkind kind, int g, const uint8_t *img, int64_t rows, int64_t cols, tp_err *e);
tp_status tp_codec_qview_mul(const void *vp, const float *X, int64_t n, float *Y);
void tp_codec_qview_row(const void *vp, int64_t r, float *dst);
void tp_codec_qview_corrupt(void *vp, uint64_t k);
size_t tp_codec_qview_bytes(const void *vp);
void tp_codec_qview_close(void *vp);

#endif
