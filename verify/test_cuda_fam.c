/* The CUDA kernels of the LoRA, VQ and low-rank / tenpakx families without a GPU: their
 * per-thread code (__host__ __device__) run on the host in the kernels' work decomposition
 * (backend "cuda-emu", kernels/cuda/tp_cuda_fam.h) against the references, with self-test. */
#include <stdlib.h>

#include "verify/test_common.h"
#ifdef TENPAK_HAVE_CUDA
#include "kernels/cuda/tp_cuda_fam.h"
#endif

#ifdef TENPAK_HAVE_CUDA
Test(cuda_fam, host_emulation) {
    setenv("TENPAK_CUDA_EMU", "1", 1);
    verify_filter("/cuda-emu/");
}

/* SGMV's kernels (sgmv_shrink, sgmv_main: word and elementwise paths) against the reference on
 * the op's segment layouts (an empty segment, a repeated adapter, batches 1 to 19); an invalid
 * segment table is refused */
Test(cuda_fam, sgmv_emulation) {
    setenv("TENPAK_CUDA_EMU", "1", 1);
    verify_filter("gemm/lora_int4_g128_r16_s4/cuda-emu/");
    tp_qmat q;
    tp_lora l;
    float W[8 * 16] = {0}, X[2 * 16] = {0}, Y[2 * 8];
    cr_assert_eq(tp_qmat_alloc(&q, TP_Q_INT4, 8, 16, 16), TP_OK);
    tp_quantize_ref(&q, W, 0);
    cr_assert_eq(tp_lora_alloc(&l, 8, 16, 8, 16.0f), TP_OK);
    const int32_t seg[3] = {0, 1, 3}, sad[2] = {0, 0};
    cr_expect_eq(tp_cuda_sgmv_emulate(&q, &l, 1, seg, sad, 2, X, 2, Y), TP_ERR_ARG, "seg[nseg] != batch accepted");
    tp_lora_free(&l);
    tp_qmat_free(&q);
}
#else
Test(cuda_fam, not_built) { cr_skip_test("built without the CUDA backend"); }
#endif
