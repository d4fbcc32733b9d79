/* The .tpk artifact: streaming writer and validating reader. Format in pipeline/artifact.h. */
#include "pipeline/artifact.h"

#include "tenpak/files.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#define ART_VERSION 1
#define FOOTER_BYTES 40
#define RECORD_ALIGN 64 /* records start on 64-byte offsets, so a packed model can point into the map */
static const char FOOT_MAGIC[8] = {'T', 'P', 'K', 'F', 'O', 'O', 'T', '1'};

static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}
static void hex64(uint64_t v, char out[17]) { snprintf(out, 17, "%016" PRIx64, v); }

const char *tp_json_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int tp_json_int(const cJSON *x, int64_t lo, int64_t hi, int64_t *v) {
    if (!cJSON_IsNumber(x)) return 0;
    const double d = x->valuedouble;
    if (!(d >= (double)lo && d <= (double)hi) || d != floor(d)) return 0;
    *v = (int64_t)d;
    return 1;
}

struct tp_art_writer {
    char *path, *tmp;
    FILE *f;
    XXH64_state_t *h;
    uint64_t pos;
    cJSON *tensors;
};

static tp_status w_write(tp_art_writer *w, const void *p, size_t n, tp_err *e) {
    if (n && fwrite(p, 1, n, w->f) != n)
        return tp_fail(e, TP_ERR_IO, "%s: write failed: %s", w->path, strerror(errno));
    XXH64_update(w->h, p, n);
    w->pos += n;
    return TP_OK;
}

tp_status tp_artw_open(const char *path, tp_art_writer **out, tp_err *e) {
    tp_art_writer *w = calloc(1, sizeof *w);
    if (!w) return tp_fail(e, TP_ERR_NOMEM, "out of memory");
    w->path = strdup(path);
    w->h = XXH64_createState();
    w->tensors = cJSON_CreateArray();
    if (!w->path || !w->h || !w->tensors) {
        tp_artw_abort(w);
        return tp_fail(e, TP_ERR_NOMEM, "out of memory");
    }
    /* the output guard's checks, and a temporary file removed on failure and on SIGINT/SIGTERM */
    int fd;
    tp_status s = tp_tmp_open(path, &fd, &w->tmp, e);
    if (s != TP_OK) {
        tp_artw_abort(w);
        return s;
    }
    if (!(w->f = fdopen(fd, "wb"))) {
        close(fd);
        tp_artw_abort(w);
        return tp_fail(e, TP_ERR_NOMEM, "out of memory");
    }
    XXH64_reset(w->h, 0);
    uint8_t pre[16] = {'T', 'P', 'A', 'K', ART_VERSION, 0, 0, 0};
    s = w_write(w, pre, sizeof pre, e);
    if (s != TP_OK) {
        tp_artw_abort(w);
        return s;
    }
    *out = w;
    return TP_OK;
}

uint64_t tp_artw_payload_bytes(const tp_art_writer *w) { return w->pos - 16; }

int tp_lossless_level(const char *spec) {
    if (!spec || !strcmp(spec, "none")) return 0;
    if (!strcmp(spec, "zstd")) return 19;
    if (strncmp(spec, "zstd:", 5) || !spec[5]) return -1;
    char *end;
    long v = strtol(spec + 5, &end, 10);
    return *end || v < 1 || v > 22 ? -1 : (int)v;
}

