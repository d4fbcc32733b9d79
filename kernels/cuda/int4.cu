/* The INT4 family on the GPU: dequantise (exact), fused dequant-GEMV and dequant-GEMM for
 * int4 (g8..g128), int4r2 and nf4, in the layout of include/tenpak/quant.h (read as stored:
 * no repacking at prepare).
 *
 * Kernels (kernels/cuda/NOTES.md has the numbers):
 *   deq_generic / gemv_generic / gemm_generic : any shape, one element at a time (small and odd
 *       verify shapes);
 *   deq_fast    : cols % 32 == 0; one thread decodes 32 columns (16 bytes of codes) exactly;
 *   gemv_simt   : cols % 32 == 0, batch 1, CUDA cores: a warp owns 4 rows, a lane 16-byte
 *       chunks of codes (double-buffered). int4 uses the factored form
 *       y = sum_groups s * sum(q x) + o * sum(x), with the codes turned into floats by the
 *       exponent trick (0x4B000000 | nibble bits) - 2^23, which leaves q * 16^k: the
 *       activations are pre-scaled by 16^-k (exact) once per chunk and reused for the 4 rows;
 *   gemm_simt   : cols % 32 == 0, any batch, CUDA cores: a warp decodes 2 rows x 32 columns
 *       exactly once and applies them to 4 batch columns;
 *   qmm_tc      : int4 with g in {32, 64, 128}, cols % g == 0, fp16 activations (the _f16a
 *       variants), any batch: tensor cores (mma.sync m16n8k16, fp16 x fp16 -> fp32). The A
 *       operand is the raw codes q (0..15, exact in fp16, made with two LOP3 and one HFMA2
 *       per pair), B the activations, so every product q*x is exact and the sum of one group
 *       is accumulated in fp32; per group y += s * sum(q x) + o * sum(x), sum(x) from a second
 *       mma with an all-ones A (it lands in the accumulator layout, no shuffles). The k order
 *       inside a group is permuted (same permutation for A and B) so each thread decodes the
 *       16-byte chunk it loaded. A block of 4 warps owns 16 rows and splits the groups of a row
 *       among its warps (GEMV needs the parallelism), reducing through shared memory.
 *
 * Files: int4_args.cuh (the kernels' arguments, the element-by-element definition),
 * int4_simt.cuh (deq_*, gemv_simt, gemm_simt, gemm_generic), int4_tc.cuh (qmm_tc, qmm_async);
 * this file: device state, the launch-configuration tables of the tensor-core kernels (letter and
 * name, TENPAK_CUDA_GEMV_CFG / _GEMM_CFG / _V3_CFG), dispatch, registry glue.
 */
#include <cuda_fp16.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/int4_simt.cuh"
#include "kernels/cuda/int4_tc.cuh"

/* ---------------------------------------------------------------------------------------------
 * State, dispatch, registry glue
 * ------------------------------------------------------------------------------------------- */
enum { OP_DEQ = 0, OP_GEMV = 1, OP_GEMM = 2 };

struct q_state {
    tp_cu_state base;
    int op, kind, g, f16a, allow_tc, batch;
    int ncopy, next;
    QArgs args[8]; /* one per rotated copy of the weights */
    void *blob[8];
    void *X;  /* batch x cols, fp32 or fp16 */
    float *Y; /* output: rows x cols (dequant) or batch x rows */
    size_t out_count;
};

/* The packed arrays of q on the device, each 256-byte aligned inside one allocation: copy c of
 * the state's rotation (s->blob[c], s->args[c]). */
static size_t q_array_sizes(const tp_qmat *q, size_t sz[5]) {
    const size_t nsc = (size_t)(q->rows * q->ngroups);
    sz[0] = (size_t)(q->rows * q->code_stride);
    sz[1] = nsc * 2;
    sz[2] = q->offset ? nsc * 2 : 0;
    sz[3] = q->rcodes ? (size_t)(q->rows * q->rcode_stride) : 0;
    sz[4] = q->rscale ? nsc * 2 : 0;
    size_t total = 0;
    for (int i = 0; i < 5; i++) total += (sz[i] + 255) & ~(size_t)255;
    return total;
}
static size_t q_device_bytes(const tp_qmat *q) {
    size_t sz[5];
    return q_array_sizes(q, sz);
}
static void upload_copy(q_state *s, const tp_qmat *q, int c) {
    size_t sz[5];
    const size_t total = q_array_sizes(q, sz);
    const void *src[5] = {q->codes, q->scale, q->offset, q->rcodes, q->rscale};
    TP_CU(&s->base, cudaMemcpyToSymbol(c_nf4, TP_NF4_LEVELS, sizeof(float) * 16));
    TP_CU(&s->base, cudaMalloc(&s->blob[c], total));
    if (s->base.failed) return;
    char *b = (char *)s->blob[c];
    const void *at[5];
    size_t off = 0;
    for (int i = 0; i < 5; i++) {
        at[i] = sz[i] ? b + off : NULL;
        if (sz[i]) TP_CU(&s->base, cudaMemcpy(b + off, src[i], sz[i], cudaMemcpyHostToDevice));
        off += (sz[i] + 255) & ~(size_t)255;
    }
    QArgs &a = s->args[c];
    a.codes = (const uint8_t *)at[0];
    a.scale = (const uint16_t *)at[1];
    a.offset = (const uint16_t *)at[2];
    a.rcodes = (const uint8_t *)at[3];
    a.rscale = (const uint16_t *)at[4];
    a.rows = q->rows;
    a.cols = q->cols;
    a.ngroups = q->ngroups;
    a.cstride = q->code_stride;
    a.rstride = q->rcode_stride;
    a.g = q->g;
}

