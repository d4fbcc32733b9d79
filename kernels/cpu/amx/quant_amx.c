/* The INT4 GEMM on Intel AMX (tile registers, TDPBF16PS), for many activation rows (prefill,
 * perplexity windows): Y[b] = W X[b] for W of kind int4 with g a multiple of 32 dividing cols.
 *
 * Why it is exact enough to replace the fp32 sgemm of decoded tiles. TDPBF16PS multiplies bf16
 * pairs and accumulates in fp32. The codes, centred (q - 8 in -8..7), are exact in bf16. x is
 * not, so each fp32 element is split into three bf16 pieces by truncation, x = h + m + l exactly
 * (h: x's sign, exponent and top 7 mantissa bits; x - h is exact in fp32 and has at most 16
 * significant bits, m takes its top 8, and the rest, at most 8 bits, is l): q' h, q' m and q' l are
 * exact products (4 x 8 bits), and the three passes add into the same fp32 tile. Per group:
 *   y += s * sum (q - 8) x  +  (o + 8 s) * sum x
 * (the group identity of the other INT4 kernels, centred as the W4A8 one: o + 8 s rounded once in
 * fp32; sum x in fp32 in a fixed order). So the result differs from the double reference by fp32
 * rounding of sums, as the sgemm on decoded weights does (test_int4: gemm_amx_matches_reference).
 *
 * Tiles (palette 1, all 16 rows x 64 bytes): C 0..3 = 2 token blocks x 2 output blocks of 16x16
 * fp32; A 4, 5 = the token blocks' pieces (16 tokens x 32 k, bf16, row-major); B 6, 7 = the output
 * blocks' weights in the VNNI layout TDPBF16PS takes (row kp: for each of 16 outputs the pair
 * k = 2kp, 2kp + 1; a code byte holds exactly such a pair: its low nibble is element 2i, its high
 * nibble 2i + 1). Blocking (a task = a panel of up to 128 outputs): the panel's codes for a K chunk
 * of up to 1024 columns are decoded once into VNNI tiles (gathers of one code dword from each of
 * 16 rows, a vpermw table from nibble to bf16), then every 32-token block runs over them; each
 * group's four C tiles are stored and folded into the panel's fp32 accumulator with the group's
 * scales. Threads split the outputs only (panels), never K, so the bits do not depend on the
 * thread count.
 * Measured (Intel Xeon guest, 2 threads, reports/results/bench-gemm-amx-intel-xeon.json): 4096^2
 * g128 x16 / x64 1.83 / 3.75 ms against OpenBLAS fp32 sgemm's 6.22 / 11.41 (the sgemm-on-decoded-
 * tiles path it replaces: 11.0 / 17.9); about 30% of the tile unit's bf16 rate over three passes.
 * Tried and dropped (same host, alternating builds): the pieces stored as contiguous 1 KB tiles
 * instead of token rows (x64 3.74-4.17 ms against 3.48-3.53), K chunks of 512 or 2048 columns,
 * panels of 64 or 256 outputs (no gain).
 * An AMX GEMV (one row of x, decode) was written and measured the same way (2026-12-06, same host,
 * not kept): TDPBUSD with A = the raw code bytes u = lo + 16 hi straight from the weights and a
 * second A of the low nibbles (one AND and one 64-byte store per 64 code bytes), B = four signed-
 * byte limbs of xo and of 16 xe - xo (16 sum lo xe + hi xo = sum u xo + sum lo (16 xe - xo)),
 * 16-row blocks, two per pass. Single thread, a 512x2048 int4 g128 matrix in L2: 24-27 us a call
 * against the AVX-512 VNNI GEMV's 23; the parts measured alone (staging the nibbles 8.6 us, the
 * tile loop 9.8 us, the rest 8.6 us) add up: the vector stores and the tile unit did not overlap,
 * with the nibbles staged 2 chunks ahead and the C tiles folded 2 chunks behind. TinyLlama-shaped
 * decode (`tenpak generate -n 128`, 3 alternating rounds): 30.5 against 37.3 tok/s. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "kernels/cpu/quant_cpu.h"

#define AMX_KC 1024    /* columns of a K chunk (rounded down to whole groups) */
#define AMX_PANEL 128  /* outputs of a task at most */
#define AMX_TB 32      /* tokens per block (two A tiles) */
#define AMX_PIECES (4 << 20) /* bytes of x pieces at most (a slab of tokens) */

