/* The ISA dispatch functions the entropy decoders call, for the fuzz build only: src/cpu.c asks
 * __builtin_cpu_supports("f16c"), which clang 14 does not know, and the rANS kernels need AVX2
 * only. Same semantics as src/cpu.c otherwise. */
#include "tenpak/tenpak.h"

static int isa_override = -1;

tp_isa tp_cpu_best_isa(void) {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2")) return TP_ISA_PORTABLE;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512vbmi2") ? TP_ISA_AVX512VBMI
                                                                                             : TP_ISA_AVX512;
    return TP_ISA_AVX2;
}
tp_isa tp_cpu_isa(void) {
    if (isa_override < 0) isa_override = (int)tp_cpu_best_isa();
    return (tp_isa)isa_override;
}
void tp_cpu_set_isa(tp_isa isa) {
    tp_isa best = tp_cpu_best_isa();
    isa_override = (int)(isa > best ? best : isa);
}
const char *tp_isa_name(tp_isa isa) {
    return isa == TP_ISA_AVX512VBMI ? "avx512vbmi"
           : isa == TP_ISA_AVX512   ? "avx512"
           : isa == TP_ISA_AVX2     ? "avx2"
                                    : "portable";
}
