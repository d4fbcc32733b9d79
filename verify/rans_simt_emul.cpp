/* SIMT emulation of the GPU rANS decoder: compiles the CUDA kernel itself
 * (kernels/cuda/rans_kernel.cuh, the code that runs on the device) as host C++, with the CUDA
 * keywords defined away and the warp intrinsics (__syncwarp, __ballot_sync, __any_sync,
 * __all_sync, __shfl_down_sync) implemented by running the 32 lanes of a warp as coroutines
 * (ucontext) that meet at every intrinsic. It checks, on a machine without a GPU, the kernel's
 * own control flow, shared-memory layout, staging and flushes, and that every lane reaches the
 * same sequence of warp intrinsics (a lane leaving early, or lanes at different intrinsics, is
 * reported: on the device that is a hang or undefined behaviour). Races are not modelled (the
 * lanes run one after another between intrinsics).
 *
 * Built by CMake wherever a C++ compiler is found (the CUDA backend is not needed) and run by
 * ctest as rans_simt_emul; by hand: build/rans_simt_emul [seed].
 * Prints one line per case and "N cases, N failed"; exit status 1 on any failure. */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#include <vector>

/* ---- host shims for the CUDA keywords ---- */
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(x)
#define __shared__
#define __align__(n) __attribute__((aligned(n)))
#define RANS_PREFETCH_L1(ptr) ((void)(ptr))
struct uint4 {
    uint32_t x, y, z, w;
};
struct emu_dim {
    unsigned x, y, z;
};
static emu_dim threadIdx, blockIdx, gridDim;
template <class T> static T __ldg(const T *p) { return *p; }

/* ---- the warp: 32 coroutines meeting at each intrinsic ---- */
enum { K_NONE, K_SYNC, K_BALLOT, K_ANY, K_ALL, K_SHFL_DOWN };
struct emu_lane {
    ucontext_t ctx;
    int done, kind;
    uint32_t val, arg, result;
};
static emu_lane lanes[32];
static ucontext_t sched;
static int cur, emu_errors;

static uint32_t meet(int kind, uint32_t mask, uint32_t val, uint32_t arg) {
    if (mask != 0xffffffffu) {
        fprintf(stderr, "emul: lane %d: warp intrinsic with mask %08x (the kernel uses full masks)\n", cur, mask);
        emu_errors++;
    }
    emu_lane &L = lanes[cur];
    L.kind = kind;
    L.val = val;
    L.arg = arg;
    swapcontext(&L.ctx, &sched);
    return L.result;
}
static void __syncwarp(uint32_t mask = 0xffffffffu) { meet(K_SYNC, mask, 0, 0); }
static uint32_t __ballot_sync(uint32_t mask, int p) { return meet(K_BALLOT, mask, p != 0, 0); }
static int __any_sync(uint32_t mask, int p) { return (int)meet(K_ANY, mask, p != 0, 0); }
static int __all_sync(uint32_t mask, int p) { return (int)meet(K_ALL, mask, p != 0, 0); }
static uint32_t __shfl_down_sync(uint32_t mask, uint32_t v, unsigned d) { return meet(K_SHFL_DOWN, mask, v, d); }

/* the dynamic shared memory of the one CTA being emulated */
alignas(16) uint8_t smem[4 * (512 + 1024 + (1 << 15))];

#include "kernels/cuda/rans_kernel.cuh"
#include "tenpak/entropy.h"
#include "tenpak/registry.h"

static RansArgs emu_args;
static int emu_pf;
static void lane_entry() {
    if (emu_pf) rans_dec_warp<true>(emu_args);
    else rans_dec_warp<false>(emu_args);
    lanes[cur].done = 1;
}

