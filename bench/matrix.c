/* Benchmark matrix files: loading, cells and the shard split (tenpak/bench.h). */
#include <cjson/cJSON.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tenpak/bench.h"
#include "tenpak/sha256.h"

int tp_shape_parse(const char *s, tp_shape *out) {
    tp_shape sh = {0, {0, 0, 0, 0}};
    if (!s || !*s) return 0;
    for (;;) {
        if (sh.nd == 4 || *s < '0' || *s > '9') return 0;
        long long v = 0;
        while (*s >= '0' && *s <= '9') {
            if (v > (1LL << 40)) return 0;
            v = v * 10 + (*s++ - '0');
        }
        if (v < 1) return 0;
        sh.d[sh.nd++] = v;
        if (!*s) break;
        if (*s++ != 'x') return 0;
    }
    *out = sh;
    return 1;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* A non-empty array of strings at key; *out NULL and *n 0 when absent (an error when required). */
static tp_status str_array(const cJSON *root, const char *key, int required, char ***out, int *n, const char *path,
                           tp_err *e) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, key);
    const int min = 1;
    *out = NULL;
    *n = 0;
    if (!a) return required ? tp_fail(e, TP_ERR_FORMAT, "%s: \"%s\" is missing", path, key) : TP_OK;
    int len = cJSON_GetArraySize(a);
    if (!cJSON_IsArray(a) || len < min || len > 4096)
        return tp_fail(e, TP_ERR_FORMAT, "%s: \"%s\" must be an array of %d or more strings", path, key, min);
    *out = calloc((size_t)len + 1, sizeof **out);
    if (!*out) return tp_fail(e, TP_ERR_NOMEM, "out of memory");
    const cJSON *x;
    cJSON_ArrayForEach(x, a) {
        if (!cJSON_IsString(x) || !*x->valuestring)
            return tp_fail(e, TP_ERR_FORMAT, "%s: every entry of \"%s\" must be a non-empty string", path, key);
        if (!((*out)[(*n)++] = dup_str(x->valuestring))) return tp_fail(e, TP_ERR_NOMEM, "out of memory");
    }
    return TP_OK;
}

static void free_strs(char **v, int n) {
    for (int i = 0; v && i < n; i++) free(v[i]);
    free(v);
}

void tp_bench_matrix_free(tp_bench_matrix *m) {
    if (!m) return;
    regex_t *re = m->re;
    for (int i = 0; re && i < m->nbench; i++) regfree(&re[i]);
    free(re);
    free_strs(m->bench, m->nbench);
    free_strs(m->backends, m->nbackend);
    free_strs(m->rows, m->nrow);
    free(m->shapes);
    free(m->path);
    free(m->name);
    memset(m, 0, sizeof *m);
}

static tp_status load(const char *path, const cJSON *root, tp_bench_matrix *m, tp_err *e) {
    if (!cJSON_IsObject(root)) return tp_fail(e, TP_ERR_FORMAT, "%s: not a JSON object", path);
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(root, "name");
    if (nm && !cJSON_IsString(nm)) return tp_fail(e, TP_ERR_FORMAT, "%s: \"name\" must be a string", path);
    const char *base = strrchr(path, '/');
    if (!(m->name = dup_str(nm ? nm->valuestring : base ? base + 1 : path)) || !(m->path = dup_str(path)))
        return tp_fail(e, TP_ERR_NOMEM, "out of memory");
    tp_status st;
    if ((st = str_array(root, "benchmarks", 1, &m->bench, &m->nbench, path, e)) != TP_OK) return st;
    if ((st = str_array(root, "backends", 0, &m->backends, &m->nbackend, path, e)) != TP_OK) return st;
    char **shapes;
    int ns;
    if ((st = str_array(root, "shapes", 0, &shapes, &ns, path, e)) != TP_OK) {
        free_strs(shapes, ns);
        return st;
    }
    if (ns) {
        m->shapes = calloc((size_t)ns, sizeof *m->shapes);
        if (!m->shapes) {
            free_strs(shapes, ns);
            return tp_fail(e, TP_ERR_NOMEM, "out of memory");
        }
        for (int i = 0; i < ns; i++)
            if (!tp_shape_parse(shapes[i], &m->shapes[m->nshape++])) {
                st = tp_fail(e, TP_ERR_FORMAT, "%s: shape '%s' is not like 256x512 (1 to 4 positive dimensions)", path,
                             shapes[i]);
                break;
            }
    }
    free_strs(shapes, ns);
    if (st != TP_OK) return st;
    const cJSON *rep = cJSON_GetObjectItemCaseSensitive(root, "report");
    if (rep) {
        if (!cJSON_IsObject(rep)) return tp_fail(e, TP_ERR_FORMAT, "%s: \"report\" must be an object", path);
        if ((st = str_array(rep, "rows", 1, &m->rows, &m->nrow, path, e)) != TP_OK) return st;
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "repetitions");
    m->repetitions = 3;
    if (v) {
        if (!cJSON_IsNumber(v) || !(v->valuedouble >= 1 && v->valuedouble <= 1000) || v->valuedouble != (double)(int)v->valuedouble)
            return tp_fail(e, TP_ERR_FORMAT, "%s: \"repetitions\" must be an integer from 1 to 1000", path);
        m->repetitions = v->valueint;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "min_time");
    m->min_time = 0.5;
    if (v) {
        if (!cJSON_IsNumber(v) || !(v->valuedouble > 0) || v->valuedouble > 3600)
            return tp_fail(e, TP_ERR_FORMAT, "%s: \"min_time\" must be a positive number of seconds", path);
        m->min_time = v->valuedouble;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "shards");
    if (v) {
        if (!cJSON_IsNumber(v) || !(v->valuedouble >= 1 && v->valuedouble <= 10000) || v->valuedouble != (double)(int)v->valuedouble)
            return tp_fail(e, TP_ERR_FORMAT, "%s: \"shards\" must be an integer from 1 to 10000", path);
        m->shards = v->valueint;
    }
    regex_t *re = calloc((size_t)m->nbench, sizeof *re);
    if (!re) return tp_fail(e, TP_ERR_NOMEM, "out of memory");
    for (int i = 0; i < m->nbench; i++)
        if (regcomp(&re[i], m->bench[i], REG_EXTENDED | REG_NOSUB) != 0) {
            for (int j = 0; j < i; j++) regfree(&re[j]);
            free(re);
            return tp_fail(e, TP_ERR_FORMAT, "%s: bad benchmark regex '%s'", path, m->bench[i]);
        }
    m->re = re;
    for (int i = 0; i < m->nrow; i++) {
        regex_t r;
        if (regcomp(&r, m->rows[i], REG_EXTENDED | REG_NOSUB) != 0)
            return tp_fail(e, TP_ERR_FORMAT, "%s: bad report row regex '%s'", path, m->rows[i]);
        regfree(&r);
    }
    /* the identity: sha256 of the canonical text, so re-indenting the file keeps it */
    char *canon = cJSON_PrintUnformatted(root);
    if (!canon) return tp_fail(e, TP_ERR_NOMEM, "out of memory");
    uint8_t d[32];
    tp_sha256(canon, strlen(canon), d);
    tp_sha256_hex(d, m->sha256);
    free(canon);
    return TP_OK;
}

