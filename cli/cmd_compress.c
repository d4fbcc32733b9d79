/* tenpak compress / tenpak eval: a checkpoint through a codec into an artifact, and the
 * artifact's perplexity beside the original's, with honest byte accounting. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/json_out.h"
#include "pipeline/artifact_model.h"
#include "pipeline/codec.h"
#include "pipeline/compress.h"

static void compress_usage(FILE *f) {
    fprintf(f, "usage: tenpak compress --model DIR --codec SPEC --out FILE.tpk [--lossless none|zstd|zstd:LEVEL]\n"
               "                       [--select linear|mlp|attn] [--compress-embeddings]\n"
               "                       [--override REGEX=SPEC]... [--calib FILE] [--calib-tokens N]\n"
               "                       [--mixed-kld-tokens N] [--json FILE]\n"
               "  SPEC: method[:key=value,...][+method...], methods: %s\n"
               "  e.g. int4:g=16  int4r2:g=16  nf4:g=64  int4:g=128,refine=4  awq:g=128,alpha=0.5  mixed:budget=4.5\n"
               "       gptq:g=128,act_order=1,damp=0.01  gptq:g=64,clip=1 (clip: searched group ranges)\n"
               "  --override gives tensors whose name matches REGEX their own SPEC ('none' keeps them).\n"
               "  awq, gptq and mixed run the model over calibration text first: --calib FILE (.gz read through\n"
               "  zlib; default %s, never an evaluation file), its first --calib-tokens tokens (default %d).\n"
               "  mixed scales each tensor's proxy by its KLD alone over the first --mixed-kld-tokens tokens of\n"
               "  that text (default 1024), then measures the whole model's KLD there for its plan and for every\n"
               "  uniform candidate that fits the budget, and writes the least.\n",
            tp_codec_methods(), tp_calib_default_path(), TP_CALIB_DEFAULT_TOKENS);
}

static cJSON *size_json(const tp_compress_result *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "artifact_bytes", (double)r->artifact_bytes);
    cJSON_AddNumberToObject(o, "fp32_bytes", (double)r->fp32_bytes);
    cJSON_AddNumberToObject(o, "fp16_bytes", (double)r->fp16_bytes);
    cJSON_AddNumberToObject(o, "ratio_fp32", (double)r->fp32_bytes / (double)r->artifact_bytes);
    cJSON_AddNumberToObject(o, "ratio_fp16", (double)r->fp16_bytes / (double)r->artifact_bytes);
    cJSON_AddNumberToObject(o, "bits_per_weight", 8.0 * (double)r->compressed_bytes / (double)r->compressed_numel);
    cJSON_AddNumberToObject(o, "bits_per_weight_model", 8.0 * (double)r->artifact_bytes / (double)r->total_numel);
    cJSON_AddNumberToObject(o, "theory_bits_per_weight", r->theory_bpw);
    cJSON_AddNumberToObject(o, "compressed_tensors", r->ncompressed);
    cJSON_AddNumberToObject(o, "tensors", r->ntensors);
    cJSON_AddNumberToObject(o, "compressed_weights", (double)r->compressed_numel);
    cJSON_AddNumberToObject(o, "weights", (double)r->total_numel);
    cJSON_AddNumberToObject(o, "rel_frobenius_error", r->rel_error);
    return o;
}

static void print_sizes(const tp_compress_result *r) {
    printf("artifact      %llu bytes (%d of %d tensors compressed, %llu of %llu weights)\n",
           (unsigned long long)r->artifact_bytes, r->ncompressed, r->ntensors,
           (unsigned long long)r->compressed_numel, (unsigned long long)r->total_numel);
    printf("vs fp32       %llu bytes: %.3fx smaller\n", (unsigned long long)r->fp32_bytes,
           (double)r->fp32_bytes / (double)r->artifact_bytes);
    printf("vs fp16       %llu bytes: %.3fx smaller\n", (unsigned long long)r->fp16_bytes,
           (double)r->fp16_bytes / (double)r->artifact_bytes);
    printf("bits/weight   %.4f actual over compressed tensors (theory %.4f), %.4f over the whole model\n",
           8.0 * (double)r->compressed_bytes / (double)r->compressed_numel, r->theory_bpw,
           8.0 * (double)r->artifact_bytes / (double)r->total_numel);
    printf("rel error     %.5f (Frobenius, over compressed tensors)\n", r->rel_error);
}

int tp_cmd_compress(int argc, char **argv) {
    tp_compress_opts o = {0};
    const char *out = NULL, *json = NULL, *v;
    for (int i = 1; i < argc; i++) {
        if (tp_arg(argc, argv, &i, "--model", &v)) o.model_dir = v;
        else if (tp_arg(argc, argv, &i, "--codec", &v)) o.codec = v;
        else if (tp_arg(argc, argv, &i, "--out", &v)) out = v;
        else if (tp_arg(argc, argv, &i, "--lossless", &v)) o.lossless = v;
        else if (tp_arg(argc, argv, &i, "--select", &v)) o.select = v;
        else if (tp_arg(argc, argv, &i, "--json", &v)) json = v;
        else if (tp_arg(argc, argv, &i, "--calib", &v)) o.calib_data = v;
        else if (tp_arg(argc, argv, &i, "--mixed-kld-tokens", &v)) {
            long long x;
            if (!tp_arg_int("compress", "--mixed-kld-tokens", v, 2, 1000000000LL, &x)) return 2;
            o.mixed_kld_tokens = (size_t)x;
        } else if (tp_arg(argc, argv, &i, "--calib-tokens", &v)) {
            long long x;
            if (!tp_arg_int("compress", "--calib-tokens", v, 2, 1000000000LL, &x)) return 2;
            o.calib_tokens = (size_t)x;
        } else if (tp_arg(argc, argv, &i, "--override", &v)) {
            const char *eq = strrchr(v, '=');
            /* REGEX=SPEC: the spec is after the last '=' that starts a method name */
            const char *sep = NULL;
            for (const char *p = v; (p = strchr(p, '=')); p++)
                if (p[1] >= 'a' && p[1] <= 'z' && (p == v || p[-1] != ',')) { sep = p; break; }
            (void)eq;
            if (!sep || o.noverrides == TP_MAX_OVERRIDES) {
                fprintf(stderr, "tenpak compress: --override needs REGEX=SPEC (at most %d)\n", TP_MAX_OVERRIDES);
                return 2;
            }
            char *re = strndup(v, (size_t)(sep - v));
            o.override_re[o.noverrides] = re;
            o.override_spec[o.noverrides++] = sep + 1;
        } else if (tp_flag(argv, i, "--compress-embeddings")) o.compress_embeddings = 1;
        else if (tp_flag(argv, i, "--help")) { compress_usage(stdout); return 0; }
        else {
            fprintf(stderr, "tenpak compress: unknown option '%s' (see --help)\n", argv[i]);
            return 2;
        }
    }
    if (!o.model_dir || !o.codec || !out) {
        compress_usage(stderr);
        return 2;
    }
    if (!tp_cli_output("compress", "--out", out) || !tp_cli_output("compress", "--json", json)) return 2;
    tp_compress_result r;
    tp_err e;
    tp_status s = tp_compress_model(&o, out, &r, &e);
    for (int k = 0; k < o.noverrides; k++) free((char *)o.override_re[k]);
    if (s != TP_OK) {
        fprintf(stderr, "tenpak compress: %s\n", e.msg);
        return 1;
    }
    printf("wrote %s in %.1f s\n", out, r.seconds);
    if (r.calib_tokens)
        printf("calibration   %zu tokens of %s (sha256 %.16s...)\n", r.calib_tokens,
               o.calib_data ? o.calib_data : tp_calib_default_path(), r.calib_sha256);
    if (r.plan) fputs(r.plan, stdout);
    print_sizes(&r);
    int rc = 0;
    if (json) {
        cJSON *j = size_json(&r);
        cJSON_AddStringToObject(j, "artifact", out);
        cJSON_AddStringToObject(j, "model", o.model_dir);
        cJSON_AddStringToObject(j, "codec", o.codec);
        if (r.calib_tokens) {
            cJSON_AddNumberToObject(j, "calib_tokens", (double)r.calib_tokens);
            cJSON_AddStringToObject(j, "calib_sha256", r.calib_sha256);
        }
        rc = tp_cli_json_out("compress", json, j);
        cJSON_Delete(j);
    }
    tp_compress_result_free(&r);
    return rc;
}