extern "C" void *tp_cuda_q_prepare(const tp_qmat *q, const float *X, int64_t batch, const char *op, int f16a,
                                   int allow_tc) {
    q_state *s = (q_state *)calloc(1, sizeof *s);
    if (!s) return NULL;
    s->op = !strcmp(op, "dequant") ? OP_DEQ : !strcmp(op, "gemv") ? OP_GEMV : OP_GEMM;
    s->kind = q->kind;
    s->g = q->g;
    s->f16a = f16a;
    s->allow_tc = allow_tc;
    s->batch = (int)batch;
    s->ncopy = s->op == OP_DEQ ? 1 : tp_cu_rotation(q_device_bytes(q));
    for (int c = 0; c < s->ncopy && !s->base.failed; c++) upload_copy(s, q, c);
    if (s->op != OP_DEQ) {
        size_t n = (size_t)(batch * q->cols);
        if (f16a) {
            uint16_t *xh = (uint16_t *)malloc(n * 2 + 2);
            if (!xh) s->base.failed = 1;
            else {
                for (size_t i = 0; i < n; i++) xh[i] = tp_f32_to_f16(X[i]); /* exact: f16a inputs */
                TP_CU(&s->base, cudaMalloc(&s->X, n * 2 + 16));
                if (!s->base.failed) TP_CU(&s->base, cudaMemcpy(s->X, xh, n * 2, cudaMemcpyHostToDevice));
                free(xh);
            }
        } else {
            TP_CU(&s->base, cudaMalloc(&s->X, n * 4 + 16));
            if (!s->base.failed) TP_CU(&s->base, cudaMemcpy(s->X, X, n * 4, cudaMemcpyHostToDevice));
        }
    }
    s->out_count = s->op == OP_DEQ ? (size_t)(q->rows * q->cols) : (size_t)(batch * q->rows);
    TP_CU(&s->base, cudaMalloc((void **)&s->Y, s->out_count * 4 + 16));
    if (!s->base.failed) TP_CU(&s->base, cudaMemset(s->Y, 0xff, s->out_count * 4)); /* NaN poison */
    return s;
}

static int grid_for(long long work, int threads) {
    long long b = (work + threads - 1) / threads;
    long long cap = (long long)tp_cu_sm_count() * 32;
    return (int)(b < 1 ? 1 : b > cap ? cap : b);
}

/* TENPAK_CUDA_TC_MT=1: one m-tile per warp for batch 9..16 too (an experiment switch; see NOTES.md) */
static int tc_mt1(void) {
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("TENPAK_CUDA_TC_MT");
        v = e && atoi(e) == 1;
    }
    return v;
}

/* ---------------------------------------------------------------------------------------------
 * Launch configurations of the tensor-core kernels, as tables: each entry has the letter that
 * TENPAK_CUDA_GEMV_CFG / TENPAK_CUDA_GEMM_CFG / TENPAK_CUDA_V3_CFG took (and reports/gpu records)
 * and a name saying what it is: mt<m-tiles per warp>_w<warps per block>_d<register stages, or the
 * ring depth of qmm_async>, then _xpf where the activations are prefetched with the codes (qmm_tc's
 * XPF) and _minb<N> where __launch_bounds__ asks for N blocks per SM. An env var takes a name or a
 * letter (its first character, as before: an unknown letter picks the table's fallback). The
 * tables are templates over the group size so each entry is one instantiation, the same for the
 * same letter as the switch the tables replaced; letters and names are alike for every GG.
 * ------------------------------------------------------------------------------------------- */
typedef cudaError_t (*qtc_launch_fn)(const QArgs &a, const uint16_t *X, int batch, int nslices, float *Y);
typedef int (*async_launch_fn)(const QArgs &a, const uint16_t *X, int batch, int nslices, float *Y);

/* qmm_tc<GG, NT, MT, KS, MINB, XP, D> over row tiles of 16*MT rows (x nslices batch slices),
 * launched with PDL (tp_cu_launch) */
template <int GG, int NT, int MT, int KS, int MINB, int XP, int D, bool L3 = false>
static cudaError_t qtc_launch(const QArgs &a, const uint16_t *X, int batch, int nslices, float *Y) {
    return tp_cu_launch(1, qmm_tc<GG, NT, MT, KS, MINB, XP, D, L3>,
                        dim3((unsigned)((a.rows + 16 * (MT) - 1) / (16 * (MT)) * (nslices))), dim3(32 * (KS)), 0, a, X,
                        batch, nslices, Y);
}

