/* AVX-512 + VBMI 2:4 GEMV: the kernel of kernels/cpu/avx512/sparse_avx512_body.h with the
 * nibbles spread by vpmultishiftqb. */
#define TP_SP24_VBMI 1
#define TP_SP24_GEMV_NAME tp_sp24_gemv_rows_avx512vbmi
#include "kernels/cpu/avx512/sparse_avx512_body.h"
