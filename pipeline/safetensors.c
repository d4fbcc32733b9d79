/* safetensors reader: see safetensors.h for the validation rules. */
#include "pipeline/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/cpu/vecmath_cpu.h"
#include "tenpak/files.h"
#include "tenpak/sha256.h"

#define ST_MAX_HEADER (100u * 1000u * 1000u)

typedef struct st_file {
    char *path;
    void *map;      /* whole file, PROT_READ; NULL when size == 0 */
    size_t size;
    int borrowed;   /* tp_st_set_wrap: the map belongs to the owner */
} st_file;

struct tp_st_set {
    st_file *files;
    size_t nfiles;
    tp_st_tensor *t;  /* sorted by name once loading ends */
    size_t nt, cap;
    void *owner;      /* tp_st_set_wrap: freed by owner_free at close, after everything else */
    void (*owner_free)(void *);
};

static const struct { const char *name; tp_st_dtype d; size_t size; } DTYPES[] = {
    {"F32", TP_ST_F32, 4},   {"F16", TP_ST_F16, 2},   {"BF16", TP_ST_BF16, 2}, {"F64", TP_ST_F64, 8},
    {"I64", TP_ST_I64, 8},   {"U64", TP_ST_U64, 8},   {"I32", TP_ST_I32, 4},   {"U32", TP_ST_U32, 4},
    {"I16", TP_ST_I16, 2},   {"U16", TP_ST_U16, 2},   {"I8", TP_ST_I8, 1},     {"U8", TP_ST_U8, 1},
    {"BOOL", TP_ST_BOOL, 1}, {"F8_E4M3", TP_ST_F8_E4M3, 1}, {"F8_E5M2", TP_ST_F8_E5M2, 1},
};
#define NDTYPES (sizeof DTYPES / sizeof DTYPES[0])

const char *tp_st_dtype_name(tp_st_dtype d) {
    for (size_t i = 0; i < NDTYPES; i++)
        if (DTYPES[i].d == d) return DTYPES[i].name;
    return "?";
}
size_t tp_st_dtype_size(tp_st_dtype d) {
    for (size_t i = 0; i < NDTYPES; i++)
        if (DTYPES[i].d == d) return DTYPES[i].size;
    return 0;
}
int tp_st_is_float(tp_st_dtype d) { return d == TP_ST_F32 || d == TP_ST_F16 || d == TP_ST_BF16; }

size_t tp_st_count(const tp_st_set *s) { return s->nt; }
const tp_st_tensor *tp_st_at(const tp_st_set *s, size_t i) { return i < s->nt ? &s->t[i] : NULL; }
size_t tp_st_num_files(const tp_st_set *s) { return s->nfiles; }
const char *tp_st_file_path(const tp_st_set *s, size_t i) { return i < s->nfiles ? s->files[i].path : NULL; }
uint64_t tp_st_total_bytes(const tp_st_set *s) {
    uint64_t n = 0;
    for (size_t i = 0; i < s->nfiles; i++) n += s->files[i].size;
    return n;
}

void tp_st_close(tp_st_set *s) {
    if (!s) return;
    for (size_t i = 0; i < s->nfiles; i++) {
        if (s->files[i].map && !s->files[i].borrowed) munmap(s->files[i].map, s->files[i].size);
        free(s->files[i].path);
    }
    for (size_t i = 0; i < s->nt; i++) free((char *)s->t[i].name);
    free(s->files);
    free(s->t);
    if (s->owner_free) s->owner_free(s->owner);
    free(s);
}

