/* The model on the GPU (tp_model_set_device(m, TP_DEVICE_CUDA), kernels/cuda/model.cu) against
 * the CPU path on the same tokens.
 *  - fp32 weights: PPL and NLL sum to a relative 1e-4, per-token NLLs of one window to 1e-3
 *    absolute, the device's KV cache (a window fed in two pieces) against one call, logits of a
 *    decode step to relative L2 1e-4.
 *  - packed artifacts (int4 g128 / g32 with embeddings, int4r2, nf4): the GPU's INT4 kernels with
 *    binary16 activations against the CPU's dequant path (the reference) over 16 decode steps and
 *    a 64-token prefill; a corrupted record must show; a codec without a GPU kernel fails with a
 *    message naming the tensor and --exec dequant.
 *  - fp16 weights: cuBLAS fp16 products against the CPU's fp32 model.
 * Skips with a message without a CUDA build or device; the error path is checked on every machine. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline/artifact_model.h"
#include "pipeline/linear.h"
#include "pipeline/ppl.h"
#include "pipeline/tokenizer.h"
#include "verify/test_common.h"
#ifdef TENPAK_HAVE_CUDA
#include "kernels/cuda/tp_cuda.h"
#endif

/* WikiText-2 test through the model's tokenizer (as `tenpak ppl --data`): the GPU machine gets
 * the models' config, tokenizer and safetensors, not their goldens. */
static int32_t *wiki_ids(const char *model, size_t *n) {
    char p[1024];
    tp_err e = {{0}};
    tp_tokenizer *tok = NULL;
    snprintf(p, sizeof p, "%s/models/%s/tokenizer.json", tp_shared_dir(), model);
    cr_assert_eq(tp_tokenizer_load(p, &tok, &e), TP_OK, "%s", e.msg);
    snprintf(p, sizeof p, "%s/datasets/wikitext-2-raw/wiki.test.raw", tp_shared_dir());
    size_t len;
    char *text = tp_read_file(p, &len, &e);
    cr_assert(text, "%s", e.msg);
    int32_t *ids = NULL;
    cr_assert_eq(tp_tokenizer_encode(tok, text, len, 1, &ids, n, &e), TP_OK, "%s", e.msg);
    free(text);
    tp_tokenizer_free(tok);
    return ids;
}

static void need_device(void) {
#ifndef TENPAK_HAVE_CUDA
    cr_skip_test("built without CUDA: GPU perplexity not checked");
#else
    char why[400];
    if (!tp_cuda_available(why, sizeof why)) cr_skip_test("%s: GPU perplexity not checked", why);
#endif
}

/* Everywhere: selecting CUDA either works or fails with one of the two promised messages, and the
 * model stays usable on the CPU. */
Test(ppl_cuda, device_selection) {
    tp_model *m = load_shared_model("llama-mini");
    tp_err e = {{0}};
    tp_status rc = tp_model_set_device(m, TP_DEVICE_CUDA, &e);
    if (rc != TP_OK) {
        cr_expect(strstr(e.msg, "built without CUDA") || strstr(e.msg, "no CUDA device"), "message: %s", e.msg);
        cr_expect_eq(tp_model_device(m), TP_DEVICE_CPU);
    } else {
        cr_expect_eq(tp_model_device(m), TP_DEVICE_CUDA);
        int V = tp_model_cfg(m)->vocab;
        float *lg = malloc((size_t)V * sizeof *lg), *lc = malloc((size_t)V * sizeof *lc);
        int32_t tok = 1;
        cr_assert_eq(tp_model_forward(m, &tok, 1, 0, 0, lg, &e), TP_OK, "%s", e.msg);
        cr_assert_eq(tp_model_set_device(m, TP_DEVICE_CPU, &e), TP_OK, "%s", e.msg);
        cr_assert_eq(tp_model_forward(m, &tok, 1, 0, 0, lc, &e), TP_OK, "%s", e.msg);
        double r = tp_rel_l2_f32(lg, lc, (size_t)V);
        cr_expect_leq(r, 1e-4, "decode-step logits on the GPU differ from the CPU: rel L2 %g", r);
        free(lg);
        free(lc);
    }
    cr_assert_eq(tp_model_set_device(m, TP_DEVICE_CPU, &e), TP_OK, "%s", e.msg);
    double nll;
    int32_t ids[2] = {1, 2};
    cr_expect_eq(tp_model_forward_nll(m, ids, 2, 0, 0, 1, ids + 1, &nll, &e), TP_OK, "%s", e.msg);
    tp_model_free(m);
}

