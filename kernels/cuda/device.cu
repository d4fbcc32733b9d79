/* The CUDA backend's device handling: availability, `tenpak list`'s description line, errors,
 * synchronisation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/common.cuh"

static int avail_state = -1; /* -1 unknown, 0 no, 1 yes */
static char avail_why[400];
static cudaDeviceProp props;

static void probe(void) {
    if (avail_state >= 0) return;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n <= 0) {
        avail_state = 0;
        snprintf(avail_why, sizeof avail_why, "no CUDA device (%s)",
                 e != cudaSuccess ? cudaGetErrorString(e) : "none found");
        (void)cudaGetLastError();
        return;
    }
    if (cudaGetDeviceProperties(&props, 0) != cudaSuccess) {
        avail_state = 0;
        snprintf(avail_why, sizeof avail_why, "no CUDA device (properties unreadable)");
        return;
    }
    /* built for sm_90 machine code plus compute_90 PTX: needs capability 9.0 or newer */
    if (props.major < 9) {
        avail_state = 0;
        snprintf(avail_why, sizeof avail_why, "CUDA device %s is sm_%d%d; built for sm_90+", props.name,
                 props.major, props.minor);
        return;
    }
    avail_state = 1;
}

extern "C" int tp_cuda_available(char *why, size_t n) {
    probe();
    if (!avail_state && why && n) snprintf(why, n, "%s", avail_why);
    return avail_state;
}

extern "C" void tp_cuda_describe(FILE *f) {
    probe();
    int drv = 0, rt = 0;
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    (void)cudaGetLastError();
    if (!avail_state) {
        fprintf(f, "cuda: built (sm_90 + compute_90 PTX, runtime %d.%d); %s\n", rt / 1000, (rt % 1000) / 10,
                avail_why);
        return;
    }
    fprintf(f, "cuda: %s, capability %d.%d, %d SMs, %.1f GiB, L2 %.0f MiB, driver %d.%d, runtime %d.%d\n",
            props.name, props.major, props.minor, props.multiProcessorCount,
            (double)props.totalGlobalMem / (1024.0 * 1024 * 1024), (double)props.l2CacheSize / (1024.0 * 1024),
            drv / 1000, (drv % 1000) / 10, rt / 1000, (rt % 1000) / 10);
}

extern "C" int tp_cuda_info_get(tp_cuda_info *i) {
    memset(i, 0, sizeof *i);
    probe();
    if (!avail_state) return 0;
    snprintf(i->name, sizeof i->name, "%s", props.name);
    i->cc_major = props.major;
    i->cc_minor = props.minor;
    i->sm_count = props.multiProcessorCount;
    int khz = 0;
    if (cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, 0) == cudaSuccess) i->clock_mhz = khz / 1000;
    if (cudaDeviceGetAttribute(&khz, cudaDevAttrMemoryClockRate, 0) == cudaSuccess) i->mem_clock_mhz = khz / 1000;
    int bits = 0;
    if (cudaDeviceGetAttribute(&bits, cudaDevAttrGlobalMemoryBusWidth, 0) == cudaSuccess) i->mem_bus_bits = bits;
    i->mem_gib = (double)props.totalGlobalMem / (1024.0 * 1024 * 1024);
    i->l2_mib = (double)props.l2CacheSize / (1024.0 * 1024);
    cudaDriverGetVersion(&i->driver);
    cudaRuntimeGetVersion(&i->runtime);
    (void)cudaGetLastError();
    return 1;
}

int tp_cu_sm_count(void) {
    probe();
    return avail_state ? props.multiProcessorCount : 1;
}
size_t tp_cu_l2_bytes(void) {
    probe();
    return avail_state ? (size_t)props.l2CacheSize : (size_t)50 << 20;
}

int tp_cu_rotation(size_t bytes) {
    if (!bytes) return 1;
    size_t want = 4 * tp_cu_l2_bytes();
    size_t n = (want + bytes - 1) / bytes;
    return n < 1 ? 1 : n > 8 ? 8 : (int)n;
}

int tp_cu_pdl(void) {
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("TENPAK_CUDA_PDL");
        v = e && e[0] >= '0' && e[0] <= '2' ? e[0] - '0' : 1;
    }
    return v;
}

static int errors_printed;
int tp_cu_ok(cudaError_t e, const char *what, const char *file, int line) {
    if (e == cudaSuccess) return 1;
    if (errors_printed++ < 8)
        fprintf(stderr, "cuda: %s failed: %s (%s:%d)\n", what, cudaGetErrorString(e), file, line);
    return 0;
}

void tp_cu_nan_fill(float *out, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = NAN;
}

extern "C" void tp_cuda_sync(void *state) {
    tp_cu_state *st = (tp_cu_state *)state;
    cudaError_t e = cudaDeviceSynchronize();
    if (st) TP_CU(st, e);
    else tp_cu_ok(e, "cudaDeviceSynchronize", __FILE__, __LINE__);
}

/* Graph timing for `tenpak bench` (many small launches are timed as replays of a captured graph,
 * so the launch gaps are not part of the figure): `launches` consecutive run() calls of a device kernel captured from the calling
 * thread's default stream (the backend is built with --default-stream per-thread). A kernel whose
 * run() cannot be captured gets NULL (the bench falls back to stream timing); a failed capture
 * leaves the kernel's state as it was. */
struct tp_cu_graph {
    cudaGraph_t g;
    cudaGraphExec_t x;
};
extern "C" void *tp_cuda_graph_make(const tp_kernel *k, const tp_case *c, void *state, void *out, int launches) {
    if (!k->run || launches < 1) return NULL;
    tp_cu_state *st = (tp_cu_state *)state;
    if (st && st->failed) return NULL;
    cudaGraph_t g = NULL;
    if (cudaStreamBeginCapture(cudaStreamPerThread, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
        (void)cudaGetLastError();
        return NULL;
    }
    const int quiet = errors_printed;
    errors_printed = 1 << 20; /* a launch refused during capture is expected here, not an error to print */
    int run_failed = 0; /* a launch whose host side could not allocate: no graph */
    for (int i = 0; i < launches; i++) run_failed |= k->run(c, state, out) != TP_OK;
    cudaError_t e = cudaStreamEndCapture(cudaStreamPerThread, &g);
    errors_printed = quiet;
    tp_cu_graph *r = NULL;
    if (e == cudaSuccess && g && !run_failed && !(st && st->failed)) {
        r = (tp_cu_graph *)calloc(1, sizeof *r);
        if (r && cudaGraphInstantiate(&r->x, g, 0) == cudaSuccess) r->g = g;
        else {
            free(r);
            r = NULL;
        }
    }
    if (!r && g) cudaGraphDestroy(g);
    (void)cudaGetLastError(); /* a refused capture leaves no error behind */
    if (st) st->failed = 0;   /* ... and no failed state: it was not failed before */
    return r;
}
extern "C" int tp_cuda_graph_launch(void *graph) {
    return cudaGraphLaunch(((tp_cu_graph *)graph)->x, cudaStreamPerThread) == cudaSuccess;
}
extern "C" void tp_cuda_graph_free(void *graph) {
    tp_cu_graph *r = (tp_cu_graph *)graph;
    if (!r) return;
    cudaGraphExecDestroy(r->x);
    cudaGraphDestroy(r->g);
    free(r);
}
