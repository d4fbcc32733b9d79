/* Registry family: entropy coders (include/tenpak/entropy.h). What each op compares:
 *   rans_enc / ac_enc: the whole block (header, table, payload, checksum) written for the same
 *       parameters (32 lanes, scale auto or 15): the cpu coder must write the reference's stream
 *       byte for byte (exact; the buffer is tp_ent_bound(n) long, zero after the block).
 *   rans_dec / ac_dec: the decoded bytes of a block written by the reference encoder (exact).
 *   rans_dec/o0_chunks64k, o0_nib_chunks64k: many independent 64 KiB blocks, decoded bytes
 *       concatenated (exact); ref, cpu (worker pool over blocks), cuda (see below).
 *   rans_dec/o0_bytes, o0_nib, o0_bytes_s15, o0_nib_s15: also cpu-scalar and cpu-gather, the cpu
 *       decoder with its AVX-512 table lookups forced each way (scale 12: the AVX2 decoder's scalar
 *       loads or one vpgatherdd per vector; 13..15: two scalar levels or the per-slot gather;
 *       kernels/cpu/rans_cpu.c says which is the default), so both are verified, and timed side
 *       by side, on every AVX-512 host.
 * Inputs (never zeros; shape = bytes of input):
 *   o0_bytes: English-like text (letter frequencies, word lengths, punctuation), ~4.2 bits/byte;
 *   o0_nib:   INT4 codes of Gaussian weights quantised min/max per group of 128, two per byte,
 *             coded as 4-bit symbols;
 *   o0_vq8:   8-bit VQ indices with Zipf(1.1) codebook usage over 256 entries;
 *   o0_bytes_s15, o0_nib_s15: o0_bytes, o0_nib coded at scale_bits 15 (the others get scale 12
 *             from the auto choice; 13..15 take the cpu decoder's two-level or gather path, as
 *             wiki.test.raw does). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "tenpak/entropy.h"
#include "tenpak/registry.h"

typedef enum gen_kind { GEN_TEXT, GEN_NIB, GEN_VQ } gen_kind;
typedef struct eparam {
    tp_ent_coder coder;
    int sym_bits;
    gen_kind gen;
    int scale_bits; /* 0: auto */
} eparam;

typedef struct ectx {
    uint8_t *src, *enc;
    size_t n, enc_len;
    tp_ent_params p;
} ectx;

static void gen_text(uint8_t *d, size_t n, tp_rng *rng) {
    static const char letters[] = "etaoinshrdlcumwfgypbvkjxqz";
    static const double w[] = {12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8,
                               2.4, 2.4, 2.2, 2.0, 2.0, 1.9, 1.5, 1.0, 0.8, 0.15, 0.15, 0.1, 0.07};
    double cdf[26], t = 0;
    for (int i = 0; i < 26; i++) cdf[i] = (t += w[i]);
    size_t i = 0;
    int sentence_start = 1;
    while (i < n) {
        int len = 1 + (int)tp_rng_below(rng, 4) + (int)tp_rng_below(rng, 5);
        for (int k = 0; k < len && i < n; k++) {
            double u = tp_rng_uniform(rng) * t;
            int c = 0;
            while (c < 25 && u >= cdf[c]) c++;
            char ch = letters[c];
            if (k == 0 && sentence_start) ch = (char)(ch - 'a' + 'A');
            d[i++] = (uint8_t)ch;
        }
        sentence_start = 0;
        if (i >= n) break;
        uint32_t r = tp_rng_below(rng, 100);
        if (r < 6) {
            d[i++] = '.';
            sentence_start = 1;
        } else if (r < 10) d[i++] = ',';
        else if (r < 11) {
            d[i++] = (uint8_t)('0' + tp_rng_below(rng, 10));
        }
        if (i < n) d[i++] = r == 99 ? '\n' : ' ';
    }
}

