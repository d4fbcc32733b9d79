/* Core utilities: errors, FP16/BF16, the seeded generator, timers, memory and files. */
#include "tenpak/tenpak.h"
#include "tenpak/files.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *tp_status_name(tp_status s) {
    switch (s) {
    case TP_OK: return "ok";
    case TP_ERR_ARG: return "bad argument";
    case TP_ERR_NOMEM: return "out of memory";
    case TP_ERR_IO: return "I/O error";
    case TP_ERR_FORMAT: return "malformed input";
    case TP_ERR_CHECKSUM: return "checksum mismatch";
    case TP_ERR_UNSUPPORTED: return "unsupported";
    case TP_ERR_INTERNAL: return "internal error";
    }
    return "unknown error";
}

tp_status tp_fail(tp_err *e, tp_status code, const char *fmt, ...) {
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* ---- FP16 ---- */
static inline uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float tp_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24, exact in fp32 */
        float v = (float)man * 0x1p-24f;
        return sign ? -v : v;
    }
    if (exp == 31) return u2f(sign | 0x7f800000u | (man << 13));
    return u2f(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t tp_f32_to_f16(float f) {
    uint32_t u = f2u(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t au = u & 0x7fffffffu;
    if (au >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (au > 0x7f800000u ? 0x200 : 0));
    if (au >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* rounds to >= 65520: inf */
    if (au < 0x38800000u) {
        /* subnormal in fp16 (or zero): round |f| / 2^-24 to nearest even integer */
        float a = u2f(au) * 0x1p24f;
        float r = nearbyintf(a); /* default rounding mode: nearest even */
        return (uint16_t)(sign | (uint16_t)r);
    }
    /* normal: keep 10 mantissa bits, round to nearest even */
    uint32_t mant = au & 0x7fffffu, exp = (au >> 23) - 112;
    uint32_t h = (exp << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

/* fp16 bit patterns of the same sign are ordered like their values; step one ulp toward
 * -inf or +inf as needed. */
static uint16_t f16_next_down(uint16_t h) {
    if (h == 0x0000) return 0x8001;
    if (h & 0x8000) return (uint16_t)(h + 1);
    return (uint16_t)(h - 1);
}
static uint16_t f16_next_up(uint16_t h) {
    if (h == 0x8000) return 0x0001;
    if (h & 0x8000) return (uint16_t)(h - 1);
    return (uint16_t)(h + 1);
}
uint16_t tp_f16_round_down(float f) {
    uint16_t h = tp_f32_to_f16(f);
    while (tp_f16_to_f32(h) > f) h = f16_next_down(h);
    return h;
}
uint16_t tp_f16_round_up(float f) {
    uint16_t h = tp_f32_to_f16(f);
    while (tp_f16_to_f32(h) < f) h = f16_next_up(h);
    return h;
}

uint16_t tp_bf16_from_f32(float f) {
    uint32_t u = f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}
float tp_bf16_to_f32(uint16_t h) { return u2f((uint32_t)h << 16); }

/* ---- xoshiro256** seeded by splitmix64 ---- */
static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
void tp_rng_seed(tp_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}
static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
uint64_t tp_rng_next(tp_rng *r) {
    uint64_t *s = r->s;
    uint64_t res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 45);
    return res;
}
double tp_rng_uniform(tp_rng *r) { return (double)(tp_rng_next(r) >> 11) * 0x1p-53; }
float tp_rng_normal(tp_rng *r) {
    /* Box-Muller; u1 in (0,1] so log is finite */
    double u1 = 1.0 - tp_rng_uniform(r), u2 = tp_rng_uniform(r);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
uint32_t tp_rng_below(tp_rng *r, uint32_t n) {
    return (uint32_t)(((tp_rng_next(r) >> 32) * (uint64_t)n) >> 32);
}
uint64_t tp_hash_str(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}
uint64_t tp_seed_from_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
    return splitmix64(&x) % 1000000000000ull; /* short enough to type back in */
}

/* ---- time ---- */
double tp_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
double tp_cpu_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- memory ---- */
void *tp_alloc(size_t bytes) {
    void *p = NULL;
    if (bytes == 0) bytes = 64;
    if (posix_memalign(&p, 64, (bytes + 63) & ~(size_t)63) != 0) return NULL;
    return p;
}
void tp_free(void *p) { free(p); }
void tp_poison_f32(float *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = NAN;
}

/* ---- files (opened through src/files.c: regular files only, the output guard, temp files) ---- */
void *tp_read_file(const char *path, size_t *len, tp_err *e) {
    size_t n;
    int fd = tp_open_input(path, &n, e);
    if (fd < 0) return NULL;
    char *buf = malloc(n + 1);
    if (!buf) { close(fd); tp_fail(e, TP_ERR_NOMEM, "%s: out of memory (%zu bytes)", path, n); return NULL; }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (got != n) {
        free(buf);
        tp_fail(e, TP_ERR_IO, "%s: short read", path);
        return NULL;
    }
    buf[n] = 0; /* convenient for text */
    if (len) *len = n;
    return buf;
}

tp_status tp_write_file_atomic(const char *path, const void *data, size_t len, tp_err *e) {
    char *tmp;
    int fd;
    tp_status s0 = tp_tmp_open(path, &fd, &tmp, e);
    if (s0 != TP_OK) return s0;
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            tp_status s = tp_fail(e, TP_ERR_IO, "%s: write failed: %s", path, strerror(errno));
            close(fd);
            tp_tmp_discard(tmp);
            return s;
        }
        p += w; left -= (size_t)w;
    }
    if (fchmod(fd, 0644) != 0 || close(fd) != 0) {
        tp_status s = tp_fail(e, TP_ERR_IO, "%s: cannot finish writing: %s", path, strerror(errno));
        tp_tmp_discard(tmp);
        return s;
    }
    return tp_tmp_commit(tmp, path, e);
}

#ifndef TENPAK_SHARED_DIR
#define TENPAK_SHARED_DIR "../shared"
#endif
const char *tp_shared_dir(void) {
    const char *s = getenv("TENPAK_SHARED_DIR");
    return (s && *s) ? s : TENPAK_SHARED_DIR;
}