static void progress(void *u, size_t done, size_t total) {
    (void)u;
    fprintf(stderr, "\r  ppl %zu / %zu tokens", done, total);
    if (done == total) fputc('\n', stderr);
}

static void print_paired(const tp_eval_result *r) {
    const tp_token_stats *s = &r->stats;
    printf("ppl           %.4f +/- %.4f (baseline %.4f +/- %.4f, %+.3f%%, 95%% interval [%+.3f%%, %+.3f%%])\n", r->ppl.ppl,
           r->ppl.ppl * r->ppl.nll_stderr, r->baseline.ppl, r->baseline.ppl * r->baseline.nll_stderr, s->ppl_delta_percent,
           s->ppl_delta_percent_ci.lo, s->ppl_delta_percent_ci.hi);
    printf("kld           mean %.6f [%.6f, %.6f], median %.6f, p90 %.6f, p99 %.6f, p99.9 %.6f, max %.6f nats\n",
           s->kld_mean, s->kld_mean_ci.lo, s->kld_mean_ci.hi, s->kld_median, s->kld_p90, s->kld_p99, s->kld_p999,
           s->kld_max);
    printf("top-1         %.3f%% [%.3f%%, %.3f%%] of scored tokens: both models' argmax agree\n", 100 * s->top1_agreement,
           100 * s->top1_agreement_ci.lo, 100 * s->top1_agreement_ci.hi);
    printf("logprob corr  %.6f (Pearson, true-token log-probs)\n", s->logprob_correlation);
    printf("bootstrap     %d resamples of %zu blocks of %zu scored tokens, seed %llu (paired; [ ] are 95%% intervals)\n",
           s->boot.resamples, s->blocks, s->boot.block_len, (unsigned long long)s->boot.seed);
}

