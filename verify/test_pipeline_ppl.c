/* Perplexity: protocol bookkeeping, agreement with a direct NLL sum, and the 8192-token prefix of
 * WikiText-2 test against goldens computed by Hugging Face transformers on a GPU machine
 * (datasets/goldens/make_ppl_prefix_goldens.py -> datasets/goldens/<model>/ppl_prefix8192.json;
 * the test skips with a message until those files are committed). */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline/ppl.h"
#include "verify/test_common.h"

static int32_t *golden_ids(const char *model, size_t *n) {
    char p[1024];
    snprintf(p, sizeof p, "%s/models/%s/goldens/wiki.test.ids.u32", tp_shared_dir(), model);
    tp_err e = {{0}};
    size_t len;
    uint8_t *g = tp_read_file(p, &len, &e);
    cr_assert(g, "%s", e.msg);
    *n = len / 4;
    int32_t *ids = malloc(*n * sizeof *ids);
    for (size_t i = 0; i < *n; i++)
        ids[i] = (int32_t)((uint32_t)g[4 * i] | (uint32_t)g[4 * i + 1] << 8 | (uint32_t)g[4 * i + 2] << 16 |
                           (uint32_t)g[4 * i + 3] << 24);
    free(g);
    return ids;
}

Test(ppl, counts) {
    tp_ppl_opts hf = {.protocol = TP_PPL_HF}, lc = {.protocol = TP_PPL_LLAMACPP};
    cr_expect_eq(tp_ppl_count(283287, &hf, 1024, 512), 283286); /* every token but the first */
    cr_expect_eq(tp_ppl_count(1000, &hf, 1024, 512), 999);
    cr_expect_eq(tp_ppl_count(1, &hf, 1024, 512), 0);
    cr_expect_eq(tp_ppl_count(5000, &lc, 1024, 0), 4 * 511);
    cr_expect_eq(tp_ppl_count(1000, &lc, 1024, 0), 0);
}

/* Sliding windows by hand with the NLL API: ctx 64, stride 24 on 150 tokens. */
Test(ppl, matches_manual_windows) {
    tp_model *m = load_shared_model("llama-mini");
    size_t n;
    int32_t *ids = golden_ids("llama-mini", &n);
    n = 150;
    tp_ppl_opts o = {.protocol = TP_PPL_HF, .ctx = 64, .stride = 24};
    tp_ppl_result r;
    tp_err e = {{0}};
    cr_assert_eq(tp_ppl_run(m, ids, n, &o, &r, &e), TP_OK, "%s", e.msg);
    cr_expect_eq(r.scored, 149);
    double sum = 0, nll[64];
    size_t prev_end = 0, cnt = 0;
    for (size_t b = 0;; b += 24) {
        size_t end = b + 64 < n ? b + 64 : n, L = end - b, trg = end - prev_end;
        size_t first = L > trg ? L - trg : 1; /* first scored position in the window */
        if (first < 1) first = 1;
        tp_model_reset(m);
        cr_assert_eq(tp_model_forward_nll(m, ids + b, (int)L, 0, (int)first - 1, (int)L - 1, ids + b + first, nll, &e),
                     TP_OK, "%s", e.msg);
        for (size_t i = 0; i < L - first; i++) sum += nll[i];
        cnt += L - first;
        prev_end = end;
        if (end == n) break;
    }
    cr_expect_eq(cnt, 149);
    cr_expect_lt(fabs(sum - r.nll_sum), 1e-9 * fabs(sum), "manual %f vs ppl %f", sum, r.nll_sum);
    cr_expect_lt(fabs(r.ppl - exp(sum / 149)), 1e-9 * r.ppl);
    /* llama.cpp protocol: 2 chunks of 64, 31 scored each */
    tp_ppl_opts l = {.protocol = TP_PPL_LLAMACPP, .ctx = 64, .bos = 1};
    cr_assert_eq(tp_ppl_run(m, ids, n, &l, &r, &e), TP_OK, "%s", e.msg);
    cr_expect_eq(r.scored, 62);
    cr_expect_eq(r.windows, 2);
    cr_expect(isfinite(r.ppl) && r.ppl > 1);
    free(ids);
    tp_model_free(m);
}

static void prefix_golden(const char *model) {
    char p[2048], dir[1024];
    snprintf(dir, sizeof dir, "%s", __FILE__);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0; /* .../verify */
    snprintf(p, sizeof p, "%s/../datasets/goldens/%s/ppl_prefix8192.json", dir, model);
    if (access(p, R_OK) != 0)
        cr_skip_test("%s absent: run datasets/goldens/make_ppl_prefix_goldens.py on a machine with "
                     "PyTorch + transformers and commit its output", p);
    tp_err e = {{0}};
    size_t len;
    char *js = tp_read_file(p, &len, &e);
    cr_assert(js, "%s", e.msg);
    cJSON *g = cJSON_Parse(js);
    cr_assert(g, "%s: bad JSON", p);
    double gppl = cJSON_GetObjectItem(g, "ppl")->valuedouble;
    double gsum = cJSON_GetObjectItem(g, "nll_sum")->valuedouble;
    size_t gscored = (size_t)cJSON_GetObjectItem(g, "scored_tokens")->valuedouble;
    int ctx = cJSON_GetObjectItem(g, "ctx")->valueint, stride = cJSON_GetObjectItem(g, "stride")->valueint;
    size_t maxtok = (size_t)cJSON_GetObjectItem(g, "tokens")->valuedouble;
    tp_model *m = load_shared_model(model);
    size_t n;
    int32_t *ids = golden_ids(model, &n);
    if (n > maxtok) n = maxtok;
    tp_ppl_opts o = {.protocol = TP_PPL_HF, .ctx = ctx, .stride = stride};
    tp_ppl_result r;
    cr_assert_eq(tp_ppl_run(m, ids, n, &o, &r, &e), TP_OK, "%s", e.msg);
    cr_log_info("%s: ppl %.6f (golden %.6f), %zu tokens in %.1f s", model, r.ppl, gppl, r.scored, r.seconds);
    cr_expect_eq(r.scored, gscored);
    cr_expect_lt(fabs(r.ppl - gppl) / gppl, 1e-4, "%s: ppl %.6f vs golden %.6f", model, r.ppl, gppl);
    cr_expect_lt(fabs(r.nll_sum - gsum) / gsum, 1e-4, "%s: nll_sum %.6f vs golden %.6f", model, r.nll_sum, gsum);
    cJSON_Delete(g);
    free(js);
    free(ids);
    tp_model_free(m);
}
Test(ppl, gpt2_prefix8192, .timeout = 600) { prefix_golden("gpt2-mini"); }
Test(ppl, llama_prefix8192, .timeout = 600) { prefix_golden("llama-mini"); }