tp_status tp_artw_add(tp_art_writer *w, cJSON *rec, const void *data, size_t len, const char *lossless, tp_err *e) {
    const void *store = data;
    size_t slen = len;
    void *z = NULL;
    const int level = tp_lossless_level(lossless);
    if (level > 0) {
        lossless = "zstd"; /* the record says how to decode it; the level is the writer's choice */
        size_t cap = ZSTD_compressBound(len);
        z = malloc(cap ? cap : 1);
        if (!z) { cJSON_Delete(rec); return tp_fail(e, TP_ERR_NOMEM, "out of memory"); }
        size_t r = ZSTD_compress(z, cap, data, len, level);
        if (ZSTD_isError(r)) {
            free(z);
            cJSON_Delete(rec);
            return tp_fail(e, TP_ERR_INTERNAL, "zstd: %s", ZSTD_getErrorName(r));
        }
        /* keep the smaller: an incompressible record is stored as it is */
        if (r < len) { store = z; slen = r; }
        else lossless = "none";
    } else if (level < 0) {
        cJSON_Delete(rec);
        return tp_fail(e, TP_ERR_ARG, "unknown lossless stage '%s' (none, zstd or zstd:LEVEL 1..22)", lossless);
    }
    static const uint8_t zeros[RECORD_ALIGN];
    tp_status s = w_write(w, zeros, (size_t)((RECORD_ALIGN - w->pos % RECORD_ALIGN) % RECORD_ALIGN), e);
    if (s != TP_OK) { free(z); cJSON_Delete(rec); return s; }
    char hx[17];
    hex64(XXH64(store, slen, 0), hx);
    cJSON_AddNumberToObject(rec, "offset", (double)w->pos);
    cJSON_AddNumberToObject(rec, "length", (double)slen);
    cJSON_AddNumberToObject(rec, "decoded_length", (double)len);
    cJSON_AddStringToObject(rec, "lossless", lossless);
    cJSON_AddStringToObject(rec, "xxh64", hx);
    cJSON_AddItemToArray(w->tensors, rec);
    s = w_write(w, store, slen, e);
    free(z);
    return s;
}

void tp_artw_abort(tp_art_writer *w) {
    if (!w) return;
    if (w->f) fclose(w->f);
    tp_tmp_discard(w->tmp); /* NULL once renamed into place */
    if (w->h) XXH64_freeState(w->h);
    cJSON_Delete(w->tensors);
    free(w->path);
    free(w);
}

tp_status tp_artw_finish(tp_art_writer *w, cJSON *header, uint64_t *file_bytes, tp_err *e) {
    cJSON_AddItemToObject(header, "tensors", w->tensors);
    w->tensors = NULL;
    char *text = cJSON_PrintUnformatted(header);
    cJSON_Delete(header);
    if (!text) { tp_artw_abort(w); return tp_fail(e, TP_ERR_NOMEM, "out of memory"); }
    size_t hl = strlen(text);
    uint64_t hoff = w->pos;
    tp_status s = w_write(w, text, hl, e);
    uint8_t foot[FOOTER_BYTES];
    put_u64(foot, hoff);
    put_u64(foot + 8, hl);
    put_u64(foot + 16, XXH64(text, hl, 0));
    free(text);
    if (s == TP_OK) s = w_write(w, foot, 24, e);
    if (s == TP_OK) {
        uint8_t tail[16];
        put_u64(tail, XXH64_digest(w->h));
        memcpy(tail + 8, FOOT_MAGIC, 8);
        if (fwrite(tail, 1, 16, w->f) != 16) s = tp_fail(e, TP_ERR_IO, "%s: write failed", w->path);
        w->pos += 16;
    }
    if (s == TP_OK && (fflush(w->f) != 0 || fsync(fileno(w->f)) != 0))
        s = tp_fail(e, TP_ERR_IO, "%s: write failed: %s", w->path, strerror(errno));
    if (s == TP_OK) {
        fchmod(fileno(w->f), 0644);
        fclose(w->f);
        w->f = NULL;
        s = tp_tmp_commit(w->tmp, w->path, e); /* removes the temporary file if the rename fails */
        w->tmp = NULL;
    }
    if (file_bytes) *file_bytes = w->pos;
    tp_artw_abort(w); /* frees; removes the temporary file if it is still there */
    return s;
}

/* ---- reader ---- */
static int get_u64_field(const cJSON *o, const char *k, uint64_t *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > 9.0e15) return 0;
    *v = (uint64_t)x->valuedouble;
    return (double)*v == x->valuedouble;
}

