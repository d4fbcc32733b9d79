/* cpu backend of the INT4 family: threads over row blocks and dispatches each block to the
 * AVX-512 GEMV (int4; VNNI at the avx512vbmi level), the AVX2 kernels or the portable C path, by
 * tp_cpu_isa(). */
#include <cblas.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/quant_cpu.h"

void tp_qgemv_xsum(const tp_qmat *q, const float *x, float *xsum) {
    for (int64_t gi = 0; gi < q->ngroups; gi++) {
        int64_t c0 = gi * q->g, n = q->cols - c0 < q->g ? q->cols - c0 : q->g;
        int64_t c1 = c0 + (n & ~(int64_t)7);
        float s = 0;
        for (int64_t c = c0; c < c1; c++) s += x[c];
        xsum[gi] = s;
    }
}

/* ---- portable path: decode a row with the reference arithmetic, then plain loops ---- */
static void decode_row_portable(const tp_qmat *q, int64_t r, float *dst) {
    const int64_t g = q->g;
    for (int64_t gi = 0; gi < q->ngroups; gi++) {
        size_t si = (size_t)(r * q->ngroups + gi);
        float s = tp_f16_to_f32(q->scale[si]);
        float o = q->offset ? tp_f16_to_f32(q->offset[si]) : 0.0f;
        float rs = q->rscale ? tp_f16_to_f32(q->rscale[si]) : 0.0f;
        int64_t c0 = gi * g, c1 = c0 + g < q->cols ? c0 + g : q->cols;
        for (int64_t c = c0; c < c1; c++) {
            int code = tp_qmat_code(q, r, c);
            float w;
            if (q->kind == TP_Q_NF4) w = TP_NF4_LEVELS[code] * s;
            else {
                w = (float)code * s + o;
                if (q->kind == TP_Q_INT4R2) w = w + ((float)tp_qmat_rcode(q, r, c) - 1.5f) * rs;
            }
            dst[c] = w;
        }
    }
}

static int use_threads(const tp_qmat *q) { return q->rows * q->cols >= TP_CPU_PAR_MIN; }

/* Row-block jobs on the worker pool through tp_cpu_for (cpu_common.h): tasks of RB_TASK rows, fixed
 * by the shape; a matrix under TP_CPU_PAR_MIN weights runs as one task on the calling thread. */
#define RB_TASK 64
typedef struct rbjob {
    const tp_qmat *q;
    float *out;
    int avx2;
    int64_t batch;
    const int8_t *xq, *xqp;
    const float *xs, *xsum;
    const int32_t *xqsum;
} rbjob;

static void rb_run(const rbjob *j, void (*rows)(void *ctx, int64_t r0, int64_t r1)) {
    tp_cpu_for(j->q->rows, RB_TASK, use_threads(j->q), rows, (void *)j);
}

static void deq_rows(void *c, int64_t r0, int64_t r1) {
    const rbjob *j = c;
    if (j->avx2) tp_dequant_rows_avx2(j->q, r0, r1, j->out);
    else
        for (int64_t r = r0; r < r1; r++) decode_row_portable(j->q, r, j->out + r * j->q->cols);
}

void tp_dequantize_cpu(const tp_qmat *q, float *W) {
    rbjob j = {.q = q, .out = W, .avx2 = tp_cpu_isa() >= TP_ISA_AVX2};
    rb_run(&j, deq_rows);
}

/* GEMV and GEMM run on the worker pool (tenpak.h) in tasks of ROW_TASK rows, a multiple of the
 * 4-row micro-kernel: the tasks, and so every row's arithmetic, depend on the shape only, so the
 * result is the same at any thread count (what `tenpak zip --artifact` needs), and a thread slowed
 * by another process holds up one task, not half the matrix. */
#define ROW_TASK 64