typedef struct {
    uint8_t palette, start;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_tilecfg;

static void amx_config(void) {
    amx_tilecfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int i = 0; i < 8; i++) {
        c.colsb[i] = 64;
        c.rows[i] = 16;
    }
    _tile_loadconfig(&c);
}

int tp_qgemm_amx_shape_ok(const tp_qmat *q) {
    return q->kind == TP_Q_INT4 && q->offset && !q->rcodes && q->g >= 32 && q->g % 32 == 0 && q->cols > 0 &&
           q->cols % q->g == 0 && q->rows > 0 && q->code_stride == q->cols / 2 && q->code_stride * 16 < (1LL << 31);
}

typedef struct {
    const tp_qmat *q;
    const uint16_t *P;  /* 3 pieces, each bpad rows of cs bf16 (cols used) */
    const float *xsum;  /* bpad x ngroups */
    int64_t batch, bpad, cs, panel;
    float *Y;
    int nomem;
} amx_job;

/* x = h + m + l, each a bf16 (truncation: exact, see above); xsum per group in element order */
static void amx_split(const float *X, int64_t batch, int64_t bpad, int64_t cols, int64_t cs, int g, uint16_t *P,
                      float *xsum) {
    const int64_t plane = bpad * cs, ng = cols / g;
    const __m512i hi = _mm512_set1_epi32((int)0xffff0000u);
    for (int64_t t = 0; t < bpad; t++) {
        uint16_t *ph = P + t * cs, *pm = ph + plane, *pl = pm + plane;
        if (t >= batch) {
            memset(ph, 0, (size_t)cols * 2);
            memset(pm, 0, (size_t)cols * 2);
            memset(pl, 0, (size_t)cols * 2);
            for (int64_t gi = 0; gi < ng; gi++) xsum[t * ng + gi] = 0;
            continue;
        }
        const float *x = X + t * cols;
        for (int64_t gi = 0; gi < ng; gi++) {
            __m512 s = _mm512_setzero_ps();
            for (int64_t c = gi * g; c < (gi + 1) * g; c += 16) {
                __m512 v = _mm512_loadu_ps(x + c);
                s = _mm512_add_ps(s, v);
                __m512i vi = _mm512_castps_si512(v);
                __m512i h = _mm512_and_si512(vi, hi);
                __m512 r = _mm512_sub_ps(v, _mm512_castsi512_ps(h));
                __m512i ri = _mm512_castps_si512(r);
                __m512i m = _mm512_and_si512(ri, hi);
                __m512 l = _mm512_sub_ps(r, _mm512_castsi512_ps(m));
                _mm256_storeu_si256((__m256i *)(ph + c), _mm512_cvtepi32_epi16(_mm512_srli_epi32(h, 16)));
                _mm256_storeu_si256((__m256i *)(pm + c), _mm512_cvtepi32_epi16(_mm512_srli_epi32(m, 16)));
                _mm256_storeu_si256((__m256i *)(pl + c),
                                    _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_castps_si512(l), 16)));
            }
            xsum[t * ng + gi] = _mm512_reduce_add_ps(s);
        }
    }
}

/* The codes of rows [r0, r0 + 16) (those below nvalid; the others decode as code 8, i.e. 0) and
 * k-steps [ks0, ks0 + nks) into nks VNNI tiles of 16 x 32 bf16 */
