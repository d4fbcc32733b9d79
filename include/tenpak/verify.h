/* The verify driver shared by `tenpak verify` and the Criterion suites: every kernel of the
 * registry against its op's reference, on fresh random inputs. */
#ifndef TENPAK_VERIFY_H
#define TENPAK_VERIFY_H

#include <stdio.h>

#include "tenpak/registry.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tp_verify_opts {
    const char *filter;  /* POSIX extended regex on "op/variant/backend/shape"; NULL = all */
    const char *backend; /* only this backend; NULL = all */
    uint64_t seed;       /* run seed; each case derives its own from it and its name */
    int self_test;       /* also corrupt each output and require the comparison to reject it */
    int graph;           /* device kernels: the output of 2 replays of a graph of 3 runs
                            (tp_kernel_run_replayed), as bench times them */
    FILE *out;           /* one line per case; NULL = quiet */
    void *json;          /* a cJSON array to append one object per case to, or NULL */
} tp_verify_opts;

typedef struct tp_verify_result {
    int passed, failed, skipped;
} tp_verify_result;

/* Returns TP_OK when it ran (even with failures), TP_ERR_ARG for a bad regex. */
tp_status tp_verify_run(const tp_verify_opts *o, tp_verify_result *res, tp_err *e);

#ifdef __cplusplus
}
#endif
#endif