typedef struct qjob {
    const tp_qmat *q;
    const float *x; /* GEMV: x; GEMM: X */
    const float *xsum;
    int64_t batch;
    float *y;
    int avx2;
    const tp_qx *qx; /* GEMV on AVX-512: x prepared */
    int vnni;
    const float *nx; /* NF4 GEMV on AVX-512: x prepared (tp_nf4x_prep_avx512) */
    int nomem; /* set by a task whose scratch allocation failed */
} qjob;

/* A task that cannot allocate its scratch marks the job and leaves its rows: the caller returns
 * TP_ERR_NOMEM once every task is done. */
static void job_nomem(void *vc) { __atomic_store_n(&((qjob *)vc)->nomem, 1, __ATOMIC_RELAXED); }

static void qgemv_task(void *vc, int t, int nt) {
    const qjob *j = vc;
    const tp_qmat *q = j->q;
    int64_t r0 = (int64_t)t * ROW_TASK, r1 = r0 + ROW_TASK < q->rows ? r0 + ROW_TASK : q->rows;
    (void)nt;
    if (j->qx) {
        tp_status s = j->vnni ? tp_qgemv_rows_avx512vnni(q, j->qx, r0, r1, j->y)
                              : tp_qgemv_rows_avx512(q, j->qx, r0, r1, j->y);
        if (s != TP_OK) job_nomem(vc);
        return;
    }

    if (j->nx) { tp_nf4x_gemv_rows_avx512(q, j->nx, r0, r1, j->y); return; }
    if (j->avx2) { tp_qgemv_rows_avx2(q, j->x, j->xsum, r0, r1, j->y); return; }
    float *row = tp_alloc((size_t)q->cols * sizeof(float));
    if (!row) { job_nomem(vc); return; }
    for (int64_t r = r0; r < r1; r++) {
        decode_row_portable(q, r, row);
        j->y[r] = tp_dot_portable(row, j->x, q->cols);
    }
    tp_free(row);
}

/* Every ROW_TASK-row task of q: on the pool, or in order on this thread for small work (the same
 * tasks either way, so the same arithmetic). */
static void run_row_tasks(const tp_qmat *q, int64_t work, void (*fn)(void *, int, int), qjob *j) {
    int n = (int)((q->rows + ROW_TASK - 1) / ROW_TASK);
    if (work >= TP_CPU_PAR_MIN) tp_pool_run(n, fn, j);
    else
        for (int t = 0; t < n; t++) fn(j, t, n);
}

/* The AVX-512 GEMV takes int4 and int4r2 with a power-of-two group of at least 8 (every g the
 * codecs write); nf4 and other shapes of tp_qmat stay with AVX2. */
static int qx_ok(const tp_qmat *q) {
    const int r2 = q->kind == TP_Q_INT4R2;
    return (q->kind == TP_Q_INT4 || r2) && q->offset && (r2 ? q->rcodes && q->rscale : !q->rcodes) && q->g >= 8 &&
           (q->g & (q->g - 1)) == 0 && q->cols > 0;
}

/* tp_qgemv_set_streaming. Mode 1 measures: which walk streams faster from memory differs between
 * hosts of the same CPU model and between days on one (a 2-vCPU Intel Xeon guest: TinyLlama-shaped
 * int4 decode 2 rows a pass +12% one day, 4 rows +6% another, alternating binaries), so after a
 * warm-up round (the first pass over a model's weights ran ~20% slower), CAL_ROUNDS rounds of
 * CAL_BYTES of AVX-512 GEMV weights take 4, 2 and 1 rows a pass in turn, and the walk whose best
 * round streamed fastest is kept (in-process rounds, same host moment: TinyLlama-shaped decode on
 * that guest, 20 rounds each, 2 rows 20-25 GB/s, 4 rows 17-22; on the day before, 1 row a pass
 * had decoded 38.1-40.4 tok/s, 2 rows 37.9-38.4, 4 rows 34.3-35.8, separate processes). Every walk
 * gives the same bits (test_int4 gemv_rows_alone_same_bits, gemv_streaming_measured_same_bits),
 * so only the speed depends on the choice. */