typedef struct span { uint64_t off, len; const char *name; } span;
static int cmp_span(const void *a, const void *b) {
    uint64_t x = ((const span *)a)->off, y = ((const span *)b)->off;
    return (x > y) - (x < y);
}
static int cmp_span_name(const void *a, const void *b) { return strcmp(((const span *)a)->name, ((const span *)b)->name); }

tp_status tp_artifact_open(const char *path, tp_artifact *a, tp_err *e) {
    memset(a, 0, sizeof *a);
    /* mapped, not read: a packed model's kernels read the records where they lie. Private and
     * writable, so the self-test can flip a loaded code without touching the file. */
    size_t n;
    int fd = tp_open_input(path, &n, e); /* a regular file only, never blocking; the output guard */
    if (fd < 0) return TP_ERR_IO;
    uint8_t *d = n ? mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0) : NULL;
    close(fd);
    if (n && d == MAP_FAILED) return tp_fail(e, TP_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
    a->path = strdup(path);
    a->data = d;
    a->size = n;
    tp_status s = TP_ERR_FORMAT;
    if (n < 16 + FOOTER_BYTES || memcmp(d, "TPAK", 4)) { tp_fail(e, s, "%s: not a tenpak artifact (bad magic or too short)", path); goto bad; }
    if (d[4] != ART_VERSION) { tp_fail(e, s, "%s: artifact format version %d, this tenpak reads %d", path, d[4], ART_VERSION); goto bad; }
    const uint8_t *foot = d + n - FOOTER_BYTES;
    if (memcmp(foot + 32, FOOT_MAGIC, 8)) { tp_fail(e, s, "%s: truncated artifact (footer missing)", path); goto bad; }
    if (XXH64(d, n - 16, 0) != get_u64(foot + 24)) {
        tp_fail(e, TP_ERR_CHECKSUM, "%s: file checksum mismatch (damaged or truncated)", path);
        s = TP_ERR_CHECKSUM;
        goto bad;
    }
    uint64_t hoff = get_u64(foot), hlen = get_u64(foot + 8);
    if (hoff < 16 || hlen > n || hoff > n - FOOTER_BYTES - hlen) { tp_fail(e, s, "%s: header offset/length out of range", path); goto bad; }
    if (XXH64(d + hoff, hlen, 0) != get_u64(foot + 16)) { tp_fail(e, TP_ERR_CHECKSUM, "%s: header checksum mismatch", path); s = TP_ERR_CHECKSUM; goto bad; }
    a->header = cJSON_ParseWithLength((const char *)d + hoff, hlen);
    if (!a->header) { tp_fail(e, s, "%s: header is not valid JSON", path); goto bad; }
    a->tensors = cJSON_GetObjectItemCaseSensitive(a->header, "tensors");
    if (!cJSON_IsArray(a->tensors) || !tp_json_str(a->header, "codec")) { tp_fail(e, s, "%s: header lacks tensors or codec", path); goto bad; }
    int nt = cJSON_GetArraySize(a->tensors);
    span *sp = malloc((size_t)(nt ? nt : 1) * sizeof *sp);
    if (!sp) { s = tp_fail(e, TP_ERR_NOMEM, "out of memory"); goto bad; }
    int i = 0;
    const cJSON *rec;
    cJSON_ArrayForEach(rec, a->tensors) {
        uint64_t off, len, dlen;
        const char *name = tp_json_str(rec, "name");
        if (!name || !tp_json_str(rec, "codec") || !tp_json_str(rec, "xxh64") || !tp_json_str(rec, "lossless") ||
            !get_u64_field(rec, "offset", &off) || !get_u64_field(rec, "length", &len) ||
            !get_u64_field(rec, "decoded_length", &dlen)) {
            free(sp);
            tp_fail(e, s, "%s: tensor record %d is incomplete", path, i);
            goto bad;
        }
        if (off < 16 || len > hoff || off > hoff - len) {
            free(sp);
            tp_fail(e, s, "%s: tensor %s lies outside the payload (offset %" PRIu64 ", length %" PRIu64 ")", path, name, off, len);
            goto bad;
        }
        sp[i].off = off;
        sp[i].name = name;
        sp[i++].len = len;
    }
    /* one record per tensor: a second record of a name would replace (or hide) the first */
    qsort(sp, (size_t)i, sizeof *sp, cmp_span_name);
    for (int k = 1; k < i; k++)
        if (!strcmp(sp[k - 1].name, sp[k].name)) {
            tp_fail(e, s, "%s: tensor %s has two records", path, sp[k].name);
            free(sp);
            goto bad;
        }
    qsort(sp, (size_t)i, sizeof *sp, cmp_span);
    for (int k = 1; k < i; k++)
        if (sp[k - 1].off + sp[k - 1].len > sp[k].off) {
            free(sp);
            tp_fail(e, s, "%s: two tensor records overlap", path);
            goto bad;
        }
    free(sp);
    return TP_OK;
bad:
    tp_artifact_close(a);
    return s;
}

