/* `tenpak entropy streams` (pipeline/entropy_streams.h): INT4 codes and scales of real weights, and
 * VQ codes and 2:4 metadata, entropy-coded vs zstd. */
#include "pipeline/entropy_streams.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zdict.h>
#include <zstd.h>

#include "tenpak/bench.h"
#include "tenpak/entropy.h"
#include "tenpak/quant.h"
#include "tenpak/sparse.h"
#include "tenpak/vq.h"

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

#define CHUNK (128 * 1024)

/* Our coder: median of `repeat` timings; checks the round trip. */
static int run_ent(const uint8_t *d, size_t n, tp_ent_coder coder, int sym_bits, int repeat, tp_streams_row *r) {
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

static int run_zstd(const uint8_t *d, size_t n, int level, int repeat, tp_streams_row *r) {
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
static int run_zstd_dict(const uint8_t *d, size_t n, int level, tp_streams_row *r) {
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

/* Every method on one stream (nibble rANS / AC too where the stream is nibbles), each row handed to
 * the sink; a failed round trip is an error naming the stream, after its rows. */
static tp_status code_stream(const tp_streams_sink *sk, int gsize, const char *name, const uint8_t *d, size_t n,
                             int nibbles, int repeat, tp_err *e) {
    tp_streams_row r = {.group = gsize, .stream = name};
    int ok = 1;
    if (nibbles) {
        r.method = "rans o0 nibbles";
        ok &= run_ent(d, n, TP_ENT_RANS, 4, repeat, &r);
        sk->row(sk->user, &r);
    }
    r.method = "rans o0 bytes";
    ok &= run_ent(d, n, TP_ENT_RANS, 8, repeat, &r);
    sk->row(sk->user, &r);
    r.method = "ac o0 bytes";
    ok &= run_ent(d, n, TP_ENT_AC, 8, repeat, &r);
    sk->row(sk->user, &r);
    r.method = "zstd -3";
    ok &= run_zstd(d, n, 3, repeat, &r);
    sk->row(sk->user, &r);
    r.method = "zstd -19";
    ok &= run_zstd(d, n, 19, 1, &r);
    sk->row(sk->user, &r);
    r.method = "zstd -19 dict (chunked)";
    int dk = run_zstd_dict(d, n, 19, &r);
    if (dk < 0) sk->dict_failed(sk->user, &r);
    else sk->row(sk->user, &r);
    ok &= dk != 0;
    return ok ? TP_OK : tp_fail(e, TP_ERR_INTERNAL, "a round trip failed on the %s stream", name);
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

/* One group size: every 2-D tensor quantised, its codes and scale+offset streams (and the scale's
 * byte planes) coded. */
static tp_status int4_streams(tp_st_set *set, const tp_streams_opts *o, int gsize, int first,
                              const tp_streams_sink *sk, tp_err *e) {
    buf codes = {0}, scales = {0};
    size_t nt = 0;
    int oom = 0;
    for (size_t t = 0; t < tp_st_count(set); t++) {
        const tp_st_tensor *T = tp_st_at(set, t);
        if (T->ndim != 2 || !tp_st_is_float(T->dtype) || T->shape[0] < 1 || T->shape[1] < 2) continue;
        tp_qmat q;
        float *W = tp_alloc((size_t)T->numel * sizeof(float));
        if (!W || tp_qmat_alloc(&q, TP_Q_INT4, T->shape[0], T->shape[1], gsize) != TP_OK) {
            tp_free(W);
            oom = 1;
            break;
        }
        tp_st_to_f32(T, W);
        tp_quantize_ref(&q, W, 0);
        size_t nsc = (size_t)(q.rows * q.ngroups);
        if (!buf_put(&codes, q.codes, (size_t)(q.rows * q.code_stride)) ||
            !buf_put(&scales, q.scale, nsc * 2) || !buf_put(&scales, q.offset, nsc * 2))
            oom = 1;
        tp_qmat_free(&q);
        tp_free(W);
        nt++;
        if (oom) break;
    }
    if (oom) {
        free(codes.d);
        free(scales.d);
        return tp_fail(e, TP_ERR_NOMEM, "out of memory");
    }
    if (first) sk->tensors(sk->user, nt);
    buf hi = {0}, lo = {0};
    tp_status rc = split_planes(&scales, &hi, &lo) ? TP_OK : tp_fail(e, TP_ERR_NOMEM, "out of memory");
    if (rc == TP_OK) rc = code_stream(sk, gsize, "codes", codes.d, codes.n, 1, o->repeat, e);
    if (rc == TP_OK) rc = code_stream(sk, gsize, "scales", scales.d, scales.n, 0, o->repeat, e);
    if (rc == TP_OK) rc = code_stream(sk, gsize, "scales.hi", hi.d, hi.n, 0, o->repeat, e);
    if (rc == TP_OK) rc = code_stream(sk, gsize, "scales.lo", lo.d, lo.n, 0, o->repeat, e);
    free(hi.d);
    free(lo.d);
    free(codes.d);
    free(scales.d);
    return rc;
}

tp_status tp_entropy_streams(tp_st_set *set, const tp_streams_opts *o, const tp_streams_sink *sink, tp_err *e) {
    tp_status rc = TP_OK;
    for (int gi = 0; gi < o->ngroups && rc == TP_OK; gi++) rc = int4_streams(set, o, o->groups[gi], gi == 0, sink, e);
    if (rc == TP_OK && o->vq_tensors != 0) {
        buf vq = {0}, meta = {0};
        size_t nt = 0;
        double vq_s = 0;
        if (!build_vq_sparse(set, o->vq_tensors, o->vq_iters, &vq, &meta, &nt, &vq_s)) {
            rc = tp_fail(e, TP_ERR_NOMEM, "VQ / 2:4 encoding failed (out of memory?)");
        } else {
            sink->vq(sink->user, nt, vq_s);
            rc = code_stream(sink, 0, "vq.codes", vq.d, vq.n, 0, o->repeat, e);
            if (rc == TP_OK) rc = code_stream(sink, 0, "sp24.meta", meta.d, meta.n, 1, o->repeat, e);
        }
        free(vq.d);
        free(meta.d);
    }
    return rc;
}