tp_status tp_bench_matrix_load(const char *path, tp_bench_matrix *m, tp_err *e) {
    memset(m, 0, sizeof *m);
    size_t n;
    char *text = tp_read_file(path, &n, e);
    if (!text) return TP_ERR_IO;
    cJSON *root = cJSON_ParseWithLength(text, n);
    free(text);
    if (!root) return tp_fail(e, TP_ERR_FORMAT, "%s: not valid JSON", path);
    tp_status st = load(path, root, m, e);
    cJSON_Delete(root);
    if (st != TP_OK) tp_bench_matrix_free(m);
    return st;
}

int tp_bench_matrix_cells(const tp_bench_matrix *m) { return m->nbench * (m->nshape ? m->nshape : 1); }

static int same_shape(const tp_shape *a, const tp_shape *b) {
    if (a->nd != b->nd) return 0;
    for (int i = 0; i < a->nd; i++)
        if (a->d[i] != b->d[i]) return 0;
    return 1;
}

int tp_bench_matrix_cell_of(const tp_bench_matrix *m, const tp_kernel *k, const tp_shape *s) {
    if (m->nbackend) {
        int in = 0;
        for (int i = 0; i < m->nbackend; i++) in |= !strcmp(m->backends[i], k->backend);
        if (!in) return -1;
    } else if (!strcmp(k->backend, "ref")) return -1;
    int t = 0;
    const tp_shape *b0 = k->op->bench_shapes;
    if (!b0 || !b0->nd || b0->nd != s->nd) return -1; /* a matrix shape applies to ops of its dimensions */
    if (m->nshape) {
        for (t = 0; t < m->nshape && !same_shape(&m->shapes[t], s); t++) {}
        if (t == m->nshape) return -1;
    } else {
        const tp_shape *b = k->op->bench_shapes;
        while (b && b->nd && !same_shape(b, s)) b++;
        if (!b || !b->nd) return -1;
    }
    char name[256];
    tp_kernel_name(k, s, name, sizeof name);
    const regex_t *re = m->re;
    for (int j = 0; j < m->nbench; j++)
        if (regexec(&re[j], name, 0, NULL, 0) == 0) return m->nshape ? j * m->nshape + t : j;
    return -1;
}

void tp_bench_matrix_cell_name(const tp_bench_matrix *m, int c, char *buf, size_t n) {
    if (c < 0 || c >= tp_bench_matrix_cells(m)) {
        snprintf(buf, n, "?");
        return;
    }
    if (!m->nshape) {
        snprintf(buf, n, "%s", m->bench[c]);
        return;
    }
    char sh[96];
    tp_shape_name(&m->shapes[c % m->nshape], sh, sizeof sh);
    snprintf(buf, n, "%s @ %s", m->bench[c / m->nshape], sh);
}
