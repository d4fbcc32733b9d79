/* tenpak: a kernel-first benchmark and verification harness for LLM weight compression.
 *
 * Core utilities shared by every part: errors as values, FP16 conversion, the seeded random
 * generator, CPU feature detection, timers and small file helpers.
 */
#ifndef TENPAK_TENPAK_H
#define TENPAK_TENPAK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TENPAK_VERSION "0.1.0"

/* ---- errors: values with names, never aborts (zstd's habit) ---- */
typedef enum tp_status {
    TP_OK = 0,
    TP_ERR_ARG,       /* bad argument from the caller */
    TP_ERR_NOMEM,     /* allocation failed */
    TP_ERR_IO,        /* read/write failed */
    TP_ERR_FORMAT,    /* input is malformed (truncated, lying header, bad JSON, ...) */
    TP_ERR_CHECKSUM,  /* data does not match its checksum */
    TP_ERR_UNSUPPORTED,
    TP_ERR_INTERNAL
} tp_status;

const char *tp_status_name(tp_status s);

/* A short message buffer filled by functions that can fail on user input. */
typedef struct tp_err {
    char msg[512];
} tp_err;
/* printf-style: sets e->msg (if e is non-NULL) and returns code. */
tp_status tp_fail(tp_err *e, tp_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- FP16 (IEEE binary16), round to nearest even ---- */
uint16_t tp_f32_to_f16(float f);
float tp_f16_to_f32(uint16_t h);
/* Largest fp16 value <= f, and smallest >= f (finite f within fp16 range). */
uint16_t tp_f16_round_down(float f);
uint16_t tp_f16_round_up(float f);
uint16_t tp_bf16_from_f32(float f);
float tp_bf16_to_f32(uint16_t h);

/* ---- seeded generator (xoshiro256**), reproducible across machines ---- */
typedef struct tp_rng {
    uint64_t s[4];
} tp_rng;
void tp_rng_seed(tp_rng *r, uint64_t seed);
uint64_t tp_rng_next(tp_rng *r);
double tp_rng_uniform(tp_rng *r);            /* [0, 1) */
float tp_rng_normal(tp_rng *r);               /* standard normal */
uint32_t tp_rng_below(tp_rng *r, uint32_t n); /* [0, n) */
uint64_t tp_hash_str(const char *s);          /* FNV-1a, to derive per-case seeds */
uint64_t tp_seed_from_time(void);

/* ---- CPU features and the ISA level the cpu backend dispatches to ---- */
/* Levels are ordered: a kernel without a path for the current level uses the best one below it
 * (code tests `isa >= TP_ISA_AVX2`). AVX512 = F+BW+VL+DQ (Skylake-SP and later) on top of AVX2;
 * AVX512VBMI adds VBMI, VBMI2 and VNNI (Ice Lake, Zen 4 and later: every CPU with VBMI2 has VNNI). */
typedef enum tp_isa { TP_ISA_PORTABLE = 0, TP_ISA_AVX2 = 1, TP_ISA_AVX512 = 2, TP_ISA_AVX512VBMI = 3 } tp_isa;
tp_isa tp_cpu_best_isa(void);           /* what this CPU supports */
tp_isa tp_cpu_isa(void);                /* what the cpu backend uses now */
void tp_cpu_set_isa(tp_isa isa);        /* clamped to tp_cpu_best_isa() */
const char *tp_isa_name(tp_isa isa);
/* Intel AMX (tiles + bf16) usable here: the hardware, the OS and the process's permission, the ISA
 * level not capped below avx512vbmi, and TENPAK_AMX not "0". The INT4 GEMM of many rows then runs
 * on it (kernels/cpu/amx/quant_amx.c); everything else is unchanged. */
int tp_cpu_amx(void);
int tp_cpu_is_intel(void);             /* 1 on a GenuineIntel CPU (tunings measured per vendor) */
int tp_num_threads(void);
const char *tp_cpu_model(void);
double tp_cpu_mhz(void);
/* The caches of CPU 0 as Linux describes them (/sys/devices/system/cpu/cpu0/cache): type is
 * "Data", "Instruction" or "Unified". Returns how many were written (0 where sysfs has none). */
typedef struct tp_cache_info {
    int level;
    char type[16];
    int64_t bytes;
    int num_sharing; /* logical CPUs sharing it */
} tp_cache_info;
int tp_cpu_caches(tp_cache_info *out, int max);
/* The data (or unified) cache of a level in bytes, per CPU sharing it for a shared one when
 * per_cpu; 0 when unknown. Kernels size their tiles from it rather than from a constant. */
int64_t tp_cpu_cache_bytes(int level, int per_cpu);
/* "L1d 48K, L2 2M, L3 32M (shared by 2)": for `tenpak list` and reports */
void tp_cpu_caches_desc(char *buf, size_t n);

/* The BLAS behind the fp32 baselines and the model's fp32 matmuls (kernels/ops_blas.c): OpenBLAS's
 * core type (the kernels it chose, or OPENBLAS_CORETYPE's), its threads and its build config. */
const char *tp_blas_core(void);
int tp_blas_threads(void);
const char *tp_blas_config(void);

/* ---- the worker pool (src/pool.c) ----
 * One pool of tp_num_threads() threads for the process, made on first use and kept (no thread is
 * created per call). tp_pool_run runs fn(ctx, task, ntasks) for every task in [0, ntasks) and
 * returns when all are done; threads claim tasks one at a time, so a thread held up by another
 * process delays one task, not a fixed share. Split work into tasks by the problem's size alone
 * (never by the thread count) and the result is the same at any thread count. Nested runs (from
 * inside a task) execute serially. */
void tp_pool_run(int ntasks, void (*fn)(void *ctx, int task, int ntasks), void *ctx);
int tp_pool_threads(void);
/* Idle workers spin a while (src/pool.c) before they sleep; this sends the spinning ones to sleep
 * now: call it before work that uses threads of its own (an OpenBLAS sgemm). */
void tp_pool_nap(void);

/* ---- timing ---- */
double tp_now(void);      /* monotonic wall clock, seconds */
double tp_cpu_time(void); /* process CPU time, seconds */

/* ---- memory: 64-byte aligned, poisonable ---- */
void *tp_alloc(size_t bytes); /* aligned, NULL on failure */
void tp_free(void *p);
void tp_poison_f32(float *p, size_t n); /* fill with quiet NaN */

/* ---- files ---- */
/* Reads a whole file; returns NULL and sets e on failure. */
void *tp_read_file(const char *path, size_t *len, tp_err *e);
/* Writes data to path through path.tmp.XXXXXX + rename, so no partial file is left behind. */
tp_status tp_write_file_atomic(const char *path, const void *data, size_t len, tp_err *e);

/* Where ../shared lives: $TENPAK_SHARED_DIR, else the configured default. */
const char *tp_shared_dir(void);

#ifdef __cplusplus
}
#endif
#endif
