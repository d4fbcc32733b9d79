/* GGUF reader and writer: see gguf.h for the layout and the validation rules. */
#include "pipeline/gguf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tenpak/files.h"

/* ---- ggml types ---- */

static const struct { int id; const char *name; int64_t block; size_t bytes; } TYPES[] = {
    {0, "F32", 1, 4},      {1, "F16", 1, 2},       {2, "Q4_0", 32, 18},   {3, "Q4_1", 32, 20},
    {6, "Q5_0", 32, 22},   {7, "Q5_1", 32, 24},    {8, "Q8_0", 32, 34},   {12, "Q4_K", 256, 144},
    {13, "Q5_K", 256, 176}, {14, "Q6_K", 256, 210}, {30, "BF16", 1, 2},
};
#define NTYPES (sizeof TYPES / sizeof TYPES[0])
/* ggml ids the reader refuses, named in its messages */
static const char *const OTHER_TYPES[40] = {
    [4] = "Q4_2 (removed)", [5] = "Q4_3 (removed)", [9] = "Q8_1", [10] = "Q2_K", [11] = "Q3_K", [15] = "Q8_K",
    [16] = "IQ2_XXS", [17] = "IQ2_XS", [18] = "IQ3_XXS", [19] = "IQ1_S", [20] = "IQ4_NL", [21] = "IQ3_S",
    [22] = "IQ2_S", [23] = "IQ4_XS", [24] = "I8", [25] = "I16", [26] = "I32", [27] = "I64", [28] = "F64",
    [29] = "IQ1_M", [34] = "TQ1_0", [35] = "TQ2_0", [39] = "MXFP4"};

static int type_index(int type) {
    for (size_t i = 0; i < NTYPES; i++)
        if (TYPES[i].id == type) return (int)i;
    return -1;
}
int tp_gguf_type_known(int type) { return type_index(type) >= 0; }
const char *tp_gguf_type_name(int type) {
    int i = type_index(type);
    if (i >= 0) return TYPES[i].name;
    if (type >= 0 && type < 40 && OTHER_TYPES[type]) return OTHER_TYPES[type];
    return "unknown";
}
int64_t tp_gguf_type_block(int type) { int i = type_index(type); return i < 0 ? 0 : TYPES[i].block; }
size_t tp_gguf_type_block_bytes(int type) { int i = type_index(type); return i < 0 ? 0 : TYPES[i].bytes; }

static const char *const VTYPES[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array",
                                     "u64", "i64", "f64"};