struct QtcCfg {
    char letter;
    const char *name;
    qtc_launch_fn launch;
};
struct AsyncCfg { /* one TENPAK_CUDA_V3_CFG letter: the batch 1..8 and the batch 9..16 launch */
    char letter;
    const char *name;
    async_launch_fn launch1, launch2;
};

template <int GG>
struct QtcTables {
    static constexpr int MT2 = GG == 128 ? 2 : 1; /* m-tiles per warp when x is re-used (batch 9..16) */
    static const QtcCfg gemv[], gemm[];
    static const AsyncCfg v3[];
};

/* GEMV (batch 1..8, one n-tile; batch 1 goes to qmm_x1 where x1_default says so). Defaults: 'u'
 * for g128 ('k', 4 warps and 4 register stages, with the LOP3 decode: H100 run18 / run19, 15.7 vs
 * 16.3 us at 8192^2), 'o' for g64, 'e' for g32 (H200 run7/run8); an unknown letter
 * picks 'e'. g, h, i, l: 2 m-tiles per warp (32 rows a block): the all-ones sum(x) mma and the x
 * loads shared by two row tiles, two independent mma chains per warp (NOTES.md, v3); i..p: 3 or 4
 * register stages (2 or 3 k-blocks in flight per warp); q..t: deeper rings (5..7 k-blocks in
 * flight per warp), 2 or 4 warps a block; u..z: with the LOP3 decode. */
template <int GG>
const QtcCfg QtcTables<GG>::gemv[] = {
    {'a', "mt1_w8_d2_xpf", qtc_launch<GG, 1, 1, 8, 1, -1, 2>},
    {'b', "mt1_w4_d2_xpf", qtc_launch<GG, 1, 1, 4, 1, -1, 2>},
    {'c', "mt1_w4_d2_xpf_minb6", qtc_launch<GG, 1, 1, 4, 6, -1, 2>},
    {'d', "mt1_w8_d2_xpf_minb3", qtc_launch<GG, 1, 1, 8, 3, -1, 2>},
    {'e', "mt1_w4_d2", qtc_launch<GG, 1, 1, 4, 1, 0, 2>},
    {'f', "mt1_w8_d2", qtc_launch<GG, 1, 1, 8, 1, 0, 2>},
    {'g', "mt2_w4_d2", qtc_launch<GG, 1, 2, 4, 1, 0, 2>},
    {'h', "mt2_w8_d2", qtc_launch<GG, 1, 2, 8, 1, 0, 2>},
    {'i', "mt2_w8_d3", qtc_launch<GG, 1, 2, 8, 1, 0, 3>},
    {'j', "mt1_w8_d4", qtc_launch<GG, 1, 1, 8, 1, 0, 4>},
    {'k', "mt1_w4_d4", qtc_launch<GG, 1, 1, 4, 1, 0, 4>},
    {'l', "mt2_w4_d3", qtc_launch<GG, 1, 2, 4, 1, 0, 3>},
    {'m', "mt1_w8_d3", qtc_launch<GG, 1, 1, 8, 1, 0, 3>},
    {'n', "mt1_w16_d3", qtc_launch<GG, 1, 1, 16, 1, 0, 3>},
    {'o', "mt1_w4_d3", qtc_launch<GG, 1, 1, 4, 1, 0, 3>},
    {'p', "mt1_w8_d3_minb3", qtc_launch<GG, 1, 1, 8, 3, 0, 3>},
    {'q', "mt1_w4_d6", qtc_launch<GG, 1, 1, 4, 1, 0, 6>},
    {'r', "mt1_w4_d8", qtc_launch<GG, 1, 1, 4, 1, 0, 8>},
    {'s', "mt1_w2_d4", qtc_launch<GG, 1, 1, 2, 1, 0, 4>},
    {'t', "mt1_w2_d8", qtc_launch<GG, 1, 1, 2, 1, 0, 8>},
    {'u', "mt1_w4_d4_lop3", qtc_launch<GG, 1, 1, 4, 1, 0, 4, true>},
    {'v', "mt1_w4_d3_lop3", qtc_launch<GG, 1, 1, 4, 1, 0, 3, true>},
    {'w', "mt1_w4_d2_lop3", qtc_launch<GG, 1, 1, 4, 1, 0, 2, true>},
    {'x', "mt1_w8_d4_lop3", qtc_launch<GG, 1, 1, 8, 1, 0, 4, true>},
    {'y', "mt2_w4_d4_lop3", qtc_launch<GG, 1, 2, 4, 1, 0, 4, true>},
    {'z', "mt1_w4_d6_lop3", qtc_launch<GG, 1, 1, 4, 1, 0, 6, true>},
    {0, NULL, NULL},
};

