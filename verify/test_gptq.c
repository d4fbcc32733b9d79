/* GPTQ (include/tenpak/gptq.h): the cpu version against the reference on fresh random inputs
 * (seed printed, TENPAK_SEED=N replays), the reference's properties (H = I is int4 exactly; the
 * layer output error on the calibration activations is at most min/max int4's), bad input, the
 * codec (same blob as int4), and calibration's X^T X. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "pipeline/calib.h"
#include "pipeline/codec.h"
#include "pipeline/safetensors.h"
#include "tenpak/gptq.h"
#include "tenpak/registry.h"
#include "verify/test_common.h"

/* Activations like a transformer layer's input: k latent factors mixed into every column (so
 * columns are correlated), per-column scales spread over two decades, a few outlier channels with
 * 15x the scale and a non-zero mean, plus independent noise. X is n x cols. */
static void make_x(float *X, int64_t n, int64_t cols, tp_rng *rng) {
    int64_t k = cols / 4 + 1;
    float *A = malloc((size_t)(k * cols) * sizeof *A), *Z = malloc((size_t)k * sizeof *Z);
    float *sc = malloc((size_t)cols * sizeof *sc), *mu = malloc((size_t)cols * sizeof *mu);
    for (int64_t i = 0; i < k * cols; i++) A[i] = tp_rng_normal(rng);
    for (int64_t c = 0; c < cols; c++) {
        int outlier = tp_rng_below(rng, 16) == 0;
        sc[c] = (float)pow(10.0, tp_rng_uniform(rng) * 2 - 1) * (outlier ? 15.0f : 1.0f);
        mu[c] = outlier ? 2.0f * sc[c] : 0.0f;
    }
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < k; j++) Z[j] = tp_rng_normal(rng);
        for (int64_t c = 0; c < cols; c++) {
            double s = 0;
            for (int64_t j = 0; j < k; j++) s += Z[j] * A[j * cols + c];
            X[i * cols + c] = (float)((s / sqrt((double)k) + 0.3 * tp_rng_normal(rng)) * sc[c] + mu[c]);
        }
    }
    free(A); free(Z); free(sc); free(mu);
}

/* H = X^T X in double */
static double *make_h(const float *X, int64_t n, int64_t cols) {
    double *H = calloc((size_t)(cols * cols), sizeof *H);
    for (int64_t i = 0; i < n; i++)
        for (int64_t a = 0; a < cols; a++) {
            double xa = X[i * cols + a];
            for (int64_t b = 0; b < cols; b++) H[a * cols + b] += xa * X[i * cols + b];
        }
    return H;
}

static void make_w(float *W, int64_t n, tp_rng *rng) {
    for (int64_t i = 0; i < n; i++) W[i] = tp_rng_normal(rng) * 0.02f * (tp_rng_below(rng, 200) ? 1.0f : 8.0f);
}

/* every array of q set to garbage (codes 0xA5, scale/offset fp16 NaN) so an unwritten element shows */
static void poison(tp_qmat *q) {
    memset(q->codes, 0xA5, (size_t)(q->rows * q->code_stride));
    for (int64_t i = 0; i < q->rows * q->ngroups; i++) q->scale[i] = q->offset[i] = 0x7E00;
}

/* ||(W - D) X^T||_F: the layer's output error on the activations */
static double out_err(const float *W, const float *D, const float *X, int64_t rows, int64_t cols, int64_t n) {
    double s = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < n; i++) {
            double y = 0;
            for (int64_t c = 0; c < cols; c++) y += ((double)W[r * cols + c] - D[r * cols + c]) * X[i * cols + c];
            s += y * y;
        }
    return sqrt(s);
}

typedef struct shape { int64_t rows, cols; int g; } shape;

/* Awkward shapes: columns not a multiple of g (short last group), odd (padding nibble), more than
 * one lazy block (B = 128, or g when larger), one group larger than B. */
static const shape shapes[] = {{37, 200, 32}, {19, 203, 16}, {8, 300, 128}, {5, 129, 64}, {7, 333, 256}, {3, 37, 8}};

