/* Packed linear layers: see linear.h. The stages' kernels come from their codec methods'
 * tp_codec_exec tables (pipeline/codec_*.c). */
#include "pipeline/linear.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/codec.h"
#include "pipeline/codec_methods.h"

struct tp_linear {
    tp_codec codec;
    int64_t rows, cols;
    size_t blob_len;
    void *stage[TP_CODEC_MAX_STAGES];
};

/* A stage's product when it cannot be written into Y directly (a sum, a strided Y): one buffer
 * per thread shared by every linear, not one per layer, which would keep n x rows floats for
 * each of a model's hundreds of layers after a prefill. */
static _Thread_local float *scratch_buf;
static _Thread_local size_t scratch_n;

int64_t tp_linear_rows(const tp_linear *l) { return l->rows; }
int64_t tp_linear_cols(const tp_linear *l) { return l->cols; }
const char *tp_linear_spec(const tp_linear *l) { return l->codec.spec; }

const tp_qmat *tp_linear_qmat(const tp_linear *l) {
    if (l->codec.nstages != 1) return NULL;
    return tp_codec_exec_qmat(l->codec.stages[0].method->exec, l->stage[0]);
}

void tp_linear_free(tp_linear *l) {
    if (!l) return;
    for (int i = 0; i < l->codec.nstages; i++)
        if (l->stage[i]) l->codec.stages[i].method->exec->close(l->stage[i]);
    free(l);
}

tp_status tp_linear_open(const char *spec, const uint8_t *blob, size_t len, int64_t rows, int64_t cols,
                         const char *what, tp_linear **out, tp_err *e) {
    *out = NULL;
    tp_linear *l = calloc(1, sizeof *l);
    if (!l) return tp_fail(e, TP_ERR_NOMEM, "out of memory");
    tp_status s = tp_codec_parse(spec, &l->codec, e);
    if (s != TP_OK) { free(l); return s; }
    l->rows = rows;
    l->cols = cols;
    l->blob_len = len;
    size_t need = tp_codec_blob_bytes(&l->codec, rows, cols);
    if (need != len) {
        free(l);
        return tp_fail(e, TP_ERR_FORMAT, "%s: record of %zu bytes, codec %s of a %lldx%lld matrix needs %zu", what, len,
                       spec, (long long)rows, (long long)cols, need);
    }
    for (int i = 0; i < l->codec.nstages; i++)
        if (!l->codec.stages[i].method->exec) {
            const char *m = l->codec.stages[i].method->name;
            free(l);
            return tp_fail(e, TP_ERR_UNSUPPORTED, "%s: codec %s (stage %s) has no packed cpu kernel: run with --exec dequant",
                           what, spec, m);
        }
    /* stages lie one after the other in the blob (pipeline/codec.h) */
    size_t off = 0;
    for (int i = 0; i < l->codec.nstages && s == TP_OK; i++) {
        const tp_codec_stage *st = &l->codec.stages[i];
        size_t nb = st->method->blob_bytes(st, rows, cols);
        tp_err se = {{0}};
        if (!(l->stage[i] = st->method->exec->open(st, blob + off, rows, cols, &se)))
            s = tp_fail(e, TP_ERR_FORMAT, "%s: %s", what, se.msg);
        off += nb;
    }
    if (s != TP_OK) { tp_linear_free(l); return s; }
    *out = l;
    return TP_OK;
}

static float *scratch(size_t n, tp_err *e) {
    if (n > scratch_n) {
        tp_free(scratch_buf);
        scratch_n = 0;
        if (!(scratch_buf = tp_alloc(n * sizeof(float)))) {
            tp_fail(e, TP_ERR_NOMEM, "out of memory for a %zu-float product", n);
            return NULL;
        }
        scratch_n = n;
    }
    return scratch_buf;
}

/* One decoded row through chains of stages (tenpakx: low-rank + VQ + INT4): every stage of every
 * matrix is one task of a single pool run, each task's kernel running on its own thread (a run
 * inside a task is serial), where one product after the other made ~6 pool runs a matrix, each
 * with its wait for the slowest thread. The stages are then added in stage order, so y has the
 * same bits as tp_linear_mul's stage-by-stage sum (and any thread count gives them; tested by
 * packed/chain_decode_equals_stagewise). llama-mini tenpakx decode, Zen 4, alternating binaries:
 * 595-632 tok/s against 522-598. The pool takes the products in decreasing order of the memory
 * their views hold (the exec's bytes: VQ's unpacked and column-major codes are the most; INT4 and
 * low-rank views over the mapped artifact hold little), not in matrix order; same bits (each
 * product lands in its own buffer, added in stage order afterwards). With this order the calling
 * thread ran tenpakx's VQ products and the worker its INT4 and low-rank ones (per 256 tokens 335
 * and 280 ms of products). llama-mini tenpakx decode, `tenpak generate -n 256`, 2-vCPU Intel Xeon,
 * alternating binaries, medians of 6-8 rounds: against matrix order 537 -> 611 and 424 -> 488
 * tok/s (vq d8 + int4 g32 733 -> 748); two other orders measured slower than this one: by packed
 * bytes (INT4 first) 472 -> 420, by each product's measured time (a running average: the largest
 * first) 622 -> 589. Why this order wins is not established (a thread keeping one kind of product,
 * its tables and buffers, is a guess). */
