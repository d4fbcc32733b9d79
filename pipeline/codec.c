/* The codec dispatcher (pipeline/codec.h): the method table, spec parsing (aliases, parameters
 * over each method's defaults, the canonical spec), chains, blob sizes, encode / decode. Each
 * method, with the check of its parameters, is in its own file (pipeline/codec_methods.h lists
 * them). */
#include "pipeline/codec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/codec_methods.h"

/* The methods, in the order tp_codec_methods() names them. */
static const tp_codec_method *const methods[] = {
    &tp_codec_int4,  &tp_codec_int4r2, &tp_codec_nf4,      &tp_codec_awq,     &tp_codec_gptq,
    &tp_codec_mixed, &tp_codec_vq,     &tp_codec_sparse24, &tp_codec_lowrank,
};
#define NMETHODS (sizeof methods / sizeof methods[0])

static const tp_codec_method *find_method(const char *name) {
    for (size_t i = 0; i < NMETHODS; i++)
        if (!strcmp(methods[i]->name, name)) return methods[i];
    return NULL;
}

const char *tp_codec_methods(void) {
    static char buf[256];
    if (!buf[0]) {
        for (size_t i = 0; i < NMETHODS; i++)
            snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", i ? ", " : "", methods[i]->name);
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), " (aliases: svd, tenpakx, sparse24+int4)");
    }
    return buf;
}

int tp_codec_needs_calib(const tp_codec *c) {
    for (int i = 0; i < c->nstages; i++)
        if (c->stages[i].method == &tp_codec_awq || !strcmp(c->stages[i].method->name, "mixed")) return 1;
    return tp_codec_needs_xtx(c);
}

int tp_codec_needs_xtx(const tp_codec *c) {
    for (int i = 0; i < c->nstages; i++) /* mixed: its gptq candidates and the full proxy */
        if (!strcmp(c->stages[i].method->name, "gptq") || !strcmp(c->stages[i].method->name, "mixed")) return 1;
    return 0;
}

void tp_codec_set_calib_xtx(tp_codec *c, const double *xtx, int64_t nsamples) {
    for (int i = 0; i < c->nstages; i++) {
        c->stages[i].act_xtx = xtx;
        c->stages[i].act_nsamples = xtx ? nsamples : 0;
    }
}

void tp_codec_set_calib(tp_codec *c, const float *absmean, const float *sqmean) {
    for (int i = 0; i < c->nstages; i++) {
        c->stages[i].act_absmean = absmean;
        c->stages[i].act_sqmean = sqmean;
    }
}

/* The spellings of the experiment log and the issues, rewritten to method chains:
 *   svd:rank=R                          -> lowrank:r=R
 *   tenpakx:rank=R,d=D,k=K,res=int4:g=G -> lowrank:r=R,imp=1+vq:d=D,k=K,imp=1+int4:g=G
 *   sparse24+int4:g=G                   -> sparse24:v=4,g=G
 * Returns 0 when the text is not one of them (then it is parsed as it is), -1 when it is one but
 * malformed: values are plain decimals and each key comes once, as in the grammar itself. */
static int alias_num(const char **p, long *v) {
    const char *q = *p;
    long x = 0;
    if (*q < '0' || *q > '9') return 0;
    for (; *q >= '0' && *q <= '9'; q++)
        if ((x = x * 10 + (*q - '0')) > 1000000000L) return 0;
    *v = x;
    *p = q;
    return 1;
}
static int rewrite_alias(const char *in, char *out, size_t n) {
    long r = 32, d = 4, k = 256, g = 32;
    const char *p;
    if (!strncmp(in, "svd:rank=", 9)) {
        p = in + 9;
        if (!alias_num(&p, &r) || *p) return -1;
        snprintf(out, n, "lowrank:r=%ld", r);
        return 1;
    }
    if (!strcmp(in, "svd")) { snprintf(out, n, "lowrank:r=64"); return 1; }
    if (!strncmp(in, "tenpakx", 7) && (in[7] == 0 || in[7] == ':')) {
        static const char *const keys[] = {"rank=", "d=", "k=", "res=int4:g="};
        long *vals[] = {&r, &d, &k, &g};
        int seen[4] = {0};
        p = in + 7;
        if (*p == ':') {
            p++;
            while (*p) {
                int i = 0;
                while (i < 4 && strncmp(p, keys[i], strlen(keys[i]))) i++;
                if (i == 4 || seen[i]++) return -1;
                p += strlen(keys[i]);
                if (!alias_num(&p, vals[i])) return -1;
                if (*p == ',' && p[1]) p++;
                else if (*p) return -1;
            }
        }
        /* importance-weighted SVD and VQ: the experiment log's calibration-free proxy */
        snprintf(out, n, "lowrank:r=%ld,imp=1+vq:d=%ld,k=%ld,imp=1+int4:g=%ld", r, d, k, g);
        return 1;
    }
    if (!strncmp(in, "sparse24+int4:g=", 16)) {
        p = in + 16;
        if (!alias_num(&p, &g) || *p) return -1;
        snprintf(out, n, "sparse24:v=4,g=%ld", g);
        return 1;
    }
    if (!strcmp(in, "sparse24+int4")) { snprintf(out, n, "sparse24:v=4,g=128"); return 1; }
    return 0;
}

