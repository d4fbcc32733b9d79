/* Conversions the loaders use, on the cpu backend's ISA level (TENPAK_ISA caps it): see
 * vecmath_cpu.h. Kept apart from the forward pass's row kernels so that a parser (and its fuzz
 * target) links it without BLAS. */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "kernels/cpu/vecmath_cpu.h"
#include "tenpak/tenpak.h"

__attribute__((target("avx2,f16c"))) static void f16_to_f32_f16c(const uint16_t *src, float *dst, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = tp_f16_to_f32(src[i]);
}

void tp_f16_to_f32_cpu(const void *src, float *dst, size_t n) {
    if (tp_cpu_isa() >= TP_ISA_AVX2 && ((uintptr_t)src & 1) == 0) {
        f16_to_f32_f16c((const uint16_t *)src, dst, n);
        return;
    }
    const uint8_t *b = src;
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, b + 2 * i, 2);
        dst[i] = tp_f16_to_f32(h);
    }
}
