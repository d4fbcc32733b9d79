/* tokenizer.json BPE: see tokenizer.h. The stages follow tokenizers' pipeline exactly:
 * added-token split -> normalisers -> pre-tokenizers -> BPE per piece -> post-processor. */
#include "pipeline/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <cjson/cJSON.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* ---- small growable buffers ---- */
typedef struct bytes { char *p; size_t n, cap; } bytes;
static int b_reserve(bytes *b, size_t extra) {
    if (b->n + extra <= b->cap) return 1;
    size_t nc = b->cap ? b->cap : 256;
    while (nc < b->n + extra) nc *= 2;
    char *np = realloc(b->p, nc);
    if (!np) return 0;
    b->p = np;
    b->cap = nc;
    return 1;
}
static int b_put(bytes *b, const void *s, size_t n) {
    if (!n) return 1; /* b->p may still be NULL */
    if (!b_reserve(b, n)) return 0;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    return 1;
}

typedef struct ivec { int32_t *p; size_t n, cap; } ivec;
static int iv_push(ivec *v, int32_t x) {
    if (v->n == v->cap) {
        size_t nc = v->cap ? 2 * v->cap : 1024;
        int32_t *np = realloc(v->p, nc * sizeof *np);
        if (!np) return 0;
        v->p = np;
        v->cap = nc;
    }
    v->p[v->n++] = x;
    return 1;
}

/* Pieces: spans of one byte arena. */
typedef struct pieces { bytes buf; size_t *off, *len; size_t n, cap; } pieces;
static int pc_add(pieces *p, const char *s, size_t n) {
    if (!n) return 1; /* tokenizers drops empty splits */
    if (p->n == p->cap) {
        size_t nc = p->cap ? 2 * p->cap : 256;
        size_t *o = realloc(p->off, nc * sizeof *o), *l;
        if (!o) return 0;
        p->off = o;
        if (!(l = realloc(p->len, nc * sizeof *l))) return 0;
        p->len = l;
        p->cap = nc;
    }
    p->off[p->n] = p->buf.n;
    p->len[p->n] = n;
    if (!b_put(&p->buf, s, n)) return 0;
    p->n++;
    return 1;
}
static void pc_clear(pieces *p) { p->n = 0; p->buf.n = 0; }
static void pc_free(pieces *p) { free(p->buf.p); free(p->off); free(p->len); }

/* ---- UTF-8 ---- */
/* Length of the UTF-8 sequence at s (1 for an invalid byte, so every byte is covered once). */
static size_t u8len(const unsigned char *s, size_t left) {
    unsigned c = s[0];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    if (n > left) return 1;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80) return 1;
    return n;
}
static uint32_t u8dec(const unsigned char *s, size_t n) {
    if (n == 1) return s[0];
    uint32_t c = s[0] & (0x7f >> n);
    for (size_t i = 1; i < n; i++) c = c << 6 | (s[i] & 0x3f);
    return c;
}
static int valid_utf8(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t k = u8len(s + i, n - i);
        if (k == 1 && s[i] >= 0x80) return 0;
        i += k;
    }
    return 1;
}

/* GPT-2's bytes_to_unicode: printable bytes map to themselves, the other 68 to 256.. in order. */
static uint32_t byte_cp[256];
static int16_t cp_byte[512]; /* inverse over code points < 512, -1 if none */
static void byte_map_init(void) {
    if (byte_cp['!']) return;
    for (int i = 0; i < 512; i++) cp_byte[i] = -1;
    int k = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
        byte_cp[b] = printable ? (uint32_t)b : (uint32_t)(256 + k++);
        cp_byte[byte_cp[b]] = (int16_t)b;
    }
}
/* Byte-level string (as in vocab.json) -> raw bytes; 0 if some char is not in the map. */
static int unmap_bytes(const char *s, size_t n, bytes *out) {
    out->n = 0;
    for (size_t i = 0; i < n;) {
        size_t k = u8len((const unsigned char *)s + i, n - i);
        uint32_t c = u8dec((const unsigned char *)s + i, k);
        if (c >= 512 || cp_byte[c] < 0) return 0;
        char b = (char)cp_byte[c];
        if (!b_put(out, &b, 1)) return 0;
        i += k;
    }
    return 1;
}

/* ---- the tokenizer ---- */
typedef enum { PT_BYTELEVEL, PT_SPLIT, PT_METASPACE, PT_DIGITS } pt_kind;
typedef struct pretok {
    pt_kind kind;
    int add_prefix_space, use_regex;     /* ByteLevel */
    pcre2_code *re;                      /* Split / ByteLevel regex */
    int removed;                         /* Split behaviour: Removed (else Isolated) */
    char repl[8]; size_t repl_len;       /* Metaspace */
    int prepend_scheme, split;           /* 0 never, 1 first, 2 always */
    int individual_digits;               /* Digits */
} pretok;

typedef enum { NM_PREPEND, NM_REPLACE, NM_NFC } nm_kind;
typedef struct norm { nm_kind kind; char *a, *b; size_t alen, blen; } norm;

typedef enum { DC_BYTELEVEL, DC_REPLACE, DC_BYTEFALLBACK, DC_FUSE, DC_STRIP, DC_METASPACE } dc_kind;
typedef struct dec {
    dc_kind kind;
    char *a, *b; size_t alen, blen; /* Replace a -> b; Metaspace replacement in a */
    char strip[8]; size_t strip_len; int start, stop;
    int prepend;
} dec;

typedef struct added { char *s; size_t len; int32_t id; int special; } added;

struct tp_tokenizer {
    char *path;
    int byte_level;
    char **tok; size_t *toklen; int32_t ntok; /* by id; NULL where no token */
    uint8_t *is_special;                      /* by id */
    int32_t *vh; size_t vh_mask;              /* bytes -> id, open addressing, -1 empty */
    uint64_t *mk; uint32_t *mrank; int32_t *mnew; size_t mh_mask; /* (a,b) -> rank, new id */
    int32_t byte_id[256]; /* byte-level: id of each single byte; SentencePiece: id of <0xNN> */
    int byte_fallback, fuse_unk, ignore_merges;
    int32_t unk_id;
    norm *norms; int nnorm;
    pretok *pts; int npt;
    dec *decs; int ndec;
    added *add; int nadd;
    uint8_t add_first[256];
    int32_t *prefix, *suffix; size_t nprefix, nsuffix;
};

