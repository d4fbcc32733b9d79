/* tenpak tokenize --model DIR [--ids-out FILE] [--no-special] TEXTFILE
 * Token ids of TEXTFILE by DIR/tokenizer.json, with the post-processor's special tokens unless
 * --no-special. --ids-out writes little-endian uint32 (atomically); otherwise ids go to stdout,
 * one line, space-separated. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "pipeline/tokenizer.h"
#include "tenpak/tenpak.h"

static void usage(FILE *f) {
    fprintf(f, "usage: tenpak tokenize --model DIR [--ids-out FILE] [--no-special] TEXTFILE\n"
               "  --model DIR      folder with tokenizer.json\n"
               "  --ids-out FILE   write ids as little-endian uint32 (else print them)\n"
               "  --no-special     do not add the post-processor's special tokens (e.g. BOS)\n");
}

int tp_cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *out = NULL, *in = NULL;
    int special = 1;
    for (int i = 1; i < argc; i++) {
        if (tp_flag(argv, i, "--help") || tp_flag(argv, i, "-h")) { usage(stdout); return 0; }
        if (tp_arg(argc, argv, &i, "--model", &model)) {}
        else if (tp_arg(argc, argv, &i, "--ids-out", &out)) {}
        else if (tp_flag(argv, i, "--no-special")) special = 0;
        else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "tenpak tokenize: unknown or incomplete option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (!in) in = argv[i];
        else { fprintf(stderr, "tenpak tokenize: more than one TEXTFILE ('%s')\n", argv[i]); return 2; }
    }
    if (!model || !in) { usage(stderr); return 2; }
    if (!tp_cli_output("tokenize", "--ids-out", out)) return 2;
    tp_err e = {{0}};
    char *tpath = malloc(strlen(model) + 32);
    if (!tpath) return 1;
    sprintf(tpath, "%s/tokenizer.json", model);
    tp_tokenizer *t = NULL;
    tp_status rc = tp_model_tokenizer_load(model, &t, &e); /* DIR/tokenizer.json or FILE.gguf */
    free(tpath);
    if (rc != TP_OK) { fprintf(stderr, "tenpak tokenize: %s\n", e.msg); return 1; }
    size_t len;
    char *text = tp_read_file(in, &len, &e);
    if (!text) { fprintf(stderr, "tenpak tokenize: %s\n", e.msg); tp_tokenizer_free(t); return 1; }
    int32_t *ids = NULL;
    size_t n = 0;
    rc = tp_tokenizer_encode(t, text, len, special, &ids, &n, &e);
    free(text);
    if (rc == TP_OK && out) {
        /* little-endian on any host */
        uint8_t *buf = malloc(n * 4 + 1);
        if (!buf) rc = tp_fail(&e, TP_ERR_NOMEM, "out of memory");
        for (size_t i = 0; buf && i < n; i++) {
            uint32_t v = (uint32_t)ids[i];
            buf[4 * i] = (uint8_t)v; buf[4 * i + 1] = (uint8_t)(v >> 8);
            buf[4 * i + 2] = (uint8_t)(v >> 16); buf[4 * i + 3] = (uint8_t)(v >> 24);
        }
        if (buf) rc = tp_write_file_atomic(out, buf, n * 4, &e);
        free(buf);
        if (rc == TP_OK) fprintf(stderr, "%zu tokens -> %s\n", n, out);
    } else if (rc == TP_OK) {
        for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        printf("\n");
    }
    free(ids);
    tp_tokenizer_free(t);
    if (rc != TP_OK) { fprintf(stderr, "tenpak tokenize: %s\n", e.msg); return 1; }
    return 0;
}
