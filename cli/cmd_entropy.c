/* tenpak entropy: encode / decode files with the entropy coders (format: include/tenpak/entropy.h),
 * and `streams`: the lossless stage after a codec on real weights, side by side with zstd. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zdict.h>
#include <zstd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/json_out.h"
#include "pipeline/safetensors.h"
#include "tenpak/bench.h"
#include "tenpak/entropy.h"
#include "tenpak/quant.h"
#include "tenpak/sparse.h"
#include "tenpak/vq.h"


static double byte_entropy(const uint8_t *d, size_t n) {
    uint64_t c[256];
    tp_ent_count(d, n, 8, c);
    return tp_ent_entropy_bits(c, 256);
}

/* ---- encode ---- */
static int cmd_encode(int argc, char **argv) {
    const char *json = NULL, *v, *in = NULL, *out = NULL;
    tp_ent_params p;
    tp_ent_params_default(&p, TP_ENT_RANS);
    int lanes = -1, repeat = 5;
    unsigned long long u;
    for (int i = 1; i < argc; i++) {
        if (tp_arg(argc, argv, &i, "--json", &v)) json = v;
        else if (tp_arg(argc, argv, &i, "--coder", &v)) {
            if (!strcmp(v, "rans")) p.coder = TP_ENT_RANS;
            else if (!strcmp(v, "ac")) p.coder = TP_ENT_AC;
            else {
                fprintf(stderr, "tenpak entropy encode: --coder must be rans or ac, got '%s'\n", v);
                return 2;
            }
        } else if (tp_arg(argc, argv, &i, "--lanes", &v)) {
            if (!tp_parse_u64(v, &u) || u < 1 || u > TP_ENT_MAX_LANES) {
                fprintf(stderr, "tenpak entropy encode: --lanes must be 1..%d\n", TP_ENT_MAX_LANES);
                return 2;
            }
            lanes = (int)u;
        } else if (tp_arg(argc, argv, &i, "--scale-bits", &v)) {
            if (!tp_parse_u64(v, &u) || u < 1 || u > TP_ENT_SCALE_MAX) {
                fprintf(stderr, "tenpak entropy encode: --scale-bits must be 1..%d\n", TP_ENT_SCALE_MAX);
                return 2;
            }
            p.scale_bits = (int)u;
        } else if (tp_arg(argc, argv, &i, "--sym-bits", &v)) {
            if (strcmp(v, "8") && strcmp(v, "4")) {
                fprintf(stderr, "tenpak entropy encode: --sym-bits must be 8 or 4\n");
                return 2;
            }
            p.sym_bits = atoi(v);
        } else if (tp_arg(argc, argv, &i, "--repeat", &v)) {
            if (!tp_parse_u64(v, &u) || u < 1 || u > 1000) {
                fprintf(stderr, "tenpak entropy encode: --repeat must be 1..1000\n");
                return 2;
            }
            repeat = (int)u;
        } else if (tp_flag(argv, i, "--help")) {
            printf("usage: tenpak entropy encode [--coder rans|ac] [--lanes N] [--scale-bits S] [--sym-bits 8|4]\n"
                   "                              [--repeat K] [--json FILE] IN OUT\n"
                   "  Entropy-codes IN (static order-0 model) into the block OUT. Defaults: rans, 32 lanes,\n"
                   "  scale 12, 8-bit symbols. Encodes and decodes K times (default 5, one thread) and\n"
                   "  prints the ratio, bits/byte, the order-0 entropy of IN and the median MB/s.\n");
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "tenpak entropy encode: unknown option '%s' (see --help)\n", argv[i]);
            return 2;
        } else if (!in) in = argv[i];
        else if (!out) out = argv[i];
        else {
            fprintf(stderr, "tenpak entropy encode: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!in || !out) {
        fprintf(stderr, "tenpak entropy encode: needs IN and OUT (see --help)\n");
        return 2;
    }
    if (!tp_cli_output("entropy encode", "OUT", out) || !tp_cli_output("entropy encode", "--json", json)) return 2;
    p.lanes = p.coder == TP_ENT_RANS ? (lanes > 0 ? lanes : TP_ENT_LANES_CPU) : 0;
    tp_err e;
    size_t n;
    uint8_t *src = tp_read_file(in, &n, &e);
    if (!src) {
        fprintf(stderr, "tenpak entropy encode: %s\n", e.msg);
        return 1;
    }
    size_t cap = tp_ent_bound(n), len = 0, n2 = 0;
    uint8_t *dst = tp_alloc(cap), *chk = tp_alloc(n ? n : 1);
    double *te = malloc((size_t)repeat * sizeof *te), *td = malloc((size_t)repeat * sizeof *td);
    int rc = 1;
    if (!dst || !chk || !te || !td) {
        fprintf(stderr, "tenpak entropy encode: %s: out of memory (%zu bytes)\n", in, n);
        goto done;
    }
    for (int r = 0; r < repeat; r++) {
        double t0 = tp_now();
        tp_status st = tp_ent_encode_cpu(src, n, &p, dst, cap, &len, &e);
        te[r] = tp_now() - t0;
        if (st != TP_OK) {
            fprintf(stderr, "tenpak entropy encode: %s: %s\n", in, e.msg);
            goto done;
        }
    }
    for (int r = 0; r < repeat; r++) {
        double t0 = tp_now();
        tp_status st = tp_ent_decode_cpu(dst, len, chk, n, &n2, &e);
        td[r] = tp_now() - t0;
        if (st != TP_OK || n2 != n || memcmp(chk, src, n)) {
            fprintf(stderr, "tenpak entropy encode: %s: round trip failed: %s\n", in, st != TP_OK ? e.msg : "data differs");
            goto done;
        }
    }
    if (tp_write_file_atomic(out, dst, len, &e) != TP_OK) {
        fprintf(stderr, "tenpak entropy encode: %s\n", e.msg);
        goto done;
    }
    tp_ent_header h;
    tp_ent_parse_header(dst, len, &h, &e);
    double me = tp_median(te, (size_t)repeat), md = tp_median(td, (size_t)repeat);
    double ratio = len ? (double)n / (double)len : 0, bpb = n ? 8.0 * (double)len / (double)n : 0;
    double ent = byte_entropy(src, n), emb = me > 0 ? n / me / 1e6 : 0, dmb = md > 0 ? n / md / 1e6 : 0;
    uint64_t cnt[256];
    tp_ent_count(src, n, p.sym_bits, cnt);
    double sym_ent = tp_ent_entropy_bits(cnt, 1 << p.sym_bits) * (p.sym_bits == 8 ? 1 : 2);
    printf("%s -> %s: %s (lanes %d, scale %d, %d-bit symbols), %zu -> %zu bytes, ratio %.4f, "
           "%.4f bits/byte (order-0 entropy %.4f), encode %.1f MB/s, decode %.1f MB/s (median of %d)\n",
           in, out, tp_ent_coder_name(h.coder), h.lanes, h.scale_bits, p.sym_bits, n, len, ratio, bpb, sym_ent,
           emb, dmb, repeat);
    rc = 0;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "input", in);
        cJSON_AddStringToObject(o, "output", out);
        cJSON_AddStringToObject(o, "coder", tp_ent_coder_name(h.coder));
        cJSON_AddNumberToObject(o, "lanes", h.lanes);
        cJSON_AddNumberToObject(o, "scale_bits", h.scale_bits);
        cJSON_AddNumberToObject(o, "sym_bits", p.sym_bits);
        cJSON_AddNumberToObject(o, "bytes_in", (double)n);
        cJSON_AddNumberToObject(o, "bytes_out", (double)len);
        cJSON_AddNumberToObject(o, "ratio", ratio);
        cJSON_AddNumberToObject(o, "bits_per_byte", bpb);
        cJSON_AddNumberToObject(o, "entropy_bits_per_byte", ent);
        cJSON_AddNumberToObject(o, "model_entropy_bits_per_byte", sym_ent);
        cJSON_AddNumberToObject(o, "encode_MBps", emb);
        cJSON_AddNumberToObject(o, "decode_MBps", dmb);
        cJSON_AddNumberToObject(o, "repeat", repeat);
        cJSON_AddStringToObject(o, "isa", tp_isa_name(tp_cpu_isa()));
        rc = tp_cli_json_out("entropy encode", json, o);
        cJSON_Delete(o);
    }
