/* GGUF: the writer and reader round trip, a tiny llama and gpt2 written by the writer
 * run as models (--model FILE.gguf), and files that lie in every way the reader checks, each
 * refused with one line naming the file and the problem. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline/gguf.h"
#include "pipeline/gguf_model.h"
#include "pipeline/model.h"
#include "tenpak/files.h"
#include "verify/test_common.h"

TestSuite(gguf, .init = test_tmp_init, .fini = test_tmp_fini);

/* ---- a tiny llama: d 8, 2 heads (1 KV), head 4, ffn 16, 1 layer, ctx 16 ---- */

enum { D = 8, H = 2, KVH = 1, HD = 4, FF = 16, CTX = 16 };
#define NPIECE 8
static const char *const PIECES[NPIECE] = {"\xe2\x96\x81", "a", "b", "c", "\xe2\x96\x81" "a", "ab", "\xe2\x96\x81" "ab", "abc"};

typedef struct lie {
    const char *arch;            /* general.architecture */
    int bad_block_count_type;    /* llama.block_count written as a string */
    int tokens_as_i32;           /* tokenizer.ggml.tokens as an array of i32 */
    int alignment_u64;           /* general.alignment as u64 */
    uint32_t alignment_meta;     /* general.alignment written (0: none), file laid out at 32 */
    int type_id;                 /* ggml type of output_norm.weight (0: F32) */
    int64_t norm_ne0;            /* ne[0] of output_norm.weight (0: D) */
    int dup_key, dup_tensor;
    int absurd_array;            /* an array claiming 2^61 elements */
} lie;

typedef struct tiny { float *w[16]; int nw; char *tok[300]; float score[300]; int32_t type[300]; int V; } tiny;

static float *rnd(tiny *t, size_t n, uint64_t *s) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) {
        *s = *s * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = (float)((int)(*s >> 40) % 2001 - 1000) / 2000.0f;
    }
    t->w[t->nw++] = p;
    return p;
}
static void tiny_free(tiny *t) {
    for (int i = 0; i < t->nw; i++) free(t->w[i]);
    for (int i = 0; i < t->V; i++) free(t->tok[i]);
}

