/* `tenpak entropy streams`: the lossless stage after a codec, on real weights. Every 2-D weight of
 * a checkpoint is quantised (INT4 min/max, groups along rows) and its nibble stream and fp16
 * scale+offset stream (also split into byte planes: scales.hi, scales.lo) are coded with rANS, AC,
 * zstd -3, zstd -19 and zstd -19 with a trained dictionary; then, once, the VQ code stream (k-means
 * d4 K256) and the 2:4 metadata stream. Every round trip is checked. One thread; the CLI
 * (cli/cmd_entropy.c) parses the options and prints what the sink is handed. */
#ifndef TENPAK_PIPELINE_ENTROPY_STREAMS_H
#define TENPAK_PIPELINE_ENTROPY_STREAMS_H

#include <stddef.h>

#include "pipeline/safetensors.h"
#include "tenpak/tenpak.h"

/* one method on one stream; bytes in and out, encode / decode seconds (1 where the round trip failed) */
typedef struct tp_streams_row {
    int group; /* the INT4 group size, 0 for the streams that do not depend on it (vq.codes, sp24.meta) */
    const char *stream, *method;
    double in, out, enc_s, dec_s;
} tp_streams_row;

/* What the run hands over, in order: tensors once after the first group's quantisation, then each
 * stream's rows (dict_failed in place of the dictionary row where training had too few samples),
 * vq before the VQ / 2:4 rows. */
typedef struct tp_streams_sink {
    void *user;
    void (*tensors)(void *user, size_t n2d);              /* 2-D tensors quantised per group */
    void (*row)(void *user, const tp_streams_row *r);
    void (*dict_failed)(void *user, const tp_streams_row *r); /* r->in / out not measured */
    void (*vq)(void *user, size_t ntensors, double seconds); /* VQ + 2:4 encoded: tensors, k-means + encode time */
} tp_streams_sink;

typedef struct tp_streams_opts {
    const int *groups; /* INT4 group sizes, 2..4096 */
    int ngroups;
    int repeat;        /* timings per method (median), 1..16 */
    int vq_tensors;    /* VQ / 2:4 on the first N 2-D tensors; < 0: all; 0: skipped */
    int vq_iters;      /* Lloyd iterations of the k-means */
} tp_streams_opts;

/* TP_ERR_NOMEM, or TP_ERR_INTERNAL naming the stream whose round trip failed (that stream's rows
 * are handed over first; the run stops there). */
tp_status tp_entropy_streams(tp_st_set *set, const tp_streams_opts *o, const tp_streams_sink *sink, tp_err *e);

#endif