static const size_t VSIZE[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
const char *tp_gguf_vtype_name(int t) { return t >= 0 && t <= 12 ? VTYPES[t] : "unknown"; }

/* ---- reader ---- */

struct tp_gguf {
    char *path;
    uint8_t *map;
    size_t size;
    uint32_t version, alignment;
    uint64_t data_off;
    tp_gguf_kv *kv;
    size_t nkv;
    tp_gguf_tensor *t;
    size_t nt;
    const tp_gguf_kv **kv_sorted;     /* by key */
    const tp_gguf_tensor **t_sorted;  /* by name */
};

typedef struct cur { const tp_gguf *g; size_t pos; tp_err *e; } cur;

static uint64_t rd_le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
/* n more bytes at the cursor, or a "truncated" failure naming what was being read */
static int need(cur *c, uint64_t n, const char *what) {
    if (n > c->g->size - c->pos) {
        tp_fail(c->e, TP_ERR_FORMAT, "%s: truncated GGUF (%s at byte %zu needs %llu bytes, %zu left)", c->g->path,
                what, c->pos, (unsigned long long)n, c->g->size - c->pos);
        return 0;
    }
    return 1;
}
static int get_u(cur *c, int n, uint64_t *v, const char *what) {
    if (!need(c, (uint64_t)n, what)) return 0;
    *v = rd_le(c->g->map + c->pos, n);
    c->pos += (size_t)n;
    return 1;
}
static int get_str(cur *c, tp_gguf_str *s, const char *what) {
    uint64_t n;
    if (!get_u(c, 8, &n, what) || !need(c, n, what)) return 0;
    s->s = (const char *)c->g->map + c->pos;
    s->len = n;
    c->pos += (size_t)n;
    return 1;
}
static char *dup_str(const tp_gguf_str *s) {
    char *d = malloc((size_t)s->len + 1);
    if (!d) return NULL;
    memcpy(d, s->s, (size_t)s->len);
    d[s->len] = 0;
    return d;
}

/* skips/validates one value of type t; depth bounds nested arrays */
static tp_status skip_value(cur *c, uint32_t t, const char *key, int depth) {
    if (t > 12) return tp_fail(c->e, TP_ERR_FORMAT, "%s: metadata '%s' has unknown value type %u", c->g->path, key, t);
    if (t == TP_GGUF_STRING) {
        tp_gguf_str s;
        return get_str(c, &s, key) ? TP_OK : TP_ERR_FORMAT;
    }
    if (t != TP_GGUF_ARRAY) return need(c, VSIZE[t], key) ? (c->pos += VSIZE[t], TP_OK) : TP_ERR_FORMAT;
    if (depth > 8) return tp_fail(c->e, TP_ERR_FORMAT, "%s: metadata '%s' nests arrays too deeply", c->g->path, key);
    uint64_t et, n;
    if (!get_u(c, 4, &et, key) || !get_u(c, 8, &n, key)) return TP_ERR_FORMAT;
    if (et > 12) return tp_fail(c->e, TP_ERR_FORMAT, "%s: metadata '%s' is an array of unknown type %llu", c->g->path,
                                key, (unsigned long long)et);
    if (et != TP_GGUF_STRING && et != TP_GGUF_ARRAY) {
        if (n > (c->g->size - c->pos) / VSIZE[et])
            return tp_fail(c->e, TP_ERR_FORMAT, "%s: metadata '%s' claims %llu elements, more than the file holds",
                           c->g->path, key, (unsigned long long)n);
        c->pos += (size_t)(n * VSIZE[et]);
        return TP_OK;
    }
    /* each element takes at least 8 (string) or 12 (array) bytes: bound n before looping */
    if (n > (c->g->size - c->pos) / (et == TP_GGUF_STRING ? 8 : 12))
        return tp_fail(c->e, TP_ERR_FORMAT, "%s: metadata '%s' claims %llu elements, more than the file holds",
                       c->g->path, key, (unsigned long long)n);
    for (uint64_t i = 0; i < n; i++) {
        tp_status s = skip_value(c, (uint32_t)et, key, depth + 1);
        if (s != TP_OK) return s;
    }
    return TP_OK;
}

static tp_status read_kv(cur *c, tp_gguf_kv *kv) {
    tp_gguf_str k;
    if (!get_str(c, &k, "a metadata key")) return TP_ERR_FORMAT;
    if (k.len == 0 || memchr(k.s, 0, (size_t)k.len))
        return tp_fail(c->e, TP_ERR_FORMAT, "%s: metadata key at byte %zu is empty or holds a NUL", c->g->path,
                       c->pos - (size_t)k.len);
    if (!(kv->key = dup_str(&k))) return tp_fail(c->e, TP_ERR_NOMEM, "%s: out of memory", c->g->path);
    uint64_t t;
    if (!get_u(c, 4, &t, kv->key)) return TP_ERR_FORMAT;
    if (t > 12) return tp_fail(c->e, TP_ERR_FORMAT, "%s: metadata '%s' has unknown value type %llu", c->g->path,
                               kv->key, (unsigned long long)t);
    kv->type = (tp_gguf_vtype)t;
    const uint8_t *p = c->g->map + c->pos;
    switch (kv->type) {
    case TP_GGUF_STRING: return get_str(c, &kv->str, kv->key) ? TP_OK : TP_ERR_FORMAT;
    case TP_GGUF_ARRAY: {
        size_t start = c->pos;
        tp_status s = skip_value(c, TP_GGUF_ARRAY, kv->key, 0);
        if (s != TP_OK) return s;
        kv->arr_type = (tp_gguf_vtype)rd_le(c->g->map + start, 4);
        kv->arr_n = rd_le(c->g->map + start + 4, 8);
        kv->elems = c->g->map + start + 12;
        if (kv->arr_type == TP_GGUF_STRING && kv->arr_n) {
            kv->strs = malloc((size_t)kv->arr_n * sizeof *kv->strs);
            if (!kv->strs) return tp_fail(c->e, TP_ERR_NOMEM, "%s: out of memory", c->g->path);
            cur c2 = {c->g, start + 12, c->e};
            for (uint64_t i = 0; i < kv->arr_n; i++) get_str(&c2, &kv->strs[i], kv->key); /* validated above */
        }
        return TP_OK;
    }
    default:
        if (!need(c, VSIZE[t], kv->key)) return TP_ERR_FORMAT;
        c->pos += VSIZE[t];
        if (kv->type == TP_GGUF_F32) {
            uint32_t b = (uint32_t)rd_le(p, 4);
            float f;
            memcpy(&f, &b, 4);
            kv->num.f = f;
        } else if (kv->type == TP_GGUF_F64) {
            uint64_t b = rd_le(p, 8);
            memcpy(&kv->num.f, &b, 8);
        } else if (kv->type == TP_GGUF_I8 || kv->type == TP_GGUF_I16 || kv->type == TP_GGUF_I32 ||
                   kv->type == TP_GGUF_I64) {
            int n = (int)VSIZE[t];
            uint64_t u = rd_le(p, n);
            if (n < 8 && (u >> (8 * n - 1))) u |= ~(uint64_t)0 << (8 * n); /* sign-extend */
            kv->num.i = (int64_t)u;
        } else {
            kv->num.u = rd_le(p, (int)VSIZE[t]);
            if (kv->type == TP_GGUF_BOOL && kv->num.u > 1)
                return tp_fail(c->e, TP_ERR_FORMAT, "%s: metadata '%s' is a bool holding %llu", c->g->path, kv->key,
                               (unsigned long long)kv->num.u);
        }
        return TP_OK;
    }
}

static tp_status read_tensor(cur *c, tp_gguf_tensor *t) {
    tp_gguf_str nm;
    if (!get_str(c, &nm, "a tensor name")) return TP_ERR_FORMAT;
    if (nm.len == 0 || memchr(nm.s, 0, (size_t)nm.len))
        return tp_fail(c->e, TP_ERR_FORMAT, "%s: tensor name at byte %zu is empty or holds a NUL", c->g->path,
                       c->pos - (size_t)nm.len);
    if (!(t->name = dup_str(&nm))) return tp_fail(c->e, TP_ERR_NOMEM, "%s: out of memory", c->g->path);
    uint64_t nd, v;
    if (!get_u(c, 4, &nd, t->name)) return TP_ERR_FORMAT;
    if (nd < 1 || nd > TP_GGUF_MAX_DIMS)
        return tp_fail(c->e, TP_ERR_FORMAT, "%s: tensor '%s' has %llu dimensions (1..4 allowed)", c->g->path, t->name,
                       (unsigned long long)nd);
    t->ndim = (int)nd;
    t->nelem = 1;
    for (int i = 0; i < TP_GGUF_MAX_DIMS; i++) t->ne[i] = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (!get_u(c, 8, &v, t->name)) return TP_ERR_FORMAT;
        if (v == 0 || v > (uint64_t)INT64_MAX || (uint64_t)t->nelem > (uint64_t)INT64_MAX / v)
            return tp_fail(c->e, TP_ERR_FORMAT, "%s: tensor '%s' has dimension %d of %llu elements (empty or too large)",
                           c->g->path, t->name, i, (unsigned long long)v);
        t->ne[i] = (int64_t)v;
        t->nelem *= (int64_t)v;
    }
    if (!get_u(c, 4, &v, t->name)) return TP_ERR_FORMAT;
    t->type = v > 1000000 ? -1 : (int)v;
    if (!tp_gguf_type_known(t->type))
        return tp_fail(c->e, TP_ERR_UNSUPPORTED, "%s: tensor '%s' has ggml type %llu (%s), not supported", c->g->path,
                       t->name, (unsigned long long)v, tp_gguf_type_name(t->type));
    int64_t blk = tp_gguf_type_block(t->type);
    if (t->ne[0] % blk)
        return tp_fail(c->e, TP_ERR_FORMAT,
                       "%s: tensor '%s' of type %s has rows of %lld elements, not a multiple of its block of %lld",
                       c->g->path, t->name, tp_gguf_type_name(t->type), (long long)t->ne[0], (long long)blk);
    uint64_t rows = (uint64_t)(t->nelem / t->ne[0]);
    uint64_t rowb = (uint64_t)(t->ne[0] / blk) * tp_gguf_type_block_bytes(t->type); /* < 2^63 / 1 * 210: checked below */
    if ((uint64_t)(t->ne[0] / blk) > UINT64_MAX / 256 || (rowb && rows > (uint64_t)SIZE_MAX / rowb))
        return tp_fail(c->e, TP_ERR_FORMAT, "%s: tensor '%s' is too large", c->g->path, t->name);
    t->nbytes = (size_t)(rows * rowb);
    if (!get_u(c, 8, &t->offset, t->name)) return TP_ERR_FORMAT;
    return TP_OK;
}

