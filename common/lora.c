/* LoRA adapters' storage (definitions in include/tenpak/lora.h): alloc / free and the bytes of
 * the fp16 factors. The products and merges are in reference/lora_ref.c and kernels/cpu. */
#include <string.h>

#include "tenpak/lora.h"

tp_status tp_lora_alloc(tp_lora *l, int64_t rows, int64_t cols, int r, float alpha) {
    memset(l, 0, sizeof *l);
    if (rows <= 0 || cols <= 0 || r <= 0) return TP_ERR_ARG;
    l->rows = rows;
    l->cols = cols;
    l->r = r;
    l->alpha = alpha;
    l->A = tp_alloc((size_t)r * (size_t)cols * sizeof(float));
    l->B = tp_alloc((size_t)rows * (size_t)r * sizeof(float));
    if (!l->A || !l->B) {
        tp_lora_free(l);
        return TP_ERR_NOMEM;
    }
    return TP_OK;
}

void tp_lora_free(tp_lora *l) {
    tp_free(l->A);
    tp_free(l->B);
    memset(l, 0, sizeof *l);
}

size_t tp_lora_bytes(int64_t rows, int64_t cols, int r) { return 2 * (size_t)r * (size_t)(rows + cols); }