Test(gptq, cpu_matches_reference) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 0x67707471);
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const shape sh = shapes[si];
        int64_t n = sh.cols + 17;
        float *X = malloc((size_t)(n * sh.cols) * 4), *W = malloc((size_t)(sh.rows * sh.cols) * 4);
        float *Dr = malloc((size_t)(sh.rows * sh.cols) * 4), *Dc = malloc((size_t)(sh.rows * sh.cols) * 4);
        make_x(X, n, sh.cols, &rng);
        make_w(W, sh.rows * sh.cols, &rng);
        double *H = make_h(X, n, sh.cols);
        for (int k = 0; k < 4; k++) {
            int ao = k & 1, clip = k >> 1;
            tp_qmat qr, qc;
            tp_err e;
            cr_assert_eq(tp_qmat_alloc(&qr, TP_Q_INT4, sh.rows, sh.cols, sh.g), TP_OK);
            cr_assert_eq(tp_qmat_alloc(&qc, TP_Q_INT4, sh.rows, sh.cols, sh.g), TP_OK);
            poison(&qr);
            poison(&qc);
            cr_assert_eq(tp_gptq_ref(&qr, W, H, ao, 0.01, clip, &e), TP_OK, "%s", e.msg);
            cr_assert_eq(tp_gptq_cpu(&qc, W, H, ao, 0.01, clip, &e), TP_OK, "%s", e.msg);
            for (int64_t r = 0; r < sh.rows; r++) /* padding nibble of odd rows is 0 */
                if (sh.cols & 1) cr_expect_eq(qc.codes[r * qc.code_stride + qc.code_stride - 1] >> 4, 0);
            tp_dequantize_ref(&qr, Dr);
            tp_dequantize_ref(&qc, Dc);
            int64_t same = 0, tot = sh.rows * sh.cols;
            for (int64_t r = 0; r < sh.rows; r++)
                for (int64_t c = 0; c < sh.cols; c++) same += tp_qmat_code(&qr, r, c) == tp_qmat_code(&qc, r, c);
            double rel = tp_rel_l2_f32(Dc, Dr, (size_t)tot);
            if (getenv("TENPAK_TEST_VERBOSE"))
                fprintf(stderr, "gptq %lldx%lld g%d act_order=%d clip=%d: codes equal %lld/%lld, dequant rel-L2 %.3g\n",
                        (long long)sh.rows, (long long)sh.cols, sh.g, ao, clip, (long long)same, (long long)tot, rel);
            /* double precision in both; only the summation order of the updates differs (~1e-15),
             * so a code can differ only at a rounding tie, and then that row's later compensation
             * moves by one step's error: allow 1 in 1000 codes and rel-L2 1e-3 (a handful of codes
             * one step apart in a matrix of thousands), NaN (an unwritten scale) fails */
            cr_expect_geq((double)same, 0.999 * (double)tot, "%lldx%lld g%d act_order=%d clip=%d: %lld of %lld codes differ (seed %llu)",
                          (long long)sh.rows, (long long)sh.cols, sh.g, ao, clip, (long long)(tot - same), (long long)tot,
                          (unsigned long long)test_seed());
            cr_expect(rel <= 1e-3, "%lldx%lld g%d act_order=%d clip=%d: dequantised rel-L2 %g > 1e-3 (seed %llu)", (long long)sh.rows,
                      (long long)sh.cols, sh.g, ao, clip, rel, (unsigned long long)test_seed());
            tp_qmat_free(&qr);
            tp_qmat_free(&qc);
        }
        free(X); free(W); free(Dr); free(Dc); free(H);
    }
}

/* With H = I (no calibration) nothing is compensated: both equal tp_quantize_ref's int4 exactly. */
Test(gptq, identity_hessian_is_int4) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 0x1d);
    const int64_t R = 11, C = 203;
    float *W = malloc((size_t)(R * C) * 4);
    make_w(W, R * C, &rng);
    for (int k = 0; k < 2; k++) {
        tp_qmat a, b;
        tp_err e;
        cr_assert_eq(tp_qmat_alloc(&a, TP_Q_INT4, R, C, 32), TP_OK);
        cr_assert_eq(tp_qmat_alloc(&b, TP_Q_INT4, R, C, 32), TP_OK);
        tp_quantize_ref(&a, W, 0);
        poison(&b);
        cr_assert_eq((k ? tp_gptq_cpu : tp_gptq_ref)(&b, W, NULL, k, 0.01, 0, &e), TP_OK, "%s", e.msg);
        cr_expect(memcmp(a.codes, b.codes, (size_t)(R * a.code_stride)) == 0, "%s: codes differ from int4", k ? "cpu" : "ref");
        cr_expect(memcmp(a.scale, b.scale, (size_t)(R * a.ngroups) * 2) == 0, "scales differ from int4");
        cr_expect(memcmp(a.offset, b.offset, (size_t)(R * a.ngroups) * 2) == 0, "offsets differ from int4");
        tp_qmat_free(&a);
        tp_qmat_free(&b);
    }
    free(W);
}

