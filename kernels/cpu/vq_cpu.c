/* cpu backend of vector quantisation: the k-means hooks (AVX2 nearest centroid), encode / decode
 * in row tasks, the lookup-GEMV (table of x-piece . centroid dot products computed per column
 * tile, then gathered by code, in column-range tasks with one partial y each: in registers from
 * the prepared column-major codes where the CPU has AVX-512 VBMI, else scalar or gathers), and
 * the vq+int4 codec. Everything runs on the worker pool (tenpak.h) in tasks fixed by the shape,
 * so the result is the same at any thread count; work under TP_CPU_PAR_MIN runs as the same
 * tasks, in order, on the calling thread. */
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/codecs_cpu.h"
#include "reference/vq_internal.h"

#define ABLK 1024 /* vectors per task of the assignment (4 * ABLK for mindist) */

static int use_avx2(int d) { return tp_cpu_isa() >= TP_ISA_AVX2 && d <= 16; }

/* Every task [0, n) of a job: on the pool when par, else in order on this thread (the same
 * tasks either way, so the same arithmetic). */
static void run_tasks(int n, int par, void (*fn)(void *, int, int), void *ctx) {
    if (par) tp_pool_run(n, fn, ctx);
    else
        for (int t = 0; t < n; t++) fn(ctx, t, n);
}

/* A task that cannot allocate its scratch marks the job and leaves its part: the caller returns
 * TP_ERR_NOMEM once every task is done. */
static void set_nomem(int *flag) { __atomic_store_n(flag, 1, __ATOMIC_RELAXED); }

/* ---- k-means hooks ---- */
typedef struct kjob {
    const float *T, *cb, *cbt, *w, *dist;
    const int32_t *wcode;
    int64_t m;
    int d, K, avx2;
    int32_t *code;
    float *odist, *D;
    double *cs, *dd;
} kjob;

static void assign_task(void *vc, int b, int nb) {
    const kjob *j = vc;
    const int d = j->d;
    const int64_t i0 = (int64_t)b * ABLK, i1 = i0 + ABLK < j->m ? i0 + ABLK : j->m;
    float *dist = j->odist;
    (void)nb;
    if (j->avx2) tp_vq_nearest_avx2(j->T + i0 * d, i1 - i0, d, j->K, j->cbt, j->code + i0);
    else
        for (int64_t i = i0; i < i1; i++) j->code[i] = tp_vq_nearest_ref(j->T + i * d, j->cb, j->K, d);
    for (int64_t i = i0; i < i1; i++) dist[i] = tp_vq_dist_ref(j->T + i * d, j->cb + (size_t)j->code[i] * d, d);
}

static tp_status assign_cpu(void *ctx, const float *T, int64_t m, int d, int K, const float *cb,
                            int32_t *code, float *dist) {
    (void)ctx;
    const int avx2 = use_avx2(d);
    float *cbt = avx2 ? tp_vq_cbt_make(cb, K, d) : NULL;
    if (avx2 && !cbt) return TP_ERR_NOMEM;
    kjob j = {.T = T, .cb = cb, .cbt = cbt, .odist = dist, .m = m, .d = d, .K = K, .avx2 = avx2, .code = code};
    run_tasks((int)((m + ABLK - 1) / ABLK), m * K >= TP_CPU_PAR_MIN, assign_task, &j);
    tp_free(cbt);
    return TP_OK;
}

static void mindist_task(void *vc, int b, int nb) {
    const kjob *j = vc;
    const int d = j->d;
    const int64_t i0 = (int64_t)b * 4 * ABLK, i1 = i0 + 4 * ABLK < j->m ? i0 + 4 * ABLK : j->m;
    (void)nb;
    if (j->avx2) tp_vq_mindist_avx2(j->T + i0 * d, i1 - i0, d, j->cb, j->D + i0);
    else
        for (int64_t i = i0; i < i1; i++) {
            float t = tp_vq_dist_ref(j->T + i * d, j->cb, d);
            if (t < j->D[i]) j->D[i] = t;
        }
}