#define CAL_BYTES (64.0 * 1024 * 1024)
#define CAL_ROUNDS 9
static struct {
    pthread_mutex_t mu;
    int walk;            /* the rows a pass every GEMV takes, 0 while mode 1 measures: read without
                            the lock (an atomic), written under it */
    int round;           /* mode 1: the round being measured (0: warm-up, 4 rows; then cal_rows) */
    double bytes, secs;  /* the round so far */
    double best[3];      /* the best round's bytes/s, 4, 2 and 1 rows a pass */
} cal = {.mu = PTHREAD_MUTEX_INITIALIZER, .walk = 4};

void tp_qgemv_set_streaming(int mode) {
    pthread_mutex_lock(&cal.mu);
    cal.round = 0;
    cal.bytes = cal.secs = cal.best[0] = cal.best[1] = cal.best[2] = 0;
    __atomic_store_n(&cal.walk, mode == 1 ? 0 : mode == 2 ? 2 : 4, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&cal.mu);
}
int tp_qgemv_streaming_rows(void) { return __atomic_load_n(&cal.walk, __ATOMIC_ACQUIRE); }
static const int cal_rows[3] = {4, 2, 1}; /* round r walks cal_rows[r % 3] */
/* the rows a pass for a GEMV starting now; *measure set when its time is to be reported
 * (cal_report). The lock is taken only while mode 1 measures. */
static int rows_a_pass(int *measure) {
    int r = tp_qgemv_streaming_rows();
    *measure = 0;
    if (r) return r;
    pthread_mutex_lock(&cal.mu);
    r = cal.walk;
    if (!r) {
        r = cal_rows[cal.round % 3];
        *measure = 1;
    }
    pthread_mutex_unlock(&cal.mu);
    return r;
}
static void cal_report(int rpp, double bytes, double secs) {
    pthread_mutex_lock(&cal.mu);
    if (!cal.walk && rpp == cal_rows[cal.round % 3]) {
        cal.bytes += bytes;
        cal.secs += secs;
        if (cal.bytes >= CAL_BYTES) {
            const double bw = cal.secs > 0 ? cal.bytes / cal.secs : 0;
            if (cal.round > 0 && bw > cal.best[cal.round % 3]) cal.best[cal.round % 3] = bw;
            cal.bytes = cal.secs = 0;
            if (++cal.round == CAL_ROUNDS + 1) {
                int w = 0;
                for (int i = 1; i < 3; i++) w = cal.best[i] > cal.best[w] ? i : w;
                __atomic_store_n(&cal.walk, cal_rows[w], __ATOMIC_RELEASE);
            }
        }
    }
    pthread_mutex_unlock(&cal.mu);
}

/* a tp_qx's chunks (*nchunk) and its pad */
static int64_t qx_pad(const tp_qmat *q, int64_t *nchunk) {
    *nchunk = (q->cols + 127) / 128;
    const int64_t most = q->ngroups > *nchunk ? q->ngroups : *nchunk;
    return (most + 15) / 16 * 16 + 16;
}

size_t tp_qx_data_bytes(const tp_qmat *q) {
    int64_t nchunk;
    const int64_t pad = qx_pad(q, &nchunk);
    return ((size_t)nchunk * 384 + (size_t)(nchunk + 2 * pad) * sizeof(float) + 63) / 64 * 64;
}

void tp_qx_layout(const tp_qmat *q, uint8_t *mem, tp_qx *p) {
    int64_t nchunk;
    p->pad = qx_pad(q, &nchunk);
    p->nchunk = nchunk;
    p->limbs = (int8_t *)mem;
    p->gsum = (float *)(mem + (size_t)nchunk * 384);
    p->xsg = p->gsum + p->pad;
    p->xs = p->xsg + p->pad;
    p->rpp = 4;
}

/* x prepared for the AVX-512 GEMV in one allocation into *out; *out NULL (use AVX2) when x is
 * not finite. */
