/* Forward pass against Hugging Face transformers' fp32 goldens on the first 1024-token window of
 * WikiText-2 test: full-vocab logits at positions 0, 1, 17, 1022 (relative error < 1e-4) and
 * per-token NLL (max abs difference < 1e-3). Also: the KV cache (token-at-a-time decoding gives
 * the prefill's logits), the per-layer weight mode, weight overrides/hooks, and chunked prefill. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/model.h"
#include "verify/test_common.h"

static char *shared_path(const char *fmt, const char *model) {
    static char buf[4][1024];
    static int k;
    char *p = buf[k++ & 3], rel[512];
    snprintf(rel, sizeof rel, fmt, model);
    snprintf(p, 1024, "%s/%s", tp_shared_dir(), rel);
    return p;
}

static tp_model *load(const char *model, tp_weight_mode mode) {
    tp_err e = {{0}};
    tp_model *m = NULL;
    tp_model_opts o = {.weights = mode};
    cr_assert_eq(tp_model_load(shared_path("models/%s", model), &o, &m, &e), TP_OK, "%s", e.msg);
    return m;
}

static void golden_window(const char *model) {
    tp_model *m = load(model, TP_WEIGHTS_AUTO);
    int V = tp_model_cfg(m)->vocab, n = 1024;
    int32_t *ids = shared_golden_ids(model, n);
    tp_err e = {{0}};
    size_t len;
    float *gl = tp_read_file(shared_path("models/%s/goldens/first_window_logits.f32", model), &len, &e);
    cr_assert(gl && len == 4 * (size_t)V * 4, "%s: logits golden size %zu", model, len);
    float *gn = tp_read_file(shared_path("models/%s/goldens/first_window_nll.f32", model), &len, &e);
    cr_assert(gn && len == (size_t)(n - 1) * 4);
    /* logits of rows 0..1022 only where needed: run the window once with the NLL path, once more
     * with logits from row 0 (the four positions are spread over the window) */
    double *nll = malloc((size_t)n * sizeof *nll);
    cr_assert_eq(tp_model_forward_nll(m, ids, n, 0, 0, n - 1, ids + 1, nll, &e), TP_OK, "%s", e.msg);
    double mx = 0;
    for (int i = 0; i < n - 1; i++) mx = fmax(mx, fabs(nll[i] - gn[i]));
    cr_expect_lt(mx, 1e-3, "%s: NLL max abs diff %g", model, mx);
    cr_log_info("%s: NLL max abs diff %.3g", model, mx);
    float *lg = malloc((size_t)n * V * sizeof *lg);
    cr_assert_eq(tp_model_forward(m, ids, n, 0, 0, lg, &e), TP_OK, "%s", e.msg);
    const int pos[4] = {0, 1, 17, 1022};
    for (int k = 0; k < 4; k++) {
        double r = tp_rel_l2_f32(lg + (size_t)pos[k] * V, gl + (size_t)k * V, (size_t)V);
        cr_expect_lt(r, 1e-4, "%s: logits at %d: relative error %g", model, pos[k], r);
        cr_log_info("%s: logits at %d: relative error %.3g", model, pos[k], r);
    }
    /* KV cache: feeding tokens one at a time gives the same logits at position 17 */
    tp_model_reset(m);
    float *one = malloc((size_t)V * sizeof *one);
    for (int i = 0; i <= 17; i++)
        cr_assert_eq(tp_model_forward(m, ids + i, 1, tp_model_cached(m), 0, one, &e), TP_OK, "%s", e.msg);
    cr_expect_eq(tp_model_cached(m), 18);
    double r = tp_rel_l2_f32(one, gl + 2 * (size_t)V, (size_t)V);
    cr_expect_lt(r, 1e-4, "%s: incremental logits at 17: relative error %g", model, r);
    /* rewinding: recompute position 1 from the cache's first position */
    cr_assert_eq(tp_model_forward(m, ids + 1, 1, 1, 0, one, &e), TP_OK, "%s", e.msg);
    r = tp_rel_l2_f32(one, gl + 1 * (size_t)V, (size_t)V);
    cr_expect_lt(r, 1e-4, "%s: rewound logits at 1: relative error %g", model, r);
    /* a long cache, then one token: position 1022 takes the one-row attention that runs the heads
     * on the worker pool (model_forward.c head_part) */
    cr_assert_eq(tp_model_forward(m, ids + 2, 1020, 2, 0, NULL, &e), TP_OK, "%s", e.msg);
    cr_assert_eq(tp_model_forward(m, ids + 1022, 1, 1022, 0, one, &e), TP_OK, "%s", e.msg);
    r = tp_rel_l2_f32(one, gl + 3 * (size_t)V, (size_t)V);
    cr_expect_lt(r, 1e-4, "%s: incremental logits at 1022 after a long cache: relative error %g", model, r);
    free(one); free(lg); free(nll); free(gn); free(gl); free(ids);
    tp_model_free(m);
}

