/* tenpak zip: a language model's next-token distributions driving an entropy coder. See
 * pipeline/lmzip.h for the container and the determinism argument. */
#include "pipeline/lmzip.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "pipeline/gguf_model.h"
#include "pipeline/config.h"
#include "pipeline/model.h"
#include "pipeline/safetensors.h"
#include "pipeline/tokenizer.h"
#include "tenpak/entropy.h"
#include "tenpak/sha256.h"
#include "pipeline/artifact_model.h"

#define TOTAL_BITS 24
#define STEPS 32            /* logit quantisation: steps per nat */
#define KMAX (STEPS * 40)   /* 40 nats under the top logit and below: weight 0 (frequency 1) */
#define HDR_FIXED 104 /* magic .. segment count */

/* wtab[k] = 2^40 e^(-k/32), built by an integer recurrence with C = round(2^62 e^(-1/32)): the same
 * table on every machine, whatever its libm. */
static uint64_t wtab[KMAX + 1];
static void build_wtab(void) {
    if (wtab[0]) return;
    const unsigned __int128 C = 4469799356029710115ull;
    wtab[0] = (uint64_t)1 << 40;
    for (int k = 0; k < KMAX; k++) wtab[k + 1] = (uint64_t)(((unsigned __int128)wtab[k] * C + ((unsigned __int128)1 << 61)) >> 62);
}

/* Integer frequencies (sum 2^24, each >= 1) from logits; also -log2 p(target) in double under
 * the float softmax (the model's own cross-entropy, the bound), when target >= 0. */
static void table_from_logits(const float *l, int V, uint32_t *freq, int target, double *bits) {
    float mx = l[0];
    int am = 0;
    for (int i = 1; i < V; i++)
        if (l[i] > mx) { mx = l[i]; am = i; }
    uint64_t S = 0;
    static uint64_t *w;
    static int wcap;
    if (wcap < V) { free(w); w = malloc((size_t)V * sizeof *w); wcap = V; }
    for (int i = 0; i < V; i++) {
        long k = lrint(((double)mx - (double)l[i]) * STEPS);
        w[i] = k <= KMAX ? wtab[k] : 0;
        S += w[i];
    }
    const uint64_t avail = ((uint64_t)1 << TOTAL_BITS) - (uint64_t)V;
    uint64_t sum = 0;
    for (int i = 0; i < V; i++) {
        freq[i] = 1 + (uint32_t)(((unsigned __int128)w[i] * avail) / S);
        sum += freq[i];
    }
    freq[am] += (uint32_t)(((uint64_t)1 << TOTAL_BITS) - sum);
    if (target >= 0 && bits) {
        double z = 0;
        for (int i = 0; i < V; i++) z += exp((double)l[i] - mx);
        *bits += -(((double)l[target] - mx) - log(z)) / log(2.0);
    }
}

static void uniform_table(int V, uint32_t *freq) {
    uint32_t base = ((uint32_t)1 << TOTAL_BITS) / (uint32_t)V, rem = ((uint32_t)1 << TOTAL_BITS) - base * (uint32_t)V;
    for (int i = 0; i < V; i++) freq[i] = base + ((uint32_t)i < rem);
}

/* ---- the model side: the same calls on both ends ---- */
typedef struct lm {
    tp_model *m;
    int V, cap;
    float *logits;
    int32_t *hist;
    size_t nhist, hcap;
    int have_logits;
} lm;