#define CHAIN_TASKS (TP_QGEMV_MULTI * TP_CODEC_MAX_STAGES)
typedef struct chain_job {
    tp_linear *const *l;
    const float *x;
    float *out[CHAIN_TASKS];
    int mat[CHAIN_TASKS], stg[CHAIN_TASKS];
    int ord[CHAIN_TASKS]; /* the pool's task t is product ord[t] */
    tp_status st[CHAIN_TASKS];
} chain_job;
static void chain_task(void *vc, int t, int nt) {
    chain_job *j = vc;
    (void)nt;
    t = j->ord[t];
    const tp_linear *l = j->l[j->mat[t]];
    j->st[t] = l->codec.stages[j->stg[t]].method->exec->mul(l->stage[j->stg[t]], j->x, 1, j->out[t]);
}
static _Thread_local float *chain_buf;
static _Thread_local size_t chain_n;
static int chain_ok(tp_linear *const *l, int k) {
    int stages = 0;
    for (int i = 0; i < k; i++) stages += l[i]->codec.nstages;
    return k >= 1 && k <= TP_QGEMV_MULTI && stages > k; /* at least one chain */
}
/* y[i] = (accumulate ? y[i] : 0) + l[i] x for chain_ok matrices */
static tp_status chain_mul1(tp_linear *const *l, int k, const float *x, float *const *y, int accumulate, tp_err *e) {
    chain_job j;
    memset(&j, 0, sizeof j);
    j.l = l;
    j.x = x;
    size_t need = 0;
    for (int i = 0; i < k; i++) need += (size_t)l[i]->rows * (size_t)l[i]->codec.nstages;
    if (need > chain_n) {
        float *b = realloc(chain_buf, need * sizeof *b);
        if (!b) return tp_fail(e, TP_ERR_NOMEM, "out of memory for the products of %s", l[0]->codec.spec);
        chain_buf = b;
        chain_n = need;
    }
    int nt = 0;
    size_t off = 0, cost[CHAIN_TASKS];
    for (int i = 0; i < k; i++)
        for (int s = 0; s < l[i]->codec.nstages; s++, nt++) {
            j.mat[nt] = i, j.stg[nt] = s;
            j.out[nt] = s == 0 && !accumulate ? y[i] : chain_buf + off;
            if (j.out[nt] != y[i]) off += (size_t)l[i]->rows;
            cost[nt] = l[i]->codec.stages[s].method->exec->bytes(l[i]->stage[s]);
            j.ord[nt] = nt;
        }
    /* the largest products first (insertion sort, stable) */
    for (int a = 1; a < nt; a++)
        for (int b = a; b > 0 && cost[j.ord[b]] > cost[j.ord[b - 1]]; b--) {
            const int o = j.ord[b];
            j.ord[b] = j.ord[b - 1];
            j.ord[b - 1] = o;
        }
    tp_pool_run(nt, chain_task, &j);
    for (int t = 0; t < nt; t++)
        if (j.st[t] != TP_OK)
            return tp_fail(e, j.st[t], "out of memory in the %s kernel", l[j.mat[t]]->codec.stages[j.stg[t]].method->name);
    for (int t = 0; t < nt; t++) /* in stage order: y = P0 + P1 + ..., or y + P0 + P1 + ... */
        if (j.out[t] != y[j.mat[t]]) tp_codec_add_into(y[j.mat[t]], j.out[t], l[j.mat[t]]->rows);
    return TP_OK;
}