/* GEMM batch 9..16 (two n-tiles) of g128 (the path with MT2 == 2; TENPAK_CUDA_TC_MT=1 and g32/g64
 * take mt1_w4_d2_xpf outside the table). 'k' is the default (H100 run22, verified 140/0 first:
 * 20.2 / 75.4 us at 8192^2 / 28672x8192 x16 against 'a' 22.0 / 79.1, the default until then, and 'h'
 * 21.0 / 79.4); the others are experiments: b = 4 m-tiles x 8 warps (x not prefetched), c = 2
 * m-tiles x 8 warps, d..i: 3, 4 or 6 register stages; j..m: a, h, d and c with the GEMV's LOP3
 * decode ('u'; j 24.5 / 89.0, l 27.4 / 100.6, m 27.4 / 88.4 in run22); n: k with 8 warps. An unknown
 * letter picks 'c'. */
template <int GG>
const QtcCfg QtcTables<GG>::gemm[] = {
    {'a', "mt2_w4_d2_xpf", qtc_launch<GG, 2, MT2, 4, 1, -1, 2>},
    {'b', "mt4_w8_d2", qtc_launch<GG, 2, 4, 8, 1, 0, 2>},
    {'c', "mt2_w8_d2_xpf", qtc_launch<GG, 2, 2, 8, 1, -1, 2>},
    {'d', "mt2_w4_d3", qtc_launch<GG, 2, 2, 4, 1, 0, 3>},
    {'e', "mt2_w8_d3", qtc_launch<GG, 2, 2, 8, 1, 0, 3>},
    {'f', "mt1_w8_d3", qtc_launch<GG, 2, 1, 8, 1, 0, 3>},
    {'g', "mt1_w4_d4", qtc_launch<GG, 2, 1, 4, 1, 0, 4>},
    {'h', "mt2_w4_d4", qtc_launch<GG, 2, 2, 4, 1, 0, 4>},
    {'i', "mt1_w4_d6", qtc_launch<GG, 2, 1, 4, 1, 0, 6>},
    {'j', "mt2_w4_d2_xpf_lop3", qtc_launch<GG, 2, MT2, 4, 1, -1, 2, true>},
    {'k', "mt2_w4_d4_lop3", qtc_launch<GG, 2, 2, 4, 1, 0, 4, true>},
    {'l', "mt2_w4_d3_lop3", qtc_launch<GG, 2, 2, 4, 1, 0, 3, true>},
    {'m', "mt2_w8_d2_xpf_lop3", qtc_launch<GG, 2, 2, 8, 1, -1, 2, true>},
    {'n', "mt2_w8_d4_lop3", qtc_launch<GG, 2, 2, 8, 1, 0, 4, true>},
    {0, NULL, NULL},
};

/* qmm_async (TENPAK_CUDA_V3=1), batch 1..8 + batch 9..16: d is the ring depth. 'a' is the
 * default, and an unknown letter picks it. */
template <int GG>
const AsyncCfg QtcTables<GG>::v3[] = {
    {'a', "mt1_w4_d6+mt2_w4_d4", launch_async<GG, 1, 1, 4, 6>, launch_async<GG, 2, 2, 4, 4>},
    {'b', "mt1_w4_d4+mt4_w4_d3", launch_async<GG, 1, 1, 4, 4>, launch_async<GG, 2, 4, 4, 3>},
    {'c', "mt1_w4_d8+mt1_w4_d6", launch_async<GG, 1, 1, 4, 8>, launch_async<GG, 2, 1, 4, 6>},
    {'d', "mt1_w8_d4+mt4_w8_d3", launch_async<GG, 1, 1, 8, 4>, launch_async<GG, 2, 4, 8, 3>},
    {0, NULL, NULL, NULL},
};

/* qmm_x1's dynamic shared memory: x as fp16 (cols * 2 bytes) and one fp32 sum per group */
static size_t x1_smem_bytes(const QArgs &a) { return (size_t)a.cols * 2 + (size_t)a.ngroups * 4; }
/* the most x1_smem_bytes that qmm_x1 is launched with (no opt-in attribute above the default 48 KB) */
#define X1_SMEM_MAX (48 * 1024)

/* blocks of qmm_x1<GG, KS, D, MINB, PERS> resident at once on the device for a's shared memory */
template <int GG, int KS, int D, int MINB, bool PERS>
static long long x1_slots(const QArgs &a) {
    const size_t smem = x1_smem_bytes(a);
    static size_t known_smem = 0;
    static int per_sm = 0;
    if (known_smem != smem) {
        if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, qmm_x1<GG, KS, D, MINB, PERS>, 32 * KS, smem) !=
                cudaSuccess ||
            per_sm < 1)
            per_sm = 1;
        known_smem = smem;
    }
    return (long long)per_sm * tp_cu_sm_count();
}
/* qmm_x1 (one activation row, x in shared memory: int4_tc.cuh) over row tiles of 16 rows, launched
 * with PDL */
