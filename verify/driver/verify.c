/* The verify driver: for every op in the registry, every verify shape, every non-reference
 * kernel (and every ISA level of the cpu kernels): poison the output, run, compare with the
 * reference by the op's rule. With self_test, also damage the output just beyond what the rule
 * allows and require the comparison to reject it, proving the check can fail. */
#include <cjson/cJSON.h>
#include <math.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "tenpak/verify.h"

static void poison(const tp_case *c, void *out) {
    if (c->op->out_type == TP_OUT_F32) tp_poison_f32(out, c->out_count);
    else memset(out, 0xA5, c->out_bytes);
}

/* Damage `out` so that a correct comparison must reject it. */
static void corrupt(const tp_case *c, void *out, tp_rng *rng) {
    const tp_op *op = c->op;
    if (op->corrupt) {
        op->corrupt(c, out, rng);
        return;
    }
    if (op->cmp == TP_CMP_REL_L2) {
        /* one element pushed 3x the bound (in norm) away: the error becomes > 2x the bound */
        const float *r = c->ref;
        double norm = 0;
        for (size_t i = 0; i < c->out_count; i++) norm += (double)r[i] * r[i];
        norm = sqrt(norm);
        size_t i = tp_rng_below(rng, (uint32_t)c->out_count);
        float *o = out;
        o[i] = (float)(o[i] + 3.0 * op->bound * (norm > 0 ? norm : 1.0) + 1e-30);
        return;
    }
    /* exact / property: one byte flipped */
    size_t i = tp_rng_below(rng, (uint32_t)c->out_bytes);
    ((unsigned char *)out)[i] ^= 0x01;
}

typedef struct run_item {
    const tp_kernel *k;
    tp_isa isa;
} run_item;