static tp_status qx_make(const tp_qmat *q, const float *x, int vnni, int rpp, tp_qx **out) {
    const size_t head = (sizeof(tp_qx) + 63) / 64 * 64;
    uint8_t *mem = tp_alloc(head + tp_qx_data_bytes(q));
    *out = NULL;
    if (!mem) return TP_ERR_NOMEM;
    tp_qx *p = (tp_qx *)mem;
    tp_qx_layout(q, mem + head, p);
    if (!(vnni ? tp_qx_prep_avx512vnni(q, x, p) : tp_qx_prep_avx512(q, x, p))) {
        tp_free(mem);
        return TP_OK;
    }
    p->rpp = rpp;
    *out = p;
    return TP_OK;
}

tp_status tp_qgemv_cpu(const tp_qmat *q, const float *x, float *y) { return tp_qgemv_multi_cpu(&q, 1, x, &y); }

static void qgemm_task(void *vc, int t, int nt) {
    const qjob *j = vc;
    const tp_qmat *q = j->q;
    const int64_t rows = q->rows, cols = q->cols;
    int64_t r0 = (int64_t)t * ROW_TASK, r1 = r0 + ROW_TASK < rows ? r0 + ROW_TASK : rows;
    (void)nt;
    float *tile = tp_alloc((size_t)(4 * cols) * sizeof(float));
    if (!tile) { job_nomem(vc); return; }
    if (j->avx2) tp_qgemm_rows_avx2(q, j->x, j->batch, r0, r1, j->y, tile);
    else
        for (int64_t r = r0; r < r1; r++) {
            decode_row_portable(q, r, tile);
            for (int64_t b = 0; b < j->batch; b++) j->y[b * rows + r] = tp_dot_portable(tile, j->x + b * cols, cols);
        }
    tp_free(tile);
}

/* Many activation rows (prefill, perplexity windows): the product is compute-bound, so the
 * weights go through OpenBLAS's sgemm one tile at a time, each tile of rows decoded to fp32 by
 * the dequantisation kernel (exactly the reference's values) into a scratch of at most
 * QG_TILE_FLOATS (4 MB: the model never holds an fp32 copy of a whole matrix, and the scratch
 * counts in a prefill's peak RSS). Below QG_SGEMM_MIN rows of X the register micro-kernels below
 * are faster (no packing). llama-mini pp512 on Zen 4 with the micro-kernels alone: 0.83x the fp32
 * model's prefill; TinyLlama-shaped, a 712-token prompt (`tenpak generate -n 0`), loaded host:
 * tiles of 2 MB 77-78 tok/s, of 8 MB 76-91, the fp16 weights 77-79. With the model's 256-row
 * prefill chunks (model.h), TinyLlama-shaped pp512, 4 alternating rounds: 8 MB 75-80 tok/s,
 * 6 MB 76-81, 4 MB 76-79, and 4 MB less peak RSS than 8. */
#define QG_SGEMM_MIN 16
#define QG_AMX_MIN 16
#define QG_VNNI_MIN 16
#define QG_TILE_FLOATS (1 << 20)
static tp_status qgemm_sgemm(const tp_qmat *q, const float *X, int64_t batch, float *Y) {
    const int64_t rows = q->rows, cols = q->cols;
    int64_t tr = QG_TILE_FLOATS / cols;
    tr = tr < 64 ? 64 : tr / 64 * 64;
    if (tr > rows) tr = rows;
    float *T = tp_alloc((size_t)(tr * cols) * sizeof(float));
    if (!T) return TP_ERR_NOMEM;
    for (int64_t r0 = 0; r0 < rows; r0 += tr) {
        const int64_t r1 = r0 + tr < rows ? r0 + tr : rows;
        const tp_qmat v = tp_qmat_rows(q, r0, r1);
        /* on this thread: OpenBLAS's threads spin a while after each sgemm, and a pool run
         * between two sgemms would share the cores with them (TinyLlama-shaped prefill: 53 tok/s
         * with the tile decoded on the pool) */
        tp_dequant_rows_avx2(&v, 0, r1 - r0, T);
        tp_pool_nap(); /* OpenBLAS's threads get the cores */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)batch, (int)(r1 - r0), (int)cols, 1.0f, X, (int)cols,
                    T, (int)cols, 0.0f, Y + r0, (int)rows);
    }
    tp_free(T);
    return TP_OK;
}

