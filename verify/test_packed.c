/* Compressed inference, model level: the packed path (each compressed tensor multiplied in its
 * codec's format by the family's cpu kernels, pipeline/linear.h) against the dequant path (the
 * same artifact decoded to fp32, the reference), for every codec family on both shared models.
 * Over a 256-token window of WikiText-2 the logits agree to relative L2 <= 1e-4 at every
 * position and the window's perplexity to 1e-4 relative. Self-test: one code of a packed record
 * changed after loading must break that agreement, so the check can fail.
 *
 * To keep the suite short the codec covers the first and the last block's linear layers (the
 * others are kept raw by an override), which runs every kernel on both paths; the embeddings case
 * compresses the token (and GPT-2's position) embeddings too, so the rows and the tied lm_head
 * run packed. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline/artifact_model.h"
#include "pipeline/codec.h"
#include "pipeline/linear.h"
#include "tenpak/registry.h"
#include "verify/test_common.h"

#define WINDOW 256

/* logits of the whole window and the window's perplexity (each position predicting the next) */
static float *run(tp_model *m, const int32_t *ids, double *ppl) {
    int V = tp_model_cfg(m)->vocab;
    float *l = malloc((size_t)WINDOW * V * sizeof *l);
    tp_err e = {{0}};
    tp_model_reset(m);
    cr_assert_eq(tp_model_forward(m, ids, WINDOW, 0, 0, l, &e), TP_OK, "%s", e.msg);
    double nll = 0;
    for (int i = 0; i + 1 < WINDOW; i++) {
        const float *r = l + (size_t)i * V;
        double mx = r[0], s = 0;
        for (int v = 1; v < V; v++) mx = fmax(mx, r[v]);
        for (int v = 0; v < V; v++) s += exp(r[v] - mx);
        nll += log(s) + mx - r[ids[i + 1]];
    }
    *ppl = exp(nll / (WINDOW - 1));
    return l;
}

/* worst per-position relative L2 of a against b */
static double worst(const float *a, const float *b, int V, int *at) {
    double w = 0;
    for (int i = 0; i < WINDOW; i++) {
        double r = tp_rel_l2_f32(a + (size_t)i * V, b + (size_t)i * V, (size_t)V);
        if (r > w || isnan(r)) { w = r; *at = i; }
    }
    return w;
}

static void packed_vs_dequant(const char *model, const char *spec, int embeddings) {
    char art[256];
    snprintf(art, sizeof art, "/tmp/tenpak-test-packed-%d-%s.tpk", (int)getpid(), model);
    tp_compress_opts co = {.model_dir = shared_model_dir(model), .codec = spec, .quiet = 1,
                           .compress_embeddings = embeddings, .calib_tokens = 512,
                           .mixed_kld_tokens = 64}; /* the allocation's quality is not what this checks */
    if (!embeddings) { /* first and last blocks only */
        co.noverrides = 1;
        co.override_re[0] = "(layers|h)\\.[1-4]\\.";
        co.override_spec[0] = "none";
    }
    tp_compress_result cr;
    tp_err e = {{0}};
    cr_assert_eq(tp_compress_model(&co, art, &cr, &e), TP_OK, "%s %s: %s", model, spec, e.msg);
    tp_compress_result_free(&cr);
    tp_model *mp, *md;
    tp_artifact_model ip, id;
    cr_assert_eq(tp_model_load_artifact(art, NULL, TP_EXEC_PACKED, NULL, &mp, &ip, &e), TP_OK, "%s", e.msg);
    cr_assert_eq(tp_model_load_artifact(art, NULL, TP_EXEC_DEQUANT, NULL, &md, &id, &e), TP_OK, "%s", e.msg);
    unlink(art);
    cr_assert_gt(ip.size.ncompressed, 0);
    int V = tp_model_cfg(mp)->vocab, at = 0;
    int32_t *ids = shared_golden_ids(model, WINDOW);
    double pp, pd;
    float *lp = run(mp, ids, &pp), *ld = run(md, ids, &pd);
    double w = worst(lp, ld, V, &at), dp = fabs(pp - pd) / pd;
    cr_log_info("%s %s%s: logits rel L2 <= %.2e (position %d), PPL %.6f vs %.6f (rel %.1e), %d tensors packed", model,
                spec, embeddings ? " +embeddings" : "", w, at, pp, pd, dp, ip.size.ncompressed);
    cr_expect_leq(w, 1e-4, "%s %s: packed logits differ from dequant at position %d: rel L2 %g", model, spec, at, w);
    cr_expect_leq(dp, 1e-4, "%s %s: packed PPL %.6f vs dequant %.6f", model, spec, pp, pd);
    /* self-test: a code changed in the first packed tensor must show */
    tp_linear *l = NULL;
    for (size_t i = 0; i < tp_model_num_weights(mp) && !l; i++) l = tp_model_packed(mp, tp_model_weight(mp, i)->name);
    cr_assert(l, "no packed tensor found");
    for (uint64_t k = 0; k < 64; k++) tp_linear_corrupt(l, k * 7919u);
    free(lp);
    lp = run(mp, ids, &pp);
    double wc = worst(lp, ld, V, &at);
    cr_expect_gt(wc, 1e-4, "%s %s: a corrupted packed record went unnoticed (rel L2 %g)", model, spec, wc);
    free(lp); free(ld); free(ids);
    tp_model_free(mp);
    tp_model_free(md);
}