static tp_status write_llama(const char *path, const lie *L, tiny *t, tp_err *e) {
    memset(t, 0, sizeof *t);
    uint64_t seed = 7;
    tp_gguf_w *w = tp_gguf_w_new(0);
    tp_gguf_w_str(w, "general.architecture", L && L->arch ? L->arch : "llama");
    if (L && L->alignment_u64) {
        uint64_t a = 32;
        tp_gguf_w_raw(w, "general.alignment", TP_GGUF_U64, &a, 8);
    } else if (L && L->alignment_meta) {
        tp_gguf_w_u32(w, "general.alignment", L->alignment_meta);
    }
    tp_gguf_w_u32(w, "llama.context_length", CTX);
    tp_gguf_w_u32(w, "llama.embedding_length", D);
    if (L && L->bad_block_count_type) tp_gguf_w_str(w, "llama.block_count", "1");
    else tp_gguf_w_u32(w, "llama.block_count", 1);
    tp_gguf_w_u32(w, "llama.feed_forward_length", FF);
    tp_gguf_w_u32(w, "llama.attention.head_count", H);
    tp_gguf_w_u32(w, "llama.attention.head_count_kv", KVH);
    tp_gguf_w_u32(w, "llama.rope.dimension_count", HD);
    tp_gguf_w_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    tp_gguf_w_f32(w, "llama.rope.freq_base", 10000.0f);
    if (L && L->dup_key) tp_gguf_w_u32(w, "llama.context_length", CTX);
    if (L && L->absurd_array) {
        uint8_t hdr[12] = {TP_GGUF_U32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20}; /* u32 x 2^61 */
        tp_gguf_w_raw(w, "general.lie", TP_GGUF_ARRAY, hdr, sizeof hdr);
    }
    /* vocabulary: <unk> <s> </s>, the 256 byte pieces, a few merged pieces (score: lower id first) */
    int V = 0;
    t->tok[V] = strdup("<unk>"); t->type[V++] = 2;
    t->tok[V] = strdup("<s>"); t->type[V++] = 3;
    t->tok[V] = strdup("</s>"); t->type[V++] = 3;
    for (int b = 0; b < 256; b++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", b);
        t->tok[V] = strdup(s);
        t->type[V++] = 6;
    }
    for (int i = 0; i < NPIECE; i++) {
        t->tok[V] = strdup(PIECES[i]);
        t->score[V] = (float)-i;
        t->type[V++] = 1;
    }
    t->V = V;
    tp_gguf_w_str(w, "tokenizer.ggml.model", "llama");
    if (L && L->tokens_as_i32) tp_gguf_w_arr_i32(w, "tokenizer.ggml.tokens", t->type, (uint64_t)V);
    else tp_gguf_w_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)t->tok, NULL, (uint64_t)V);
    tp_gguf_w_arr_f32(w, "tokenizer.ggml.scores", t->score, (uint64_t)V);
    tp_gguf_w_arr_i32(w, "tokenizer.ggml.token_type", t->type, (uint64_t)V);
    tp_gguf_w_u32(w, "tokenizer.ggml.bos_token_id", 1);
    tp_gguf_w_u32(w, "tokenizer.ggml.eos_token_id", 2);
    tp_gguf_w_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    tp_gguf_w_bool(w, "tokenizer.ggml.add_bos_token", 1);
    struct { const char *name; int64_t ne0, ne1; } T[] = {
        {"token_embd.weight", D, 0}, {"blk.0.attn_norm.weight", D, 1}, {"blk.0.attn_q.weight", D, H * HD},
        {"blk.0.attn_k.weight", D, KVH * HD}, {"blk.0.attn_v.weight", D, KVH * HD},
        {"blk.0.attn_output.weight", H * HD, D}, {"blk.0.ffn_norm.weight", D, 1}, {"blk.0.ffn_gate.weight", D, FF},
        {"blk.0.ffn_up.weight", D, FF}, {"blk.0.ffn_down.weight", FF, D}, {"output_norm.weight", D, 1}};
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
        int64_t ne[2] = {T[i].ne0, T[i].ne1 ? T[i].ne1 : V};
        int nd = ne[1] == 1 ? 1 : 2;
        size_t n = (size_t)(ne[0] * ne[1]);
        float *p = rnd(t, n, &seed);
        if (nd == 1)
            for (size_t j = 0; j < n; j++) p[j] = 1.0f + 0.1f * p[j];
        int type = 0;
        if (!strcmp(T[i].name, "output_norm.weight") && L) {
            if (L->type_id) type = L->type_id;
            if (L->norm_ne0) ne[0] = L->norm_ne0;
        }
        tp_gguf_w_tensor(w, T[i].name, type, nd, ne, p, n * 4);
        if (L && L->dup_tensor && i == 1) tp_gguf_w_tensor(w, T[i].name, type, nd, ne, p, n * 4);
    }
    tp_status s = tp_gguf_w_write(w, path, e);
    tp_gguf_w_free(w);
    return s;
}

static char *slurp(const char *path, size_t *n) {
    tp_err e;
    char *p = tp_read_file(path, n, &e);
    cr_assert(p, "%s", e.msg);
    return p;
}
static void spit(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    cr_assert_eq(fwrite(p, 1, n, f), n);
    fclose(f);
}

/* the reader (or with model = 1, the model loader) refuses path with a message naming it and
 * containing want */
