/* A GGUF file (pipeline/gguf.c, pipeline/gguf_model.c): the header, metadata and tensor infos are
 * validated (counts against the bytes left, types, alignment, tensors inside the file and not
 * overlapping) before anything is exposed; every tensor of an accepted file is read at both ends;
 * the typed getters, the model config, the tensors under Hugging Face names (permuted and
 * transposed copies) and the tokenizer built from tokenizer.ggml.* run on whatever was accepted. */
#include <stdint.h>
#include <string.h>

#include "fuzz/fuzz_files_common.h"
#include "pipeline/gguf.h"
#include "pipeline/gguf_model.h"
#include "tenpak/tenpak.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_put("model.gguf", data, size);
    const char *path = fuzz_path("model.gguf");
    tp_gguf *g = NULL;
    tp_err e;
    if (tp_gguf_open(path, &g, &e) != TP_OK) return 0;
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < tp_gguf_num_tensors(g); i++) {
        const tp_gguf_tensor *t = tp_gguf_tensor_at(g, i);
        if (t->nbytes) sink ^= t->data[0] ^ t->data[t->nbytes - 1];
        if (tp_gguf_find_tensor(g, t->name) != t) __builtin_trap();
    }
    for (size_t i = 0; i < tp_gguf_num_kv(g); i++) {
        const tp_gguf_kv *kv = tp_gguf_kv_at(g, i);
        uint32_t u;
        double f;
        int b, found;
        char *s = NULL;
        tp_gguf_get_u32(g, kv->key, &u, &found, &e);
        tp_gguf_get_f64(g, kv->key, &f, &found, &e);
        tp_gguf_get_bool(g, kv->key, &b, &found, &e);
        if (tp_gguf_get_str(g, kv->key, &s, &found, &e) == TP_OK) free(s);
        if (kv->type == TP_GGUF_ARRAY && kv->arr_n && kv->arr_type != TP_GGUF_STRING && kv->arr_type != TP_GGUF_ARRAY)
            f = tp_gguf_arr_f64(kv, kv->arr_n - 1);
        if (kv->type == TP_GGUF_ARRAY && kv->arr_type == TP_GGUF_STRING && kv->arr_n)
            sink ^= (uint8_t)kv->strs[kv->arr_n - 1].len;
        (void)f;
    }
    tp_model_config c;
    tp_gguf_config(g, &c, &e);
    tp_tokenizer *tok = NULL;
    if (tp_gguf_tokenizer(g, &tok, &e) == TP_OK) {
        int32_t *ids = NULL;
        size_t n = 0;
        static const char text[] = "Hello world, <s> caf\xc3\xa9 \xe2\x96\x81 123";
        if (tp_tokenizer_encode(tok, text, sizeof text - 1, 1, &ids, &n, &e) == TP_OK) free(ids);
        tp_tokenizer_free(tok);
    }
    tp_gguf_close(g);
    tp_st_set *st = NULL;
    if (tp_gguf_model_open(path, &c, &st, &e) == TP_OK) {
        for (size_t i = 0; i < tp_st_count(st); i++) {
            const tp_st_tensor *t = tp_st_at(st, i);
            const uint8_t *d = t->data;
            if (t->nbytes) sink ^= d[0] ^ d[t->nbytes - 1];
        }
        tp_st_close(st);
    }
    (void)sink;
    return 0;
}