const char *tp_tokenizer_kind(const tp_tokenizer *t) { return t->byte_level ? "byte-level BPE" : "SentencePiece BPE"; }
int tp_tokenizer_vocab_size(const tp_tokenizer *t) { return t->ntok; }
const char *tp_tokenizer_piece(const tp_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->ntok || !t->tok[id]) return NULL;
    if (len) *len = t->toklen[id];
    return t->tok[id];
}
size_t tp_tokenizer_prefix(const tp_tokenizer *t, const int32_t **ids) { *ids = t->prefix; return t->nprefix; }
size_t tp_tokenizer_suffix(const tp_tokenizer *t, const int32_t **ids) { *ids = t->suffix; return t->nsuffix; }

void tp_tokenizer_free(tp_tokenizer *t) {
    if (!t) return;
    for (int32_t i = 0; i < t->ntok; i++) free(t->tok[i]);
    free(t->tok); free(t->toklen); free(t->is_special); free(t->vh);
    free(t->mk); free(t->mrank); free(t->mnew);
    for (int i = 0; i < t->nnorm; i++) { free(t->norms[i].a); free(t->norms[i].b); }
    for (int i = 0; i < t->npt; i++) pcre2_code_free(t->pts[i].re);
    for (int i = 0; i < t->ndec; i++) { free(t->decs[i].a); free(t->decs[i].b); }
    for (int i = 0; i < t->nadd; i++) free(t->add[i].s);
    free(t->norms); free(t->pts); free(t->decs); free(t->add); free(t->prefix); free(t->suffix); free(t->path);
    free(t);
}

static uint64_t hbytes(const char *s, size_t n) { return XXH3_64bits(s, n); }
static int32_t vocab_get(const tp_tokenizer *t, const char *s, size_t n) {
    for (size_t i = hbytes(s, n) & t->vh_mask;; i = (i + 1) & t->vh_mask) {
        int32_t id = t->vh[i];
        if (id < 0) return -1;
        if (t->toklen[id] == n && !memcmp(t->tok[id], s, n)) return id;
    }
}
static inline uint64_t mkey(int32_t a, int32_t b) { return (uint64_t)(uint32_t)a << 32 | (uint32_t)b; }
static inline size_t mslot(uint64_t k) { return (size_t)((k * 0x9E3779B97F4A7C15ull) >> 20); }
/* index of pair (a, b) in the merge table, or -1 */
static inline long merge_find(const tp_tokenizer *t, int32_t a, int32_t b) {
    uint64_t k = mkey(a, b);
    for (size_t i = mslot(k) & t->mh_mask;; i = (i + 1) & t->mh_mask) {
        if (t->mnew[i] < 0) return -1;
        if (t->mk[i] == k) return (long)i;
    }
}

/* ---- loading ---- */
typedef struct ld { tp_tokenizer *t; const char *path; tp_err *e; tp_status rc; } ld;
#define LFAIL(L, code, ...) ((L)->rc = tp_fail((L)->e, code, __VA_ARGS__))

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(j) ? j->valuestring : NULL;
}
static int jbool(const cJSON *o, const char *k, int d) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsBool(j) ? cJSON_IsTrue(j) : d;
}
static char *dupn(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (p) { memcpy(p, s, n); p[n] = 0; }
    return p;
}

/* tokenizers' patterns use Oniguruma, whose \s also matches U+0085 (PCRE2's UCP \s does not). */
static char *translate_regex(const char *pat) {
    bytes o = {0};
    int in_class = 0;
    for (const char *p = pat; *p; p++) {
        if (*p == '\\' && p[1]) {
            if (p[1] == 's') { if (!b_put(&o, in_class ? "\\s\\x{85}" : "[\\s\\x{85}]", in_class ? 8 : 10)) goto oom; p++; continue; }
            if (p[1] == 'S' && !in_class) { if (!b_put(&o, "[^\\s\\x{85}]", 11)) goto oom; p++; continue; }
            if (!b_put(&o, p, 2)) goto oom;
            p++;
            continue;
        }
        if (*p == '[' && !in_class) in_class = 1;
        else if (*p == ']' && in_class) in_class = 0;
        if (!b_put(&o, p, 1)) goto oom;
    }
    if (!b_put(&o, "", 1)) goto oom;
    return o.p;
oom:
    free(o.p);
    return NULL;
}

static pcre2_code *compile_re(ld *L, const char *pat, int literal) {
    char *tr = literal ? dupn(pat, strlen(pat)) : translate_regex(pat);
    if (!tr) { LFAIL(L, TP_ERR_NOMEM, "%s: out of memory", L->path); return NULL; }
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)tr, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | (literal ? PCRE2_LITERAL : 0),
                                   &err, &off, NULL);
    free(tr);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof msg);
        LFAIL(L, TP_ERR_UNSUPPORTED, "%s: regex '%s' does not compile (at %zu: %s)", L->path, pat, (size_t)off,
              (char *)msg);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* optional speed-up; the interpreter is the fallback */
    return re;
}

static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static void add_pretok(ld *L, const cJSON *p) {
    if (L->rc != TP_OK || !p || cJSON_IsNull(p)) return;
    tp_tokenizer *t = L->t;
    const char *ty = jstr(p, "type");
    if (!ty) { LFAIL(L, TP_ERR_FORMAT, "%s: pre_tokenizer without a type", L->path); return; }
    if (!strcmp(ty, "Sequence")) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
        const cJSON *it;
        cJSON_ArrayForEach(it, arr) add_pretok(L, it);
        return;
    }
    pretok *np = realloc(t->pts, (size_t)(t->npt + 1) * sizeof *np);
    if (!np) { LFAIL(L, TP_ERR_NOMEM, "%s: out of memory", L->path); return; }
    t->pts = np;
    pretok *q = &t->pts[t->npt];
    memset(q, 0, sizeof *q);
    if (!strcmp(ty, "ByteLevel")) {
        q->kind = PT_BYTELEVEL;
        q->add_prefix_space = jbool(p, "add_prefix_space", 0);
        q->use_regex = jbool(p, "use_regex", 1);
        if (q->use_regex && !(q->re = compile_re(L, GPT2_PATTERN, 0))) return;
        t->byte_level = 1;
    } else if (!strcmp(ty, "Split")) {
        q->kind = PT_SPLIT;
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const char *rx = jstr(pat, "Regex"), *lit = jstr(pat, "String");
        const char *beh = jstr(p, "behavior");
        if ((!rx && !lit) || !beh) { LFAIL(L, TP_ERR_FORMAT, "%s: Split pre-tokenizer needs pattern and behavior", L->path); return; }
        if (jbool(p, "invert", 0) || (strcmp(beh, "Isolated") && strcmp(beh, "Removed"))) {
            LFAIL(L, TP_ERR_UNSUPPORTED, "%s: Split pre-tokenizer with behavior '%s'%s is not supported", L->path, beh,
                  jbool(p, "invert", 0) ? " and invert" : "");
            return;
        }
        q->removed = !strcmp(beh, "Removed");
        if (!(q->re = compile_re(L, rx ? rx : lit, !rx))) return;
    } else if (!strcmp(ty, "Metaspace")) {
        q->kind = PT_METASPACE;
        const char *r = jstr(p, "replacement");
        if (!r) r = "\xe2\x96\x81";
        q->repl_len = strlen(r) < sizeof q->repl ? strlen(r) : 0;
        memcpy(q->repl, r, q->repl_len);
        const char *ps = jstr(p, "prepend_scheme");
        q->prepend_scheme = ps ? (!strcmp(ps, "always") ? 2 : !strcmp(ps, "first") ? 1 : 0)
                               : (jbool(p, "add_prefix_space", 1) ? 2 : 0);
        q->split = jbool(p, "split", 1);
    } else if (!strcmp(ty, "Digits")) {
        q->kind = PT_DIGITS;
        q->individual_digits = jbool(p, "individual_digits", 0);
    } else {
        LFAIL(L, TP_ERR_UNSUPPORTED, "%s: pre-tokenizer '%s' is not supported", L->path, ty);
        return;
    }
    t->npt++;
}