Test(model, gpt2_first_window, .timeout = 300) { golden_window("gpt2-mini"); }
Test(model, llama_first_window, .timeout = 300) { golden_window("llama-mini"); }

/* Per-layer conversion gives bit-identical logits to the fp32-copies mode. */
static void modes_agree(const char *model) {
    tp_model *a = load(model, TP_WEIGHTS_F32), *b = load(model, TP_WEIGHTS_PER_LAYER);
    cr_expect_eq(tp_model_weight_mode(b), TP_WEIGHTS_PER_LAYER);
    int n = 40, V = tp_model_cfg(a)->vocab;
    int32_t *ids = shared_golden_ids(model, n);
    float *la = malloc((size_t)2 * V * sizeof *la), *lb = malloc((size_t)2 * V * sizeof *lb);
    tp_err e = {{0}};
    cr_assert_eq(tp_model_forward(a, ids, n, 0, n - 2, la, &e), TP_OK, "%s", e.msg);
    cr_assert_eq(tp_model_forward(b, ids, n, 0, n - 2, lb, &e), TP_OK, "%s", e.msg);
    cr_expect(!memcmp(la, lb, (size_t)2 * V * sizeof *la), "%s: per-layer logits differ from f32 mode", model);
    free(la); free(lb); free(ids);
    tp_model_free(a);
    tp_model_free(b);
}
Test(model, gpt2_per_layer_mode) { modes_agree("gpt2-mini"); }

/* The fp16-weights mode decodes (one token at a time) with the fp16 GEMV on the file's data: the
 * same fixed-order sum over the same (exactly widened) values as the fp32 matvec, so the logits
 * equal the fp32 mode's bit for bit. */
static void f16_decode_agrees(const char *model) {
    tp_model *a = load(model, TP_WEIGHTS_F32), *b = load(model, TP_WEIGHTS_F16);
    cr_expect_eq(tp_model_weight_mode(b), TP_WEIGHTS_F16);
    int n = 12, V = tp_model_cfg(a)->vocab;
    int32_t *ids = shared_golden_ids(model, n);
    float *la = malloc((size_t)V * sizeof *la), *lb = malloc((size_t)V * sizeof *lb);
    tp_err e = {{0}};
    for (int i = 0; i < n; i++) {
        cr_assert_eq(tp_model_forward(a, ids + i, 1, i, 0, la, &e), TP_OK, "%s", e.msg);
        cr_assert_eq(tp_model_forward(b, ids + i, 1, i, 0, lb, &e), TP_OK, "%s", e.msg);
        cr_expect(!memcmp(la, lb, (size_t)V * sizeof *la), "%s: fp16-weights decode differs at step %d", model, i);
    }
    free(la); free(lb); free(ids);
    tp_model_free(a);
    tp_model_free(b);
}
Test(model, gpt2_f16_decode) { f16_decode_agrees("gpt2-mini"); }
Test(model, llama_f16_decode) { f16_decode_agrees("llama-mini"); }
Test(model, llama_per_layer_mode) { modes_agree("llama-mini"); }

/* The codec hooks: an override equal to the file's weights changes nothing; a scaled one changes
 * the logits; a hook sees every matrix by name and can substitute rows. */
typedef struct hook_state { int calls; const char *target; } hook_state;
static int zero_hook(void *u, const char *name, const tp_st_tensor *t, int64_t row0, int64_t nrows, float *dst) {
    hook_state *h = u;
    h->calls++;
    if (strcmp(name, h->target)) return 0;
    memset(dst, 0, (size_t)(nrows * (t->numel / t->shape[0])) * sizeof *dst);
    (void)row0;
    return 1;
}

