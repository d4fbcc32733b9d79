/* Reference (scalar, obviously right) for the INT4 codec family: the definitions every optimised
 * backend is compared with. See include/tenpak/quant.h for the layout; storage: common/quant.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tenpak/quant.h"

static void set_code(tp_qmat *q, int64_t r, int64_t c, int v) {
    uint8_t *b = &q->codes[r * q->code_stride + (c >> 1)];
    if (c & 1) *b = (uint8_t)((*b & 0x0f) | (v << 4));
    else *b = (uint8_t)((*b & 0xf0) | v);
}
static void set_rcode(tp_qmat *q, int64_t r, int64_t c, int v) {
    uint8_t *b = &q->rcodes[r * q->rcode_stride + (c >> 2)];
    int sh = 2 * (int)(c & 3);
    *b = (uint8_t)((*b & ~(3 << sh)) | (v << sh));
}

/* Nearest int4 code for w on the grid o + q*s (s > 0), clamped to 0..15. */
static int int4_code(float w, float s, float o) {
    if (!(s > 0)) return 0;
    double t = ((double)w - (double)o) / (double)s;
    long q = lrint(t);
    return (int)(q < 0 ? 0 : q > 15 ? 15 : q);
}

static double group_sse_int4(const float *w, int n, float s, float o) {
    double e = 0;
    for (int i = 0; i < n; i++) {
        float d = (float)int4_code(w[i], s, o) * s + o;
        e += ((double)d - w[i]) * ((double)d - w[i]);
    }
    return e;
}

/* min/max initialisation with directed rounding: o16 <= min and o16 + 15*s16 >= max, so every
 * element lies inside the grid and is within half a step of its nearest code. */
static void int4_minmax(const float *w, int n, uint16_t *s16, uint16_t *o16) {
    float mn = w[0], mx = w[0];
    for (int i = 1; i < n; i++) {
        mn = w[i] < mn ? w[i] : mn;
        mx = w[i] > mx ? w[i] : mx;
    }
    *o16 = tp_f16_round_down(mn);
    float o = tp_f16_to_f32(*o16);
    uint16_t s = tp_f16_round_up((float)(((double)mx - o) / 15.0));
    /* the fp32 evaluation of o + 15*s must still reach max */
    while ((float)(15.0f * tp_f16_to_f32(s) + o) < mx) s++;
    *s16 = s;
}

/* Alternating least squares: given codes q_i, the (s, o) minimising sum (q_i s + o - w_i)^2 solves
 * a 2x2 normal system; then re-quantise the codes on the new grid. Keep the best pair seen. */
static void int4_refine(const float *w, int n, uint16_t *s16, uint16_t *o16, int iters) {
    double best = group_sse_int4(w, n, tp_f16_to_f32(*s16), tp_f16_to_f32(*o16));
    float s = tp_f16_to_f32(*s16), o = tp_f16_to_f32(*o16);
    for (int it = 0; it < iters; it++) {
        double sq = 0, sqq = 0, sw = 0, sqw = 0;
        for (int i = 0; i < n; i++) {
            double q = int4_code(w[i], s, o);
            sq += q; sqq += q * q; sw += w[i]; sqw += q * w[i];
        }
        double det = n * sqq - sq * sq;
        if (det <= 0) break;
        double ns = (n * sqw - sq * sw) / det, no = (sw - ns * sq) / n;
        if (!(ns > 0)) break;
        uint16_t s2 = tp_f32_to_f16((float)ns), o2 = tp_f32_to_f16((float)no);
        s = tp_f16_to_f32(s2);
        o = tp_f16_to_f32(o2);
        double e = group_sse_int4(w, n, s, o);
        if (e < best) {
            best = e;
            *s16 = s2;
            *o16 = o2;
        }
    }
}

void tp_int4_minmax_ref(const float *w, int n, uint16_t *s16, uint16_t *o16) { int4_minmax(w, n, s16, o16); }

/* The weighted clip search (quant.h): min/max's pair first, then every clipped range on the grid;
 * a candidate replaces the best only when its weighted error is strictly smaller. */
static double group_wsse_int4(const float *w, const double *wt, int n, float s, float o) {
    double e = 0;
    for (int i = 0; i < n; i++) {
        float qs = (float)tp_int4_code_ref(w[i], s, o) * s;
        float d = qs + o;
        e += wt[i] * ((double)d - w[i]) * ((double)d - w[i]);
    }
    return e;
}

