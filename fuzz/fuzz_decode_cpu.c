/* libFuzzer: the cpu block decoder (32-lane rANS with AVX-512, AVX2 and portable paths, the
 * AVX-512 one with either table lookup; range coder), differentially against the reference: both
 * accept or both reject, with the same bytes. */
#include "fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t len, n1, n2;
    int intact;
    uint8_t *blk = fuzz_block(data, size, &len, &intact), *o1, *o2;
    if (!blk) return 0;
    if (size > 6) { /* the ISA level (clamped to the cpu) and the AVX-512 lookups */
        tp_cpu_set_isa((tp_isa)(data[6] % 4));
        tp_ent_set_rans_lookup((tp_rans_lookup)(data[6] >> 2 & 1));
    }
    tp_status s1 = fuzz_decode(tp_ent_decode_cpu, blk, len, &o1, &n1);
    tp_status s2 = fuzz_decode(tp_ent_decode_ref, blk, len, &o2, &n2);
    if (intact && s1 != TP_OK) abort();
    if ((s1 == TP_OK) != (s2 == TP_OK)) abort();
    if (s1 == TP_OK && (n1 != n2 || memcmp(o1, o2, n1))) abort();
    free(o1);
    free(o2);
    free(blk);
    return 0;
}