int tp_codec_has_param(const tp_codec_stage *s, const char *key) {
    for (int i = 0; i < s->nparams; i++)
        if (!strcmp(s->params[i].key, key)) return 1;
    return 0;
}

double tp_codec_param_get(const tp_codec_stage *s, const char *key) {
    for (int i = 0; i < s->nparams; i++)
        if (!strcmp(s->params[i].key, key)) return s->params[i].value;
    return 0;
}

static int is_valid_group(double g) {
    return g >= 8 && g <= 4096 && g == floor(g) && ((long)g & ((long)g - 1)) == 0;
}

/* ---- the parameter checks the methods share (pipeline/codec_methods.h) ---- */
tp_status tp_codec_check_integers(const tp_codec_stage *s, const char *spec, const char *real, tp_err *e) {
    for (int k = 0; k < s->nparams; k++) {
        double v = s->params[k].value;
        if (real && !strcmp(s->params[k].key, real)) continue;
        if (v < 0 || v != floor(v) || v > 1e9)
            return tp_fail(e, TP_ERR_ARG, "codec '%s': %s must be a non-negative integer", spec, s->params[k].key);
    }
    return TP_OK;
}

tp_status tp_codec_check_group(const tp_codec_stage *s, const char *spec, tp_err *e) {
    double g = tp_codec_param_get(s, "g");
    if (tp_codec_has_param(s, "g") && !is_valid_group(g))
        return tp_fail(e, TP_ERR_ARG, "codec '%s': g must be a power of two in 8..4096, got %g", spec, g);
    return TP_OK;
}

tp_status tp_codec_check_refine(const tp_codec_stage *s, const char *spec, tp_err *e) {
    if (tp_codec_param_get(s, "refine") > 100) return tp_fail(e, TP_ERR_ARG, "codec '%s': refine must be in 0..100", spec);
    return TP_OK;
}

tp_status tp_codec_oom(tp_err *e, int64_t rows, int64_t cols) {
    return tp_fail(e, TP_ERR_NOMEM, "out of memory for a %lldx%lld matrix", (long long)rows, (long long)cols);
}
void *tp_codec_oom_null(tp_err *e, int64_t rows, int64_t cols) {
    tp_codec_oom(e, rows, cols);
    return NULL;
}

/* Keys a method gained after artifacts and reports named its specs: the canonical spec leaves
 * them out while they hold their default, so every spec written before them keeps its spelling
 * (and its meaning: the default is the behaviour before the key existed). */
static const struct { const char *method, *key; } added_keys[] = {
    {"gptq", "clip"}, /* the weighted clip search of the group's (scale, offset); 0 = min/max */
};

static int quiet_at_default(const tp_codec_stage *st, int k) {
    for (size_t i = 0; i < sizeof added_keys / sizeof added_keys[0]; i++) {
        if (strcmp(added_keys[i].method, st->method->name) || strcmp(added_keys[i].key, st->params[k].key)) continue;
        const char *d = strstr(st->method->defaults, st->params[k].key); /* "key=value" in the defaults */
        size_t kl = strlen(st->params[k].key);
        while (d && !((d == st->method->defaults || d[-1] == ',') && d[kl] == '=')) d = strstr(d + 1, st->params[k].key);
        return d && atof(d + kl + 1) == st->params[k].value;
    }
    return 0;
}

