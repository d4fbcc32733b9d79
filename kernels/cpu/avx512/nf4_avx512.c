/* AVX-512 NF4 GEMV (kind nf4, g a power of two >= 32): the 16 NF4 levels live in one register and
 * a code's level is one vpermps of it.
 *
 * x is prepared once per call in 32-column chunks, the 16 even columns then the 16 odd ones (the
 * order the nibble split gives): 16 code bytes widened to dwords (vpmovzxbd) hold 32 codes, the
 * low nibbles the even columns and the high nibbles the odd ones. Per row and chunk: two lookups
 * and two FMAs into the group's sum t; at the end of a group acc += t * s_group (w = level * s,
 * so the scale multiplies the group's sum once). A chunk is inside one group for every g >= 32.
 * Columns past cols are zero in the prepared x and their code bytes are not read (masked load),
 * so a short last chunk needs no scalar tail.
 *
 * Every row is computed by the same instructions in the same order whether it runs in a 4-row
 * pass (which shares the loads of x) or alone: the result depends on the matrix and x only, never
 * on the thread count or the task split. The AVX2 path (quant_avx2.c) decodes 8 codes per step
 * through two 8-entry permutes and a blend. */
#include <immintrin.h>
#include <string.h>

#include "kernels/cpu/avx512/hsum_avx512.h"
#include "kernels/cpu/quant_cpu.h"

int tp_nf4x_ok(const tp_qmat *q) {
    return q->kind == TP_Q_NF4 && !q->offset && !q->rcodes && q->g >= 32 && (q->g & (q->g - 1)) == 0 && q->cols > 0;
}

size_t tp_nf4x_floats(const tp_qmat *q) { return (size_t)((q->cols + 31) / 32) * 32; }

void tp_nf4x_prep_avx512(const tp_qmat *q, const float *x, float *xp) {
    const int64_t cols = q->cols, nch = (cols + 31) / 32;
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));
    for (int64_t k = 0; k < nch; k++) {
        const int64_t c0 = 32 * k, n = cols - c0;
        const __mmask16 m0 = n >= 16 ? 0xFFFF : (__mmask16)((1u << n) - 1);
        const __mmask16 m1 = n >= 32 ? 0xFFFF : n <= 16 ? 0 : (__mmask16)((1u << (n - 16)) - 1);
        const __m512 a = _mm512_maskz_loadu_ps(m0, x + c0), b = _mm512_maskz_loadu_ps(m1, x + c0 + (n > 16 ? 16 : 0));
        _mm512_storeu_ps(xp + c0, _mm512_permutex2var_ps(a, ev, b));
        _mm512_storeu_ps(xp + c0 + 16, _mm512_permutex2var_ps(a, od, b));
    }
}

static inline __attribute__((always_inline)) void nf4_rows(const tp_qmat *q, const float *xp, int64_t r, float *y,
                                                           const int R) {
    const int64_t cols = q->cols, nfull = cols / 32, ng = q->ngroups;
    const int64_t cpg = q->g / 32; /* chunks per group */
    const __m512 lut = _mm512_loadu_ps(TP_NF4_LEVELS);
    const __m512i m15 = _mm512_set1_epi32(15);
    const uint8_t *cp[4];
    const uint16_t *sc[4];
    __m512 acc[4], t[4];
    for (int i = 0; i < R; i++) {
        cp[i] = q->codes + (r + i) * q->code_stride;
        sc[i] = q->scale + (r + i) * ng;
        acc[i] = _mm512_setzero_ps();
        t[i] = _mm512_setzero_ps();
    }
#define NF_CHUNK(LOAD)                                                                             \
    do {                                                                                           \
        const __m512 xe = _mm512_loadu_ps(xp + 32 * k), xo = _mm512_loadu_ps(xp + 32 * k + 16);   \
        for (int i = 0; i < R; i++) {                                                              \
            _mm_prefetch((const char *)(cp[i] + 16 * k + 1024), _MM_HINT_T0);                     \
            const __m512i b = _mm512_cvtepu8_epi32(LOAD);                                          \
            t[i] = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_and_si512(b, m15), lut), xe, t[i]); \
            t[i] = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(b, 4), lut), xo, t[i]); \
        }                                                                                          \
        if ((k + 1) % cpg == 0 || k + 1 == nch)                                                    \
            for (int i = 0; i < R; i++) {                                                          \
                acc[i] = _mm512_fmadd_ps(t[i], _mm512_set1_ps(_cvtsh_ss(sc[i][k / cpg])), acc[i]); \
                t[i] = _mm512_setzero_ps();                                                        \
            }                                                                                      \
    } while (0)
    const int64_t nch = (cols + 31) / 32;
    int64_t k = 0;
    for (; k < nfull; k++) NF_CHUNK(_mm_loadu_si128((const __m128i *)(cp[i] + 16 * k)));
    if (k < nch) {
        const int64_t nb = (cols - 32 * k + 1) / 2;
        const __mmask16 bm = (__mmask16)((1u << nb) - 1);
        NF_CHUNK(_mm_maskz_loadu_epi8(bm, cp[i] + 16 * k));
    }
#undef NF_CHUNK
    if (R == 4) _mm_storeu_ps(y + r, tp_hsum4_512(acc[0], acc[1], acc[2], acc[3]));
    else y[r] = _mm_cvtss_f32(tp_hsum4_512(acc[0], acc[0], acc[0], acc[0]));
}

void tp_nf4x_gemv_rows_avx512(const tp_qmat *q, const float *xp, int64_t r0, int64_t r1, float *y) {
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) nf4_rows(q, xp, r, y, 4);
    for (; r < r1; r++) nf4_rows(q, xp, r, y, 1);
}