/* clip=1 with H = I: no compensation, every group's (scale, offset) is tp_int4_clip_ref's with
 * unit weights and every code the nearest on that grid. */
Test(gptq, identity_hessian_clip_is_group_search) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 0xc11f);
    const int64_t R = 9, C = 203;
    const int g = 32;
    float *W = malloc((size_t)(R * C) * 4);
    double one[32];
    for (int i = 0; i < g; i++) one[i] = 1;
    make_w(W, R * C, &rng);
    for (int k = 0; k < 2; k++) {
        tp_qmat b;
        tp_err e;
        cr_assert_eq(tp_qmat_alloc(&b, TP_Q_INT4, R, C, g), TP_OK);
        poison(&b);
        cr_assert_eq((k ? tp_gptq_cpu : tp_gptq_ref)(&b, W, NULL, k, 0.01, 1, &e), TP_OK, "%s", e.msg);
        for (int64_t r = 0; r < R; r++)
            for (int64_t gi = 0; gi < b.ngroups; gi++) {
                int64_t c0 = gi * g;
                int gn = (int)(C - c0 < g ? C - c0 : g);
                uint16_t s16, o16;
                tp_int4_clip_ref(W + r * C + c0, one, gn, &s16, &o16);
                cr_expect_eq(b.scale[r * b.ngroups + gi], s16, "%s row %lld group %lld: scale", k ? "cpu" : "ref", (long long)r, (long long)gi);
                cr_expect_eq(b.offset[r * b.ngroups + gi], o16, "%s row %lld group %lld: offset", k ? "cpu" : "ref", (long long)r, (long long)gi);
                for (int i = 0; i < gn; i++)
                    cr_expect_eq(tp_qmat_code(&b, r, c0 + i), tp_int4_code_ref(W[r * C + c0 + i], tp_f16_to_f32(s16), tp_f16_to_f32(o16)));
            }
        tp_qmat_free(&b);
    }
    free(W);
}

/* The clip search's property (quant.h): on fresh random groups (normal, with outliers, one-sided,
 * constant, short) and random non-negative weights, its weighted squared error is at most min/max's
 * and its grid is a valid one (scale >= 0 and finite, offset finite; a zero scale only where it
 * loses nothing: a group whose values all equal an fp16 number, e.g. one element that happens to
 * be one, which min/max itself codes with scale 0 and its offset exactly, as the format allows;
 * CI drew one such group on 2026-12-06, seed 860938791651); on groups with an outlier it is
 * usually strictly smaller (that is what it is for). */
static double wsse(const float *w, const double *wt, int n, uint16_t s16, uint16_t o16) {
    float s = tp_f16_to_f32(s16), o = tp_f16_to_f32(o16);
    double e = 0;
    for (int i = 0; i < n; i++) {
        float qs = (float)tp_int4_code_ref(w[i], s, o) * s;
        float d = qs + o;
        e += wt[i] * ((double)d - w[i]) * ((double)d - w[i]);
    }
    return e;
}