#define CODEC_TESTS(tag, spec)                                                           \
    Test(packed, gpt2_##tag, .timeout = 300) { packed_vs_dequant("gpt2-mini", spec, 0); } \
    Test(packed, llama_##tag, .timeout = 300) { packed_vs_dequant("llama-mini", spec, 0); }

CODEC_TESTS(int4_g32, "int4:g=32")
CODEC_TESTS(int4_g128_refined, "int4:g=128,refine=4")
CODEC_TESTS(int4r2_g16, "int4r2:g=16")
CODEC_TESTS(nf4_g64, "nf4:g=64")
CODEC_TESTS(awq_g128_search, "awq:g=128,search=1")
CODEC_TESTS(mixed_awq, "mixed:budget=4.5,awq=1")
CODEC_TESTS(vq_d4, "vq:d=4,k=256")
CODEC_TESTS(vq_int4, "vq:d=8,k=256+int4:g=32")
CODEC_TESTS(lowrank_r16, "lowrank:r=16")
CODEC_TESTS(tenpakx, "tenpakx:rank=32,d=4,k=256,res=int4:g=32")
CODEC_TESTS(sparse24_f16, "sparse24")
CODEC_TESTS(sparse24_f32, "sparse24:v=32")
CODEC_TESTS(sparse24_int4, "sparse24+int4:g=128")
CODEC_TESTS(sparse24_v4, "sparse24:v=4,g=64")

Test(packed, gpt2_embeddings, .timeout = 300) { packed_vs_dequant("gpt2-mini", "int4:g=32", 1); }
Test(packed, llama_embeddings, .timeout = 300) { packed_vs_dequant("llama-mini", "int4:g=32", 1); }

/* A codec without a packed kernel is refused by name; the tenpak command says --exec dequant. */
Test(packed, shape_and_codec_errors) {
    tp_linear *l;
    tp_err e = {{0}};
    uint8_t blob[64] = {0};
    cr_expect_eq(tp_linear_open("int4:g=32", blob, sizeof blob - 1, 8, 8, "x.tpk: tensor w", &l, &e), TP_ERR_FORMAT);
    cr_expect(strstr(e.msg, "x.tpk: tensor w"), "%s", e.msg);
    cr_expect_neq(tp_linear_open("nosuch:g=1", blob, sizeof blob, 8, 8, "x.tpk: tensor w", &l, &e), TP_OK);
}

/* Several GEMVs by one x in one pool run (a layer's q/k/v, gate/up) give every output bit for bit
 * what one tp_qgemv_cpu per matrix gives: shared and separate x preparations (same and different
 * group sizes, int4 / int4r2 / nf4), awkward row counts, small and pool-sized work. */
Test(packed, qgemv_multi_equals_separate) {
    uint64_t seed = test_seed();
    tp_rng rng;
    tp_rng_seed(&rng, seed ^ 0x6d756c7469ULL);
    struct { tp_qkind kind; int64_t rows; int g; } set[][3] = {
        {{TP_Q_INT4, 384, 128}, {TP_Q_INT4, 128, 128}, {TP_Q_INT4, 128, 128}},
        {{TP_Q_INT4, 37, 32}, {TP_Q_INT4, 1030, 128}, {TP_Q_INT4, 5, 32}},
        {{TP_Q_INT4R2, 130, 16}, {TP_Q_NF4, 64, 64}, {TP_Q_INT4, 200, 8}},
        {{TP_Q_INT4, 1024, 64}, {TP_Q_INT4, 1024, 64}, {TP_Q_INT4, 1, 64}},
    };
    const int64_t colss[] = {384, 384, 192, 1024};
    for (size_t c = 0; c < sizeof set / sizeof set[0]; c++) {
        const int64_t cols = colss[c];
        tp_qmat q[3];
        const tp_qmat *qp[3];
        float *y[3], *ref[3];
        float *x = malloc((size_t)cols * sizeof *x);
        for (int64_t i = 0; i < cols; i++) x[i] = tp_rng_normal(&rng) * (i % 17 == 0 ? 8.0f : 1.0f);
        for (int k = 0; k < 3; k++) {
            int64_t rows = set[c][k].rows, n = rows * cols;
            cr_assert_eq(tp_qmat_alloc(&q[k], set[c][k].kind, rows, cols, set[c][k].g), TP_OK);
            float *W = malloc((size_t)n * sizeof *W);
            for (int64_t i = 0; i < n; i++) W[i] = tp_rng_normal(&rng) * 0.05f;
            tp_quantize_ref(&q[k], W, 0);
            free(W);
            qp[k] = &q[k];
            y[k] = malloc((size_t)rows * sizeof(float));
            ref[k] = malloc((size_t)rows * sizeof(float));
            for (int64_t r = 0; r < rows; r++) y[k][r] = NAN; /* poisoned */
            cr_assert_eq(tp_qgemv_cpu(&q[k], x, ref[k]), TP_OK);
        }
        for (int k = 1; k <= 3; k++) {
            cr_assert_eq(tp_qgemv_multi_cpu(qp, k, x, y), TP_OK);
            for (int j = 0; j < k; j++)
                cr_expect_eq(memcmp(y[j], ref[j], (size_t)q[j].rows * sizeof(float)), 0,
                             "case %zu: matrix %d of %d differs from its own GEMV (seed %llu)", c, j, k,
                             (unsigned long long)seed);
        }
        for (int k = 0; k < 3; k++) { tp_qmat_free(&q[k]); free(y[k]); free(ref[k]); }
        free(x);
    }
}

/* One decoded row through chains (pipeline/linear.c chain_mul1: every stage of every matrix one task
 * of one pool run, the products added in stage order) against each stage opened on its own and
 * multiplied one after the other, added in the same order: the same bits, for tp_linear_mul with and
 * without accumulation and for tp_linear_mul1_multi of chains beside a one-stage matrix. Awkward
 * shapes (rows not a multiple of the 64-row tasks, cols not of the groups), fresh random inputs. */
static tp_linear *open_spec(const char *spec, const float *W, int64_t rows, int64_t cols, uint8_t **blob) {
    tp_codec c;
    tp_err e = {{0}};
    cr_assert_eq(tp_codec_parse(spec, &c, &e), TP_OK, "%s: %s", spec, e.msg);
    const size_t n = tp_codec_blob_bytes(&c, rows, cols);
    *blob = malloc(n);
    cr_assert_eq(tp_codec_encode(&c, W, rows, cols, *blob, &e), TP_OK, "%s: %s", spec, e.msg);
    tp_linear *l;
    cr_assert_eq(tp_linear_open(spec, *blob, n, rows, cols, spec, &l, &e), TP_OK, "%s: %s", spec, e.msg);
    return l;
}
/* y = (acc ? y : 0) + the stages of chain (blob laid out stage after stage) one after the other */
static void stagewise(const char *const *stage_spec, int ns, const uint8_t *blob, int64_t rows, int64_t cols,
                      const float *x, float *y, int acc) {
    size_t off = 0;
    float *p = malloc((size_t)rows * sizeof *p);
    for (int s = 0; s < ns; s++) {
        tp_codec c;
        tp_err e = {{0}};
        cr_assert_eq(tp_codec_parse(stage_spec[s], &c, &e), TP_OK, "%s", e.msg);
        const size_t n = tp_codec_blob_bytes(&c, rows, cols);
        tp_linear *l;
        cr_assert_eq(tp_linear_open(stage_spec[s], blob + off, n, rows, cols, stage_spec[s], &l, &e), TP_OK, "%s", e.msg);
        cr_assert_eq(tp_linear_mul(l, x, 1, p, (int)rows, 0, &e), TP_OK, "%s", e.msg);
        for (int64_t r = 0; r < rows; r++) y[r] = s == 0 && !acc ? p[r] : y[r] + p[r];
        tp_linear_free(l);
        off += n;
    }
    free(p);
}
Test(packed, chain_decode_equals_stagewise) {
    uint64_t seed = test_seed();
    tp_rng rng;
    tp_rng_seed(&rng, seed ^ 0x636861696eULL);
    const char *chain = "lowrank:r=8+vq:d=4,k=16+int4:g=32";
    const char *stages[] = {"lowrank:r=8", "vq:d=4,k=16", "int4:g=32"};
    const char *chain2 = "vq:d=8,k=32+int4:g=32";
    const char *stages2[] = {"vq:d=8,k=32", "int4:g=32"};
    const int64_t rows[3] = {130, 67, 200}, cols = 100;
    float *W = malloc((size_t)rows[2] * cols * sizeof *W), *x = malloc((size_t)cols * sizeof *x);
    tp_linear *l[3];
    uint8_t *blob[3];
    float *y[3], *ref[3];
    for (int i = 0; i < 3; i++) {
        for (int64_t k = 0; k < rows[i] * cols; k++) W[k] = tp_rng_normal(&rng) * 0.05f;
        l[i] = open_spec(i == 1 ? chain2 : i == 2 ? "int4:g=32" : chain, W, rows[i], cols, &blob[i]);
        y[i] = malloc((size_t)rows[i] * sizeof(float));
        ref[i] = malloc((size_t)rows[i] * sizeof(float));
    }
    for (int64_t k = 0; k < cols; k++) x[k] = tp_rng_normal(&rng);
    tp_err e = {{0}};
    for (int acc = 0; acc <= 1; acc++) { /* one chain through tp_linear_mul */
        for (int64_t r = 0; r < rows[0]; r++) y[0][r] = ref[0][r] = acc ? (float)r * 0.25f : NAN;
        cr_assert_eq(tp_linear_mul(l[0], x, 1, y[0], (int)rows[0], acc, &e), TP_OK, "%s", e.msg);
        stagewise(stages, 3, blob[0], rows[0], cols, x, ref[0], acc);
        cr_expect_eq(memcmp(y[0], ref[0], (size_t)rows[0] * sizeof(float)), 0,
                     "%s, accumulate %d: the decode row differs from the stages one after the other (seed %llu)", chain,
                     acc, (unsigned long long)seed);
    }
    for (int i = 0; i < 3; i++)
        for (int64_t r = 0; r < rows[i]; r++) y[i][r] = NAN; /* poisoned */
    cr_assert_eq(tp_linear_mul1_multi(l, 3, x, y, &e), TP_OK, "%s", e.msg);
    stagewise(stages, 3, blob[0], rows[0], cols, x, ref[0], 0);
    stagewise(stages2, 2, blob[1], rows[1], cols, x, ref[1], 0);
    cr_assert_eq(tp_linear_mul(l[2], x, 1, ref[2], (int)rows[2], 0, &e), TP_OK, "%s", e.msg);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(memcmp(y[i], ref[i], (size_t)rows[i] * sizeof(float)), 0,
                     "tp_linear_mul1_multi: matrix %d of 3 differs from its stages one after the other (seed %llu)", i,
                     (unsigned long long)seed);
    for (int i = 0; i < 3; i++) { tp_linear_free(l[i]); free(blob[i]); free(y[i]); free(ref[i]); }
    free(W);
    free(x);
}