/* parse "k=v,k=v" into the stage, over the method's defaults */
static tp_status parse_params(tp_codec_stage *st, char *text, const char *spec, tp_err *e) {
    char defs[128];
    snprintf(defs, sizeof defs, "%s", st->method->defaults);
    st->nparams = 0;
    for (char *save = NULL, *kv = strtok_r(defs, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        *eq = 0;
        snprintf(st->params[st->nparams].key, sizeof st->params[0].key, "%s", kv);
        st->params[st->nparams++].value = atof(eq + 1);
    }
    if (!text) return TP_OK;
    /* strict: key=value items separated by single commas, none empty, no key twice, values plain
     * decimals (digits, optionally '.' and digits: no sign, exponent, hex, inf or nan) */
    int given[TP_CODEC_MAX_PARAMS] = {0};
    for (char *kv = text;;) {
        char *comma = strchr(kv, ',');
        if (comma) *comma = 0;
        char *eq = strchr(kv, '=');
        if (!*kv) return tp_fail(e, TP_ERR_ARG, "codec '%s': empty parameter (a stray ',' or ':')", spec);
        if (!eq) return tp_fail(e, TP_ERR_ARG, "codec '%s': '%s' is not key=value", spec, kv);
        *eq = 0;
        const char *v = eq + 1, *q = v;
        while (*q >= '0' && *q <= '9') q++;
        if (q > v && *q == '.' && q[1] >= '0' && q[1] <= '9')
            for (q++; *q >= '0' && *q <= '9'; q++) {}
        if (q == v || *q) return tp_fail(e, TP_ERR_ARG, "codec '%s': %s needs a plain decimal number, got '%s'", spec, kv, v);
        int found = -1;
        for (int i = 0; i < st->nparams; i++)
            if (!strcmp(st->params[i].key, kv)) found = i;
        if (found < 0)
            return tp_fail(e, TP_ERR_ARG, "codec '%s': %s takes no parameter '%s' (it takes %s)", spec,
                           st->method->name, kv, st->method->defaults);
        if (given[found]++) return tp_fail(e, TP_ERR_ARG, "codec '%s': %s is given twice", spec, kv);
        st->params[found].value = strtod(v, NULL);
        if (!comma) break;
        kv = comma + 1;
    }
    return TP_OK;
}

tp_status tp_codec_parse(const char *spec, tp_codec *c, tp_err *e) {
    memset(c, 0, sizeof *c);
    if (!spec || !*spec || strlen(spec) >= 200) return tp_fail(e, TP_ERR_ARG, "empty or overlong codec spec");
    char buf[256];
    int alias = rewrite_alias(spec, buf, sizeof buf);
    if (alias < 0)
        return tp_fail(e, TP_ERR_ARG, "codec '%s': a malformed alias (its values are plain decimal numbers, each key "
                       "once: svd:rank=R, tenpakx:rank=R,d=D,k=K,res=int4:g=G, sparse24+int4:g=G)", spec);
    if (!alias) snprintf(buf, sizeof buf, "%s", spec);
    size_t bl = strlen(buf);
    if (buf[0] == '+' || buf[bl - 1] == '+' || strstr(buf, "++"))
        return tp_fail(e, TP_ERR_ARG, "codec '%s': empty stage (a stray '+')", spec);
    for (char *save = NULL, *stage = strtok_r(buf, "+", &save); stage; stage = strtok_r(NULL, "+", &save)) {
        if (c->nstages == TP_CODEC_MAX_STAGES) return tp_fail(e, TP_ERR_ARG, "codec '%s': too many stages", spec);
        char *colon = strchr(stage, ':');
        if (colon) *colon = 0;
        tp_codec_stage *st = &c->stages[c->nstages];
        st->method = find_method(stage);
        if (!st->method)
            return tp_fail(e, TP_ERR_ARG, "codec '%s': unknown method '%s' (known: %s)", spec, stage, tp_codec_methods());
        tp_status s = parse_params(st, colon ? colon + 1 : NULL, spec, e);
        if (s != TP_OK) return s;
        if (st->method->check && (s = st->method->check(st, spec, c->nstages, e)) != TP_OK) return s;
        c->nstages++;
    }
    if (!c->nstages) return tp_fail(e, TP_ERR_ARG, "codec '%s': no stage", spec);
    /* canonical spec: every parameter written out (but an added key at its default: added_keys) */
    size_t used = 0;
    for (int i = 0; i < c->nstages; i++) {
        const tp_codec_stage *st = &c->stages[i];
        if (used >= sizeof c->spec) break;
        used += (size_t)snprintf(c->spec + used, sizeof c->spec - used, "%s%s", i ? "+" : "", st->method->name);
        for (int k = 0, nw = 0; k < st->nparams && used < sizeof c->spec; k++) {
            if (quiet_at_default(st, k)) continue;
            /* plain decimals, so the canonical spec parses again (never %g's 1e+06 or 1e-05) */
            char num[48];
            double v = st->params[k].value;
            if (v == floor(v)) snprintf(num, sizeof num, "%.0f", v);
            else {
                snprintf(num, sizeof num, "%g", v);
                if (strchr(num, 'e')) {
                    snprintf(num, sizeof num, "%.12f", v);
                    for (size_t l = strlen(num); l > 2 && num[l - 1] == '0' && num[l - 2] != '.'; l--) num[l - 1] = 0;
                }
            }
            used += (size_t)snprintf(c->spec + used, sizeof c->spec - used, "%s%s=%s", nw++ ? "," : ":", st->params[k].key, num);
        }
    }
    if (used >= sizeof c->spec) return tp_fail(e, TP_ERR_ARG, "codec '%s': too long once written out", spec);
    return TP_OK;
}

size_t tp_codec_blob_bytes(const tp_codec *c, int64_t rows, int64_t cols) {
    size_t n = 0;
    for (int i = 0; i < c->nstages; i++) n += c->stages[i].method->blob_bytes(&c->stages[i], rows, cols);
    return n;
}

double tp_codec_theory_bpw(const tp_codec *c, int64_t rows, int64_t cols) {
    double b = 0;
    for (int i = 0; i < c->nstages; i++) b += c->stages[i].method->theory_bpw(&c->stages[i], rows, cols);
    return b;
}

tp_status tp_codec_check_shape(const tp_codec *c, int64_t rows, int64_t cols, const char *what, tp_err *e) {
    for (int i = 0; i < c->nstages; i++) {
        const tp_codec_stage *s = &c->stages[i];
        tp_status st = s->method->check_shape ? s->method->check_shape(s, c->spec, rows, cols, what, e) : TP_OK;
        if (st != TP_OK) return st;
    }
    return TP_OK;
}

tp_status tp_codec_encode(const tp_codec *c, const float *W, int64_t rows, int64_t cols, uint8_t *blob, tp_err *e) {
    tp_status cs = tp_codec_check_shape(c, rows, cols, NULL, e);
    if (cs != TP_OK) return cs;
    size_t n = (size_t)(rows * cols);
    float *res = NULL; /* the residual the next stage encodes */
    const float *cur = W;
    tp_status st = TP_OK;
    for (int i = 0; i < c->nstages && st == TP_OK; i++) {
        const tp_codec_stage *s = &c->stages[i];
        st = s->method->encode(s, cur, rows, cols, blob, e);
        if (st != TP_OK || i + 1 == c->nstages) break;
        if (!res) {
            res = tp_alloc(n * sizeof(float));
            if (!res) { st = tp_fail(e, TP_ERR_NOMEM, "out of memory"); break; }
            memcpy(res, W, n * sizeof(float));
        }
        /* res -= decode(stage): decode_add into a negated copy */
        for (size_t k = 0; k < n; k++) res[k] = -res[k];
        st = s->method->decode_add(s, blob, rows, cols, res, e);
        for (size_t k = 0; k < n; k++) res[k] = -res[k];
        cur = res;
        blob += s->method->blob_bytes(s, rows, cols);
    }
    tp_free(res);
    return st;
}

tp_status tp_codec_decode(const tp_codec *c, const uint8_t *blob, size_t len, int64_t rows, int64_t cols, float *W,
                          tp_err *e) {
    if (len != tp_codec_blob_bytes(c, rows, cols))
        return tp_fail(e, TP_ERR_FORMAT, "%s blob for %lldx%lld is %zu bytes, expected %zu", c->spec, (long long)rows,
                       (long long)cols, len, tp_codec_blob_bytes(c, rows, cols));
    memset(W, 0, (size_t)(rows * cols) * sizeof(float));
    for (int i = 0; i < c->nstages; i++) {
        const tp_codec_stage *s = &c->stages[i];
        tp_status st = s->method->decode_add(s, blob, rows, cols, W, e);
        if (st != TP_OK) return st;
        blob += s->method->blob_bytes(s, rows, cols);
    }
    return TP_OK;
}