static int cmp_kv(const void *a, const void *b) {
    return strcmp((*(const tp_gguf_kv *const *)a)->key, (*(const tp_gguf_kv *const *)b)->key);
}
static int cmp_tn(const void *a, const void *b) {
    return strcmp((*(const tp_gguf_tensor *const *)a)->name, (*(const tp_gguf_tensor *const *)b)->name);
}
static int cmp_off(const void *a, const void *b) {
    uint64_t x = (*(const tp_gguf_tensor *const *)a)->offset, y = (*(const tp_gguf_tensor *const *)b)->offset;
    return x < y ? -1 : x > y;
}

static tp_status parse(tp_gguf *g, tp_err *e) {
    cur c = {g, 0, e};
    uint64_t ver, nt, nkv;
    if (g->size < 4 || memcmp(g->map, "GGUF", 4))
        return tp_fail(e, TP_ERR_FORMAT, "%s: not a GGUF file (no \"GGUF\" magic)", g->path);
    c.pos = 4;
    if (!get_u(&c, 4, &ver, "the version")) return TP_ERR_FORMAT;
    if (ver != 2 && ver != 3) {
        if ((ver & 0xffff) == 0 && ver)
            return tp_fail(e, TP_ERR_UNSUPPORTED, "%s: big-endian GGUF (version %llu byte-swapped) is not supported",
                           g->path, (unsigned long long)ver);
        return tp_fail(e, TP_ERR_UNSUPPORTED, "%s: GGUF version %llu is not supported (2 or 3)", g->path,
                       (unsigned long long)ver);
    }
    g->version = (uint32_t)ver;
    if (!get_u(&c, 8, &nt, "the tensor count") || !get_u(&c, 8, &nkv, "the metadata count")) return TP_ERR_FORMAT;
    /* a metadata entry takes at least 13 bytes, a tensor info at least 33: absurd counts fail here */
    if (nkv > (g->size - c.pos) / 13)
        return tp_fail(e, TP_ERR_FORMAT, "%s: header claims %llu metadata entries, more than the file can hold", g->path,
                       (unsigned long long)nkv);
    if (nt > (g->size - c.pos) / 33)
        return tp_fail(e, TP_ERR_FORMAT, "%s: header claims %llu tensors, more than the file can hold", g->path,
                       (unsigned long long)nt);
    g->kv = calloc(nkv ? (size_t)nkv : 1, sizeof *g->kv);
    g->t = calloc(nt ? (size_t)nt : 1, sizeof *g->t);
    g->kv_sorted = malloc((nkv ? (size_t)nkv : 1) * sizeof *g->kv_sorted);
    g->t_sorted = malloc((nt ? (size_t)nt : 1) * sizeof *g->t_sorted);
    if (!g->kv || !g->t || !g->kv_sorted || !g->t_sorted) return tp_fail(e, TP_ERR_NOMEM, "%s: out of memory", g->path);
    tp_status s;
    for (; g->nkv < nkv; g->nkv++)
        if ((s = read_kv(&c, &g->kv[g->nkv])) != TP_OK) { g->nkv++; return s; }
    for (size_t i = 0; i < g->nkv; i++) g->kv_sorted[i] = &g->kv[i];
    qsort(g->kv_sorted, g->nkv, sizeof *g->kv_sorted, cmp_kv);
    for (size_t i = 1; i < g->nkv; i++)
        if (!strcmp(g->kv_sorted[i]->key, g->kv_sorted[i - 1]->key))
            return tp_fail(e, TP_ERR_FORMAT, "%s: metadata key '%s' appears twice", g->path, g->kv_sorted[i]->key);
    g->alignment = TP_GGUF_DEFAULT_ALIGNMENT;
    const tp_gguf_kv *al = tp_gguf_find_kv(g, "general.alignment");
    if (al) {
        if (al->type != TP_GGUF_U32)
            return tp_fail(e, TP_ERR_FORMAT, "%s: metadata 'general.alignment' is %s, expected u32", g->path,
                           tp_gguf_vtype_name(al->type));
        if (al->num.u == 0 || (al->num.u & (al->num.u - 1)))
            return tp_fail(e, TP_ERR_FORMAT, "%s: general.alignment %llu is not a power of two", g->path,
                           (unsigned long long)al->num.u);
        g->alignment = (uint32_t)al->num.u;
    }
    for (; g->nt < nt; g->nt++)
        if ((s = read_tensor(&c, &g->t[g->nt])) != TP_OK) { g->nt++; return s; }
    for (size_t i = 0; i < g->nt; i++) g->t_sorted[i] = &g->t[i];
    qsort(g->t_sorted, g->nt, sizeof *g->t_sorted, cmp_tn);
    for (size_t i = 1; i < g->nt; i++)
        if (!strcmp(g->t_sorted[i]->name, g->t_sorted[i - 1]->name))
            return tp_fail(e, TP_ERR_FORMAT, "%s: tensor '%s' appears twice", g->path, g->t_sorted[i]->name);
    uint64_t a = g->alignment;
    g->data_off = (c.pos + a - 1) / a * a; /* pos < size <= SIZE_MAX; a <= 2^31 */
    if (g->nt && g->data_off > g->size)
        return tp_fail(e, TP_ERR_FORMAT, "%s: truncated GGUF (data section would start at byte %llu of %zu)", g->path,
                       (unsigned long long)g->data_off, g->size);
    uint64_t avail = g->size > g->data_off ? g->size - g->data_off : 0;
    for (size_t i = 0; i < g->nt; i++) {
        tp_gguf_tensor *t = &g->t[i];
        if (t->offset % a)
            return tp_fail(e, TP_ERR_FORMAT, "%s: tensor '%s' offset %llu is not a multiple of the alignment %u",
                           g->path, t->name, (unsigned long long)t->offset, g->alignment);
        if (t->offset > avail || t->nbytes > avail - t->offset)
            return tp_fail(e, TP_ERR_FORMAT,
                           "%s: tensor '%s' (%zu bytes at data offset %llu) runs past the end of the file "
                           "(data section holds %llu bytes)",
                           g->path, t->name, t->nbytes, (unsigned long long)t->offset, (unsigned long long)avail);
        t->data = g->map + g->data_off + t->offset;
    }
    /* no two tensors share a byte (sorted by offset; t_sorted is reused and restored below) */
    qsort(g->t_sorted, g->nt, sizeof *g->t_sorted, cmp_off);
    for (size_t i = 1; i < g->nt; i++) {
        const tp_gguf_tensor *p = g->t_sorted[i - 1], *q = g->t_sorted[i];
        if (q->offset < p->offset + p->nbytes)
            return tp_fail(e, TP_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap", g->path, p->name, q->name);
    }
    qsort(g->t_sorted, g->nt, sizeof *g->t_sorted, cmp_tn);
    return TP_OK;
}

tp_status tp_gguf_open(const char *path, tp_gguf **out, tp_err *e) {
    *out = NULL;
    tp_gguf *g = calloc(1, sizeof *g);
    if (!g || !(g->path = strdup(path))) { free(g); return tp_fail(e, TP_ERR_NOMEM, "%s: out of memory", path); }
    size_t size = 0;
    int fd = tp_open_input(path, &size, e);
    if (fd < 0) { tp_gguf_close(g); return TP_ERR_IO; }
    g->size = size;
    if (size) {
        void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int err = errno;
            close(fd);
            tp_gguf_close(g);
            return tp_fail(e, TP_ERR_IO, "%s: mmap failed: %s", path, strerror(err));
        }
        g->map = p;
    }
    close(fd);
    tp_status s = parse(g, e);
    if (s != TP_OK) { tp_gguf_close(g); return s; }
    *out = g;
    return TP_OK;
}

