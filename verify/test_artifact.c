/* The codec pipeline: spec parsing, codec round trips, the .tpk artifact's validation against
 * damaged files, and compress/eval on a real shared checkpoint. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pipeline/artifact.h"
#include "pipeline/artifact_model.h"
#include "pipeline/codec.h"
#include "pipeline/compress.h"
#include "tenpak/quant.h"
#include "verify/test_common.h"

static int count_files(void) {
    DIR *d = opendir(test_tmpdir());
    struct dirent *x;
    int n = 0;
    while (d && (x = readdir(d))) n += x->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}
Test(codec, spec_parsing) {
    tp_codec c;
    tp_err e;
    cr_assert_eq(tp_codec_parse("int4:g=16", &c, &e), TP_OK, "%s", e.msg);
    cr_expect_str_eq(c.spec, "int4:g=16,refine=0");
    cr_expect_eq(tp_codec_theory_bpw(&c, 4096, 4096), 6.0);
    cr_assert_eq(tp_codec_parse("nf4", &c, &e), TP_OK, "%s", e.msg);
    cr_expect_str_eq(c.spec, "nf4:g=64");
    cr_assert_eq(tp_codec_parse("int4:g=128+int4r2:g=16", &c, &e), TP_OK, "%s", e.msg);
    cr_expect_eq(c.nstages, 2);
    const char *bad[] = {"", "int5", "int4:g=12", "int4:q=3", "int4:g=", "int4:g=16,refine=-1", "int4:g", "+", NULL};
    for (int i = 0; bad[i]; i++) {
        e.msg[0] = 0;
        cr_expect_neq(tp_codec_parse(bad[i], &c, &e), TP_OK, "'%s' was accepted", bad[i]);
        cr_expect_gt(strlen(e.msg), 0, "'%s': no message", bad[i]);
    }
}

/* A single-stage codec decodes to exactly the reference dequantisation; a residual chain is
 * more accurate than its first stage. Awkward shape: 37 x 203. */
Test(codec, roundtrip) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 21);
    const int64_t R = 37, C = 203;
    float *W = tp_alloc(R * C * 4), *D = tp_alloc(R * C * 4), *ref = tp_alloc(R * C * 4);
    for (int64_t i = 0; i < R * C; i++) W[i] = tp_rng_normal(&rng) * 0.05f;
    const char *specs[] = {"int4:g=32", "int4r2:g=16", "nf4:g=64"};
    const tp_qkind kinds[] = {TP_Q_INT4, TP_Q_INT4R2, TP_Q_NF4};
    const int gs[] = {32, 16, 64};
    tp_err e;
    for (int k = 0; k < 3; k++) {
        tp_codec c;
        cr_assert_eq(tp_codec_parse(specs[k], &c, &e), TP_OK);
        size_t nb = tp_codec_blob_bytes(&c, R, C);
        uint8_t *blob = tp_alloc(nb);
        cr_assert_eq(tp_codec_encode(&c, W, R, C, blob, &e), TP_OK, "%s", e.msg);
        cr_assert_eq(tp_codec_decode(&c, blob, nb, R, C, D, &e), TP_OK, "%s", e.msg);
        tp_qmat q;
        tp_qmat_alloc(&q, kinds[k], R, C, gs[k]);
        tp_quantize_ref(&q, W, 0);
        tp_dequantize_ref(&q, ref);
        cr_expect_eq(memcmp(D, ref, R * C * 4), 0, "%s: decode differs from the reference", specs[k]);
        cr_expect_neq(tp_codec_decode(&c, blob, nb - 1, R, C, D, &e), TP_OK, "short blob accepted");
        tp_qmat_free(&q);
        tp_free(blob);
    }
    tp_codec one, two;
    tp_codec_parse("int4:g=64", &one, &e);
    tp_codec_parse("int4:g=64+int4:g=64", &two, &e);
    double err[2];
    for (int k = 0; k < 2; k++) {
        const tp_codec *c = k ? &two : &one;
        size_t nb = tp_codec_blob_bytes(c, R, C);
        uint8_t *blob = tp_alloc(nb);
        tp_codec_encode(c, W, R, C, blob, &e);
        tp_codec_decode(c, blob, nb, R, C, D, &e);
        err[k] = 0;
        for (int64_t i = 0; i < R * C; i++) err[k] += ((double)D[i] - W[i]) * ((double)D[i] - W[i]);
        tp_free(blob);
    }
    cr_expect_lt(err[1], err[0] * 0.1, "residual stage: %g vs %g", err[1], err[0]);
    tp_free(W); tp_free(D); tp_free(ref);
}