static void compare(const char *model, size_t ntok) {
    need_device();
    tp_model *m = load_shared_model(model);
    size_t n;
    int32_t *ids = wiki_ids(model, &n);
    if (n > ntok) n = ntok;
    tp_err e = {{0}};
    tp_ppl_opts o = {.protocol = TP_PPL_HF, .ctx = 1024, .stride = 512, .device = TP_DEVICE_CPU};
    tp_ppl_result rc_, rg;
    cr_assert_eq(tp_ppl_run(m, ids, n, &o, &rc_, &e), TP_OK, "%s", e.msg);
    o.device = TP_DEVICE_CUDA;
    cr_assert_eq(tp_ppl_run(m, ids, n, &o, &rg, &e), TP_OK, "%s", e.msg);
    cr_log_info("%s: ppl cpu %.6f, cuda %.6f (rel %.2e); %.0f vs %.0f scored tok/s", model, rc_.ppl, rg.ppl,
                fabs(rg.ppl - rc_.ppl) / rc_.ppl, rc_.scored / rc_.seconds, rg.scored / rg.seconds);
    cr_expect_eq(rg.scored, rc_.scored);
    cr_expect_lt(fabs(rg.ppl - rc_.ppl) / rc_.ppl, 1e-4, "%s: cuda ppl %.6f vs cpu %.6f", model, rg.ppl, rc_.ppl);
    cr_expect_lt(fabs(rg.nll_sum - rc_.nll_sum) / rc_.nll_sum, 1e-4, "%s: nll_sum %.6f vs %.6f", model, rg.nll_sum,
                 rc_.nll_sum);

    /* per-token NLLs of the first window, and the same window in two pieces through the KV cache */
    int L = n < 1024 ? (int)n : 1024, cut = L / 2 - 3;
    double *nc = malloc((size_t)L * sizeof *nc), *ng = malloc((size_t)L * sizeof *ng), *ns = malloc((size_t)L * sizeof *ns);
    cr_assert_eq(tp_model_set_device(m, TP_DEVICE_CPU, &e), TP_OK, "%s", e.msg);
    cr_assert_eq(tp_model_forward_nll(m, ids, L, 0, 0, L - 1, ids + 1, nc, &e), TP_OK, "%s", e.msg);
    cr_assert_eq(tp_model_set_device(m, TP_DEVICE_CUDA, &e), TP_OK, "%s", e.msg);
    cr_assert_eq(tp_model_forward_nll(m, ids, L, 0, 0, L - 1, ids + 1, ng, &e), TP_OK, "%s", e.msg);
    tp_model_reset(m);
    cr_assert_eq(tp_model_forward_nll(m, ids, cut, 0, 0, cut, ids + 1, ns, &e), TP_OK, "%s", e.msg);
    cr_assert_eq(tp_model_forward_nll(m, ids + cut, L - cut, cut, 0, L - cut - 1, ids + cut + 1, ns + cut, &e), TP_OK,
                 "%s", e.msg);
    double worst = 0, worst_split = 0;
    for (int i = 0; i < L - 1; i++) {
        worst = fmax(worst, fabs(ng[i] - nc[i]));
        worst_split = fmax(worst_split, fabs(ns[i] - ng[i]));
    }
    cr_log_info("%s: first window, max |nll cuda - cpu| %.2e, split vs whole %.2e", model, worst, worst_split);
    cr_expect_lt(worst, 1e-3, "%s: per-token NLL differs by %.3e", model, worst);
    cr_expect_lt(worst_split, 1e-3, "%s: KV-cache split differs by %.3e", model, worst_split);
    free(nc); free(ng); free(ns);
    free(ids);
    tp_model_free(m);
}