void tp_gguf_close(tp_gguf *g) {
    if (!g) return;
    for (size_t i = 0; i < g->nkv; i++) { free((char *)g->kv[i].key); free(g->kv[i].strs); }
    for (size_t i = 0; i < g->nt; i++) free((char *)g->t[i].name);
    free(g->kv); free(g->t); free(g->kv_sorted); free(g->t_sorted);
    if (g->map) munmap(g->map, g->size);
    free(g->path);
    free(g);
}

const char *tp_gguf_path(const tp_gguf *g) { return g->path; }
uint32_t tp_gguf_version(const tp_gguf *g) { return g->version; }
uint32_t tp_gguf_alignment(const tp_gguf *g) { return g->alignment; }
uint64_t tp_gguf_data_offset(const tp_gguf *g) { return g->data_off; }
const uint8_t *tp_gguf_map(const tp_gguf *g, size_t *size) { if (size) *size = g->size; return g->map; }
size_t tp_gguf_num_kv(const tp_gguf *g) { return g->nkv; }
const tp_gguf_kv *tp_gguf_kv_at(const tp_gguf *g, size_t i) { return i < g->nkv ? &g->kv[i] : NULL; }
size_t tp_gguf_num_tensors(const tp_gguf *g) { return g->nt; }
const tp_gguf_tensor *tp_gguf_tensor_at(const tp_gguf *g, size_t i) { return i < g->nt ? &g->t[i] : NULL; }