static void refused(const char *path, const char *want, int model) {
    tp_err e = {{0}};
    tp_status s;
    if (model) {
        tp_model *m = NULL;
        s = tp_model_load(path, NULL, &m, &e);
        tp_model_free(m);
    } else {
        tp_gguf *g = NULL;
        s = tp_gguf_open(path, &g, &e);
        tp_gguf_close(g);
    }
    cr_expect_neq(s, TP_OK, "%s accepted (wanted '%s')", path, want);
    cr_expect(strstr(e.msg, path) != NULL, "message does not name the file: %s", e.msg);
    cr_expect(strstr(e.msg, want) != NULL, "message '%s' lacks '%s'", e.msg, want);
    cr_expect(strchr(e.msg, '\n') == NULL, "message is not one line: %s", e.msg);
}

Test(gguf, writer_reader_round_trip) {
    tiny t;
    tp_err e = {{0}};
    cr_assert_eq(write_llama(test_tmp_path("a.gguf"), NULL, &t, &e), TP_OK, "%s", e.msg);
    tp_gguf *g = NULL;
    cr_assert_eq(tp_gguf_open(test_tmp_path("a.gguf"), &g, &e), TP_OK, "%s", e.msg);
    cr_expect_eq(tp_gguf_version(g), 3);
    cr_expect_eq(tp_gguf_alignment(g), 32);
    cr_expect_eq(tp_gguf_num_tensors(g), 11);
    cr_expect_eq(tp_gguf_data_offset(g) % 32, 0);
    uint32_t u;
    double f;
    char *s = NULL;
    cr_expect_eq(tp_gguf_get_u32(g, "llama.block_count", &u, NULL, &e), TP_OK);
    cr_expect_eq(u, 1);
    cr_expect_eq(tp_gguf_get_f64(g, "llama.attention.layer_norm_rms_epsilon", &f, NULL, &e), TP_OK);
    cr_expect_eq(f, (double)1e-5f);
    cr_expect_eq(tp_gguf_get_str(g, "general.architecture", &s, NULL, &e), TP_OK);
    cr_expect_str_eq(s, "llama");
    free(s);
    const tp_gguf_kv *kv;
    cr_expect_eq(tp_gguf_get_arr(g, "tokenizer.ggml.tokens", TP_GGUF_STRING, &kv, NULL, &e), TP_OK);
    cr_expect_eq(kv->arr_n, (uint64_t)t.V);
    cr_expect(kv->strs[t.V - 1].len == 3 && !memcmp(kv->strs[t.V - 1].s, "abc", 3));
    cr_expect_eq(tp_gguf_get_arr(g, "tokenizer.ggml.scores", TP_GGUF_F32, &kv, NULL, &e), TP_OK);
    cr_expect_eq(tp_gguf_arr_f64(kv, (uint64_t)t.V - 1), -7.0);
    /* the wrong type for a known key names both types */
    cr_expect_neq(tp_gguf_get_u32(g, "general.architecture", &u, NULL, &e), TP_OK);
    cr_expect(strstr(e.msg, "'general.architecture' is string, expected an unsigned integer"), "%s", e.msg);
    const tp_gguf_tensor *q = tp_gguf_find_tensor(g, "blk.0.attn_q.weight");
    cr_assert(q);
    cr_expect(q->ndim == 2 && q->ne[0] == D && q->ne[1] == H * HD && q->type == 0 && q->nbytes == D * H * HD * 4);
    cr_expect_eq((uintptr_t)q->data % 32, 0);
    cr_expect_eq(memcmp(q->data, t.w[2], q->nbytes), 0);
    tp_gguf_close(g);
    tiny_free(&t);
}

/* the tiny model loads, un-permutes Q/K exactly (an override with the un-permuted rows changes
 * nothing) and its tokenizer merges by score and falls back to bytes */