static tp_status lm_push(lm *s, int32_t t, int need_logits, tp_err *e) {
    if (s->nhist == s->hcap) {
        size_t nc = s->hcap ? 2 * s->hcap : 4096;
        int32_t *nh = realloc(s->hist, nc * sizeof *nh);
        if (!nh) return tp_fail(e, TP_ERR_NOMEM, "out of memory");
        s->hist = nh;
        s->hcap = nc;
    }
    s->hist[s->nhist++] = t;
    if (!need_logits) return TP_OK;
    tp_status st;
    if (tp_model_cached(s->m) + 1 > s->cap) {
        /* context full: refill with the last half of the history in one prefill */
        int keep = s->cap / 2;
        tp_model_reset(s->m);
        st = tp_model_forward(s->m, s->hist + s->nhist - keep, keep, 0, keep - 1, s->logits, e);
    } else
        st = tp_model_forward(s->m, &s->hist[s->nhist - 1], 1, tp_model_cached(s->m), 0, s->logits, e);
    s->have_logits = 1;
    return st;
}

static tp_status file_sha(const char *path, uint8_t out[32], tp_err *e) {
    size_t n;
    char *b = tp_read_file(path, &n, e);
    if (!b) return TP_ERR_IO;
    tp_sha256(b, n, out);
    free(b);
    return TP_OK;
}

/* The model and the sha256 the container records for it (see lmzip.h). */
static tp_status lm_start(lm *s, const tp_lm_source *src, const char *dir, uint8_t msha[32], const int32_t *prefix,
                          size_t np, tp_err *e) {
    memset(s, 0, sizeof *s);
    tp_status st;
    if (src->artifact) {
        tp_artifact_model info;
        st = tp_model_load_artifact(src->artifact, dir, TP_EXEC_PACKED, NULL, &s->m, &info, e);
        if (st == TP_OK) st = file_sha(src->artifact, msha, e);
    } else {
        st = tp_model_load(dir, NULL, &s->m, e);
        if (st == TP_OK) st = tp_st_sha256(tp_model_files(s->m), msha, e);
    }
    if (st != TP_OK) return st;
    s->V = tp_model_cfg(s->m)->vocab;
    s->cap = tp_model_capacity(s->m);
    s->logits = malloc((size_t)s->V * sizeof(float));
    if (!s->logits) return tp_fail(e, TP_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < np && st == TP_OK; i++) {
        s->hist = realloc(s->hist, (s->nhist + 1) * sizeof *s->hist);
        s->hcap = s->nhist + 1;
        s->hist[s->nhist++] = prefix[i];
    }
    if (np) {
        st = tp_model_forward(s->m, s->hist, (int)np, 0, (int)np - 1, s->logits, e);
        s->have_logits = 1;
    }
    return st;
}
static void lm_free(lm *s) {
    tp_model_free(s->m);
    free(s->logits);
    free(s->hist);
}

/* ---- segments ---- */
typedef struct seg {
    uint8_t kind; /* 0 tokens, 1 raw */
    uint64_t bytes, count;
    size_t off;   /* offset in the text */
    int32_t *ids; /* kind 0 */
} seg;

static int roundtrips(const tp_tokenizer *tok, const int32_t *ids, size_t n, const uint8_t *text, size_t len) {
    char *d = NULL;
    size_t dl = 0;
    tp_err e;
    int ok = tp_tokenizer_decode(tok, ids, n, 1, &d, &dl, &e) == TP_OK && dl == len && !memcmp(d, text, len);
    free(d);
    return ok;
}


static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> 8 * i); }
static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> 8 * i); }
static uint32_t get32(const uint8_t *p) { uint32_t v = 0; for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << 8 * i; return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v = 0; for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << 8 * i; return v; }

typedef struct symrec { uint32_t cum, freq; } symrec;

/* The coder behind both directions: AC directly, rANS through the recorded (cum, freq). */
typedef struct coder {
    tp_lmzip_coder kind;
    tp_ac_enc ac;
    symrec *syms;
    size_t nsyms, scap;
    int err;
} coder;
static void code_sym(coder *c, uint32_t cum, uint32_t freq) {
    if (c->kind == TP_LMZIP_AC) { tp_ac_encode_sym(&c->ac, cum, freq, TOTAL_BITS); return; }
    if (c->nsyms == c->scap) {
        size_t nc = c->scap ? 2 * c->scap : 4096;
        symrec *ns = realloc(c->syms, nc * sizeof *ns);
        if (!ns) { c->err = 1; return; }
        c->syms = ns;
        c->scap = nc;
    }
    c->syms[c->nsyms++] = (symrec){cum, freq};
}

