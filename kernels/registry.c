/* The kernel registry: the family tables joined into one list, plus the helpers every driver
 * (list, verify, bench, the Criterion suites) shares: case construction and comparison. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tenpak/registry.h"

/* Each family defines a table ending with an entry whose op is NULL (kernels/ops_*.c).
 * Adding a family: one line here. */
extern const tp_kernel tp_kernels_blas[];
extern const tp_kernel tp_kernels_int4[];
extern const tp_kernel tp_kernels_entropy[];
extern const tp_kernel tp_kernels_sparse[];
extern const tp_kernel tp_kernels_vq[];
extern const tp_kernel tp_kernels_lora[];
extern const tp_kernel tp_kernels_lowrank[];
extern const tp_kernel tp_kernels_ggml[];
#ifdef TENPAK_HAVE_CUDA
extern const tp_kernel tp_kernels_cuda[];
extern const tp_device_backend tp_device_cuda;
#endif

const tp_device_backend *tp_registry_device(void) {
#ifdef TENPAK_HAVE_CUDA
    return &tp_device_cuda;
#else
    return NULL;
#endif
}

static const tp_kernel *const families[] = {
    tp_kernels_blas,
    tp_kernels_int4,
    tp_kernels_entropy,
    tp_kernels_sparse,
    tp_kernels_vq,
    tp_kernels_lora,
    tp_kernels_lowrank,
    tp_kernels_ggml,
#ifdef TENPAK_HAVE_CUDA
    tp_kernels_cuda,
#endif
};

/* The joined list is never materialised: entry i is found by walking the family tables (a few
 * hundred entries), so the registry needs no allocation that could fail. */
size_t tp_registry_count(void) {
    size_t n = 0;
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++)
        for (const tp_kernel *k = families[f]; k->op; k++) n++;
    return n;
}
const tp_kernel *tp_registry_get(size_t i) {
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++)
        for (const tp_kernel *k = families[f]; k->op; k++)
            if (i-- == 0) return k;
    return NULL;
}

void tp_shape_name(const tp_shape *s, char *buf, size_t n) {
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < s->nd && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%lld", i ? "x" : "", (long long)s->d[i]);
}

void tp_kernel_name(const tp_kernel *k, const tp_shape *s, char *buf, size_t n) {
    char sh[96];
    tp_shape_name(s, sh, sizeof sh);
    snprintf(buf, n, "%s/%s/%s/%s", k->op->name, k->op->variant, k->backend, sh);
}

int tp_kernel_is_available(const tp_kernel *k, char *why, size_t n) {
    if (why && n) why[0] = 0;
    return k->available ? k->available(why, n) : 1;
}

tp_status tp_case_make(tp_case *c, const tp_op *op, const tp_shape *s, uint64_t run_seed,
                       int want_ref) {
    memset(c, 0, sizeof *c);
    c->op = op;
    c->shape = *s;
    char name[256], sh[96];
    tp_shape_name(s, sh, sizeof sh);
    snprintf(name, sizeof name, "%s/%s/%s", op->name, op->variant, sh);
    c->seed = run_seed ^ tp_hash_str(name);
    tp_rng rng;
    tp_rng_seed(&rng, c->seed);
    tp_status st = op->setup(c, &rng);
    if (st != TP_OK) {
        tp_case_free(c);
        return st;
    }
    if (want_ref) {
        c->ref = tp_alloc(c->out_bytes);
        if (!c->ref) {
            tp_case_free(c);
            return TP_ERR_NOMEM;
        }
        if ((st = op->reference(c, c->ref)) != TP_OK) {
            tp_case_free(c);
            return st;
        }
    }
    return TP_OK;
}

void tp_case_free(tp_case *c) {
    if (c->op && c->op->teardown) c->op->teardown(c);
    tp_free(c->ref);
    c->ref = NULL;
    c->ctx = NULL;
}

tp_status tp_kernel_run_once(const tp_kernel *k, const tp_case *c, void *out) {
    void *state = k->prepare ? k->prepare(c) : NULL;
    tp_status st = k->run(c, state, out);
    if (k->sync) k->sync(state);
    if (k->fetch && st == TP_OK) k->fetch(c, state, out);
    if (k->release) k->release(state);
    return st;
}


tp_status tp_kernel_run_replayed(const tp_kernel *k, const tp_case *c, void *out, int launches, int replays,
                                 int *graphed) {
    const tp_device_backend *d = tp_registry_device();
    *graphed = 0;
    if (!d || !k->fetch || launches < 1 || replays < 1) return tp_kernel_run_once(k, c, out);
    void *state = k->prepare ? k->prepare(c) : NULL;
    void *g = d->graph_make(k, c, state, out, launches);
    tp_status st = TP_OK;
    if (g) {
        *graphed = 1;
        for (int i = 0; i < replays && st == TP_OK; i++)
            if (!d->graph_launch(g)) st = TP_ERR_IO;
    } else st = k->run(c, state, out);
    if (k->sync) k->sync(state);
    if (st == TP_OK) k->fetch(c, state, out); /* fetch is there: checked above */
    d->graph_free(g);
    if (k->release) k->release(state);
    return st;
}

const char *tp_cmp_metric_name(tp_cmp cmp) {
    switch (cmp) {
    case TP_CMP_EXACT: return "bytes_differing";
    case TP_CMP_REL_L2: return "rel_l2";
    case TP_CMP_PROPERTY: return "property";
    }
    return "?";
}

int tp_case_compare(const tp_case *c, const void *out, double *metric) {
    const tp_op *op = c->op;
    if (op->cmp == TP_CMP_PROPERTY) {
        double m = op->property(c, out);
        *metric = m;
        return m <= 1.0; /* NaN fails */
    }
    if (op->cmp == TP_CMP_EXACT) {
        const unsigned char *a = out, *b = c->ref;
        size_t diff = 0;
        for (size_t i = 0; i < c->out_bytes; i++) diff += a[i] != b[i];
        *metric = (double)diff;
        return diff == 0;
    }
    /* relative L2 over every element; a NaN or inf anywhere (the poison left behind, or a
     * kernel overflow) fails the case on its own */
    const double m = tp_rel_l2_f32(out, c->ref, c->out_count);
    *metric = m;
    return isfinite(m) && m <= op->bound;
}

double tp_rel_l2_f32(const float *o, const float *r, size_t n) {
    double num = 0, den = 0;
    int finite = 1;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(o[i])) finite = 0;
        double d = (double)o[i] - (double)r[i];
        num += d * d;
        den += (double)r[i] * (double)r[i];
    }
    if (!finite) return INFINITY;
    return den > 0 ? sqrt(num / den) : sqrt(num);
}
