/* Host checks of the CUDA 2:4 tensor-core kernel's packing (kernels/cuda/sparse24.cu), runnable
 * without a GPU: rebuild every 16 x 32 mma tile of the dense matrix from the metadata words the
 * lanes pass to mma.sp (tp_sp24_tc_meta_word, under either reading of the PTX metadata figure) and
 * the kept values as the lanes' A fragments hold them, and compare with the reference
 * decompression. This checks the packing against the instruction semantics the kernel assumes;
 * whether the hardware agrees is settled only by `tenpak verify` on the GPU. */
#include <math.h>
#include <string.h>

#include "tenpak/sparse.h"
#include "verify/test_common.h"

#ifdef TENPAK_HAVE_CUDA
#include "kernels/cuda/tp_cuda_sparse.h"

/* index of kept entry i of group q (0..7) of tile row rr (0..15) as the hardware reads it */
static int meta_index(const uint32_t w[32], int rr, int q, int i, int hyp) {
    const int g = rr & 7, h = rr >> 3;
    uint32_t word;
    int bit;
    if (hyp == 'a') { /* lane 4g+h: row g+8h, groups 0..7 at bits 4q */
        word = w[4 * g + h];
        bit = 4 * q + 2 * i;
    } else { /* lane 4g+(q/4): groups 4(q/4)..+3, row g in bits 0..15, row g+8 in 16..31 */
        word = w[4 * g + (q >> 2)];
        bit = 16 * h + 4 * (q & 3) + 2 * i;
    }
    return (int)(word >> bit) & 3;
}

static void check_shape(int64_t R, int64_t C, int hyp, uint64_t seed) {
    tp_rng rng;
    tp_rng_seed(&rng, seed);
    float *W = tp_alloc((size_t)(R * C) * 4), *P = tp_alloc((size_t)(R * C) * 4), *D = tp_alloc((size_t)(R * C) * 4);
    cr_assert(W && P && D);
    for (int64_t i = 0; i < R * C; i++) W[i] = tp_rng_normal(&rng);
    tp_prune24_ref(W, R, C, NULL, P);
    tp_sp24 s;
    cr_assert_eq(tp_sp24_alloc(&s, TP_SP_F16, R, C, 0), TP_OK);
    cr_assert_eq(tp_sp24_compress_ref(&s, P, 0), TP_OK);
    tp_sp24_decompress_ref(&s, D);
    const int64_t Mp = (R + 127) / 128 * 128, Kp = (C + 63) / 64 * 64;
    for (int64_t r0 = 0; r0 < Mp; r0 += 16)
        for (int64_t k0 = 0; k0 < Kp; k0 += 32) {
            uint32_t w[32];
            for (int l = 0; l < 32; l++) w[l] = tp_sp24_tc_meta_word(&s, r0, k0, l, hyp);
            float tile[16][32];
            memset(tile, 0, sizeof tile);
            for (int rr = 0; rr < 16; rr++)
                for (int q = 0; q < 8; q++) {
                    const int i0 = meta_index(w, rr, q, 0, hyp), i1 = meta_index(w, rr, q, 1, hyp);
                    cr_assert(i0 < i1, "metadata of a group must be increasing (tile %lld,%lld)", (long long)r0,
                              (long long)k0);
                    for (int i = 0; i < 2; i++) {
                        /* compressed column 2q+i of the tile = kept value k0/2 + 2q + i of the row */
                        const int64_t r = r0 + rr, kv = k0 / 2 + 2 * q + i;
                        float v = 0;
                        if (r < R && kv < s.nkept) v = tp_f16_to_f32(s.vf16[r * s.nkept + kv]);
                        tile[rr][4 * q + (i ? i1 : i0)] += v;
                    }
                }
            for (int rr = 0; rr < 16; rr++)
                for (int kk = 0; kk < 32; kk++) {
                    const int64_t r = r0 + rr, k = k0 + kk;
                    const float want = r < R && k < C ? D[r * C + k] : 0.0f;
                    cr_assert_eq(tile[rr][kk], want, "%lldx%lld hyp %c: tile (%lld,%lld) element (%d,%d)", (long long)R,
                                 (long long)C, hyp, (long long)r0, (long long)k0, rr, kk);
                }
        }
    tp_sp24_free(&s);
    tp_free(W);
    tp_free(P);
    tp_free(D);
}

Test(sparse24_cuda, tc_packing_rebuilds_the_matrix) {
    static const int64_t shapes[][2] = {{1, 1}, {3, 7}, {17, 100}, {128, 64}, {130, 2050}, {300, 1000}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        check_shape(shapes[i][0], shapes[i][1], 'b', 11 + i);
        check_shape(shapes[i][0], shapes[i][1], 'a', 101 + i);
    }
}
/* the whole kernel's index math (tiles, chunks, fragments, epilogue) emulated on the host
 * against the double reference, at awkward sizes (padding on every side), several row and column tiles */
Test(sparse24_cuda, tc_emulation_matches_reference) {
    static const int64_t shapes[][3] = {{3, 7, 2}, {17, 100, 3}, {130, 1000, 17}, {256, 192, 129}, {70, 130, 300}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int64_t R = shapes[i][0], C = shapes[i][1], B = shapes[i][2];
        tp_rng rng;
        tp_rng_seed(&rng, 7 + i);
        float *W = tp_alloc((size_t)(R * C) * 4), *P = tp_alloc((size_t)(R * C) * 4);
        float *X = tp_alloc((size_t)(B * C) * 4), *Y = tp_alloc((size_t)(B * R) * 4), *Yr = tp_alloc((size_t)(B * R) * 4);
        cr_assert(W && P && X && Y && Yr);
        for (int64_t k = 0; k < R * C; k++) W[k] = tp_rng_normal(&rng) * 0.02f;
        for (int64_t k = 0; k < B * C; k++) X[k] = tp_f16_to_f32(tp_f32_to_f16(tp_rng_normal(&rng)));
        for (int64_t k = 0; k < B * R; k++) Y[k] = NAN;
        tp_prune24_ref(W, R, C, NULL, P);
        tp_sp24 s;
        cr_assert_eq(tp_sp24_alloc(&s, TP_SP_F16, R, C, 0), TP_OK);
        cr_assert_eq(tp_sp24_compress_ref(&s, P, 0), TP_OK);
        tp_sp24_gemm_ref(&s, X, B, Yr);
        cr_assert(tp_sp24_tc_emulate(&s, X, B, Y));
        for (int64_t k = 0; k < B * R; k++)
            cr_assert(isfinite(Y[k]), "%lldx%lldx%lld: output %lld not written", (long long)R, (long long)C,
                      (long long)B, (long long)k);
        const double rel = tp_rel_l2_f32(Y, Yr, (size_t)(B * R));
        cr_assert(rel <= 1e-5, "%lldx%lldx%lld: rel_l2 %g", (long long)R, (long long)C, (long long)B, rel);
        tp_sp24_free(&s);
        tp_free(W), tp_free(P), tp_free(X), tp_free(Y), tp_free(Yr);
    }
}
#else
Test(sparse24_cuda, skipped_without_cuda) { cr_skip_test("built without the CUDA backend"); }
#endif