static uint8_t *slurp(const char *p, size_t *n) {
    tp_err e;
    return tp_read_file(p, n, &e);
}
static void spit(const char *p, const uint8_t *d, size_t n) {
    FILE *f = fopen(p, "wb");
    fwrite(d, 1, n, f);
    fclose(f);
}

/* Every kind of damage is rejected with a message naming the file; nothing crashes. */
Test(artifact, damaged_files, .init = test_tmp_init, .fini = test_tmp_fini) {
    char path[512], bad[512];
    snprintf(path, sizeof path, "%s/m.tpk", test_tmpdir());
    snprintf(bad, sizeof bad, "%s/bad.tpk", test_tmpdir());
    tp_compress_opts o = {.model_dir = shared_model_dir("llama-mini"), .codec = "int4:g=128", .select = "mlp", .quiet = 1};
    tp_compress_result r;
    tp_err e;
    cr_assert_eq(tp_compress_model(&o, path, &r, &e), TP_OK, "%s", e.msg);
    size_t n;
    uint8_t *d = slurp(path, &n);
    cr_assert_eq(n, r.artifact_bytes);
    tp_artifact a;
    cr_assert_eq(tp_artifact_open(path, &a, &e), TP_OK, "%s", e.msg);
    tp_artifact_close(&a);
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 22);
    /* truncations, including inside the footer and the preamble */
    size_t cuts[] = {0, 3, 16, n / 2, n - 41, n - 40, n - 17, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        spit(bad, d, cuts[i]);
        e.msg[0] = 0;
        cr_expect_neq(tp_artifact_open(bad, &a, &e), TP_OK, "truncated to %zu accepted", cuts[i]);
        cr_expect(strstr(e.msg, "bad.tpk") != NULL, "message does not name the file: %s", e.msg);
    }
    /* single flipped bytes anywhere: payload, header, footer, magic */
    for (int i = 0; i < 40; i++) {
        size_t at = i == 0 ? 0 : i == 1 ? n - 1 : i == 2 ? n - 30 : tp_rng_below(&rng, (uint32_t)n);
        d[at] ^= 0x10;
        spit(bad, d, n);
        cr_expect_neq(tp_artifact_open(bad, &a, &e), TP_OK, "flip at %zu of %zu accepted", at, n);
        d[at] ^= 0x10;
    }
    /* random bytes */
    for (size_t i = 0; i < n; i++) d[i] = (uint8_t)tp_rng_next(&rng);
    spit(bad, d, n);
    cr_expect_neq(tp_artifact_open(bad, &a, &e), TP_OK);
    free(d);
}

/* A failed compress leaves nothing behind: bad spec, missing model, empty selection. */
Test(artifact, failures_leave_nothing, .init = test_tmp_init, .fini = test_tmp_fini) {
    char path[512];
    snprintf(path, sizeof path, "%s/x.tpk", test_tmpdir());
    tp_compress_result r;
    tp_err e;
    tp_compress_opts bad_spec = {.model_dir = shared_model_dir("llama-mini"), .codec = "int4:g=7", .quiet = 1};
    cr_expect_neq(tp_compress_model(&bad_spec, path, &r, &e), TP_OK);
    tp_compress_opts missing = {.model_dir = "/nonexistent-model", .codec = "int4", .quiet = 1};
    cr_expect_neq(tp_compress_model(&missing, path, &r, &e), TP_OK);
    tp_compress_opts none = {.model_dir = shared_model_dir("llama-mini"), .codec = "int4", .quiet = 1, .noverrides = 1,
                             .override_re = {"."}, .override_spec = {"none"}};
    cr_expect_neq(tp_compress_model(&none, path, &r, &e), TP_OK, "empty selection accepted");
    static const char *bad_ll[] = {"zstd:", "zstd:0", "zstd:23", "zstd:3x", "zst", "lz4"};
    for (size_t k = 0; k < sizeof bad_ll / sizeof *bad_ll; k++) {
        tp_compress_opts ll = {.model_dir = shared_model_dir("llama-mini"), .codec = "int4", .quiet = 1, .lossless = bad_ll[k]};
        cr_expect_eq(tp_compress_model(&ll, path, &r, &e), TP_ERR_ARG, "--lossless %s accepted", bad_ll[k]);
        cr_expect(strstr(e.msg, bad_ll[k]) != NULL, "%s", e.msg);
    }
    cr_expect_eq(tp_lossless_level("zstd"), 19);
    cr_expect_eq(tp_lossless_level("zstd:1"), 1);
    cr_expect_eq(tp_lossless_level("none"), 0);
    cr_expect_eq(count_files(), 0, "a failed compress left %d file(s)", count_files());
}