template <int GG, int KS, int D, int MINB, bool PERS = false>
static cudaError_t x1_launch(const QArgs &a, const uint16_t *X, float *Y) {
    const size_t smem = x1_smem_bytes(a);
    long long grid = (a.rows + 15) / 16;
    if (PERS) { /* as many blocks as fit at once, at most one a tile */
        const long long slots = x1_slots<GG, KS, D, MINB, PERS>(a);
        if (grid > slots) grid = slots;
    }
    return tp_cu_launch(1, qmm_x1<GG, KS, D, MINB, PERS>, dim3((unsigned)grid), dim3(32 * KS), smem, a, X, Y);
}
typedef cudaError_t (*x1_launch_fn)(const QArgs &a, const uint16_t *X, float *Y);
struct X1Cfg {
    char letter;
    const char *name;
    x1_launch_fn launch;
};
/* TENPAK_CUDA_X1=<letter or name> picks one of these for batch 1 (an unknown letter: 'a');
 * w<warps a block>_d<register stages>, _minb<N>: __launch_bounds__ asks for N blocks an SM. */
template <int GG>
struct X1Table {
    static const X1Cfg cfg[];
};
template <int GG>
const X1Cfg X1Table<GG>::cfg[] = {
    {'a', "w4_d4", x1_launch<GG, 4, 4, 1>},
    {'b', "w4_d3", x1_launch<GG, 4, 3, 1>},
    {'c', "w4_d2", x1_launch<GG, 4, 2, 1>},
    {'d', "w8_d4", x1_launch<GG, 8, 4, 1>},
    {'e', "w8_d3", x1_launch<GG, 8, 3, 1>},
    {'f', "w8_d2", x1_launch<GG, 8, 2, 1>},
    {'g', "w4_d4_minb6", x1_launch<GG, 4, 4, 6>},
    {'h', "w8_d4_minb3", x1_launch<GG, 8, 4, 3>},
    {'i', "w2_d4", x1_launch<GG, 2, 4, 1>},
    {'j', "w4_d6", x1_launch<GG, 4, 6, 1>},
    {'k', "w8_d6", x1_launch<GG, 8, 6, 1>},
    {'l', "w4_d4_minb5", x1_launch<GG, 4, 4, 5>},
    {'m', "w4_d3_minb5", x1_launch<GG, 4, 3, 5>},
    {'n', "w8_d3_minb2", x1_launch<GG, 8, 3, 2>},
    {'o', "w4_d3_minb6", x1_launch<GG, 4, 3, 6>},
    {'p', "w4_d2_minb7", x1_launch<GG, 4, 2, 7>},
    {'q', "w4_d2_minb7_pers", x1_launch<GG, 4, 2, 7, true>},
    {'r', "w4_d3_minb6_pers", x1_launch<GG, 4, 3, 6, true>},
    {'s', "w4_d2_pers", x1_launch<GG, 4, 2, 1, true>},
    {'t', "w8_d2_pers", x1_launch<GG, 8, 2, 1, true>},
    {'u', "w4_d3_pers", x1_launch<GG, 4, 3, 1, true>},
    {'v', "w4_d4_minb5_pers", x1_launch<GG, 4, 4, 5, true>},
    {0, NULL, NULL},
};

/* the index of the entry with this letter, -1 if none */
template <typename T>
static int cfg_letter(const T *t, int letter) {
    for (int i = 0; t[i].name; i++)
        if (t[i].letter == letter) return i;
    return -1;
}

/* What env var selects in table t: the entry it names, else the one of its first character as a
 * letter, else the entry with letter `fallback`; -1 when the variable is unset or empty. */
template <typename T>
static int cfg_from_env(const T *t, const char *var, int fallback) {
    const char *e = getenv(var);
    if (!e || !*e) return -1;
    for (int i = 0; t[i].name; i++)
        if (!strcmp(e, t[i].name)) return i;
    const int i = cfg_letter(t, e[0]);
    return i >= 0 ? i : cfg_letter(t, fallback);
}

/* The selections, read once (letters and names are alike in every GG's table, so GG 128's serve). */
static int gemv_cfg(void) {
    static int v = -2;
    if (v == -2) v = cfg_from_env(QtcTables<128>::gemv, "TENPAK_CUDA_GEMV_CFG", 'e');
    return v; /* -1: the default of the group size (launch_kind_g) */
}
static int gemm_cfg(void) {
    static int v = -2;
    if (v == -2) {
        v = cfg_from_env(QtcTables<128>::gemm, "TENPAK_CUDA_GEMM_CFG", 'c');
        if (v < 0) v = cfg_letter(QtcTables<128>::gemm, 'k');
    }
    return v;
}

/* TENPAK_CUDA_X1: unset, the default below (x1_default); '0', qmm_tc for every batch-1 GEMV; a
 * letter or name of X1Table, that qmm_x1 configuration wherever x fits in shared memory. Returns
 * -1 (unset), -3 ('0') or the entry. */
static int x1_cfg(void) {
    static int v = -2;
    if (v == -2) {
        const char *e = getenv("TENPAK_CUDA_X1");
        v = !e || !*e ? -1 : e[0] == '0' ? -3 : cfg_from_env(X1Table<128>::cfg, "TENPAK_CUDA_X1", 'a');
    }
    return v;
}