static void mindist_cpu(void *ctx, const float *T, int64_t m, int d, const float *c, float *D) {
    (void)ctx;
    kjob j = {.T = T, .cb = c, .m = m, .d = d, .avx2 = use_avx2(d), .D = D};
    /* one call per k-means++ pick: keep small ones serial */
    run_tasks((int)((m + 4 * ABLK - 1) / (4 * ABLK)), m * d >= (1 << 20), mindist_task, &j);
}

static void sums_task(void *vc, int c, int nc) {
    const kjob *j = vc;
    const int64_t c0 = (int64_t)c * TP_KMEANS_CHUNK, c1 = c0 + TP_KMEANS_CHUNK < j->m ? c0 + TP_KMEANS_CHUNK : j->m;
    (void)nc;
    j->dd[c] = tp_kmeans_chunk_sums(j->T, j->w, j->wcode, j->dist, c0, c1, j->d, j->K,
                                    j->cs + (size_t)c * (size_t)j->K * (size_t)(j->d + 1));
}

/* one task per chunk into separate buffers, then added in chunk order (as the reference) */
static tp_status sums_cpu(void *ctx, const float *T, const float *w, const int32_t *code, const float *dist,
                          int64_t m, int d, int K, double *S, double *Wk, double *distortion) {
    const int64_t nch = (m + TP_KMEANS_CHUNK - 1) / TP_KMEANS_CHUNK;
    const size_t per = (size_t)K * (size_t)(d + 1);
    double *cs = nch > 1 && nch * per * sizeof(double) <= ((size_t)1 << 28)
                     ? malloc((size_t)nch * per * sizeof(double)) : NULL;
    double *dd = cs ? malloc((size_t)nch * sizeof(double)) : NULL;
    if (!cs || !dd) {
        free(cs);
        free(dd);
        return tp_kmeans_hooks_ref.sums(ctx, T, w, code, dist, m, d, K, S, Wk, distortion);
    }
    kjob j = {.T = T, .w = w, .wcode = code, .dist = dist, .m = m, .d = d, .K = K, .cs = cs, .dd = dd};
    tp_pool_run((int)nch, sums_task, &j);
    for (int64_t c = 0; c < nch; c++) {
        tp_kmeans_chunk_add(cs + (size_t)c * per, d, K, S, Wk);
        *distortion += dd[c];
    }
    free(cs);
    free(dd);
    return TP_OK;
}

static const tp_kmeans_hooks hooks_cpu = {assign_cpu, mindist_cpu, sums_cpu, NULL};

tp_status tp_kmeans_cpu(const float *V, int64_t n, int d, int K, const float *weights,
                        const tp_kmeans_opts *o, float *codebook, tp_kmeans_stats *st) {
    return tp_kmeans_run(V, n, d, K, weights, o, codebook, st, &hooks_cpu);
}

static int big(const tp_vqmat *m) { return m->rows * m->cols >= TP_CPU_PAR_MIN; }

/* ---- encode / decode in row tasks ---- */
#define ENC_TASK 16 /* rows per encode task */
#define DEC_TASK 64 /* rows per decode task */

typedef struct rjob {
    const tp_vqmat *m;
    tp_vqmat *mw;
    const float *W, *cbt;
    float *out;
    int avx2;
    int nomem;
} rjob;

static void encode_task(void *vc, int t, int nt) {
    rjob *j = vc;
    tp_vqmat *m = j->mw;
    const int d = m->d, K = m->K;
    const int64_t cols = m->cols, nvec = m->nvec;
    const int64_t r0 = (int64_t)t * ENC_TASK, r1 = r0 + ENC_TASK < m->rows ? r0 + ENC_TASK : m->rows;
    (void)nt;
    float *V = tp_alloc((size_t)(nvec * d) * sizeof(float));
    int32_t *code = tp_alloc((size_t)nvec * sizeof(int32_t));
    if (!V || !code) set_nomem(&j->nomem);
    for (int64_t r = r0; r < r1 && V && code; r++) {
        memset(V, 0, (size_t)(nvec * d) * sizeof(float));
        memcpy(V, j->W + r * cols, (size_t)cols * sizeof(float));
        if (j->avx2) tp_vq_nearest_avx2(V, nvec, d, K, j->cbt, code);
        else
            for (int64_t v = 0; v < nvec; v++) code[v] = tp_vq_nearest_ref(V + v * d, m->codebook, K, d);
        for (int64_t v = 0; v < nvec; v++) {
            if (m->codes8) m->codes8[r * nvec + v] = (uint8_t)code[v];
            else m->codes16[r * nvec + v] = (uint16_t)code[v];
        }
    }
    tp_free(V);
    tp_free(code);
}