done:
    free(src);
    tp_free(dst);
    tp_free(chk);
    free(te);
    free(td);
    return rc;
}

/* ---- decode ---- */
static int cmd_decode(int argc, char **argv) {
    const char *json = NULL, *v, *in = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (tp_arg(argc, argv, &i, "--json", &v)) json = v;
        else if (tp_flag(argv, i, "--help")) {
            printf("usage: tenpak entropy decode [--json FILE] IN OUT\n"
                   "  Decodes the block IN (coder read from its header), checks its XXH64, writes OUT.\n");
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "tenpak entropy decode: unknown option '%s' (see --help)\n", argv[i]);
            return 2;
        } else if (!in) in = argv[i];
        else if (!out) out = argv[i];
        else {
            fprintf(stderr, "tenpak entropy decode: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!in || !out) {
        fprintf(stderr, "tenpak entropy decode: needs IN and OUT (see --help)\n");
        return 2;
    }
    if (!tp_cli_output("entropy decode", "OUT", out) || !tp_cli_output("entropy decode", "--json", json)) return 2;
    tp_err e;
    size_t len, n = 0;
    uint8_t *src = tp_read_file(in, &len, &e);
    if (!src) {
        fprintf(stderr, "tenpak entropy decode: %s\n", e.msg);
        return 1;
    }
    tp_ent_header h;
    int rc = 1;
    uint8_t *dst = NULL;
    if (tp_ent_parse_header(src, len, &h, &e) != TP_OK) {
        fprintf(stderr, "tenpak entropy decode: %s: %s\n", in, e.msg);
        goto done;
    }
    dst = tp_alloc(h.n ? (size_t)h.n : 1);
    if (!dst) {
        fprintf(stderr, "tenpak entropy decode: %s: out of memory for %llu decoded bytes\n", in, (unsigned long long)h.n);
        goto done;
    }
    double t0 = tp_now();
    tp_status st = tp_ent_decode_cpu(src, len, dst, (size_t)h.n, &n, &e);
    double td = tp_now() - t0;
    if (st != TP_OK) {
        fprintf(stderr, "tenpak entropy decode: %s: %s\n", in, e.msg);
        goto done;
    }
    if (tp_write_file_atomic(out, dst, n, &e) != TP_OK) {
        fprintf(stderr, "tenpak entropy decode: %s\n", e.msg);
        goto done;
    }
    double dmb = td > 0 ? n / td / 1e6 : 0, ratio = len ? (double)n / (double)len : 0;
    printf("%s -> %s: %s, %zu -> %zu bytes, ratio %.4f, %.4f bits/byte (order-0 entropy %.4f), decode %.1f MB/s\n", in,
           out, tp_ent_coder_name(h.coder), len, n, ratio, n ? 8.0 * len / n : 0, byte_entropy(dst, n), dmb);
    rc = 0;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "input", in);
        cJSON_AddStringToObject(o, "output", out);
        cJSON_AddStringToObject(o, "coder", tp_ent_coder_name(h.coder));
        cJSON_AddNumberToObject(o, "bytes_in", (double)len);
        cJSON_AddNumberToObject(o, "bytes_out", (double)n);
        cJSON_AddNumberToObject(o, "ratio", ratio);
        cJSON_AddNumberToObject(o, "bits_per_byte", n ? 8.0 * len / n : 0);
        cJSON_AddNumberToObject(o, "entropy_bits_per_byte", byte_entropy(dst, n));
        cJSON_AddNumberToObject(o, "decode_MBps", dmb);
        rc = tp_cli_json_out("entropy decode", json, o);
        cJSON_Delete(o);
    }
