/* The gptq codec's encoder (pipeline/codec.h; the algorithm: include/tenpak/gptq.h). Its blob is
 * the int4 g-group image (tp_qmat_pack), so its table entry in codec.c shares int4's size, decode
 * and packed kernels. H is the stage's act_xtx (calibration's X^T X of this weight's input); any
 * positive multiple gives the same codes, so the sum is used as it is. */
#include "pipeline/codec.h"
#include "tenpak/gptq.h"

tp_status tp_codec_gptq_encode(const tp_codec_stage *s, const float *W, int64_t rows, int64_t cols, uint8_t *blob,
                               tp_err *e);

tp_status tp_codec_gptq_encode(const tp_codec_stage *s, const float *W, int64_t rows, int64_t cols, uint8_t *blob,
                               tp_err *e) {
    tp_qmat q;
    if (tp_qmat_alloc(&q, TP_Q_INT4, rows, cols, (int)tp_codec_param_get(s, "g")) != TP_OK)
        return tp_fail(e, TP_ERR_NOMEM, "out of memory quantising a %lldx%lld matrix", (long long)rows, (long long)cols);
    tp_status st = tp_gptq_cpu(&q, W, s->act_xtx, tp_codec_param_get(s, "act_order") != 0,
                               tp_codec_param_get(s, "damp"), e);
    if (st == TP_OK) tp_qmat_pack(&q, blob);
    tp_qmat_free(&q);
    return st;
}
