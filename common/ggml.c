/* ggml's block formats (layouts in include/tenpak/ggml.h): which types tenpak knows, their names,
 * block sizes and row bytes. Dequantisation and products: reference/ggml_ref.c and kernels/cpu. */
#include <stddef.h>

#include "tenpak/ggml.h"

typedef struct type_info {
    int id;
    const char *name;
    int64_t elems;
    size_t bytes;
} type_info;

static const type_info TYPES[] = {
    {TP_GGML_F32, "F32", 1, 4},     {TP_GGML_F16, "F16", 1, 2},      {TP_GGML_Q4_0, "Q4_0", 32, 18},
    {TP_GGML_Q4_1, "Q4_1", 32, 20}, {TP_GGML_Q5_0, "Q5_0", 32, 22},  {TP_GGML_Q5_1, "Q5_1", 32, 24},
    {TP_GGML_Q8_0, "Q8_0", 32, 34}, {TP_GGML_Q4_K, "Q4_K", 256, 144}, {TP_GGML_Q5_K, "Q5_K", 256, 176},
    {TP_GGML_Q6_K, "Q6_K", 256, 210}, {TP_GGML_BF16, "BF16", 1, 2},
};

static const type_info *info(int type) {
    for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++)
        if (TYPES[i].id == type) return &TYPES[i];
    return NULL;
}

int tp_ggml_type_known(int type) { return info(type) != NULL; }
const char *tp_ggml_type_name(int type) { return info(type) ? info(type)->name : NULL; }
int64_t tp_ggml_block_elems(int type) { return info(type) ? info(type)->elems : 0; }
size_t tp_ggml_block_bytes(int type) { return info(type) ? info(type)->bytes : 0; }
size_t tp_ggml_row_bytes(int type, int64_t cols) {
    const type_info *t = info(type);
    if (!t || cols <= 0 || cols % t->elems) return 0;
    return (size_t)(cols / t->elems) * t->bytes;
}
