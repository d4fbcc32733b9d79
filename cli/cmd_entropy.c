/* tenpak entropy: encode / decode files with the entropy coders (format: include/tenpak/entropy.h),
 * and `streams` (pipeline/entropy_streams.h): its options and output. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/json_out.h"
#include "pipeline/entropy_streams.h"
#include "tenpak/bench.h"
#include "tenpak/entropy.h"


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
    long long ll;
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
            if (!tp_arg_int("entropy encode", "--lanes", v, 1, TP_ENT_MAX_LANES, &ll)) return 2;
            lanes = (int)ll;
        } else if (tp_arg(argc, argv, &i, "--scale-bits", &v)) {
            if (!tp_arg_int("entropy encode", "--scale-bits", v, 1, TP_ENT_SCALE_MAX, &ll)) return 2;
            p.scale_bits = (int)ll;
        } else if (tp_arg(argc, argv, &i, "--sym-bits", &v)) {
            if (strcmp(v, "8") && strcmp(v, "4")) {
                fprintf(stderr, "tenpak entropy encode: --sym-bits must be 8 or 4\n");
                return 2;
            }
            p.sym_bits = atoi(v);
        } else if (tp_arg(argc, argv, &i, "--repeat", &v)) {
            if (!tp_arg_int("entropy encode", "--repeat", v, 1, 1000, &ll)) return 2;
            repeat = (int)ll;
        } else if (tp_flag(argv, i, "--help")) {
            printf("usage: tenpak entropy encode [--coder rans|ac] [--lanes N] [--scale-bits S] [--sym-bits 8|4]\n"
                   "                              [--repeat K] [--json FILE] IN OUT\n"
                   "  Entropy-codes IN (static order-0 model) into the block OUT. Defaults: rans, 32 lanes,\n"
                   "  scale auto (the smallest of 12..15 within 0.35%% of the order-0 entropy), 8-bit symbols.\n"
                   "  Encodes and decodes K times (default 5, one thread) and prints the ratio,\n"
                   "  bits/byte, the order-0 entropy of IN and the median MB/s.\n");
            return 0;
        } else if (!tp_cli_in_out("entropy encode", argv[i], &in, &out))
            return 2;
    }
    if (!tp_cli_have_in_out("entropy encode", in, out)) return 2;
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
        /* the lookup the decoder took at this block's scale (auto resolved) */
        cJSON_AddStringToObject(o, "rans_lookup", tp_rans_lookup_name(tp_rans_lookup_at(tp_ent_rans_lookup(), h.scale_bits)));
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
        } else if (!tp_cli_in_out("entropy decode", argv[i], &in, &out))
            return 2;
    }
    if (!tp_cli_have_in_out("entropy decode", in, out)) return 2;
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

/* ---- streams (pipeline/entropy_streams.h): the table on stdout, the rows as JSON ---- */
static void add_row(void *arr, const tp_streams_row *r) {
    int gsize = r->group;
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
static void dict_failed(void *arr, const tp_streams_row *r) {
    (void)arr;
    printf("%-5s %-10s %-26s dictionary training failed (too few samples)\n", r->group > 0 ? "" : "-", r->stream,
           r->method);
}
static void tensors_line(void *arr, size_t nt) {
    (void)arr;
    printf("(%zu 2-D tensors)\n", nt);
}
static void vq_line(void *arr, size_t nt, double vq_s) {
    (void)arr;
    printf("(VQ d4 K256 and 2:4 of %zu 2-D tensors; k-means + encode %.1f s)\n", nt, vq_s);
}

static int cmd_streams(int argc, char **argv) {
    const char *json = NULL, *model = NULL, *v;
    int repeat = 3, groups[4] = {128, 16}, ngroups = 2, vq_tensors = -1, vq_iters = 10;
    long long ll;
    for (int i = 1; i < argc; i++) {
        if (tp_arg(argc, argv, &i, "--json", &v)) json = v;
        else if (tp_arg(argc, argv, &i, "--model", &v)) model = v;
        else if (tp_arg(argc, argv, &i, "--repeat", &v)) {
            if (!tp_arg_int("entropy streams", "--repeat", v, 1, 16, &ll)) return 2;
            repeat = (int)ll;
        } else if (tp_arg(argc, argv, &i, "--group", &v)) {
            if (!tp_arg_int("entropy streams", "--group", v, 2, 4096, &ll)) return 2;
            groups[0] = (int)ll;
            ngroups = 1;
        } else if (tp_arg(argc, argv, &i, "--vq-tensors", &v)) {
            if (!tp_arg_int("entropy streams", "--vq-tensors", v, 0, 100000, &ll)) return 2;
            vq_tensors = (int)ll;
        } else if (tp_arg(argc, argv, &i, "--vq-iters", &v)) {
            if (!tp_arg_int("entropy streams", "--vq-iters", v, 1, 100, &ll)) return 2;
            vq_iters = (int)ll;
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
    printf("model %s: INT4 streams (one thread; MB/s of uncompressed stream, median of %d)\n", model, repeat);
    printf("%-5s %-10s %-26s %11s %11s %8s %8s %9s %9s\n", "group", "stream", "method", "bytes_in", "bytes_out", "ratio",
           "bits/B", "enc MB/s", "dec MB/s");
    tp_streams_opts so = {.groups = groups, .ngroups = ngroups, .repeat = repeat, .vq_tensors = vq_tensors,
                          .vq_iters = vq_iters};
    tp_streams_sink sink = {.user = arr, .tensors = tensors_line, .row = add_row, .dict_failed = dict_failed,
                            .vq = vq_line};
    int rc = 0;
    if (tp_entropy_streams(set, &so, &sink, &e) != TP_OK) {
        fprintf(stderr, "tenpak entropy streams: %s\n", e.msg);
        rc = 1;
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