done:
    free(src);
    tp_free(dst);
    return rc;
}

/* ---- streams: INT4 codes and scales of real weights, entropy-coded vs zstd ---- */
typedef struct buf {
    uint8_t *d;
    size_t n, cap;
} buf;
static int buf_put(buf *b, const void *p, size_t n) {
    if (b->n + n > b->cap) {
        size_t c = b->cap ? b->cap : 1 << 20;
        while (c < b->n + n) c *= 2;
        uint8_t *d = realloc(b->d, c);
        if (!d) return 0;
        b->d = d;
        b->cap = c;
    }
    memcpy(b->d + b->n, p, n);
    b->n += n;
    return 1;
}

typedef struct row {
    const char *stream, *method;
    double in, out, enc_s, dec_s;
} row;

#define CHUNK (128 * 1024)

static void add_row(cJSON *arr, int gsize, const row *r) {
    double ratio = r->out > 0 ? r->in / r->out : 0;
    char g[16];
    if (gsize > 0) snprintf(g, sizeof g, "g%d", gsize);
    else snprintf(g, sizeof g, "-");
    printf("%-5s %-10s %-26s %11.0f %11.0f %8.4f %8.4f %9.1f %9.1f\n", g, r->stream, r->method, r->in, r->out, ratio,
           8.0 * r->out / r->in, r->in / r->enc_s / 1e6, r->in / r->dec_s / 1e6);
    cJSON *o = cJSON_CreateObject();
    if (gsize > 0) cJSON_AddNumberToObject(o, "group", gsize);
    else cJSON_AddNullToObject(o, "group"); /* streams that do not depend on the INT4 group */
    cJSON_AddStringToObject(o, "stream", r->stream);
    cJSON_AddStringToObject(o, "method", r->method);
    cJSON_AddNumberToObject(o, "bytes_in", r->in);
    cJSON_AddNumberToObject(o, "bytes_out", r->out);
    cJSON_AddNumberToObject(o, "ratio", ratio);
    cJSON_AddNumberToObject(o, "bits_per_byte", 8.0 * r->out / r->in);
    cJSON_AddNumberToObject(o, "encode_MBps", r->in / r->enc_s / 1e6);
    cJSON_AddNumberToObject(o, "decode_MBps", r->in / r->dec_s / 1e6);
    cJSON_AddItemToArray(arr, o);
}

