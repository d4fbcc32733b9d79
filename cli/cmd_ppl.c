/* tenpak ppl: perplexity of a text file under a Hugging Face model folder (see pipeline/ppl.h for
 * the protocols). Reports nll_sum, scored tokens, ppl, speed and the sha256 of the model files and
 * of the data, so a number can be traced to the exact bytes behind it. */
#include <cblas.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/json_out.h"
#include "pipeline/model.h"
#include "pipeline/ppl.h"
#include "pipeline/tokenizer.h"
#include "tenpak/sha256.h"
#include "tenpak/tenpak.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: tenpak ppl --model DIR (--data TEXTFILE | --ids IDSFILE) [options]\n"
            "  --model DIR        Hugging Face folder: config.json, tokenizer.json, *.safetensors\n"
            "  --data FILE        text, tokenized with the model's tokenizer (BOS added if it adds one)\n"
            "  --ids FILE         already tokenized: little-endian uint32 ids (as `tenpak tokenize` writes)\n"
            "  --ctx N            window (default: the model's context length)\n"
            "  --stride N         hf protocol stride (default 512, or ctx if smaller; at most ctx)\n"
            "  --max-tokens N     use only the first N tokens\n"
            "  --protocol P       hf (default; sliding window, every token scored once) or\n"
            "                     llamacpp (non-overlapping windows, second half scored)\n"
            "  --threads N        OpenBLAS threads (default: all cores)\n"
            "  --weights MODE     auto (default), f32 (fp32 copies) or per-layer (convert on use)\n"
            "  --device D         cpu (default) or cuda: each window's forward pass on the GPU (fp32\n"
            "                     weights uploaded once, cuBLAS sgemm without TF32); only the NLLs come back\n"
            "  --json FILE        write the result as JSON (atomically)\n"
            "model_sha256 is the SHA-256 of the model's .safetensors files concatenated in file-name\n"
            "order (for one model.safetensors: its sha256sum); data_sha256 is that of the data file.\n");
}

typedef struct bar { double t0; int tty; } bar;
static void progress(void *u, size_t done, size_t total) {
    bar *b = u;
    if (!b->tty) return;
    double el = tp_now() - b->t0, rate = el > 0 ? (double)done / el : 0;
    int w = 30, k = total ? (int)((double)w * (double)done / (double)total) : w;
    fprintf(stderr, "\r[%.*s%*s] %zu/%zu tokens  %.0f tok/s  ETA %.0fs ", k, "##############################", w - k,
            "", done, total, rate, rate > 0 ? (double)(total - done) / rate : 0.0);
    if (done == total) fprintf(stderr, "\n");
}