tp_status tp_qgemm_cpu(const tp_qmat *q, const float *X, int64_t batch, float *Y) {
    if (batch >= QG_AMX_MIN && tp_qgemm_amx_shape_ok(q) && tp_cpu_amx()) return tp_qgemm_amx(q, X, batch, Y);
    if (batch >= QG_VNNI_MIN && tp_cpu_isa() >= TP_ISA_AVX512VBMI && tp_qgemm_vnni_shape_ok(q)) {
        const int r = tp_qgemm_vnni(q, X, batch, Y);
        if (r < 0) return TP_ERR_NOMEM;
        if (r > 0) return TP_OK; /* 0: x not finite, the sgemm path below propagates it */
    }
    if (batch >= QG_SGEMM_MIN && tp_cpu_isa() >= TP_ISA_AVX2 && q->cols > 0 && q->rows > 0 && q->cols <= (1 << 30) &&
        q->rows <= (1 << 30) && batch <= (1 << 30))
        return qgemm_sgemm(q, X, batch, Y);
    qjob j = {q, X, NULL, batch, Y, tp_cpu_isa() >= TP_ISA_AVX2, NULL, 0, NULL, 0};
    run_row_tasks(q, batch * q->rows * q->cols, qgemm_task, &j);
    return j.nomem ? TP_ERR_NOMEM : TP_OK;
}

/* scratch of the A8 kernels, freed together */
static void free5(void *a, void *b, void *c, void *d, void *e) {
    tp_free(a); tp_free(b); tp_free(c); tp_free(d); tp_free(e);
}

/* x prepared for the W4A8 row kernels: its int8 codes xq and group scales xs (tp_quantize_x8_ref),
 * the exact sums over whole groups of x (xsum) and of the codes (xqsum), and xqp: xq per 64-block
 * with the 32 even elements first, then the odd ones (the order the nibble split produces). */
static void a8_prepare(const tp_qmat *q, const float *x, int8_t *xq, int8_t *xqp, float *xs, float *xsum,
                       int32_t *xqsum) {
    const int64_t cols = q->cols;
    tp_quantize_x8_ref(x, cols, q->g, xq, xs);
    for (int64_t gi = 0; gi < q->ngroups; gi++) {
        int64_t c0 = gi * q->g, c1 = c0 + q->g < cols ? c0 + q->g : cols;
        float s = 0;
        int32_t sq = 0;
        for (int64_t c = c0; c < c1; c++) { s += x[c]; sq += xq[c]; }
        xsum[gi] = s;
        xqsum[gi] = sq;
    }
    for (int64_t b = 0; b + 64 <= cols; b += 64)
        for (int i = 0; i < 32; i++) {
            xqp[b + i] = xq[b + 2 * i];
            xqp[b + 32 + i] = xq[b + 2 * i + 1];
        }
}

static void a8v_rows(void *c, int64_t r0, int64_t r1) {
    const rbjob *j = c;
    const tp_qmat *q = j->q;
    const int64_t cols = q->cols, ng = q->ngroups;
    const int8_t *xq = j->xq;
    const float *xs = j->xs, *xsum = j->xsum;
    float *y = j->out;
    if (j->avx2) { tp_qgemv_a8_rows_avx2(q, j->xqp, xq, xs, xsum, j->xqsum, r0, r1, y); return; }
    for (int64_t r = r0; r < r1; r++) {
        float acc = 0;
        for (int64_t gi = 0; gi < ng; gi++) {
            size_t si = (size_t)(r * ng + gi);
            int64_t c0 = gi * q->g, c1 = c0 + q->g < cols ? c0 + q->g : cols;
            int32_t dot = 0;
            for (int64_t c = c0; c < c1; c++) dot += (tp_qmat_code(q, r, c) - 8) * xq[c];
            float sc = tp_f16_to_f32(q->scale[si]);
            acc += sc * xs[gi] * (float)dot + (tp_f16_to_f32(q->offset[si]) + 8.0f * sc) * xsum[gi];
        }
        y[r] = acc;
    }
}