const tp_gguf_kv *tp_gguf_find_kv(const tp_gguf *g, const char *key) {
    tp_gguf_kv k = {.key = key};
    const tp_gguf_kv *kp = &k;
    const tp_gguf_kv **r = bsearch(&kp, g->kv_sorted, g->nkv, sizeof *g->kv_sorted, cmp_kv);
    return r ? *r : NULL;
}
const tp_gguf_tensor *tp_gguf_find_tensor(const tp_gguf *g, const char *name) {
    tp_gguf_tensor k = {.name = name};
    const tp_gguf_tensor *kp = &k;
    const tp_gguf_tensor **r = bsearch(&kp, g->t_sorted, g->nt, sizeof *g->t_sorted, cmp_tn);
    return r ? *r : NULL;
}

static int is_int(tp_gguf_vtype t) {
    return t == TP_GGUF_U8 || t == TP_GGUF_I8 || t == TP_GGUF_U16 || t == TP_GGUF_I16 || t == TP_GGUF_U32 ||
           t == TP_GGUF_I32 || t == TP_GGUF_U64 || t == TP_GGUF_I64;
}
static int is_signed(tp_gguf_vtype t) {
    return t == TP_GGUF_I8 || t == TP_GGUF_I16 || t == TP_GGUF_I32 || t == TP_GGUF_I64;
}
static const tp_gguf_kv *lookup(const tp_gguf *g, const char *key, int *found, tp_status *s, tp_err *e) {
    const tp_gguf_kv *kv = tp_gguf_find_kv(g, key);
    *s = TP_OK;
    if (found) *found = kv != NULL;
    else if (!kv) *s = tp_fail(e, TP_ERR_FORMAT, "%s: metadata '%s' is missing", g->path, key);
    return kv;
}
static tp_status wrong(const tp_gguf *g, const tp_gguf_kv *kv, const char *want, tp_err *e) {
    if (kv->type == TP_GGUF_ARRAY)
        return tp_fail(e, TP_ERR_FORMAT, "%s: metadata '%s' is an array of %s, expected %s", g->path, kv->key,
                       tp_gguf_vtype_name(kv->arr_type), want);
    return tp_fail(e, TP_ERR_FORMAT, "%s: metadata '%s' is %s, expected %s", g->path, kv->key,
                   tp_gguf_vtype_name(kv->type), want);
}