tp_status tp_verify_run(const tp_verify_opts *o, tp_verify_result *res, tp_err *e) {
    memset(res, 0, sizeof *res);
    regex_t re;
    int have_re = o->filter && *o->filter;
    if (have_re && regcomp(&re, o->filter, REG_EXTENDED | REG_NOSUB) != 0)
        return tp_fail(e, TP_ERR_ARG, "bad --filter regex '%s'", o->filter);
    const tp_isa best = tp_cpu_best_isa(), saved_isa = tp_cpu_isa();
    size_t nk = tp_registry_count();
    run_item *items = malloc((nk * 2 + 1) * sizeof *items);
    if (!items) return tp_fail(e, TP_ERR_NOMEM, "out of memory");
    tp_rng crng;
    tp_rng_seed(&crng, o->seed ^ 0x5e1f7e57ull);
    if (o->out)
        fprintf(o->out, "%-8s %-12s %-9s %-9s %-15s %-16s %-9s %s\n", "op", "variant", "backend", "isa",
                "shape", "metric", "bound", "result");

    for (size_t i = 0; i < nk; i++) {
        const tp_op *op = tp_registry_get(i)->op;
        int first = 1; /* handle each op once, at its first kernel */
        for (size_t j = 0; j < i; j++)
            if (tp_registry_get(j)->op == op) first = 0;
        if (!first) continue;
        for (const tp_shape *s = op->verify_shapes; s && s->nd; s++) {
            size_t n = 0;
            for (size_t j = i; j < nk; j++) {
                const tp_kernel *k = tp_registry_get(j);
                if (k->op != op) continue;
                /* the reference is the yardstick; only reference-only ops check it (by property) */
                if (!strcmp(k->backend, "ref") && op->cmp != TP_CMP_PROPERTY) continue;
                if (o->backend && strcmp(o->backend, k->backend)) continue;
                char name[256];
                tp_kernel_name(k, s, name, sizeof name);
                if (have_re && regexec(&re, name, 0, NULL, 0) != 0) continue;
                char why[128];
                if (!tp_kernel_is_available(k, why, sizeof why)) {
                    /* say so once per kernel (at its first shape), e.g. "no CUDA device" */
                    if (o->out && s == op->verify_shapes)
                        fprintf(o->out, "%-8s %-12s %-9s %-9s %-15s skipped: %s\n", op->name, op->variant,
                                k->backend, "-", "*", why[0] ? why : "not available");
                    res->skipped++;
                    continue;
                }
                if (k->flags & TP_K_ISA) {
                    int top = (int)best;
                    if (!(k->flags & TP_K_AVX512) && top > TP_ISA_AVX2) top = TP_ISA_AVX2;
                    for (int isa = top; isa >= 0; isa--) items[n++] = (run_item){k, (tp_isa)isa};
                }
                else
                    items[n++] = (run_item){k, saved_isa};
            }
            if (!n) continue;
            tp_case c;
            char shname[96];
            tp_shape_name(s, shname, sizeof shname);
            if (tp_case_make(&c, op, s, o->seed, op->cmp != TP_CMP_PROPERTY) != TP_OK) {
                if (o->out) fprintf(o->out, "%-8s %-12s %-9s %-9s %-15s setup failed (out of memory)\n",
                                    op->name, op->variant, "-", "-", shname);
                res->failed += (int)n;
                continue;
            }
            void *out = tp_alloc(c.out_bytes), *bad = o->self_test ? tp_alloc(c.out_bytes) : NULL;
            for (size_t t = 0; t < n; t++) {
                const tp_kernel *k = items[t].k;
                int is_isa = (k->flags & TP_K_ISA) != 0;
                if (is_isa) tp_cpu_set_isa(items[t].isa);
                poison(&c, out);
                int graphed = 0;
                tp_status run_st = o->graph ? tp_kernel_run_replayed(k, &c, out, 3, 2, &graphed)
                                            : tp_kernel_run_once(k, &c, out);
                /* back to the machine's level at once: the next case's setup (e.g. k-means) runs
                 * with the cpu backend's default, not with the level last tested */
                if (is_isa) tp_cpu_set_isa(saved_isa);
                double metric = INFINITY;
                int ok = run_st == TP_OK && tp_case_compare(&c, out, &metric);
                int rejected = 1;
                double bad_metric = 0;
                if (o->self_test && bad) {
                    memcpy(bad, out, c.out_bytes);
                    corrupt(&c, bad, &crng);
                    rejected = !tp_case_compare(&c, bad, &bad_metric);
                }
                int pass = ok && rejected;
                if (pass) res->passed++;
                else res->failed++;
                const char *isa = is_isa ? tp_isa_name(items[t].isa) : "-";
                char mbuf[64], bbuf[32];
                snprintf(mbuf, sizeof mbuf, "%s=%.3g", op->cmp == TP_CMP_REL_L2 ? "rel_l2" : op->cmp == TP_CMP_EXACT ? "diff" : "prop", metric);
                if (op->cmp == TP_CMP_REL_L2) snprintf(bbuf, sizeof bbuf, "%.0e", op->bound);
                else snprintf(bbuf, sizeof bbuf, "%s", op->cmp == TP_CMP_EXACT ? "exact" : "<=1");
                if (o->out) {
                    fprintf(o->out, "%-8s %-12s %-9s %-9s %-15s %-16s %-9s %s", op->name, op->variant,
                            k->backend, isa, shname, mbuf, bbuf, ok ? "PASS" : "FAIL");
                    if (o->self_test)
                        fprintf(o->out, "  self-test: %s (corrupted %s=%.3g)", rejected ? "rejected" : "ACCEPTED",
                                tp_cmp_metric_name(op->cmp), bad_metric);
                    if (o->graph && k->fetch) fprintf(o->out, graphed ? "  (graph replays)" : "  (no graph: one run)");
                    if (run_st != TP_OK) fprintf(o->out, "  (the kernel failed: %s)", tp_status_name(run_st));
                    if (!ok) fprintf(o->out, "  (replay: --seed %llu)", (unsigned long long)o->seed);
                    fputc('\n', o->out);
                }
                if (o->json) {
                    cJSON *j = cJSON_CreateObject();
                    cJSON_AddStringToObject(j, "op", op->name);
                    cJSON_AddStringToObject(j, "variant", op->variant);
                    cJSON_AddStringToObject(j, "backend", k->backend);
                    cJSON_AddStringToObject(j, "isa", isa);
                    cJSON_AddStringToObject(j, "shape", shname);
                    cJSON_AddStringToObject(j, "metric", tp_cmp_metric_name(op->cmp));
                    cJSON_AddNumberToObject(j, "value", isfinite(metric) ? metric : 1e308);
                    if (op->cmp == TP_CMP_REL_L2) cJSON_AddNumberToObject(j, "bound", op->bound);
                    else cJSON_AddStringToObject(j, "bound", op->cmp == TP_CMP_EXACT ? "exact" : "property<=1");
                    cJSON_AddStringToObject(j, "result", ok ? "pass" : "fail");
                    if (o->self_test) cJSON_AddBoolToObject(j, "self_test_rejected", rejected);
                    char seed[32];
                    snprintf(seed, sizeof seed, "%llu", (unsigned long long)c.seed);
                    cJSON_AddStringToObject(j, "case_seed", seed);
                    cJSON_AddItemToArray((cJSON *)o->json, j);
                }
            }
            tp_free(out);
            tp_free(bad);
            tp_case_free(&c);
        }
    }
    tp_cpu_set_isa(saved_isa);
    free(items);
    if (have_re) regfree(&re);
    return TP_OK;
}