static void overrides(const char *model, const char *wname) {
    for (int mode = TP_WEIGHTS_F32; mode <= TP_WEIGHTS_PER_LAYER; mode++) {
        tp_model *m = load(model, (tp_weight_mode)mode);
        int n = 24, V = tp_model_cfg(m)->vocab;
        int32_t *ids = shared_golden_ids(model, n);
        float *l0 = malloc((size_t)V * 4), *l1 = malloc((size_t)V * 4);
        tp_err e = {{0}};
        cr_assert_eq(tp_model_forward(m, ids, n, 0, n - 1, l0, &e), TP_OK, "%s", e.msg);
        const tp_st_tensor *t = NULL;
        for (size_t i = 0; i < tp_model_num_weights(m); i++)
            if (!strcmp(tp_model_weight(m, i)->name, wname)) t = tp_model_weight(m, i);
        cr_assert(t, "%s not listed among the model's weights", wname);
        float *w = tp_alloc((size_t)t->numel * sizeof *w); /* aligned as the model's copies (model.h) */
        tp_st_to_f32(t, w);
        cr_assert_eq(tp_model_override_weight(m, wname, w, &e), TP_OK, "%s", e.msg);
        cr_assert_eq(tp_model_forward(m, ids, n, 0, n - 1, l1, &e), TP_OK);
        cr_expect(!memcmp(l0, l1, (size_t)V * 4), "%s: identity override changed logits", model);
        for (int64_t i = 0; i < t->numel; i++) w[i] *= 0.5f;
        cr_assert_eq(tp_model_forward(m, ids, n, 0, n - 1, l1, &e), TP_OK);
        cr_expect_gt(tp_rel_l2_f32(l1, l0, (size_t)V), 1e-4, "%s: halved %s did not change logits", model, wname);
        cr_expect_eq(tp_model_override_weight(m, "no.such.weight", w, &e), TP_ERR_ARG);
        cr_assert_eq(tp_model_override_weight(m, wname, NULL, &e), TP_OK);
        hook_state hs = {0, wname};
        tp_model_set_weight_hook(m, zero_hook, &hs);
        cr_assert_eq(tp_model_forward(m, ids, n, 0, n - 1, l1, &e), TP_OK);
        cr_expect_gt(hs.calls, 0);
        cr_expect_gt(tp_rel_l2_f32(l1, l0, (size_t)V), 1e-4, "%s: zeroed %s did not change logits", model, wname);
        tp_model_set_weight_hook(m, NULL, NULL);
        cr_assert_eq(tp_model_forward(m, ids, n, 0, n - 1, l1, &e), TP_OK);
        cr_expect(!memcmp(l0, l1, (size_t)V * 4), "%s: removing the hook did not restore logits", model);
        tp_free(w); free(l0); free(l1); free(ids);
        tp_model_free(m);
    }
}
Test(model, gpt2_override) { overrides("gpt2-mini", "transformer.h.2.mlp.c_fc.weight"); }
Test(model, llama_override) { overrides("llama-mini", "model.layers.3.self_attn.v_proj.weight"); }

Test(model, bad_calls_are_errors) {
    tp_model *m = load("llama-mini", TP_WEIGHTS_AUTO);
    tp_err e = {{0}};
    int32_t ids[2] = {1, 99999};
    float *l = malloc((size_t)tp_model_cfg(m)->vocab * 4);
    cr_expect_eq(tp_model_forward(m, ids, 2, 0, 1, l, &e), TP_ERR_ARG); /* id out of range */
    cr_expect(strstr(e.msg, "99999"));
    ids[1] = 5;
    cr_expect_eq(tp_model_forward(m, ids, 2, 3, 1, l, &e), TP_ERR_ARG); /* pos0 beyond the cache */
    cr_expect_eq(tp_model_forward(m, ids, 2, tp_model_capacity(m) - 1, 1, l, &e), TP_ERR_ARG);
    free(l);
    tp_model_free(m);
}

/* Chunked prefill (model.h): a pass of n rows run as chunks of at most k rows, each attending to
 * the KV cache the chunks before it filled, gives the logits of one pass over all n rows to float
 * rounding (products of other shapes sum in other orders): relative L2 <= 1e-5 at every position,
 * and the NLL path agrees to 1e-5 absolute. n = 150 is no multiple of any k below; k = 17 makes
 * chunks of 16 and 17 rows (under the INT4 GEMM's sgemm threshold too); the logits from a row0
 * inside a chunk and a pass starting at pos0 > 0 after a cached prefix go the same way. An
 * activation sink turns chunking off: calibration sees every row of an input in one call. */
static int sink_rows;
static void max_rows_sink(void *user, const char *name, const float *X, int n, int in) {
    (void)user; (void)name; (void)X; (void)in;
    if (n > sink_rows) sink_rows = n;
}

