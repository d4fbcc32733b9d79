/* The mixed method: a per-tensor INT4 group size (int4, or awq with awq=1) under a bits/weight
 * budget; tenpak compress chooses each tensor's codec among tp_codec_mixed_candidates
 * (pipeline/compress.h says how). */
#include <stdio.h>
#include <string.h>

#include "pipeline/codec_methods.h"

/* ---- mixed: per-tensor group sizes under a bits/weight budget ----
 * tenpak compress measures every tensor's sensitivity at each candidate (tp_codec_mixed_candidates)
 * and writes each record with its chosen candidate's spec. Alone (one matrix, as `tenpak codecs`
 * sees it) the method is the finest candidate whose bytes fit the budget for that shape. */
static const int mixed_groups[] = {128, 64, 32}; /* coarsest first */
static void mixed_stage_for(const tp_codec_stage *s, int g, tp_codec_stage *out);
static int mixed_pick_alone(const tp_codec_stage *s, int64_t rows, int64_t cols) {
    double budget = tp_codec_param_get(s, "budget");
    int best = mixed_groups[0];
    for (size_t i = 0; i < sizeof mixed_groups / sizeof mixed_groups[0]; i++) {
        tp_codec_stage st;
        mixed_stage_for(s, mixed_groups[i], &st);
        if (8.0 * (double)st.method->blob_bytes(&st, rows, cols) <= budget * (double)rows * (double)cols + 1e-9)
            best = mixed_groups[i];
    }
    return best;
}
static size_t mixed_blob_bytes(const tp_codec_stage *s, int64_t rows, int64_t cols) {
    tp_codec_stage st;
    mixed_stage_for(s, mixed_pick_alone(s, rows, cols), &st);
    return st.method->blob_bytes(&st, rows, cols);
}
static double mixed_theory_bpw(const tp_codec_stage *s, int64_t rows, int64_t cols) {
    tp_codec_stage st;
    mixed_stage_for(s, mixed_pick_alone(s, rows, cols), &st);
    return st.method->theory_bpw(&st, rows, cols);
}
static tp_status mixed_encode(const tp_codec_stage *s, const float *W, int64_t rows, int64_t cols, uint8_t *blob,
                              tp_err *e) {
    tp_codec_stage st;
    mixed_stage_for(s, mixed_pick_alone(s, rows, cols), &st);
    return st.method->encode(&st, W, rows, cols, blob, e);
}
static tp_status mixed_decode_add(const tp_codec_stage *s, const uint8_t *blob, int64_t rows, int64_t cols, float *W,
                                  tp_err *e) {
    tp_codec_stage st;
    mixed_stage_for(s, mixed_pick_alone(s, rows, cols), &st);
    return st.method->decode_add(&st, blob, rows, cols, W, e);
}

/* the candidate stage of a mixed stage at group size g: int4:g=G,refine=0 or awq:g=G,alpha=0.5,refine=0 */
static void mixed_stage_for(const tp_codec_stage *s, int g, tp_codec_stage *out) {
    memset(out, 0, sizeof *out);
    int awq = tp_codec_param_get(s, "awq") != 0;
    out->method = awq ? &tp_codec_awq : &tp_codec_int4;
    int k = 0;
    snprintf(out->params[k].key, sizeof out->params[k].key, "g");
    out->params[k++].value = g;
    if (awq) {
        snprintf(out->params[k].key, sizeof out->params[k].key, "alpha");
        out->params[k++].value = 0.5;
        snprintf(out->params[k].key, sizeof out->params[k].key, "search");
        out->params[k++].value = 1;
    }
    snprintf(out->params[k].key, sizeof out->params[k].key, "refine");
    out->params[k++].value = 0;
    out->nparams = k;
    out->act_absmean = s->act_absmean;
    out->act_sqmean = s->act_sqmean;
}

int tp_codec_is_mixed(const tp_codec *c) { return c->nstages == 1 && !strcmp(c->stages[0].method->name, "mixed"); }
double tp_codec_mixed_budget(const tp_codec *c) { return tp_codec_is_mixed(c) ? tp_codec_param_get(&c->stages[0], "budget") : 0; }

