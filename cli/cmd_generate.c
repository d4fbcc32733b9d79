/* tenpak generate: text from a prompt with a checkpoint or a compressed artifact (the packed
 * kernels or the dequantised reference), streamed to stdout as it is generated, with prefill and
 * decode throughput, time to first token and peak RSS on stderr. */
#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/json_out.h"
#include "pipeline/artifact_model.h"
#include "pipeline/generate.h"
#include "pipeline/tokenizer.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: tenpak generate (--model DIR | --artifact FILE.tpk [--model DIR]) (--prompt TEXT | --prompt-file F)\n"
            "                       -n N [--temp T] [--top-k K] [--seed S] [--exec packed|dequant] [--ignore-eos]\n"
            "                       [--json FILE]\n"
            "  --model DIR        a Hugging Face checkpoint folder (with --artifact: the checkpoint it was\n"
            "                     made from, instead of the folder recorded in it); its tokenizer.json is used\n"
            "  --artifact FILE    a .tpk from `tenpak compress`; --exec packed (default): its codec's kernels\n"
            "                     multiply by the compressed tensors; dequant: decoded to fp32 first\n"
            "  --prompt TEXT      the prompt (special tokens added as the tokenizer does, e.g. Llama's BOS);\n"
            "  --prompt-file F    or a file's bytes\n"
            "  -n N               tokens to generate; 0 runs the prompt only (prefill stats, no text)\n"
            "  --temp T           0 (default): greedy, the argmax with ties to the lowest id; > 0: sampled\n"
            "                     from softmax(logits / T)\n"
            "  --top-k K          sampling over the K largest logits only (default 0: all); 1 is greedy\n"
            "  --seed S           the sampler's seed (< 2^53); the same seed gives the same text (default:\n"
            "                     from the clock, printed on stderr when sampling)\n"
            "  --ignore-eos       generate all N tokens even past the end token\n"
            "  --json FILE        write the ids, text and timings as JSON (atomically)\n"
            "Text goes to stdout token by token (a split UTF-8 character is held back until complete);\n"
            "prefill and decode tokens/s, time to first token and peak RSS go to stderr, timed after a\n"
            "one-token warm-up pass (a checkpoint's fp32 weight copies are made on first use).\n"
            "Generation stops after N tokens, or after the end token (config.json's eos_token_id: </s> for\n"
            "Llama, <|endoftext|> for GPT-2; not printed) unless --ignore-eos.\n"
            "Refused (exit 1): a prompt of 0 tokens (empty text with a tokenizer that adds no BOS, e.g.\n"
            "GPT-2's); a prompt longer than the model's context, or prompt + N beyond it (never truncated).\n"
            "Exit status: 0 done, 1 runtime failure, 2 bad usage.\n");
}

/* What the token callback needs to print the new text as it comes. The generated text is the
 * decode of prompt + generated with the prompt's decode cut off, not the decode of the generated
 * ids alone: SentencePiece decoders drop the first token's leading space, which would glue the
 * continuation to the prompt. */
typedef struct stream {
    const tp_tokenizer *tok;
    int32_t *all; /* prompt, then the generated ids */
    size_t n_prompt, n_all;
    char *ptext;  /* the prompt's decode */
    size_t plen;
    size_t printed; /* bytes of the generated text written so far */
    tp_status rc;
    tp_err e;
} stream;

/* The generated text so far: *buf (free it) holds it from *off for *len bytes. */
static tp_status gen_text(stream *s, char **buf, size_t *off, size_t *len) {
    size_t n;
    tp_status rc = tp_tokenizer_decode(s->tok, s->all, s->n_all, 1, buf, &n, &s->e);
    if (rc != TP_OK) return rc;
    if (n >= s->plen && !memcmp(*buf, s->ptext, s->plen)) {
        *off = s->plen;
        *len = n - s->plen;
        return TP_OK;
    }
    /* the prompt's text is not a prefix (e.g. its bytes end mid-character): the new ids alone */
    free(*buf);
    *off = 0;
    return tp_tokenizer_decode(s->tok, s->all + s->n_prompt, s->n_all - s->n_prompt, 1, buf, len, &s->e);
}

