/* Bad input to the pipeline loaders: every case is a small file written by the test into a fresh
 * temporary folder. Each must fail with a non-OK status and one line naming the file and the
 * problem. Also a tiny hand-made Llama checkpoint (F32/F16/BF16 tensors, untied head, q/k/v bias
 * as Qwen2 has) that loads and runs. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pipeline/compress.h"
#include "pipeline/config.h"
#include "pipeline/model.h"
#include "pipeline/safetensors.h"
#include "pipeline/tokenizer.h"
#include "verify/test_common.h"

TestSuite(badinput, .init = test_tmp_init, .fini = test_tmp_fini);

static void write_raw(const char *name, const void *d, size_t n) {
    FILE *f = fopen(test_tmp_path(name), "wb");
    cr_assert(f);
    cr_assert_eq(fwrite(d, 1, n, f), n);
    fclose(f);
}
static void write_text(const char *name, const char *s) { write_raw(name, s, strlen(s)); }

/* A safetensors file: declared header length hlen_decl (0: the real one), JSON header, then
 * data_len bytes of data (pattern bytes). */
static void write_st(const char *name, const char *hdr, uint64_t hlen_decl, size_t data_len) {
    size_t hl = strlen(hdr);
    uint64_t h = hlen_decl ? hlen_decl : hl;
    size_t n = 8 + hl + data_len;
    uint8_t *b = malloc(n);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(h >> (8 * i));
    memcpy(b + 8, hdr, hl);
    for (size_t i = 0; i < data_len; i++) b[8 + hl + i] = (uint8_t)(i * 37);
    write_raw(name, b, n);
    free(b);
}

static void expect_st_fail(const char *name, const char *needle) {
    tp_st_set *s = NULL;
    tp_err e = {{0}};
    tp_status rc = tp_st_open_file(test_tmp_path(name), &s, &e);
    cr_expect_neq(rc, TP_OK, "%s opened", name);
    cr_expect_null(s);
    cr_expect(strstr(e.msg, name), "message does not name the file: %s", e.msg);
    cr_expect(strstr(e.msg, needle), "message '%s' lacks '%s'", e.msg, needle);
    cr_expect_null(strchr(e.msg, '\n'), "message is not one line");
}

#define GOOD_HDR "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}," \
                 "\"b\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[8,16]}}"

Test(badinput, good_file_opens) {
    write_st("good.safetensors", GOOD_HDR, 0, 16);
    tp_st_set *s;
    tp_err e = {{0}};
    cr_assert_eq(tp_st_open_file(test_tmp_path("good.safetensors"), &s, &e), TP_OK, "%s", e.msg);
    cr_expect_eq(tp_st_count(s), 2);
    const tp_st_tensor *b = tp_st_find(s, "b");
    cr_assert(b);
    cr_expect_eq(b->dtype, TP_ST_F16);
    cr_expect_eq(b->numel, 4);
    cr_expect_null(tp_st_find(s, "c"));
    tp_st_close(s);
}