tp_status tp_vq_encode_cpu(tp_vqmat *m, const float *W) {
    tp_vq_unprepare(m);
    const int avx2 = use_avx2(m->d);
    float *cbt = avx2 ? tp_vq_cbt_make(m->codebook, m->K, m->d) : NULL;
    if (avx2 && !cbt) return TP_ERR_NOMEM;
    rjob j = {.m = m, .mw = m, .W = W, .cbt = cbt, .avx2 = avx2};
    run_tasks((int)((m->rows + ENC_TASK - 1) / ENC_TASK), big(m), encode_task, &j);
    tp_free(cbt);
    return j.nomem ? TP_ERR_NOMEM : TP_OK;
}

static void decode_task(void *vc, int t, int nt) {
    const rjob *j = vc;
    const tp_vqmat *m = j->m;
    const int d = m->d;
    const int64_t cols = m->cols, nvec = m->nvec, full = cols / d;
    const int64_t r0 = (int64_t)t * DEC_TASK, r1 = r0 + DEC_TASK < m->rows ? r0 + DEC_TASK : m->rows;
    (void)nt;
    for (int64_t r = r0; r < r1; r++) {
        float *o = j->out + r * cols;
        if (d == 4)
            for (int64_t v = 0; v < full; v++) memcpy(o + 4 * v, m->codebook + 4 * (size_t)tp_vq_code(m, r, v), 16);
        else if (d == 8)
            for (int64_t v = 0; v < full; v++) memcpy(o + 8 * v, m->codebook + 8 * (size_t)tp_vq_code(m, r, v), 32);
        else
            for (int64_t v = 0; v < full; v++)
                memcpy(o + d * v, m->codebook + (size_t)d * tp_vq_code(m, r, v), (size_t)d * sizeof(float));
        if (full < nvec)
            memcpy(o + d * full, m->codebook + (size_t)d * tp_vq_code(m, r, full),
                   (size_t)(cols - d * full) * sizeof(float));
    }
}

void tp_vq_decode_cpu(const tp_vqmat *m, float *W) {
    rjob j = {.m = m, .out = W};
    run_tasks((int)((m->rows + DEC_TASK - 1) / DEC_TASK), big(m), decode_task, &j);
}

/* Prefetch distance in rows of the scalar lookup: a row's codes of one tile are 8..64 bytes of
 * a cache line that nothing else reads soon (rows are nvec bytes apart, so they fall in a few
 * L1 sets), so the line of the row PF_ROWS ahead is asked for before its turn (measured on
 * Zen 4: 4096x4096 K256, one thread, 3.0 ms without, 1.44 ms with 4 rows ahead, 1.70 ms with
 * 32). */
enum { PF_ROWS = 4 };

/* y[r] += sum_v T[v][code(r, v)]: 8 codes per 64-bit load, two rows per step with 4
 * accumulators each (Zen 4, one thread, 4096x4096 K256: one row 1.22 ms, two 0.95 ms, four
 * 1.12 ms). Inlined with Kp = 256 as a constant, so the eight table rows are fixed
 * displacements of one pointer (1.41 ms with Kp a variable). */
