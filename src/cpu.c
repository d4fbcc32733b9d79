/* CPU feature detection and the ISA level the cpu backend dispatches to. */
#include "tenpak/tenpak.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

static int isa_override = -1;

tp_isa tp_cpu_best_isa(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
        __builtin_cpu_supports("f16c")) {
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
            return __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512vbmi2")
                       ? TP_ISA_AVX512VBMI
                       : TP_ISA_AVX512;
        return TP_ISA_AVX2;
    }
#endif
    return TP_ISA_PORTABLE;
}

tp_isa tp_cpu_isa(void) {
    if (isa_override < 0) {
        /* TENPAK_ISA=portable|avx2|avx512|avx512vbmi caps the level (to test or time a lower path) */
        const char *e = getenv("TENPAK_ISA");
        tp_isa best = tp_cpu_best_isa();
        int want = (int)best;
        if (e && strcmp(e, "portable") == 0) want = TP_ISA_PORTABLE;
        else if (e && strcmp(e, "avx2") == 0) want = TP_ISA_AVX2;
        else if (e && strcmp(e, "avx512") == 0) want = TP_ISA_AVX512;
        isa_override = want > (int)best ? (int)best : want;
    }
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

int tp_num_threads(void) { return omp_get_max_threads(); }

static char cpu_model[256];
static double cpu_mhz;
static void read_cpuinfo(void) {
    if (cpu_model[0]) return;
    strcpy(cpu_model, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (!colon) continue;
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t') v++;
        v[strcspn(v, "\n")] = 0;
        if (!strncmp(line, "model name", 10) && !strcmp(cpu_model, "unknown"))
            snprintf(cpu_model, sizeof cpu_model, "%s", v);
        else if (!strncmp(line, "cpu MHz", 7) && cpu_mhz == 0)
            cpu_mhz = atof(v);
    }
    fclose(f);
}
const char *tp_cpu_model(void) { read_cpuinfo(); return cpu_model; }
double tp_cpu_mhz(void) { read_cpuinfo(); return cpu_mhz; }