static void amx_decode16(const tp_qmat *q, int64_t r0, int nvalid, int64_t ks0, int64_t nks, uint16_t *dst) {
    static const uint16_t lut_init[32] = {0xc100, 0xc0e0, 0xc0c0, 0xc0a0, 0xc080, 0xc040, 0xc000, 0xbf80,
                                          0x0000, 0x3f80, 0x4000, 0x4040, 0x4080, 0x40a0, 0x40c0, 0x40e0};
    const __m512i lut = _mm512_loadu_si512(lut_init);
    const __m512i idx = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                           _mm512_set1_epi32((int)q->code_stride));
    const __mmask16 mk = nvalid >= 16 ? 0xffff : (__mmask16)((1u << nvalid) - 1);
    const __m512i eight = _mm512_set1_epi32((int)0x88888888u), lo4 = _mm512_set1_epi32(0x0f), hi4 = _mm512_set1_epi32(0xf0);
    for (int64_t ks = 0; ks < nks; ks++) {
        uint16_t *tile = dst + ks * 512;
        for (int j = 0; j < 4; j++) {
            __m512i d = eight;
            if (mk) {
                const uint8_t *base = q->codes + r0 * q->code_stride + (ks0 + ks) * 16 + 4 * j;
                d = _mm512_mask_i32gather_epi32(eight, mk, idx, base, 1);
            }
            for (int jj = 0; jj < 4; jj++) {
                __m512i b = _mm512_srli_epi32(d, 8 * jj);
                __m512i w = _mm512_or_si512(_mm512_and_si512(b, lo4), _mm512_slli_epi32(_mm512_and_si512(b, hi4), 12));
                _mm512_storeu_si512(tile + (4 * j + jj) * 32, _mm512_permutexvar_epi16(w, lut));
            }
        }
    }
}

static void amx_task(void *vc, int task, int ntasks) {
    amx_job *j = vc;
    const tp_qmat *q = j->q;
    const int64_t cols = q->cols, ng = q->ngroups, g = q->g, gks = g / 32;
    const int64_t r0 = (int64_t)task * j->panel, r1 = r0 + j->panel < q->rows ? r0 + j->panel : q->rows;
    const int64_t np = (r1 - r0 + 31) / 32 * 32; /* outputs of the panel, padded to 32 */
    const int64_t kc = (AMX_KC / g > 0 ? AMX_KC / g : 1) * g, bpad = j->bpad;
    (void)ntasks;
    uint16_t *W = tp_alloc((size_t)(np * kc) * 2);
    float *acc = tp_alloc((size_t)(bpad * np) * sizeof(float));
    float *sT = tp_alloc((size_t)(2 * ng * np) * sizeof(float));
    float cbuf[4 * 256] __attribute__((aligned(64))); /* the four C tiles of a group */
    if (!W || !acc || !sT) {
        j->nomem = 1;
        tp_free(W); tp_free(acc); tp_free(sT);
        return;
    }
    float *oT = sT + ng * np;
    for (int64_t gi = 0; gi < ng; gi++)
        for (int64_t n = 0; n < np; n++) {
            float s = 0, o = 0;
            if (r0 + n < r1) {
                s = tp_f16_to_f32(q->scale[(r0 + n) * ng + gi]);
                o = fmaf(8.0f, s, tp_f16_to_f32(q->offset[(r0 + n) * ng + gi]));
            }
            sT[gi * np + n] = s;
            oT[gi * np + n] = o;
        }
    memset(acc, 0, (size_t)(bpad * np) * sizeof(float));
    amx_config();
    const int64_t cs = j->cs, plane = bpad * cs, ldp = cs * 2;
    for (int64_t k0 = 0; k0 < cols; k0 += kc) {
        const int64_t kn = k0 + kc < cols ? kc : cols - k0, nks = kn / 32;
        for (int64_t sb = 0; sb < np / 16; sb++) {
            int64_t nv = r1 - (r0 + sb * 16);
            amx_decode16(q, r0 + sb * 16, nv <= 0 ? 0 : nv > 16 ? 16 : (int)nv, k0 / 32, nks, W + sb * 16 * kn);
        }
        for (int64_t t0 = 0; t0 < bpad; t0 += AMX_TB) {
            for (int64_t ob = 0; ob < np; ob += 32) {
                const uint16_t *B0 = W + ob * kn, *B1 = W + (ob + 16) * kn;
                for (int64_t gl = 0; gl < kn / g; gl++) {
                    _tile_zero(0);
                    _tile_zero(1);
                    _tile_zero(2);
                    _tile_zero(3);
                    for (int64_t ks = gl * gks; ks < (gl + 1) * gks; ks++) {
                        _tile_loadd(6, B0 + ks * 512, 64);
                        _tile_loadd(7, B1 + ks * 512, 64);
                        for (int p = 0; p < 3; p++) {
                            const uint16_t *A = j->P + p * plane + t0 * cs + k0 + ks * 32;
                            _tile_loadd(4, A, ldp);
                            _tile_loadd(5, A + 16 * cs, ldp);
                            _tile_dpbf16ps(0, 4, 6);
                            _tile_dpbf16ps(1, 4, 7);
                            _tile_dpbf16ps(2, 5, 6);
                            _tile_dpbf16ps(3, 5, 7);
                        }
                    }
                    _tile_stored(0, cbuf, 64);
                    _tile_stored(1, cbuf + 256, 64);
                    _tile_stored(2, cbuf + 512, 64);
                    _tile_stored(3, cbuf + 768, 64);
                    const int64_t gi = k0 / g + gl;
                    for (int c = 0; c < 4; c++) {
                        const int64_t tb = t0 + (c >> 1) * 16, n0 = ob + (c & 1) * 16;
                        const __m512 sv = _mm512_loadu_ps(sT + gi * np + n0), ov = _mm512_loadu_ps(oT + gi * np + n0);
                        for (int r = 0; r < 16; r++) {
                            float *a = acc + (tb + r) * np + n0;
                            __m512 v = _mm512_fmadd_ps(sv, _mm512_loadu_ps(cbuf + c * 256 + r * 16), _mm512_loadu_ps(a));
                            v = _mm512_fmadd_ps(ov, _mm512_set1_ps(j->xsum[(tb + r) * ng + gi]), v);
                            _mm512_storeu_ps(a, v);
                        }
                    }
                }
            }
        }
    }
    _tile_release();
    const int64_t nr = r1 - r0;
    for (int64_t t = 0; t < j->batch; t++) {
        float *y = j->Y + t * q->rows + r0;
        const float *a = acc + t * np;
        int64_t n = 0;
        for (; n + 16 <= nr; n += 16) _mm512_storeu_ps(y + n, _mm512_loadu_ps(a + n));
        if (n < nr) _mm512_mask_storeu_ps(y + n, (__mmask16)((1u << (nr - n)) - 1), _mm512_loadu_ps(a + n));
    }
    tp_free(W);
    tp_free(acc);
    tp_free(sT);
}