/* Bytes of t[0..n) that later tokens cannot change: not an unfinished UTF-8 sequence at the end,
 * nor trailing U+FFFD, which byte-fallback decoders put for a byte run the next token may finish. */
static size_t stable_len(const char *t, size_t n) {
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        unsigned char c = (unsigned char)t[n - back];
        if ((c & 0xC0) == 0x80) continue; /* a continuation byte: its lead is further back */
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        if (need > back) n -= back;
        break;
    }
    while (n >= 3 && !memcmp(t + n - 3, "\xef\xbf\xbd", 3)) n -= 3;
    return n;
}

static void on_token(void *user, int32_t id) {
    stream *s = user;
    s->all[s->n_all++] = id;
    if (s->rc != TP_OK) return;
    char *buf;
    size_t off, len;
    if ((s->rc = gen_text(s, &buf, &off, &len)) != TP_OK) return;
    size_t ok = stable_len(buf + off, len);
    if (ok > s->printed) {
        fwrite(buf + off + s->printed, 1, ok - s->printed, stdout);
        fflush(stdout);
        s->printed = ok;
    }
    free(buf);
}

static int parse_int(const char *opt, const char *v, int *out) {
    long long x;
    if (!tp_arg_int("generate", opt, v, 0, INT_MAX, &x)) return 0;
    *out = (int)x;
    return 1;
}