int tp_cmd_ppl(int argc, char **argv) {
    const char *model = NULL, *data = NULL, *idsf = NULL, *json = NULL, *proto = "hf", *wmode = "auto", *dev = "cpu";
    long long ctx = 0, stride = 0, maxtok = 0, threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (tp_flag(argv, i, "--help") || tp_flag(argv, i, "-h")) { usage(stdout); return 0; }
        else if (tp_arg(argc, argv, &i, "--model", &model)) {}
        else if (tp_arg(argc, argv, &i, "--data", &data)) {}
        else if (tp_arg(argc, argv, &i, "--ids", &idsf)) {}
        else if (tp_arg(argc, argv, &i, "--json", &json)) {}
        else if (tp_arg(argc, argv, &i, "--protocol", &proto)) {}
        else if (tp_arg(argc, argv, &i, "--weights", &wmode)) {}
        else if (tp_arg(argc, argv, &i, "--device", &dev)) {}
        else if (tp_arg(argc, argv, &i, "--ctx", &v)) { if (!tp_arg_int("ppl", "--ctx", v, 2, 1 << 20, &ctx)) return 2; }
        else if (tp_arg(argc, argv, &i, "--stride", &v)) { if (!tp_arg_int("ppl", "--stride", v, 1, 1 << 20, &stride)) return 2; }
        else if (tp_arg(argc, argv, &i, "--max-tokens", &v)) {
            if (!tp_arg_int("ppl", "--max-tokens", v, 1, 1000000000000LL, &maxtok)) return 2;
        } else if (tp_arg(argc, argv, &i, "--threads", &v)) { if (!tp_arg_int("ppl", "--threads", v, 1, 4096, &threads)) return 2; }
        else { fprintf(stderr, "tenpak ppl: unknown or incomplete option '%s'\n", argv[i]); usage(stderr); return 2; }
    }
    if (!model || (!data == !idsf)) { usage(stderr); return 2; }
    if (!tp_cli_output("ppl", "--json", json)) return 2;
    tp_ppl_opts po = {0};
    if (!strcmp(proto, "hf")) po.protocol = TP_PPL_HF;
    else if (!strcmp(proto, "llamacpp")) po.protocol = TP_PPL_LLAMACPP;
    else { fprintf(stderr, "tenpak ppl: --protocol must be hf or llamacpp, not '%s'\n", proto); return 2; }
    if (!strcmp(dev, "cpu")) po.device = TP_DEVICE_CPU;
    else if (!strcmp(dev, "cuda")) po.device = TP_DEVICE_CUDA;
    else { fprintf(stderr, "tenpak ppl: --device must be cpu or cuda, not '%s'\n", dev); return 2; }
    tp_model_opts mo = {0};
    if (!strcmp(wmode, "auto")) mo.weights = TP_WEIGHTS_AUTO;
    else if (!strcmp(wmode, "f32")) mo.weights = TP_WEIGHTS_F32;
    else if (!strcmp(wmode, "per-layer")) mo.weights = TP_WEIGHTS_PER_LAYER;
    else { fprintf(stderr, "tenpak ppl: --weights must be auto, f32 or per-layer\n"); return 2; }
    if (threads > 0) openblas_set_num_threads((int)threads);
    mo.max_ctx = (int)ctx;

    tp_err e = {{0}};
    tp_status rc = TP_OK;
    tp_model *m = NULL;
    tp_tokenizer *tok = NULL;
    char *text = NULL, *tpath = NULL;
    int32_t *ids = NULL;
    size_t n = 0, dlen = 0;
    char mhex[65] = "", dhex[65] = "";
    uint8_t dg[32];
    int bos_prepended = 0;

    if ((rc = tp_model_load(model, &mo, &m, &e)) != TP_OK) goto done;
    /* fail early (before tokenizing) when the device is unusable; tp_ppl_run keeps it */
    if ((rc = tp_model_set_device(m, po.device, &e)) != TP_OK) goto done;
    if (!(tpath = malloc(strlen(model) + 32))) { rc = tp_fail(&e, TP_ERR_NOMEM, "out of memory"); goto done; }
    sprintf(tpath, "%s/tokenizer.json", model);
    if (data || access(tpath, F_OK) == 0 || strstr(model, ".gguf"))
        if ((rc = tp_model_tokenizer_load(model, &tok, &e)) != TP_OK) goto done;
    if (!(text = tp_read_file(data ? data : idsf, &dlen, &e))) { rc = TP_ERR_IO; goto done; }
    tp_sha256(text, dlen, dg);
    tp_sha256_hex(dg, dhex);
    const int32_t *pre = NULL;
    size_t npre = tok ? tp_tokenizer_prefix(tok, &pre) : 0;
    if (data) {
        if ((rc = tp_tokenizer_encode(tok, text, dlen, 1, &ids, &n, &e)) != TP_OK) goto done;
        bos_prepended = npre > 0;
    } else {
        if (dlen % 4) { rc = tp_fail(&e, TP_ERR_FORMAT, "%s: size %zu is not a multiple of 4 (uint32 ids)", idsf, dlen); goto done; }
        n = dlen / 4;
        if (!(ids = malloc((n ? n : 1) * sizeof *ids))) { rc = tp_fail(&e, TP_ERR_NOMEM, "out of memory"); goto done; }
        const uint8_t *b = (const uint8_t *)text;
        for (size_t i = 0; i < n; i++)
            ids[i] = (int32_t)((uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 | (uint32_t)b[4 * i + 2] << 16 |
                               (uint32_t)b[4 * i + 3] << 24);
        bos_prepended = npre > 0 && n >= npre && !memcmp(ids, pre, npre * sizeof *ids);
    }
    if (maxtok > 0 && (size_t)maxtok < n) n = (size_t)maxtok;
    po.ctx = (int)ctx;
    po.stride = (int)stride;
    po.bos = npre ? pre[0] : -1;
    bar b = {tp_now(), isatty(2)};
    po.progress = progress;
    po.user = &b;
    uint8_t mg[32];
    if ((rc = tp_st_sha256(tp_model_files(m), mg, &e)) != TP_OK) goto done;
    tp_sha256_hex(mg, mhex);
    tp_ppl_result r;
    if ((rc = tp_ppl_run(m, ids, n, &po, &r, &e)) != TP_OK) goto done;

    double tps = (double)r.scored / r.seconds, ftps = (double)r.forward_tokens / r.seconds;
    double gflops = r.gemm_seconds > 0 ? r.gemm_flops / r.gemm_seconds * 1e-9 : 0;
    const tp_model_config *c = tp_model_cfg(m);
    printf("model        %s (%s, %s)\n", model, c->model_type, tp_model_weight_mode(m) == TP_WEIGHTS_F32 ? "fp32 weights" : "per-layer fp32");
    printf("data         %s (%zu tokens%s)\n", data ? data : idsf, n, bos_prepended ? ", BOS first" : "");
    printf("protocol     %s ctx %d stride %d, %zu windows\n", tp_ppl_protocol_name(po.protocol), r.ctx, r.stride, r.windows);
    printf("nll_sum      %.6f\n", r.nll_sum);
    printf("scored       %zu tokens\n", r.scored);
    printf("ppl          %.6f +/- %.6f (standard error of the mean NLL %.6f nats, times ppl)\n", r.ppl,
           r.ppl * r.nll_stderr, r.nll_stderr);
    if (po.device == TP_DEVICE_CPU)
        printf("speed        %.1f scored tok/s, %.1f forward tok/s, %.2f s wall; sgemm %.1f GFLOP/s (%.0f%% of wall)\n", tps,
               ftps, r.seconds, gflops, 100.0 * r.gemm_seconds / r.seconds);
    else
        printf("speed        %.1f scored tok/s, %.1f forward tok/s, %.2f s wall on %s (%s; weights uploaded before)\n",
               tps, ftps, r.seconds, tp_device_name(po.device), tp_model_device_desc(m));
    printf("model_sha256 %s\ndata_sha256  %s\n", mhex, dhex);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "tool", "tenpak ppl " TENPAK_VERSION);
        cJSON_AddStringToObject(o, "model", model);
        cJSON_AddStringToObject(o, "model_type", c->model_type);
        cJSON_AddStringToObject(o, "model_sha256", mhex);
        cJSON_AddStringToObject(o, "model_sha256_def", "sha256 of the .safetensors files concatenated in file-name order");
        cJSON_AddStringToObject(o, "data", data ? data : idsf);
        cJSON_AddStringToObject(o, "data_kind", data ? "text" : "uint32 ids");
        cJSON_AddStringToObject(o, "data_sha256", dhex);
        cJSON_AddNumberToObject(o, "tokens", (double)n);
        cJSON_AddBoolToObject(o, "bos_prepended", bos_prepended);
        cJSON_AddStringToObject(o, "protocol", tp_ppl_protocol_name(po.protocol));
        cJSON_AddNumberToObject(o, "ctx", r.ctx);
        cJSON_AddNumberToObject(o, "stride", r.stride);
        if (maxtok > 0) cJSON_AddNumberToObject(o, "max_tokens", (double)maxtok);
        else cJSON_AddNullToObject(o, "max_tokens");
        cJSON_AddStringToObject(o, "weights", tp_model_weight_mode(m) == TP_WEIGHTS_F32 ? "f32" : "per-layer");
        cJSON_AddNumberToObject(o, "threads", openblas_get_num_threads());
        cJSON_AddStringToObject(o, "device", tp_device_name(po.device));
        cJSON_AddStringToObject(o, "device_name", tp_model_device_desc(m));
        cJSON_AddNumberToObject(o, "windows", (double)r.windows);
        cJSON_AddNumberToObject(o, "scored_tokens", (double)r.scored);
        cJSON_AddNumberToObject(o, "nll_sum", r.nll_sum);
        cJSON_AddNumberToObject(o, "ppl", r.ppl);
        cJSON_AddNumberToObject(o, "nll_mean_stderr", r.nll_stderr);
        cJSON_AddNumberToObject(o, "ppl_stderr", r.ppl * r.nll_stderr);
        cJSON_AddNumberToObject(o, "wall_s", r.seconds);
        cJSON_AddNumberToObject(o, "tokens_per_s", tps);
        cJSON_AddNumberToObject(o, "tokens_per_second", tps); /* the older name of tokens_per_s (scored), kept for readers of it */
        cJSON_AddNumberToObject(o, "forward_tokens_per_s", ftps);
        cJSON_AddNumberToObject(o, "sgemm_gflops", gflops);
        cJSON_AddNumberToObject(o, "sgemm_time_fraction", r.gemm_seconds / r.seconds);
        rc = tp_cli_write_json(json, o, 1, &e);
        cJSON_Delete(o);
    }
done:
    free(tpath); free(text); free(ids);
    tp_tokenizer_free(tok);
    tp_model_free(m);
    if (rc != TP_OK) { fprintf(stderr, "tenpak ppl: %s\n", e.msg); return 1; }
    return 0;
}
