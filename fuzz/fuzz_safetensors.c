/* A safetensors file (pipeline/safetensors.c): the header is validated (offsets inside the file,
 * sizes agreeing with dtype x shape, no overlap) before any tensor is read; every tensor of an
 * accepted file converts to fp32 inside its bounds. */
#include <stdint.h>

#include "fuzz/fuzz_files_common.h"
#include "pipeline/safetensors.h"
#include "tenpak/tenpak.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_put("model.safetensors", data, size);
    tp_st_set *s = NULL;
    tp_err e;
    if (tp_st_open_file(fuzz_path("model.safetensors"), &s, &e) != TP_OK) return 0;
    for (size_t i = 0; i < tp_st_count(s); i++) {
        const tp_st_tensor *t = tp_st_at(s, i);
        if (!tp_st_is_float(t->dtype) || t->numel > (1 << 20)) continue;
        float *f = malloc((size_t)(t->numel ? t->numel : 1) * sizeof *f);
        tp_st_to_f32(t, f);
        free(f);
    }
    uint8_t d[32];
    tp_st_sha256(s, d, &e);
    tp_st_close(s);
    return 0;
}