/* Our coder: median of `repeat` timings; checks the round trip. */
static int run_ent(const uint8_t *d, size_t n, tp_ent_coder coder, int sym_bits, int repeat, row *r) {
    tp_ent_params p;
    tp_ent_params_default(&p, coder);
    p.sym_bits = sym_bits;
    size_t cap = tp_ent_bound(n), len = 0, n2;
    uint8_t *enc = tp_alloc(cap), *dec = tp_alloc(n ? n : 1);
    double te[16], td[16];
    tp_err e;
    int ok = enc && dec;
    for (int k = 0; ok && k < repeat; k++) {
        double t0 = tp_now();
        ok = tp_ent_encode_cpu(d, n, &p, enc, cap, &len, &e) == TP_OK;
        te[k] = tp_now() - t0;
    }
    for (int k = 0; ok && k < repeat; k++) {
        double t0 = tp_now();
        ok = tp_ent_decode_cpu(enc, len, dec, n, &n2, &e) == TP_OK && n2 == n;
        td[k] = tp_now() - t0;
    }
    ok = ok && memcmp(dec, d, n) == 0;
    r->in = (double)n;
    r->out = (double)len;
    r->enc_s = ok ? tp_median(te, (size_t)repeat) : 1;
    r->dec_s = ok ? tp_median(td, (size_t)repeat) : 1;
    tp_free(enc);
    tp_free(dec);
    return ok;
}