static inline __attribute__((always_inline)) void lookup8(const uint8_t *codes, int64_t stride,
                                                          const float *T, int64_t Kp, int64_t nv,
                                                          int64_t r0, int64_t r1, float *y) {
    int64_t r = r0;
    for (; r + 2 <= r1; r += 2) {
        float a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0;
        int64_t v = 0;
        const uint8_t *cp = codes + r * stride, *cq = cp + stride;
        if (r + PF_ROWS + 1 < r1) {
            __builtin_prefetch(cp + PF_ROWS * stride);
            __builtin_prefetch(cq + PF_ROWS * stride);
        }
        const float *t = T;
        for (; v + 8 <= nv; v += 8, t += 8 * Kp) {
            uint64_t c, e;
            memcpy(&c, cp + v, 8);
            memcpy(&e, cq + v, 8);
            a0 += t[c & 255];
            b0 += t[e & 255];
            a1 += t[Kp + (c >> 8 & 255)];
            b1 += t[Kp + (e >> 8 & 255)];
            a2 += t[2 * Kp + (c >> 16 & 255)];
            b2 += t[2 * Kp + (e >> 16 & 255)];
            a3 += t[3 * Kp + (c >> 24 & 255)];
            b3 += t[3 * Kp + (e >> 24 & 255)];
            a0 += t[4 * Kp + (c >> 32 & 255)];
            b0 += t[4 * Kp + (e >> 32 & 255)];
            a1 += t[5 * Kp + (c >> 40 & 255)];
            b1 += t[5 * Kp + (e >> 40 & 255)];
            a2 += t[6 * Kp + (c >> 48 & 255)];
            b2 += t[6 * Kp + (e >> 48 & 255)];
            a3 += t[7 * Kp + (c >> 56)];
            b3 += t[7 * Kp + (e >> 56)];
        }
        for (; v < nv; v++) {
            a0 += T[v * Kp + cp[v]];
            b0 += T[v * Kp + cq[v]];
        }
        y[r] += (a0 + a1) + (a2 + a3);
        y[r + 1] += (b0 + b1) + (b2 + b3);
    }
    for (; r < r1; r++) {
        float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        int64_t v = 0;
        const uint8_t *cp = codes + r * stride;
        const float *t = T;
        for (; v + 8 <= nv; v += 8, t += 8 * Kp) {
            uint64_t c;
            memcpy(&c, cp + v, 8);
            a0 += t[c & 255];
            a1 += t[Kp + (c >> 8 & 255)];
            a2 += t[2 * Kp + (c >> 16 & 255)];
            a3 += t[3 * Kp + (c >> 24 & 255)];
            a0 += t[4 * Kp + (c >> 32 & 255)];
            a1 += t[5 * Kp + (c >> 40 & 255)];
            a2 += t[6 * Kp + (c >> 48 & 255)];
            a3 += t[7 * Kp + (c >> 56)];
        }
        for (; v < nv; v++) a0 += T[v * Kp + cp[v]];
        y[r] += (a0 + a1) + (a2 + a3);
    }
}

static void lookup_rows_portable(const tp_vqmat *m, const float *T, int Kp, int64_t v0, int64_t v1,
                                 int64_t r0, int64_t r1, float *y) {
    const int64_t nv = v1 - v0;
    if (m->codes8) {
        if (Kp == 256) lookup8(m->codes8 + v0, m->nvec, T, 256, nv, r0, r1, y);
        else lookup8(m->codes8 + v0, m->nvec, T, Kp, nv, r0, r1, y);
        return;
    }
    for (int64_t r = r0; r < r1; r++) {
        float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        int64_t v = 0;
        const uint16_t *cp = m->codes16 + r * m->nvec + v0;
        for (; v + 4 <= nv; v += 4) {
            const float *t = T + v * Kp;
            a0 += t[cp[v]];
            a1 += t[Kp + cp[v + 1]];
            a2 += t[2 * Kp + cp[v + 2]];
            a3 += t[3 * Kp + cp[v + 3]];
        }
        for (; v < nv; v++) a0 += T[v * Kp + cp[v]];
        y[r] += (a0 + a1) + (a2 + a3);
    }
}

/* x zero-padded to nvec * d, so every vector of the table is whole */
static float *padded_x(const tp_vqmat *m, const float *x) {
    float *xp = tp_alloc((size_t)(m->nvec * m->d) * sizeof(float));
    if (!xp) return NULL;
    memset(xp, 0, (size_t)(m->nvec * m->d) * sizeof(float));
    memcpy(xp, x, (size_t)m->cols * sizeof(float));
    return xp;
}

/* Both GEMVs below split the vectors (column pieces) into parts, one task each with its own
 * partial y: about PART_VEC vectors a part, at most MAX_PARTS, fixed by the shape (one part under
 * TP_CPU_PAR_MIN weights). The partial ys are then added in part order, in row tasks of RED_TASK
 * rows (a multiple of the byte-plane kernel's 64-row groups), so every row's sum has one order at
 * any thread count. */
#define PART_VEC 64
#define MAX_PARTS 32
#define RED_TASK 512

