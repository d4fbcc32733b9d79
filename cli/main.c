/* tenpak: the command-line front end. Sub-commands live in cli/cmd_*.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "tenpak/files.h"
#include "tenpak/tenpak.h"

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} command;

static const command commands[] = {
    {"list", tp_cmd_list, "list every kernel in the registry (op/variant/backend) and the machine"},
    {"verify", tp_cmd_verify, "differential tests of every kernel against its reference"},
    {"bench", tp_cmd_bench, "benchmarks (Google Benchmark JSON / CSV / console)"},
    {"bench-model", tp_cmd_bench_model, "model-level prefill / decode tokens/s, bytes per token, peak RSS, roofline (llama-bench style)"},
    {"codecs", tp_cmd_codecs, "codecs and their bits/weight from actual packed sizes"},
    {"compress", tp_cmd_compress, "compress a checkpoint with a codec into an artifact (.tpk)"},
    {"calib-check", tp_cmd_calib_check, "how well the sensitivity proxies rank tensors by the KLD of quantising each alone"},
    {"eval", tp_cmd_eval, "perplexity of an artifact beside its source model, with byte accounting"},
    {"export", tp_cmd_export, "write an artifact as a llama.cpp GGUF (int4:g=32 as Q4_1, exactly)"},
    {"generate", tp_cmd_generate, "generate text from a prompt with a model or a compressed artifact (greedy or sampled)"},
    {"claims", tp_cmd_claims, "verify published claims: VERIFIED / FAILED / NEEDS MODEL"},
    {"report", tp_cmd_report, "run the codec x model matrix and write the experiment log"},
    {"zip", tp_cmd_zip, "lossless text compression with a language model (arithmetic coding / rANS)"},
    {"unzip", tp_cmd_unzip, "decompress a tenpak zip file (needs the same model)"},
    {"entropy", tp_cmd_entropy, "entropy coding (rANS, AC): encode / decode files, weight streams vs zstd"},
    {"tokenize", tp_cmd_tokenize, "token ids of a text file by a model's tokenizer.json"},
    {"ppl", tp_cmd_ppl, "perplexity of a text under a Hugging Face model (HF or llama.cpp protocol)"},
};

static void usage(FILE *f) {
    fprintf(f, "tenpak %s: LLM weight compression kernels, verified and benchmarked\n\n"
               "usage: tenpak COMMAND [options]   (tenpak COMMAND --help for its options)\n\n",
            TENPAK_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
}

/* OpenBLAS's pthread pool spins (with sched_yield) for about 2^28 cycles after every call, and
 * the OpenMP threads of tenpak's own kernels then fight it for the two cores: kernels measured
 * after a BLAS call ran up to 10x slow, and BLAS calls after OpenMP regions slowed too. OpenBLAS
 * reads OPENBLAS_THREAD_TIMEOUT when it is loaded, before main, so set it (2^4 cycles: its
 * threads sleep at once after a call) and start again, unless the user chose a value. */
static void calm_thread_pools(char **argv) {
    if (getenv("OPENBLAS_THREAD_TIMEOUT") || getenv("TENPAK_NO_REEXEC")) return;
    setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1);
    setenv("TENPAK_NO_REEXEC", "1", 1);
    execv("/proc/self/exe", argv); /* on failure, go on as we are */
}

int main(int argc, char **argv) {
    calm_thread_pools(argv);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("tenpak %s\n", TENPAK_VERSION);
        return 0;
    }
    /* one command per process: no output it writes may be a file it read (tenpak/files.h) */
    tp_files_guard_enable();
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "tenpak: unknown command '%s' (tenpak --help lists them)\n", argv[1]);
    return 2;
}