static void add_norm(ld *L, const cJSON *n) {
    if (L->rc != TP_OK || !n || cJSON_IsNull(n)) return;
    tp_tokenizer *t = L->t;
    const char *ty = jstr(n, "type");
    if (!ty) { LFAIL(L, TP_ERR_FORMAT, "%s: normalizer without a type", L->path); return; }
    if (!strcmp(ty, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(n, "normalizers")) add_norm(L, it);
        return;
    }
    norm q = {0};
    if (!strcmp(ty, "Prepend")) {
        const char *s = jstr(n, "prepend");
        if (!s) { LFAIL(L, TP_ERR_FORMAT, "%s: Prepend normalizer without 'prepend'", L->path); return; }
        q.kind = NM_PREPEND;
        q.a = dupn(s, q.alen = strlen(s));
    } else if (!strcmp(ty, "Replace")) {
        const char *s = jstr(cJSON_GetObjectItemCaseSensitive(n, "pattern"), "String"), *c = jstr(n, "content");
        if (!s || !c || !*s) {
            LFAIL(L, TP_ERR_UNSUPPORTED, "%s: Replace normalizer: only a non-empty String pattern is supported", L->path);
            return;
        }
        q.kind = NM_REPLACE;
        q.a = dupn(s, q.alen = strlen(s));
        q.b = dupn(c, q.blen = strlen(c));
    } else if (!strcmp(ty, "NFC")) {
        q.kind = NM_NFC;
    } else {
        LFAIL(L, TP_ERR_UNSUPPORTED, "%s: normalizer '%s' is not supported", L->path, ty);
        return;
    }
    norm *nn = realloc(t->norms, (size_t)(t->nnorm + 1) * sizeof *nn);
    if (!nn) { free(q.a); free(q.b); LFAIL(L, TP_ERR_NOMEM, "%s: out of memory", L->path); return; }
    t->norms = nn;
    t->norms[t->nnorm++] = q;
}

static void add_dec(ld *L, const cJSON *d) {
    if (L->rc != TP_OK || !d || cJSON_IsNull(d)) return;
    tp_tokenizer *t = L->t;
    const char *ty = jstr(d, "type");
    if (!ty) { LFAIL(L, TP_ERR_FORMAT, "%s: decoder without a type", L->path); return; }
    if (!strcmp(ty, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(d, "decoders")) add_dec(L, it);
        return;
    }
    dec q = {0};
    if (!strcmp(ty, "ByteLevel")) q.kind = DC_BYTELEVEL;
    else if (!strcmp(ty, "ByteFallback")) q.kind = DC_BYTEFALLBACK;
    else if (!strcmp(ty, "Fuse")) q.kind = DC_FUSE;
    else if (!strcmp(ty, "Replace")) {
        const char *s = jstr(cJSON_GetObjectItemCaseSensitive(d, "pattern"), "String"), *c = jstr(d, "content");
        if (!s || !c || !*s) { LFAIL(L, TP_ERR_UNSUPPORTED, "%s: Replace decoder: only a String pattern is supported", L->path); return; }
        q.kind = DC_REPLACE;
        q.a = dupn(s, q.alen = strlen(s));
        q.b = dupn(c, q.blen = strlen(c));
    } else if (!strcmp(ty, "Strip")) {
        const char *c = jstr(d, "content");
        q.kind = DC_STRIP;
        q.strip_len = c && strlen(c) < sizeof q.strip ? strlen(c) : 0;
        if (q.strip_len) memcpy(q.strip, c, q.strip_len);
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(d, "start"), *b = cJSON_GetObjectItemCaseSensitive(d, "stop");
        q.start = cJSON_IsNumber(a) ? a->valueint : 0;
        q.stop = cJSON_IsNumber(b) ? b->valueint : 0;
    } else if (!strcmp(ty, "Metaspace")) {
        const char *r = jstr(d, "replacement");
        q.kind = DC_METASPACE;
        q.a = dupn(r ? r : "\xe2\x96\x81", q.alen = strlen(r ? r : "\xe2\x96\x81"));
        const char *ps = jstr(d, "prepend_scheme");
        q.prepend = ps ? strcmp(ps, "never") != 0 : jbool(d, "add_prefix_space", 1);
    } else {
        LFAIL(L, TP_ERR_UNSUPPORTED, "%s: decoder '%s' is not supported", L->path, ty);
        return;
    }
    dec *nd = realloc(t->decs, (size_t)(t->ndec + 1) * sizeof *nd);
    if (!nd) { free(q.a); free(q.b); LFAIL(L, TP_ERR_NOMEM, "%s: out of memory", L->path); return; }
    t->decs = nd;
    t->decs[t->ndec++] = q;
}