/* the checkpoint folder: given, or the one the artifact records */
static tp_status lm_dir(const tp_lm_source *src, char *dir, size_t n, tp_err *e) {
    if (src->model_dir) { snprintf(dir, n, "%s", src->model_dir); return TP_OK; }
    if (!src->artifact) return tp_fail(e, TP_ERR_ARG, "no model: give a checkpoint folder or an artifact");
    return tp_artifact_source_dir(src->artifact, dir, n, e);
}

tp_status tp_lmzip_compress(const tp_lm_source *src, tp_lmzip_coder ck, const uint8_t *in, size_t n, uint8_t **out,
                            size_t *out_len, tp_lmzip_stats *stats, tp_err *e) {
    memset(stats, 0, sizeof *stats);
    double t0 = tp_now();
    build_wtab();
    if (n == 0) return tp_fail(e, TP_ERR_ARG, "empty input: nothing to compress");
    char dir[4096];
    tp_status ds = lm_dir(src, dir, sizeof dir, e);
    if (ds != TP_OK) return ds;
    char tpath[4200];
    snprintf(tpath, sizeof tpath, "%s/tokenizer.json", dir);
    if (tp_gguf_is_model_path(dir)) snprintf(tpath, sizeof tpath, "%s", dir); /* its tokenizer is in the GGUF */
    uint8_t tsha[32], msha[32];
    tp_status s = file_sha(tpath, tsha, e);
    tp_tokenizer *tok = NULL;
    if (s == TP_OK) s = tp_model_tokenizer_load(dir, &tok, e);
    if (s != TP_OK) return s;
    const int32_t *pre = NULL, *suf = NULL;
    size_t np = tp_tokenizer_prefix(tok, &pre), ns = tp_tokenizer_suffix(tok, &suf);
    /* segments: the whole text if it round-trips, else line by line */
    seg *sg = NULL;
    size_t nsg = 0;
    int32_t *ids = NULL;
    size_t nid = 0;
    s = tp_tokenizer_encode(tok, (const char *)in, n, 1, &ids, &nid, e);
    /* text the vocabulary cannot encode (no unk, no byte fallback) goes line by line, such lines raw */
    int whole = s == TP_OK;
    if (s == TP_ERR_FORMAT) s = TP_OK;
    /* a token segment never has more tokens than bytes (the decoder holds the container to it) */
    if (whole && nid >= np + ns && nid - np - ns <= n && roundtrips(tok, ids + np, nid - np - ns, in, n)) {
        sg = calloc(1, sizeof *sg);
        sg[0] = (seg){0, n, nid - np - ns, 0, NULL};
        sg[0].ids = malloc((sg[0].count ? sg[0].count : 1) * sizeof(int32_t));
        memcpy(sg[0].ids, ids + np, sg[0].count * sizeof(int32_t));
        nsg = 1;
    } else if (s == TP_OK) {
        size_t cap = 64;
        sg = calloc(cap, sizeof *sg);
        for (size_t a = 0; a < n && s == TP_OK;) {
            size_t b = a;
            while (b < n && in[b] != '\n') b++;
            if (b < n) b++;
            if (nsg == cap) { cap *= 2; sg = realloc(sg, cap * sizeof *sg); }
            int32_t *li = NULL;
            size_t nl = 0;
            seg x = {1, b - a, b - a, a, NULL};
            if (tp_tokenizer_encode(tok, (const char *)in + a, b - a, 0, &li, &nl, e) == TP_OK && nl > 0 &&
                nl <= b - a && roundtrips(tok, li, nl, in + a, b - a)) {
                x.kind = 0;
                x.count = nl;
                x.ids = li;
            } else free(li);
            /* merge neighbouring raw lines */
            if (x.kind == 1 && nsg && sg[nsg - 1].kind == 1) { sg[nsg - 1].bytes += x.bytes; sg[nsg - 1].count += x.count; }
            else sg[nsg++] = x;
            a = b;
        }
    }
    free(ids);
    lm L;
    memset(&L, 0, sizeof L);
    if (s == TP_OK) s = lm_start(&L, src, dir, msha, pre, np, e);
    uint32_t *freq = s == TP_OK ? malloc((size_t)L.V * sizeof *freq) : NULL;
    size_t cap = n + 1024 + n / 2;
    coder C = {.kind = ck};
    uint8_t *pay = malloc(cap);
    if (s == TP_OK && (!freq || !pay)) s = tp_fail(e, TP_ERR_NOMEM, "out of memory");
    if (s == TP_OK && ck == TP_LMZIP_AC) tp_ac_enc_init(&C.ac, pay, cap);
    /* code every segment; the model sees the token segments as one continuing text */
    size_t total_tokens = 0, done_tokens = 0;
    for (size_t i = 0; i < nsg; i++) total_tokens += sg[i].kind == 0 ? sg[i].count : 0;
    for (size_t i = 0; i < nsg && s == TP_OK; i++) {
        if (sg[i].kind == 1) {
            for (uint64_t k = 0; k < sg[i].bytes; k++) code_sym(&C, (uint32_t)in[sg[i].off + k] << 16, 1u << 16);
            stats->raw_bytes += sg[i].bytes;
            stats->model_bits += 8.0 * (double)sg[i].bytes;
            continue;
        }
        for (uint64_t k = 0; k < sg[i].count && s == TP_OK; k++) {
            int32_t t = sg[i].ids[k];
            if (t < 0 || t >= L.V) { s = tp_fail(e, TP_ERR_FORMAT, "token id %d outside the model's vocabulary", t); break; }
            if (L.have_logits) table_from_logits(L.logits, L.V, freq, t, &stats->model_bits);
            else { uniform_table(L.V, freq); stats->model_bits += log2((double)L.V); }
            uint32_t cum = 0;
            for (int v = 0; v < t; v++) cum += freq[v];
            code_sym(&C, cum, freq[t]);
            done_tokens++;
            s = lm_push(&L, t, done_tokens < total_tokens, e);
        }
        stats->tokens += sg[i].count;
    }
    size_t plen = 0;
    if (s == TP_OK && C.err) s = tp_fail(e, TP_ERR_NOMEM, "out of memory");
    if (s == TP_OK) {
        if (ck == TP_LMZIP_AC) s = tp_ac_enc_finish(&C.ac, &plen, e);
        else {
            tp_rans_enc r;
            tp_rans_enc_init(&r, pay, cap);
            for (size_t k = C.nsyms; k-- > 0;) tp_rans_encode_sym(&r, C.syms[k].cum, C.syms[k].freq, TOTAL_BITS);
            s = tp_rans_enc_finish(&r, &plen, e);
        }
    }
    if (s == TP_OK) {
        size_t hl = HDR_FIXED + 17 * nsg + 8;
        uint8_t *o = malloc(hl + plen + 8);
        if (!o) s = tp_fail(e, TP_ERR_NOMEM, "out of memory");
        else {
            memcpy(o, "TPZ1", 4);
            o[4] = 1;
            o[5] = (uint8_t)ck;
            o[6] = o[7] = 0;
            memcpy(o + 8, msha, 32);
            memcpy(o + 40, tsha, 32);
            put64(o + 72, n);
            put64(o + 80, XXH64(in, n, 0));
            put32(o + 88, (uint32_t)L.cap);
            put32(o + 92, STEPS);
            put32(o + 96, TOTAL_BITS);
            put32(o + 100, (uint32_t)nsg);
            uint8_t *p = o + 104;
            for (size_t i = 0; i < nsg; i++) {
                p[0] = sg[i].kind;
                put64(p + 1, sg[i].bytes);
                put64(p + 9, sg[i].count);
                p += 17;
            }
            put64(p, plen);
            p += 8;
            memcpy(p, pay, plen);
            p += plen;
            put64(p, XXH64(o, (size_t)(p - o), 0));
            *out = o;
            *out_len = (size_t)(p - o) + 8;
            stats->in_bytes = n;
            stats->out_bytes = *out_len;
            stats->segments = nsg;
            stats->coded_bits = 8.0 * (double)*out_len;
            stats->payload_bytes = plen;
        }
    }
    for (size_t i = 0; i < nsg; i++) free(sg[i].ids);
    free(sg);
    free(freq);
    free(pay);
    free(C.syms);
    lm_free(&L);
    tp_tokenizer_free(tok);
    stats->seconds = tp_now() - t0;
    return s;
}