Test(gptq, clip_search_at_most_minmax) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 0xc1195);
    float w[256];
    double wt[256];
    int strict = 0, outlier_groups = 0;
    for (int t = 0; t < 4000; t++) {
        int kind = t % 5, n = kind == 4 ? 1 + (int)tp_rng_below(&rng, 7) : 8 << tp_rng_below(&rng, 6);
        for (int i = 0; i < n; i++) {
            w[i] = tp_rng_normal(&rng) * 0.02f;
            if (kind == 1 && tp_rng_below(&rng, 16) == 0) w[i] *= 10; /* outliers */
            if (kind == 2) w[i] = fabsf(w[i]) + 0.05f;                /* one-sided */
            if (kind == 3) w[i] = 0.0125f;                            /* constant */
            wt[i] = t & 1 ? 1.0 : pow(10.0, tp_rng_uniform(&rng) * 4 - 2) * (tp_rng_below(&rng, 20) == 0 ? 0 : 1);
        }
        uint16_t sm, om, sc, oc;
        tp_int4_minmax_ref(w, n, &sm, &om);
        tp_int4_clip_ref(w, wt, n, &sc, &oc);
        float s = tp_f16_to_f32(sc), o = tp_f16_to_f32(oc);
        double em = wsse(w, wt, n, sm, om), ec = wsse(w, wt, n, sc, oc);
        int exact = 1; /* every value equals the offset: what a zero scale codes */
        for (int i = 0; i < n; i++) exact &= w[i] == o;
        cr_expect(s >= 0 && isfinite(s) && isfinite(o) && (s > 0 || exact), "trial %d: scale %g offset %g (seed %llu)", t, s,
                  o, (unsigned long long)test_seed());
        cr_expect_leq(ec, em, "trial %d (kind %d, n %d): clip search %g above min/max %g (seed %llu)", t, kind, n, ec, em,
                      (unsigned long long)test_seed());
        if (kind == 1 && n >= 32) {
            outlier_groups++;
            strict += ec < em;
        }
    }
    if (getenv("TENPAK_TEST_VERBOSE")) fprintf(stderr, "clip search strictly better on %d of %d outlier groups\n", strict, outlier_groups);
    cr_expect_geq(strict, outlier_groups / 2, "clip search improved only %d of %d groups with outliers", strict, outlier_groups);
}

/* The point of GPTQ: on the calibration activations, the layer's output error ||(W - W^) X^T|| is
 * at most that of plain min/max int4 at the same group size (same format, same bits). */
Test(gptq, output_error_at_most_minmax) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 0x0b5);
    const int64_t R = 48, C = 320, n = 640;
    float *X = malloc((size_t)(n * C) * 4), *W = malloc((size_t)(R * C) * 4), *D = malloc((size_t)(R * C) * 4);
    make_x(X, n, C, &rng);
    make_w(W, R * C, &rng);
    double *H = make_h(X, n, C);
    const int gs[] = {32, 128};
    for (int gi = 0; gi < 2; gi++) {
        tp_qmat q;
        tp_err e;
        cr_assert_eq(tp_qmat_alloc(&q, TP_Q_INT4, R, C, gs[gi]), TP_OK);
        tp_quantize_ref(&q, W, 0);
        tp_dequantize_ref(&q, D);
        double e_mm = out_err(W, D, X, R, C, n), e_noclip[4] = {0};
        for (int k = 0; k < 8; k++) { /* ref, cpu x act_order 0, 1 x clip 0, 1 */
            int ao = k & 1, clip = k >> 2;
            cr_assert_eq((k & 2 ? tp_gptq_cpu : tp_gptq_ref)(&q, W, H, ao, 0.01, clip, &e), TP_OK, "%s", e.msg);
            tp_dequantize_ref(&q, D);
            double eg = out_err(W, D, X, R, C, n);
            if (getenv("TENPAK_TEST_VERBOSE"))
                fprintf(stderr, "g%d %s act_order=%d clip=%d: ||(W-W^)X^T|| gptq %.5g, min/max %.5g (ratio %.3f)\n", gs[gi],
                        k & 2 ? "cpu" : "ref", ao, clip, eg, e_mm, eg / e_mm);
            cr_expect_leq(eg, e_mm, "g%d %s act_order=%d clip=%d: gptq output error %g above min/max %g (seed %llu)", gs[gi],
                          k & 2 ? "cpu" : "ref", ao, clip, eg, e_mm, (unsigned long long)test_seed());
            /* the clip search lowers the layer's output error too on this layer, whose weights
             * have outliers (measured 0.26 to 0.52 of clip=0's). Not a theorem: the compensation
             * follows the grid, and on gpt2-mini's real layers (below) it is not always lower */
            if (!clip) e_noclip[k & 3] = eg;
            else cr_expect_leq(eg, e_noclip[k & 3], "g%d %s act_order=%d: clip=1 output error %g above clip=0's %g (seed %llu)",
                               gs[gi], k & 2 ? "cpu" : "ref", ao, eg, e_noclip[k & 3], (unsigned long long)test_seed());
        }
        tp_qmat_free(&q);
    }
    free(X); free(W); free(D); free(H);
}

