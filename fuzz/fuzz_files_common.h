/* Shared by the parser fuzz targets: the input written to a file in a private folder, since the
 * parsers read files (through tp_open_input, as the CLI does). */
#ifndef TENPAK_FUZZ_FILES_COMMON_H
#define TENPAK_FUZZ_FILES_COMMON_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char fuzz_dir[64];
static inline void fuzz_cleanup(void) {
    static const char *const names[] = {"config.json", "model.safetensors.index.json", "model.safetensors", "a.tpk",
                                        "tokenizer.json", "model.gguf"};
    char p[128];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", fuzz_dir, names[i]);
        unlink(p);
    }
    rmdir(fuzz_dir);
}
/* dir/name (a per-process folder under /tmp, made once, removed at exit) */
static inline const char *fuzz_path(const char *name) {
    static char p[4][128];
    static int k;
    if (!fuzz_dir[0]) {
        snprintf(fuzz_dir, sizeof fuzz_dir, "/tmp/tenpak-fuzz-%d", (int)getpid());
        mkdir(fuzz_dir, 0700);
        atexit(fuzz_cleanup);
    }
    char *s = p[k++ & 3];
    snprintf(s, sizeof p[0], "%s/%s", fuzz_dir, name);
    return s;
}
static inline void fuzz_put(const char *name, const uint8_t *d, size_t n) {
    FILE *f = fopen(fuzz_path(name), "wb");
    if (!f) abort();
    if (n && fwrite(d, 1, n, f) != n) abort();
    fclose(f);
}
/* the input split at its first "\n--8<--\n": part one, and part two (NULL if none) */
static inline size_t fuzz_split(const uint8_t *d, size_t n, const uint8_t **second, size_t *n2) {
    static const char cut[] = "\n--8<--\n";
    for (size_t i = 0; i + 8 <= n; i++)
        if (!memcmp(d + i, cut, 8)) {
            *second = d + i + 8;
            *n2 = n - i - 8;
            return i;
        }
    *second = NULL;
    *n2 = 0;
    return n;
}
#endif
