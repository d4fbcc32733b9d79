/* The vq method (PocketLLM-style vector quantisation; include/tenpak/vq.h): d, k, iters (Lloyd),
 * imp (importance = |w|), seed. Chained with int4 it is vq+int4 (vq:d=8,k=256+int4:g=32), and
 * after lowrank tenpakx (pipeline/codec.c's aliases). The blob is tp_vq_pack's image: fp16
 * codebook, then the codes (their bits counted). Packed execution: the lookup-GEMV, one per row
 * of the activations. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/codec_methods.h"
#include "tenpak/vq.h"

#define P(s, k) tp_codec_param_get((s), (k))

static size_t vq_blob(const tp_codec_stage *s, int64_t rows, int64_t cols) {
    return tp_vq_bytes_for(rows, cols, (int)P(s, "d"), (int)P(s, "k"));
}
static double vq_theory(const tp_codec_stage *s, int64_t rows, int64_t cols) {
    (void)rows;
    (void)cols;
    return tp_vq_code_bits((int)P(s, "k")) / P(s, "d"); }
static tp_status vq_encode(const tp_codec_stage *s, const float *W, int64_t rows, int64_t cols, uint8_t *blob,
                           tp_err *e) {
    tp_vqmat m;
    if (tp_vq_alloc(&m, rows, cols, (int)P(s, "d"), (int)P(s, "k")) != TP_OK) return tp_codec_oom(e, rows, cols);
    tp_kmeans_opts o = {.seed = (uint64_t)P(s, "seed"), .max_iters = (int)P(s, "iters"), .importance = P(s, "imp") != 0};
    tp_status st = tp_vq_fit(&m, W, &o, NULL);
    if (st == TP_OK) tp_vq_pack(&m, blob);
    else tp_fail(e, st, "vq: k-means failed on a %lldx%lld matrix", (long long)rows, (long long)cols);
    tp_vq_free(&m);
    return st;
}
/* Every code of a vq blob names a centroid: k need not be a power of two, so a code of
 * tp_vq_code_bits(k) bits can point past the codebook in a damaged or forged blob. */
static tp_status vq_codes_check(const uint8_t *blob, int64_t rows, int64_t cols, int d, int K, tp_err *e) {
    const int b = tp_vq_code_bits(K);
    if (((int64_t)1 << b) == K) return TP_OK;
    const uint8_t *c8 = blob + (size_t)K * (size_t)d * 2;
    const int64_t n = rows * ((cols + d - 1) / d);
    uint64_t pos = 0;
    for (int64_t i = 0; i < n; i++, pos += (uint64_t)b) {
        uint32_t c = 0;
        for (int k = 0; k < b; k++) c |= (uint32_t)(c8[(pos + (uint64_t)k) >> 3] >> ((pos + (uint64_t)k) & 7) & 1) << k;
        if (c >= (uint32_t)K)
            return tp_fail(e, TP_ERR_FORMAT, "vq blob for %lldx%lld: code %u of vector %lld is past its %d centroids "
                           "(damaged or forged)", (long long)rows, (long long)cols, c, (long long)i, K);
    }
    return TP_OK;
}

static tp_status vq_decode_add(const tp_codec_stage *s, const uint8_t *blob, int64_t rows, int64_t cols, float *W,
                               tp_err *e) {
    tp_status cs = vq_codes_check(blob, rows, cols, (int)P(s, "d"), (int)P(s, "k"), e);
    if (cs != TP_OK) return cs;
    tp_vqmat m;
    float *D = tp_alloc((size_t)(rows * cols) * sizeof(float));
    if (!D || tp_vq_alloc(&m, rows, cols, (int)P(s, "d"), (int)P(s, "k")) != TP_OK) {
        tp_free(D);
        return tp_codec_oom(e, rows, cols);
    }
    tp_vq_unpack(&m, blob);
    tp_vq_decode_cpu(&m, D);
    tp_codec_add_into(W, D, rows * cols);
    tp_vq_free(&m);
    tp_free(D);
    return TP_OK;
}