Test(gptq, bad_input) {
    const int64_t C = 40;
    float W[3 * 40];
    for (int i = 0; i < 3 * 40; i++) W[i] = (float)(i % 7) - 3.0f;
    double *H = calloc((size_t)(C * C), sizeof *H);
    for (int64_t j = 0; j < C; j++) H[j * C + j] = 1;
    tp_qmat q;
    tp_err e = {{0}};
    cr_assert_eq(tp_qmat_alloc(&q, TP_Q_INT4, 3, C, 8), TP_OK);
    tp_status (*fns[2])(tp_qmat *, const float *, const double *, int, double, int, tp_err *) = {tp_gptq_ref, tp_gptq_cpu};
    for (int k = 0; k < 2; k++) {
        const double bad_damp[] = {0, -0.1, 1.5, NAN};
        for (int i = 0; i < 4; i++) {
            cr_expect_eq(fns[k](&q, W, H, 0, bad_damp[i], 0, &e), TP_ERR_ARG);
            cr_expect(strstr(e.msg, "damp") != NULL, "%s", e.msg);
        }
        /* not a second moment: a 2x2 block [[1, 5], [5, 1]] has eigenvalue -4, beyond any damping */
        H[0 * C + 1] = H[1 * C + 0] = 5;
        cr_expect_eq(fns[k](&q, W, H, k, 0.01, k, &e), TP_ERR_ARG);
        cr_expect(strstr(e.msg, "not positive definite") != NULL, "%s", e.msg);
        H[0 * C + 1] = H[1 * C + 0] = 0;
        H[3 * C + 4] = H[4 * C + 3] = NAN;
        cr_expect_eq(fns[k](&q, W, H, 0, 0.01, 0, &e), TP_ERR_ARG);
        cr_expect(strstr(e.msg, "not finite") != NULL, "%s", e.msg);
        H[3 * C + 4] = H[4 * C + 3] = 0;
        tp_qmat nf;
        cr_assert_eq(tp_qmat_alloc(&nf, TP_Q_NF4, 3, C, 8), TP_OK);
        cr_expect_eq(fns[k](&nf, W, H, 0, 0.01, 0, &e), TP_ERR_ARG);
        const int bad_clip[] = {-1, 2};
        for (int i = 0; i < 2; i++) {
            cr_expect_eq(fns[k](&q, W, H, 0, 0.01, bad_clip[i], &e), TP_ERR_ARG);
            cr_expect(strstr(e.msg, "clip") != NULL, "%s", e.msg);
        }
        tp_qmat_free(&nf);
        /* a dead channel (zero row/column of H) is not an error: its weights become 0 */
        H[5 * C + 5] = 0;
        cr_expect_eq(fns[k](&q, W, H, 1, 0.01, 0, &e), TP_OK, "%s", e.msg);
        cr_expect_eq(fns[k](&q, W, H, 1, 0.01, 1, &e), TP_OK, "%s", e.msg);
        H[5 * C + 5] = 1;
    }
    tp_qmat_free(&q);
    free(H);
}