tp_status tp_linear_mul(tp_linear *l, const float *X, int n, float *Y, int ldy, int accumulate, tp_err *e) {
    if (n <= 0) return TP_OK;
    if (n == 1 && chain_ok(&l, 1)) return chain_mul1(&l, 1, X, &Y, accumulate, e);
    const int64_t rows = l->rows;
    for (int i = 0; i < l->codec.nstages; i++) {
        const tp_codec_exec *x = l->codec.stages[i].method->exec;
        int direct = i == 0 && !accumulate && ldy == rows; /* the product can land in Y itself */
        float *P = direct ? Y : scratch((size_t)n * (size_t)rows, e);
        if (!P) return TP_ERR_NOMEM;
        tp_status s = x->mul(l->stage[i], X, n, P);
        if (s != TP_OK) return tp_fail(e, s, "out of memory in the %s kernel", l->codec.stages[i].method->name);
        if (direct) continue;
        for (int r = 0; r < n; r++) {
            float *y = Y + (size_t)r * (size_t)ldy;
            const float *p = P + (size_t)r * (size_t)rows;
            if (i == 0 && !accumulate) memcpy(y, p, (size_t)rows * sizeof *y);
            else tp_codec_add_into(y, p, rows);
        }
    }
    return TP_OK;
}

tp_status tp_linear_mul1_multi(tp_linear *const *l, int k, const float *x, float *const *y, tp_err *e) {
    const tp_qmat *q[TP_QGEMV_MULTI];
    int fused = k >= 1 && k <= TP_QGEMV_MULTI;
    for (int i = 0; fused && i < k; i++) fused = (q[i] = tp_linear_qmat(l[i])) != NULL && l[i]->cols == l[0]->cols;
    if (fused) {
        tp_status s = tp_qgemv_multi_cpu(q, k, x, y);
        return s == TP_OK ? s : tp_fail(e, s, "out of memory in the GEMV of %s", l[0]->codec.spec);
    }
    if (chain_ok(l, k)) return chain_mul1(l, k, x, y, 0, e);
    for (int i = 0; i < k; i++) {
        tp_status s = tp_linear_mul(l[i], x, 1, y[i], (int)l[i]->rows, 0, e);
        if (s != TP_OK) return s;
    }
    return TP_OK;
}

tp_status tp_linear_row(const tp_linear *l, int64_t r, float *dst, tp_err *e) {
    float *tmp = NULL;
    for (int i = 0; i < l->codec.nstages; i++) {
        const tp_codec_exec *x = l->codec.stages[i].method->exec;
        if (!x->row) {
            tp_free(tmp);
            return tp_fail(e, TP_ERR_UNSUPPORTED, "codec %s: stage %s cannot decode single rows (embeddings): run with --exec dequant",
                           l->codec.spec, l->codec.stages[i].method->name);
        }
        if (i == 0) { x->row(l->stage[i], r, dst); continue; }
        if (!tmp && !(tmp = tp_alloc((size_t)l->cols * sizeof *tmp))) return tp_fail(e, TP_ERR_NOMEM, "out of memory");
        x->row(l->stage[i], r, tmp);
        for (int64_t j = 0; j < l->cols; j++) dst[j] += tmp[j];
    }
    tp_free(tmp);
    return TP_OK;
}

size_t tp_linear_format_bytes(const tp_linear *l) { return l->blob_len; }

size_t tp_linear_bytes(const tp_linear *l) {
    size_t b = sizeof *l;
    for (int i = 0; i < l->codec.nstages; i++) b += l->codec.stages[i].method->exec->bytes(l->stage[i]);
    return b;
}

void tp_linear_corrupt(tp_linear *l, uint64_t k) { l->codec.stages[0].method->exec->corrupt(l->stage[0], k); }

tp_status tp_linear_open_method(const struct tp_codec_method *m, const char *spec, double type, const uint8_t *blob,
                                size_t len, int64_t rows, int64_t cols, const char *what, tp_linear **out, tp_err *e) {
    *out = NULL;
    tp_linear *l = calloc(1, sizeof *l);
    if (!l) return tp_fail(e, TP_ERR_NOMEM, "out of memory");
    l->codec.nstages = 1;
    l->codec.stages[0].method = m;
    l->codec.stages[0].nparams = 1;
    snprintf(l->codec.stages[0].params[0].key, sizeof l->codec.stages[0].params[0].key, "type");
    l->codec.stages[0].params[0].value = type;
    snprintf(l->codec.spec, sizeof l->codec.spec, "%s", spec);
    l->rows = rows;
    l->cols = cols;
    l->blob_len = len;
    tp_err se = {{0}};
    if (!(l->stage[0] = m->exec->open(&l->codec.stages[0], blob, rows, cols, &se))) {
        free(l);
        return tp_fail(e, TP_ERR_FORMAT, "%s: %s", what, se.msg);
    }
    *out = l;
    return TP_OK;
}