static int run_zstd(const uint8_t *d, size_t n, int level, int repeat, row *r) {
    size_t cap = ZSTD_compressBound(n), len = 0;
    uint8_t *enc = malloc(cap), *dec = malloc(n ? n : 1);
    double te[16], td[16];
    int ok = enc && dec;
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    ZSTD_DCtx *dc = ZSTD_createDCtx();
    for (int k = 0; ok && k < repeat; k++) {
        double t0 = tp_now();
        len = ZSTD_compressCCtx(cc, enc, cap, d, n, level);
        te[k] = tp_now() - t0;
        ok = !ZSTD_isError(len);
    }
    for (int k = 0; ok && k < repeat; k++) {
        double t0 = tp_now();
        size_t m = ZSTD_decompressDCtx(dc, dec, n, enc, len);
        td[k] = tp_now() - t0;
        ok = !ZSTD_isError(m) && m == n;
    }
    ok = ok && memcmp(dec, d, n) == 0;
    r->in = (double)n;
    r->out = (double)len;
    r->enc_s = ok ? tp_median(te, (size_t)repeat) : 1;
    r->dec_s = ok ? tp_median(td, (size_t)repeat) : 1;
    ZSTD_freeCCtx(cc);
    ZSTD_freeDCtx(dc);
    free(enc);
    free(dec);
    return ok;
}

/* zstd with a dictionary: the stream cut in 128 KiB chunks (as a container would store it; smaller
 * for streams under 4 MiB, so there are 32 samples at least); the dictionary (up to 112 KiB) is
 * trained on the even chunks and its size is counted in the output. Returns -1 when training
 * fails (too few samples), 0 on a failed round trip, 1 on success. */
static int run_zstd_dict(const uint8_t *d, size_t n, int level, row *r) {
    size_t CH = n >= 32 * (size_t)CHUNK ? CHUNK : n / 32 > 4096 ? n / 32 : 4096;
    size_t nch = (n + CH - 1) / CH, ntrain = 0, tsize = 0;
    size_t *sizes = malloc((nch + 1) * sizeof *sizes);
    uint8_t *train = malloc(n + 1), *dict = malloc(112 * 1024), *enc = malloc(ZSTD_compressBound(CH)),
            *dec = malloc(CH);
    int ok = sizes && train && dict && enc && dec;
    for (size_t c = 0; ok && c < nch; c += 2) {
        size_t len = n - c * CH < CH ? n - c * CH : CH;
        memcpy(train + tsize, d + c * CH, len);
        sizes[ntrain++] = len;
        tsize += len;
    }
    size_t dsize = ok ? ZDICT_trainFromBuffer(dict, 112 * 1024, train, sizes, (unsigned)ntrain) : 0;
    if (ok && ZDICT_isError(dsize)) {
        free(sizes);
        free(train);
        free(dict);
        free(enc);
        free(dec);
        return -1;
    }
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    ZSTD_DCtx *dc = ZSTD_createDCtx();
    ZSTD_CDict *cd = ok ? ZSTD_createCDict(dict, dsize, level) : NULL;
    ZSTD_DDict *dd = ok ? ZSTD_createDDict(dict, dsize) : NULL;
    double out = (double)dsize, te = 0, td = 0;
    for (size_t c = 0; ok && c < nch; c++) {
        size_t len = n - c * CH < CH ? n - c * CH : CH;
        double t0 = tp_now();
        size_t m = ZSTD_compress_usingCDict(cc, enc, ZSTD_compressBound(CH), d + c * CH, len, cd);
        te += tp_now() - t0;
        if (ZSTD_isError(m)) {
            ok = 0;
            break;
        }
        out += (double)m;
        t0 = tp_now();
        size_t k = ZSTD_decompress_usingDDict(dc, dec, CH, enc, m, dd);
        td += tp_now() - t0;
        ok = !ZSTD_isError(k) && k == len && !memcmp(dec, d + c * CH, len);
    }
    r->in = (double)n;
    r->out = out;
    r->enc_s = ok && te > 0 ? te : 1;
    r->dec_s = ok && td > 0 ? td : 1;
    ZSTD_freeCDict(cd);
    ZSTD_freeDDict(dd);
    ZSTD_freeCCtx(cc);
    ZSTD_freeDCtx(dc);
    free(sizes);
    free(train);
    free(dict);
    free(enc);
    free(dec);
    return ok;
}

/* Every method on one stream (nibble rANS / AC too where the stream is nibbles); 0 on a failed
 * round trip. */
