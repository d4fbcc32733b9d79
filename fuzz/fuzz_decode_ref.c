/* libFuzzer: the reference block decoder (reference/rans_ref.c, reference/ac_ref.c). */
#include "fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t len, n;
    int intact;
    uint8_t *blk = fuzz_block(data, size, &len, &intact), *out;
    if (!blk) return 0;
    tp_status st = fuzz_decode(tp_ent_decode_ref, blk, len, &out, &n);
    if (intact && st != TP_OK) abort(); /* a block the encoder wrote must decode */
    free(out);
    free(blk);
    return 0;
}