tp_status tp_gguf_get_u32(const tp_gguf *g, const char *key, uint32_t *v, int *found, tp_err *e) {
    tp_status s;
    const tp_gguf_kv *kv = lookup(g, key, found, &s, e);
    if (!kv) return s;
    if (!is_int(kv->type)) return wrong(g, kv, "an unsigned integer", e);
    if ((is_signed(kv->type) && kv->num.i < 0) || kv->num.u > UINT32_MAX)
        return tp_fail(e, TP_ERR_FORMAT, "%s: metadata '%s' = %lld is out of range", g->path, key,
                       (long long)kv->num.i);
    *v = (uint32_t)kv->num.u;
    return TP_OK;
}
tp_status tp_gguf_get_f64(const tp_gguf *g, const char *key, double *v, int *found, tp_err *e) {
    tp_status s;
    const tp_gguf_kv *kv = lookup(g, key, found, &s, e);
    if (!kv) return s;
    if (kv->type != TP_GGUF_F32 && kv->type != TP_GGUF_F64) return wrong(g, kv, "f32", e);
    *v = kv->num.f;
    return TP_OK;
}
tp_status tp_gguf_get_bool(const tp_gguf *g, const char *key, int *v, int *found, tp_err *e) {
    tp_status s;
    const tp_gguf_kv *kv = lookup(g, key, found, &s, e);
    if (!kv) return s;
    if (kv->type != TP_GGUF_BOOL) return wrong(g, kv, "bool", e);
    *v = (int)kv->num.u;
    return TP_OK;
}
tp_status tp_gguf_get_str(const tp_gguf *g, const char *key, char **v, int *found, tp_err *e) {
    tp_status s;
    const tp_gguf_kv *kv = lookup(g, key, found, &s, e);
    if (!kv) return s;
    if (kv->type != TP_GGUF_STRING) return wrong(g, kv, "string", e);
    if (!(*v = dup_str(&kv->str))) return tp_fail(e, TP_ERR_NOMEM, "%s: out of memory", g->path);
    return TP_OK;
}
tp_status tp_gguf_get_arr(const tp_gguf *g, const char *key, tp_gguf_vtype et, const tp_gguf_kv **out, int *found,
                          tp_err *e) {
    tp_status s;
    const tp_gguf_kv *kv = lookup(g, key, found, &s, e);
    *out = NULL;
    if (!kv) return s;
    if (kv->type != TP_GGUF_ARRAY || kv->arr_type != et) {
        char want[48];
        snprintf(want, sizeof want, "an array of %s", tp_gguf_vtype_name(et));
        return wrong(g, kv, want, e);
    }
    *out = kv;
    return TP_OK;
}

