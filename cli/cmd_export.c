/* tenpak export: a .tpk artifact as a llama.cpp-loadable GGUF (pipeline/gguf_export.h). */
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "pipeline/gguf_export.h"

static void usage(FILE *f) {
    fprintf(f, "usage: tenpak export --artifact F.tpk --out F.gguf [--model DIR] [--allow-f16]\n"
               "  Writes the artifact as a GGUF file for llama.cpp (llama, gpt2). int4:g=32 tensors become Q4_1\n"
               "  blocks without re-quantising (the same floats, bit for bit); uncompressed tensors keep their\n"
               "  F16/BF16/F32 (1-D ones F32). Any other codec is refused, naming the tensor, unless --allow-f16\n"
               "  writes it decoded as F16. --model: the source checkpoint folder (default: the one recorded).\n");
}

int tp_cmd_export(int argc, char **argv) {
    const char *artifact = NULL, *out = NULL, *model = NULL, *v;
    int allow_f16 = 0;
    for (int i = 1; i < argc; i++) {
        if (tp_arg(argc, argv, &i, "--artifact", &v)) artifact = v;
        else if (tp_arg(argc, argv, &i, "--out", &v)) out = v;
        else if (tp_arg(argc, argv, &i, "--model", &v)) model = v;
        else if (tp_flag(argv, i, "--allow-f16")) allow_f16 = 1;
        else if (tp_flag(argv, i, "--help")) { usage(stdout); return 0; }
        else {
            fprintf(stderr, "tenpak export: unknown or incomplete option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!artifact || !out) { usage(stderr); return 2; }
    if (!tp_cli_output("export", "--out", out)) return 2;
    tp_err e = {{0}};
    tp_gguf_export_result r;
    if (tp_gguf_export(artifact, model, out, allow_f16, &r, &e) != TP_OK) {
        fprintf(stderr, "tenpak export: %s\n", e.msg);
        return 1;
    }
    printf("%s: %llu bytes, %d tensors (%d Q4_1 from int4:g=32, %d uncompressed, %d decoded to F16)\n", out,
           (unsigned long long)r.file_bytes, r.ntensors, r.nq4_1, r.nraw, r.nf16_decoded);
    return 0;
}