static int code_stream(cJSON *arr, int gsize, const char *name, const uint8_t *d, size_t n, int nibbles,
                       int repeat) {
    row r;
    int ok = 1;
    r.stream = name;
    if (nibbles) {
        r.method = "rans o0 nibbles";
        ok &= run_ent(d, n, TP_ENT_RANS, 4, repeat, &r);
        add_row(arr, gsize, &r);
    }
    r.method = "rans o0 bytes";
    ok &= run_ent(d, n, TP_ENT_RANS, 8, repeat, &r);
    add_row(arr, gsize, &r);
    r.method = "ac o0 bytes";
    ok &= run_ent(d, n, TP_ENT_AC, 8, repeat, &r);
    add_row(arr, gsize, &r);
    r.method = "zstd -3";
    ok &= run_zstd(d, n, 3, repeat, &r);
    add_row(arr, gsize, &r);
    r.method = "zstd -19";
    ok &= run_zstd(d, n, 19, 1, &r);
    add_row(arr, gsize, &r);
    r.method = "zstd -19 dict (chunked)";
    int dk = run_zstd_dict(d, n, 19, &r);
    if (dk < 0) printf("%-5s %-10s %-26s dictionary training failed (too few samples)\n", gsize > 0 ? "" : "-", name, r.method);
    else add_row(arr, gsize, &r);
    ok &= dk != 0;
    if (!ok) fprintf(stderr, "tenpak entropy streams: a round trip failed on the %s stream\n", name);
    return ok;
}

/* fp16 words (little-endian) split into a plane of high bytes (sign, exponent, 2 mantissa bits)
 * and a plane of low bytes (mantissa). */
static int split_planes(const buf *b, buf *hi, buf *lo) {
    const size_t m = b->n / 2;
    hi->d = malloc(m ? m : 1);
    lo->d = malloc(m ? m : 1);
    if (!hi->d || !lo->d) return 0;
    for (size_t i = 0; i < m; i++) {
        lo->d[i] = b->d[2 * i];
        hi->d[i] = b->d[2 * i + 1];
    }
    hi->n = lo->n = hi->cap = lo->cap = m;
    return 1;
}

/* The VQ code stream (k-means d4 K256, 8-bit codes, row-major) and the 2:4 metadata stream
 * (uint16 words, four 4-bit fields each: two nibble symbols per byte) of the first max_t 2-D
 * tensors (all when max_t < 0). */
static int build_vq_sparse(tp_st_set *set, int max_t, int vq_iters, buf *vq, buf *meta, size_t *nt, double *vq_s) {
    *nt = 0;
    *vq_s = 0;
    for (size_t t = 0; t < tp_st_count(set) && (max_t < 0 || (int)*nt < max_t); t++) {
        const tp_st_tensor *T = tp_st_at(set, t);
        if (T->ndim != 2 || !tp_st_is_float(T->dtype) || T->shape[0] < 1 || T->shape[1] < 4) continue;
        const int64_t rows = T->shape[0], cols = T->shape[1];
        float *W = tp_alloc((size_t)T->numel * sizeof(float)), *P = tp_alloc((size_t)T->numel * sizeof(float));
        tp_vqmat m;
        tp_sp24 sp;
        int ok = W && P && tp_vq_alloc(&m, rows, cols, 4, 256) == TP_OK;
        if (ok) {
            tp_st_to_f32(T, W);
            tp_kmeans_opts o = {.seed = 1, .max_iters = vq_iters, .tol = 1e-4, .max_train = 65536};
            double t0 = tp_now();
            ok = tp_vq_fit(&m, W, &o, NULL) == TP_OK && buf_put(vq, m.codes8, (size_t)(rows * m.nvec));
            *vq_s += tp_now() - t0;
            tp_vq_free(&m);
        }
        if (ok) {
            tp_prune24_cpu(W, rows, cols, NULL, P);
            ok = tp_sp24_alloc(&sp, TP_SP_F16, rows, cols, 0) == TP_OK;
            if (ok) {
                ok = tp_sp24_compress_cpu(&sp, P, 0) == TP_OK &&
                     buf_put(meta, sp.meta, (size_t)(rows * sp.meta_stride) * sizeof(uint16_t));
                tp_sp24_free(&sp);
            }
        }
        tp_free(W);
        tp_free(P);
        if (!ok) return 0;
        (*nt)++;
    }
    return 1;
}