tp_status tp_qgemm_amx(const tp_qmat *q, const float *X, int64_t batch, float *Y) {
    /* a token's pieces 64 bytes apart more than cols: the 16 rows of an A tile would otherwise
     * fall in one L1 set whenever cols is a multiple of 2048 */
    const int64_t cs = q->cols + 32;
    /* tokens in slabs whose pieces take at most AMX_PIECES bytes (each slab decodes the codes
     * again): TinyLlama's 5632-column down projection in slabs of 96 tokens, its other matrices
     * in one; the slab does not change any token's bits */
    int64_t slab = AMX_PIECES / (6 * cs) / AMX_TB * AMX_TB;
    if (slab < AMX_TB) slab = AMX_TB;
    if (slab > (batch + AMX_TB - 1) / AMX_TB * AMX_TB) slab = (batch + AMX_TB - 1) / AMX_TB * AMX_TB;
    uint16_t *P = tp_alloc((size_t)(3 * slab * cs) * 2);
    float *xsum = tp_alloc((size_t)(slab * q->ngroups) * sizeof(float));
    if (!P || !xsum) {
        tp_free(P);
        tp_free(xsum);
        return TP_ERR_NOMEM;
    }
    /* panels: at most AMX_PANEL outputs, at least as many as twice the threads when the rows allow */
    int64_t panel = AMX_PANEL, nt = tp_pool_threads();
    while (panel > 32 && (q->rows + panel - 1) / panel < 2 * nt) panel -= 32;
    const int ntasks = (int)((q->rows + panel - 1) / panel);
    int nomem = 0;
    for (int64_t b0 = 0; b0 < batch && !nomem; b0 += slab) {
        const int64_t nb = batch - b0 < slab ? batch - b0 : slab, bpad = (nb + AMX_TB - 1) / AMX_TB * AMX_TB;
        amx_split(X + b0 * q->cols, nb, bpad, q->cols, cs, q->g, P, xsum);
        amx_job j = {q, P, xsum, nb, bpad, cs, panel, Y + b0 * q->rows, 0};
        tp_pool_run(ntasks, amx_task, &j); /* one task runs on this thread */
        nomem = j.nomem;
    }
    tp_free(P);
    tp_free(xsum);
    return nomem ? TP_ERR_NOMEM : TP_OK;
}