void tp_int4_clip_ref(const float *w, const double *wt, int n, uint16_t *s16, uint16_t *o16) {
    int4_minmax(w, n, s16, o16);
    float mn = w[0], mx = w[0];
    for (int i = 1; i < n; i++) {
        mn = w[i] < mn ? w[i] : mn;
        mx = w[i] > mx ? w[i] : mx;
    }
    double best = group_wsse_int4(w, wt, n, tp_f16_to_f32(*s16), tp_f16_to_f32(*o16));
    double range = (double)mx - mn;
    if (!(range > 0)) return;
    for (int a = 0; a <= TP_INT4_CLIP_STEPS; a++)
        for (int b = 0; b <= TP_INT4_CLIP_STEPS; b++) {
            if (!a && !b) continue;
            double lo = mn + range * a / TP_INT4_CLIP_DIV, hi = mx - range * b / TP_INT4_CLIP_DIV;
            uint16_t o2 = tp_f32_to_f16((float)lo);
            float o = tp_f16_to_f32(o2);
            uint16_t s2 = tp_f32_to_f16((float)((hi - o) / 15.0));
            float s = tp_f16_to_f32(s2);
            if (!(s > 0) || !isfinite(s) || !isfinite(o)) continue;
            double e = group_wsse_int4(w, wt, n, s, o);
            if (e < best) {
                best = e;
                *s16 = s2;
                *o16 = o2;
            }
        }
}
int tp_int4_code_ref(double w, float s, float o) {
    if (!(s > 0)) return 0;
    long q = lrint((w - (double)o) / (double)s);
    return (int)(q < 0 ? 0 : q > 15 ? 15 : q);
}

void tp_quantize_ref(tp_qmat *q, const float *W, int refine_iters) {
    for (int64_t r = 0; r < q->rows; r++) {
        const float *row = W + r * q->cols;
        memset(q->codes + r * q->code_stride, 0, (size_t)q->code_stride);
        if (q->rcodes) memset(q->rcodes + r * q->rcode_stride, 0, (size_t)q->rcode_stride);
        for (int64_t gi = 0; gi < q->ngroups; gi++) {
            int64_t c0 = gi * q->g;
            int n = (int)((q->cols - c0) < q->g ? (q->cols - c0) : q->g);
            const float *w = row + c0;
            size_t si = (size_t)(r * q->ngroups + gi);
            if (q->kind == TP_Q_NF4) {
                float amax = 0;
                for (int i = 0; i < n; i++) amax = fabsf(w[i]) > amax ? fabsf(w[i]) : amax;
                uint16_t s16 = tp_f32_to_f16(amax);
                float s = tp_f16_to_f32(s16);
                q->scale[si] = s16;
                for (int i = 0; i < n; i++) {
                    int bq = 7; /* level 0.0 */
                    if (s > 0) {
                        double x = (double)w[i] / s, bd = 1e300;
                        for (int k = 0; k < 16; k++) {
                            double d = fabs(x - TP_NF4_LEVELS[k]);
                            if (d < bd) { bd = d; bq = k; }
                        }
                    }
                    set_code(q, r, c0 + i, bq);
                }
                continue;
            }
            uint16_t s16, o16;
            int4_minmax(w, n, &s16, &o16);
            if (refine_iters > 0) int4_refine(w, n, &s16, &o16, refine_iters);
            q->scale[si] = s16;
            q->offset[si] = o16;
            float s = tp_f16_to_f32(s16), o = tp_f16_to_f32(o16);
            float amax = 0;
            for (int i = 0; i < n; i++) {
                int c = int4_code(w[i], s, o);
                set_code(q, r, c0 + i, c);
                float res = w[i] - ((float)c * s + o);
                amax = fabsf(res) > amax ? fabsf(res) : amax;
            }
            if (q->kind == TP_Q_INT4R2) {
                /* 2-bit residual on levels (r - 1.5) * rs, r in 0..3: the uniform 4-level grid
                 * over [-amax, amax] has step amax/2. Rounded up so the grid still covers amax. */
                uint16_t rs16 = tp_f16_round_up(amax / 2.0f);
                float rs = tp_f16_to_f32(rs16);
                q->rscale[si] = rs16;
                for (int i = 0; i < n; i++) {
                    float base = (float)tp_qmat_code(q, r, c0 + i) * s + o;
                    float res = w[i] - base;
                    int rc = 0;
                    if (rs > 0) {
                        double t = floor((double)res / rs + 2.0);
                        rc = t < 0 ? 0 : t > 3 ? 3 : (int)t;
                    }
                    set_rcode(q, r, c0 + i, rc);
                }
            }
        }
    }
}