/* The batch-1 default (H100, reports/gpu/run19; g128 8192^2 / 28672x8192, g64 / g32 8192^2, us):
 * g32 and g64: qmm_x1 't' (8 warps, 2 stages, persistent): 22.3 / 17.9 against qmm_tc's 31.9 / 23.0;
 * g128: qmm_x1 'q' (4 warps, 2 stages, 71 registers: 7 blocks an SM, persistent) when the row tiles
 * outnumber its resident blocks (28672x8192: 50.3 against 55.6), else qmm_tc 'u' (15.7 against
 * 'q' 24.5 at 8192^2: with fewer tiles than slots, 4-warp blocks of 2 stages leave the SMs short
 * of loads in flight). Returns the X1Table entry, or -1 for qmm_tc. */
template <int GG>
static int x1_default(const QArgs &a) {
    if (GG != 128) {
        static const int t = cfg_letter(X1Table<GG>::cfg, 't');
        return t;
    }
    static const int q = cfg_letter(X1Table<GG>::cfg, 'q');
    return (a.rows + 15) / 16 > x1_slots<GG, 4, 2, 7, true>(a) ? q : -1;
}

/* TENPAK_CUDA_V3=1: qmm_async instead of the register-pipelined qmm_tc (off by default: slower on
 * the H200, NOTES.md v3);
 * TENPAK_CUDA_V3_CFG=<letter or name>: another qmm_async configuration (the v3 table). */
static int v3_on(void) {
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("TENPAK_CUDA_V3");
        v = (e && *e ? e[0] : '0') != '0';
    }
    return v;
}
static int v3_cfg(void) {
    static int v = -2;
    if (v == -2) {
        v = cfg_from_env(QtcTables<128>::v3, "TENPAK_CUDA_V3_CFG", 'a');
        if (v < 0) v = cfg_letter(QtcTables<128>::v3, 'a');
    }
    return v;
}

/* qmm_async for batch <= 16; 0 when it does not apply (the caller falls back to qmm_tc) */
template <int G>
static int launch_v3(q_state *s, const QArgs &a) {
    const int batch = s->batch, tiles8 = (batch + 7) / 8;
    if (!v3_on() || tiles8 > 2 || (G == 128 && (a.ngroups & 1))) return 0;
    const uint16_t *X = (const uint16_t *)s->X;
    const AsyncCfg &c = QtcTables<G>::v3[v3_cfg()];
    return (tiles8 == 1 ? c.launch1 : c.launch2)(a, X, batch, 1, s->Y);
}

/* the default GEMV configuration of a group size */
template <int GG>
static int gemv_default(void) {
    static const int i = cfg_letter(QtcTables<GG>::gemv, GG == 128 ? 'u' : GG == 64 ? 'o' : 'e');
    return i;
}

template <int KIND, int G>
static void launch_kind_g(q_state *s, const QArgs &a) {
    const bool fast = (a.cols & 31) == 0;
    if (s->op == OP_DEQ) {
        if (fast) deq_fast<KIND, G><<<grid_for(a.rows * (a.cols >> 5), 256), 256>>>(a, s->Y);
        else deq_generic<KIND><<<grid_for(a.rows * a.cols, 256), 256>>>(a, s->Y);
        return;
    }
    const int batch = s->batch;
    if (KIND == TP_Q_INT4 && (G == 32 || G == 64 || G == 128) && s->f16a && s->allow_tc && a.cols % 128 == 0) {
        constexpr int GG = G == 32 || G == 64 || G == 128 ? G : 128;
        typedef QtcTables<GG> T;
        const int tiles8 = (batch + 7) / 8;
        const uint16_t *X = (const uint16_t *)s->X;
        if (launch_v3<GG>(s, a)) return;
        const int x1 = batch != 1 || x1_cfg() == -3 || x1_smem_bytes(a) > X1_SMEM_MAX ? -1
                       : x1_cfg() >= 0 ? x1_cfg()
                                       : x1_default<GG>(a);
        if (x1 >= 0) {
            TP_CU(&s->base, X1Table<GG>::cfg[x1].launch(a, X, s->Y));
        } else if (tiles8 == 1) {
            /* GEMV: occupancy decides (NOTES.md); TENPAK_CUDA_GEMV_CFG picks another for experiments */
            const int cfg = gemv_cfg() >= 0 ? gemv_cfg() : gemv_default<GG>();
            TP_CU(&s->base, T::gemv[cfg].launch(a, X, batch, 1, s->Y));
        } else if (tiles8 == 2 && (T::MT2 == 1 || tc_mt1())) {
            TP_CU(&s->base, (qtc_launch<GG, 2, 1, 4, 1, -1, 2>(a, X, batch, 1, s->Y)));
        } else if (tiles8 == 2) {
            /* TENPAK_CUDA_GEMM_CFG: the experiments of the gemm table, 'k' by default */
            TP_CU(&s->base, T::gemm[gemm_cfg()].launch(a, X, batch, 1, s->Y));
        } else {
            const int ns = (tiles8 + 3) / 4;
            TP_CU(&s->base, (qtc_launch<GG, 4, 1, 4, 1, -1, 2>(a, X, batch, ns, s->Y)));
        }
        return;
    }
    if (fast && batch == 1) {
        constexpr int R = KIND == TP_Q_INT4R2 ? 2 : 4;
        const unsigned blocks = (unsigned)((a.rows + 8 * R - 1) / (8 * R));
        if (s->f16a) TP_CU(&s->base, tp_cu_launch(2, gemv_simt<KIND, G, true>, dim3(blocks), dim3(256), 0, a, (const void *)s->X, s->Y));
        else TP_CU(&s->base, tp_cu_launch(2, gemv_simt<KIND, G, false>, dim3(blocks), dim3(256), 0, a, (const void *)s->X, s->Y));
    } else if (fast) {
        dim3 grid((unsigned)((batch + 3) / 4), (unsigned)((a.rows + 15) / 16));
        if (s->f16a) TP_CU(&s->base, tp_cu_launch(2, gemm_simt<KIND, G, true>, grid, dim3(256), 0, a, (const void *)s->X, batch, s->Y));
        else TP_CU(&s->base, tp_cu_launch(2, gemm_simt<KIND, G, false>, grid, dim3(256), 0, a, (const void *)s->X, batch, s->Y));
    } else {
        const long long warps = a.rows * batch;
        const unsigned blocks = (unsigned)((warps * 32 + 255) / 256);
        if (s->f16a) gemm_generic<KIND, true><<<blocks, 256>>>(a, s->X, batch, s->Y);
        else gemm_generic<KIND, false><<<blocks, 256>>>(a, s->X, batch, s->Y);
    }
}