Test(gguf, tiny_llama_model_and_tokenizer) {
    tiny t;
    tp_err e = {{0}};
    cr_assert_eq(write_llama(test_tmp_path("m.gguf"), NULL, &t, &e), TP_OK, "%s", e.msg);
    tp_model *m = NULL;
    cr_assert_eq(tp_model_load(test_tmp_path("m.gguf"), NULL, &m, &e), TP_OK, "%s", e.msg);
    const tp_model_config *c = tp_model_cfg(m);
    cr_expect(c->arch == TP_ARCH_LLAMA && c->n_layer == 1 && c->d_model == D && c->n_head == H && c->n_kv_head == KVH &&
              c->head_dim == HD && c->d_ff == FF && c->vocab == t.V && c->n_ctx == CTX && c->tie_embeddings &&
              c->bos_id == 1 && c->eos_id == 2);
    const tp_st_tensor *q = tp_st_find(tp_model_files(m), "model.layers.0.self_attn.q_proj.weight");
    cr_assert(q && q->shape[0] == H * HD && q->shape[1] == D);
    /* HF row h*hd + s*hd/2 + j is GGUF row h*hd + 2j + s */
    const float *hf = q->data, *gg = t.w[2];
    for (int h = 0; h < H; h++)
        for (int s = 0; s < 2; s++)
            for (int j = 0; j < HD / 2; j++)
                cr_expect_eq(memcmp(hf + (h * HD + s * HD / 2 + j) * D, gg + (h * HD + 2 * j + s) * D, D * 4), 0);
    int32_t ids[4] = {1, t.V - 1, 262, 3};
    float lg[4 * 300];
    cr_assert_eq(tp_model_forward(m, ids, 4, 0, 0, lg, &e), TP_OK, "%s", e.msg);
    for (int i = 0; i < 4 * t.V; i++) cr_assert(isfinite(lg[i]));
    tp_model_free(m);
    tp_tokenizer *tok = NULL;
    cr_assert_eq(tp_model_tokenizer_load(test_tmp_path("m.gguf"), &tok, &e), TP_OK, "%s", e.msg);
    int32_t *out = NULL;
    size_t n = 0;
    cr_assert_eq(tp_tokenizer_encode(tok, "ab abc\n", 7, 1, &out, &n, &e), TP_OK, "%s", e.msg);
    /* "▁ab▁abc\n": (▁,a) merges first (score -4), then (▁a,b) (-6); "ab" never forms, so no "abc":
     * BOS, "▁ab" (6 + 259) twice, "c" (262), byte 0x0A (3 + 10) */
    int32_t want[] = {1, 265, 265, 262, 13};
    cr_expect_eq(n, 5);
    for (size_t i = 0; i < n && i < 5; i++) cr_expect_eq(out[i], want[i], "id %zu: %d, want %d", i, out[i], want[i]);
    char *text = NULL;
    size_t tl;
    cr_assert_eq(tp_tokenizer_decode(tok, out, n, 1, &text, &tl, &e), TP_OK, "%s", e.msg);
    cr_expect_str_eq(text, "ab abc\n");
    free(text);
    free(out);
    tp_tokenizer_free(tok);
    tiny_free(&t);
}