Test(badinput, truncated_file) {
    write_st("trunc.safetensors", GOOD_HDR, 0, 12);
    expect_st_fail("trunc.safetensors", "truncated");
}
Test(badinput, tiny_file) {
    write_raw("tiny.safetensors", "\x05\0\0", 3);
    expect_st_fail("tiny.safetensors", "truncated");
}
Test(badinput, header_longer_than_file) {
    write_st("hlen.safetensors", GOOD_HDR, 5000, 16);
    expect_st_fail("hlen.safetensors", "exceeds the file size");
}
Test(badinput, header_over_100mb) {
    write_st("huge.safetensors", GOOD_HDR, 200000000ull, 16);
    expect_st_fail("huge.safetensors", "100 MB");
}
Test(badinput, malformed_header_json) {
    write_st("json.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]", 0, 8);
    expect_st_fail("json.safetensors", "JSON");
}
Test(badinput, overlapping_offsets) {
    write_st("overlap.safetensors",
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
             0, 12);
    expect_st_fail("overlap.safetensors", "overlaps");
}
Test(badinput, size_not_shape_times_dtype) {
    write_st("size.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 0, 8);
    expect_st_fail("size.safetensors", "needs 12");
}
Test(badinput, offsets_past_end) {
    write_st("past.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 0, 8);
    expect_st_fail("past.safetensors", "past the end");
}
Test(badinput, hole_in_data) {
    write_st("hole.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 0, 16);
    expect_st_fail("hole.safetensors", "hole");
}
Test(badinput, unknown_dtype) {
    write_st("dtype.safetensors", "{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,1]}}", 0, 1);
    expect_st_fail("dtype.safetensors", "unknown dtype");
}
Test(badinput, negative_shape) {
    write_st("neg.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 0, 8);
    expect_st_fail("neg.safetensors", "shape");
}

static void expect_dir_fail(const char *needle_file, const char *needle) {
    tp_st_set *s = NULL;
    tp_err e = {{0}};
    cr_expect_neq(tp_model_files_open(test_tmpdir(), &s, &e), TP_OK);
    cr_expect_null(s);
    cr_expect(strstr(e.msg, needle_file), "message does not name %s: %s", needle_file, e.msg);
    cr_expect(strstr(e.msg, needle), "message '%s' lacks '%s'", e.msg, needle);
}

Test(badinput, missing_shard) {
    write_st("model-00001-of-00002.safetensors", GOOD_HDR, 0, 16);
    write_text("model.safetensors.index.json",
               "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\",\"b\":\"model-00001-of-00002.safetensors\","
               "\"c\":\"model-00002-of-00002.safetensors\"}}");
    expect_dir_fail("model-00002-of-00002.safetensors", "missing shard");
}
Test(badinput, index_names_absent_tensor) {
    write_st("model-00001-of-00001.safetensors", GOOD_HDR, 0, 16);
    write_text("model.safetensors.index.json",
               "{\"weight_map\":{\"a\":\"model-00001-of-00001.safetensors\",\"zz\":\"model-00001-of-00001.safetensors\"}}");
    expect_dir_fail("model.safetensors.index.json", "'zz' is not in shard");
}
Test(badinput, malformed_index) {
    write_text("model.safetensors.index.json", "{\"weight_map\": {\"a\": ");
    expect_dir_fail("model.safetensors.index.json", "JSON");
}
Test(badinput, index_path_escape) {
    write_text("model.safetensors.index.json", "{\"weight_map\":{\"a\":\"../etc/passwd\"}}");
    expect_dir_fail("model.safetensors.index.json", "plain file name");
}
Test(badinput, no_weights_at_all) { expect_dir_fail(test_tmpdir(), "no model.safetensors"); }

Test(badinput, single_file_model) {
    write_st("model.safetensors", GOOD_HDR, 0, 16);
    tp_st_set *s;
    tp_err e = {{0}};
    cr_assert_eq(tp_model_files_open(test_tmpdir(), &s, &e), TP_OK, "%s", e.msg);
    cr_expect_eq(tp_st_num_files(s), 1);
    tp_st_close(s);
}

static void expect_config_fail(const char *json, const char *needle) {
    write_text("config.json", json);
    tp_model_config c;
    tp_err e = {{0}};
    cr_expect_neq(tp_config_load(test_tmp_path("config.json"), &c, &e), TP_OK);
    cr_expect(strstr(e.msg, "config.json"), "message does not name the file: %s", e.msg);
    cr_expect(strstr(e.msg, needle), "message '%s' lacks '%s'", e.msg, needle);
}
Test(badinput, config_unknown_model_type) {
    expect_config_fail("{\"model_type\":\"bert\",\"hidden_size\":8}", "unknown model_type 'bert'");
}
Test(badinput, config_malformed) { expect_config_fail("{\"model_type\":\"llama\",", "JSON"); }
Test(badinput, config_missing_sizes) { expect_config_fail("{\"model_type\":\"llama\"}", "needs"); }
Test(badinput, config_unsupported_rope) {
    expect_config_fail("{\"model_type\":\"llama\",\"num_hidden_layers\":1,\"hidden_size\":8,\"num_attention_heads\":2,"
                       "\"intermediate_size\":16,\"vocab_size\":10,\"rope_scaling\":{\"type\":\"yarn\",\"factor\":4}}",
                       "RoPE type 'yarn'");
}

Test(badinput, config_rope_spellings) {
    tp_model_config c;
    tp_err e = {{0}};
    write_text("config.json", "{\"model_type\":\"mistral\",\"num_hidden_layers\":1,\"hidden_size\":8,"
                              "\"num_attention_heads\":2,\"intermediate_size\":16,\"vocab_size\":10,\"rope_theta\":500000}");
    cr_assert_eq(tp_config_load(test_tmp_path("config.json"), &c, &e), TP_OK, "%s", e.msg);
    cr_expect_eq(c.rope_theta, 500000.0);
    cr_expect_eq(c.n_kv_head, 2);
    write_text("config.json", "{\"model_type\":\"qwen2\",\"num_hidden_layers\":1,\"hidden_size\":8,"
                              "\"num_attention_heads\":2,\"num_key_value_heads\":1,\"intermediate_size\":16,"
                              "\"vocab_size\":10,\"rope_parameters\":{\"rope_theta\":1000000.0,\"rope_type\":\"default\"},"
                              "\"tie_word_embeddings\":true}");
    cr_assert_eq(tp_config_load(test_tmp_path("config.json"), &c, &e), TP_OK, "%s", e.msg);
    cr_expect_eq(c.rope_theta, 1000000.0);
    cr_expect_eq(c.tie_embeddings, 1);
    cr_expect_eq(c.head_dim, 4);
}

static void expect_tok_fail(const char *json, const char *needle) {
    write_text("tokenizer.json", json);
    tp_tokenizer *t = NULL;
    tp_err e = {{0}};
    cr_expect_neq(tp_tokenizer_load(test_tmp_path("tokenizer.json"), &t, &e), TP_OK);
    cr_expect_null(t);
    cr_expect(strstr(e.msg, "tokenizer.json"), "message does not name the file: %s", e.msg);
    cr_expect(strstr(e.msg, needle), "message '%s' lacks '%s'", e.msg, needle);
}
Test(badinput, tokenizer_wordpiece) {
    expect_tok_fail("{\"model\":{\"type\":\"WordPiece\",\"vocab\":{\"a\":0}}}", "'WordPiece' is not supported");
}
Test(badinput, tokenizer_unigram) {
    expect_tok_fail("{\"model\":{\"type\":\"Unigram\",\"vocab\":[[\"a\",0.0]]}}", "'Unigram' is not supported");
}
Test(badinput, tokenizer_malformed) { expect_tok_fail("{\"model\": [", "JSON"); }
Test(badinput, tokenizer_unknown_pretokenizer) {
    expect_tok_fail("{\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},"
                    "\"merges\":[]}}",
                    "'BertPreTokenizer' is not supported");
}
/* a TemplateProcessing id past int32's range (converting it was undefined behaviour) */
Test(badinput, tokenizer_template_id_out_of_range) {
    expect_tok_fail("{\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\"}},"
                    "{\"Sequence\":{\"id\":\"A\"}}],\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[5e30]}}},"
                    "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"<s>\":1},\"merges\":[]}}",
                    "special token '<s>' has a bad id");
}
Test(badinput, tokenizer_merge_outside_vocab) {
    expect_tok_fail("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a b\"]}}", "missing from the vocab");
}

/* A tiny SentencePiece-style tokenizer built by hand: merges, byte fallback, unk. */
Test(badinput, tiny_sentencepiece_tokenizer) {
    write_text("tokenizer.json",
               "{\"added_tokens\":[{\"id\":1,\"content\":\"<s>\",\"special\":true}],"
               "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\xe2\x96\x81\"},"
               "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xe2\x96\x81\"}]},"
               "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\"}},"
               "{\"Sequence\":{\"id\":\"A\"}}],\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[1]}}},"
               "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"\xe2\x96\x81\"},"
               "\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" \","
               "\"start\":1,\"stop\":0}]},"
               "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"byte_fallback\":true,\"fuse_unk\":true,"
               "\"vocab\":{\"<unk>\":0,\"<s>\":1,\"<0x21>\":2,\"\xe2\x96\x81\":3,\"a\":4,\"b\":5,\"ab\":6,\"\xe2\x96\x81" "ab\":7},"
               "\"merges\":[[\"a\",\"b\"],[\"\xe2\x96\x81\",\"ab\"]]}}");
    tp_tokenizer *t;
    tp_err e = {{0}};
    cr_assert_eq(tp_tokenizer_load(test_tmp_path("tokenizer.json"), &t, &e), TP_OK, "%s", e.msg);
    int32_t *ids;
    size_t n;
    const char *s = "ab ab!zz";
    cr_assert_eq(tp_tokenizer_encode(t, s, strlen(s), 1, &ids, &n, &e), TP_OK, "%s", e.msg);
    /* <s> ▁ab ▁ab <0x21> <unk>(zz fused) */
    int32_t want[] = {1, 7, 7, 2, 0};
    cr_assert_eq(n, 5);
    for (int i = 0; i < 5; i++) cr_expect_eq(ids[i], want[i], "id %d: %d", i, ids[i]);
    free(ids);
    tp_tokenizer_free(t);
}

/* Metaspace pre-tokenizer and decoder (newer Llama/Mistral conversions). */
Test(badinput, tiny_metaspace_tokenizer) {
    write_text("tokenizer.json",
               "{\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"\xe2\x96\x81\",\"prepend_scheme\":\"first\","
               "\"split\":true},\"decoder\":{\"type\":\"Metaspace\",\"replacement\":\"\xe2\x96\x81\","
               "\"prepend_scheme\":\"first\",\"split\":true},"
               "\"model\":{\"type\":\"BPE\",\"vocab\":{\"\xe2\x96\x81" "a\":0,\"b\":1,\"\xe2\x96\x81\":2,\"a\":3},"
               "\"merges\":[[\"\xe2\x96\x81\",\"a\"]]}}");
    tp_tokenizer *t;
    tp_err e = {{0}};
    cr_assert_eq(tp_tokenizer_load(test_tmp_path("tokenizer.json"), &t, &e), TP_OK, "%s", e.msg);
    int32_t *ids;
    size_t n;
    cr_assert_eq(tp_tokenizer_encode(t, "a b", 3, 1, &ids, &n, &e), TP_OK, "%s", e.msg);
    int32_t want[] = {0, 2, 1};
    cr_assert_eq(n, 3);
    for (int i = 0; i < 3; i++) cr_expect_eq(ids[i], want[i], "id %d: %d", i, ids[i]);
    char *back;
    size_t bl;
    cr_assert_eq(tp_tokenizer_decode(t, ids, n, 1, &back, &bl, &e), TP_OK);
    cr_expect_str_eq(back, "a b");
    free(back);
    free(ids);
    tp_tokenizer_free(t);
}

/* ---- a hand-made Llama-family checkpoint ---- */
typedef struct stw { char hdr[8192]; uint8_t data[65536]; size_t dn; } stw;
static void st_add(stw *w, const char *name, const char *dtype, int d0, int d1, float scale) {
    size_t es = !strcmp(dtype, "F32") ? 4 : 2, numel = (size_t)d0 * (d1 ? d1 : 1), b = w->dn;
    for (size_t i = 0; i < numel; i++) {
        float v = scale * sinf((float)(i * 7 + strlen(name) * 13) * 0.37f);
        uint8_t *p = w->data + w->dn + i * es;
        if (es == 4) memcpy(p, &v, 4);
        else {
            uint16_t h = !strcmp(dtype, "F16") ? tp_f32_to_f16(v) : tp_bf16_from_f32(v);
            memcpy(p, &h, 2);
        }
    }
    w->dn += numel * es;
    char shape[64];
    if (d1) snprintf(shape, sizeof shape, "[%d,%d]", d0, d1);
    else snprintf(shape, sizeof shape, "[%d]", d0);
    snprintf(w->hdr + strlen(w->hdr), sizeof w->hdr - strlen(w->hdr),
             "%s\"%s\":{\"dtype\":\"%s\",\"shape\":%s,\"data_offsets\":[%zu,%zu]}", w->hdr[1] ? "," : "", name, dtype,
             shape, b, w->dn);
}

static const char *tiny_extra; /* a tensor the config does not use, added when set */
static void write_tiny_llama(int with_head) {
    write_text("config.json", "{\"model_type\":\"qwen2\",\"num_hidden_layers\":1,\"hidden_size\":8,"
                              "\"num_attention_heads\":2,\"num_key_value_heads\":1,\"intermediate_size\":16,"
                              "\"vocab_size\":10,\"max_position_embeddings\":32,\"rms_norm_eps\":1e-6,"
                              "\"rope_theta\":10000.0,\"tie_word_embeddings\":false}");
    stw *w = calloc(1, sizeof *w);
    strcpy(w->hdr, "{");
    st_add(w, "model.embed_tokens.weight", "BF16", 10, 8, 1.0f);
    st_add(w, "model.layers.0.input_layernorm.weight", "F32", 8, 0, 1.0f);
    st_add(w, "model.layers.0.self_attn.q_proj.weight", "F16", 8, 8, 0.3f);
    st_add(w, "model.layers.0.self_attn.q_proj.bias", "F16", 8, 0, 0.1f);
    st_add(w, "model.layers.0.self_attn.k_proj.weight", "F16", 4, 8, 0.3f);
    st_add(w, "model.layers.0.self_attn.k_proj.bias", "F16", 4, 0, 0.1f);
    st_add(w, "model.layers.0.self_attn.v_proj.weight", "F16", 4, 8, 0.3f);
    st_add(w, "model.layers.0.self_attn.v_proj.bias", "F16", 4, 0, 0.1f);
    st_add(w, "model.layers.0.self_attn.o_proj.weight", "F16", 8, 8, 0.3f);
    st_add(w, "model.layers.0.post_attention_layernorm.weight", "F32", 8, 0, 1.0f);
    st_add(w, "model.layers.0.mlp.gate_proj.weight", "BF16", 16, 8, 0.3f);
    st_add(w, "model.layers.0.mlp.up_proj.weight", "BF16", 16, 8, 0.3f);
    st_add(w, "model.layers.0.mlp.down_proj.weight", "BF16", 8, 16, 0.3f);
    st_add(w, "model.norm.weight", "F32", 8, 0, 1.0f);
    if (with_head) st_add(w, "lm_head.weight", "F16", 10, 8, 0.5f);
    if (tiny_extra) st_add(w, tiny_extra, "F16", 8, 0, 0.5f);
    strcat(w->hdr, "}");
    write_st("model.safetensors", w->hdr, 0, 0);
    /* append the data after the header written by write_st (it wrote no data) */
    FILE *f = fopen(test_tmp_path("model.safetensors"), "ab");
    cr_assert(f);
    cr_assert_eq(fwrite(w->data, 1, w->dn, f), w->dn);
    fclose(f);
    free(w);
}

Test(badinput, tiny_llama_runs_and_caches) {
    write_tiny_llama(1);
    tp_model *m;
    tp_err e = {{0}};
    cr_assert_eq(tp_model_load(test_tmpdir(), NULL, &m, &e), TP_OK, "%s", e.msg);
    int32_t ids[6] = {1, 4, 2, 9, 0, 3};
    float all[6 * 10], one[10];
    cr_assert_eq(tp_model_forward(m, ids, 6, 0, 0, all, &e), TP_OK, "%s", e.msg);
    for (int i = 0; i < 60; i++) cr_assert(isfinite(all[i]));
    tp_model_reset(m);
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(tp_model_forward(m, ids + i, 1, i, 0, one, &e), TP_OK, "%s", e.msg);
        for (int j = 0; j < 10; j++)
            cr_expect_lt(fabsf(one[j] - all[i * 10 + j]), 1e-4f * (1 + fabsf(all[i * 10 + j])), "pos %d vocab %d", i, j);
    }
    tp_model_free(m);
}

Test(badinput, model_missing_tensor) {
    write_tiny_llama(0); /* untied but no lm_head.weight */
    tp_model *m = NULL;
    tp_err e = {{0}};
    cr_expect_neq(tp_model_load(test_tmpdir(), NULL, &m, &e), TP_OK);
    cr_expect_null(m);
    cr_expect(strstr(e.msg, "lm_head.weight"), "%s", e.msg);
}

/* Every tensor present is used or known: one the config does not use (q_norm of another
 * architecture, a layer beyond the config's count) is refused and named; a buffer transformers
 * ignores too (rotary_emb.inv_freq) loads. */
Test(badinput, model_unused_tensor) {
    const char *bad[] = {"model.layers.0.self_attn.q_norm.weight", "model.extra.weight"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tiny_extra = bad[i];
        write_tiny_llama(1);
        tp_model *m = NULL;
        tp_err e = {{0}};
        cr_expect_eq(tp_model_load(test_tmpdir(), NULL, &m, &e), TP_ERR_FORMAT, "%s was ignored", bad[i]);
        cr_expect_null(m);
        cr_expect(strstr(e.msg, "1 tensor in the safetensors that the qwen2 config.json does not use") &&
                  strstr(e.msg, bad[i]), "%s", e.msg);
        tp_model_free(m);
        /* compress refuses it before any work: no artifact the model could not load */
        tp_compress_opts o = {.model_dir = test_tmpdir(), .codec = "int4:g=8", .quiet = 1};
        tp_compress_result r;
        cr_expect_eq(tp_compress_model(&o, test_tmp_path("x.tpk"), &r, &e), TP_ERR_FORMAT, "compress took %s", bad[i]);
        cr_expect(strstr(e.msg, bad[i]), "%s", e.msg);
        cr_expect_neq(access(test_tmp_path("x.tpk"), F_OK), 0, "an artifact was written");
    }
    tiny_extra = "model.layers.0.self_attn.rotary_emb.inv_freq";
    write_tiny_llama(1);
    tiny_extra = NULL;
    tp_model *m = NULL;
    tp_err e = {{0}};
    cr_expect_eq(tp_model_load(test_tmpdir(), NULL, &m, &e), TP_OK, "%s", e.msg);
    tp_model_free(m);
}