/* room for n more bytes at pos in *o (and a spare one): 0 when out of memory */
static int out_room(uint8_t **o, size_t *cap, size_t pos, uint64_t n) {
    if (pos + n + 1 <= *cap) return 1;
    size_t nc = *cap ? *cap : 4096;
    while (nc < pos + n + 1) nc *= 2;
    uint8_t *no = realloc(*o, nc);
    if (!no) return 0;
    *o = no;
    *cap = nc;
    return 1;
}

static void hex8(const uint8_t *d, char *out) {
    for (int i = 0; i < 6; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

tp_status tp_lmzip_decompress(const tp_lm_source *src, const uint8_t *in, size_t n, uint8_t **out, size_t *out_len,
                              tp_lmzip_stats *stats, tp_err *e) {
    memset(stats, 0, sizeof *stats);
    double t0 = tp_now();
    build_wtab();
    if (n < 104 + 16 || memcmp(in, "TPZ1", 4)) return tp_fail(e, TP_ERR_FORMAT, "not a tenpak zip stream (bad magic or too short)");
    if (in[4] != 1 || (in[5] != TP_LMZIP_AC && in[5] != TP_LMZIP_RANS))
        return tp_fail(e, TP_ERR_FORMAT, "unsupported version %d or coder %d", in[4], in[5]);
    if (XXH64(in, n - 8, 0) != get64(in + n - 8)) return tp_fail(e, TP_ERR_CHECKSUM, "stream checksum mismatch (truncated or damaged)");
    uint64_t olen = get64(in + 72), ohash = get64(in + 80);
    uint32_t steps = get32(in + 92), tbits = get32(in + 96), nsg = get32(in + 100);
    if (steps != STEPS || tbits != TOTAL_BITS) return tp_fail(e, TP_ERR_FORMAT, "made with parameters this tenpak does not use");
    if (nsg > (n - 120) / 17 || olen > ((uint64_t)1 << 40)) return tp_fail(e, TP_ERR_FORMAT, "corrupt header");
    const uint8_t *p = in + 104;
    seg *sg = calloc(nsg ? nsg : 1, sizeof *sg);
    if (!sg) return tp_fail(e, TP_ERR_NOMEM, "out of memory");
    uint64_t sum = 0, raw = 0;
    /* counts against sizes before any loop: a token segment has 1 .. bytes tokens (the encoder
     * codes any other line raw), a raw one exactly its bytes, each raw byte costs 8 coded bits */
    for (uint32_t i = 0; i < nsg; i++, p += 17) {
        sg[i].kind = p[0];
        sg[i].bytes = get64(p + 1);
        sg[i].count = get64(p + 9);
        if (sg[i].kind > 1 || sg[i].bytes > olen || sg[i].bytes == 0 ||
            (sg[i].kind == 0 ? sg[i].count < 1 || sg[i].count > sg[i].bytes : sg[i].count != sg[i].bytes)) {
            free(sg);
            return tp_fail(e, TP_ERR_FORMAT, "corrupt segment table (segment %u: %llu %s for %llu bytes)", i,
                           (unsigned long long)get64(p + 9), p[0] ? "raw bytes" : "tokens", (unsigned long long)get64(p + 1));
        }
        sum += sg[i].bytes;
        raw += sg[i].kind == 1 ? sg[i].bytes : 0;
    }
    uint64_t plen = get64(p);
    p += 8;
    if (sum != olen || plen != (uint64_t)(in + n - 8 - p) || raw > plen + 8) {
        free(sg);
        return tp_fail(e, TP_ERR_FORMAT, "corrupt header (lengths disagree)");
    }
    /* the same model and tokenizer, or nothing */
    char dir[4096], tpath[4200];
    uint8_t tsha[32], msha[32];
    tp_status s = lm_dir(src, dir, sizeof dir, e);
    if (s != TP_OK) { free(sg); return s; }
    snprintf(tpath, sizeof tpath, "%s/tokenizer.json", dir);
    if (tp_gguf_is_model_path(dir)) snprintf(tpath, sizeof tpath, "%s", dir); /* its tokenizer is in the GGUF */
    s = file_sha(tpath, tsha, e);
    tp_tokenizer *tok = NULL;
    if (s == TP_OK && memcmp(tsha, in + 40, 32)) {
        char a[16], b[16];
        hex8(in + 40, a);
        hex8(tsha, b);
        s = tp_fail(e, TP_ERR_ARG, "compressed with another tokenizer (sha256 %s..., %s has %s...)", a, tpath, b);
    }
    if (s == TP_OK) s = tp_model_tokenizer_load(dir, &tok, e);
    const int32_t *pre = NULL;
    size_t np = tok ? tp_tokenizer_prefix(tok, &pre) : 0;
    lm L;
    memset(&L, 0, sizeof L);
    if (s == TP_OK) s = lm_start(&L, src, dir, msha, pre, np, e);
    if (s == TP_OK && memcmp(msha, in + 8, 32)) {
        char a[16], b[16];
        hex8(in + 8, a);
        hex8(msha, b);
        s = tp_fail(e, TP_ERR_ARG, "compressed with another model (sha256 %s...; %s has %s...): unzip needs the same %s", a,
                    src->artifact ? src->artifact : dir, b, src->artifact ? "artifact" : "model");
    }
    /* the output grows as segments decode: a forged length reserves nothing (raw segments are
     * bounded by the payload, token segments by what the tokenizer decoded) */
    size_t ocap = 0;
    uint8_t *o = NULL;
    uint32_t *freq = L.V ? malloc((size_t)L.V * sizeof *freq) : NULL, *cum = L.V ? malloc(((size_t)L.V + 1) * sizeof *cum) : NULL;
    if (s == TP_OK && (!freq || !cum)) s = tp_fail(e, TP_ERR_NOMEM, "out of memory");
    tp_ac_dec ad;
    tp_rans_dec rd;
    int ac = in[5] == TP_LMZIP_AC;
    if (ac) tp_ac_dec_init(&ad, p, plen);
    else tp_rans_dec_init(&rd, p, plen);
    size_t pos = 0, total_tokens = 0, done = 0;
    for (uint32_t i = 0; i < nsg; i++) total_tokens += sg[i].kind == 0 ? sg[i].count : 0;
    int32_t *ids = NULL;
/* the coded stream is spent (or inconsistent): stop at once rather than decode on for what the
 * segment table claims (an AC decoder reads at most 7 bytes past a valid stream's end) */
#define SPENT() (ac ? ad.err || ad.pos > ad.len + 7 : rd.err)
    for (uint32_t i = 0; i < nsg && s == TP_OK; i++) {
        if (SPENT()) {
            s = tp_fail(e, TP_ERR_FORMAT, "coded stream ends before segment %u (damaged, or a forged segment table)", i);
            break;
        }
        if (sg[i].kind == 1) {
            if (!out_room(&o, &ocap, pos, sg[i].bytes)) { s = tp_fail(e, TP_ERR_NOMEM, "out of memory"); break; }
            for (uint64_t k = 0; k < sg[i].bytes && !SPENT(); k++) {
                uint32_t t = ac ? tp_ac_decode_target(&ad, TOTAL_BITS) : tp_rans_decode_target(&rd, TOTAL_BITS);
                uint32_t b = t >> 16;
                if (ac) tp_ac_decode_advance(&ad, b << 16, 1u << 16, TOTAL_BITS);
                else tp_rans_decode_advance(&rd, b << 16, 1u << 16, TOTAL_BITS);
                o[pos++] = (uint8_t)b;
            }
            continue;
        }
        size_t idcap = 0;
        for (uint64_t k = 0; k < sg[i].count && s == TP_OK; k++) {
            if (k == idcap) { /* grows with the tokens decoded, never to a forged count at once */
                size_t nc = idcap ? 2 * idcap : 1024;
                int32_t *ni = realloc(ids, nc * sizeof *ids);
                if (!ni) { s = tp_fail(e, TP_ERR_NOMEM, "out of memory"); break; }
                ids = ni;
                idcap = nc;
            }
            if (SPENT()) {
                s = tp_fail(e, TP_ERR_FORMAT, "coded stream ends inside segment %u (damaged, or a forged segment table)", i);
                break;
            }
            if (L.have_logits) table_from_logits(L.logits, L.V, freq, -1, NULL);
            else uniform_table(L.V, freq);
            tp_ent_cum(freq, L.V, cum);
            uint32_t t = ac ? tp_ac_decode_target(&ad, TOTAL_BITS) : tp_rans_decode_target(&rd, TOTAL_BITS);
            uint32_t sym = tp_ent_cdf_find(cum, (uint32_t)L.V, t);
            if (ac) tp_ac_decode_advance(&ad, cum[sym], freq[sym], TOTAL_BITS);
            else tp_rans_decode_advance(&rd, cum[sym], freq[sym], TOTAL_BITS);
            ids[k] = (int32_t)sym;
            done++;
            s = lm_push(&L, (int32_t)sym, done < total_tokens, e);
        }
        if (s != TP_OK) break;
        char *d = NULL;
        size_t dl = 0;
        s = tp_tokenizer_decode(tok, ids, sg[i].count, 1, &d, &dl, e);
        if (s == TP_OK && dl != sg[i].bytes) s = tp_fail(e, TP_ERR_FORMAT, "decoded text does not match the recorded length (wrong model or damaged stream)");
        if (s == TP_OK && !out_room(&o, &ocap, pos, dl)) s = tp_fail(e, TP_ERR_NOMEM, "out of memory");
        if (s == TP_OK) memcpy(o + pos, d, dl);
        if (s == TP_OK) pos += dl;
        free(d);
        stats->tokens += sg[i].count;
    }
#undef SPENT
    if (s == TP_OK) s = ac ? tp_ac_dec_finish(&ad, e) : tp_rans_dec_finish(&rd, e);
    if (s == TP_OK && pos != olen) s = tp_fail(e, TP_ERR_FORMAT, "decoded %zu bytes, the header records %llu", pos, (unsigned long long)olen);
    if (s == TP_OK && !out_room(&o, &ocap, pos, 0)) s = tp_fail(e, TP_ERR_NOMEM, "out of memory");
    if (s == TP_OK && XXH64(o, olen, 0) != ohash) s = tp_fail(e, TP_ERR_CHECKSUM, "decoded text fails its checksum");
    free(ids);
    free(freq);
    free(cum);
    free(sg);
    lm_free(&L);
    tp_tokenizer_free(tok);
    if (s == TP_OK) {
        *out = o;
        *out_len = olen;
        stats->in_bytes = n;
        stats->out_bytes = olen;
    } else free(o);
    stats->seconds = tp_now() - t0;
    return s;
}