Test(ppl_cuda, gpt2_matches_cpu, .timeout = 600) { compare("gpt2-mini", 2048); }
Test(ppl_cuda, llama_matches_cpu, .timeout = 600) { compare("llama-mini", 2048); }

/* ---- packed artifacts and fp16 weights on the GPU ---- */
#define STEPS 16   /* decode steps: one-row products, the packed kernels */
#define PREFILL 64 /* one window: more rows than the packed kernels take (dequantised, sgemm) */
#define PACKED_BOUND 1e-2 /* relative L2 of logits: binary16 activations against fp32 */

/* logits of STEPS single-token forwards, then of one PREFILL-token forward (all rows) */
static float *gpu_cpu_logits(tp_model *m, const int32_t *ids) {
    int V = tp_model_cfg(m)->vocab;
    float *l = malloc((size_t)(STEPS + PREFILL) * V * sizeof *l);
    tp_err e = {{0}};
    tp_model_reset(m);
    for (int i = 0; i < STEPS; i++)
        cr_assert_eq(tp_model_forward(m, &ids[i], 1, i, 0, l + (size_t)i * V, &e), TP_OK, "%s", e.msg);
    tp_model_reset(m);
    cr_assert_eq(tp_model_forward(m, ids, PREFILL, 0, 0, l + (size_t)STEPS * V, &e), TP_OK, "%s", e.msg);
    return l;
}

static double worst_rows(const float *a, const float *b, int V, int r0, int r1, int *at) {
    double w = 0;
    for (int i = r0; i < r1; i++) {
        double r = tp_rel_l2_f32(a + (size_t)i * V, b + (size_t)i * V, (size_t)V);
        if (r > w || isnan(r)) { w = r; *at = i; }
    }
    return w;
}

static char *make_artifact(const char *model, const char *spec, int embeddings) {
    char *art = malloc(256);
    snprintf(art, 256, "/tmp/tenpak-test-gpu-%d-%s.tpk", (int)getpid(), model);
    tp_compress_opts co = {.model_dir = shared_model_dir(model), .codec = spec, .quiet = 1,
                           .compress_embeddings = embeddings, .calib_tokens = 256};
    tp_compress_result cr;
    tp_err e = {{0}};
    cr_assert_eq(tp_compress_model(&co, art, &cr, &e), TP_OK, "%s %s: %s", model, spec, e.msg);
    tp_compress_result_free(&cr);
    return art;
}

static void packed_on_gpu(const char *model, const char *spec, int embeddings) {
    need_device();
    char *art = make_artifact(model, spec, embeddings);
    tp_model *mp, *md;
    tp_artifact_model ip, id;
    tp_err e = {{0}};
    cr_assert_eq(tp_model_load_artifact(art, NULL, TP_EXEC_PACKED, NULL, &mp, &ip, &e), TP_OK, "%s", e.msg);
    cr_assert_eq(tp_model_load_artifact(art, NULL, TP_EXEC_DEQUANT, NULL, &md, &id, &e), TP_OK, "%s", e.msg);
    size_t n;
    int32_t *ids = wiki_ids(model, &n);
    cr_assert_geq(n, (size_t)PREFILL);
    int V = tp_model_cfg(mp)->vocab, at = 0;
    cr_assert_eq(tp_model_set_device(mp, TP_DEVICE_CUDA, &e), TP_OK, "%s", e.msg);
    float *lg = gpu_cpu_logits(mp, ids), *lc = gpu_cpu_logits(md, ids);
    double wd = worst_rows(lg, lc, V, 0, STEPS, &at);
    int atp = 0;
    double wp = worst_rows(lg, lc, V, STEPS, STEPS + PREFILL, &atp);
    cr_log_info("%s %s%s on %s: decode logits rel L2 <= %.2e (step %d), prefill <= %.2e (row %d), %d tensors packed",
                model, spec, embeddings ? " +embeddings" : "", tp_model_device_desc(mp), wd, at, wp, atp - STEPS,
                ip.size.ncompressed);
    cr_expect_leq(wd, PACKED_BOUND, "%s %s: GPU packed decode differs from the CPU dequant at step %d: %g", model, spec,
                  at, wd);
    cr_expect_leq(wp, 1e-4, "%s %s: GPU prefill (dequantised) differs from the CPU at row %d: %g", model, spec,
                  atp - STEPS, wp);
    free(lg);
    /* self-test: a corrupted record, uploaded again, must show */
    cr_assert_eq(tp_model_set_device(mp, TP_DEVICE_CPU, &e), TP_OK, "%s", e.msg);
    tp_model_free(mp);
    cr_assert_eq(tp_model_load_artifact(art, NULL, TP_EXEC_PACKED, NULL, &mp, &ip, &e), TP_OK, "%s", e.msg);
    tp_linear *l = NULL;
    for (size_t i = 0; i < tp_model_num_weights(mp) && !l; i++) l = tp_model_packed(mp, tp_model_weight(mp, i)->name);
    cr_assert(l, "no packed tensor found");
    for (uint64_t k = 0; k < 64; k++) tp_linear_corrupt(l, k * 7919u);
    cr_assert_eq(tp_model_set_device(mp, TP_DEVICE_CUDA, &e), TP_OK, "%s", e.msg);
    lg = gpu_cpu_logits(mp, ids);
    double wc = worst_rows(lg, lc, V, 0, STEPS, &at);
    cr_expect_gt(wc, PACKED_BOUND, "%s %s: a corrupted record went unnoticed on the GPU (rel L2 %g)", model, spec, wc);
    unlink(art);
    free(art);
    free(lg); free(lc); free(ids);
    tp_model_free(mp);
    tp_model_free(md);
}

