/* tenpak zip / unzip: lossless text compression with a language model. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/json_out.h"
#include "pipeline/lmzip.h"

static int zip_main(int argc, char **argv, int unzip) {
    const char *model = NULL, *artifact = NULL, *json = NULL, *v, *files[2];
    int nf = 0;
    tp_lmzip_coder coder = TP_LMZIP_AC;
    const char *cmd = unzip ? "unzip" : "zip";
    for (int i = 1; i < argc; i++) {
        if (tp_arg(argc, argv, &i, "--model", &v)) model = v;
        else if (tp_arg(argc, argv, &i, "--artifact", &v)) artifact = v;
        else if (!unzip && tp_arg(argc, argv, &i, "--json", &v)) json = v;
        else if (!unzip && tp_arg(argc, argv, &i, "--coder", &v)) {
            if (!strcmp(v, "ac")) coder = TP_LMZIP_AC;
            else if (!strcmp(v, "rans")) coder = TP_LMZIP_RANS;
            else { fprintf(stderr, "tenpak zip: --coder is ac or rans\n"); return 2; }
        } else if (tp_flag(argv, i, "--help")) {
            if (unzip) printf("usage: tenpak unzip (--model DIR | --artifact F.tpk [--model DIR]) IN.tpz OUT\n"
                              "  Needs the model (or artifact) and tokenizer the file was made with.\n");
            else printf("usage: tenpak zip (--model DIR | --artifact F.tpk [--model DIR]) [--coder ac|rans] [--json FILE] IN OUT.tpz\n"
                        "  Codes IN with the model's next-token probabilities. With --artifact the compressed\n"
                        "  model runs on its codecs' kernels (packed); unzip then needs the same artifact.\n"
                        "  --json writes bits_per_byte, model_bits_per_byte (the model's cross-entropy: the\n"
                        "  bound), gap_percent, kB_per_s, coder.\n");
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "tenpak %s: unknown option '%s'\n", cmd, argv[i]);
            return 2;
        } else if (nf < 2) files[nf++] = argv[i];
        else { fprintf(stderr, "tenpak %s: too many arguments\n", cmd); return 2; }
    }
    if ((!model && !artifact) || nf != 2) {
        fprintf(stderr, "tenpak %s: usage: tenpak %s (--model DIR | --artifact F.tpk) IN OUT (see --help)\n", cmd, cmd);
        return 2;
    }
    if (!tp_cli_output(cmd, "OUT", files[1]) || !tp_cli_output(cmd, "--json", json)) return 2;
    tp_lm_source src = {model, artifact};
    tp_err e;
    size_t n;
    uint8_t *in = tp_read_file(files[0], &n, &e);
    if (!in) { fprintf(stderr, "tenpak %s: %s\n", cmd, e.msg); return 1; }
    uint8_t *out = NULL;
    size_t on = 0;
    tp_lmzip_stats st;
    tp_status s = unzip ? tp_lmzip_decompress(&src, in, n, &out, &on, &st, &e)
                        : tp_lmzip_compress(&src, coder, in, n, &out, &on, &st, &e);
    free(in);
    if (s != TP_OK) {
        fprintf(stderr, "tenpak %s: %s: %s\n", cmd, files[0], e.msg);
        return 1;
    }
    s = tp_write_file_atomic(files[1], out, on, &e);
    free(out);
    if (s != TP_OK) { fprintf(stderr, "tenpak %s: %s\n", cmd, e.msg); return 1; }
    if (unzip) {
        printf("%s: %zu bytes from %zu (%zu tokens) in %.1f s\n", files[1], on, n, st.tokens, st.seconds);
        return 0;
    }
    double bpb = 8.0 * (double)on / (double)n, mbpb = st.model_bits / (double)n;
    double gap = 100.0 * (bpb - mbpb) / mbpb, kbps = (double)n / 1000.0 / st.seconds;
    /* the container's header (hashes, lengths, segment table) is a fixed cost: shown apart */
    double pbpb = 8.0 * (double)st.payload_bytes / (double)n, pgap = 100.0 * (pbpb - mbpb) / mbpb;
    printf("%s: %zu -> %zu bytes, %.4f bits/byte (model cross-entropy %.4f, gap %+.2f%%; coded stream alone %.4f, "
           "gap %+.2f%%), %zu tokens, %zu raw bytes, %.2f kB/s\n",
           files[1], n, on, bpb, mbpb, gap, pbpb, pgap, st.tokens, st.raw_bytes, kbps);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "input", files[0]);
        cJSON_AddStringToObject(o, "model", model ? model : "");
        if (artifact) cJSON_AddStringToObject(o, "artifact", artifact);
        cJSON_AddStringToObject(o, "coder", coder == TP_LMZIP_AC ? "ac" : "rans");
        cJSON_AddNumberToObject(o, "in_bytes", (double)n);
        cJSON_AddNumberToObject(o, "out_bytes", (double)on);
        cJSON_AddNumberToObject(o, "tokens", (double)st.tokens);
        cJSON_AddNumberToObject(o, "raw_bytes", (double)st.raw_bytes);
        cJSON_AddNumberToObject(o, "bits_per_byte", bpb);
        cJSON_AddNumberToObject(o, "model_bits_per_byte", mbpb);
        cJSON_AddNumberToObject(o, "gap_percent", gap);
        cJSON_AddNumberToObject(o, "payload_bits_per_byte", pbpb);
        cJSON_AddNumberToObject(o, "payload_gap_percent", pgap);
        cJSON_AddNumberToObject(o, "container_header_bytes", (double)(on - st.payload_bytes));
        cJSON_AddNumberToObject(o, "kB_per_s", kbps);
        cJSON_AddNumberToObject(o, "seconds", st.seconds);
        int rc = tp_cli_json_out("zip", json, o);
        cJSON_Delete(o);
        return rc;
    }
    return 0;
}

int tp_cmd_zip(int argc, char **argv) { return zip_main(argc, argv, 0); }
int tp_cmd_unzip(int argc, char **argv) { return zip_main(argc, argv, 1); }
