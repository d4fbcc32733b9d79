/* The gptq method (pipeline/codec.h; the algorithm: include/tenpak/gptq.h): g, act_order, damp,
 * clip. clip=1 chooses each group's (scale, offset) by the diag(H)-weighted clip search
 * (tp_int4_clip_ref) instead of min/max: on llama-mini it took gptq:g=64 from +1.90% to -0.04% PPL
 * on WikiText-2, KLD 0.0699 -> 0.0601 (reports/codec_quality.md section 6). It is 0 by default and
 * then left out of the canonical spec (pipeline/codec.c's added_keys), so every earlier spec keeps
 * its spelling and meaning.
 * act_order=1 is the default (columns by descending diag H, GPTQ's "desc_act"): on llama-mini it
 * took gptq:g=128 from +7.01% to +5.14% PPL on WikiText-2 (reports/codec_quality.md); the format
 * is the same either way (groups stay contiguous in the original column order).
 * Its blob is the int4 g-group image (tp_qmat_pack), so it shares int4's size, decode and packed
 * kernels (pipeline/codec_int4.c); only the encoder is its own. H is the stage's act_xtx
 * (calibration's X^T X of this weight's input); any positive multiple gives the same codes, so
 * the sum is used as it is. */
#include "pipeline/codec_methods.h"
#include "tenpak/gptq.h"

static tp_status gptq_encode(const tp_codec_stage *s, const float *W, int64_t rows, int64_t cols, uint8_t *blob,
                             tp_err *e) {
    tp_qmat q;
    if (tp_qmat_alloc(&q, TP_Q_INT4, rows, cols, (int)tp_codec_param_get(s, "g")) != TP_OK)
        return tp_fail(e, TP_ERR_NOMEM, "out of memory quantising a %lldx%lld matrix", (long long)rows, (long long)cols);
    tp_status st = tp_gptq_cpu(&q, W, s->act_xtx, tp_codec_param_get(s, "act_order") != 0,
                               tp_codec_param_get(s, "damp"), (int)tp_codec_param_get(s, "clip"), e);
    if (st == TP_OK) tp_qmat_pack(&q, blob);
    tp_qmat_free(&q);
    return st;
}

/* g a power of two in 8..4096, act_order and clip 0 or 1, damp in (0, 1] (the one real-valued key) */
static tp_status gptq_check(const tp_codec_stage *s, const char *spec, int index, tp_err *e) {
    (void)index;
    tp_status st = tp_codec_check_integers(s, spec, "damp", e);
    if (st == TP_OK) st = tp_codec_check_group(s, spec, e);
    if (st != TP_OK) return st;
    if (tp_codec_param_get(s, "act_order") > 1) return tp_fail(e, TP_ERR_ARG, "codec '%s': act_order is 0 or 1", spec);
    if (tp_codec_param_get(s, "clip") > 1) return tp_fail(e, TP_ERR_ARG, "codec '%s': clip is 0 or 1", spec);
    if (!(tp_codec_param_get(s, "damp") > 0 && tp_codec_param_get(s, "damp") <= 1))
        return tp_fail(e, TP_ERR_ARG, "codec '%s': damp must be in (0, 1] (a fraction of mean(diag H))", spec);
    return TP_OK;
}

const tp_codec_method tp_codec_gptq = {"gptq", "g=128,act_order=1,damp=0.01,clip=0", tp_codec_q_blob_bytes,
                                       tp_codec_q_theory_bpw, gptq_encode, tp_codec_q_decode_add, &tp_codec_q_exec,
                                       gptq_check, NULL};