/* Runs one warp (w of CTA b) to completion. */
static void run_warp(unsigned b, unsigned w) {
    static std::vector<char> stacks(32 * 256 * 1024);
    for (int l = 0; l < 32; l++) {
        emu_lane &L = lanes[l];
        memset(&L, 0, sizeof L);
        getcontext(&L.ctx);
        L.ctx.uc_stack.ss_sp = &stacks[(size_t)l * 256 * 1024];
        L.ctx.uc_stack.ss_size = 256 * 1024;
        L.ctx.uc_link = &sched;
        makecontext(&L.ctx, lane_entry, 0);
    }
    blockIdx.x = b;
    for (;;) {
        for (int l = 0; l < 32; l++) {
            cur = l;
            threadIdx.x = w * 32 + (unsigned)l;
            swapcontext(&sched, &lanes[l].ctx); /* runs lane l to its next intrinsic or its end */
        }
        int ndone = 0;
        for (int l = 0; l < 32; l++) ndone += lanes[l].done;
        if (ndone == 32) return;
        if (ndone) {
            fprintf(stderr, "emul: CTA %u warp %u: %d lanes finished while %d wait at a warp intrinsic\n", b, w, ndone,
                    32 - ndone);
            emu_errors++;
            exit(1); /* the waiting coroutines cannot be resumed meaningfully */
        }
        const int kind = lanes[0].kind;
        uint32_t ballot = 0;
        for (int l = 0; l < 32; l++) {
            if (lanes[l].kind != kind) {
                fprintf(stderr, "emul: CTA %u warp %u: lanes at different warp intrinsics (%d vs %d)\n", b, w, kind,
                        lanes[l].kind);
                emu_errors++;
                exit(1);
            }
            ballot |= (lanes[l].val & 1u) << l;
        }
        for (int l = 0; l < 32; l++) {
            emu_lane &L = lanes[l];
            switch (kind) {
            case K_BALLOT: L.result = ballot; break;
            case K_ANY: L.result = ballot != 0; break;
            case K_ALL: L.result = ballot == 0xffffffffu; break;
            case K_SHFL_DOWN: L.result = l + L.arg < 32 ? lanes[l + L.arg].val : L.val; break;
            default: L.result = 0;
            }
        }
    }
}

/* The launch of tp_cuda_rans_run, CTA by CTA, warp by warp (warps share nothing). */
static int emu_decode(const uint8_t *stream, const size_t *off, size_t nblocks, size_t out_bytes, int pf,
                      uint8_t *out, std::vector<int> &status) {
    RansLayout L;
    if (rans_layout(stream, off, nblocks, out_bytes, &L)) return 1;
    std::vector<uint8_t> pay(L.pay_total + 16), dout(out_bytes + 16, 0xA5);
    memcpy(pay.data(), L.pay, L.pay_total);
    status.assign(nblocks + 1, -1);
    emu_args.payload = pay.data();
    emu_args.fc = L.fc;
    emu_args.desc = L.desc;
    emu_args.nblocks = (long long)nblocks;
    emu_args.tab_bytes = L.tab_bytes;
    emu_args.out = dout.data();
    emu_args.status = status.data();
    emu_pf = pf;
    if (rans_smem_bytes(L.tab_bytes) > sizeof smem) return 1;
    const unsigned ctas = (unsigned)((nblocks + RANS_WARPS - 1) / RANS_WARPS);
    gridDim.x = ctas;
    for (unsigned b = 0; b < ctas; b++) {
        memset(smem, 0x5c, sizeof smem); /* shared memory starts as garbage */
        for (unsigned w = 0; w < RANS_WARPS; w++) run_warp(b, w);
    }
    memcpy(out, dout.data(), out_bytes);
    int bad_guard = 0;
    for (int i = 0; i < 16; i++) bad_guard |= dout[out_bytes + (size_t)i] != 0xA5;
    rans_layout_free(&L);
    return bad_guard ? 2 : 0;
}

/* xorshift for the inputs: skewed bytes / nibbles (a geometric distribution) */
static uint64_t rs;
static double urand() {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (double)(rs >> 11) / 9007199254740992.0;
}
static void skewed(uint8_t *d, size_t n, double q, int nib) {
    for (size_t i = 0; i < n; i++) {
        int a = 0, b = 0;
        while (a < 200 && urand() < q) a++;
        while (b < 15 && urand() < q) b++;
        d[i] = nib ? (uint8_t)(b | ((15 - b + a) & 15) << 4) : (uint8_t)(a * 29 + 3);
    }
}

static int ncases, nfailed;

/* n bytes (skewed, or given) cut into chunks, each a block (cpu encoder); decoded by the emulated
 * kernel; compared with the reference decoder's output (and the input). */