int tp_cmd_generate(int argc, char **argv) {
    const char *model = NULL, *artifact = NULL, *prompt = NULL, *prompt_file = NULL, *json = NULL, *v;
    tp_gen_opts go = TP_GEN_OPTS_INIT;
    tp_exec exec = TP_EXEC_PACKED;
    int have_n = 0, exec_set = 0, seed_set = 0, ignore_eos = 0;
    for (int i = 1; i < argc; i++) {
        if (tp_arg(argc, argv, &i, "--model", &v)) model = v;
        else if (tp_arg(argc, argv, &i, "--artifact", &v)) artifact = v;
        else if (tp_arg(argc, argv, &i, "--prompt", &v)) prompt = v;
        else if (tp_arg(argc, argv, &i, "--prompt-file", &v)) prompt_file = v;
        else if (tp_arg(argc, argv, &i, "--json", &v)) json = v;
        else if (tp_arg(argc, argv, &i, "-n", &v)) {
            if (!parse_int("-n", v, &go.n)) return 2;
            have_n = 1;
        } else if (tp_arg(argc, argv, &i, "--top-k", &v)) {
            if (!parse_int("--top-k", v, &go.top_k)) return 2;
        } else if (tp_arg(argc, argv, &i, "--temp", &v)) {
            if (!tp_parse_double(v, &go.temp) || !(go.temp >= 0) || isinf(go.temp)) {
                fprintf(stderr, "tenpak generate: --temp needs a finite number >= 0, got '%s'\n", v);
                return 2;
            }
        } else if (tp_arg(argc, argv, &i, "--seed", &v)) {
            unsigned long long u;
            /* below 2^53 so that the JSON number records it exactly */
            if (!tp_parse_u64(v, &u) || u >= (1ull << 53)) {
                fprintf(stderr, "tenpak generate: --seed needs an integer below 2^53, got '%s'\n", v);
                return 2;
            }
            go.seed = u;
            seed_set = 1;
        } else if (tp_arg(argc, argv, &i, "--exec", &v)) {
            if (!tp_exec_parse(v, &exec)) { fprintf(stderr, "tenpak generate: --exec is packed or dequant\n"); return 2; }
            exec_set = 1;
        } else if (tp_flag(argv, i, "--ignore-eos")) ignore_eos = 1;
        else if (tp_flag(argv, i, "--help") || tp_flag(argv, i, "-h")) { usage(stdout); return 0; }
        else {
            fprintf(stderr, "tenpak generate: unknown option '%s' (see --help)\n", argv[i]);
            return 2;
        }
    }
    if (!model && !artifact) { fprintf(stderr, "tenpak generate: --model DIR or --artifact FILE is required (see --help)\n"); return 2; }
    if (!prompt == !prompt_file) { fprintf(stderr, "tenpak generate: give one of --prompt TEXT and --prompt-file F (see --help)\n"); return 2; }
    if (!have_n) { fprintf(stderr, "tenpak generate: -n N is required (tokens to generate; 0: prefill only)\n"); return 2; }
    if (exec_set && !artifact) { fprintf(stderr, "tenpak generate: --exec applies to --artifact only\n"); return 2; }
    if (!seed_set) go.seed = tp_seed_from_time();
    if (!tp_cli_output("generate", "--json", json)) return 2;

    tp_err e = {{0}};
    tp_status rc = TP_OK;
    tp_model *m = NULL;
    tp_tokenizer *tok = NULL;
    tp_artifact_model info;
    char *text = NULL, *tpath = NULL, *out = NULL;
    int32_t *pids = NULL;
    size_t plen = 0, np = 0, off = 0, olen = 0;
    stream st = {0};
    tp_gen_result r = {0};
    const char *dir = model;

    if (prompt_file) {
        if (!(text = tp_read_file(prompt_file, &plen, &e))) rc = TP_ERR_IO;
    } else if (!(text = strdup(prompt))) rc = tp_fail(&e, TP_ERR_NOMEM, "out of memory");
    else plen = strlen(text);
    if (rc == TP_OK && artifact) {
        rc = tp_model_load_artifact(artifact, model, exec, NULL, &m, &info, &e);
        dir = info.model_dir;
        if (rc == TP_OK && !info.files_checked)
            fprintf(stderr, "tenpak generate: note: %s records no sha256 of config.json and tokenizer.json (made by an "
                    "older tenpak): they were not checked\n", artifact);
    } else if (rc == TP_OK) rc = tp_model_load(model, NULL, &m, &e);
    if (rc == TP_OK && !(tpath = malloc(strlen(dir) + 32))) rc = tp_fail(&e, TP_ERR_NOMEM, "out of memory");
    if (rc == TP_OK) {
        sprintf(tpath, "%s/tokenizer.json", dir);
        rc = tp_model_tokenizer_load(dir, &tok, &e); /* DIR/tokenizer.json or FILE.gguf */
    }
    if (rc == TP_OK) rc = tp_tokenizer_encode(tok, text, plen, 1, &pids, &np, &e);
    if (rc == TP_OK) {
        int eos = tp_model_cfg(m)->eos_id;
        go.eos = ignore_eos || eos >= tp_model_cfg(m)->vocab ? -1 : eos;
        st.tok = tok;
        st.n_prompt = st.n_all = np;
        st.all = malloc((np + (size_t)go.n + 1) * sizeof *st.all);
        if (!st.all) rc = tp_fail(&e, TP_ERR_NOMEM, "out of memory");
        else {
            if (np) memcpy(st.all, pids, np * sizeof *pids);
            rc = tp_tokenizer_decode(tok, pids, np, 1, &st.ptext, &st.plen, &e);
        }
    }
    if (rc == TP_OK && go.temp > 0)
        fprintf(stderr, "seed %llu (replay: --seed %llu)\n", (unsigned long long)go.seed, (unsigned long long)go.seed);
    if (rc == TP_OK && np) {
        /* warm-up: a checkpoint's fp32 weight copies are made on first use; one token through
         * every matrix (lm_head included) first, so prefill times the prompt, not that one-off */
        float *wl = malloc((size_t)tp_model_cfg(m)->vocab * sizeof *wl);
        if (!wl) rc = tp_fail(&e, TP_ERR_NOMEM, "out of memory");
        else rc = tp_model_forward(m, pids, 1, 0, 0, wl, &e);
        free(wl);
    }
    if (rc == TP_OK) {
        go.on_token = on_token;
        go.user = &st;
        rc = tp_generate(m, pids, np, &go, &r, &e);
        if (rc == TP_OK && st.rc != TP_OK) { rc = st.rc; e = st.e; }
    }
    if (rc == TP_OK && (rc = gen_text(&st, &out, &off, &olen)) != TP_OK) e = st.e;
    if (rc == TP_OK) {
        /* what was held back (an unfinished character at the very end) goes out as it is */
        if (olen > st.printed) fwrite(out + off + st.printed, 1, olen - st.printed, stdout);
        if (r.n) fputc('\n', stdout);
        fflush(stdout);
        uint64_t rss = tp_peak_rss_bytes();
        fprintf(stderr, "prefill   %zu tokens in %.3f s: %.1f tokens/s\n", r.n_prompt, r.prefill_s, r.prefill_tps);
        fprintf(stderr, "decode    %zu tokens in %.3f s: %.1f tokens/s (%zu generated%s)\n", r.n ? r.n - 1 : 0,
                r.decode_s, r.decode_tps, r.n, r.hit_eos ? ", stopped at the end token" : "");
        fprintf(stderr, "ttft      %.1f ms\n", 1e3 * r.ttft_s);
        fprintf(stderr, "peak RSS  %.1f MiB\n", (double)rss / (1 << 20));
        if (json) {
            cJSON *j = cJSON_CreateObject(), *ids = cJSON_CreateArray();
            cJSON_AddStringToObject(j, "model", dir);
            if (artifact) {
                cJSON_AddStringToObject(j, "artifact", artifact);
                cJSON_AddStringToObject(j, "codec", info.codec);
                cJSON_AddStringToObject(j, "exec", tp_exec_name(exec));
            } else {
                cJSON_AddNullToObject(j, "artifact");
                cJSON_AddNullToObject(j, "codec");
                cJSON_AddNullToObject(j, "exec");
            }
            cJSON_AddNumberToObject(j, "prompt_tokens", (double)r.n_prompt);
            cJSON_AddNumberToObject(j, "requested_tokens", go.n);
            cJSON_AddNumberToObject(j, "generated_tokens", (double)r.n);
            for (size_t i = 0; i < r.n; i++) cJSON_AddItemToArray(ids, cJSON_CreateNumber(r.ids[i]));
            cJSON_AddItemToObject(j, "ids", ids);
            char *t = strndup(out + off, olen); /* cJSON takes a C string */
            cJSON_AddStringToObject(j, "text", t ? t : "");
            free(t);
            cJSON_AddNumberToObject(j, "eos_id", go.eos);
            cJSON_AddBoolToObject(j, "stopped_at_eos", r.hit_eos);
            cJSON_AddNumberToObject(j, "prefill_seconds", r.prefill_s);
            cJSON_AddNumberToObject(j, "decode_seconds", r.decode_s);
            cJSON_AddNumberToObject(j, "prefill_tokens_per_second", r.prefill_tps);
            cJSON_AddNumberToObject(j, "decode_tokens_per_second", r.decode_tps);
            cJSON_AddNumberToObject(j, "ttft_seconds", r.ttft_s);
            cJSON_AddNumberToObject(j, "peak_rss_bytes", (double)rss);
            cJSON_AddNumberToObject(j, "temp", go.temp);
            cJSON_AddNumberToObject(j, "top_k", go.top_k);
            cJSON_AddNumberToObject(j, "seed", (double)go.seed);
            rc = tp_cli_write_json(json, j, 0, &e);
            cJSON_Delete(j);
        }
    }
    if (rc != TP_OK) {
        fflush(stdout);
        fprintf(stderr, "tenpak generate: %s\n", e.msg);
    }
    tp_gen_result_free(&r);
    free(out); free(st.ptext); free(st.all); free(pids); free(tpath); free(text);
    tp_tokenizer_free(tok);
    tp_model_free(m);
    return rc == TP_OK ? 0 : 1;
}