void *tp_st_set_owner(const tp_st_set *s, void (*owner_free)(void *)) {
    return s && s->owner_free == owner_free ? s->owner : NULL;
}
static char *dupstr(const char *a);
static tp_status finish(tp_st_set *s, tp_err *e);
tp_status tp_st_set_wrap(const char *path, const void *map, size_t size, const tp_st_tensor *t, size_t n, void *owner,
                         void (*owner_free)(void *), tp_st_set **out, tp_err *e) {
    *out = NULL;
    tp_st_set *s = calloc(1, sizeof *s);
    if (s) { s->owner = owner; s->owner_free = owner_free; }
    if (!s || !(s->files = calloc(1, sizeof *s->files)) || !(s->files[0].path = dupstr(path)) ||
        !(s->t = calloc(n ? n : 1, sizeof *s->t))) {
        if (s) tp_st_close(s);
        else if (owner_free) owner_free(owner);
        return tp_fail(e, TP_ERR_NOMEM, "%s: out of memory", path);
    }
    s->nfiles = 1;
    s->files[0].map = (void *)(uintptr_t)map;
    s->files[0].size = size;
    s->files[0].borrowed = 1;
    for (; s->nt < n; s->nt++) {
        s->t[s->nt] = t[s->nt];
        s->t[s->nt].file = 0;
        if (!(s->t[s->nt].name = dupstr(t[s->nt].name))) { tp_st_close(s); return tp_fail(e, TP_ERR_NOMEM, "%s: out of memory", path); }
    }
    s->cap = n;
    tp_status rc = finish(s, e);
    if (rc != TP_OK) { tp_st_close(s); return rc; }
    *out = s;
    return TP_OK;
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp(((const tp_st_tensor *)a)->name, ((const tp_st_tensor *)b)->name);
}
const tp_st_tensor *tp_st_find(const tp_st_set *s, const char *name) {
    tp_st_tensor key = {.name = name};
    return bsearch(&key, s->t, s->nt, sizeof key, cmp_tensor_name);
}

static char *dupstr(const char *a) {
    size_t n = strlen(a) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, a, n);
    return p;
}