/* Ids of a TemplateProcessing "single" template around sequence A. */
static void add_post(ld *L, const cJSON *p) {
    if (L->rc != TP_OK || !p || cJSON_IsNull(p)) return;
    tp_tokenizer *t = L->t;
    const char *ty = jstr(p, "type");
    if (!ty) { LFAIL(L, TP_ERR_FORMAT, "%s: post_processor without a type", L->path); return; }
    if (!strcmp(ty, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(p, "processors")) add_post(L, it);
        return;
    }
    if (!strcmp(ty, "ByteLevel")) return; /* only adjusts offsets */
    if (strcmp(ty, "TemplateProcessing")) {
        LFAIL(L, TP_ERR_UNSUPPORTED, "%s: post_processor '%s' is not supported", L->path, ty);
        return;
    }
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(p, "single");
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(p, "special_tokens");
    int seen_a = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, single) {
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
        if (cJSON_GetObjectItemCaseSensitive(it, "Sequence")) { seen_a = 1; continue; }
        const char *name = jstr(st, "id");
        const cJSON *def = name ? cJSON_GetObjectItemCaseSensitive(sp, name) : NULL;
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(def, "ids");
        if (!cJSON_IsArray(ids)) {
            LFAIL(L, TP_ERR_FORMAT, "%s: TemplateProcessing special token '%s' has no ids", L->path, name ? name : "?");
            return;
        }
        const cJSON *x;
        cJSON_ArrayForEach(x, ids) {
            int32_t **v = seen_a ? &t->suffix : &t->prefix;
            size_t *n = seen_a ? &t->nsuffix : &t->nprefix;
            /* checked before the conversion: a double past int32's range is undefined behaviour */
            if (!cJSON_IsNumber(x) || !(x->valuedouble >= 0 && x->valuedouble < 1e8) || x->valuedouble != (double)(int32_t)x->valuedouble) {
                LFAIL(L, TP_ERR_FORMAT, "%s: TemplateProcessing special token '%s' has a bad id", L->path, name ? name : "?");
                return;
            }
            int32_t *nv = realloc(*v, (*n + 1) * sizeof *nv);
            if (!nv) { LFAIL(L, TP_ERR_NOMEM, "%s: out of memory", L->path); return; }
            *v = nv;
            nv[(*n)++] = (int32_t)x->valuedouble;
        }
    }
}

static void set_token(ld *L, int32_t id, const char *s, size_t n) {
    tp_tokenizer *t = L->t;
    if (id < 0 || id >= t->ntok) { LFAIL(L, TP_ERR_FORMAT, "%s: token id %d out of range", L->path, id); return; }
    free(t->tok[id]);
    if (!(t->tok[id] = dupn(s, n))) { LFAIL(L, TP_ERR_NOMEM, "%s: out of memory", L->path); return; }
    t->toklen[id] = n;
}

static void load_model(ld *L, const cJSON *m, const cJSON *added_arr) {
    tp_tokenizer *t = L->t;
    const char *ty = jstr(m, "type");
    if (!ty || strcmp(ty, "BPE")) {
        LFAIL(L, TP_ERR_UNSUPPORTED, "%s: tokenizer model '%s' is not supported (only BPE)", L->path, ty ? ty : "?");
        return;
    }
    const char *cs = jstr(m, "continuing_subword_prefix"), *ew = jstr(m, "end_of_word_suffix");
    const cJSON *dr = cJSON_GetObjectItemCaseSensitive(m, "dropout");
    if ((cs && *cs) || (ew && *ew) || (cJSON_IsNumber(dr) && dr->valuedouble > 0)) {
        LFAIL(L, TP_ERR_UNSUPPORTED, "%s: BPE with subword prefix/suffix or dropout is not supported", L->path);
        return;
    }
    t->byte_fallback = jbool(m, "byte_fallback", 0);
    t->fuse_unk = jbool(m, "fuse_unk", 0);
    t->ignore_merges = jbool(m, "ignore_merges", 0);
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(m, "vocab"), *merges = cJSON_GetObjectItemCaseSensitive(m, "merges");
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges)) {
        LFAIL(L, TP_ERR_FORMAT, "%s: BPE model needs a vocab object and a merges list", L->path);
        return;
    }
    int32_t maxid = -1;
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble > 1e8) {
            LFAIL(L, TP_ERR_FORMAT, "%s: vocab entry '%s' has a bad id", L->path, it->string);
            return;
        }
        if ((int32_t)it->valuedouble > maxid) maxid = (int32_t)it->valuedouble;
    }
    cJSON_ArrayForEach(it, added_arr) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        if (cJSON_IsNumber(id) && id->valuedouble >= 0 && id->valuedouble < 1e8 && (int32_t)id->valuedouble > maxid)
            maxid = (int32_t)id->valuedouble;
    }
    t->ntok = maxid + 1;
    t->tok = calloc((size_t)t->ntok + 1, sizeof *t->tok);
    t->toklen = calloc((size_t)t->ntok + 1, sizeof *t->toklen);
    t->is_special = calloc((size_t)t->ntok + 1, 1);
    size_t cap = 16;
    while (cap < 2 * (size_t)t->ntok) cap *= 2;
    t->vh = malloc(cap * sizeof *t->vh);
    if (!t->tok || !t->toklen || !t->is_special || !t->vh) { LFAIL(L, TP_ERR_NOMEM, "%s: out of memory", L->path); return; }
    t->vh_mask = cap - 1;
    memset(t->vh, 0xff, cap * sizeof *t->vh);
    bytes tmp = {0};
    cJSON_ArrayForEach(it, vocab) {
        const char *s = it->string;
        size_t n = strlen(s);
        /* byte-level vocabularies are stored as raw bytes so BPE and decoding work on bytes */
        if (t->byte_level && unmap_bytes(s, n, &tmp)) { s = tmp.p ? tmp.p : ""; n = tmp.n; }
        set_token(L, (int32_t)it->valuedouble, s, n);
        if (L->rc != TP_OK) { free(tmp.p); return; }
    }
    /* the hash holds model vocab only: added tokens are matched separately, as in tokenizers */
    for (int32_t id = 0; id < t->ntok; id++) {
        if (!t->tok[id]) continue;
        size_t i = hbytes(t->tok[id], t->toklen[id]) & t->vh_mask;
        while (t->vh[i] >= 0) {
            if (t->toklen[t->vh[i]] == t->toklen[id] && !memcmp(t->tok[t->vh[i]], t->tok[id], t->toklen[id])) {
                LFAIL(L, TP_ERR_FORMAT, "%s: vocab has token id %d twice (also id %d)", L->path, id, t->vh[i]);
                free(tmp.p);
                return;
            }
            i = (i + 1) & t->vh_mask;
        }
        t->vh[i] = id;
    }
    /* single-symbol ids: bytes for byte-level models, <0xNN> for byte fallback */
    for (int b = 0; b < 256; b++) {
        char s[8];
        if (t->byte_level) { s[0] = (char)b; t->byte_id[b] = vocab_get(t, s, 1); }
        else { snprintf(s, sizeof s, "<0x%02X>", b); t->byte_id[b] = vocab_get(t, s, 6); }
    }
    const char *unk = jstr(m, "unk_token");
    t->unk_id = unk ? vocab_get(t, unk, strlen(unk)) : -1;
    /* merges: later duplicates overwrite earlier ones, as a Rust HashMap collect does */
    int nm = cJSON_GetArraySize(merges);
    cap = 16;
    while (cap < 2 * (size_t)(nm + 1)) cap *= 2;
    t->mk = malloc(cap * sizeof *t->mk);
    t->mrank = malloc(cap * sizeof *t->mrank);
    t->mnew = malloc(cap * sizeof *t->mnew);
    if (!t->mk || !t->mrank || !t->mnew) { free(tmp.p); LFAIL(L, TP_ERR_NOMEM, "%s: out of memory", L->path); return; }
    t->mh_mask = cap - 1;
    memset(t->mnew, 0xff, cap * sizeof *t->mnew);
    uint32_t rank = 0;
    bytes cat = {0};
    cJSON_ArrayForEach(it, merges) {
        const char *a, *b;
        size_t an, bn;
        if (cJSON_IsString(it)) {
            const char *sp = strchr(it->valuestring, ' ');
            if (!sp || strchr(sp + 1, ' ')) { LFAIL(L, TP_ERR_FORMAT, "%s: merge '%s' is not 'a b'", L->path, it->valuestring); break; }
            a = it->valuestring; an = (size_t)(sp - a); b = sp + 1; bn = strlen(b);
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 && cJSON_IsString(it->child) &&
                   cJSON_IsString(it->child->next)) {
            a = it->child->valuestring; an = strlen(a); b = it->child->next->valuestring; bn = strlen(b);
        } else {
            LFAIL(L, TP_ERR_FORMAT, "%s: merge #%u is neither \"a b\" nor [a, b]", L->path, rank);
            break;
        }
        int32_t ia, ib, in;
        cat.n = 0;
        if (t->byte_level) {
            if (!unmap_bytes(a, an, &tmp)) { ia = -1; } else { ia = vocab_get(t, tmp.p, tmp.n); b_put(&cat, tmp.p, tmp.n); }
            if (!unmap_bytes(b, bn, &tmp)) { ib = -1; } else { ib = vocab_get(t, tmp.p, tmp.n); b_put(&cat, tmp.p, tmp.n); }
        } else {
            ia = vocab_get(t, a, an);
            ib = vocab_get(t, b, bn);
            b_put(&cat, a, an);
            b_put(&cat, b, bn);
        }
        in = (ia >= 0 && ib >= 0) ? vocab_get(t, cat.p, cat.n) : -1;
        if (in < 0) {
            LFAIL(L, TP_ERR_FORMAT, "%s: merge #%u (%.*s + %.*s) uses or makes a token missing from the vocab", L->path,
                  rank, (int)an, a, (int)bn, b);
            break;
        }
        uint64_t k = mkey(ia, ib);
        size_t i = mslot(k) & t->mh_mask;
        while (t->mnew[i] >= 0 && t->mk[i] != k) i = (i + 1) & t->mh_mask;
        t->mk[i] = k;
        t->mrank[i] = rank++;
        t->mnew[i] = in;
    }
    free(cat.p);
    free(tmp.p);
}

