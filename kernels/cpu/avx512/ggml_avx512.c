/* AVX-512 (F+BW+VL+DQ) instance of the ggml block-format kernels (kernels/cpu/ggml_body.h):
 * 16 lanes, so a 32-element group is two steps and a Q6_K sub-block of 16 one. */
#include <immintrin.h>

#include "kernels/cpu/ggml_cpu.h"

#define GG_SUFFIX avx512
#define VF __m512
#define VLEN 16
#define VZERO() _mm512_setzero_ps()
#define VSET1(f) _mm512_set1_ps(f)
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, v) _mm512_storeu_ps(p, v)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VMUL(a, b) _mm512_mul_ps(a, b)
#define VADD(a, b) _mm512_add_ps(a, b)
#define VHSUM(v) _mm512_reduce_add_ps(v)
#define VCVT8(p) _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(p))))
#define VF16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(p)))
#define VBF16(p) \
    _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(p))), 16))
#define F16S(h) _cvtsh_ss(h)
/* 16 int8 codes held in a register -> floats (the 32-element GEMV keeps its codes in registers) */
#define VCVT8R(v) _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(v))
#include "kernels/cpu/ggml_body.h"
