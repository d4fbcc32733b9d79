/* Perplexity on the GPU (tp_model_set_device(m, TP_DEVICE_CUDA), kernels/cuda/model.cu) against
 * the CPU path on the same tokens: PPL and NLL sum to a relative 1e-4 (issue 7), per-token NLLs
 * of one window to 1e-3 absolute, and the device's KV cache (a window fed in two pieces) against
 * one call. Skips with a message without a CUDA build or device; the error path is checked on
 * every machine. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        float logits[4];
        int32_t tok = 1;
        cr_expect_neq(tp_model_forward(m, &tok, 1, 0, 0, logits, &e), TP_OK, "logits are CPU-only");
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
