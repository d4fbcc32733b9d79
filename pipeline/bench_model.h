/* `tenpak bench-model`: a llama-bench-style model benchmark of compressed inference.
 *
 * Rows: the checkpoint with fp32 weights (TP_WEIGHTS_F32), with fp16 weights (TP_WEIGHTS_F16) and
 * each artifact (pipeline/artifact_model.h, packed or dequant). Tests per row, each timed
 * `repetitions` times after one untimed warm-up:
 *   ppN  prefill: from an empty KV cache one forward of N tokens, logits of the last row only;
 *   tgN  decode: from an empty KV cache N single-token forwards, each with its logits, the tokens
 *        fed from a fixed sequence (not the argmax: the work is the same for every codec).
 * Token ids: the start of the checkpoint's goldens/wiki.test.ids.u32 (WikiText-2 test) when it is
 * there and long enough, else a seeded pseudo-random sequence in [0, vocab).
 * Every row runs in its own forked process, so its peak RSS is its own; the copy bandwidth that
 * the decode roofline divides by is measured once, in the parent, after the rows.
 * Output: a console table and Google Benchmark JSON (the context of `tenpak bench`), benchmark
 * names model/<model>/<codec>/ppN and .../tgN. */
#ifndef TENPAK_PIPELINE_BENCH_MODEL_H
#define TENPAK_PIPELINE_BENCH_MODEL_H

#include <stdint.h>
#include <stdio.h>

#include "pipeline/artifact_model.h"
#include "pipeline/model.h"

typedef struct tp_bench_model_opts {
    const char *model_dir;
    const char *const *artifacts; /* nartifacts .tpk paths, each benchmarked against model_dir */
    int nartifacts;
    int pp, tg;          /* tokens of the prefill / decode test; 0 skips that test */
    int repetitions;     /* >= 1; the console shows medians */
    tp_exec exec;        /* how artifacts run (TP_EXEC_PACKED by default) */
    tp_device device;    /* TP_DEVICE_CUDA: every row's forward passes on the GPU (tp_model_set_device), the
                            roofline the device's copy bandwidth; peak RSS stays the host's */
    const char *json_path; /* Google Benchmark JSON, written atomically; NULL: none */
    FILE *out;           /* console table; NULL: none */
    FILE *err;           /* failing rows, one line each; NULL: none */
    int progress;        /* one line per row on stderr as it finishes */
} tp_bench_model_opts;

/* Runs every row. A row that fails (its process reports its message, or dies) is written to
 * o->err as it happens and counted in *failed_rows; the others still run, then the run returns
 * the first failure (its message in e) and writes no JSON. */
tp_status tp_bench_model_run(const tp_bench_model_opts *o, int *failed_rows, tp_err *e);

/* Weight bytes one forward pass of n tokens reads (n = 1: one decode step); the rule is written
 * beside its definition in bench_model.c. */
double tp_bench_model_weight_bytes(const tp_model *m, int n);

/* The <codec> part of a benchmark name: spec with ':', ',', '=', '+' (and '/', ' ') written as
 * '_', e.g. "int4:g=128,refine=0" -> "int4_g_128_refine_0". */
void tp_bench_model_codec_name(const char *spec, char *dst, size_t cap);

#endif
