/* Vector quantisation: every kernel against the reference (registry, with self-test), plus the
 * k-means properties: determinism across thread counts, re-seeding, weighting, nearest codes,
 * packing and sizes. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "tenpak/vq.h"
#include "verify/test_common.h"

Test(vq, registry_vq) { verify_filter("^[a-z]+/vq_"); }
Test(vq, registry_vqr) { verify_filter("^[a-z]+/vqr_"); }

static float *rand_vectors(int64_t n, int d, tp_rng *rng) {
    float *V = tp_alloc((size_t)(n * d) * 4);
    for (int64_t i = 0; i < n * d; i++) V[i] = tp_rng_normal(rng) * 0.02f;
    return V;
}

/* same codebook, bit for bit, with 1 and 2 threads, and equal to the reference */
typedef struct kmjob {
    const float *V, *imp;
    int64_t n;
    tp_kmeans_opts o;
} kmjob;
static void kmeans_child(void *c, void *out) {
    const kmjob *j = c;
    if (tp_kmeans_cpu(j->V, j->n, 4, 64, j->imp, &j->o, out, NULL) != TP_OK) _exit(2);
}

/* the same codebook on 1 and 3 pool threads (forked children) and from the reference */
Test(vq, kmeans_deterministic) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 41);
    const int64_t n = 40000; /* several chunks of TP_KMEANS_CHUNK */
    float *V = rand_vectors(n, 4, &rng), *imp = tp_alloc(n * 4);
    for (int64_t i = 0; i < n; i++) imp[i] = fabsf(V[4 * i]) + 1e-3f;
    float a[64 * 4], b[64 * 4], c[64 * 4];
    kmjob j = {.V = V, .imp = imp, .n = n, .o = {.seed = 7, .max_iters = 6}};
    cr_assert_eq(run_with_threads(1, kmeans_child, &j, a, sizeof a), 0, "1-thread child failed");
    cr_assert_eq(run_with_threads(3, kmeans_child, &j, b, sizeof b), 0, "3-thread child failed");
    cr_assert_eq(tp_kmeans_ref(V, n, 4, 64, imp, &j.o, c, NULL), TP_OK);
    cr_expect_eq(memcmp(a, b, sizeof a), 0, "1 vs 3 threads");
    cr_expect_eq(memcmp(a, c, sizeof a), 0, "cpu vs reference");
    tp_free(V);
    tp_free(imp);
}

/* Lloyd never ends worse than its start; duplicates force empty clusters, which are re-seeded */
Test(vq, lloyd_and_reseed) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 42);
    const int64_t n = 3000;
    float *V = rand_vectors(n, 8, &rng);
    float c1[32 * 8], c2[32 * 8];
    tp_kmeans_stats s1, s2;
    tp_kmeans_opts o1 = {.seed = 3, .max_iters = 1}, o2 = {.seed = 3, .max_iters = 30};
    cr_assert_eq(tp_kmeans_cpu(V, n, 8, 32, NULL, &o1, c1, &s1), TP_OK);
    cr_assert_eq(tp_kmeans_cpu(V, n, 8, 32, NULL, &o2, c2, &s2), TP_OK);
    cr_expect_leq(s2.distortion, s1.distortion * (1 + 1e-9), "%g > %g", s2.distortion, s1.distortion);
    cr_expect_gt(s2.iters, 1);
    /* 400 vectors with 6 distinct values, 16 centroids: k-means++ must repeat some */
    float *D = tp_alloc(400 * 4 * 4), cb[16 * 4];
    for (int64_t i = 0; i < 400; i++)
        for (int j = 0; j < 4; j++) D[i * 4 + j] = (float)((i % 6) * 0.25 + j * 0.01);
    tp_kmeans_stats s3;
    tp_kmeans_opts o3 = {.seed = 5, .max_iters = 5};
    cr_assert_eq(tp_kmeans_cpu(D, 400, 4, 16, NULL, &o3, cb, &s3), TP_OK);
    cr_expect_gt(s3.reseeded, 0, "no empty cluster was re-seeded");
    cr_expect_eq(s3.distortion, 0.0, "6 points, 16 centroids: every point is a centroid");
    for (int i = 0; i < 16 * 4; i++) cr_assert(isfinite(cb[i]));
    tp_free(V);
    tp_free(D);
}

/* K = 1: the centroid is the weighted mean (then rounded to fp16) */
Test(vq, weighted_mean) {
    float V[3 * 2] = {0, 0, 1, 1, 4, 8}, w[3] = {1, 1, 2}, cb[2];
    tp_kmeans_opts o = {.seed = 1, .max_iters = 3};
    cr_assert_eq(tp_kmeans_ref(V, 3, 2, 1, w, &o, cb, NULL), TP_OK);
    cr_expect_eq(cb[0], tp_f16_to_f32(tp_f32_to_f16((float)(9.0 / 4))), "%g", cb[0]);
    cr_expect_eq(cb[1], tp_f16_to_f32(tp_f32_to_f16((float)(17.0 / 4))), "%g", cb[1]);
}

