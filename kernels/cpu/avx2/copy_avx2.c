/* STREAM-style copy for the roofline: 32-byte loads, non-temporal 32-byte stores once the
 * destination is aligned (large copies: the destination is not read back soon). */
#include <immintrin.h>
#include <stdint.h>

void tp_copy_f32_avx2(const float *a, float *o, int64_t n) {
    int64_t i = 0;
    while (i < n && ((uintptr_t)(o + i) & 31)) { o[i] = a[i]; i++; }
    int stream = n >= (1 << 18);
    for (; i + 32 <= n; i += 32) {
        __m256 v0 = _mm256_loadu_ps(a + i), v1 = _mm256_loadu_ps(a + i + 8);
        __m256 v2 = _mm256_loadu_ps(a + i + 16), v3 = _mm256_loadu_ps(a + i + 24);
        if (stream) {
            _mm256_stream_ps(o + i, v0); _mm256_stream_ps(o + i + 8, v1);
            _mm256_stream_ps(o + i + 16, v2); _mm256_stream_ps(o + i + 24, v3);
        } else {
            _mm256_store_ps(o + i, v0); _mm256_store_ps(o + i + 8, v1);
            _mm256_store_ps(o + i + 16, v2); _mm256_store_ps(o + i + 24, v3);
        }
    }
    for (; i < n; i++) o[i] = a[i];
    if (stream) _mm_sfence();
}
