/* Text generation (pipeline/generate.h) on both shared models:
 *  - an int4:g=32 artifact generates the same 32 greedy ids on the packed kernels as on its
 *    dequantised fp32 reference;
 *  - greedy decoding through the KV cache equals the argmax of a fresh full forward pass over the
 *    whole sequence at every step (no cache), so the function does what it says;
 *  - sampling is reproducible by seed, differs across seeds, and top_k 1 is greedy; the choice
 *    rule itself (ties, top-k set, bad logits) on hand-made logits;
 *  - n 0, eos, an empty prompt and an over-long prompt. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline/artifact_model.h"
#include "pipeline/generate.h"
#include "pipeline/tokenizer.h"
#include "test_common.h"

#define PROMPT "The history of the city"
#define NGEN 32

static int32_t *prompt_ids(const char *model, size_t *n) {
    char path[1200];
    snprintf(path, sizeof path, "%s/tokenizer.json", shared_model_dir(model));
    tp_tokenizer *t;
    tp_err e = {{0}};
    cr_assert_eq(tp_tokenizer_load(path, &t, &e), TP_OK, "%s", e.msg);
    int32_t *ids;
    cr_assert_eq(tp_tokenizer_encode(t, PROMPT, strlen(PROMPT), 1, &ids, n, &e), TP_OK, "%s", e.msg);
    tp_tokenizer_free(t);
    cr_assert_gt(*n, 0);
    return ids;
}

static tp_gen_result gen(tp_model *m, const int32_t *p, size_t np, int n, double temp, int top_k, uint64_t seed) {
    tp_gen_opts o = TP_GEN_OPTS_INIT;
    o.n = n;
    o.temp = temp;
    o.top_k = top_k;
    o.seed = seed;
    tp_gen_result r;
    tp_err e = {{0}};
    cr_assert_eq(tp_generate(m, p, np, &o, &r, &e), TP_OK, "%s", e.msg);
    cr_assert_eq(r.n, (size_t)n);
    return r;
}

static void expect_same(const tp_gen_result *a, const tp_gen_result *b, const char *what) {
    cr_assert_eq(a->n, b->n);
    for (size_t i = 0; i < a->n; i++)
        cr_expect_eq(a->ids[i], b->ids[i], "%s: token %zu differs: %d vs %d", what, i, a->ids[i], b->ids[i]);
}

/* (a) packed kernels and dequantised fp32 give the same greedy text */
static void packed_vs_dequant(const char *model) {
    char art[256];
    snprintf(art, sizeof art, "/tmp/tenpak-test-generate-%d-%s.tpk", (int)getpid(), model);
    tp_compress_opts co = {.model_dir = shared_model_dir(model), .codec = "int4:g=32", .quiet = 1};
    tp_compress_result cr;
    tp_err e = {{0}};
    cr_assert_eq(tp_compress_model(&co, art, &cr, &e), TP_OK, "%s: %s", model, e.msg);
    tp_compress_result_free(&cr);
    tp_model *mp, *md;
    tp_artifact_model ip, id;
    tp_status sp = tp_model_load_artifact(art, NULL, TP_EXEC_PACKED, NULL, &mp, &ip, &e);
    tp_status sd = sp == TP_OK ? tp_model_load_artifact(art, NULL, TP_EXEC_DEQUANT, NULL, &md, &id, &e) : sp;
    unlink(art);
    cr_assert_eq(sd, TP_OK, "%s", e.msg);
    cr_assert_gt(ip.size.ncompressed, 0);
    size_t np;
    int32_t *p = prompt_ids(model, &np);
    tp_gen_result a = gen(mp, p, np, NGEN, 0, 0, 0), b = gen(md, p, np, NGEN, 0, 0, 0);
    cr_log_info("%s int4:g=32: packed decode %.1f tok/s, dequant %.1f tok/s", model, a.decode_tps, b.decode_tps);
    expect_same(&a, &b, model);
    tp_gen_result_free(&a);
    tp_gen_result_free(&b);
    free(p);
    tp_model_free(mp);
    tp_model_free(md);
}

Test(generate, gpt2_packed_equals_dequant, .timeout = 300) { packed_vs_dequant("gpt2-mini"); }
Test(generate, llama_packed_equals_dequant, .timeout = 300) { packed_vs_dequant("llama-mini"); }

