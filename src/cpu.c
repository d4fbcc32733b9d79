/* CPU feature detection and the ISA level the cpu backend dispatches to. */
#include "tenpak/tenpak.h"

#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

static int isa_override = -1;

#if defined(__x86_64__) || defined(__i386__)
/* F16C from CPUID leaf 1 (ECX bit 29): clang 14's __builtin_cpu_supports does not know "f16c".
 * The OS's saving of the AVX state is part of __builtin_cpu_supports("avx2"), asked first. */
static int has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}
#endif

tp_isa tp_cpu_best_isa(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c()) {
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
            return __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512vbmi2") &&
                           __builtin_cpu_supports("avx512vnni")
                       ? TP_ISA_AVX512VBMI
                       : TP_ISA_AVX512;
        return TP_ISA_AVX2;
    }
#endif
    return TP_ISA_PORTABLE;
}

int tp_cpu_is_intel(void) {
    static int v = -1;
    if (v < 0) {
        unsigned a, b, c, d;
        v = __get_cpuid(0, &a, &b, &c, &d) && b == 0x756e6547u && d == 0x49656e69u && c == 0x6c65746eu; /* GenuineIntel */
    }
    return v;
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

/* AMX with bf16 (Sapphire Rapids and later): CPUID leaf 7 EDX bits 22 (AMX-BF16) and 24
 * (AMX-TILE), the OS saving the tile state (XCR0 bits 17 and 18) and the process's permission to
 * use it (Linux: arch_prctl ARCH_REQ_XCOMP_PERM for XTILEDATA, once; it holds for every thread). */
static int amx_hw = -1;
static pthread_once_t amx_once = PTHREAD_ONCE_INIT;
static void amx_probe(void) {
    amx_hw = 0;
    const char *e = getenv("TENPAK_AMX");
    if (e && strcmp(e, "0") == 0) return; /* off: not even the permission is asked for */
#if defined(__linux__) && defined(__x86_64__)
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 22)) || !(d & (1u << 24))) return;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return; /* OSXSAVE */
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & (3u << 17)) != (3u << 17)) return;
    if (syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */) != 0) return;
    amx_hw = 1;
#endif
}
int tp_cpu_amx(void) {
    if (tp_cpu_isa() < TP_ISA_AVX512VBMI) return 0;
    pthread_once(&amx_once, amx_probe);
    return amx_hw;
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

static int read_caches(tp_cache_info *out, int max) {
    int n = 0;
    for (int i = 0; i < 16 && n < max; i++) {
        const char *fields[] = {"type", "level", "size", "shared_cpu_list"};
        char vals[4][64];
        int ok = 1;
        for (int f = 0; f < 4 && ok; f++) {
            char path[128];
            snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/%s", i, fields[f]);
            FILE *fp = fopen(path, "r");
            if (!fp || !fgets(vals[f], sizeof vals[f], fp)) ok = 0;
            if (fp) fclose(fp);
            if (ok) vals[f][strcspn(vals[f], "\n")] = 0;
        }
        if (!ok) break;
        tp_cache_info *c = &out[n++];
        snprintf(c->type, sizeof c->type, "%s",
                 !strcmp(vals[0], "Instruction") ? "Instruction" : !strcmp(vals[0], "Data") ? "Data" : "Unified");
        c->level = atoi(vals[1]);
        double size = atof(vals[2]);
        if (strchr(vals[2], 'K')) size *= 1024;
        if (strchr(vals[2], 'M')) size *= 1024 * 1024;
        c->bytes = (int64_t)size;
        /* "0-1" or "0,2" -> the number of CPUs sharing it */
        int sharing = 1;
        char *dash = strchr(vals[3], '-');
        if (dash) sharing = atoi(dash + 1) - atoi(vals[3]) + 1;
        else for (char *p = vals[3]; *p; p++) sharing += *p == ',';
        c->num_sharing = sharing > 0 ? sharing : 1;
    }
    return n;
}

/* Read once: kernels ask for the L1 size on every call. */
static tp_cache_info caches[16];
static int ncaches;
static pthread_once_t caches_once = PTHREAD_ONCE_INIT;
static void caches_init(void) { ncaches = read_caches(caches, 16); }

int tp_cpu_caches(tp_cache_info *out, int max) {
    pthread_once(&caches_once, caches_init);
    int n = ncaches < max ? ncaches : max;
    memcpy(out, caches, (size_t)n * sizeof *out);
    return n;
}

int64_t tp_cpu_cache_bytes(int level, int per_cpu) {
    pthread_once(&caches_once, caches_init);
    for (int i = 0; i < ncaches; i++)
        if (caches[i].level == level && strcmp(caches[i].type, "Instruction"))
            return per_cpu ? caches[i].bytes / caches[i].num_sharing : caches[i].bytes;
    return 0;
}

void tp_cpu_caches_desc(char *buf, size_t n) {
    tp_cache_info c[16];
    int k = tp_cpu_caches(c, 16);
    size_t used = 0;
    snprintf(buf, n, "unknown");
    for (int i = 0; i < k; i++) {
        if (!strcmp(c[i].type, "Instruction")) continue;
        int64_t b = c[i].bytes;
        int mib = b >= (1 << 20) && b % (1 << 20) == 0;
        char shared[32] = "";
        if (c[i].num_sharing > 1) snprintf(shared, sizeof shared, " (shared by %d)", c[i].num_sharing);
        int w = snprintf(buf + used, n - used, "%sL%d%s %lld%s%s", used ? ", " : "", c[i].level,
                         !strcmp(c[i].type, "Data") ? "d" : "", (long long)(mib ? b >> 20 : b >> 10),
                         mib ? "M" : "K", shared);
        if (w < 0 || (size_t)w >= n - used) break;
        used += (size_t)w;
    }
}
