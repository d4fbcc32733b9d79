/* The model's device section: tp_model_forward(_nll) on a CUDA GPU (kernels/cuda/model.cu).
 * The CPU path (model_forward.c) is untouched by this file: with TP_DEVICE_CPU (the default) nothing
 * here runs. With TP_DEVICE_CUDA every tensor is handed to the device once, and again after an
 * override or the weight hook changes: a packed weight (an artifact loaded with --exec packed) as
 * its INT4-family record, never decoded on the host (other codecs fail, naming the tensor); in
 * TP_WEIGHTS_F16 mode every other matrix in fp16; else in fp32 as the CPU would use it. */
#include "pipeline/model_internal.h"

#include <stdlib.h>
#include <string.h>

#ifdef TENPAK_HAVE_CUDA
#include "kernels/cuda/tp_cuda_model.h"
#endif

const char *tp_device_name(tp_device d) { return d == TP_DEVICE_CUDA ? "cuda" : "cpu"; }
tp_device tp_model_device(const tp_model *m) { return m->device; }

const char *tp_model_device_desc(const tp_model *m) {
#ifdef TENPAK_HAVE_CUDA
    if (m->device == TP_DEVICE_CUDA && m->cuda) return tp_cuda_model_device_name(m->cuda);
#endif
    return tp_device_name(m->device);
}

void tp_model_device_release(tp_model *m) {
#ifdef TENPAK_HAVE_CUDA
    tp_cuda_model_free(m->cuda);
#endif
    m->cuda = NULL;
}

#ifdef TENPAK_HAVE_CUDA
/* A packed weight to the device: its INT4-family matrix as the artifact holds it. */
static tp_status cuda_put_packed(tp_model *m, tp_cuda_slot slot, int layer, const wmat *w, tp_err *e) {
    const tp_qmat *q = tp_linear_qmat(w->packed);
    if (!q)
        return tp_fail(e, TP_ERR_UNSUPPORTED, "--device cuda: tensor '%s' (codec %s) has no CUDA kernel on the packed "
                       "path; run it with --exec dequant", w->t->name, tp_linear_spec(w->packed));
    return tp_cuda_model_set_qmat(m->cuda, slot, layer, q, w->bias, e);
}

/* The fp16-weights mode: the matrix rounded to binary16 (file layout) */
static tp_status cuda_put_f16(tp_model *m, tp_cuda_slot slot, int layer, const wmat *w, const float *data,
                              tp_err *e) {
    size_t n = (size_t)w->t->numel;
    uint16_t *h = tp_alloc(n * sizeof *h);
    if (!h) return tp_fail(e, TP_ERR_NOMEM, "out of memory converting '%s' for the GPU", w->t->name);
    for (size_t i = 0; i < n; i++) h[i] = tp_f32_to_f16(data[i]);
    tp_status rc = tp_cuda_model_set_mat16(m->cuda, slot, layer, h, w->rows, w->cols, w->linear_layout, w->bias, e);
    tp_free(h);
    return rc;
}

/* One matrix to the device: packed as packed; else its override or cached fp32 copy as is, or
 * converted into tmp; in fp16 in TP_WEIGHTS_F16 mode (GPT-2's positions stay fp32). */
static tp_status cuda_put_mat(tp_model *m, tp_cuda_slot slot, int layer, const wmat *w, float **tmp, size_t *tmpn,
                              tp_err *e) {
    if (!w->t) return TP_OK; /* not part of this architecture */
    if (w->packed) return cuda_put_packed(m, slot, layer, w, e);
    const float *data = w->ovr ? w->ovr : w->f32;
    if (!data) {
        size_t need = (size_t)w->t->numel;
        if (need > *tmpn) {
            tp_free(*tmp);
            if (!(*tmp = tp_alloc(need * sizeof(float)))) {
                *tmpn = 0;
                return tp_fail(e, TP_ERR_NOMEM, "out of memory converting '%s' for the GPU", w->t->name);
            }
            *tmpn = need;
        }
        tp_status rc = tp_model_wfill(m, w, 0, w->rows, *tmp, e);
        if (rc != TP_OK) return rc;
        data = *tmp;
    }
    if (m->mode == TP_WEIGHTS_F16 && slot != TP_CU_POS) return cuda_put_f16(m, slot, layer, w, data, e);
    return tp_cuda_model_set_mat(m->cuda, slot, layer, data, w->rows, w->cols, w->linear_layout, w->bias, e);
}

