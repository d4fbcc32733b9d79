/* pipeline/paired.h on the shared models: identical models give KLD 0, top-1 1 and a zero-width
 * PPL-delta interval; each model's perplexity from the paired pass is tp_ppl_run's; a compressed
 * model's statistics are sane and eval's paired and separate paths agree on perplexity. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline/compress.h"
#include "pipeline/paired.h"
#include "verify/test_common.h"

#define REL_EQ(a, b, tol) cr_expect(fabs((a) - (b)) <= (tol) * fabs(b), "%s = %.17g vs %s = %.17g", #a, (double)(a), #b, (double)(b))

Test(paired, identical_models, .timeout = 300) {
    tp_model *a = load_shared_model("llama-mini"), *b = load_shared_model("llama-mini");
    int32_t *ids = shared_golden_ids("llama-mini", 400);
    tp_ppl_opts o = {.protocol = TP_PPL_HF, .ctx = 128, .stride = 64, .bos = -1};
    tp_paired_result r;
    tp_err e = {{0}};
    cr_assert_eq(tp_paired_run(a, b, ids, 400, &o, &r, &e), TP_OK, "%s", e.msg);
    cr_expect_eq(r.tokens.n, 399);
    cr_expect_eq(r.base.scored, 399);
    int same = 1;
    for (size_t i = 0; i < r.tokens.n; i++)
        same &= r.tokens.kl[i] == 0 && r.tokens.lp_base[i] == r.tokens.lp_comp[i] &&
                r.tokens.top_base[i] == r.tokens.top_comp[i] && r.tokens.target[i] == ids[r.tokens.pos[i]];
    cr_expect(same, "identical models differ on some token");
    tp_token_stats s;
    cr_assert_eq(tp_token_stats_compute(&r.tokens, NULL, &s, &e), TP_OK, "%s", e.msg);
    cr_expect(s.kld_mean == 0 && s.kld_max == 0 && s.kld_mean_ci.lo == 0 && s.kld_mean_ci.hi == 0);
    cr_expect(s.top1_agreement == 1 && s.top1_agreement_ci.lo == 1);
    cr_expect(s.ppl_delta_percent == 0 && s.ppl_delta_percent_ci.lo == 0 && s.ppl_delta_percent_ci.hi == 0,
              "delta %g [%g, %g]", s.ppl_delta_percent, s.ppl_delta_percent_ci.lo, s.ppl_delta_percent_ci.hi);
    cr_expect_float_eq(s.logprob_correlation, 1.0, 1e-12);
    /* the pass's perplexity is tp_ppl_run's (same trunk; the head over more rows at once) */
    tp_ppl_result p;
    cr_assert_eq(tp_ppl_run(a, ids, 400, &o, &p, &e), TP_OK, "%s", e.msg);
    REL_EQ(r.base.nll_sum, p.nll_sum, 1e-12);
    REL_EQ(r.base.nll_stderr, p.nll_stderr, 1e-9);
    cr_expect_eq(r.base.windows, p.windows);
    tp_token_cols_free(&r.tokens);
    /* llamacpp protocol: the same windows as tp_ppl_run */
    tp_ppl_opts lc = {.protocol = TP_PPL_LLAMACPP, .ctx = 128, .bos = 1};
    cr_assert_eq(tp_paired_run(a, b, ids, 400, &lc, &r, &e), TP_OK, "%s", e.msg);
    cr_assert_eq(tp_ppl_run(a, ids, 400, &lc, &p, &e), TP_OK, "%s", e.msg);
    cr_expect_eq(r.base.scored, 3 * 63);
    REL_EQ(r.comp.nll_sum, p.nll_sum, 1e-12);
    tp_token_cols_free(&r.tokens);
    tp_ppl_opts cu = o;
    cu.device = TP_DEVICE_CUDA;
    cr_expect_neq(tp_paired_run(a, b, ids, 400, &cu, &r, &e), TP_OK, "cuda accepted");
    cr_expect(strstr(e.msg, "cpu only") != NULL, "%s", e.msg);
    free(ids);
    tp_model_free(a);
    tp_model_free(b);
}

Test(paired, compressed_eval, .timeout = 300) {
    char path[600], data[600];
    test_tmp_init();
    snprintf(path, sizeof path, "%s", test_tmp_path("g.tpk"));
    snprintf(data, sizeof data, "%s/datasets/wikitext-2-raw/wiki.test.raw", tp_shared_dir());
    tp_compress_opts co = {.model_dir = shared_model_dir("gpt2-mini"), .codec = "int4:g=128", .quiet = 1};
    tp_compress_result cr;
    tp_err e = {{0}};
    cr_assert_eq(tp_compress_model(&co, path, &cr, &e), TP_OK, "%s", e.msg);
    tp_compress_result_free(&cr);
    tp_eval_opts eo = {.artifact = path, .data = data, .max_tokens = 300, .ppl = {.ctx = 128, .stride = 64},
                       .boot = {.resamples = 1000, .block_len = 16, .seed = 5}};
    tp_eval_result r, apart;
    cr_assert_eq(tp_eval_artifact(&eo, &r, &e), TP_OK, "%s", e.msg);
    const tp_token_stats *s = &r.stats;
    cr_expect(r.paired);
    cr_expect_eq(s->n, 299);
    cr_expect_eq(s->blocks, 19);
    cr_expect(s->kld_mean > 0 && s->kld_mean_ci.lo <= s->kld_mean && s->kld_mean <= s->kld_mean_ci.hi);
    cr_expect(s->kld_median <= s->kld_p90 && s->kld_p90 <= s->kld_p99 && s->kld_p99 <= s->kld_p999 && s->kld_p999 <= s->kld_max);
    cr_expect(s->top1_agreement > 0.5 && s->top1_agreement < 1);
    cr_expect(s->ppl_delta_percent_ci.lo <= s->ppl_delta_percent && s->ppl_delta_percent <= s->ppl_delta_percent_ci.hi);
    cr_expect(s->ppl_delta_percent_ci.hi > s->ppl_delta_percent_ci.lo);
    cr_expect(s->logprob_correlation > 0.9 && s->logprob_correlation < 1);
    REL_EQ(s->ppl_comp, r.ppl.ppl, 1e-12);
    REL_EQ(s->ppl_base, r.baseline.ppl, 1e-12);
    /* the separate path (as --device cuda runs it) measures the same perplexities */
    eo.no_paired = 1;
    cr_assert_eq(tp_eval_artifact(&eo, &apart, &e), TP_OK, "%s", e.msg);
    cr_expect(!apart.paired);
    REL_EQ(apart.ppl.ppl, r.ppl.ppl, 1e-9);
    REL_EQ(apart.baseline.ppl, r.baseline.ppl, 1e-9);
    eo.dump_tokens = "/nonexistent-dir/x.tsv";
    cr_expect_neq(tp_eval_artifact(&eo, &apart, &e), TP_OK, "--dump-tokens without the paired pass accepted");
    test_tmp_fini();
}