Test(ppl_cuda, packed_llama_int4_g128, .timeout = 600) { packed_on_gpu("llama-mini", "int4:g=128", 0); }
Test(ppl_cuda, packed_llama_int4_g32_embeddings, .timeout = 600) { packed_on_gpu("llama-mini", "int4:g=32", 1); }
Test(ppl_cuda, packed_gpt2_int4_g128_embeddings, .timeout = 600) { packed_on_gpu("gpt2-mini", "int4:g=128", 1); }
Test(ppl_cuda, packed_llama_int4r2, .timeout = 600) { packed_on_gpu("llama-mini", "int4r2:g=16", 0); }
Test(ppl_cuda, packed_llama_nf4, .timeout = 600) { packed_on_gpu("llama-mini", "nf4:g=64", 0); }

Test(ppl_cuda, packed_codec_without_gpu_kernel, .timeout = 600) {
    need_device();
    char *art = make_artifact("llama-mini", "lowrank:r=16", 0);
    tp_model *m;
    tp_artifact_model info;
    tp_err e = {{0}};
    cr_assert_eq(tp_model_load_artifact(art, NULL, TP_EXEC_PACKED, NULL, &m, &info, &e), TP_OK, "%s", e.msg);
    unlink(art);
    free(art);
    cr_expect_neq(tp_model_set_device(m, TP_DEVICE_CUDA, &e), TP_OK);
    cr_expect(strstr(e.msg, "lowrank") && strstr(e.msg, "--exec dequant") && strstr(e.msg, "'model."),
              "message: %s", e.msg);
    cr_expect_eq(tp_model_device(m), TP_DEVICE_CPU);
    tp_model_free(m);
}

static void fp16_on_gpu(const char *model) {
    need_device();
    tp_model_opts o16 = {.weights = TP_WEIGHTS_F16};
    tp_model *mg, *mc = load_shared_model(model);
    tp_err e = {{0}};
    cr_assert_eq(tp_model_load(shared_model_dir(model), &o16, &mg, &e), TP_OK, "%s", e.msg);
    cr_assert_eq(tp_model_set_device(mg, TP_DEVICE_CUDA, &e), TP_OK, "%s", e.msg);
    size_t n;
    int32_t *ids = wiki_ids(model, &n);
    int V = tp_model_cfg(mg)->vocab, at = 0, atp = 0;
    float *lg = gpu_cpu_logits(mg, ids), *lc = gpu_cpu_logits(mc, ids);
    double wd = worst_rows(lg, lc, V, 0, STEPS, &at), wp = worst_rows(lg, lc, V, STEPS, STEPS + PREFILL, &atp);
    cr_log_info("%s fp16 weights on the GPU: decode logits rel L2 <= %.2e, prefill <= %.2e", model, wd, wp);
    cr_expect_leq(wd, PACKED_BOUND, "%s: fp16 decode differs from the CPU's fp32 at step %d: %g", model, at, wd);
    cr_expect_leq(wp, PACKED_BOUND, "%s: fp16 prefill differs from the CPU's fp32 at row %d: %g", model, atp - STEPS,
                  wp);
    free(lg); free(lc); free(ids);
    tp_model_free(mg);
    tp_model_free(mc);
}

