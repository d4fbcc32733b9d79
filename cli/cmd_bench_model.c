/* tenpak bench-model: prefill / decode tokens/s of a checkpoint in fp32 and fp16 and of each
 * artifact, with weight bytes per token, peak RSS and the decode roofline (pipeline/bench_model.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "pipeline/bench_model.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: tenpak bench-model --model DIR [--artifact F.tpk]... [--pp 512] [--tg 128] [--repetitions N]\n"
            "                          [--exec packed|dequant] [--device cpu|cuda] [--json FILE]\n"
            "  --model DIR        Hugging Face checkpoint folder; its fp32 and fp16 rows are always run\n"
            "  --artifact F.tpk   an artifact of that checkpoint (tenpak compress); repeatable\n"
            "  --pp N             prefill test: one forward of N tokens from an empty cache (default 512; 0 skips)\n"
            "  --tg N             decode test: N single-token forwards from an empty cache (default 128; 0 skips)\n"
            "  --repetitions N    timed runs of each test after one warm-up (default 3); the table shows medians\n"
            "  --exec MODE        packed (default: the codec's kernels on the packed weights) or dequant\n"
            "  --device D         cpu (default) or cuda: every row's forward passes on the GPU (fp32: cuBLAS\n"
            "                     sgemm; fp16: cuBLAS fp16 x fp16 -> fp32; packed int4/int4r2/nf4: the INT4\n"
            "                     kernels), roofline = the GPU's copy bandwidth; peak RSS is the host's\n"
            "  --json FILE        Google Benchmark JSON (context as `tenpak bench`), names\n"
            "                     model/<model>/<codec>/ppN and model/<model>/<codec>/tgN\n"
            "Each row runs in its own process (its peak RSS is its own). bytes/token: the weight bytes one\n"
            "forward reads per token; roofline: decode bytes/token x tokens/s / the copy bandwidth of this run\n"
            "(bytes read + written, buffers twice the last-level cache: memory's rate, not the cache's).\n");
}

static int parse_count(const char *flag, const char *v, int *out) {
    long long x;
    if (!tp_arg_int("bench-model", flag, v, 0, 100000000, &x)) return 0;
    *out = (int)x;
    return 1;
}

int tp_cmd_bench_model(int argc, char **argv) {
    tp_bench_model_opts o = {.pp = 512, .tg = 128, .repetitions = 3, .exec = TP_EXEC_PACKED, .out = stdout,
                             .err = stderr, .progress = isatty(2)};
    const char **arts = calloc((size_t)argc, sizeof *arts);
    if (!arts) { fprintf(stderr, "tenpak bench-model: out of memory\n"); return 1; }
    o.artifacts = arts;
    int rc = 0;
    for (int i = 1; i < argc && !rc; i++) {
        const char *v;
        if (tp_flag(argv, i, "--help") || tp_flag(argv, i, "-h")) { usage(stdout); free(arts); return 0; }
        else if (tp_arg(argc, argv, &i, "--model", &v)) o.model_dir = v;
        else if (tp_arg(argc, argv, &i, "--artifact", &v)) arts[o.nartifacts++] = v;
        else if (tp_arg(argc, argv, &i, "--json", &v)) o.json_path = v;
        else if (tp_arg(argc, argv, &i, "--pp", &v)) rc = !parse_count("--pp", v, &o.pp);
        else if (tp_arg(argc, argv, &i, "--tg", &v)) rc = !parse_count("--tg", v, &o.tg);
        else if (tp_arg(argc, argv, &i, "--repetitions", &v)) rc = !parse_count("--repetitions", v, &o.repetitions);
        else if (tp_arg(argc, argv, &i, "--device", &v)) {
            if (!strcmp(v, "cpu")) o.device = TP_DEVICE_CPU;
            else if (!strcmp(v, "cuda")) o.device = TP_DEVICE_CUDA;
            else {
                fprintf(stderr, "tenpak bench-model: --device must be cpu or cuda, not '%s'\n", v);
                rc = 1;
            }
        } else if (tp_arg(argc, argv, &i, "--exec", &v)) {
            if (!tp_exec_parse(v, &o.exec)) {
                fprintf(stderr, "tenpak bench-model: --exec must be packed or dequant, not '%s'\n", v);
                rc = 1;
            }
        } else {
            fprintf(stderr, "tenpak bench-model: unknown option '%s' (see --help)\n", argv[i]);
            rc = 1;
        }
    }
    if (!rc && !o.model_dir) {
        fprintf(stderr, "tenpak bench-model: --model is required (see --help)\n");
        rc = 1;
    }
    if (!rc && o.repetitions < 1) {
        fprintf(stderr, "tenpak bench-model: --repetitions must be at least 1\n");
        rc = 1;
    }
    if (!rc && o.pp == 0 && o.tg == 0) {
        fprintf(stderr, "tenpak bench-model: --pp and --tg are both 0: nothing to run\n");
        rc = 1;
    }
    if (rc) { free(arts); return 2; }
    tp_err e = {{0}};
    int failed = 0;
    tp_status s = tp_bench_model_run(&o, &failed, &e);
    free(arts);
    if (s != TP_OK) {
        if (!failed) fprintf(stderr, "tenpak bench-model: %s\n", e.msg); /* failing rows were written as they failed */
        return 1;
    }
    if (o.json_path) printf("wrote %s\n", o.json_path);
    return 0;
}