static int gemv_parts(const tp_vqmat *m) {
    if (!big(m)) return 1;
    int64_t p = (m->nvec + PART_VEC - 1) / PART_VEC;
    return p > MAX_PARTS ? MAX_PARTS : p < 1 ? 1 : (int)p;
}

typedef struct gjob {
    const tp_vqmat *m;
    const float *xp, *cbt;
    int Kp, avx2, avx512, gather;
    int64_t bv;    /* vectors per tile (column tiles) */
    int64_t nunit; /* tiles (column tiles) or chunks (byte planes) */
    int np;        /* parts: part p takes units [nunit * p / np, nunit * (p + 1) / np) */
    float *y;
    float *yp;     /* column tiles: part p > 0 at yp + (p - 1) * rows (part 0 in y); planes: p * rows_t */
    float **yr;    /* byte planes: scalar fallback of part p, row order, made on use */
    int nomem;
} gjob;

/* Column tiles: the table of one tile (bv vectors x Kp floats) is computed right before it is
 * used, so every lookup hits L1 (the whole table, nvec x Kp floats, is 1 MB at 4096 columns,
 * K 256: larger than L2). A part takes a contiguous range of tiles and adds into its own y.
 *
 * Used where tp_vq_prepare's copy or AVX-512 VBMI is missing (vq_gemv_planes below is 2-2.5x
 * faster). The lookup itself is scalar by default: 8 codes per 64-bit load, the table entry added straight
 * from memory, a 32 KB tile (one L1). On a Zen 4 host (2 cores, 4096x4096 K256) that
 * took 0.55 ms where the AVX-512 gathers (16 rows per step, L2-sized tiles: the best layout on a
 * Sapphire Rapids host) took 1.11 ms and the AVX2 gathers 1.05 ms: Zen 4 gathers cost about
 * 1.6 cycles per element, a scalar load-and-add under one. The gather kernels stay as the
 * "cpu-gather" backend (tp_vq_gemv_cpu_gather) for side-by-side measurement on other hosts. */
static void tile_task(void *vc, int p, int np) {
    gjob *j = vc;
    const tp_vqmat *m = j->m;
    const int d = m->d, K = m->K, Kp = j->Kp;
    const int64_t rows = m->rows, nvec = m->nvec, bv = j->bv, ntile = j->nunit;
    float *yo = p == 0 ? j->y : j->yp + (size_t)(p - 1) * (size_t)rows;
    memset(yo, 0, (size_t)rows * sizeof(float));
    float *T = tp_alloc((size_t)(bv * Kp) * sizeof(float));
    if (!T) { set_nomem(&j->nomem); return; }
    for (int64_t tile = ntile * p / np; tile < ntile * (p + 1) / np; tile++) {
        const int64_t b0 = tile * bv, b1 = b0 + bv < nvec ? b0 + bv : nvec;
        if (j->avx2) tp_vq_table_avx2(j->cbt, d, K, j->xp, b0, b1, T);
        else
            for (int64_t v = b0; v < b1; v++)
                for (int k = 0; k < K; k++) {
                    float s = 0;
                    for (int i = 0; i < d; i++) s += j->xp[v * d + i] * m->codebook[(size_t)k * d + i];
                    T[(v - b0) * Kp + k] = s;
                }
        if (j->avx512) tp_vq_lookup_rows_avx512(m, T, Kp, b0, b1, 0, rows, yo);
        else if (j->gather && j->avx2) tp_vq_lookup_rows_avx2(m, T, Kp, b0, b1, 0, rows, yo);
        else lookup_rows_portable(m, T, Kp, b0, b1, 0, rows, yo);
    }
    tp_free(T);
}

static void tile_reduce_task(void *vc, int t, int nt) {
    const gjob *j = vc;
    const int64_t rows = j->m->rows, r0 = (int64_t)t * RED_TASK, r1 = r0 + RED_TASK < rows ? r0 + RED_TASK : rows;
    (void)nt;
    for (int p = 1; p < j->np; p++) {
        const float *q = j->yp + (size_t)(p - 1) * (size_t)rows;
        for (int64_t r = r0; r < r1; r++) j->y[r] += q[r];
    }
}