static void chunk_agrees(const char *model) {
    tp_model *m = load(model, TP_WEIGHTS_AUTO);
    const int n = 150, V = tp_model_cfg(m)->vocab, row0 = 37, pre = 23;
    int32_t *ids = shared_golden_ids(model, n);
    float *ref = malloc((size_t)n * V * sizeof *ref), *got = malloc((size_t)n * V * sizeof *got);
    double *nref = malloc((size_t)n * sizeof *nref), *ngot = malloc((size_t)n * sizeof *ngot);
    tp_err e = {{0}};
    tp_model_set_prefill_chunk(m, 0);
    cr_expect_eq(tp_model_prefill_chunk(m), 0);
    cr_assert_eq(tp_model_forward(m, ids, n, 0, 0, ref, &e), TP_OK, "%s", e.msg);
    cr_assert_eq(tp_model_forward_nll(m, ids, n, 0, 3, n - 1, ids + 4, nref, &e), TP_OK, "%s", e.msg);
    const int ks[] = {64, 17, 149};
    for (size_t t = 0; t < sizeof ks / sizeof *ks; t++) {
        int k = ks[t];
        tp_model_set_prefill_chunk(m, k);
        cr_assert_eq(tp_model_forward(m, ids, n, 0, 0, got, &e), TP_OK, "%s", e.msg);
        cr_expect_eq(tp_model_cached(m), n);
        double w = 0;
        for (int i = 0; i < n; i++) w = fmax(w, tp_rel_l2_f32(got + (size_t)i * V, ref + (size_t)i * V, (size_t)V));
        cr_expect_leq(w, 1e-5, "%s: chunks of %d: logits relative L2 %g", model, k, w);
        cr_log_info("%s: chunks of %d rows: worst logits relative L2 %.3g", model, k, w);
        /* logits from a row inside a chunk */
        cr_assert_eq(tp_model_forward(m, ids, n, 0, row0, got, &e), TP_OK, "%s", e.msg);
        w = 0;
        for (int i = row0; i < n; i++)
            w = fmax(w, tp_rel_l2_f32(got + (size_t)(i - row0) * V, ref + (size_t)i * V, (size_t)V));
        cr_expect_leq(w, 1e-5, "%s: chunks of %d from row %d: relative L2 %g", model, k, row0, w);
        /* after a cached prefix */
        cr_assert_eq(tp_model_forward(m, ids, pre, 0, pre, NULL, &e), TP_OK, "%s", e.msg);
        cr_assert_eq(tp_model_forward(m, ids + pre, n - pre, pre, 0, got, &e), TP_OK, "%s", e.msg);
        cr_expect_eq(tp_model_cached(m), n);
        w = 0;
        for (int i = pre; i < n; i++)
            w = fmax(w, tp_rel_l2_f32(got + (size_t)(i - pre) * V, ref + (size_t)i * V, (size_t)V));
        cr_expect_leq(w, 1e-5, "%s: chunks of %d after %d cached: relative L2 %g", model, k, pre, w);
        /* the NLL path */
        cr_assert_eq(tp_model_forward_nll(m, ids, n, 0, 3, n - 1, ids + 4, ngot, &e), TP_OK, "%s", e.msg);
        /* relative to the NLL (at least 1 nat), the logits' 1e-5: the chunks' products have other
         * shapes, and some BLAS kernels (OpenBLAS SkylakeX, ci/host-matrix.sh) sum them in
         * another order (seen: 1.14e-5 absolute on NLLs of several nats, chunks of 17) */
        double d = 0;
        for (int i = 0; i < n - 4; i++) d = fmax(d, fabs(ngot[i] - nref[i]) / fmax(1.0, fabs(nref[i])));
        cr_expect_leq(d, 1e-5, "%s: chunks of %d: NLL max relative diff %g", model, k, d);
    }
    /* an activation sink sees whole inputs */
    tp_model_set_prefill_chunk(m, 17);
    sink_rows = 0;
    tp_model_set_act_sink(m, max_rows_sink, NULL);
    cr_assert_eq(tp_model_forward(m, ids, n, 0, n, NULL, &e), TP_OK, "%s", e.msg);
    tp_model_set_act_sink(m, NULL, NULL);
    cr_expect_eq(sink_rows, n, "%s: the sink saw inputs of %d rows, not %d", model, sink_rows, n);
    free(ref); free(got); free(nref); free(ngot); free(ids);
    tp_model_free(m);
}
Test(model, gpt2_chunked_prefill) { chunk_agrees("gpt2-mini"); }
Test(model, llama_chunked_prefill) { chunk_agrees("llama-mini"); }