static void load_added(ld *L, const cJSON *arr) {
    tp_tokenizer *t = L->t;
    int n = cJSON_GetArraySize(arr);
    if (!n || L->rc != TP_OK) return;
    t->add = calloc((size_t)n, sizeof *t->add);
    if (!t->add) { LFAIL(L, TP_ERR_NOMEM, "%s: out of memory", L->path); return; }
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        const char *c = jstr(it, "content");
        if (!cJSON_IsNumber(id) || !c || !*c || id->valuedouble < 0 || id->valuedouble >= t->ntok) {
            LFAIL(L, TP_ERR_FORMAT, "%s: added_tokens entry needs an id and a non-empty content", L->path);
            return;
        }
        added *a = &t->add[t->nadd++];
        a->id = (int32_t)id->valuedouble;
        a->len = strlen(c);
        a->s = dupn(c, a->len);
        a->special = jbool(it, "special", 0);
        if (!a->s) { LFAIL(L, TP_ERR_NOMEM, "%s: out of memory", L->path); return; }
        t->add_first[(unsigned char)c[0]] = 1;
        t->is_special[a->id] = (uint8_t)a->special;
        /* the id decodes to its content even if the model vocab lacks it */
        if (!t->tok[a->id]) set_token(L, a->id, c, a->len);
    }
}

tp_status tp_tokenizer_load(const char *path, tp_tokenizer **out, tp_err *e) {
    *out = NULL;
    size_t len;
    char *text = tp_read_file(path, &len, e);
    if (!text) return TP_ERR_IO;
    tp_status s = tp_tokenizer_load_text(path, text, len, out, e);
    free(text);
    return s;
}