static void one_case(size_t n, size_t chunk, int nib, int scale, double q, int pf, const uint8_t *given = NULL) {
    std::vector<uint8_t> src(n + 1), ref(n + 1), out(n + 1);
    if (given) memcpy(src.data(), given, n);
    else skewed(src.data(), n, q, nib);
    const size_t nb = (n + chunk - 1) / chunk, bound = tp_ent_bound(chunk);
    std::vector<uint8_t> enc(nb * bound + 1);
    std::vector<size_t> off(nb + 1, 0);
    int rans_blocks = 0;
    for (size_t i = 0; i < nb; i++) {
        const size_t a = i * chunk, m = n - a < chunk ? n - a : chunk;
        tp_ent_params p;
        tp_ent_params_default(&p, TP_ENT_RANS);
        p.sym_bits = nib ? 4 : 8;
        p.scale_bits = scale;
        size_t len = 0, got = 0;
        tp_err e;
        if (tp_ent_encode_cpu(&src[a], m, &p, &enc[off[i]], bound, &len, &e) != TP_OK ||
            tp_ent_decode_ref(&enc[off[i]], len, &ref[a], m, &got, &e) != TP_OK) {
            fprintf(stderr, "emul: encode/reference decode failed: %s\n", e.msg);
            exit(1);
        }
        rans_blocks += enc[off[i] + 5] == TP_ENT_RANS;
        off[i + 1] = off[i] + len;
    }
    std::vector<int> st;
    const int rc = emu_decode(enc.data(), off.data(), nb, n, pf, out.data(), st);
    int bad = rc != 0 || memcmp(out.data(), ref.data(), n) != 0 || memcmp(ref.data(), src.data(), n) != 0;
    for (size_t i = 0; i < nb; i++) bad |= st[i] != TP_RANS_GPU_OK;
    ncases++;
    nfailed += bad || emu_errors;
    printf("%sn=%-8zu chunk=%-6zu sym_bits=%d scale=%-2d q=%.2f pf=%d blocks=%zu (rans %d): %s\n",
           given ? "op input " : "", n, chunk, nib ? 4 : 8,
           scale, q, pf, nb, rans_blocks, bad || emu_errors ? "FAIL" : "ok");
    emu_errors = 0;
}

int main(int argc, char **argv) {
    rs = argc > 1 ? strtoull(argv[1], NULL, 10) : 88172645463325252ull;
    if (!rs) rs = 1;
    printf("seed %llu\n", (unsigned long long)rs);
    const size_t sizes[] = {1, 31, 33, 1000, 4099, 65536, 65539, 200003};
    for (int nib = 0; nib < 2; nib++)
        for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++)
            for (int pf = 0; pf < 2; pf++) one_case(sizes[si], 65536, nib, 0, 0.8, pf);
    /* scales 8 and 15 (table sizes), small chunks (many blocks, misaligned output offsets) */
    one_case(100003, 65536, 0, 8, 0.6, 0);
    one_case(100003, 65536, 0, 15, 0.97, 1);
    one_case(100003, 65536, 1, 15, 0.5, 0);
    one_case(50001, 1000, 0, 12, 0.8, 0);
    one_case(50001, 4000, 1, 12, 0.8, 1);
    /* the registry ops' own inputs (text, INT4 nibbles), 1000003 bytes */
    const char *variants[2] = {"o0_chunks64k", "o0_nib_chunks64k"};
    for (int v = 0; v < 2; v++)
        for (size_t i = 0; i < tp_registry_count(); i++) {
            const tp_kernel *k = tp_registry_get(i);
            if (strcmp(k->op->name, "rans_dec") || strcmp(k->op->variant, variants[v]) || strcmp(k->backend, "ref")) continue;
            const tp_shape sh = TP_SHAPE1(1000003);
            tp_case c;
            if (tp_case_make(&c, k->op, &sh, rs, 1) != TP_OK) {
                fprintf(stderr, "emul: setup of rans_dec/%s failed\n", variants[v]);
                return 1;
            }
            one_case(c.out_bytes, 65536, v, 0, 0, v, (const uint8_t *)c.ref);
            tp_case_free(&c);
        }
    /* a damaged block: the device status must say so */
    {
        const size_t n = 20011, cap = tp_ent_bound(n);
        std::vector<uint8_t> src(n), enc(cap), out(n);
        skewed(src.data(), n, 0.8, 0);
        tp_ent_params p;
        tp_ent_params_default(&p, TP_ENT_RANS);
        size_t len;
        tp_err e;
        tp_ent_encode_cpu(src.data(), n, &p, enc.data(), cap, &len, &e);
        tp_ent_header h;
        tp_ent_parse_header(enc.data(), len, &h, &e);
        enc[h.payload_off + 7] |= 0x80; /* state of lane 1 >= 2^31 */
        size_t off[2] = {0, len};
        std::vector<int> st;
        emu_decode(enc.data(), off, 1, n, 0, out.data(), st);
        const int ok = st[0] == TP_RANS_GPU_BAD_STATE;
        ncases++;
        nfailed += !ok;
        printf("damaged initial state: status %d: %s\n", st[0], ok ? "ok" : "FAIL");
    }
    printf("%d cases, %d failed\n", ncases, nfailed);
    return nfailed != 0;
}