void tp_artifact_close(tp_artifact *a) {
    cJSON_Delete(a->header);
    if (a->data) munmap(a->data, a->size);
    free(a->path);
    memset(a, 0, sizeof *a);
}

tp_status tp_artifact_record_view(const tp_artifact *a, const cJSON *rec, const uint8_t **data, size_t *len,
                                  uint8_t **owned, tp_err *e) {
    uint64_t off = 0, slen = 0, dlen = 0;
    const char *name = tp_json_str(rec, "name"), *ll = tp_json_str(rec, "lossless");
    *owned = NULL;
    /* tp_artifact_open checked every record's fields and bounds */
    if (!get_u64_field(rec, "offset", &off) || !get_u64_field(rec, "length", &slen) ||
        !get_u64_field(rec, "decoded_length", &dlen) || !ll || !name || dlen > ((uint64_t)1 << 40))
        return tp_fail(e, TP_ERR_FORMAT, "%s: bad tensor record", a->path);
    char hx[17];
    hex64(XXH64(a->data + off, slen, 0), hx);
    if (strcmp(hx, tp_json_str(rec, "xxh64")))
        return tp_fail(e, TP_ERR_CHECKSUM, "%s: tensor %s fails its checksum", a->path, name);
    if (!strcmp(ll, "none")) {
        if (slen != dlen) return tp_fail(e, TP_ERR_FORMAT, "%s: tensor %s: stored and decoded lengths differ", a->path, name);
        *data = a->data + off;
        *len = slen;
        return TP_OK;
    }
    if (strcmp(ll, "zstd")) return tp_fail(e, TP_ERR_FORMAT, "%s: tensor %s: unknown lossless stage '%s'", a->path, name, ll);
    uint8_t *buf = tp_alloc(dlen ? dlen : 1);
    if (!buf) return tp_fail(e, TP_ERR_NOMEM, "out of memory (%" PRIu64 " bytes)", dlen);
    size_t r = ZSTD_decompress(buf, dlen, a->data + off, slen);
    if (ZSTD_isError(r) || r != dlen) {
        tp_free(buf);
        return tp_fail(e, TP_ERR_FORMAT, "%s: tensor %s: zstd stream is corrupt", a->path, name);
    }
    *data = *owned = buf;
    *len = dlen;
    return TP_OK;
}

tp_status tp_artifact_read_record(const tp_artifact *a, const cJSON *rec, uint8_t **out, size_t *len, tp_err *e) {
    const uint8_t *p;
    uint8_t *owned;
    tp_status s = tp_artifact_record_view(a, rec, &p, len, &owned, e);
    if (s != TP_OK) return s;
    if (owned) { *out = owned; return TP_OK; }
    if (!(*out = tp_alloc(*len ? *len : 1))) return tp_fail(e, TP_ERR_NOMEM, "out of memory (%zu bytes)", *len);
    memcpy(*out, p, *len);
    return TP_OK;
}
