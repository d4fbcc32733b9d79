/* Row kernels of the forward pass (exp-based reductions, activations) with an AVX2+FMA path
 * chosen at run time and a portable fallback, plus parallel loops on the process's worker pool.
 *
 * Why not OpenMP here: OpenBLAS (Debian's pthread build) keeps its own worker threads, and
 * libgomp's workers spin after every parallel region; on a 2-core machine the two pools fight
 * and sgemm throughput halves. The pool (tenpak.h, tp_pool_run) spins only microseconds before
 * its workers sleep, and hands out tasks one at a time. */
#ifndef TENPAK_KERNELS_CPU_VECMATH_CPU_H
#define TENPAK_KERNELS_CPU_VECMATH_CPU_H

#include <stddef.h>
#include <stdint.h>

/* max of x[0..n) (n >= 1) */
float tp_vmax(const float *x, size_t n);
/* sum of exp(x[i] - m), in double */
double tp_vsumexp(const float *x, size_t n, float m);
/* x[i] = exp(x[i] - m); returns the sum */
float tp_vexp_inplace(float *x, size_t n, float m);
/* x[i] = gelu_new(x[i]) = x / (1 + exp(-2 sqrt(2/pi) (x + 0.044715 x^3))) (== 0.5 x (1 + tanh(.))) */
void tp_vgelu_new(float *x, size_t n);
/* g[i] = silu(g[i]) * u[i] */
void tp_vswiglu(float *g, const float *u, size_t n);

/* dst[i] = the binary16 src[i] as fp32 (exact); F16C where the cpu backend's level (TENPAK_ISA) has
 * AVX2 and src is 2-byte aligned, else the portable conversion of unaligned bytes */
void tp_f16_to_f32_cpu(const void *src, float *dst, size_t n);

/* Runs fn(ctx, i, n) for i in [0, n) on the worker pool (tp_pool_run). */
void tp_par_run(int n, void (*fn)(void *ctx, int i, int n), void *ctx);
/* The pool's thread count. */
int tp_par_threads(void);

#endif