static void gen_nib(uint8_t *d, size_t n, tp_rng *rng) {
    float w[128];
    uint8_t codes[128];
    for (size_t i = 0; i < 2 * n; i += 128) {
        float lo = INFINITY, hi = -INFINITY;
        for (int k = 0; k < 128; k++) {
            w[k] = tp_rng_normal(rng);
            if (tp_rng_below(rng, 256) == 0) w[k] *= 6.0f;
            lo = fminf(lo, w[k]);
            hi = fmaxf(hi, w[k]);
        }
        for (int k = 0; k < 128; k++) codes[k] = (uint8_t)lrintf((w[k] - lo) / (hi - lo) * 15.0f);
        for (int k = 0; k < 128 && i + (size_t)k < 2 * n; k += 2) d[(i + (size_t)k) / 2] = (uint8_t)(codes[k] | codes[k + 1] << 4);
    }
}

static void gen_vq(uint8_t *d, size_t n, tp_rng *rng) {
    double cdf[256], t = 0;
    uint8_t perm[256];
    for (int i = 0; i < 256; i++) {
        cdf[i] = (t += pow(i + 1.0, -1.1));
        perm[i] = (uint8_t)i;
    }
    for (int i = 255; i > 0; i--) { /* which codebook entries are popular is arbitrary */
        int j = (int)tp_rng_below(rng, (uint32_t)i + 1);
        uint8_t s = perm[i];
        perm[i] = perm[j];
        perm[j] = s;
    }
    for (size_t i = 0; i < n; i++) {
        double u = tp_rng_uniform(rng) * t;
        int lo = 0, hi = 255;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (u < cdf[mid]) hi = mid;
            else lo = mid + 1;
        }
        d[i] = perm[lo];
    }
}

static tp_status esetup(tp_case *c, tp_rng *rng) {
    const eparam *ep = c->op->param;
    const size_t n = (size_t)c->shape.d[0];
    ectx *x = calloc(1, sizeof *x);
    if (!x) return TP_ERR_NOMEM;
    c->ctx = x;
    x->n = n;
    x->src = tp_alloc(n ? n : 1);
    x->enc = tp_alloc(tp_ent_bound(n));
    if (!x->src || !x->enc) return TP_ERR_NOMEM;
    if (ep->gen == GEN_TEXT) gen_text(x->src, n, rng);
    else if (ep->gen == GEN_NIB) gen_nib(x->src, n, rng);
    else gen_vq(x->src, n, rng);
    tp_ent_params_default(&x->p, ep->coder);
    x->p.sym_bits = ep->sym_bits;
    x->p.scale_bits = ep->scale_bits;
    tp_err e;
    if (tp_ent_encode_ref(x->src, n, &x->p, x->enc, tp_ent_bound(n), &x->enc_len, &e) != TP_OK)
        return TP_ERR_INTERNAL;
    const int is_enc = strstr(c->op->name, "_enc") != NULL;
    c->out_bytes = is_enc ? tp_ent_bound(n) : n;
    c->out_count = c->out_bytes;
    return TP_OK;
}

static void eteardown(tp_case *c) {
    ectx *x = c->ctx;
    if (!x) return;
    tp_free(x->src);
    tp_free(x->enc);
    free(x);
}