Test(gguf, lying_files_are_refused) {
    tiny t;
    tp_err e = {{0}};
    struct { const char *name; lie L; const char *want; int model; } cases[] = {
        {"arch.gguf", {.arch = "falcon"}, "general.architecture 'falcon' is not supported", 1},
        {"blocktype.gguf", {.bad_block_count_type = 1}, "'llama.block_count' is string, expected an unsigned integer", 1},
        {"tokens.gguf", {.tokens_as_i32 = 1}, "'tokenizer.ggml.tokens' is an array of i32, expected an array of string", 1},
        {"align64.gguf", {.alignment_u64 = 1}, "'general.alignment' is u64, expected u32", 0},
        {"align3.gguf", {.alignment_meta = 3}, "general.alignment 3 is not a power of two", 0},
        {"misaligned.gguf", {.alignment_meta = 4096}, "is not a multiple of the alignment 4096", 0},
        {"type99.gguf", {.type_id = 99}, "ggml type 99 (unknown), not supported", 0},
        {"q2k.gguf", {.type_id = 10}, "ggml type 10 (Q2_K), not supported", 0},
        {"block.gguf", {.type_id = 2, .norm_ne0 = 40}, "rows of 40 elements, not a multiple of its block of 32", 0},
        {"past.gguf", {.norm_ne0 = 1 << 20}, "runs past the end of the file", 0},
        {"dupkey.gguf", {.dup_key = 1}, "metadata key 'llama.context_length' appears twice", 0},
        {"duptensor.gguf", {.dup_tensor = 1}, "tensor 'blk.0.attn_norm.weight' appears twice", 0},
        {"absurd.gguf", {.absurd_array = 1}, "'general.lie' claims 2305843009213693952 elements, more than", 0},
        {"quant.gguf", {.type_id = 2, .norm_ne0 = 32}, "is Q4_0: only matrices may be quantised", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert_eq(write_llama(test_tmp_path(cases[i].name), &cases[i].L, &t, &e), TP_OK, "%s", e.msg);
        refused(test_tmp_path(cases[i].name), cases[i].want, cases[i].model);
        tiny_free(&t);
    }
}

/* header lies patched into a valid file's bytes, and every truncation of it */
Test(gguf, header_lies_and_truncation) {
    tiny t;
    tp_err e = {{0}};
    cr_assert_eq(write_llama(test_tmp_path("ok.gguf"), NULL, &t, &e), TP_OK, "%s", e.msg);
    tiny_free(&t);
    size_t n;
    char *ok = slurp(test_tmp_path("ok.gguf"), &n);
    char *b = malloc(n);
    struct { size_t off; int width; uint64_t v; const char *want; } P[] = {
        {0, 4, 0x46554746, "not a GGUF file"},
        {4, 4, 1, "GGUF version 1 is not supported"},
        {4, 4, 0x03000000, "big-endian GGUF"},
        {8, 8, 1ull << 60, "header claims 1152921504606846976 tensors"},
        {16, 8, 1ull << 62, "header claims 4611686018427387904 metadata entries"},
        {24, 8, 1ull << 40, "truncated GGUF"}, /* the first key's length */
    };
    for (size_t i = 0; i < sizeof P / sizeof P[0]; i++) {
        memcpy(b, ok, n);
        for (int k = 0; k < P[i].width; k++) b[P[i].off + k] = (char)(P[i].v >> (8 * k));
        spit(test_tmp_path("p.gguf"), b, n);
        refused(test_tmp_path("p.gguf"), P[i].want, 0);
    }
    /* every cut inside the header and metadata, and a few inside the data */
    tp_gguf *g = NULL;
    cr_assert_eq(tp_gguf_open(test_tmp_path("ok.gguf"), &g, &e), TP_OK, "%s", e.msg);
    size_t data = (size_t)tp_gguf_data_offset(g);
    tp_gguf_close(g);
    for (size_t cut = 0; cut < n; cut += cut < data ? 1 : 97) {
        spit(test_tmp_path("cut.gguf"), ok, cut);
        tp_gguf *h = NULL;
        tp_status s = tp_gguf_open(test_tmp_path("cut.gguf"), &h, &e);
        tp_gguf_close(h);
        cr_assert_neq(s, TP_OK, "a file cut at %zu of %zu bytes was accepted", cut, n);
        cr_assert(strstr(e.msg, test_tmp_path("cut.gguf")) && !strchr(e.msg, '\n'), "cut %zu: %s", cut, e.msg);
    }
    free(b);
    free(ok);
}

/* the shared models written by datasets/make_gguf.py (the gguf package) when TENPAK_GGUF_DIR
 * holds them (verify/cli/gguf_cli.sh makes them and runs the model-level comparison) */

/* ---- export: int4:g=32 written as Q4_1 dequantises to tenpak's floats bit for bit ---- */

#include "pipeline/artifact.h"
#include "pipeline/artifact_model.h"
#include "pipeline/codec.h"
#include "pipeline/compress.h"
#include "pipeline/gguf_export.h"
#include "tenpak/ggml.h"

static void export_model(const char *model, int check_logits) {
    tp_err e = {{0}};
    char tpk[600], gg[600];
    snprintf(tpk, sizeof tpk, "%s", test_tmp_path("m.tpk"));
    snprintf(gg, sizeof gg, "%s", test_tmp_path("m.gguf"));
    tp_compress_opts o = {.model_dir = shared_model_dir(model), .codec = "int4:g=32", .quiet = 1};
    tp_compress_result cr;
    cr_assert_eq(tp_compress_model(&o, tpk, &cr, &e), TP_OK, "%s", e.msg);
    tp_compress_result_free(&cr);
    tp_gguf_export_result r;
    cr_assert_eq(tp_gguf_export(tpk, NULL, gg, 0, &r, &e), TP_OK, "%s", e.msg);
    cr_expect_gt(r.nq4_1, 0);
    tp_artifact a;
    tp_gguf *g = NULL;
    cr_assert_eq(tp_artifact_open(tpk, &a, &e), TP_OK, "%s", e.msg);
    cr_assert_eq(tp_gguf_open(gg, &g, &e), TP_OK, "%s", e.msg);
    int llama = !strcmp(model, "llama-mini"), checked = 0;
    const tp_model_config *c = NULL;
    tp_model *mg = NULL;
    cr_assert_eq(tp_model_load(gg, NULL, &mg, &e), TP_OK, "%s", e.msg);
    c = tp_model_cfg(mg);
    const cJSON *rec;
    cJSON_ArrayForEach(rec, a.tensors) {
        const char *name = tp_json_str(rec, "name"), *codec = tp_json_str(rec, "codec");
        if (!strcmp(codec, "raw")) continue;
        int64_t rows = (int64_t)cJSON_GetObjectItem(rec, "rows")->valuedouble;
        int64_t cols = (int64_t)cJSON_GetObjectItem(rec, "cols")->valuedouble;
        uint8_t *blob;
        size_t len;
        cr_assert_eq(tp_artifact_read_record(&a, rec, &blob, &len, &e), TP_OK, "%s", e.msg);
        tp_codec cd;
        cr_assert_eq(tp_codec_parse(codec, &cd, &e), TP_OK);
        float *D = calloc((size_t)(rows * cols), 4), *G = malloc((size_t)(rows * cols) * 4);
        cr_assert_eq(tp_codec_decode(&cd, blob, len, rows, cols, D, &e), TP_OK, "%s", e.msg);
        tp_free(blob);
        char gname[300];
        int flags;
        cr_assert(tp_gguf_name_of_hf(llama, name, gname, sizeof gname, &flags));
        const tp_gguf_tensor *t = tp_gguf_find_tensor(g, gname);
        cr_assert(t && t->type == TP_GGML_Q4_1 && t->ne[0] == cols && t->ne[1] == rows, "%s", gname);
        cr_assert_eq(tp_ggml_dequant_ref(TP_GGML_Q4_1, t->data, rows * cols, G, &e), TP_OK, "%s", e.msg);
        int heads = (flags & 1) ? c->n_head : c->n_kv_head, hd = c->head_dim;
        for (int64_t r0 = 0; r0 < rows; r0++) {
            int64_t gr = r0; /* HF row h*hd + s*hd/2 + j is GGUF row h*hd + 2j + s */
            if (flags & 3) {
                int64_t h = r0 / hd, k = r0 % hd, s = k / (hd / 2), j = k % (hd / 2);
                gr = h * hd + 2 * j + s;
                cr_assert(h < heads);
            }
            cr_assert_eq(memcmp(D + r0 * cols, G + gr * cols, (size_t)cols * 4), 0, "%s row %lld differs", name,
                         (long long)r0);
        }
        free(D);
        free(G);
        checked++;
    }
    cr_expect_eq(checked, r.nq4_1);
    tp_gguf_close(g);
    tp_artifact_close(&a);
    if (check_logits) {
        /* --model F.gguf runs the same model as the .tpk (packed both: Q4_1 kernels vs int4 kernels) */
        tp_model *mt = NULL;
        tp_artifact_model info;
        cr_assert_eq(tp_model_load_artifact(tpk, NULL, TP_EXEC_PACKED, NULL, &mt, &info, &e), TP_OK, "%s", e.msg);
        int n = 64, V = c->vocab;
        int32_t *ids = shared_golden_ids(model, n);
        float *l1 = malloc((size_t)n * V * 4), *l2 = malloc((size_t)n * V * 4);
        cr_assert_eq(tp_model_forward(mg, ids, n, 0, 0, l1, &e), TP_OK, "%s", e.msg);
        cr_assert_eq(tp_model_forward(mt, ids, n, 0, 0, l2, &e), TP_OK, "%s", e.msg);
        double num = 0, den = 0;
        for (size_t i = 0; i < (size_t)n * V; i++) {
            num += ((double)l1[i] - l2[i]) * ((double)l1[i] - l2[i]);
            den += (double)l2[i] * l2[i];
        }
        cr_log_info("%s: logits GGUF vs .tpk relative L2 %.3g", model, sqrt(num / den));
        cr_expect_lt(sqrt(num / den), 1e-5, "%s: logits GGUF vs .tpk relative L2 %g", model, sqrt(num / den));
        free(l1);
        free(l2);
        free(ids);
        tp_model_free(mt);
    }
    tp_model_free(mg);
}
Test(gguf, export_llama_int4_g32_as_q4_1) { export_model("llama-mini", 1); }
Test(gguf, export_gpt2_int4_g32_as_q4_1) { export_model("gpt2-mini", 1); }

/* a codec without an exact ggml type: refused naming the tensor and codec, nothing written;
 * --allow-f16 writes it decoded */
Test(gguf, export_refuses_other_codecs) {
    tp_err e = {{0}};
    char tpk[600];
    snprintf(tpk, sizeof tpk, "%s", test_tmp_path("n.tpk"));
    tp_compress_opts o = {.model_dir = shared_model_dir("llama-mini"), .codec = "nf4:g=64", .quiet = 1, .select = "mlp"};
    tp_compress_result cr;
    cr_assert_eq(tp_compress_model(&o, tpk, &cr, &e), TP_OK, "%s", e.msg);
    tp_compress_result_free(&cr);
    tp_gguf_export_result r;
    cr_expect_neq(tp_gguf_export(tpk, NULL, test_tmp_path("n.gguf"), 0, &r, &e), TP_OK);
    cr_expect(strstr(e.msg, "model.layers.0.mlp.down_proj.weight has codec nf4:g=64") && strstr(e.msg, "--allow-f16"), "%s", e.msg);
    cr_expect_neq(access(test_tmp_path("n.gguf"), F_OK), 0, "a refused export left a file");
    cr_assert_eq(tp_gguf_export(tpk, NULL, test_tmp_path("n.gguf"), 1, &r, &e), TP_OK, "%s", e.msg);
    cr_expect_eq(r.nf16_decoded, 18);
    tp_gguf *g = NULL;
    cr_assert_eq(tp_gguf_open(test_tmp_path("n.gguf"), &g, &e), TP_OK, "%s", e.msg);
    cr_expect_eq(tp_gguf_find_tensor(g, "blk.0.ffn_down.weight")->type, TP_GGML_F16);
    cr_expect_eq(tp_gguf_find_tensor(g, "blk.0.attn_q.weight")->type, TP_GGML_F16); /* raw, fp16 as stored */
    cr_expect_eq(tp_gguf_find_tensor(g, "blk.0.attn_norm.weight")->type, TP_GGML_F32);
    tp_gguf_close(g);
}