/* Every per-tensor codec that could beat the others somewhere: int4 and (awq=1) awq at g = 128 ..
 * 8, each without and with refinement (refine=4), nf4 at g = 128, 64, 32, int4r2 at g = 128 ..
 * 16 and gptq at g = 128 .. 8 (measured where the calibration holds X^T X). A format is a candidate when its bits/weight are at most budget + 1 (a tensor may take up
 * to a bit more than the average where others take less); g = 128, 64, 32 always are. Sorted by
 * bits/weight, ties keeping this order. awq candidates carry search=1: the allocator searches each
 * tensor's alpha once per g and stores it (search=0), so refine=4 runs at that alpha only. */
int tp_codec_mixed_candidates(const tp_codec *c, char out[][96], int max) {
    if (!tp_codec_is_mixed(c)) return 0;
    double budget = tp_codec_param_get(&c->stages[0], "budget"), bpw[TP_MIXED_MAX_CANDIDATES];
    int awq = tp_codec_param_get(&c->stages[0], "awq") != 0, n = 0;
    static const int gs[] = {128, 64, 32, 16, 8};
    char spec[96];
    for (int m = 0; m < 5; m++)
        for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++)
            for (int refine = 0; refine <= 4; refine += 4) {
                int g = gs[i];
                double b = m == 2 ? 4.0 + 16.0 / g : m == 3 ? 6.0 + 48.0 / g : 4.0 + 32.0 / g;
                if ((m == 1 && !awq) || (m == 2 && (refine || g < 32)) || (m == 3 && g < 16) || (m == 4 && refine))
                    continue;
                if (g < 32 && b > budget + 1.0 + 1e-9) continue;
                if (m == 3 && b > budget + 1.0 + 1e-9) continue;
                if (m == 0) snprintf(spec, sizeof spec, "int4:g=%d,refine=%d", g, refine);
                else if (m == 1) snprintf(spec, sizeof spec, "awq:g=%d,alpha=0.5,search=1,refine=%d", g, refine);
                else if (m == 2) snprintf(spec, sizeof spec, "nf4:g=%d", g);
                else if (m == 3) snprintf(spec, sizeof spec, "int4r2:g=%d,refine=%d", g, refine);
                else snprintf(spec, sizeof spec, "gptq:g=%d", g);
                if (n == max || n == TP_MIXED_MAX_CANDIDATES) return n;
                int k = n++; /* insertion by bits/weight, stable */
                while (k > 0 && bpw[k - 1] > b) {
                    bpw[k] = bpw[k - 1];
                    memcpy(out[k], out[k - 1], 96);
                    k--;
                }
                bpw[k] = b;
                snprintf(out[k], 96, "%s", spec);
            }
    return n;
}

/* budget in 4.25..16 (the one real-valued key), awq 0 or 1; never chained */
static tp_status mixed_check(const tp_codec_stage *s, const char *spec, int index, tp_err *e) {
    tp_status st = tp_codec_check_integers(s, spec, "budget", e);
    if (st != TP_OK) return st;
    if (!(tp_codec_param_get(s, "budget") >= 4.25 && tp_codec_param_get(s, "budget") <= 16))
        return tp_fail(e, TP_ERR_ARG, "codec '%s': budget (bits/weight) must be in 4.25..16 (g=128 costs 4.25)", spec);
    if (tp_codec_param_get(s, "awq") > 1) return tp_fail(e, TP_ERR_ARG, "codec '%s': awq and search are 0 or 1", spec);
    if (index > 0 || strchr(spec, '+'))
        return tp_fail(e, TP_ERR_ARG, "codec '%s': mixed chooses a whole tensor's codec and cannot be chained", spec);
    return TP_OK;
}

/* records store the chosen int4 / awq spec, never "mixed": nothing to execute */
const tp_codec_method tp_codec_mixed = {"mixed", "budget=4.5,awq=0", mixed_blob_bytes, mixed_theory_bpw, mixed_encode,
                                        mixed_decode_add, NULL, mixed_check, NULL};