static void enc_into(const tp_case *c, void *out, int cpu) {
    const ectx *x = c->ctx;
    size_t len = 0;
    tp_err e;
    tp_status st = (cpu ? tp_ent_encode_cpu : tp_ent_encode_ref)(x->src, x->n, &x->p, out, c->out_bytes, &len, &e);
    if (st != TP_OK) len = 0;
    memset((uint8_t *)out + len, 0, c->out_bytes - len);
}
static void dec_into(const tp_case *c, void *out, int cpu) {
    const ectx *x = c->ctx;
    size_t n = 0;
    tp_err e;
    tp_status st = (cpu ? tp_ent_decode_cpu : tp_ent_decode_ref)(x->enc, x->enc_len, out, c->out_bytes, &n, &e);
    if (st != TP_OK && c->out_bytes) memset(out, 0xEE, c->out_bytes); /* never equal to a success */
}
static tp_status enc_ref(const tp_case *c, void *out) { enc_into(c, out, 0); return TP_OK; }
static tp_status dec_ref(const tp_case *c, void *out) { dec_into(c, out, 0); return TP_OK; }
static tp_status enc_ref_run(const tp_case *c, void *s, void *out) { (void)s; enc_into(c, out, 0); return TP_OK; }
static tp_status enc_cpu_run(const tp_case *c, void *s, void *out) { (void)s; enc_into(c, out, 1); return TP_OK; }
static tp_status dec_ref_run(const tp_case *c, void *s, void *out) { (void)s; dec_into(c, out, 0); return TP_OK; }
static tp_status dec_cpu_run(const tp_case *c, void *s, void *out) { (void)s; dec_into(c, out, 1); return TP_OK; }
/* the cpu decoder with its AVX-512 lookups forced, then put back */
static void dec_lookup_into(const tp_case *c, void *out, tp_rans_lookup l) {
    const tp_rans_lookup saved = tp_ent_rans_lookup();
    tp_ent_set_rans_lookup(l);
    dec_into(c, out, 1);
    tp_ent_set_rans_lookup(saved);
}
static tp_status dec_scalar_run(const tp_case *c, void *s, void *out) {
    (void)s;
    dec_lookup_into(c, out, TP_RANS_LOOKUP_SCALAR);
    return TP_OK;
}
static tp_status dec_gather_run(const tp_case *c, void *s, void *out) {
    (void)s;
    dec_lookup_into(c, out, TP_RANS_LOOKUP_GATHER);
    return TP_OK;
}
static int have_avx512(char *why, size_t n) {
    if (tp_cpu_best_isa() >= TP_ISA_AVX512) return 1;
    snprintf(why, n, "no AVX-512 (the lookup choice is the AVX-512 decoder's)");
    return 0;
}

/* Throughput is counted in uncompressed bytes (what the user sees as MB/s), for both directions. */
static double ebytes(const tp_shape *s) { return (double)s->d[0]; }

static const tp_shape verify_1d[] = {TP_SHAPE1(1), TP_SHAPE1(3), TP_SHAPE1(17), TP_SHAPE1(200),
                                     TP_SHAPE1(4097), TP_SHAPE1(65539), TP_SHAPE1(1000003), TP_SHAPE_END};
static const tp_shape bench_1d[] = {TP_SHAPE1(1048576), TP_SHAPE1(16777216), TP_SHAPE_END};

#define ENT_OPS(OP, ID, CODER, SB, GEN, SCALE, VARIANT)                                             \
    static const eparam param_##OP##_##ID = {CODER, SB, GEN, SCALE};                                 \
    static const tp_op op_##OP##_enc_##ID = {                                                        \
        .name = #OP "_enc", .variant = VARIANT, .out_type = TP_OUT_BYTES, .cmp = TP_CMP_EXACT,       \
        .param = &param_##OP##_##ID, .setup = esetup, .teardown = eteardown, .reference = enc_ref,  \
        .bytes = ebytes, .items = ebytes, .verify_shapes = verify_1d, .bench_shapes = bench_1d};     \
    static const tp_op op_##OP##_dec_##ID = {                                                        \
        .name = #OP "_dec", .variant = VARIANT, .out_type = TP_OUT_BYTES, .cmp = TP_CMP_EXACT,       \
        .param = &param_##OP##_##ID, .setup = esetup, .teardown = eteardown, .reference = dec_ref,  \
        .bytes = ebytes, .items = ebytes, .verify_shapes = verify_1d, .bench_shapes = bench_1d};

/* rANS dispatches on the ISA (AVX-512 for scale_bits 13..15, AVX2, portable); the range coder has
 * one path */