/* every code of the cpu encoder is a nearest centroid; awkward shape (cols % d != 0) */
Test(vq, encode_nearest) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 43);
    const int64_t R = 13, C = 203;
    float *W = rand_vectors(R, (int)C, &rng);
    tp_vqmat m;
    cr_assert_eq(tp_vq_alloc(&m, R, C, 8, 64), TP_OK);
    tp_kmeans_opts o = {.seed = 9, .max_iters = 5};
    cr_assert_eq(tp_vq_fit(&m, W, &o, NULL), TP_OK);
    float x[8];
    for (int64_t r = 0; r < R; r++)
        for (int64_t v = 0; v < m.nvec; v++) {
            for (int j = 0; j < 8; j++) x[j] = v * 8 + j < C ? W[r * C + v * 8 + j] : 0.0f;
            double best = INFINITY, got = 0;
            for (int k = 0; k < 64; k++) {
                double dd = 0;
                for (int j = 0; j < 8; j++) dd += ((double)x[j] - m.codebook[k * 8 + j]) * ((double)x[j] - m.codebook[k * 8 + j]);
                best = fmin(best, dd);
                if (k == tp_vq_code(&m, r, v)) got = dd;
            }
            cr_assert_leq(got, best * (1 + 1e-5) + 1e-12);
        }
    tp_vq_free(&m);
    tp_free(W);
}

/* packing: 8-bit and 12-bit codes round-trip; sizes as documented */
Test(vq, pack_and_sizes) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 44);
    const int Ks[2] = {256, 4096};
    for (int t = 0; t < 2; t++) {
        tp_vqmat a, b;
        cr_assert_eq(tp_vq_alloc(&a, 5, 37, 4, Ks[t]), TP_OK);
        cr_assert_eq(tp_vq_alloc(&b, 5, 37, 4, Ks[t]), TP_OK);
        for (int i = 0; i < Ks[t] * 4; i++) a.codebook[i] = tp_f16_to_f32(tp_f32_to_f16(tp_rng_normal(&rng)));
        for (int64_t i = 0; i < 5 * a.nvec; i++) {
            if (a.codes8) a.codes8[i] = (uint8_t)tp_rng_below(&rng, 256);
            else a.codes16[i] = (uint16_t)tp_rng_below(&rng, 4096);
        }
        unsigned char *buf = tp_alloc(tp_vq_bytes(&a));
        tp_vq_pack(&a, buf);
        tp_vq_unpack(&b, buf);
        cr_expect_eq(memcmp(a.codebook, b.codebook, Ks[t] * 16), 0);
        for (int64_t i = 0; i < 5 * a.nvec; i++) cr_assert_eq(tp_vq_code(&a, i / a.nvec, i % a.nvec), tp_vq_code(&b, i / a.nvec, i % a.nvec));
        tp_free(buf);
        tp_vq_free(&a);
        tp_vq_free(&b);
    }
    const double n = 4096.0 * 4096.0;
    cr_expect_eq(tp_vq_bytes_for(4096, 4096, 4, 256), 4096 * 1024 + 256 * 4 * 2);
    cr_expect_eq(tp_vq_bytes_for(4096, 4096, 4, 4096), 4096 * 1024 * 3 / 2 + 4096 * 4 * 2);
    cr_expect_eq(tp_vq_bytes_for(4096, 4096, 8, 256), 4096 * 512 + 256 * 8 * 2); /* 1.002 bits/weight */
    cr_expect_eq(tp_vqr_bytes_for(4096, 4096, 8, 256, 32), tp_vq_bytes_for(4096, 4096, 8, 256) + (size_t)(n * 5 / 8));
}

/* tp_vq_prepare's column-major copy: its layout, that rewriting the codes drops it, and the
 * GEMV that reads it (the byte-plane lookup where the CPU has AVX-512 VBMI, else the scalar
 * one) against the reference: rows not a multiple of the 64-row tile, activations with one
 * channel 1000x the rest (one chunk's scale set by it), and a NaN (the chunk goes through the
 * float lookup, so every output is NaN as in the reference). */