static void *vq_open(const tp_codec_stage *s, const uint8_t *blob, int64_t rows, int64_t cols, tp_err *e) {
    if (vq_codes_check(blob, rows, cols, (int)P(s, "d"), (int)P(s, "k"), e) != TP_OK) return NULL;
    tp_vqmat *m = malloc(sizeof *m);
    if (!m || tp_vq_alloc(m, rows, cols, (int)P(s, "d"), (int)P(s, "k")) != TP_OK) { free(m); return tp_codec_oom_null(e, rows, cols); }
    tp_vq_unpack(m, blob);
    if (tp_vq_prepare(m) != TP_OK) { tp_vq_free(m); free(m); return tp_codec_oom_null(e, rows, cols); }
    return m;
}
static tp_status vq_mul(const void *p, const float *X, int64_t n, float *Y) {
    const tp_vqmat *m = p;
    for (int64_t i = 0; i < n; i++)
        if (tp_vq_gemv_cpu(m, X + i * m->cols, Y + i * m->rows) != TP_OK) return TP_ERR_NOMEM;
    return TP_OK;
}
static void vq_row(const void *p, int64_t r, float *dst) {
    const tp_vqmat *m = p;
    for (int64_t v = 0; v < m->nvec; v++) {
        const float *c = m->codebook + (size_t)tp_vq_code(m, r, v) * (size_t)m->d;
        for (int j = 0; j < m->d && v * m->d + j < m->cols; j++) dst[v * m->d + j] = c[j];
    }
}
static void vq_corrupt(void *p, uint64_t k) {
    tp_vqmat *m = p; /* another centroid for one vector, and the GEMV's column-major copy remade */
    size_t i = (size_t)(k % (uint64_t)(m->rows * m->nvec));
    if (m->codes8) m->codes8[i] = (uint8_t)((m->codes8[i] + m->K / 2) % m->K);
    else m->codes16[i] = (uint16_t)((m->codes16[i] + m->K / 2) % m->K);
    tp_vq_unprepare(m);
    if (tp_vq_prepare(m) != TP_OK) tp_vq_unprepare(m); /* the scalar lookup then reads codes8 */
}
static size_t vq_bytes(const void *p) {
    const tp_vqmat *m = p;
    return sizeof *m + (size_t)m->K * (size_t)m->d * sizeof(float) +
           (size_t)(m->rows * m->nvec) * (m->codes8 ? 1 : 2) + (m->codes8t ? (size_t)(m->rows_t * m->nvec) : 0);
}
static void vq_close(void *p) {
    if (p) tp_vq_free(p);
    free(p);
}
static const tp_codec_exec vq_exec = {vq_open, vq_mul, vq_row, vq_corrupt, vq_bytes, vq_close};

/* d in 1..16, k in 2..65536 */
static tp_status vq_check(const tp_codec_stage *s, const char *spec, int index, tp_err *e) {
    (void)index;
    tp_status st = tp_codec_check_integers(s, spec, NULL, e);
    if (st != TP_OK) return st;
    if (P(s, "d") < 1 || P(s, "d") > 16) return tp_fail(e, TP_ERR_ARG, "codec '%s': d must be in 1..16", spec);
    if (P(s, "k") < 2 || P(s, "k") > 65536) return tp_fail(e, TP_ERR_ARG, "codec '%s': k must be in 2..65536", spec);
    return TP_OK;
}

/* a codebook of more centroids than the matrix has vectors fits nothing better and its k-means
 * runs for ever (vq:k=65536 on a 384x384 matrix); vectors longer than a row are padding */
static tp_status vq_check_shape(const tp_codec_stage *s, const char *spec, int64_t rows, int64_t cols, const char *what,
                                tp_err *e) {
    double d = P(s, "d"), k = P(s, "k");
    double nvec = (double)rows * ceil((double)cols / (d >= 1 ? d : 1));
    if (d > (double)cols)
        return tp_fail(e, TP_ERR_ARG, "codec '%s': d=%g exceeds the %lld columns of %s (%lldx%lld)", spec, d,
                       (long long)cols, what ? what : "the matrix", (long long)rows, (long long)cols);
    if (k > nvec)
        return tp_fail(e, TP_ERR_ARG, "codec '%s': k=%g exceeds the %.0f vectors of %s (%lldx%lld, d=%g)", spec, k, nvec,
                       what ? what : "the matrix", (long long)rows, (long long)cols, d);
    return TP_OK;
}

const tp_codec_method tp_codec_vq = {"vq", "d=4,k=256,iters=25,imp=0,seed=0", vq_blob, vq_theory, vq_encode,
                                     vq_decode_add, &vq_exec, vq_check, vq_check_shape};