/* The spec: damp is real in (0, 1], act_order 0 or 1, the other keys stay integers. */
Test(gptq, codec_spec) {
    tp_codec c;
    tp_err e;
    cr_assert_eq(tp_codec_parse("gptq", &c, &e), TP_OK, "%s", e.msg);
    cr_expect_str_eq(c.spec, "gptq:g=128,act_order=1,damp=0.01");
    cr_assert_eq(tp_codec_parse("gptq:g=32,act_order=1,damp=0.1", &c, &e), TP_OK, "%s", e.msg);
    cr_expect_str_eq(c.spec, "gptq:g=32,act_order=1,damp=0.1");
    cr_expect(tp_codec_needs_calib(&c) && tp_codec_needs_xtx(&c));
    cr_assert_eq(tp_codec_parse("gptq:damp=1", &c, &e), TP_OK, "%s", e.msg);
    /* clip (added later): left out of the canonical spec at its default 0, so older specs keep
     * their spelling; written out when 1, and the canonical spec parses again to itself */
    cr_assert_eq(tp_codec_parse("gptq:g=64,clip=0", &c, &e), TP_OK, "%s", e.msg);
    cr_expect_str_eq(c.spec, "gptq:g=64,act_order=1,damp=0.01");
    cr_expect_eq(tp_codec_param_get(&c.stages[0], "clip"), 0);
    cr_assert_eq(tp_codec_parse("gptq:g=64,clip=1", &c, &e), TP_OK, "%s", e.msg);
    cr_expect_str_eq(c.spec, "gptq:g=64,act_order=1,damp=0.01,clip=1");
    cr_expect_eq(tp_codec_param_get(&c.stages[0], "clip"), 1);
    tp_codec c2;
    cr_assert_eq(tp_codec_parse(c.spec, &c2, &e), TP_OK, "%s", e.msg);
    cr_expect_str_eq(c2.spec, c.spec);
    cr_assert_eq(tp_codec_parse("gptq:clip=1,g=32", &c, &e), TP_OK, "%s", e.msg);
    cr_expect_str_eq(c.spec, "gptq:g=32,act_order=1,damp=0.01,clip=1");
    const char *bad[] = {"gptq:damp=0", "gptq:damp=1.5", "gptq:damp=-0.1", "gptq:damp=1e-3", "gptq:act_order=2",
                         "gptq:act_order=0.5", "gptq:g=100", "gptq:g=128.5", "int4:g=0.5", "awq:search=0.5",
                         "gptq:clip=2", "gptq:clip=0.5", "int4:clip=1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_neq(tp_codec_parse(bad[i], &c, &e), TP_OK, "'%s' accepted", bad[i]);
    cr_assert_eq(tp_codec_parse("int4:g=64", &c, &e), TP_OK);
    cr_expect(!tp_codec_needs_xtx(&c));
}

/* The codec's blob is int4:g=G's: same length, decodes to the same matrix through the int4 codec,
 * and equals the cpu version's packed image. */
Test(gptq, codec_blob_is_int4) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 0xb10b);
    const int64_t R = 21, C = 150, n = 300;
    float *X = malloc((size_t)(n * C) * 4), *W = malloc((size_t)(R * C) * 4);
    float *D1 = malloc((size_t)(R * C) * 4), *D2 = malloc((size_t)(R * C) * 4);
    make_x(X, n, C, &rng);
    make_w(W, R * C, &rng);
    double *H = make_h(X, n, C);
    tp_codec g, i4;
    tp_err e;
    cr_assert_eq(tp_codec_parse("gptq:g=32,act_order=1,clip=1", &g, &e), TP_OK, "%s", e.msg);
    cr_assert_eq(tp_codec_parse("int4:g=32", &i4, &e), TP_OK, "%s", e.msg);
    tp_codec_set_calib_xtx(&g, H, n);
    size_t nb = tp_codec_blob_bytes(&g, R, C);
    cr_assert_eq(nb, tp_codec_blob_bytes(&i4, R, C));
    uint8_t *blob = malloc(nb), *img = malloc(nb);
    memset(blob, 0xA5, nb);
    cr_assert_eq(tp_codec_encode(&g, W, R, C, blob, &e), TP_OK, "%s", e.msg);
    tp_qmat q;
    cr_assert_eq(tp_qmat_alloc(&q, TP_Q_INT4, R, C, 32), TP_OK);
    cr_assert_eq(tp_gptq_cpu(&q, W, H, 1, 0.01, 1, &e), TP_OK, "%s", e.msg);
    tp_qmat_pack(&q, img);
    cr_expect(memcmp(blob, img, nb) == 0, "the codec's blob is not tp_gptq_cpu's int4 image");
    cr_assert_eq(tp_codec_decode(&g, blob, nb, R, C, D1, &e), TP_OK, "%s", e.msg);
    cr_assert_eq(tp_codec_decode(&i4, blob, nb, R, C, D2, &e), TP_OK, "%s", e.msg);
    cr_expect(memcmp(D1, D2, (size_t)(R * C) * 4) == 0, "gptq and int4 decode the blob differently");
    tp_qmat_free(&q);
    free(X); free(W); free(D1); free(D2); free(H); free(blob); free(img);
}

/* Calibration's X^T X (TP_CALIB_XTX): symmetric, its diagonal / rows is sqmean, absent without the
 * flag; and on gpt2-mini's real layers gptq's output error on those activations (tr(dW H dW^T))
 * is at most int4's at g=128. */