double tp_gguf_arr_f64(const tp_gguf_kv *kv, uint64_t i) {
    if (kv->arr_type == TP_GGUF_F32) {
        uint32_t b = (uint32_t)rd_le(kv->elems + 4 * i, 4);
        float f;
        memcpy(&f, &b, 4);
        return f;
    }
    if (kv->arr_type == TP_GGUF_F64) {
        uint64_t b = rd_le(kv->elems + 8 * i, 8);
        double d;
        memcpy(&d, &b, 8);
        return d;
    }
    return (double)tp_gguf_arr_i64(kv, i);
}
int64_t tp_gguf_arr_i64(const tp_gguf_kv *kv, uint64_t i) {
    if (kv->arr_type > 12 || !VSIZE[kv->arr_type]) return 0;
    int n = (int)VSIZE[kv->arr_type];
    uint64_t u = rd_le(kv->elems + (size_t)n * i, n);
    if (is_signed(kv->arr_type) && n < 8 && (u >> (8 * n - 1))) u |= ~(uint64_t)0 << (8 * n);
    return (int64_t)u;
}

/* ---- writer ---- */

typedef struct wbuf { uint8_t *p; size_t n, cap; int oom; } wbuf;
static void put(wbuf *b, const void *d, size_t n) {
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t c = b->cap ? b->cap : 4096;
        while (c < b->n + n) c *= 2;
        uint8_t *q = realloc(b->p, c);
        if (!q) { b->oom = 1; return; }
        b->p = q;
        b->cap = c;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void put_le(wbuf *b, uint64_t v, int n) {
    uint8_t t[8];
    for (int i = 0; i < n; i++) t[i] = (uint8_t)(v >> (8 * i));
    put(b, t, (size_t)n);
}
static void put_str(wbuf *b, const char *s, size_t n) { put_le(b, n, 8); put(b, s, n); }

typedef struct wtensor { char *name; int type, ndim; int64_t ne[TP_GGUF_MAX_DIMS]; const void *data; size_t nbytes; } wtensor;
struct tp_gguf_w {
    uint32_t alignment;
    wbuf kv;
    uint64_t nkv;
    wtensor *t;
    size_t nt, tcap;
    int oom;
};

tp_gguf_w *tp_gguf_w_new(uint32_t alignment) {
    tp_gguf_w *w = calloc(1, sizeof *w);
    if (w) w->alignment = alignment ? alignment : TP_GGUF_DEFAULT_ALIGNMENT;
    return w;
}
void tp_gguf_w_free(tp_gguf_w *w) {
    if (!w) return;
    for (size_t i = 0; i < w->nt; i++) free(w->t[i].name);
    free(w->t);
    free(w->kv.p);
    free(w);
}
static void kv_head(tp_gguf_w *w, const char *key, uint32_t type) {
    put_str(&w->kv, key, strlen(key));
    put_le(&w->kv, type, 4);
    w->nkv++;
}
void tp_gguf_w_raw(tp_gguf_w *w, const char *key, uint32_t type, const void *bytes, size_t n) {
    kv_head(w, key, type);
    put(&w->kv, bytes, n);
}
void tp_gguf_w_str(tp_gguf_w *w, const char *key, const char *v) {
    kv_head(w, key, TP_GGUF_STRING);
    put_str(&w->kv, v, strlen(v));
}
void tp_gguf_w_u32(tp_gguf_w *w, const char *key, uint32_t v) { kv_head(w, key, TP_GGUF_U32); put_le(&w->kv, v, 4); }
void tp_gguf_w_i32(tp_gguf_w *w, const char *key, int32_t v) {
    kv_head(w, key, TP_GGUF_I32);
    put_le(&w->kv, (uint32_t)v, 4);
}
void tp_gguf_w_f32(tp_gguf_w *w, const char *key, float v) {
    uint32_t b;
    memcpy(&b, &v, 4);
    kv_head(w, key, TP_GGUF_F32);
    put_le(&w->kv, b, 4);
}
void tp_gguf_w_bool(tp_gguf_w *w, const char *key, int v) { kv_head(w, key, TP_GGUF_BOOL); put_le(&w->kv, v != 0, 1); }
void tp_gguf_w_arr_str(tp_gguf_w *w, const char *key, const char *const *v, const size_t *lens, uint64_t n) {
    kv_head(w, key, TP_GGUF_ARRAY);
    put_le(&w->kv, TP_GGUF_STRING, 4);
    put_le(&w->kv, n, 8);
    for (uint64_t i = 0; i < n; i++) put_str(&w->kv, v[i], lens ? lens[i] : strlen(v[i]));
}
void tp_gguf_w_arr_f32(tp_gguf_w *w, const char *key, const float *v, uint64_t n) {
    kv_head(w, key, TP_GGUF_ARRAY);
    put_le(&w->kv, TP_GGUF_F32, 4);
    put_le(&w->kv, n, 8);
    for (uint64_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &v[i], 4);
        put_le(&w->kv, b, 4);
    }
}
void tp_gguf_w_arr_i32(tp_gguf_w *w, const char *key, const int32_t *v, uint64_t n) {
    kv_head(w, key, TP_GGUF_ARRAY);
    put_le(&w->kv, TP_GGUF_I32, 4);
    put_le(&w->kv, n, 8);
    for (uint64_t i = 0; i < n; i++) put_le(&w->kv, (uint32_t)v[i], 4);
}
void tp_gguf_w_tensor(tp_gguf_w *w, const char *name, int type, int ndim, const int64_t *ne, const void *data,
                      size_t nbytes) {
    if (w->nt == w->tcap) {
        size_t c = w->tcap ? 2 * w->tcap : 64;
        wtensor *q = realloc(w->t, c * sizeof *q);
        if (!q) { w->oom = 1; return; }
        w->t = q;
        w->tcap = c;
    }
    wtensor *t = &w->t[w->nt];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name))) { w->oom = 1; return; }
    t->type = type;
    t->ndim = ndim < 1 ? 1 : ndim > TP_GGUF_MAX_DIMS ? TP_GGUF_MAX_DIMS : ndim;
    for (int i = 0; i < t->ndim; i++) t->ne[i] = ne[i];
    t->data = data;
    t->nbytes = nbytes;
    w->nt++;
}

