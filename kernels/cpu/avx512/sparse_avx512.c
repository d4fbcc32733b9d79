/* AVX-512 (F+BW+VL+DQ) 2:4 GEMV: the kernel is kernels/cpu/avx512/sparse_avx512_body.h. */
#include "kernels/cpu/codecs_cpu.h"

/* fp16 values stay with the AVX2 kernel: on Zen 4 (one thread, 4096x4096) the zmm vcvtph2ps
 * version took 1.3-1.8 ms against AVX2's 0.81-0.85 ms; fp32 took 1.47 vs 1.94 ms, INT4 g64
 * 0.84 vs 1.3-1.6 ms. */
int tp_sp24_gemv_avx512_ok(const tp_sp24 *s) {
    return s->vkind == TP_SP_F32 || (s->vkind == TP_SP_INT4 && s->q.g % 16 == 0);
}

#define TP_SP24_GEMV_NAME tp_sp24_gemv_rows_avx512
#include "kernels/cpu/avx512/sparse_avx512_body.h"