static void a8m_rows(void *c, int64_t r0, int64_t r1) {
    const rbjob *j = c;
    tp_qgemm_a8_rows_avx2(j->q, j->xqp, j->xq, j->xs, j->xsum, j->xqsum, j->batch, r0, r1, j->out);
}

tp_status tp_qgemv_a8_cpu(const tp_qmat *q, const float *x, float *y) {
    const int avx2 = tp_cpu_isa() >= TP_ISA_AVX2;
    const int64_t cols = q->cols, ng = q->ngroups;
    int8_t *xq = tp_alloc((size_t)cols), *xqp = tp_alloc((size_t)cols);
    float *xs = tp_alloc((size_t)ng * sizeof(float)), *xsum = tp_alloc((size_t)ng * sizeof(float));
    int32_t *xqsum = tp_alloc((size_t)ng * sizeof(int32_t));
    if (!xq || !xqp || !xs || !xsum || !xqsum) { free5(xq, xqp, xs, xsum, xqsum); return TP_ERR_NOMEM; }
    a8_prepare(q, x, xq, xqp, xs, xsum, xqsum);
    rbjob j = {.q = q, .out = y, .avx2 = avx2, .xq = xq, .xqp = xqp, .xs = xs, .xsum = xsum, .xqsum = xqsum};
    rb_run(&j, a8v_rows);
    free5(xq, xqp, xs, xsum, xqsum);
    return TP_OK;
}

tp_status tp_qgemm_a8_cpu(const tp_qmat *q, const float *X, int64_t batch, float *Y) {
    if (tp_cpu_isa() < TP_ISA_AVX2 || batch > 64 || q->g > 256) {
        for (int64_t b = 0; b < batch; b++)
            if (tp_qgemv_a8_cpu(q, X + b * q->cols, Y + b * q->rows) != TP_OK) return TP_ERR_NOMEM;
        return TP_OK;
    }
    const int64_t cols = q->cols, ng = q->ngroups;
    int8_t *xq = tp_alloc((size_t)(batch * cols)), *xqp = tp_alloc((size_t)(batch * cols));
    float *xs = tp_alloc((size_t)(batch * ng) * sizeof(float)), *xsum = tp_alloc((size_t)(batch * ng) * sizeof(float));
    int32_t *xqsum = tp_alloc((size_t)(batch * ng) * sizeof(int32_t));
    if (!xq || !xqp || !xs || !xsum || !xqsum) { free5(xq, xqp, xs, xsum, xqsum); return TP_ERR_NOMEM; }
    for (int64_t b = 0; b < batch; b++) /* each column exactly as tp_qgemv_a8_cpu prepares it */
        a8_prepare(q, X + b * cols, xq + b * cols, xqp + b * cols, xs + b * ng, xsum + b * ng, xqsum + b * ng);
    rbjob j = {.q = q, .out = Y, .batch = batch, .xq = xq, .xqp = xqp, .xs = xs, .xsum = xsum, .xqsum = xqsum};
    rb_run(&j, a8m_rows);
    free5(xq, xqp, xs, xsum, xqsum);
    return TP_OK;
}

/* ---- several GEMVs by one x in one pool run ---- */

typedef struct qmulti {
    qjob j[TP_QGEMV_MULTI];
    int first[TP_QGEMV_MULTI + 1]; /* matrix i owns tasks [first[i], first[i + 1]) */
    int k;
} qmulti;

static void qmulti_task(void *vc, int t, int nt) {
    const qmulti *m = vc;
    int i = 0;
    while (t >= m->first[i + 1]) i++;
    qgemv_task((void *)&m->j[i], t - m->first[i], nt);
}