/* One element of the dequantised matrix, exactly as quant.h defines it. */
static inline float deq_elem(const tp_qmat *q, int64_t r, int64_t c) {
    size_t si = (size_t)(r * q->ngroups + c / q->g);
    int code = tp_qmat_code(q, r, c);
    float s = tp_f16_to_f32(q->scale[si]);
    if (q->kind == TP_Q_NF4) return TP_NF4_LEVELS[code] * s;
    float base = (float)code * s + tp_f16_to_f32(q->offset[si]);
    if (q->kind == TP_Q_INT4) return base;
    return base + ((float)tp_qmat_rcode(q, r, c) - 1.5f) * tp_f16_to_f32(q->rscale[si]);
}

void tp_dequantize_ref(const tp_qmat *q, float *W) {
    for (int64_t r = 0; r < q->rows; r++)
        for (int64_t c = 0; c < q->cols; c++) W[r * q->cols + c] = deq_elem(q, r, c);
}

void tp_qgemv_ref(const tp_qmat *q, const float *x, float *y) {
    for (int64_t r = 0; r < q->rows; r++) {
        double acc = 0;
        for (int64_t c = 0; c < q->cols; c++) acc += (double)deq_elem(q, r, c) * x[c];
        y[r] = (float)acc;
    }
}

tp_status tp_qgemm_ref(const tp_qmat *q, const float *X, int64_t batch, float *Y) {
    float *wrow = malloc((size_t)q->cols * sizeof *wrow);
    if (!wrow) return TP_ERR_NOMEM;
    for (int64_t r = 0; r < q->rows; r++) {
        for (int64_t c = 0; c < q->cols; c++) wrow[c] = deq_elem(q, r, c);
        for (int64_t b = 0; b < batch; b++) {
            double acc = 0;
            const float *x = X + b * q->cols;
            for (int64_t c = 0; c < q->cols; c++) acc += (double)wrow[c] * x[c];
            Y[b * q->rows + r] = (float)acc;
        }
    }
    free(wrow);
    return TP_OK;
}

void tp_quantize_x8_ref(const float *x, int64_t n, int g, int8_t *xq, float *xs) {
    for (int64_t c0 = 0, gi = 0; c0 < n; c0 += g, gi++) {
        int64_t c1 = c0 + g < n ? c0 + g : n;
        float amax = 0;
        for (int64_t i = c0; i < c1; i++) amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
        float s = amax / 127.0f;
        xs[gi] = s;
        for (int64_t i = c0; i < c1; i++) {
            long v = s > 0 ? lrintf(x[i] / s) : 0;
            xq[i] = (int8_t)(v < -127 ? -127 : v > 127 ? 127 : v);
        }
    }
}

tp_status tp_qgemv_a8_ref(const tp_qmat *q, const float *x, float *y) {
    int8_t *xq = malloc((size_t)q->cols);
    float *xs = malloc((size_t)q->ngroups * sizeof *xs);
    if (!xq || !xs) {
        free(xq);
        free(xs);
        return TP_ERR_NOMEM;
    }
    tp_quantize_x8_ref(x, q->cols, q->g, xq, xs);
    for (int64_t r = 0; r < q->rows; r++) {
        double acc = 0;
        for (int64_t gi = 0; gi < q->ngroups; gi++) {
            size_t si = (size_t)(r * q->ngroups + gi);
            int64_t c0 = gi * q->g, c1 = c0 + q->g < q->cols ? c0 + q->g : q->cols;
            long dot = 0;
            double xsum = 0;
            for (int64_t c = c0; c < c1; c++) {
                dot += (long)(tp_qmat_code(q, r, c) - 8) * xq[c];
                xsum += x[c];
            }
            double sc = tp_f16_to_f32(q->scale[si]);
            acc += sc * xs[gi] * (double)dot + ((double)tp_f16_to_f32(q->offset[si]) + 8.0 * sc) * xsum;
        }
        y[r] = (float)acc;
    }
    free(xq);
    free(xs);
    return TP_OK;
}

tp_status tp_qgemm_a8_ref(const tp_qmat *q, const float *X, int64_t batch, float *Y) {
    for (int64_t b = 0; b < batch; b++)
        if (tp_qgemv_a8_ref(q, X + b * q->cols, Y + b * q->rows) != TP_OK) return TP_ERR_NOMEM;
    return TP_OK;
}

