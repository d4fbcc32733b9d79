/* rANS decode on the GPU: many independent blocks of the entropy format (include/tenpak/entropy.h),
 * each decoded by one warp, lane j of the warp being rANS lane j of the block (the cpu coder's
 * 32 interleaved lanes). Interface, and the warp algorithm in words: kernels/cuda/tp_cuda_rans.h;
 * the per-lane arithmetic is shared with the host emulation in verify/test_rans_warp.c.
 *
 * Per warp, in shared memory: the block's slot -> symbol table (2^s bytes, built from the
 * (freq | cum << 16) words the host uploads), those 256 words, and a 512-byte staging buffer
 * for the decoded bytes, flushed as one 16-byte store per lane (512 B per warp) when it is full.
 * Stored blocks are copied; empty blocks are skipped. Each block gets a status word (0 = ok).
 *
 * Not done on the device: the XXH64 of each block (the registry glue checks it on the host after
 * fetch). Reference: reference/rans_ref.c (tp_rans_payload_dec_ref), the same order of bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/rans_kernel.cuh"
#include "kernels/cuda/tp_cuda_rans.h"

/* ---------------------------------------------------------------------------------------------
 * State and registry glue
 * ------------------------------------------------------------------------------------------- */
struct rans_state {
    tp_cu_state base;
    size_t nblocks, out_bytes, smem;
    int ncopy, next, tab_bytes, prefetch;
    uint8_t *pay[8];  /* rotated copies of payloads + tables (one allocation each) */
    uint32_t *fc[8];
    RansDesc *desc;
    int *status;
    uint8_t *out;
};

static const char *status_name(int st) {
    switch (st) {
    case TP_RANS_GPU_BAD_STATE: return "an initial rANS state is outside [2^23, 2^31)";
    case TP_RANS_GPU_TRUNCATED: return "rANS payload truncated";
    case TP_RANS_GPU_BAD_END: return "rANS payload has bytes left over or a final state is not 2^23";
    }
    return "unknown status";
}

extern "C" void *tp_cuda_rans_prepare(const uint8_t *stream, const size_t *off, size_t nblocks, size_t out_bytes,
                                      int prefetch) {
    rans_state *s = (rans_state *)calloc(1, sizeof *s);
    if (!s) return NULL;
    s->prefetch = prefetch;
    s->nblocks = nblocks;
    s->out_bytes = out_bytes;
    RansLayout L;
    if (rans_layout(stream, off, nblocks, out_bytes, &L)) {
        s->base.failed = 1;
        return s;
    }
    s->tab_bytes = L.tab_bytes;
    s->smem = rans_smem_bytes(L.tab_bytes);
    const size_t fc_bytes = nblocks * 256 * sizeof(uint32_t);
    s->ncopy = tp_cu_rotation(L.pay_total + fc_bytes);
    for (int c = 0; c < s->ncopy && !s->base.failed; c++) {
        TP_CU(&s->base, cudaMalloc((void **)&s->pay[c], L.pay_total + 16));
        TP_CU(&s->base, cudaMalloc((void **)&s->fc[c], fc_bytes + 16));
        if (s->base.failed) break;
        TP_CU(&s->base, cudaMemcpy(s->pay[c], L.pay, L.pay_total, cudaMemcpyHostToDevice));
        TP_CU(&s->base, cudaMemcpy(s->fc[c], L.fc, fc_bytes, cudaMemcpyHostToDevice));
    }
    TP_CU(&s->base, cudaMalloc((void **)&s->desc, nblocks * sizeof(RansDesc) + 16));
    TP_CU(&s->base, cudaMalloc((void **)&s->status, nblocks * sizeof(int) + 16));
    TP_CU(&s->base, cudaMalloc((void **)&s->out, out_bytes + 16));
    if (!s->base.failed) {
        TP_CU(&s->base, cudaMemcpy(s->desc, L.desc, nblocks * sizeof(RansDesc), cudaMemcpyHostToDevice));
        TP_CU(&s->base, cudaMemset(s->status, 0xff, nblocks * sizeof(int)));
        TP_CU(&s->base, cudaMemset(s->out, 0xA5, out_bytes)); /* poison */
    }
    if (!s->base.failed)
        TP_CU(&s->base, cudaFuncSetAttribute(prefetch ? rans_dec_warp<true> : rans_dec_warp<false>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize, (int)s->smem));
    rans_layout_free(&L);
    return s;
}

extern "C" tp_status tp_cuda_rans_run(const tp_case *c, void *state, void *out) {
    (void)c;
    (void)out;
    rans_state *s = (rans_state *)state;
    if (!s || s->base.failed || !s->nblocks) return TP_OK;
    const int k = s->next;
    s->next = (s->next + 1) % s->ncopy;
    RansArgs a;
    a.payload = s->pay[k];
    a.fc = s->fc[k];
    a.desc = s->desc;
    a.nblocks = (long long)s->nblocks;
    a.tab_bytes = s->tab_bytes;
    a.out = s->out;
    a.status = s->status;
    /* one warp per block; a grid-stride loop covers more blocks than one launch holds */
    long long ctas = ((long long)s->nblocks + RANS_WARPS - 1) / RANS_WARPS;
    if (ctas > (1ll << 30)) ctas = 1ll << 30;
    if (s->prefetch) rans_dec_warp<true><<<(unsigned)ctas, RANS_WARPS * 32, s->smem>>>(a);
    else rans_dec_warp<false><<<(unsigned)ctas, RANS_WARPS * 32, s->smem>>>(a);
    TP_CU_LAUNCHED(&s->base);
    return TP_OK;
}

extern "C" void tp_cuda_rans_fetch(const tp_case *c, void *state, void *out) {
    rans_state *s = (rans_state *)state;
    if (s && !s->base.failed && s->out_bytes)
        TP_CU(&s->base, cudaMemcpy(out, s->out, s->out_bytes, cudaMemcpyDeviceToHost));
    if (s && !s->base.failed && s->nblocks) {
        int *st = (int *)malloc(s->nblocks * sizeof(int));
        if (!st) s->base.failed = 1;
        else {
            TP_CU(&s->base, cudaMemcpy(st, s->status, s->nblocks * sizeof(int), cudaMemcpyDeviceToHost));
            for (size_t i = 0; i < s->nblocks && !s->base.failed; i++)
                if (st[i] != TP_RANS_GPU_OK) {
                    fprintf(stderr, "cuda rans: block %zu: %s (status %d)\n", i, status_name(st[i]), st[i]);
                    s->base.failed = 1;
                }
            free(st);
        }
    }
    if ((!s || s->base.failed) && c->out_bytes) memset(out, 0xEE, c->out_bytes);
}

extern "C" int tp_cuda_rans_failed(const void *state) {
    return !state || ((const rans_state *)state)->base.failed;
}

extern "C" void tp_cuda_rans_release(void *state) {
    rans_state *s = (rans_state *)state;
    if (!s) return;
    for (int i = 0; i < s->ncopy; i++) {
        cudaFree(s->pay[i]);
        cudaFree(s->fc[i]);
    }
    cudaFree(s->desc);
    cudaFree(s->status);
    cudaFree(s->out);
    free(s);
}