static tp_status vq_gemv(const tp_vqmat *m, const float *x, float *y, int gather) {
    const int d = m->d, K = m->K, Kp = (K + 7) / 8 * 8, avx2 = use_avx2(d);
    const int avx512 = gather && avx2 && m->codes8 && tp_cpu_isa() >= TP_ISA_AVX512;
    const int64_t rows = m->rows, nvec = m->nvec;
    const int parts = gemv_parts(m);
    /* gathers, AVX2: the tables of two SMT threads (which share one L1) together take half of it.
     * AVX-512: one tile per part, up to 512 KB (L2-resident: measured on a Sapphire-Rapids
     * host, 4096x4096 K256, tiles of 16 / 64 / 512 vectors took 2.8 / 1.5 / 1.2 ms): the codes,
     * not the gathers, bound it, and a long tile reads whole cache lines of each row's codes
     * per pass; multiples of 16 (the lookup gathers 16 vectors at once).
     * scalar: one L1 data cache (32 KB on Zen 4, Kp 256: 32 vectors; 48 KB on Intel
     * since Ice Lake; at least 8 vectors, the codes of one load). The L1 size is read from the
     * machine (32 KB where it is unknown), so the tile follows the host rather than a constant. */
    int64_t bv, l1f = tp_cpu_cache_bytes(1, 0) / (int64_t)sizeof(float);
    if (l1f <= 0) l1f = 8192;
    if (avx512) {
        const int64_t cap = 131072 / Kp;
        bv = (nvec + parts - 1) / parts;
        bv = bv > cap ? cap : bv;
        bv = bv < 16 ? 16 : (bv + 15) / 16 * 16;
    } else if (gather && avx2) {
        bv = l1f / 4 / Kp;
        bv = bv < 8 ? 8 : bv / 8 * 8;
    } else {
        bv = l1f / Kp;
        bv = bv < 8 ? 8 : bv / 8 * 8;
    }
    const int64_t ntile = (nvec + bv - 1) / bv;
    const int np = ntile < parts ? (ntile < 1 ? 1 : (int)ntile) : parts;
    float *xp = padded_x(m, x);
    float *cbt = avx2 ? tp_vq_cbt_make(m->codebook, K, d) : NULL;
    float *yp = np > 1 ? tp_alloc((size_t)(np - 1) * (size_t)rows * sizeof(float)) : NULL;
    if (!xp || (avx2 && !cbt) || (np > 1 && !yp)) {
        tp_free(xp);
        tp_free(cbt);
        tp_free(yp);
        return TP_ERR_NOMEM;
    }
    gjob j = {.m = m, .xp = xp, .cbt = cbt, .Kp = Kp, .avx2 = avx2, .avx512 = avx512, .gather = gather,
              .bv = bv, .nunit = ntile, .np = np, .y = y, .yp = yp};
    run_tasks(np, np > 1, tile_task, &j);
    if (np > 1) run_tasks((int)((rows + RED_TASK - 1) / RED_TASK), 1, tile_reduce_task, &j);
    tp_free(xp);
    tp_free(yp);
    tp_free(cbt);
    return j.nomem ? TP_ERR_NOMEM : TP_OK;
}

/* The byte-plane GEMV (AVX-512 VBMI, K <= 256, m->codes8t made by tp_vq_prepare): per chunk of
 * TP_VQ_PCHUNK vectors the float tables as above, turned into byte planes with one power-of-two scale
 * (tp_vq_table_planes_avx512vbmi, from the 16-wide codebook tp_vq_prepare makes), looked up 64 rows at a time in registers into integer sums, which
 * go to a float partial y once per chunk. A part takes a contiguous range of chunks; the parts'
 * ys are added in part order. Zen 4, 4096x4096 K256 (before the parts: threads took equal ranges):
 * two threads 0.23-0.27 ms, one 0.45 ms (the scalar path above: 0.48-0.61 and
 * 0.98-1.15 ms); of one thread's time the lookup is about 70%, tables and planes 22%.
 * Exactness: every entry is rounded to 2^-27 of its chunk's largest |entry| (the float table
 * itself is rounded to 2^-24 of each entry); the integer sums are exact. A chunk whose table is
 * not finite (x with Inf/NaN) goes through the scalar lookup, so it propagates as there. */
