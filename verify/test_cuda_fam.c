/* The CUDA kernels of the LoRA, VQ and low-rank / tenpakx families without a GPU: their
 * per-thread code (__host__ __device__) run on the host in the kernels' work decomposition
 * (backend "cuda-emu", kernels/cuda/tp_cuda_fam.h) against the references, with self-test. */
#include <stdlib.h>

#include "verify/test_common.h"

#ifdef TENPAK_HAVE_CUDA
Test(cuda_fam, host_emulation) {
    setenv("TENPAK_CUDA_EMU", "1", 1);
    verify_filter("/cuda-emu/");
}
#else
Test(cuda_fam, not_built) { cr_skip_test("built without the CUDA backend"); }
#endif
