/* Codec spec strings (pipeline/codec.c tp_codec_parse) and what a .tpk record's spec leads to: the
 * input's first line is the spec; an accepted spec's canonical form must parse again to itself;
 * then the next two bytes pick a small shape (rows 1..64, cols 1..512) and the rest is a blob,
 * repeated to the length the spec needs for that shape, decoded to fp32 (tp_codec_decode) and
 * opened for packed products (tp_linear_open, one product and one row): never a crash, whatever
 * the bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/codec.h"
#include "pipeline/linear.h"
#include "tenpak/tenpak.h"

#define MAX_BLOB (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char spec[256];
    size_t sl = 0;
    while (sl < size && sl < sizeof spec - 1 && data[sl] != '\n') sl++;
    memcpy(spec, data, sl);
    spec[sl] = 0;
    if (memchr(spec, 0, sl)) return 0; /* a C string ends at its NUL: the CLI never passes one */
    tp_codec c;
    tp_err e;
    if (tp_codec_parse(spec, &c, &e) != TP_OK) return 0;
    tp_codec c2;
    char canon[sizeof c.spec];
    memcpy(canon, c.spec, sizeof canon);
    if (tp_codec_parse(canon, &c2, &e) != TP_OK || strcmp(c2.spec, canon)) abort(); /* canonical must round-trip */
    const uint8_t *p = data + sl + (sl < size);
    size_t n = size - (size_t)(p - data);
    if (n < 2) return 0;
    int64_t rows = 1 + p[0] % 64, cols = 1 + (int64_t)(p[1] % 64) * 8 + (p[0] >> 6);
    p += 2;
    n -= 2;
    if (tp_codec_check_shape(&c, rows, cols, "fuzz", &e) != TP_OK) return 0;
    size_t need = tp_codec_blob_bytes(&c, rows, cols);
    (void)tp_codec_theory_bpw(&c, rows, cols);
    if (need > MAX_BLOB) return 0;
    uint8_t *blob = malloc(need ? need : 1);
    for (size_t i = 0; i < need; i++) blob[i] = n ? p[i % n] : (uint8_t)i;
    float *W = malloc((size_t)(rows * cols) * sizeof *W);
    /* a wrong length is refused; the right one decodes (or is refused with a message) */
    if (need && tp_codec_decode(&c, blob, need - 1, rows, cols, W, &e) == TP_OK) abort();
    (void)tp_codec_decode(&c, blob, need, rows, cols, W, &e);
    tp_linear *l;
    if (tp_linear_open(c.spec, blob, need, rows, cols, "fuzz", &l, &e) == TP_OK) {
        float *X = calloc((size_t)cols * 2, sizeof *X), *Y = malloc((size_t)rows * 2 * sizeof *Y);
        for (int64_t i = 0; i < cols * 2; i++) X[i] = (float)(i % 7) - 3.0f;
        (void)tp_linear_mul(l, X, 2, Y, (int)rows, 0, &e);
        (void)tp_linear_row(l, rows - 1, W, &e);
        free(X);
        free(Y);
        tp_linear_free(l);
    }
    free(W);
    free(blob);
    return 0;
}