static int32_t argmax(const float *l, int V) {
    int32_t b = 0;
    for (int v = 1; v < V; v++)
        if (l[v] > l[b]) b = v;
    return b;
}

/* (b) greedy = argmax of a fresh forward pass over prompt + generated so far, at every step */
static void greedy_is_argmax(const char *model) {
    tp_model *m = load_shared_model(model);
    size_t np;
    int32_t *p = prompt_ids(model, &np);
    tp_gen_result r = gen(m, p, np, NGEN, 0, 0, 0);
    int V = tp_model_cfg(m)->vocab;
    int32_t *seq = malloc((np + NGEN) * sizeof *seq);
    float *l = malloc((size_t)V * sizeof *l);
    memcpy(seq, p, np * sizeof *p);
    tp_err e = {{0}};
    for (int i = 0; i < NGEN; i++) {
        int n = (int)np + i;
        tp_model_reset(m);
        cr_assert_eq(tp_model_forward(m, seq, n, 0, n - 1, l, &e), TP_OK, "%s", e.msg);
        seq[n] = argmax(l, V);
        cr_expect_eq(r.ids[i], seq[n], "%s: step %d: generated %d, argmax %d", model, i, r.ids[i], seq[n]);
    }
    cr_expect_gt(r.prefill_s, 0);
    cr_expect_geq(r.ttft_s, r.prefill_s);
    cr_expect_gt(r.decode_tps, 0);
    tp_gen_result_free(&r);
    free(seq); free(l); free(p);
    tp_model_free(m);
}

Test(generate, gpt2_greedy_is_argmax, .timeout = 120) { greedy_is_argmax("gpt2-mini"); }
Test(generate, llama_greedy_is_argmax, .timeout = 120) { greedy_is_argmax("llama-mini"); }

/* (c) seeded sampling */
static void sampling(const char *model) {
    tp_model *m = load_shared_model(model);
    size_t np;
    int32_t *p = prompt_ids(model, &np);
    uint64_t seed = test_seed();
    tp_gen_result a = gen(m, p, np, NGEN, 1.0, 40, seed), b = gen(m, p, np, NGEN, 1.0, 40, seed);
    tp_gen_result c = gen(m, p, np, NGEN, 1.0, 40, seed + 1);
    expect_same(&a, &b, "same seed");
    int differ = 0;
    for (size_t i = 0; i < NGEN; i++) differ |= a.ids[i] != c.ids[i];
    cr_expect(differ, "%s: seeds %llu and %llu sampled the same %d tokens", model, (unsigned long long)seed,
              (unsigned long long)seed + 1, NGEN);
    tp_gen_result g = gen(m, p, np, NGEN, 0, 0, 0), k1 = gen(m, p, np, NGEN, 1.0, 1, seed);
    expect_same(&g, &k1, "top_k 1 vs greedy");
    tp_gen_result_free(&a); tp_gen_result_free(&b); tp_gen_result_free(&c);
    tp_gen_result_free(&g); tp_gen_result_free(&k1);
    free(p);
    tp_model_free(m);
}

Test(generate, gpt2_sampling, .timeout = 120) { sampling("gpt2-mini"); }
Test(generate, llama_sampling, .timeout = 120) { sampling("llama-mini"); }

/* The choice rule on logits made by hand: ties go to the lowest id; top-k keeps the k best by
 * (logit, lowest id); a draw never leaves that set; NaN and +inf are errors. */
