/* What the files of `tenpak report` share (report_internal.h). */
#include "pipeline/report_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void tp_sb_printf(tp_sbuf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0 || b->oom) return;
        if (b->p && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        size_t nc = (b->cap + (size_t)k + 1) * 2;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
}

void tp_report_mkdirs(const char *dir) {
    char p[4096];
    snprintf(p, sizeof p, "%s", dir);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            mkdir(p, 0755);
            *s = '/';
        }
    mkdir(p, 0755);
}

void tp_report_capture(const char *cmd, char *out, size_t n) {
    out[0] = 0;
    FILE *f = popen(cmd, "r");
    if (!f) return;
    if (fgets(out, (int)n, f)) out[strcspn(out, "\n")] = 0;
    pclose(f);
}

const cJSON *tp_report_find_baseline(const cJSON *bases, const char *model, const char *dataset) {
    const cJSON *b;
    cJSON_ArrayForEach(b, bases)
        if (!strcmp(jstr_or(b, "model", ""), model) && !strcmp(jstr_or(b, "dataset", ""), dataset)) return b;
    return NULL;
}