static char *join_path(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (a && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

/* A JSON number that is a non-negative integer exactly representable (< 2^53). */
static int json_u64(const cJSON *j, uint64_t *v) {
    if (!cJSON_IsNumber(j)) return 0;
    double d = j->valuedouble;
    if (!(d >= 0 && d < 9007199254740992.0) || d != (double)(uint64_t)d) return 0;
    *v = (uint64_t)d;
    return 1;
}

typedef struct { size_t idx; uint64_t begin, end; } span;
static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Maps one file and appends its tensors to s (file index fi). */
static tp_status load_file(tp_st_set *s, size_t fi, tp_err *e) {
    st_file *f = &s->files[fi];
    const char *path = f->path;
    int fd = tp_open_input(path, &f->size, e); /* a regular file only (a FIFO would block), the output guard */
    if (fd < 0) return TP_ERR_IO;
    if (f->size < 8) {
        close(fd);
        return tp_fail(e, TP_ERR_FORMAT, "%s: truncated safetensors file (%zu bytes, no header)", path, f->size);
    }
    f->map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        return tp_fail(e, TP_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
    }
    const uint8_t *base = f->map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | base[i];
    if (hlen > ST_MAX_HEADER)
        return tp_fail(e, TP_ERR_FORMAT, "%s: header length %llu is larger than 100 MB (not a safetensors file?)",
                       path, (unsigned long long)hlen);
    if (hlen > f->size - 8)
        return tp_fail(e, TP_ERR_FORMAT, "%s: header length %llu exceeds the file size %zu (truncated?)", path,
                       (unsigned long long)hlen, f->size);
    const char *hdr = (const char *)base + 8;
    const uint8_t *data = base + 8 + hlen;
    uint64_t data_len = f->size - 8 - hlen;
    const char *jend = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen, &jend, 0);
    /* only padding spaces may follow the JSON object inside the header */
    while (root && jend < hdr + hlen && (*jend == ' ' || *jend == '\n' || *jend == '\t' || *jend == '\r' || !*jend)) jend++;
    if (!root || !cJSON_IsObject(root) || jend != hdr + hlen) {
        cJSON_Delete(root);
        return tp_fail(e, TP_ERR_FORMAT, "%s: header is not a well-formed JSON object", path);
    }
    size_t first = s->nt;
    tp_status rc = TP_OK;
    for (cJSON *it = root->child; it; it = it->next) {
        if (!strcmp(it->string, "__metadata__")) continue;
        const char *nm = it->string;
        cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
        cJSON *sh = cJSON_GetObjectItemCaseSensitive(it, "shape");
        cJSON *of = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
        if (!cJSON_IsObject(it) || !cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(of) ||
            cJSON_GetArraySize(of) != 2) {
            rc = tp_fail(e, TP_ERR_FORMAT, "%s: tensor '%s': entry needs dtype, shape and data_offsets [begin, end]",
                         path, nm);
            break;
        }
        size_t di = 0;
        while (di < NDTYPES && strcmp(DTYPES[di].name, dt->valuestring)) di++;
        if (di == NDTYPES) {
            rc = tp_fail(e, TP_ERR_UNSUPPORTED, "%s: tensor '%s': unknown dtype '%s'", path, nm, dt->valuestring);
            break;
        }
        int nd = cJSON_GetArraySize(sh);
        if (nd > TP_ST_MAX_DIMS) {
            rc = tp_fail(e, TP_ERR_UNSUPPORTED, "%s: tensor '%s': %d dimensions (at most %d)", path, nm, nd,
                         TP_ST_MAX_DIMS);
            break;
        }
        if (s->nt == s->cap) {
            size_t nc = s->cap ? 2 * s->cap : 256;
            tp_st_tensor *nt = realloc(s->t, nc * sizeof *nt);
            if (!nt) { rc = tp_fail(e, TP_ERR_NOMEM, "%s: out of memory", path); break; }
            s->t = nt;
            s->cap = nc;
        }
        tp_st_tensor *t = &s->t[s->nt];
        memset(t, 0, sizeof *t);
        t->dtype = DTYPES[di].d;
        t->ndim = nd;
        t->file = (int)fi;
        /* numel * size with overflow checks: every product stays below 2^62 */
        uint64_t numel = 1;
        int bad = 0;
        for (int k = 0; k < nd; k++) {
            uint64_t v;
            if (!json_u64(cJSON_GetArrayItem(sh, k), &v)) { bad = 1; break; }
            t->shape[k] = (int64_t)v;
            if (v && numel > (UINT64_C(1) << 62) / v) { bad = 2; break; }
            numel *= v;
        }
        uint64_t b, en;
        if (!bad && (!json_u64(cJSON_GetArrayItem(of, 0), &b) || !json_u64(cJSON_GetArrayItem(of, 1), &en))) bad = 3;
        if (bad) {
            rc = tp_fail(e, TP_ERR_FORMAT, "%s: tensor '%s': %s", path, nm,
                         bad == 1 ? "shape must be non-negative integers"
                                  : bad == 2 ? "shape too large" : "data_offsets must be non-negative integers");
            break;
        }
        uint64_t nbytes = numel * DTYPES[di].size;
        if (en < b || en - b != nbytes) {
            rc = tp_fail(e, TP_ERR_FORMAT,
                         "%s: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes but shape x %s needs %llu", path,
                         nm, (unsigned long long)b, (unsigned long long)en,
                         (unsigned long long)(en >= b ? en - b : 0), DTYPES[di].name, (unsigned long long)nbytes);
            break;
        }
        if (en > data_len) {
            rc = tp_fail(e, TP_ERR_FORMAT,
                         "%s: tensor '%s': data_offsets end %llu is past the end of the data (%llu bytes; truncated file?)",
                         path, nm, (unsigned long long)en, (unsigned long long)data_len);
            break;
        }
        t->numel = (int64_t)numel;
        t->nbytes = (size_t)nbytes;
        t->data = data + b;
        t->name = dupstr(nm);
        if (!t->name) { rc = tp_fail(e, TP_ERR_NOMEM, "%s: out of memory", path); break; }
        s->nt++;
    }
    if (rc == TP_OK) {
        /* the entries must tile [0, data_len) exactly: sorted by begin, each starts where the last ended */
        size_t n = s->nt - first;
        span *sp = malloc((n ? n : 1) * sizeof *sp);
        if (!sp) rc = tp_fail(e, TP_ERR_NOMEM, "%s: out of memory", path);
        for (size_t i = 0; sp && i < n; i++) {
            const tp_st_tensor *t = &s->t[first + i];
            sp[i].idx = first + i;
            sp[i].begin = (uint64_t)((const uint8_t *)t->data - data);
            sp[i].end = sp[i].begin + t->nbytes;
        }
        if (sp) qsort(sp, n, sizeof *sp, cmp_span);
        uint64_t at = 0;
        for (size_t i = 0; sp && i < n && rc == TP_OK; i++) {
            if (sp[i].begin < at)
                rc = tp_fail(e, TP_ERR_FORMAT, "%s: tensor '%s' overlaps tensor '%s' (header lies about offsets)", path,
                             s->t[sp[i].idx].name, s->t[sp[i - 1].idx].name);
            else if (sp[i].begin > at)
                rc = tp_fail(e, TP_ERR_FORMAT, "%s: hole in the data before tensor '%s' (bytes %llu..%llu unused)",
                             path, s->t[sp[i].idx].name, (unsigned long long)at, (unsigned long long)sp[i].begin);
            at = sp[i].end;
        }
        if (rc == TP_OK && at != data_len)
            rc = tp_fail(e, TP_ERR_FORMAT, "%s: %llu bytes of data after the last tensor (header and size disagree)",
                         path, (unsigned long long)(data_len - at));
        free(sp);
    }
    cJSON_Delete(root);
    return rc;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static tp_status finish(tp_st_set *s, tp_err *e) {
    qsort(s->t, s->nt, sizeof *s->t, cmp_tensor_name);
    for (size_t i = 1; i < s->nt; i++)
        if (!strcmp(s->t[i].name, s->t[i - 1].name))
            return tp_fail(e, TP_ERR_FORMAT, "%s: tensor '%s' is also in %s", s->files[s->t[i].file].path,
                           s->t[i].name, s->files[s->t[i - 1].file].path);
    return TP_OK;
}

tp_status tp_st_open_file(const char *path, tp_st_set **out, tp_err *e) {
    *out = NULL;
    tp_st_set *s = calloc(1, sizeof *s);
    if (!s || !(s->files = calloc(1, sizeof *s->files)) || !(s->files[0].path = dupstr(path))) {
        tp_st_close(s);
        return tp_fail(e, TP_ERR_NOMEM, "%s: out of memory", path);
    }
    s->nfiles = 1;
    tp_status rc = load_file(s, 0, e);
    if (rc == TP_OK) rc = finish(s, e);
    if (rc != TP_OK) { tp_st_close(s); return rc; }
    *out = s;
    return TP_OK;
}

tp_status tp_model_files_open(const char *dir, tp_st_set **out, tp_err *e) {
    *out = NULL;
    char *ipath = join_path(dir, "model.safetensors.index.json");
    if (!ipath) return tp_fail(e, TP_ERR_NOMEM, "out of memory");
    if (access(ipath, F_OK) != 0) {
        free(ipath);
        char *p = join_path(dir, "model.safetensors");
        if (!p) return tp_fail(e, TP_ERR_NOMEM, "out of memory");
        tp_status rc = TP_OK;
        if (access(p, F_OK) != 0)
            rc = tp_fail(e, TP_ERR_IO, "%s: no model.safetensors or model.safetensors.index.json in this folder", dir);
        else
            rc = tp_st_open_file(p, out, e);
        free(p);
        return rc;
    }
    size_t ilen;
    char *itext = tp_read_file(ipath, &ilen, e);
    if (!itext) { free(ipath); return TP_ERR_IO; }
    cJSON *root = cJSON_ParseWithLength(itext, ilen);
    free(itext);
    tp_status rc = TP_OK;
    tp_st_set *s = NULL;
    char **names = NULL;
    size_t nnames = 0;
    cJSON *wm = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!root || !cJSON_IsObject(root)) {
        rc = tp_fail(e, TP_ERR_FORMAT, "%s: not a well-formed JSON object", ipath);
        goto done;
    }
    if (!cJSON_IsObject(wm)) {
        rc = tp_fail(e, TP_ERR_FORMAT, "%s: no \"weight_map\" object", ipath);
        goto done;
    }
    /* unique shard names, sorted; names must be plain file names inside dir */
    int nmap = cJSON_GetArraySize(wm);
    names = calloc((size_t)(nmap ? nmap : 1), sizeof *names);
    if (!names) { rc = tp_fail(e, TP_ERR_NOMEM, "out of memory"); goto done; }
    for (cJSON *it = wm->child; it; it = it->next) {
        if (!cJSON_IsString(it) || !it->valuestring[0] || strchr(it->valuestring, '/') ||
            !strcmp(it->valuestring, "..")) {
            rc = tp_fail(e, TP_ERR_FORMAT, "%s: weight_map entry '%s' is not a plain file name", ipath, it->string);
            goto done;
        }
        names[nnames++] = it->valuestring;
    }
    if (!nnames) { rc = tp_fail(e, TP_ERR_FORMAT, "%s: weight_map is empty", ipath); goto done; }
    qsort(names, nnames, sizeof *names, cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < nnames; i++)
        if (!u || strcmp(names[u - 1], names[i])) names[u++] = names[i];
    nnames = u;
    s = calloc(1, sizeof *s);
    if (!s || !(s->files = calloc(nnames, sizeof *s->files))) {
        rc = tp_fail(e, TP_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < nnames; i++) {
        s->files[i].path = join_path(dir, names[i]);
        if (!s->files[i].path) { rc = tp_fail(e, TP_ERR_NOMEM, "out of memory"); goto done; }
        s->nfiles = i + 1;
        if (access(s->files[i].path, F_OK) != 0) {
            rc = tp_fail(e, TP_ERR_IO, "%s: missing shard (listed in %s)", s->files[i].path, ipath);
            goto done;
        }
    }
    for (size_t i = 0; i < nnames && rc == TP_OK; i++) rc = load_file(s, i, e);
    if (rc == TP_OK) rc = finish(s, e);
    /* every tensor the index names must be in the shard it names */
    for (cJSON *it = wm->child; it && rc == TP_OK; it = it->next) {
        const tp_st_tensor *t = tp_st_find(s, it->string);
        if (!t || strcmp(strrchr(s->files[t->file].path, '/') ? strrchr(s->files[t->file].path, '/') + 1
                                                              : s->files[t->file].path,
                         it->valuestring))
            rc = tp_fail(e, TP_ERR_FORMAT, "%s: tensor '%s' is not in shard %s", ipath, it->string, it->valuestring);
    }
done:
    cJSON_Delete(root);
    free(names);
    free(ipath);
    if (rc != TP_OK) { tp_st_close(s); return rc; }
    *out = s;
    return TP_OK;
}

/* ---- conversion ---- */
static void convert(tp_st_dtype d, const uint8_t *src, size_t n, float *dst) {
    switch (d) {
    case TP_ST_F32: memcpy(dst, src, n * 4); break;
    case TP_ST_F16: tp_f16_to_f32_cpu(src, dst, n); break;
    case TP_ST_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = tp_bf16_to_f32(h);
        }
        break;
    default: memset(dst, 0, n * sizeof *dst); break;
    }
}

void tp_st_to_f32(const tp_st_tensor *t, float *dst) { convert(t->dtype, t->data, (size_t)t->numel, dst); }

void tp_st_rows_to_f32(const tp_st_tensor *t, int64_t row0, int64_t nrows, float *dst) {
    int64_t rows = t->ndim ? t->shape[0] : 1;
    int64_t cols = rows ? t->numel / rows : 0;
    size_t es = tp_st_dtype_size(t->dtype);
    convert(t->dtype, (const uint8_t *)t->data + (size_t)(row0 * cols) * es, (size_t)(nrows * cols), dst);
}

/* Hashing reads every byte of the checkpoint; the pages it brought in are dropped again chunk by
 * chunk (the maps are private and read-only: a later read faults the same bytes back from the
 * page cache), so fingerprinting a model does not make the whole file resident: what the forward
 * pass never touches (e.g. the fp16 weights behind a compressed artifact) stays out of its RSS. */
#define HASH_CHUNK ((size_t)4 << 20) /* the most of a file this adds to the peak RSS */
tp_status tp_st_sha256(const tp_st_set *s, uint8_t out[32], tp_err *e) {
    (void)e; /* the files are mapped: hashing cannot fail after open */
    tp_sha256_ctx h;
    tp_sha256_init(&h);
    for (size_t i = 0; i < s->nfiles; i++) {
        const uint8_t *m = s->files[i].map;
        for (size_t off = 0; m && off < s->files[i].size; off += HASH_CHUNK) {
            size_t n = s->files[i].size - off < HASH_CHUNK ? s->files[i].size - off : HASH_CHUNK;
            tp_sha256_update(&h, m + off, n);
            madvise((void *)(uintptr_t)(m + off), n, MADV_DONTNEED); /* off is page-aligned (64 MiB steps) */
        }
    }
    tp_sha256_final(&h, out);
    return TP_OK;
}