/* compress -> eval on a real checkpoint: sizes are the file's, the decoded model is close to the
 * original in perplexity, and a different checkpoint is refused. */
Test(artifact, compress_eval_gpt2, .init = test_tmp_init, .fini = test_tmp_fini, .timeout = 300) {
    char path[512], data[512];
    snprintf(path, sizeof path, "%s/g.tpk", test_tmpdir());
    snprintf(data, sizeof data, "%s/datasets/wikitext-2-raw/wiki.test.raw", tp_shared_dir());
    tp_compress_opts o = {.model_dir = shared_model_dir("gpt2-mini"), .codec = "int4r2:g=16", .lossless = "zstd:3", .quiet = 1};
    tp_compress_result r;
    tp_err e;
    cr_assert_eq(tp_compress_model(&o, path, &r, &e), TP_OK, "%s", e.msg);
    struct stat st;
    stat(path, &st);
    cr_expect_eq((uint64_t)st.st_size, r.artifact_bytes);
    const int nlin = 4 * shared_model_layers("gpt2-mini"); /* c_attn, attn c_proj, c_fc, mlp c_proj */
    cr_expect_eq(r.ncompressed, nlin, "gpt2-mini has %d linear weights, compressed %d", nlin, r.ncompressed);
    cr_expect_lt(r.rel_error, 0.03);
    tp_eval_opts eo = {.artifact = path, .data = data, .max_tokens = 300};
    tp_eval_result er;
    cr_assert_eq(tp_eval_artifact(&eo, &er, &e), TP_OK, "%s", e.msg);
    cr_expect_eq(er.size.artifact_bytes, r.artifact_bytes);
    cr_expect(isfinite(er.ppl.ppl) && er.ppl.ppl > 1);
    double delta = fabs(er.ppl.ppl - er.baseline.ppl) / er.baseline.ppl;
    cr_expect_lt(delta, 0.05, "int4r2 g16 moved ppl by %.2f%%", 100 * delta);
    cr_expect_gt(delta, 0.0, "decoded weights were not installed (ppl unchanged)");
    tp_eval_opts wrong = eo;
    wrong.model_dir = shared_model_dir("llama-mini");
    e.msg[0] = 0;
    cr_expect_neq(tp_eval_artifact(&wrong, &er, &e), TP_OK, "artifact accepted for another checkpoint");
    cr_expect(strstr(e.msg, "sha256") != NULL, "%s", e.msg);
}