static void planes_task(void *vc, int p, int np) {
    gjob *j = vc;
    const tp_vqmat *m = j->m;
    const int d = m->d, K = m->K;
    const int64_t rows = m->rows, rt = m->rows_t, nvec = m->nvec, nch = j->nunit;
    float *yo = j->yp + (size_t)p * (size_t)rt;
    const int Ks = (K + 15) / 16 * 16; /* the table's stride (16-wide blocks) */
    float *T = tp_alloc((size_t)(TP_VQ_PCHUNK * Ks) * sizeof(float));
    uint8_t *P = tp_alloc((size_t)TP_VQ_PCHUNK * 1024);
    const int ok = T && P;
    if (!ok) set_nomem(&j->nomem);
    memset(yo, 0, (size_t)rt * sizeof(float));
    for (int64_t ch = nch * p / np; ok && ch < nch * (p + 1) / np; ch++) {
        const int64_t v0 = ch * TP_VQ_PCHUNK, v1 = v0 + TP_VQ_PCHUNK < nvec ? v0 + TP_VQ_PCHUNK : nvec;
        int e;
        if (tp_vq_table_planes_avx512vbmi(m->cb16, d, K, j->xp, v0, v1, T, P, &e)) {
            tp_vq_lookup_planes_avx512vbmi(m->codes8t + v0 * rt, rt, P, v1 - v0, e, yo);
        } else {
            if (!j->yr[p]) {
                j->yr[p] = tp_alloc((size_t)rows * sizeof(float));
                if (!j->yr[p]) {
                    set_nomem(&j->nomem);
                    break;
                }
                memset(j->yr[p], 0, (size_t)rows * sizeof(float));
            }
            lookup_rows_portable(m, T, Ks, v0, v1, 0, rows, j->yr[p]);
        }
    }
    tp_free(T);
    tp_free(P);
}

static void planes_reduce_task(void *vc, int t, int nt) {
    const gjob *j = vc;
    const int64_t rows = j->m->rows, rt = j->m->rows_t;
    const int64_t r0 = (int64_t)t * RED_TASK, r1 = r0 + RED_TASK < rows ? r0 + RED_TASK : rows;
    (void)nt;
    int64_t r = r0;
    int plain = 1; /* no part fell back to the scalar lookup */
    for (int i = 0; i < j->np; i++) plain &= j->yr[i] == NULL;
    if (plain) r = tp_vq_planes_reduce_avx512vbmi(j->yp, rt, j->np, r0, r1, j->y);
    for (; r < r1; r++) {
        const int64_t p = r / 64 * 64;
        const int q = tp_vq_planes_row((int)(r - p)); /* the order is its own inverse */
        float s = 0;
        for (int i = 0; i < j->np; i++)
            s += j->yp[(size_t)i * (size_t)rt + (size_t)(p + q)] + (j->yr[i] ? j->yr[i][r] : 0.0f);
        j->y[r] = s;
    }
}

static tp_status vq_gemv_planes(const tp_vqmat *m, const float *x, float *y) {
    const int64_t rows = m->rows, rt = m->rows_t, nvec = m->nvec;
    const int64_t nch = (nvec + TP_VQ_PCHUNK - 1) / TP_VQ_PCHUNK;
    int np = gemv_parts(m);
    if (np > nch) np = nch < 1 ? 1 : (int)nch;
    float *xp = padded_x(m, x);
    float *ys = tp_alloc((size_t)np * (size_t)rt * sizeof(float));
    float **yr = calloc((size_t)np, sizeof(float *));
    if (!xp || !ys || !yr) {
        tp_free(xp);
        tp_free(ys);
        free(yr);
        return TP_ERR_NOMEM;
    }
    gjob j = {.m = m, .xp = xp, .nunit = nch, .np = np, .y = y, .yp = ys, .yr = yr};
    run_tasks(np, np > 1, planes_task, &j);
    run_tasks((int)((rows + RED_TASK - 1) / RED_TASK), big(m), planes_reduce_task, &j);
    tp_free(xp);
    tp_free(ys);
    for (int i = 0; i < np; i++) tp_free(yr[i]);
    free(yr);
    return j.nomem ? TP_ERR_NOMEM : TP_OK;
}