template <int KIND>
static void launch_kind(q_state *s, const QArgs &a) {
    switch (a.g) {
    case 8: launch_kind_g<KIND, 8>(s, a); break;
    case 16: launch_kind_g<KIND, 16>(s, a); break;
    case 32: launch_kind_g<KIND, 32>(s, a); break;
    case 64: launch_kind_g<KIND, 64>(s, a); break;
    case 128: launch_kind_g<KIND, 128>(s, a); break;
    default:
        fprintf(stderr, "cuda: int4 group size %d not built\n", a.g);
        s->base.failed = 1;
    }
}

extern "C" tp_status tp_cuda_q_run(const tp_case *c, void *state, void *out) {
    (void)c;
    (void)out;
    q_state *s = (q_state *)state;
    if (!s || s->base.failed) return TP_OK;
    const QArgs &a = s->args[s->next];
    s->next = (s->next + 1) % s->ncopy;
    switch (s->kind) {
    case TP_Q_INT4: launch_kind<TP_Q_INT4>(s, a); break;
    case TP_Q_INT4R2: launch_kind<TP_Q_INT4R2>(s, a); break;
    default: launch_kind<TP_Q_NF4>(s, a); break;
    }
    TP_CU_LAUNCHED(&s->base);
    return TP_OK;
}

extern "C" void tp_cuda_q_fetch(const tp_case *c, void *state, void *out) {
    q_state *s = (q_state *)state;
    if (s && !s->base.failed) TP_CU(&s->base, cudaMemcpy(out, s->Y, s->out_count * 4, cudaMemcpyDeviceToHost));
    if (!s || s->base.failed) tp_cu_nan_fill((float *)out, c->out_count);
}

extern "C" void tp_cuda_q_release(void *state) {
    q_state *s = (q_state *)state;
    if (!s) return;
    for (int i = 0; i < s->ncopy; i++) cudaFree(s->blob[i]);
    cudaFree(s->X);
    cudaFree(s->Y);
    free(s);
}

/* ---------------------------------------------------------------------------------------------
 * A packed matrix resident on the device for the model (tp_cuda.h, tp_cuda_qdev_*): the same
 * launch choices as the registry's ops with fp16 activations (the _f16a variants: qmm_tc where it
 * applies, gemv_simt / gemm_simt / gemm_generic elsewhere), into the caller's buffers, on the
 * per-thread default stream.
 * ------------------------------------------------------------------------------------------- */
struct tp_cuda_qdev {
    q_state s;
    float *part;      /* column-slice partial products (slices x rows), allocated on first use */
    int part_slices;
};

/* Y[r] = sum over slices of P[s * rows + r], in slice order */
__global__ void slice_sum(const float *__restrict__ P, int slices, long long rows, float *__restrict__ Y) {
    for (long long r = blockIdx.x * (long long)blockDim.x + threadIdx.x; r < rows; r += (long long)gridDim.x * blockDim.x) {
        float t = 0.f;
        for (int q = 0; q < slices; q++) t += P[q * rows + r];
        Y[r] = t;
    }
}

/* Column slices for one-row products of narrow matrices (a model's decode step): qmm_tc gives a
 * block 16 rows, so a 256 x 2048 or 2048 x 2048 matrix occupies 16 or 128 blocks of a 132-SM GPU
 * and the product takes one block's latency through its whole row. Splitting the columns into S
 * slices (each a multiple of 128 columns, on group boundaries) gives S times the blocks; the
 * partial products are added in slice order (deterministic). 1 where it does not apply. */