tp_status tp_tokenizer_load_text(const char *path, const char *text, size_t len, tp_tokenizer **out, tp_err *e) {
    *out = NULL;
    byte_map_init();
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return tp_fail(e, TP_ERR_FORMAT, "%s: not a well-formed JSON object", path);
    }
    tp_tokenizer *t = calloc(1, sizeof *t);
    if (!t || !(t->path = dupn(path, strlen(path)))) {
        cJSON_Delete(root);
        tp_tokenizer_free(t);
        return tp_fail(e, TP_ERR_NOMEM, "%s: out of memory", path);
    }
    ld L = {t, path, e, TP_OK};
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) LFAIL(&L, TP_ERR_FORMAT, "%s: no \"model\" object (not a tokenizer.json?)", path);
    add_norm(&L, cJSON_GetObjectItemCaseSensitive(root, "normalizer"));
    add_pretok(&L, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"));
    for (int i = 0; i < t->npt && L.rc == TP_OK; i++)
        if (t->pts[i].kind == PT_BYTELEVEL && i != t->npt - 1)
            LFAIL(&L, TP_ERR_UNSUPPORTED, "%s: a pre-tokenizer after ByteLevel is not supported", path);
    const cJSON *added_arr = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (L.rc == TP_OK) load_model(&L, model, added_arr);
    load_added(&L, added_arr);
    add_dec(&L, cJSON_GetObjectItemCaseSensitive(root, "decoder"));
    add_post(&L, cJSON_GetObjectItemCaseSensitive(root, "post_processor"));
    for (int i = 0; i < t->ndec && L.rc == TP_OK; i++)
        if (t->decs[i].kind == DC_BYTELEVEL && !t->byte_level)
            LFAIL(&L, TP_ERR_UNSUPPORTED, "%s: ByteLevel decoder without a ByteLevel pre-tokenizer", path);
    for (size_t i = 0; i < t->nprefix + t->nsuffix && L.rc == TP_OK; i++) {
        int32_t id = i < t->nprefix ? t->prefix[i] : t->suffix[i - t->nprefix];
        if (id < 0 || id >= t->ntok) LFAIL(&L, TP_ERR_FORMAT, "%s: post_processor id %d out of range", path, id);
    }
    if (L.rc == TP_OK && t->byte_level)
        for (int b = 0; b < 256; b++)
            if (t->byte_id[b] < 0) { LFAIL(&L, TP_ERR_FORMAT, "%s: byte-level vocab lacks byte 0x%02x", path, b); break; }
    cJSON_Delete(root);
    if (L.rc != TP_OK) { tp_tokenizer_free(t); return L.rc; }
    *out = t;
    return TP_OK;
}

/* ---- encoding ---- */

typedef struct sym { int32_t id, prev, next; uint8_t dead; } sym;
typedef struct hent { uint32_t rank, pos; int32_t new_id; } hent;
typedef struct estate {
    sym *s; size_t scap;
    hent *h; size_t hn, hcap;
    pieces a, b;
    bytes nb, tmp;
    ivec *out;
    pcre2_match_data *md;
    char lost[8]; size_t lostn; /* a character the vocabulary cannot encode (bpe returned 0) */
} estate;

static inline int hless(const hent *x, const hent *y) { return x->rank < y->rank || (x->rank == y->rank && x->pos < y->pos); }
static int hpush(estate *st, hent v) {
    if (st->hn == st->hcap) {
        size_t nc = st->hcap ? 2 * st->hcap : 256;
        hent *nh = realloc(st->h, nc * sizeof *nh);
        if (!nh) return 0;
        st->h = nh;
        st->hcap = nc;
    }
    size_t i = st->hn++;
    while (i) {
        size_t p = (i - 1) / 2;
        if (!hless(&v, &st->h[p])) break;
        st->h[i] = st->h[p];
        i = p;
    }
    st->h[i] = v;
    return 1;
}
static hent hpop(estate *st) {
    hent top = st->h[0], last = st->h[--st->hn];
    size_t i = 0, n = st->hn;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && hless(&st->h[c + 1], &st->h[c])) c++;
        if (!hless(&st->h[c], &last)) break;
        st->h[i] = st->h[c];
        i = c;
    }
    if (n) st->h[i] = last;
    return top;
}

/* BPE of one piece, appending ids (tokenizers' Word::merge_all: a min-heap of candidate merges
 * ordered by (rank, position); stale entries are skipped when the pair no longer yields the same
 * token). */
static int bpe(const tp_tokenizer *t, estate *st, const char *w, size_t n) {
    if (t->ignore_merges) {
        int32_t id = vocab_get(t, w, n);
        if (id >= 0) return iv_push(st->out, id);
    }
    if (st->scap < n) {
        sym *ns = realloc(st->s, n * sizeof *ns);
        if (!ns) return 0;
        st->s = ns;
        st->scap = n;
    }
    size_t ns = 0;
    int32_t pend_unk = 0; /* fused unknowns waiting to be emitted */
#define ADD_SYM(x) (st->s[ns] = (sym){(x), (int32_t)ns - 1, (int32_t)ns + 1, 0}, ns++)
    if (t->byte_level) {
        for (size_t i = 0; i < n; i++) ADD_SYM(t->byte_id[(unsigned char)w[i]]);
    } else {
        for (size_t i = 0; i < n;) {
            size_t k = u8len((const unsigned char *)w + i, n - i);
            int32_t id = vocab_get(t, w + i, k);
            if (id >= 0) {
                if (pend_unk) { ADD_SYM(t->unk_id); pend_unk = 0; }
                ADD_SYM(id);
            } else {
                int ok = t->byte_fallback;
                for (size_t j = 0; ok && j < k; j++) ok = t->byte_id[(unsigned char)w[i + j]] >= 0;
                if (ok) {
                    if (pend_unk) { ADD_SYM(t->unk_id); pend_unk = 0; }
                    for (size_t j = 0; j < k; j++) ADD_SYM(t->byte_id[(unsigned char)w[i + j]]);
                } else if (t->unk_id >= 0) {
                    if (pend_unk && !t->fuse_unk) ADD_SYM(t->unk_id);
                    pend_unk = 1;
                } else { /* tokenizers drops the char silently: refused instead (a hostile input) */
                    memcpy(st->lost, w + i, k); /* k <= 4 */
                    st->lostn = k;
                    return 0;
                }
            }
            i += k;
        }
        if (pend_unk) ADD_SYM(t->unk_id);
    }
#undef ADD_SYM
    if (!ns) return 1;
    st->s[ns - 1].next = -1;
    st->hn = 0;
    for (size_t i = 0; i + 1 < ns; i++) {
        long m = merge_find(t, st->s[i].id, st->s[i + 1].id);
        if (m >= 0 && !hpush(st, (hent){t->mrank[m], (uint32_t)i, t->mnew[m]})) return 0;
    }
    while (st->hn) {
        hent top = hpop(st);
        sym *s = st->s;
        sym *cur = &s[top.pos];
        if (cur->dead || cur->next < 0) continue;
        int32_t rpos = cur->next;
        long m = merge_find(t, cur->id, s[rpos].id);
        if (m < 0 || t->mnew[m] != top.new_id) continue;
        cur->id = top.new_id;
        s[rpos].dead = 1;
        cur->next = s[rpos].next;
        if (cur->next >= 0) s[cur->next].prev = (int32_t)top.pos;
        if (cur->prev >= 0) {
            long pm = merge_find(t, s[cur->prev].id, cur->id);
            if (pm >= 0 && !hpush(st, (hent){t->mrank[pm], (uint32_t)cur->prev, t->mnew[pm]})) return 0;
        }
        if (cur->next >= 0) {
            long nm = merge_find(t, cur->id, s[cur->next].id);
            if (nm >= 0 && !hpush(st, (hent){t->mrank[nm], top.pos, t->mnew[nm]})) return 0;
        }
    }
    for (int32_t i = 0; i >= 0; i = st->s[i].next)
        if (!iv_push(st->out, st->s[i].id)) return 0;
    return 1;
}

