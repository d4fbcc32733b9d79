/* Tokenizers against Hugging Face tokenizers' goldens: the whole WikiText-2 test file, the awkward
 * strings of goldens/ppl_ctx1024_stride512.json ("tokenization_cases", no special tokens), and the
 * ids -> text round trip. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/tokenizer.h"

static char *shared_path(const char *rel) {
    static char buf[4][1024];
    static int k;
    char *p = buf[k++ & 3];
    snprintf(p, 1024, "%s/%s", tp_shared_dir(), rel);
    return p;
}

static tp_tokenizer *load(const char *model) {
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s/tokenizer.json", model);
    tp_err e = {{0}};
    tp_tokenizer *t = NULL;
    tp_status rc = tp_tokenizer_load(shared_path(rel), &t, &e);
    cr_assert_eq(rc, TP_OK, "%s", e.msg);
    return t;
}

static void whole_file(const char *model) {
    tp_tokenizer *t = load(model);
    tp_err e = {{0}};
    size_t len, glen;
    char *text = tp_read_file(shared_path("datasets/wikitext-2-raw/wiki.test.raw"), &len, &e);
    cr_assert(text, "%s", e.msg);
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s/goldens/wiki.test.ids.u32", model);
    uint8_t *g = tp_read_file(shared_path(rel), &glen, &e);
    cr_assert(g, "%s", e.msg);
    int32_t *ids;
    size_t n;
    double t0 = tp_now();
    cr_assert_eq(tp_tokenizer_encode(t, text, len, 1, &ids, &n, &e), TP_OK, "%s", e.msg);
    double dt = tp_now() - t0;
    cr_log_info("%s: %zu tokens in %.2f s", model, n, dt);
    cr_expect_eq(n, glen / 4, "%s: %zu ids, golden has %zu", model, n, glen / 4);
    size_t bad = (size_t)-1;
    for (size_t i = 0; i < n && i < glen / 4; i++) {
        uint32_t gv = (uint32_t)g[4 * i] | (uint32_t)g[4 * i + 1] << 8 | (uint32_t)g[4 * i + 2] << 16 |
                      (uint32_t)g[4 * i + 3] << 24;
        if ((uint32_t)ids[i] != gv) { bad = i; break; }
    }
    cr_expect_eq(bad, (size_t)-1, "%s: first id mismatch at %zu", model, bad);
    char *back;
    size_t blen;
    cr_assert_eq(tp_tokenizer_decode(t, ids, n, 1, &back, &blen, &e), TP_OK, "%s", e.msg);
    cr_expect(blen == len && !memcmp(back, text, len), "%s: decode(encode(text)) != text", model);
    free(back); free(ids); free(g); free(text);
    tp_tokenizer_free(t);
}

Test(tokenizer, gpt2_whole_wiki_test, .timeout = 120) { whole_file("gpt2-mini"); }
Test(tokenizer, llama_whole_wiki_test, .timeout = 120) { whole_file("llama-mini"); }

static void cases(const char *model) {
    tp_tokenizer *t = load(model);
    tp_err e = {{0}};
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s/goldens/ppl_ctx1024_stride512.json", model);
    size_t len;
    char *js = tp_read_file(shared_path(rel), &len, &e);
    cr_assert(js, "%s", e.msg);
    cJSON *root = cJSON_Parse(js);
    cJSON *cs = cJSON_GetObjectItem(root, "tokenization_cases"), *c;
    cr_assert(cJSON_GetArraySize(cs) > 0);
    cJSON_ArrayForEach(c, cs) {
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        cJSON *want = cJSON_GetObjectItem(c, "ids");
        int32_t *ids;
        size_t n;
        cr_assert_eq(tp_tokenizer_encode(t, text, strlen(text), 0, &ids, &n, &e), TP_OK, "%s", e.msg);
        int ok = (int)n == cJSON_GetArraySize(want);
        for (size_t i = 0; ok && i < n; i++) ok = ids[i] == cJSON_GetArrayItem(want, (int)i)->valueint;
        cr_expect(ok, "%s: ids of \"%s\" differ (got %zu ids, want %d)", model, text, n, cJSON_GetArraySize(want));
        /* round trip without skipping specials: "<|endoftext|>" must come back too */
        char *back;
        size_t bl;
        cr_assert_eq(tp_tokenizer_decode(t, ids, n, 0, &back, &bl, &e), TP_OK, "%s", e.msg);
        cr_expect(bl == strlen(text) && !memcmp(back, text, bl), "%s: round trip of \"%s\" gave \"%s\"", model, text,
                  back);
        free(back);
        free(ids);
    }
    cJSON_Delete(root);
    free(js);
    tp_tokenizer_free(t);
}

Test(tokenizer, gpt2_cases) { cases("gpt2-mini"); }
Test(tokenizer, llama_cases) { cases("llama-mini"); }

Test(tokenizer, llama_bos_and_byte_fallback) {
    tp_tokenizer *t = load("llama-mini");
    const int32_t *pre;
    cr_assert_eq(tp_tokenizer_prefix(t, &pre), 1);
    cr_expect_eq(pre[0], 1);
    tp_err e = {{0}};
    int32_t *ids;
    size_t n;
    /* U+1F642 is not in the vocab: four byte tokens <0xF0><0x9F><0x99><0x82> = ids 243 162 156 133 */
    const char *s = "\xf0\x9f\x99\x82";
    cr_assert_eq(tp_tokenizer_encode(t, s, strlen(s), 1, &ids, &n, &e), TP_OK);
    cr_assert_eq(n, 6);
    int32_t want[6] = {1, 29871, 243, 162, 156, 133};
    for (int i = 0; i < 6; i++) cr_expect_eq(ids[i], want[i], "id %d", i);
    char *back;
    size_t bl;
    cr_assert_eq(tp_tokenizer_decode(t, ids, n, 1, &back, &bl, &e), TP_OK);
    cr_expect_str_eq(back, s);
    free(back);
    free(ids);
    tp_tokenizer_free(t);
}

Test(tokenizer, bytes_not_utf8) {
    /* invalid UTF-8 still tokenizes (bytes) and round-trips for the byte-level model */
    tp_tokenizer *t = load("gpt2-mini");
    tp_err e = {{0}};
    const char s[] = "ok \xff\xfe bad \xc3";
    int32_t *ids;
    size_t n;
    cr_assert_eq(tp_tokenizer_encode(t, s, sizeof s - 1, 1, &ids, &n, &e), TP_OK, "%s", e.msg);
    char *back;
    size_t bl;
    cr_assert_eq(tp_tokenizer_decode(t, ids, n, 1, &back, &bl, &e), TP_OK);
    cr_expect(bl == sizeof s - 1 && !memcmp(back, s, bl));
    free(back);
    free(ids);
    tp_tokenizer_free(t);
}