/* the x preparation matrix i can share with an earlier one: same kind of preparation, group, length */
static int same_prep(const tp_qmat *a, const tp_qmat *b, int qx) {
    return a->cols == b->cols && a->g == b->g && a->ngroups == b->ngroups && (!qx || qx_ok(b));
}

tp_status tp_qgemv_multi_cpu(const tp_qmat *const *q, int k, const float *x, float *const *y) {
    if (k < 1 || k > TP_QGEMV_MULTI) return TP_ERR_ARG;
    const tp_isa isa = tp_cpu_isa();
    const int avx2 = isa >= TP_ISA_AVX2, vnni = isa >= TP_ISA_AVX512VBMI;
    qmulti m;
    memset(&m, 0, sizeof m);
    m.k = k;
    void *own[TP_QGEMV_MULTI] = {0};
    tp_status s = TP_OK;
    int64_t work = 0;
    int measure = 0, rpp = 4, any_qx = 0;
    if (isa >= TP_ISA_AVX512) rpp = rows_a_pass(&measure);
    double qx_bytes = 0;
    for (int i = 0; i < k && s == TP_OK; i++) {
        const tp_qmat *qi = q[i];
        tp_qx *qx = NULL;
        float *xsum = NULL;
        int shared = 0;
        if (isa >= TP_ISA_AVX512 && qx_ok(qi)) {
            for (int p = 0; p < i && !shared; p++)
                if (m.j[p].qx && same_prep(q[p], qi, 1)) { qx = (tp_qx *)m.j[p].qx; shared = 1; }
            if (!shared) {
                if (qx_make(qi, x, vnni, rpp, &qx) != TP_OK) { s = TP_ERR_NOMEM; break; }
                own[i] = qx;
            }
            if (qx) {
                any_qx = 1;
                qx_bytes += (double)tp_qmat_bytes(qi);
            }
        }
        float *nx = NULL;
        if (isa >= TP_ISA_AVX512 && tp_nf4x_ok(qi)) {
            for (int p = 0; p < i && !shared; p++)
                if (m.j[p].nx && q[p]->cols == qi->cols) { nx = (float *)m.j[p].nx; shared = 1; }
            if (!shared) {
                if (!(nx = tp_alloc(tp_nf4x_floats(qi) * sizeof(float)))) { s = TP_ERR_NOMEM; break; }
                tp_nf4x_prep_avx512(qi, x, nx);
                own[i] = nx;
            }
        }
        if (avx2 && !qx && !nx) {
            for (int p = 0; p < i && !shared; p++)
                if (m.j[p].xsum && same_prep(q[p], qi, 0)) { xsum = (float *)m.j[p].xsum; shared = 1; }
            if (!shared) {
                if (!(xsum = tp_alloc((size_t)qi->ngroups * sizeof(float)))) { s = TP_ERR_NOMEM; break; }
                tp_qgemv_xsum(qi, x, xsum);
                own[i] = xsum;
            }
        }
        m.j[i] = (qjob){qi, x, xsum, 1, y[i], avx2, qx, vnni, nx, 0};
        m.first[i + 1] = m.first[i] + (int)((qi->rows + ROW_TASK - 1) / ROW_TASK);
        work += qi->rows * qi->cols;
    }
    if (s == TP_OK) {
        const double t0 = measure && any_qx ? tp_now() : 0;
        if (work >= TP_CPU_PAR_MIN) tp_pool_run(m.first[k], qmulti_task, &m);
        else
            for (int t = 0; t < m.first[k]; t++) qmulti_task(&m, t, m.first[k]);
        if (measure && any_qx) cal_report(rpp, qx_bytes, tp_now() - t0);
        for (int i = 0; i < k; i++) s = m.j[i].nomem ? TP_ERR_NOMEM : s;
    }
    for (int i = 0; i < k; i++) tp_free(own[i]);
    return s;
}