Test(gptq, calib_xtx_and_real_layers, .timeout = 300) {
    tp_calib *cal, *plain;
    tp_err e;
    const char *dir = shared_model_dir("gpt2-mini");
    cr_assert_eq(tp_calib_collect_ex(dir, NULL, 512, TP_CALIB_XTX, &cal, &e), TP_OK, "%s", e.msg);
    cr_assert_eq(tp_calib_collect(dir, NULL, 512, &plain, &e), TP_OK, "%s", e.msg);
    tp_calib *none;
    cr_expect_eq(tp_calib_collect_ex(dir, NULL, 512, 2, &none, &e), TP_ERR_ARG, "unknown flag accepted");
    cr_expect_null(none);
    tp_st_set *set;
    cr_assert_eq(tp_model_files_open(dir, &set, &e), TP_OK, "%s", e.msg);
    int nt = 0, wins = 0;
    for (size_t i = 0; i < tp_st_count(set); i++) {
        const tp_st_tensor *t = tp_st_at(set, i);
        if (t->ndim != 2 || !strstr(t->name, "h.1.")) continue; /* one block: attn, proj, fc, proj */
        int64_t C = t->shape[0], R = t->shape[1]; /* Conv1D [in, out] */
        int64_t ns = -1;
        const double *H = tp_calib_xtx(cal, t->name, C, &ns);
        const float *sq = tp_calib_sqmean(cal, t->name, C);
        cr_assert_not_null(H, "no X^T X for %s", t->name);
        cr_expect_eq(ns, 512);
        cr_expect_null(tp_calib_xtx(plain, t->name, C, NULL), "X^T X collected without the flag");
        cr_expect_null(tp_calib_xtx(cal, t->name, C + 1, NULL));
        for (int64_t a = 0; a < C; a++) {
            cr_expect(fabs(H[a * C + a] / (double)ns - sq[a]) <= 1e-5 * fabs((double)sq[a]) + 1e-30,
                      "%s: xtx[%lld][%lld]/rows %g vs sqmean %g", t->name, (long long)a, (long long)a, H[a * C + a] / ns, sq[a]);
            for (int64_t b = 0; b < a; b += 7) cr_expect_eq(H[a * C + b], H[b * C + a]);
        }
        float *raw = malloc((size_t)t->numel * 4), *W = malloc((size_t)t->numel * 4), *D = malloc((size_t)t->numel * 4);
        double *dW = malloc((size_t)t->numel * 8), *dWH = malloc((size_t)t->numel * 8);
        tp_st_to_f32(t, raw);
        for (int64_t r = 0; r < R; r++)
            for (int64_t c = 0; c < C; c++) W[r * C + c] = raw[c * R + r];
        double err[5];
        for (int k = 0; k < 5; k++) { /* int4, gptq, gptq clip=1, both again with act_order=1 */
            tp_qmat q;
            cr_assert_eq(tp_qmat_alloc(&q, TP_Q_INT4, R, C, 128), TP_OK);
            if (k) cr_assert_eq(tp_gptq_cpu(&q, W, H, k > 2, 0.01, (k - 1) & 1, &e), TP_OK, "%s", e.msg);
            else tp_quantize_ref(&q, W, 0);
            tp_dequantize_ref(&q, D);
            /* sum_r dW_r^T H dW_r = ||(W - W^) X^T||^2 */
            for (int64_t j = 0; j < R * C; j++) dW[j] = (double)W[j] - D[j];
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)R, (int)C, (int)C, 1.0, dW, (int)C, H, (int)C, 0.0,
                        dWH, (int)C);
            double s = 0;
            for (int64_t j = 0; j < R * C; j++) s += dW[j] * dWH[j];
            err[k] = sqrt(s);
            tp_qmat_free(&q);
        }
        fprintf(stderr, "gpt2-mini %-28s ||(W-W^)X^T|| on 512 calibration tokens: int4 g128 %.5g; gptq g128 act_order=0 "
                "clip=0 %.3f clip=1 %.3f, act_order=1 clip=0 %.3f clip=1 %.3f of it\n", t->name, err[0], err[1] / err[0],
                err[2] / err[0], err[3] / err[0], err[4] / err[0]);
        for (int k = 1; k < 5; k++)
            cr_expect_leq(err[k], err[0], "%s: gptq (act_order=%d clip=%d) %g above int4 %g", t->name, k > 2, (k - 1) & 1, err[k], err[0]);
        wins += err[1] < err[0];
        nt++;
        free(raw); free(W); free(D); free(dW); free(dWH);
    }
    cr_expect_eq(nt, 4);
    cr_expect_eq(wins, nt);
    tp_st_close(set);
    tp_calib_free(cal);
    tp_calib_free(plain);
}