Test(ppl_cuda, fp16_llama, .timeout = 600) { fp16_on_gpu("llama-mini"); }
Test(ppl_cuda, fp16_gpt2, .timeout = 600) { fp16_on_gpu("gpt2-mini"); }

/* Decode steps replayed from a CUDA graph (the default) against the same steps launched one by one
 * (TENPAK_CUDA_GRAPH=0): the same kernels in the same order, so the logits are bit-identical; for
 * fp32 weights (cuBLAS in the graph) and a packed artifact (the INT4 kernels). */
static void graph_vs_eager(tp_model *mg, tp_model *me, const int32_t *ids, const char *what) {
    tp_err e = {{0}};
    int V = tp_model_cfg(mg)->vocab;
    float *lg = malloc((size_t)V * sizeof *lg), *le = malloc((size_t)V * sizeof *le);
    tp_model_reset(mg);
    tp_model_reset(me);
    int differ = -1;
    for (int i = 0; i < STEPS && differ < 0; i++) {
        cr_assert_eq(tp_model_forward(mg, &ids[i], 1, i, 0, lg, &e), TP_OK, "%s", e.msg);
        cr_assert_eq(tp_model_forward(me, &ids[i], 1, i, 0, le, &e), TP_OK, "%s", e.msg);
        if (memcmp(lg, le, (size_t)V * sizeof *lg)) differ = i;
    }
    cr_log_info("%s: %d graph-replayed decode steps %s the eager ones", what, STEPS,
                differ < 0 ? "bit-identical to" : "DIFFER from");
    cr_expect_eq(differ, -1, "%s: graph step %d differs from the eager step", what, differ);
    free(lg);
    free(le);
}

Test(ppl_cuda, graph_steps_match_eager, .timeout = 600) {
    need_device();
    tp_err e = {{0}};
    size_t n;
    int32_t *ids = wiki_ids("llama-mini", &n);
    tp_model *mg = load_shared_model("llama-mini"), *me = load_shared_model("llama-mini");
    cr_assert_eq(tp_model_set_device(mg, TP_DEVICE_CUDA, &e), TP_OK, "%s", e.msg);
    setenv("TENPAK_CUDA_GRAPH", "0", 1);
    cr_assert_eq(tp_model_set_device(me, TP_DEVICE_CUDA, &e), TP_OK, "%s", e.msg);
    unsetenv("TENPAK_CUDA_GRAPH");
    graph_vs_eager(mg, me, ids, "llama-mini fp32");
    tp_model_free(mg);
    tp_model_free(me);
    char *art = make_artifact("llama-mini", "int4:g=128", 1);
    tp_artifact_model info;
    cr_assert_eq(tp_model_load_artifact(art, NULL, TP_EXEC_PACKED, NULL, &mg, &info, &e), TP_OK, "%s", e.msg);
    cr_assert_eq(tp_model_load_artifact(art, NULL, TP_EXEC_PACKED, NULL, &me, &info, &e), TP_OK, "%s", e.msg);
    unlink(art);
    free(art);
    cr_assert_eq(tp_model_set_device(mg, TP_DEVICE_CUDA, &e), TP_OK, "%s", e.msg);
    setenv("TENPAK_CUDA_GRAPH", "0", 1);
    cr_assert_eq(tp_model_set_device(me, TP_DEVICE_CUDA, &e), TP_OK, "%s", e.msg);
    unsetenv("TENPAK_CUDA_GRAPH");
    graph_vs_eager(mg, me, ids, "llama-mini int4 g128 + embeddings, packed");
    free(ids);
    tp_model_free(mg);
    tp_model_free(me);
}