static tp_status cuda_upload(tp_model *m, tp_err *e) {
    const tp_model_config *c = &m->c;
    int d = c->d_model, gpt2 = c->arch == TP_ARCH_GPT2;
    float *tmp = NULL;
    size_t tmpn = 0;
    tp_status rc = TP_OK;
#define PUT_MAT(slot, layer, w) if (rc == TP_OK) rc = cuda_put_mat(m, slot, layer, w, &tmp, &tmpn, e)
#define PUT_VEC(slot, layer, v) if (rc == TP_OK && (v)) rc = tp_cuda_model_set_vec(m->cuda, slot, layer, v, d, e)
    PUT_MAT(TP_CU_EMB, -1, &m->emb);
    if (gpt2) PUT_MAT(TP_CU_POS, -1, &m->pos);
    if (!m->tied) PUT_MAT(TP_CU_HEAD, -1, &m->head);
    PUT_VEC(TP_CU_NORM_F_W, -1, m->nfw);
    PUT_VEC(TP_CU_NORM_F_B, -1, m->nfb);
    for (int l = 0; l < c->n_layer; l++) {
        layer *L = &m->L[l];
        PUT_VEC(TP_CU_N1W, l, L->n1w);
        PUT_VEC(TP_CU_N1B, l, L->n1b);
        PUT_VEC(TP_CU_N2W, l, L->n2w);
        PUT_VEC(TP_CU_N2B, l, L->n2b);
        if (gpt2) {
            PUT_MAT(TP_CU_QKV, l, &L->qkv);
            PUT_MAT(TP_CU_O, l, &L->o);
            PUT_MAT(TP_CU_FC, l, &L->fc);
            PUT_MAT(TP_CU_PROJ, l, &L->proj);
        } else {
            PUT_MAT(TP_CU_Q, l, &L->q);
            PUT_MAT(TP_CU_K, l, &L->k);
            PUT_MAT(TP_CU_V, l, &L->v);
            PUT_MAT(TP_CU_O, l, &L->o);
            PUT_MAT(TP_CU_GATE, l, &L->gate);
            PUT_MAT(TP_CU_UP, l, &L->up);
            PUT_MAT(TP_CU_DOWN, l, &L->down);
        }
    }
#undef PUT_MAT
#undef PUT_VEC
    if (rc == TP_OK && !gpt2) rc = tp_cuda_model_set_rope(m->cuda, m->rope_cos, m->rope_sin, e);
    tp_free(tmp);
    if (rc == TP_OK) m->cuda_stale = 0;
    return rc;
}
#endif

tp_status tp_model_set_device(tp_model *m, tp_device d, tp_err *e) {
    if (d == TP_DEVICE_CPU) {
        if (m->device != TP_DEVICE_CPU) { m->device = TP_DEVICE_CPU; m->cached = 0; }
        return TP_OK;
    }
    if (d != TP_DEVICE_CUDA) return tp_fail(e, TP_ERR_ARG, "unknown device %d", (int)d);
#ifndef TENPAK_HAVE_CUDA
    return tp_fail(e, TP_ERR_UNSUPPORTED, "--device cuda: this tenpak was built without CUDA");
#else
    const tp_model_config *c = &m->c;
    if (!m->cuda) {
        tp_cuda_model_shape s = {c->arch == TP_ARCH_GPT2, (int)c->act, c->n_layer, c->d_model, c->n_head,
                                 c->n_kv_head, c->head_dim, c->d_ff, c->vocab, m->cap, c->sliding_window,
                                 c->norm_eps};
        tp_cuda_model *cm = NULL;
        tp_status rc = tp_cuda_model_create(&s, &cm, e);
        if (rc != TP_OK) return rc;
        m->cuda = cm;
        m->cuda_stale = 1;
    }
    if (m->cuda_stale) {
        tp_status rc = cuda_upload(m, e);
        if (rc != TP_OK) { tp_model_device_release(m); m->device = TP_DEVICE_CPU; return rc; }
    }
    if (m->device != TP_DEVICE_CUDA) { m->device = TP_DEVICE_CUDA; m->cached = 0; }
    return TP_OK;
#endif
}

/* The argument checks of trunk() (model_forward.c), then the device's forward pass with logits. */
tp_status tp_model_device_forward(tp_model *m, const int32_t *ids, int n, int pos0, int row0, float *logits,
                                tp_err *e) {
    tp_status ac = tp_model_check_args(m, ids, n, pos0, e);
    if (ac != TP_OK) return ac;
#ifdef TENPAK_HAVE_CUDA
    if (m->cuda_stale) {
        tp_status rc = tp_model_set_device(m, TP_DEVICE_CUDA, e);
        if (rc != TP_OK) return rc;
    }
    tp_status rc = tp_cuda_model_forward_logits(m->cuda, ids, n, pos0, row0, logits, e);
    m->cached = rc == TP_OK ? pos0 + n : 0;
    return rc;
#else
    (void)row0; (void)logits;
    return tp_fail(e, TP_ERR_UNSUPPORTED, "forward: this tenpak was built without CUDA");
#endif
}

/* The argument checks of trunk() (model_forward.c), then the device's forward pass. */
tp_status tp_model_device_forward_nll(tp_model *m, const int32_t *ids, int n, int pos0, int row0, int row1,
                                    const int32_t *targets, double *nll, tp_err *e) {
    tp_status ac = tp_model_check_args(m, ids, n, pos0, e);
    if (ac != TP_OK) return ac;
#ifdef TENPAK_HAVE_CUDA
    if (m->cuda_stale) { /* weights changed since the upload (override / hook) */
        tp_status rc = tp_model_set_device(m, TP_DEVICE_CUDA, e);
        if (rc != TP_OK) return rc;
    }
    tp_status rc = tp_cuda_model_forward_nll(m->cuda, ids, n, pos0, row0, row1, targets, nll, e);
    m->cached = rc == TP_OK ? pos0 + n : 0;
    return rc;
#else
    (void)row0; (void)row1; (void)targets; (void)nll;
    return tp_fail(e, TP_ERR_UNSUPPORTED, "forward: this tenpak was built without CUDA");
#endif
}