/* One record's header entry changed by a lie (the file stays well formed: rewrite_artifact). */
typedef struct lie {
    const char *what, *tensor;
    void (*mut)(cJSON *);
} lie;
static void lie_in_record(cJSON *rec, void *u) {
    const lie *l = u;
    if (!strcmp(tp_json_str(rec, "name"), l->tensor)) l->mut(rec);
}
static void set_num(cJSON *r, const char *k, double v) { cJSON_ReplaceItemInObjectCaseSensitive(r, k, cJSON_CreateNumber(v)); }
static void set_str(cJSON *r, const char *k, const char *v) { cJSON_ReplaceItemInObjectCaseSensitive(r, k, cJSON_CreateString(v)); }
static void lie_shape(cJSON *r) {
    cJSON_ReplaceItemInObjectCaseSensitive(r, "shape", cJSON_CreateIntArray((const int[]){1024, 384}, 2));
    set_num(r, "rows", 1024);
    set_num(r, "cols", 384);
}
static void lie_rows(cJSON *r) { set_num(r, "rows", 383); }
static void lie_group(cJSON *r) { set_str(r, "codec", "int4:g=64,refine=0"); }
static void lie_method(cJSON *r) { set_str(r, "codec", "int4r2:g=128,refine=0"); }
static void lie_unknown(cJSON *r) { set_str(r, "codec", "zip:g=128"); }
static void lie_transposed(cJSON *r) { cJSON_ReplaceItemInObjectCaseSensitive(r, "transposed", cJSON_CreateTrue()); }
static void lie_name(cJSON *r) { set_str(r, "name", "model.layers.0.mlp.elsewhere.weight"); }
static void lie_dtype(cJSON *r) { set_str(r, "dtype", "F32"); }
static void lie_raw_shape(cJSON *r) { cJSON_ReplaceItemInObjectCaseSensitive(r, "shape", cJSON_CreateIntArray((const int[]){192, 2}, 2)); }

/* A well-formed .tpk whose header lies about a record (shape, rows, codec parameters, method,
 * layout, name, dtype): loading refuses it, packed and dequant, with one message naming the file
 * and the tensor. */
Test(artifact, lying_records, .init = test_tmp_init, .fini = test_tmp_fini, .timeout = 300) {
    char path[512], bad[512];
    snprintf(path, sizeof path, "%s/m.tpk", test_tmpdir());
    snprintf(bad, sizeof bad, "%s/lie.tpk", test_tmpdir());
    tp_compress_opts o = {.model_dir = shared_model_dir("llama-mini"), .codec = "int4:g=128", .select = "mlp", .quiet = 1};
    tp_compress_result r;
    tp_err e;
    cr_assert_eq(tp_compress_model(&o, path, &r, &e), TP_OK, "%s", e.msg);
    const char *down = "model.layers.0.mlp.down_proj.weight", *norm = "model.layers.0.input_layernorm.weight";
    const lie lies[] = {{"shape", down, lie_shape},         {"rows", down, lie_rows},
                {"group size", down, lie_group},    {"method", down, lie_method},
                {"unknown codec", down, lie_unknown}, {"transposed", down, lie_transposed},
                {"name", down, lie_name},           {"raw dtype", norm, lie_dtype},
                {"raw shape", norm, lie_raw_shape}};
    for (size_t i = 0; i < sizeof lies / sizeof lies[0]; i++) {
        rewrite_artifact(path, bad, lie_in_record, NULL, (void *)&lies[i]);
        for (int x = 0; x < 2; x++) {
            tp_model *m = NULL;
            tp_artifact_model info;
            e.msg[0] = 0;
            tp_status s = tp_model_load_artifact(bad, NULL, x ? TP_EXEC_DEQUANT : TP_EXEC_PACKED, NULL, &m, &info, &e);
            cr_expect_neq(s, TP_OK, "lying %s accepted (%s)", lies[i].what, tp_exec_name(x ? TP_EXEC_DEQUANT : TP_EXEC_PACKED));
            if (s == TP_OK) { tp_model_free(m); continue; }
            cr_expect(strstr(e.msg, "lie.tpk") != NULL, "lying %s: message does not name the file: %s", lies[i].what, e.msg);
            cr_expect(strstr(e.msg, lies[i].tensor) != NULL || strstr(e.msg, "elsewhere") != NULL,
                      "lying %s: message does not name the tensor: %s", lies[i].what, e.msg);
        }
        unlink(bad);
    }
    /* a checkpoint folder that is not there is named as such (not as a changed config) */
    tp_model *m = NULL;
    tp_artifact_model info;
    e.msg[0] = 0;
    cr_expect_neq(tp_model_load_artifact(path, "/nonexistent-model", TP_EXEC_PACKED, NULL, &m, &info, &e), TP_OK);
    cr_expect(strstr(e.msg, "/nonexistent-model") && strstr(e.msg, "no readable config.json"), "%s", e.msg);
}