Test(vq, prepared_gemv) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 45);
    const int64_t R = 70, C = 1001; /* 251 vectors: 15 full chunks of 16 and one of 11 */
    tp_vqmat m;
    cr_assert_eq(tp_vq_alloc(&m, R, C, 4, 256), TP_OK);
    for (int i = 0; i < 256 * 4; i++) m.codebook[i] = tp_rng_normal(&rng);
    for (int64_t i = 0; i < R * m.nvec; i++) m.codes8[i] = (uint8_t)tp_rng_below(&rng, 256);
    cr_assert_eq(tp_vq_prepare(&m), TP_OK);
    cr_assert_eq(m.rows_t, 128);
    for (int64_t r = 0; r < m.rows_t; r++)
        for (int64_t v = 0; v < m.nvec; v++)
            cr_assert_eq(m.codes8t[v * m.rows_t + r], r < R ? m.codes8[r * m.nvec + v] : 0);
    float *x = tp_alloc(C * sizeof(float)), *y = tp_alloc(R * sizeof(float)), *yr = tp_alloc(R * sizeof(float));
    for (int t = 0; t < 3; t++) {
        for (int64_t i = 0; i < C; i++) x[i] = tp_rng_normal(&rng);
        if (t == 1) x[tp_rng_below(&rng, (uint32_t)C)] *= 1000.0f;
        if (t == 2) x[tp_rng_below(&rng, (uint32_t)C)] = NAN;
        tp_vq_gemv_ref(&m, x, yr);
        for (tp_isa isa = TP_ISA_PORTABLE; isa <= tp_cpu_best_isa(); isa++) {
            tp_cpu_set_isa(isa);
            tp_poison_f32(y, (size_t)R);
            tp_vq_gemv_cpu(&m, x, y);
            if (t < 2) cr_expect_leq(tp_rel_l2_f32(y, yr, (size_t)R), 1e-5, "isa %d case %d", (int)isa, t);
            else
                for (int64_t r = 0; r < R; r++) cr_expect(isnan(y[r]) && isnan(yr[r]), "isa %d row %lld", (int)isa, (long long)r);
        }
        tp_cpu_set_isa(tp_cpu_best_isa());
    }
    /* rewriting the codes drops the copy */
    float *W = rand_vectors(R, (int)C, &rng);
    tp_vq_encode_cpu(&m, W);
    cr_expect_null(m.codes8t);
    cr_assert_eq(tp_vq_prepare(&m), TP_OK);
    tp_vq_encode_ref(&m, W);
    cr_expect_null(m.codes8t);
    unsigned char *buf = tp_alloc(tp_vq_bytes(&m));
    tp_vq_pack(&m, buf);
    cr_assert_eq(tp_vq_prepare(&m), TP_OK);
    tp_vq_unpack(&m, buf);
    cr_expect_null(m.codes8t);
    tp_free(buf);
    tp_free(W);
    tp_free(x);
    tp_free(y);
    tp_free(yr);
    tp_vq_free(&m);
}

/* The three cpu VQ GEMVs give the same bits on 1 and 3 pool threads (forked children): their
 * column parts and the order the parts' sums are added in follow the shape, not the thread count
 * (before, each thread summed an equal share of the column tiles, so 1 and 2 threads differed). */
typedef struct vqjob {
    const tp_vqmat *m;
    const float *x;
} vqjob;
static void vq_gemvs_child(void *c, void *out) {
    const vqjob *j = c;
    float *y = out;
    const int64_t R = j->m->rows;
    if (tp_vq_gemv_cpu(j->m, j->x, y) != TP_OK || tp_vq_gemv_cpu_gather(j->m, j->x, y + R) != TP_OK ||
        tp_vq_gemv_cpu_rowmajor(j->m, j->x, y + 2 * R) != TP_OK)
        _exit(2);
}
Test(vq, gemv_same_bits_at_any_thread_count, .timeout = 120) {
    tp_rng rng;
    tp_rng_seed(&rng, test_seed() ^ 45);
    const int64_t R = 1030, C = 4100; /* over the parallel threshold; not a multiple of d or of 64 vectors */
    const int Ks[2] = {256, 4096};
    for (int t = 0; t < 2; t++) {
        tp_vqmat m;
        cr_assert_eq(tp_vq_alloc(&m, R, C, 4, Ks[t]), TP_OK);
        for (int64_t k = 0; k < (int64_t)Ks[t] * 4; k++) m.codebook[k] = tp_f16_to_f32(tp_f32_to_f16(tp_rng_normal(&rng)));
        for (int64_t r = 0; r < R; r++)
            for (int64_t v = 0; v < m.nvec; v++) {
                size_t i = (size_t)(r * m.nvec + v);
                int code = (int)tp_rng_below(&rng, (uint32_t)Ks[t]);
                if (m.codes8) m.codes8[i] = (uint8_t)code;
                else m.codes16[i] = (uint16_t)code;
            }
        cr_assert_eq(tp_vq_prepare(&m), TP_OK);
        float *x = rand_vectors(1, (int)C, &rng), *a = tp_alloc(3 * R * 4), *b = tp_alloc(3 * R * 4);
        vqjob j = {&m, x};
        cr_assert_eq(run_with_threads(1, vq_gemvs_child, &j, a, (size_t)(3 * R * 4)), 0);
        cr_assert_eq(run_with_threads(3, vq_gemvs_child, &j, b, (size_t)(3 * R * 4)), 0);
        for (int k = 0; k < 3; k++)
            cr_expect_eq(memcmp(a + k * R, b + k * R, (size_t)R * 4), 0, "K %d: GEMV %d differs between 1 and 3 threads", Ks[t], k);
        tp_free(x); tp_free(a); tp_free(b);
        tp_vq_free(&m);
    }
}
