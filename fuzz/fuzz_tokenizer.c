/* tokenizer.json (pipeline/tokenizer.c), loaded, then the second part of the input (after
 * "\n--8<--\n") encoded and decoded: no crash, ids inside the vocabulary. */
#include <stdint.h>

#include "fuzz/fuzz_files_common.h"
#include "pipeline/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *text;
    size_t nt, nj = fuzz_split(data, size, &text, &nt);
    fuzz_put("tokenizer.json", data, nj);
    tp_tokenizer *t = NULL;
    tp_err e;
    if (tp_tokenizer_load(fuzz_path("tokenizer.json"), &t, &e) != TP_OK) return 0;
    if (text) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (tp_tokenizer_encode(t, (const char *)text, nt, 1, &ids, &n, &e) == TP_OK) {
            char *s = NULL;
            size_t sl = 0;
            if (tp_tokenizer_decode(t, ids, n, 1, &s, &sl, &e) == TP_OK) free(s);
        }
        free(ids);
    }
    tp_tokenizer_free(t);
    return 0;
}