int tp_cmd_eval(int argc, char **argv) {
    tp_eval_opts o = {.decode_tokens = 64};
    int exec_set = 0;
    const char *json = NULL, *v;
    long long x;
    for (int i = 1; i < argc; i++) {
        if (tp_arg(argc, argv, &i, "--artifact", &v)) o.artifact = v;
        else if (tp_arg(argc, argv, &i, "--model", &v)) o.model_dir = v;
        else if (tp_arg(argc, argv, &i, "--data", &v)) o.data = v;
        else if (tp_arg(argc, argv, &i, "--json", &v)) json = v;
        else if (tp_arg(argc, argv, &i, "--max-tokens", &v)) {
            if (!tp_arg_int("eval", "--max-tokens", v, 1, 1000000000000LL, &x)) return 2;
            o.max_tokens = (size_t)x;
        } else if (tp_arg(argc, argv, &i, "--ctx", &v)) {
            if (!tp_arg_int("eval", "--ctx", v, 2, 1 << 20, &x)) return 2;
            o.ppl.ctx = (int)x;
        } else if (tp_arg(argc, argv, &i, "--stride", &v)) {
            if (!tp_arg_int("eval", "--stride", v, 1, 1 << 20, &x)) return 2;
            o.ppl.stride = (int)x;
        } else if (tp_arg(argc, argv, &i, "--tail-chars", &v)) {
            if (!tp_arg_int("eval", "--tail-chars", v, 1, 1000000000000LL, &x)) return 2;
            o.tail_chars = (size_t)x;
        } else if (tp_arg(argc, argv, &i, "--protocol", &v)) {
            if (!strcmp(v, "hf")) o.ppl.protocol = TP_PPL_HF;
            else if (!strcmp(v, "llamacpp")) o.ppl.protocol = TP_PPL_LLAMACPP;
            else { fprintf(stderr, "tenpak eval: --protocol is hf or llamacpp\n"); return 2; }
        } else if (tp_arg(argc, argv, &i, "--device", &v)) {
            if (!strcmp(v, "cpu")) o.ppl.device = TP_DEVICE_CPU;
            else if (!strcmp(v, "cuda")) o.ppl.device = TP_DEVICE_CUDA;
            else { fprintf(stderr, "tenpak eval: --device is cpu or cuda\n"); return 2; }
        } else if (tp_arg(argc, argv, &i, "--dump-tokens", &v)) o.dump_tokens = v;
        else if (tp_arg(argc, argv, &i, "--bootstrap-resamples", &v)) {
            if (!tp_arg_int("eval", "--bootstrap-resamples", v, 1000, 1000000, &x)) return 2;
            o.boot.resamples = (int)x;
        } else if (tp_arg(argc, argv, &i, "--bootstrap-block", &v)) {
            if (!tp_arg_int("eval", "--bootstrap-block", v, 1, 1000000000000LL, &x)) return 2;
            o.boot.block_len = (size_t)x;
        } else if (tp_arg(argc, argv, &i, "--bootstrap-seed", &v)) {
            if (!tp_arg_int("eval", "--bootstrap-seed", v, 1, 1LL << 53, &x)) return 2;
            o.boot.seed = (uint64_t)x;
        } else if (tp_flag(argv, i, "--no-kld")) o.no_paired = 1;
        else if (tp_arg(argc, argv, &i, "--exec", &v)) {
            tp_exec x;
            if (!tp_exec_parse(v, &x)) { fprintf(stderr, "tenpak eval: --exec is packed or dequant\n"); return 2; }
            o.exec = (int)x;
            exec_set = 1;
        } else if (tp_flag(argv, i, "--help")) {
            printf("usage: tenpak eval --artifact FILE.tpk --data FILE [--model DIR] [--max-tokens N] [--ctx N]\n"
                   "                   [--stride N] [--protocol hf|llamacpp] [--tail-chars N] [--device cpu|cuda]\n"
                   "                   [--exec packed|dequant] [--dump-tokens FILE] [--bootstrap-resamples N]\n"
                   "                   [--bootstrap-block N] [--bootstrap-seed N] [--no-kld] [--json FILE]\n"
                   "  Rebuilds the model from the artifact (the source checkpoint must be present: its\n"
                   "  config and tokenizer are used, and their sha256 and the checkpoint's must be the ones\n"
                   "  recorded at compress time) and measures perplexity\n"
                   "  with the protocol of `tenpak ppl`, beside the uncompressed model's on the same tokens.\n"
                   "  On the cpu both models run in this process over the same windows: per scored token,\n"
                   "  KL(base || compressed) of the next-token distributions (kld_mean, median, p90, p99,\n"
                   "  p99.9, max; nats), top-1 agreement and the Pearson correlation of the true token's\n"
                   "  log-probs; 95%% intervals of kld_mean, top1_agreement and ppl_delta_percent by a paired\n"
                   "  block bootstrap (default %d resamples (at least 1000) of blocks of %d scored tokens,\n"
                   "  shorter below %d tokens so that there are %d blocks; seed %d). --dump-tokens writes\n"
                   "  the per-token records (verify/cli/token_stats.py recomputes every statistic from them).\n"
                   "  --no-kld: the two models one after the other, perplexities only (as --device cuda).\n"
                   "  --exec packed (default on the cpu): the compressed tensors stay in their codec's format\n"
                   "  and its kernels multiply by them; dequant: decoded to fp32 first (the reference, and the\n"
                   "  default with --device cuda).\n", TP_BOOT_RESAMPLES, TP_BOOT_BLOCK_LEN,
                   TP_BOOT_BLOCK_LEN * TP_BOOT_MIN_BLOCKS, TP_BOOT_MIN_BLOCKS, TP_BOOT_SEED);
            return 0;
        } else {
            fprintf(stderr, "tenpak eval: unknown option '%s' (see --help)\n", argv[i]);
            return 2;
        }
    }
    if (!o.artifact || !o.data) {
        fprintf(stderr, "tenpak eval: --artifact and --data are required (see --help)\n");
        return 2;
    }
    if (!tp_cli_output("eval", "--json", json) || !tp_cli_output("eval", "--dump-tokens", o.dump_tokens)) return 2;
    if (!exec_set && o.ppl.device == TP_DEVICE_CUDA) o.exec = TP_EXEC_DEQUANT; /* packed kernels are the cpu's */
    if (isatty(2)) o.ppl.progress = progress;
    tp_eval_result r;
    tp_err e;
    if (tp_eval_artifact(&o, &r, &e) != TP_OK) {
        fprintf(stderr, "tenpak eval: %s\n", e.msg);
        return 1;
    }
    if (!r.files_checked && strstr(o.artifact, ".gguf")) /* a GGUF: its sizes were compared with --model's config */
        fprintf(stderr, "tenpak eval: note: %s is a GGUF: scored with %s's tokenizer\n", o.artifact, o.model_dir);
    else if (!r.files_checked)
        fprintf(stderr, "tenpak eval: note: %s records no sha256 of config.json and tokenizer.json (made by an older "
                "tenpak): they were not checked\n", o.artifact);
    double delta = r.paired ? r.stats.ppl_delta_percent : 100.0 * (r.ppl.ppl - r.baseline.ppl) / r.baseline.ppl;
    printf("artifact      %s (codec %s)\n", o.artifact, r.codec);
    print_sizes(&r.size);
    printf("data          %s (%zu tokens, %zu scored, %s protocol, ctx %d, stride %d)\n", o.data, r.tokens,
           r.ppl.scored, tp_ppl_protocol_name(o.ppl.protocol), r.ppl.ctx, r.ppl.stride);
    if (r.paired) print_paired(&r);
    else printf("ppl           %.4f (baseline %.4f, %+.3f%%)\n", r.ppl.ppl, r.baseline.ppl, delta);
    double tps = r.ppl.seconds > 0 ? (double)r.ppl.scored / r.ppl.seconds : 0;
    printf("speed         %.1f scored tok/s on %s, %s weights\n", tps, tp_device_name(o.ppl.device),
           tp_exec_name((tp_exec)r.exec));
    if (r.decode_tps > 0)
        printf("decode        %.1f tok/s (baseline %.1f; %d one-token steps through the KV cache)\n", r.decode_tps,
               r.baseline_decode_tps, o.decode_tokens);
    printf("peak RSS      %.1f MiB\n", (double)r.peak_rss_bytes / (1 << 20));
    int rc = 0;
    if (json) {
        cJSON *j = size_json(&r.size);
        cJSON_AddStringToObject(j, "artifact", o.artifact);
        cJSON_AddStringToObject(j, "codec", r.codec);
        cJSON_AddStringToObject(j, "model_type", r.model_type);
        cJSON_AddStringToObject(j, "model_sha256", r.model_sha256);
        cJSON_AddBoolToObject(j, "source_files_checked", r.files_checked);
        cJSON_AddStringToObject(j, "data", o.data);
        cJSON_AddStringToObject(j, "data_sha256", r.data_sha256);
        cJSON_AddNumberToObject(j, "tail_chars", (double)o.tail_chars);
        cJSON_AddStringToObject(j, "protocol", tp_ppl_protocol_name(o.ppl.protocol));
        cJSON_AddStringToObject(j, "device", tp_device_name(o.ppl.device));
        cJSON_AddStringToObject(j, "exec", tp_exec_name((tp_exec)r.exec));
        cJSON_AddNumberToObject(j, "peak_rss_bytes", (double)r.peak_rss_bytes);
        cJSON_AddNumberToObject(j, "decode_tokens_per_second", r.decode_tps);
        cJSON_AddNumberToObject(j, "baseline_decode_tokens_per_second", r.baseline_decode_tps);
        cJSON_AddNumberToObject(j, "tokens_per_second", tps);
        cJSON_AddNumberToObject(j, "ctx", r.ppl.ctx);
        cJSON_AddNumberToObject(j, "stride", r.ppl.stride);
        cJSON_AddNumberToObject(j, "max_tokens", (double)o.max_tokens);
        cJSON_AddNumberToObject(j, "tokens", (double)r.tokens);
        cJSON_AddNumberToObject(j, "scored_tokens", (double)r.ppl.scored);
        cJSON_AddNumberToObject(j, "nll_sum", r.ppl.nll_sum);
        cJSON_AddNumberToObject(j, "ppl", r.ppl.ppl);
        cJSON_AddNumberToObject(j, "baseline_nll_sum", r.baseline.nll_sum);
        cJSON_AddNumberToObject(j, "baseline_ppl", r.baseline.ppl);
        cJSON_AddNumberToObject(j, "ppl_delta_percent", delta);
        cJSON_AddBoolToObject(j, "paired", r.paired);
        if (r.paired) {
            cJSON_AddNumberToObject(j, "nll_mean_stderr", r.ppl.nll_stderr);
            cJSON_AddNumberToObject(j, "baseline_nll_mean_stderr", r.baseline.nll_stderr);
            tp_token_stats_json(&r.stats, j);
            if (o.dump_tokens) cJSON_AddStringToObject(j, "dump_tokens", o.dump_tokens);
        }
        cJSON_AddNumberToObject(j, "seconds", r.ppl.seconds + r.baseline.seconds);
        rc = tp_cli_json_out("eval", json, j);
        cJSON_Delete(j);
    }
    return rc;
}