Test(generate, choose_rule) {
    float l[8] = {1, 3, 3, 3, 0, -INFINITY, 2, 3};
    tp_rng rng;
    tp_rng_seed(&rng, test_seed());
    tp_err e = {{0}};
    int32_t id;
    cr_assert_eq(tp_gen_choose(l, 8, 0, 0, &rng, &id, &e), TP_OK, "%s", e.msg);
    cr_expect_eq(id, 1, "greedy tie: %d", id);
    cr_assert_eq(tp_gen_choose(l, 8, 5.0, 1, &rng, &id, &e), TP_OK);
    cr_expect_eq(id, 1, "top_k 1 tie: %d", id);
    int seen[8] = {0};
    for (int t = 0; t < 2000; t++) {
        cr_assert_eq(tp_gen_choose(l, 8, 1.0, 2, &rng, &id, &e), TP_OK);
        seen[id]++;
    }
    /* the top 2 of {3 at ids 1, 2, 3, 7} are ids 1 and 2, drawn half and half */
    cr_expect(seen[1] > 800 && seen[2] > 800 && seen[1] + seen[2] == 2000, "top-2 draws: %d %d %d %d", seen[1],
              seen[2], seen[3], seen[7]);
    memset(seen, 0, sizeof seen);
    for (int t = 0; t < 4000; t++) {
        cr_assert_eq(tp_gen_choose(l, 8, 1.0, 0, &rng, &id, &e), TP_OK);
        seen[id]++;
    }
    cr_expect_eq(seen[5], 0, "a -inf logit was drawn");
    cr_expect(seen[4] > 0 && seen[0] > 0 && seen[6] > 0, "all-token draws: %d %d %d", seen[0], seen[4], seen[6]);
    l[4] = NAN;
    cr_expect_eq(tp_gen_choose(l, 8, 0, 0, &rng, &id, &e), TP_ERR_INTERNAL);
    cr_expect(strstr(e.msg, "NaN"), "%s", e.msg);
    l[4] = INFINITY;
    cr_expect_eq(tp_gen_choose(l, 8, 1.0, 0, &rng, &id, &e), TP_ERR_INTERNAL);
}

/* (d) n 0, eos, refused prompts */
Test(generate, edges, .timeout = 120) {
    tp_model *m = load_shared_model("gpt2-mini");
    size_t np;
    int32_t *p = prompt_ids("gpt2-mini", &np);
    tp_gen_result r = gen(m, p, np, 0, 0, 0, 0);
    cr_expect_eq(r.n, 0);
    cr_expect_null(r.ids);
    cr_expect_eq(r.n_prompt, np);
    cr_expect_gt(r.prefill_tps, 0);
    tp_gen_result_free(&r);

    /* eos: stop right after the greedy run's fourth token, kept in ids */
    tp_gen_result g = gen(m, p, np, 8, 0, 0, 0);
    tp_gen_opts o = TP_GEN_OPTS_INIT;
    o.n = 8;
    o.eos = g.ids[3];
    tp_err e = {{0}};
    cr_assert_eq(tp_generate(m, p, np, &o, &r, &e), TP_OK, "%s", e.msg);
    size_t first = 0;
    while (g.ids[first] != o.eos) first++;
    cr_expect_eq(r.n, first + 1);
    cr_expect(r.hit_eos);
    cr_expect_eq(r.ids[r.n - 1], o.eos);
    tp_gen_result_free(&r);
    tp_gen_result_free(&g);

    o = (tp_gen_opts)TP_GEN_OPTS_INIT;
    o.n = 4;
    cr_expect_eq(tp_generate(m, p, 0, &o, &r, &e), TP_ERR_ARG);
    cr_expect_str_eq(e.msg, "empty prompt: nothing to condition on");
    int cap = tp_model_capacity(m);
    int32_t *big = calloc((size_t)cap + 1, sizeof *big);
    cr_expect_eq(tp_generate(m, big, (size_t)cap + 1, &o, &r, &e), TP_ERR_ARG);
    char num[32];
    snprintf(num, sizeof num, "%d", cap + 1);
    cr_expect(strstr(e.msg, num) && strstr(e.msg, "context"), "%s", e.msg);
    o.n = 5;
    cr_expect_eq(tp_generate(m, big, (size_t)cap - 4, &o, &r, &e), TP_ERR_ARG);
    snprintf(num, sizeof num, "%d", cap - 4);
    cr_expect(strstr(e.msg, num) && strstr(e.msg, "+ 5"), "%s", e.msg);
    o.n = 4; /* exactly the context: allowed */
    cr_expect_eq(tp_generate(m, big, (size_t)cap - 4, &o, &r, &e), TP_OK, "%s", e.msg);
    tp_gen_result_free(&r);
    o.n = -1;
    cr_expect_eq(tp_generate(m, p, np, &o, &r, &e), TP_ERR_ARG);
    o.n = 1;
    o.temp = -1;
    cr_expect_eq(tp_generate(m, p, np, &o, &r, &e), TP_ERR_ARG);
    free(big);
    free(p);
    tp_model_free(m);
}