/* Regex split of every piece of in into out; Isolated keeps matches and the gaps between them,
 * Removed keeps only the gaps. */
static int split_re(estate *st, pcre2_code *re, int removed, const pieces *in, pieces *out) {
    for (size_t p = 0; p < in->n; p++) {
        const char *s = in->buf.p + in->off[p];
        size_t n = in->len[p], at = 0, last = 0;
        while (at <= n) {
            int rc = pcre2_match(re, (PCRE2_SPTR)s, n, at, 0, st->md, NULL);
            if (rc < 0) break; /* no more matches (or an error: keep the rest as one piece) */
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(st->md);
            size_t ms = ov[0], me = ov[1];
            if (!pc_add(out, s + last, ms - last)) return 0;
            if (!removed && !pc_add(out, s + ms, me - ms)) return 0;
            last = me;
            at = me > ms ? me : me + u8len((const unsigned char *)s + me, n - me > 0 ? n - me : 1);
            if (me == n) break;
        }
        if (last < n && !pc_add(out, s + last, n - last)) return 0;
    }
    return 1;
}

static int replace_all(bytes *o, const char *s, size_t n, const char *a, size_t an, const char *b, size_t bn) {
    o->n = 0;
    for (size_t i = 0; i < n;) {
        if (i + an <= n && !memcmp(s + i, a, an)) {
            if (!b_put(o, b, bn)) return 0;
            i += an;
        } else {
            const char *q = i + an <= n ? memchr(s + i + 1, a[0], n - i - 1) : NULL;
            size_t k = q ? (size_t)(q - (s + i)) : n - i;
            if (!b_put(o, s + i, k)) return 0;
            i += k;
        }
    }
    return 1;
}

/* One stretch of text between added tokens: normalise, pre-tokenize, BPE. at_start: the stretch
 * begins at offset 0 of the input (Metaspace's "first" scheme). */
static int encode_segment(const tp_tokenizer *t, estate *st, const char *s, size_t n, int at_start) {
    if (!n) return 1;
    bytes *cur = &st->nb, *tmp = &st->tmp;
    cur->n = 0;
    if (!b_put(cur, s, n)) return 0;
    for (int i = 0; i < t->nnorm; i++) {
        const norm *q = &t->norms[i];
        if (q->kind == NM_PREPEND && cur->n) {
            tmp->n = 0;
            if (!b_put(tmp, q->a, q->alen) || !b_put(tmp, cur->p, cur->n)) return 0;
        } else if (q->kind == NM_REPLACE) {
            if (!replace_all(tmp, cur->p, cur->n, q->a, q->alen, q->b, q->blen)) return 0;
        } else {
            continue; /* NFC: identity (see tokenizer.h) */
        }
        bytes x = *cur; *cur = *tmp; *tmp = x;
    }
    pieces *in = &st->a, *out = &st->b;
    pc_clear(in);
    if (!pc_add(in, cur->p, cur->n)) return 0;
    for (int i = 0; i < t->npt; i++) {
        const pretok *q = &t->pts[i];
        pc_clear(out);
        if (q->kind == PT_BYTELEVEL) {
            pieces *src = in;
            if (q->add_prefix_space) {
                for (size_t p = 0; p < in->n; p++) {
                    const char *ps = in->buf.p + in->off[p];
                    tmp->n = 0;
                    if ((ps[0] != ' ' && !b_put(tmp, " ", 1)) || !b_put(tmp, ps, in->len[p]) || !pc_add(out, tmp->p, tmp->n))
                        return 0;
                }
                pieces x = *in; *in = *out; *out = x;
                pc_clear(out);
            }
            if (!q->use_regex) continue;
            if (!split_re(st, q->re, 0, src, out)) return 0;
        } else if (q->kind == PT_SPLIT) {
            if (!split_re(st, q->re, q->removed, in, out)) return 0;
        } else if (q->kind == PT_METASPACE) {
            for (size_t p = 0; p < in->n; p++) {
                const char *ps = in->buf.p + in->off[p];
                if (!replace_all(tmp, ps, in->len[p], " ", 1, q->repl, q->repl_len)) return 0;
                int pre = q->prepend_scheme == 2 || (q->prepend_scheme == 1 && at_start && p == 0);
                if (pre && !(tmp->n >= q->repl_len && !memcmp(tmp->p, q->repl, q->repl_len))) {
                    if (!b_reserve(tmp, q->repl_len)) return 0;
                    memmove(tmp->p + q->repl_len, tmp->p, tmp->n);
                    memcpy(tmp->p, q->repl, q->repl_len);
                    tmp->n += q->repl_len;
                }
                if (!q->split) { if (!pc_add(out, tmp->p, tmp->n)) return 0; continue; }
                /* MergedWithNext: each piece starts at a replacement char */
                size_t last = 0;
                for (size_t j = 1; j + q->repl_len <= tmp->n; j++)
                    if (!memcmp(tmp->p + j, q->repl, q->repl_len)) {
                        if (!pc_add(out, tmp->p + last, j - last)) return 0;
                        last = j;
                    }
                if (!pc_add(out, tmp->p + last, tmp->n - last)) return 0;
            }
        } else { /* Digits */
            for (size_t p = 0; p < in->n; p++) {
                const char *ps = in->buf.p + in->off[p];
                size_t m = in->len[p], last = 0;
                for (size_t j = 0; j < m;) {
                    if (ps[j] >= '0' && ps[j] <= '9') {
                        size_t k = j + 1;
                        if (!q->individual_digits) while (k < m && ps[k] >= '0' && ps[k] <= '9') k++;
                        if (!pc_add(out, ps + last, j - last) || !pc_add(out, ps + j, k - j)) return 0;
                        last = j = k;
                    } else j++;
                }
                if (!pc_add(out, ps + last, m - last)) return 0;
            }
        }
        pieces x = *in; *in = *out; *out = x;
    }
    for (size_t p = 0; p < in->n; p++)
        if (!bpe(t, st, in->buf.p + in->off[p], in->len[p])) return 0;
    return 1;
}