static int qdev_slices(const tp_cuda_qdev *d, int batch) {
    const QArgs &a = d->s.args[0];
    if (batch != 1 || d->s.kind != TP_Q_INT4 || (a.g != 32 && a.g != 64 && a.g != 128) || a.cols % 128) return 1;
    const long long blocks = (a.rows + 15) / 16, want = 2LL * tp_cu_sm_count();
    int S = 1;
    while (blocks * S < want && (a.cols / (2 * S)) % 128 == 0 && a.cols / (2 * S) >= 512 && S < 16) S *= 2;
    return S;
}

/* W[ids[i]][c] for i < n, c < cols: the rows of an embedding, exact (deq_elem) */
template <int KIND>
__global__ void deq_rows(QArgs a, const int32_t *__restrict__ ids, float *__restrict__ X) {
    const long long r = ids[blockIdx.x];
    for (long long c = threadIdx.x; c < a.cols; c += blockDim.x) X[blockIdx.x * a.cols + c] = deq_elem<KIND>(a, r, c);
}

extern "C" tp_cuda_qdev *tp_cuda_qdev_upload(const tp_qmat *q) {
    tp_cuda_qdev *d = (tp_cuda_qdev *)calloc(1, sizeof *d);
    if (!d) return NULL;
    d->s.kind = q->kind;
    d->s.g = q->g;
    d->s.f16a = 1;
    d->s.allow_tc = 1;
    d->s.ncopy = 1;
    upload_copy(&d->s, q, 0);
    if (d->s.base.failed) { tp_cuda_qdev_free(d); return NULL; }
    return d;
}

static int qdev_launch(tp_cuda_qdev *d) {
    q_state *s = &d->s;
    switch (s->kind) {
    case TP_Q_INT4: launch_kind<TP_Q_INT4>(s, s->args[0]); break;
    case TP_Q_INT4R2: launch_kind<TP_Q_INT4R2>(s, s->args[0]); break;
    default: launch_kind<TP_Q_NF4>(s, s->args[0]); break;
    }
    TP_CU_LAUNCHED(&s->base);
    return !s->base.failed;
}

extern "C" int tp_cuda_qdev_mul(tp_cuda_qdev *d, const uint16_t *X16, int batch, float *Y) {
    q_state *s = &d->s;
    s->op = batch == 1 ? OP_GEMV : OP_GEMM;
    s->batch = batch;
    /* TENPAK_CUDA_QDEV_SLICES=auto turns the column slices on: measured slower in a decode step
     * (reports/gpu/run14: 535 vs 730 tok/s at TinyLlama's shapes), so off by default */
    static int sliced = -1;
    if (sliced < 0) sliced = getenv("TENPAK_CUDA_QDEV_SLICES") && !strcmp(getenv("TENPAK_CUDA_QDEV_SLICES"), "auto");
    const int S = sliced ? qdev_slices(d, batch) : 1;
    if (S == 1) {
        s->X = (void *)X16;
        s->Y = Y;
        return qdev_launch(d);
    }
    const QArgs whole = s->args[0];
    const long long cw = whole.cols / S;
    if (d->part_slices < S) {
        cudaFree(d->part);
        d->part = NULL;
        d->part_slices = 0;
        TP_CU(&s->base, cudaMalloc((void **)&d->part, (size_t)S * (size_t)whole.rows * 4));
        if (s->base.failed) return 0;
        d->part_slices = S;
    }
    for (int q = 0; q < S && !s->base.failed; q++) {
        QArgs a = whole;
        a.cols = cw;
        a.codes = whole.codes + q * cw / 2;
        a.scale = whole.scale + q * cw / whole.g;
        a.offset = whole.offset + q * cw / whole.g;
        s->X = (void *)(X16 + q * cw);
        s->Y = d->part + (size_t)q * whole.rows;
        launch_kind<TP_Q_INT4>(s, a);
        TP_CU_LAUNCHED(&s->base);
    }
    if (!s->base.failed) {
        slice_sum<<<grid_for(whole.rows, 256), 256>>>(d->part, S, whole.rows, Y);
        TP_CU_LAUNCHED(&s->base);
    }
    return !s->base.failed;
}

extern "C" int tp_cuda_qdev_dequant(tp_cuda_qdev *d, float *W) {
    d->s.op = OP_DEQ;
    d->s.Y = W;
    return qdev_launch(d);
}

extern "C" int tp_cuda_qdev_rows(tp_cuda_qdev *d, const int32_t *ids, int n, float *X) {
    q_state *s = &d->s;
    if (n <= 0) return !s->base.failed;
    switch (s->kind) {
    case TP_Q_INT4: deq_rows<TP_Q_INT4><<<n, 256>>>(s->args[0], ids, X); break;
    case TP_Q_INT4R2: deq_rows<TP_Q_INT4R2><<<n, 256>>>(s->args[0], ids, X); break;
    default: deq_rows<TP_Q_NF4><<<n, 256>>>(s->args[0], ids, X); break;
    }
    TP_CU_LAUNCHED(&s->base);
    return !s->base.failed;
}

extern "C" void tp_cuda_qdev_free(tp_cuda_qdev *d) {
    if (!d) return;
    cudaFree(d->part);
    cudaFree(d->s.blob[0]);
    free(d);
}