tp_status tp_vq_gemv_cpu(const tp_vqmat *m, const float *x, float *y) {
    /* codes8t exists only for K <= 256 (tp_vq_prepare); d <= 16 is the table kernel's limit */
    if (m->codes8t && m->cb16 && m->d <= 16 && tp_cpu_isa() >= TP_ISA_AVX512VBMI) return vq_gemv_planes(m, x, y);
    return vq_gemv(m, x, y, 0);
}
tp_status tp_vq_gemv_cpu_gather(const tp_vqmat *m, const float *x, float *y) { return vq_gemv(m, x, y, 1); }
tp_status tp_vq_gemv_cpu_rowmajor(const tp_vqmat *m, const float *x, float *y) { return vq_gemv(m, x, y, 0); }

tp_status tp_vq_fit(tp_vqmat *m, const float *W, const tp_kmeans_opts *o, tp_kmeans_stats *st) {
    const int64_t n = m->rows * m->nvec;
    float *V = tp_alloc((size_t)(n * m->d) * sizeof(float));
    float *imp = o && o->importance ? tp_alloc((size_t)n * sizeof(float)) : NULL;
    if (!V || (o && o->importance && !imp)) {
        tp_free(V);
        tp_free(imp);
        return TP_ERR_NOMEM;
    }
    tp_vq_vectors(W, m->rows, m->cols, m->d, V);
    if (imp) tp_vq_importance(W, m->rows, m->cols, m->d, imp);
    tp_status s = tp_kmeans_cpu(V, n, m->d, m->K, imp, o, m->codebook, st);
    tp_free(V);
    tp_free(imp);
    if (s == TP_OK) s = tp_vq_encode_cpu(m, W);
    return s;
}

/* ---- vq + INT4 residual ---- */
tp_status tp_vqr_residual(tp_vqr *m, const float *W, int refine_iters) {
    const int64_t n = m->vq.rows * m->vq.cols;
    float *R = tp_alloc((size_t)n * sizeof(float));
    if (!R) return TP_ERR_NOMEM;
    tp_vq_decode_cpu(&m->vq, R);
    for (int64_t i = 0; i < n; i++) R[i] = W[i] - R[i];
    tp_quantize_rows_cpu(&m->res, R, refine_iters);
    tp_free(R);
    return TP_OK;
}

tp_status tp_vqr_fit(tp_vqr *m, const float *W, const tp_kmeans_opts *o, int refine_iters) {
    tp_status s = tp_vq_fit(&m->vq, W, o, NULL);
    return s != TP_OK ? s : tp_vqr_residual(m, W, refine_iters);
}

/* W += R elementwise, in tasks of ADD_TASK elements */
#define ADD_TASK (1 << 16)
typedef struct ajob {
    float *W;
    const float *R;
    int64_t n;
} ajob;
static void add_task(void *vc, int t, int nt) {
    const ajob *j = vc;
    const int64_t i0 = (int64_t)t * ADD_TASK, i1 = i0 + ADD_TASK < j->n ? i0 + ADD_TASK : j->n;
    (void)nt;
    for (int64_t i = i0; i < i1; i++) j->W[i] = j->W[i] + j->R[i];
}

tp_status tp_vqr_decode_cpu(const tp_vqr *m, float *W) {
    const int64_t n = m->vq.rows * m->vq.cols;
    float *R = tp_alloc((size_t)n * sizeof(float));
    if (!R) return TP_ERR_NOMEM;
    tp_vq_decode_cpu(&m->vq, W);
    tp_dequantize_cpu(&m->res, R);
    ajob j = {W, R, n};
    run_tasks((int)((n + ADD_TASK - 1) / ADD_TASK), n >= TP_CPU_PAR_MIN, add_task, &j);
    tp_free(R);
    return TP_OK;
}

tp_status tp_vqr_gemv_cpu(const tp_vqr *m, const float *x, float *y) {
    float *y2 = tp_alloc((size_t)m->vq.rows * sizeof(float));
    tp_status s = y2 ? tp_vq_gemv_cpu(&m->vq, x, y) : TP_ERR_NOMEM;
    if (s == TP_OK) s = tp_qgemv_cpu(&m->res, x, y2);
    if (s == TP_OK)
        for (int64_t r = 0; r < m->vq.rows; r++) y[r] += y2[r];
    tp_free(y2);
    return s;
}