tp_status tp_tokenizer_encode(const tp_tokenizer *t, const char *text, size_t len, int add_special, int32_t **ids,
                              size_t *n, tp_err *e) {
    *ids = NULL;
    *n = 0;
    ivec out = {0};
    estate st = {0};
    st.out = &out;
    int ok = 1;
    if (t->npt || t->nadd) {
        st.md = pcre2_match_data_create(4, NULL);
        ok = st.md != NULL;
    }
    if (add_special)
        for (size_t i = 0; ok && i < t->nprefix; i++) ok = iv_push(&out, t->prefix[i]);
    size_t pos = 0;
    while (ok && pos < len) {
        /* next added token, leftmost then longest */
        size_t ms = len, ml = 0;
        int32_t mid = -1;
        if (t->nadd)
            for (size_t i = pos; i < len && mid < 0; i++) {
                if (!t->add_first[(unsigned char)text[i]]) continue;
                for (int k = 0; k < t->nadd; k++) {
                    const added *a = &t->add[k];
                    if (a->len <= len - i && a->len > ml && !memcmp(text + i, a->s, a->len)) { ms = i; ml = a->len; mid = a->id; }
                }
            }
        ok = encode_segment(t, &st, text + pos, ms - pos, pos == 0);
        if (!ok || mid < 0) break;
        ok = iv_push(&out, mid);
        pos = ms + ml;
    }
    if (add_special)
        for (size_t i = 0; ok && i < t->nsuffix; i++) ok = iv_push(&out, t->suffix[i]);
    free(st.s); free(st.h); pc_free(&st.a); pc_free(&st.b); free(st.nb.p); free(st.tmp.p);
    if (st.md) pcre2_match_data_free(st.md);
    if (!ok && st.lostn) {
        free(out.p);
        const unsigned char *u = (const unsigned char *)st.lost;
        unsigned cp = st.lostn > 1 ? (unsigned)u8dec(u, st.lostn) : u[0];
        return tp_fail(e, TP_ERR_FORMAT, "%s cannot encode the character '%.*s' (%s%04X): its vocabulary has neither it, "
                       "an unk token nor byte-fallback tokens for it (the text would lose it)",
                       t->path ? t->path : "tokenizer", (int)st.lostn, st.lost, st.lostn > 1 ? "U+" : "byte 0x", cp);
    }
    if (!ok) { free(out.p); return tp_fail(e, TP_ERR_NOMEM, "tokenize: out of memory"); }
    *ids = out.p ? out.p : malloc(sizeof(int32_t)); /* non-NULL even when empty */
    if (!*ids) return tp_fail(e, TP_ERR_NOMEM, "tokenize: out of memory");
    *n = out.n;
    return TP_OK;
}

/* ---- decoding ---- */

static int is_byte_token(const char *s, size_t n, unsigned *b) {
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return 0;
    unsigned v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return 0;
        v = v * 16 + (unsigned)d;
    }
    *b = v;
    return 1;
}

tp_status tp_tokenizer_decode(const tp_tokenizer *t, const int32_t *ids, size_t n, int skip_special, char **text,
                              size_t *len, tp_err *e) {
    *text = NULL;
    pieces a = {0}, b = {0};
    bytes tmp = {0}, run = {0};
    int ok = 1;
    for (size_t i = 0; ok && i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->ntok || !t->tok[ids[i]]) {
            pc_free(&a);
            return tp_fail(e, TP_ERR_ARG, "decode: token id %d is not in the vocabulary", ids[i]);
        }
        if (skip_special && t->is_special[ids[i]]) continue;
        /* pc_add drops empty strings; tokens are never empty */
        ok = pc_add(&a, t->tok[ids[i]], t->toklen[ids[i]]);
    }
    for (int d = 0; ok && d < t->ndec; d++) {
        const dec *q = &t->decs[d];
        pc_clear(&b);
        switch (q->kind) {
        case DC_BYTELEVEL: continue; /* vocab already holds raw bytes */
        case DC_FUSE:
            ok = pc_add(&b, a.buf.p, a.buf.n);
            break;
        case DC_REPLACE:
        case DC_METASPACE:
            for (size_t i = 0; ok && i < a.n; i++) {
                /* Metaspace: the replacement becomes a space, except in the first token, where
                 * tokenizers drops it (all of them) when a prefix was prepended */
                int drop = q->kind == DC_METASPACE && q->prepend && i == 0;
                const char *to = q->kind == DC_REPLACE ? q->b : drop ? "" : " ";
                size_t tolen = q->kind == DC_REPLACE ? q->blen : drop ? 0 : 1;
                ok = replace_all(&tmp, a.buf.p + a.off[i], a.len[i], q->a, q->alen, to, tolen);
                if (ok) ok = pc_add(&b, tmp.p, tmp.n);
            }
            break;
        case DC_STRIP:
            for (size_t i = 0; ok && i < a.n; i++) {
                const char *s = a.buf.p + a.off[i];
                size_t m = a.len[i], L = q->strip_len, lo = 0, hi = m;
                for (int k = 0; L && k < q->start && lo + L <= hi && !memcmp(s + lo, q->strip, L); k++) lo += L;
                for (int k = 0; L && k < q->stop && hi >= lo + L && !memcmp(s + hi - L, q->strip, L); k++) hi -= L;
                ok = pc_add(&b, s + lo, hi - lo);
            }
            break;
        case DC_BYTEFALLBACK:
            run.n = 0;
            for (size_t i = 0; ok && i <= a.n; i++) {
                unsigned byte;
                if (i < a.n && is_byte_token(a.buf.p + a.off[i], a.len[i], &byte)) {
                    char c = (char)byte;
                    ok = b_put(&run, &c, 1);
                    continue;
                }
                if (run.n) {
                    if (valid_utf8((const unsigned char *)run.p, run.n)) ok = pc_add(&b, run.p, run.n);
                    else for (size_t k = 0; ok && k < run.n; k++) ok = pc_add(&b, "\xef\xbf\xbd", 3);
                    run.n = 0;
                }
                if (ok && i < a.n) ok = pc_add(&b, a.buf.p + a.off[i], a.len[i]);
            }
            break;
        }
        pieces x = a; a = b; b = x;
    }
    char *o = ok ? malloc(a.buf.n + 1) : NULL;
    if (o) {
        if (a.buf.n) memcpy(o, a.buf.p, a.buf.n);
        o[a.buf.n] = 0;
        if (len) *len = a.buf.n;
    }
    pc_free(&a); pc_free(&b); free(tmp.p); free(run.p);
    if (!o) return tp_fail(e, TP_ERR_NOMEM, "decode: out of memory");
    *text = o;
    return TP_OK;
}