static int cmd_streams(int argc, char **argv) {
    const char *json = NULL, *model = NULL, *v;
    int repeat = 3, groups[4] = {128, 16}, ngroups = 2, vq_tensors = -1, vq_iters = 10;
    unsigned long long u;
    for (int i = 1; i < argc; i++) {
        if (tp_arg(argc, argv, &i, "--json", &v)) json = v;
        else if (tp_arg(argc, argv, &i, "--model", &v)) model = v;
        else if (tp_arg(argc, argv, &i, "--repeat", &v)) {
            if (!tp_parse_u64(v, &u) || u < 1 || u > 16) {
                fprintf(stderr, "tenpak entropy streams: --repeat must be 1..16\n");
                return 2;
            }
            repeat = (int)u;
        } else if (tp_arg(argc, argv, &i, "--group", &v)) {
            if (!tp_parse_u64(v, &u) || u < 2 || u > 4096) {
                fprintf(stderr, "tenpak entropy streams: --group must be 2..4096\n");
                return 2;
            }
            groups[0] = (int)u;
            ngroups = 1;
        } else if (tp_arg(argc, argv, &i, "--vq-tensors", &v)) {
            if (!tp_parse_u64(v, &u) || u > 100000) {
                fprintf(stderr, "tenpak entropy streams: --vq-tensors must be 0..100000\n");
                return 2;
            }
            vq_tensors = (int)u;
        } else if (tp_arg(argc, argv, &i, "--vq-iters", &v)) {
            if (!tp_parse_u64(v, &u) || u < 1 || u > 100) {
                fprintf(stderr, "tenpak entropy streams: --vq-iters must be 1..100\n");
                return 2;
            }
            vq_iters = (int)u;
        } else if (tp_flag(argv, i, "--help")) {
            printf("usage: tenpak entropy streams --model DIR [--group G] [--repeat K] [--vq-tensors N]\n"
                   "                              [--vq-iters I] [--json FILE]\n"
                   "  Quantises every 2-D weight of the model (INT4 min/max, groups of G along rows;\n"
                   "  default: g128 and g16) and codes the nibble stream and the fp16 scale+offset stream\n"
                   "  with rANS, AC, zstd -3, zstd -19 and zstd -19 with a trained dictionary; the scale\n"
                   "  stream also split into byte planes (scales.hi: high bytes, scales.lo: low bytes).\n"
                   "  Then, once: the VQ code stream (k-means d4 K256 per tensor, I Lloyd iterations on a\n"
                   "  65536-vector sample [10]; the first N tensors [all]; N = 0 skips VQ and 2:4) and the\n"
                   "  2:4 metadata stream (magnitude pruning, 4-bit fields: nibble symbols).\n"
                   "  One thread; MB/s in uncompressed bytes, median of K runs (default 3).\n");
            return 0;
        } else {
            fprintf(stderr, "tenpak entropy streams: unknown option '%s' (see --help)\n", argv[i]);
            return 2;
        }
    }
    if (!model) {
        fprintf(stderr, "tenpak entropy streams: needs --model DIR\n");
        return 2;
    }
    tp_err e;
    tp_st_set *set;
    if (tp_model_files_open(model, &set, &e) != TP_OK) {
        fprintf(stderr, "tenpak entropy streams: %s\n", e.msg);
        return 1;
    }
    cJSON *arr = cJSON_CreateArray();
    int rc = 0;
    printf("model %s: INT4 streams (one thread; MB/s of uncompressed stream, median of %d)\n", model, repeat);
    printf("%-5s %-10s %-26s %11s %11s %8s %8s %9s %9s\n", "group", "stream", "method", "bytes_in", "bytes_out", "ratio",
           "bits/B", "enc MB/s", "dec MB/s");
    for (int gi = 0; gi < ngroups && !rc; gi++) {
        buf codes = {0}, scales = {0};
        size_t nt = 0;
        for (size_t t = 0; t < tp_st_count(set) && !rc; t++) {
            const tp_st_tensor *T = tp_st_at(set, t);
            if (T->ndim != 2 || !tp_st_is_float(T->dtype) || T->shape[0] < 1 || T->shape[1] < 2) continue;
            tp_qmat q;
            float *W = tp_alloc((size_t)T->numel * sizeof(float));
            if (!W || tp_qmat_alloc(&q, TP_Q_INT4, T->shape[0], T->shape[1], groups[gi]) != TP_OK) {
                tp_free(W);
                rc = 1;
                break;
            }
            tp_st_to_f32(T, W);
            tp_quantize_ref(&q, W, 0);
            size_t nsc = (size_t)(q.rows * q.ngroups);
            if (!buf_put(&codes, q.codes, (size_t)(q.rows * q.code_stride)) ||
                !buf_put(&scales, q.scale, nsc * 2) || !buf_put(&scales, q.offset, nsc * 2))
                rc = 1;
            tp_qmat_free(&q);
            tp_free(W);
            nt++;
        }
        if (rc) {
            fprintf(stderr, "tenpak entropy streams: out of memory\n");
            free(codes.d);
            free(scales.d);
            break;
        }
        if (gi == 0) printf("(%zu 2-D tensors)\n", nt);
        buf hi = {0}, lo = {0};
        if (!split_planes(&scales, &hi, &lo)) {
            fprintf(stderr, "tenpak entropy streams: out of memory\n");
            rc = 1;
        }
        if (!rc && !code_stream(arr, groups[gi], "codes", codes.d, codes.n, 1, repeat)) rc = 1;
        if (!rc && !code_stream(arr, groups[gi], "scales", scales.d, scales.n, 0, repeat)) rc = 1;
        if (!rc && !code_stream(arr, groups[gi], "scales.hi", hi.d, hi.n, 0, repeat)) rc = 1;
        if (!rc && !code_stream(arr, groups[gi], "scales.lo", lo.d, lo.n, 0, repeat)) rc = 1;
        free(hi.d);
        free(lo.d);
        free(codes.d);
        free(scales.d);
    }
    if (!rc && vq_tensors != 0) {
        buf vq = {0}, meta = {0};
        size_t nt = 0;
        double vq_s = 0;
        if (!build_vq_sparse(set, vq_tensors, vq_iters, &vq, &meta, &nt, &vq_s)) {
            fprintf(stderr, "tenpak entropy streams: VQ / 2:4 encoding failed (out of memory?)\n");
            rc = 1;
        } else {
            printf("(VQ d4 K256 and 2:4 of %zu 2-D tensors; k-means + encode %.1f s)\n", nt, vq_s);
            if (!code_stream(arr, 0, "vq.codes", vq.d, vq.n, 0, repeat)) rc = 1;
            if (!rc && !code_stream(arr, 0, "sp24.meta", meta.d, meta.n, 1, repeat)) rc = 1;
        }
        free(vq.d);
        free(meta.d);
    }
    tp_st_close(set);
    if (!rc && json) rc = tp_cli_json_out("entropy streams", json, arr);
    cJSON_Delete(arr);
    return rc;
}

int tp_cmd_entropy(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help")) {
        FILE *f = argc < 2 ? stderr : stdout;
        fprintf(f, "usage: tenpak entropy encode [--coder rans|ac] [--json FILE] IN OUT\n"
                   "       tenpak entropy decode [--json FILE] IN OUT\n"
                   "       tenpak entropy streams --model DIR [--vq-tensors N] [--json FILE]\n"
                   "  (tenpak entropy SUBCOMMAND --help for the options)\n");
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "encode")) return cmd_encode(argc - 1, argv + 1);
    if (!strcmp(argv[1], "decode")) return cmd_decode(argc - 1, argv + 1);
    if (!strcmp(argv[1], "streams")) return cmd_streams(argc - 1, argv + 1);
    fprintf(stderr, "tenpak entropy: unknown subcommand '%s' (encode, decode, streams)\n", argv[1]);
    return 2;
}