static int write_all(int fd, const void *p, size_t n) {
    const uint8_t *q = p;
    while (n) {
        ssize_t k = write(fd, q, n > (1u << 30) ? (1u << 30) : n);
        if (k < 0) { if (errno == EINTR) continue; return 0; }
        q += k;
        n -= (size_t)k;
    }
    return 1;
}

tp_status tp_gguf_w_write(tp_gguf_w *w, const char *path, tp_err *e) {
    if (w->oom || w->kv.oom) return tp_fail(e, TP_ERR_NOMEM, "%s: out of memory building the GGUF", path);
    uint64_t a = w->alignment;
    wbuf h = {0};
    put(&h, "GGUF", 4);
    put_le(&h, 3, 4);
    put_le(&h, w->nt, 8);
    put_le(&h, w->nkv, 8);
    put(&h, w->kv.p, w->kv.n);
    uint64_t off = 0;
    for (size_t i = 0; i < w->nt; i++) {
        const wtensor *t = &w->t[i];
        put_str(&h, t->name, strlen(t->name));
        put_le(&h, (uint64_t)t->ndim, 4);
        for (int d = 0; d < t->ndim; d++) put_le(&h, (uint64_t)t->ne[d], 8);
        put_le(&h, (uint64_t)t->type, 4);
        put_le(&h, off, 8);
        off += (t->nbytes + a - 1) / a * a;
    }
    static const uint8_t zeros[64] = {0};
    size_t pad = (size_t)((h.n + a - 1) / a * a - h.n);
    while (pad) { size_t k = pad < 64 ? pad : 64; put(&h, zeros, k); pad -= k; }
    if (h.oom) { free(h.p); return tp_fail(e, TP_ERR_NOMEM, "%s: out of memory building the GGUF", path); }
    int fd;
    char *tmp;
    tp_status s = tp_tmp_open(path, &fd, &tmp, e);
    if (s != TP_OK) { free(h.p); return s; }
    int ok = write_all(fd, h.p, h.n);
    free(h.p);
    for (size_t i = 0; i < w->nt && ok; i++) {
        const wtensor *t = &w->t[i];
        ok = write_all(fd, t->data, t->nbytes);
        size_t p = (size_t)((t->nbytes + a - 1) / a * a - t->nbytes);
        while (ok && p) { size_t k = p < 64 ? p : 64; ok = write_all(fd, zeros, k); p -= k; }
    }
    int err = errno;
    if (close(fd) != 0 && ok) { ok = 0; err = errno; }
    if (!ok) {
        tp_tmp_discard(tmp);
        return tp_fail(e, TP_ERR_IO, "%s: write failed: %s", path, strerror(err));
    }
    return tp_tmp_commit(tmp, path, e);
}