#define ENT_KERNELS(OP, ID, FLAGS)                                                                  \
    {.op = &op_##OP##_enc_##ID, .backend = "ref", .run = enc_ref_run},                               \
    {.op = &op_##OP##_enc_##ID, .backend = "cpu", .run = enc_cpu_run, .flags = FLAGS},               \
    {.op = &op_##OP##_dec_##ID, .backend = "ref", .run = dec_ref_run},                               \
    {.op = &op_##OP##_dec_##ID, .backend = "cpu", .run = dec_cpu_run, .flags = FLAGS},
/* rans_dec at scale 13..15 with each AVX-512 lookup forced (the AVX-512 hosts only) */
#define LOOKUP_KERNELS(ID)                                                                          \
    {.op = &op_rans_dec_##ID, .backend = "cpu-scalar", .run = dec_scalar_run, .available = have_avx512, \
     .flags = TP_K_ISA | TP_K_AVX512},                                                               \
    {.op = &op_rans_dec_##ID, .backend = "cpu-gather", .run = dec_gather_run, .available = have_avx512, \
     .flags = TP_K_ISA | TP_K_AVX512},

ENT_OPS(rans, text, TP_ENT_RANS, 8, GEN_TEXT, 0, "o0_bytes")
ENT_OPS(rans, nib, TP_ENT_RANS, 4, GEN_NIB, 0, "o0_nib")
ENT_OPS(rans, vq, TP_ENT_RANS, 8, GEN_VQ, 0, "o0_vq8")
ENT_OPS(rans, text15, TP_ENT_RANS, 8, GEN_TEXT, 15, "o0_bytes_s15")
ENT_OPS(rans, nib15, TP_ENT_RANS, 4, GEN_NIB, 15, "o0_nib_s15")
ENT_OPS(ac, text, TP_ENT_AC, 8, GEN_TEXT, 0, "o0_bytes")
ENT_OPS(ac, nib, TP_ENT_AC, 4, GEN_NIB, 0, "o0_nib")

/* ---- many independent blocks: rans_dec/o0_chunks64k, rans_dec/o0_nib_chunks64k ----
 * The n input bytes (o0_bytes' text, or o0_nib's INT4 codes as 4-bit symbols) cut into 64 KiB
 * chunks (the last one short), each encoded as its own standard block by the cpu encoder (32
 * lanes, scale auto); the output is the concatenation of the decoded blocks (exact).
 *   ref:  the reference decoder, block after block;
 *   cpu:  the cpu decoder, one block per task of the worker pool;
 *   cuda: kernels/cuda/rans.cu, one warp per block (the blocks' XXH64 checked on the host in fetch);
 *   cuda-pf: the same with payload lines prefetched into L1 ahead of the decode.
 * Bytes counted: decoded output (the figure is GB/s of decoded output); the payload read
 * is ~0.5x that for text (kernels/cuda/NOTES.md). */
#define CHUNK_BYTES ((size_t)65536)
typedef struct cparam {
    int sym_bits;
    gen_kind gen;
} cparam;
typedef struct cctx {
    uint8_t *src, *enc; /* input; the blocks, block i at enc[off[i] .. off[i + 1]) */
    size_t n, nblk, *off;
} cctx;

/* one pool task per block: encode block i into its slot enc[i * bound ..) */
typedef struct cencjob {
    cctx *x;
    const cparam *cp;
    size_t *len;
    int bad; /* set by a task whose block failed to encode */
} cencjob;
static void cenc_task(void *vc, int i, int nt) {
    cencjob *j = vc;
    const cctx *x = j->x;
    const size_t bound = tp_ent_bound(CHUNK_BYTES), a = (size_t)i * CHUNK_BYTES;
    const size_t m = x->n - a < CHUNK_BYTES ? x->n - a : CHUNK_BYTES;
    tp_ent_params p;
    tp_err e;
    (void)nt;
    tp_ent_params_default(&p, TP_ENT_RANS);
    p.sym_bits = j->cp->sym_bits;
    if (tp_ent_encode_cpu(x->src + a, m, &p, x->enc + (size_t)i * bound, bound, &j->len[i], &e) != TP_OK)
        __atomic_store_n(&j->bad, 1, __ATOMIC_RELAXED);
}

static tp_status csetup(tp_case *c, tp_rng *rng) {
    const cparam *cp = c->op->param;
    const size_t n = (size_t)c->shape.d[0], bound = tp_ent_bound(CHUNK_BYTES);
    cctx *x = calloc(1, sizeof *x);
    if (!x) return TP_ERR_NOMEM;
    c->ctx = x;
    x->n = n;
    x->nblk = (n + CHUNK_BYTES - 1) / CHUNK_BYTES;
    x->src = tp_alloc(n ? n : 1);
    x->enc = tp_alloc(x->nblk * bound + 1);
    x->off = calloc(x->nblk + 1, sizeof *x->off);
    size_t *len = calloc(x->nblk + 1, sizeof *len);
    if (!x->src || !x->enc || !x->off || !len) {
        free(len);
        return TP_ERR_NOMEM;
    }
    if (cp->gen == GEN_NIB) gen_nib(x->src, n, rng);
    else gen_text(x->src, n, rng);
    cencjob j = {x, cp, len, 0};
    if (x->nblk > 4) tp_pool_run((int)x->nblk, cenc_task, &j);
    else
        for (size_t i = 0; i < x->nblk; i++) cenc_task(&j, (int)i, (int)x->nblk);
    for (size_t i = 0; i < x->nblk; i++) { /* close the gaps: off[i] <= i * bound */
        memmove(x->enc + x->off[i], x->enc + i * bound, len[i]);
        x->off[i + 1] = x->off[i] + len[i];
    }
    free(len);
    if (j.bad) return TP_ERR_INTERNAL;
    c->out_bytes = n;
    c->out_count = n;
    return TP_OK;
}

static void cteardown(tp_case *c) {
    cctx *x = c->ctx;
    if (!x) return;
    tp_free(x->src);
    tp_free(x->enc);
    free(x->off);
    free(x);
}

typedef struct cdecjob {
    const cctx *x;
    uint8_t *o;
    int cpu;
} cdecjob;
static void cdec_task(void *vc, int i, int nt) {
    const cdecjob *j = vc;
    const cctx *x = j->x;
    const size_t a = (size_t)i * CHUNK_BYTES, m = x->n - a < CHUNK_BYTES ? x->n - a : CHUNK_BYTES;
    size_t got = 0;
    tp_err e;
    (void)nt;
    tp_status st = (j->cpu ? tp_ent_decode_cpu : tp_ent_decode_ref)(x->enc + x->off[i], x->off[i + 1] - x->off[i],
                                                                    j->o + a, m, &got, &e);
    if (st != TP_OK || got != m) memset(j->o + a, 0xEE, m); /* never equal to a success */
}
/* cpu: one pool task per block; ref: the blocks in order on this thread */
static void cdec_into(const tp_case *c, void *out, int cpu) {
    const cctx *x = c->ctx;
    cdecjob j = {x, out, cpu};
    if (cpu) tp_pool_run((int)x->nblk, cdec_task, &j);
    else
        for (size_t i = 0; i < x->nblk; i++) cdec_task(&j, (int)i, (int)x->nblk);
}
static tp_status cdec_ref(const tp_case *c, void *out) { cdec_into(c, out, 0); return TP_OK; }
static tp_status cdec_ref_run(const tp_case *c, void *s, void *out) { (void)s; cdec_into(c, out, 0); return TP_OK; }
static tp_status cdec_cpu_run(const tp_case *c, void *s, void *out) { (void)s; cdec_into(c, out, 1); return TP_OK; }

static const tp_shape verify_chunks[] = {TP_SHAPE1(1), TP_SHAPE1(17), TP_SHAPE1(65536), TP_SHAPE1(65539),
                                         TP_SHAPE1(200003), TP_SHAPE1(1000003), TP_SHAPE_END};
static const tp_shape bench_chunks[] = {TP_SHAPE1(16777216), TP_SHAPE1(268435456), TP_SHAPE_END};
static const cparam cparam_text = {8, GEN_TEXT}, cparam_nib = {4, GEN_NIB};
#define CHUNK_OP(ID, VARIANT, PARAM)                                                                 \
    static const tp_op ID = {.name = "rans_dec", .variant = VARIANT, .out_type = TP_OUT_BYTES,       \
                             .cmp = TP_CMP_EXACT, .param = &PARAM, .setup = csetup,                  \
                             .teardown = cteardown, .reference = cdec_ref, .bytes = ebytes,          \
                             .items = ebytes, .verify_shapes = verify_chunks,                        \
                             .bench_shapes = bench_chunks};
CHUNK_OP(op_rans_dec_chunks, "o0_chunks64k", cparam_text)
CHUNK_OP(op_rans_dec_nib_chunks, "o0_nib_chunks64k", cparam_nib)

#ifdef TENPAK_HAVE_CUDA
#include "kernels/cuda/tp_cuda.h"
#include "kernels/cuda/tp_cuda_rans.h"
static void *cdec_cuda_prepare(const tp_case *c) {
    const cctx *x = c->ctx;
    return tp_cuda_rans_prepare(x->enc, x->off, x->nblk, x->n, 0);
}
static void *cdec_cuda_pf_prepare(const tp_case *c) {
    const cctx *x = c->ctx;
    return tp_cuda_rans_prepare(x->enc, x->off, x->nblk, x->n, 1);
}
/* The device decode does not check the blocks' XXH64: done here, after the copy back. */
static void cdec_cuda_fetch(const tp_case *c, void *state, void *out) {
    const cctx *x = c->ctx;
    tp_cuda_rans_fetch(c, state, out);
    for (size_t i = 0; i < x->nblk && !tp_cuda_rans_failed(state); i++) {
        tp_ent_header h;
        tp_err e;
        const uint8_t *o = (const uint8_t *)out + i * CHUNK_BYTES;
        if (tp_ent_parse_header(x->enc + x->off[i], x->off[i + 1] - x->off[i], &h, &e) != TP_OK ||
            XXH64(o, (size_t)h.n, 0) != h.checksum) {
            fprintf(stderr, "cuda rans: block %zu: decoded data does not match its checksum\n", i);
            memset(out, 0xEE, c->out_bytes);
            break;
        }
    }
}
#define CHUNK_CUDA_KERNEL1(OP, BACKEND, PREP)                                                        \
    {.op = &OP, .backend = BACKEND, .run = tp_cuda_rans_run, .available = tp_cuda_available,         \
     .flags = TP_K_DEVICE, .prepare = PREP, .sync = tp_cuda_sync, .fetch = cdec_cuda_fetch,         \
     .release = tp_cuda_rans_release},
/* cuda-pf: the same kernel with L1 prefetch of the payload ahead (compared in the same run) */
#define CHUNK_CUDA_KERNEL(OP)                                                                        \
    CHUNK_CUDA_KERNEL1(OP, "cuda", cdec_cuda_prepare) CHUNK_CUDA_KERNEL1(OP, "cuda-pf", cdec_cuda_pf_prepare)
#else
#define CHUNK_CUDA_KERNEL(OP)
#endif
#define CHUNK_KERNELS(OP)                                                                            \
    {.op = &OP, .backend = "ref", .run = cdec_ref_run},                                              \
    {.op = &OP, .backend = "cpu", .run = cdec_cpu_run, .flags = TP_K_ISA | TP_K_AVX512},             \
    CHUNK_CUDA_KERNEL(OP)

const tp_kernel tp_kernels_entropy[] = {
    ENT_KERNELS(rans, text, TP_K_ISA | TP_K_AVX512)
    LOOKUP_KERNELS(text)
    ENT_KERNELS(rans, nib, TP_K_ISA | TP_K_AVX512)
    LOOKUP_KERNELS(nib)
    ENT_KERNELS(rans, vq, TP_K_ISA | TP_K_AVX512)
    ENT_KERNELS(rans, text15, TP_K_ISA | TP_K_AVX512)
    LOOKUP_KERNELS(text15)
    ENT_KERNELS(rans, nib15, TP_K_ISA | TP_K_AVX512)
    LOOKUP_KERNELS(nib15)
    ENT_KERNELS(ac, text, 0)
    ENT_KERNELS(ac, nib, 0)
    CHUNK_KERNELS(op_rans_dec_chunks)
    CHUNK_KERNELS(op_rans_dec_nib_chunks)
    {0}};
