/* The .tpz container of `tenpak unzip` (pipeline/lmzip.c tp_lmzip_decompress), against a tiny
 * model written once into the fuzz folder (a 1-layer qwen2, 8 wide, and a SentencePiece-style
 * tokenizer of 263 tokens with byte fallback). The input is the container; the harness writes the
 * tiny model's and tokenizer's sha256 into it and recomputes its trailing checksum (unless bit 0
 * of the reserved byte 6 / byte 7 is set), so the fuzzer reaches the segment table and the coded
 * stream instead of stopping at the hashes. Never a crash, a hang or an allocation the input's size
 * does not justify; an accepted container decodes to exactly its recorded length.
 * TENPAK_FUZZ_TPZ_SEEDS=DIR: also writes seeds (texts zipped with both coders) into DIR. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "fuzz/fuzz_files_common.h"
#include "pipeline/lmzip.h"
#include "tenpak/sha256.h"

#define V 263
static uint8_t model_sha[32], tok_sha[32];

static void put_text(const char *name, const char *s) { fuzz_put(name, (const uint8_t *)s, strlen(s)); }

static uint8_t st_buf[1 << 16];
static char st_hdr[4096];
static size_t st_n;
static uint32_t st_rng = 12345;
static void st_add(const char *name, int d0, int d1, float scale, float bias) {
    size_t b = st_n, numel = (size_t)d0 * (size_t)(d1 ? d1 : 1);
    for (size_t i = 0; i < numel; i++) {
        st_rng = st_rng * 1664525u + 1013904223u;
        float v = bias + scale * ((float)(st_rng >> 8) / 16777216.0f - 0.5f);
        memcpy(st_buf + st_n + 4 * i, &v, 4);
    }
    st_n += 4 * numel;
    size_t hl = strlen(st_hdr);
    if (d1) snprintf(st_hdr + hl, sizeof st_hdr - hl, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%d,%d],\"data_offsets\":[%zu,%zu]}",
                     hl > 1 ? "," : "", name, d0, d1, b, st_n);
    else snprintf(st_hdr + hl, sizeof st_hdr - hl, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%d],\"data_offsets\":[%zu,%zu]}",
                  hl > 1 ? "," : "", name, d0, b, st_n);
}

static void sha_of(const char *name, uint8_t out[32]) {
    FILE *f = fopen(fuzz_path(name), "rb");
    static uint8_t b[1 << 17];
    size_t n = f ? fread(b, 1, sizeof b, f) : 0;
    if (f) fclose(f);
    tp_sha256(b, n, out);
}

static void write_model(void) {
    put_text("config.json", "{\"model_type\":\"qwen2\",\"num_hidden_layers\":1,\"hidden_size\":8,\"num_attention_heads\":2,"
                            "\"num_key_value_heads\":1,\"intermediate_size\":16,\"vocab_size\":263,"
                            "\"max_position_embeddings\":32,\"rms_norm_eps\":1e-6,\"rope_theta\":10000.0,"
                            "\"tie_word_embeddings\":true}");
    /* <unk> 0, <s> 1, <0x00>..<0xFF> 2..257, then a few pieces and merges */
    static char tj[16384];
    size_t n = (size_t)snprintf(tj, sizeof tj,
        "{\"added_tokens\":[{\"id\":1,\"content\":\"<s>\",\"special\":true}],"
        "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\xe2\x96\x81\"},"
        "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xe2\x96\x81\"}]},"
        "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\"}},"
        "{\"Sequence\":{\"id\":\"A\"}}],\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[1]}}},"
        "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"\xe2\x96\x81\"},"
        "\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" \","
        "\"start\":1,\"stop\":0}]},"
        "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"byte_fallback\":true,\"fuse_unk\":true,"
        "\"vocab\":{\"<unk>\":0,\"<s>\":1");
    for (int b = 0; b < 256; b++) n += (size_t)snprintf(tj + n, sizeof tj - n, ",\"<0x%02X>\":%d", b, 2 + b);
    snprintf(tj + n, sizeof tj - n, ",\"\xe2\x96\x81\":258,\"a\":259,\"b\":260,\"ab\":261,\"\xe2\x96\x81" "ab\":262},"
             "\"merges\":[[\"a\",\"b\"],[\"\xe2\x96\x81\",\"ab\"]]}}");
    put_text("tokenizer.json", tj);
    strcpy(st_hdr, "{");
    st_add("model.embed_tokens.weight", V, 8, 2.0f, 0);
    st_add("model.layers.0.input_layernorm.weight", 8, 0, 0.2f, 1);
    st_add("model.layers.0.self_attn.q_proj.weight", 8, 8, 0.6f, 0);
    st_add("model.layers.0.self_attn.k_proj.weight", 4, 8, 0.6f, 0);
    st_add("model.layers.0.self_attn.v_proj.weight", 4, 8, 0.6f, 0);
    st_add("model.layers.0.self_attn.o_proj.weight", 8, 8, 0.6f, 0);
    st_add("model.layers.0.post_attention_layernorm.weight", 8, 0, 0.2f, 1);
    st_add("model.layers.0.mlp.gate_proj.weight", 16, 8, 0.6f, 0);
    st_add("model.layers.0.mlp.up_proj.weight", 16, 8, 0.6f, 0);
    st_add("model.layers.0.mlp.down_proj.weight", 8, 16, 0.6f, 0);
    st_add("model.norm.weight", 8, 0, 0.2f, 1);
    strcat(st_hdr, "}");
    size_t hl = strlen(st_hdr), pad = (8 - hl % 8) % 8;
    memset(st_hdr + hl, ' ', pad);
    st_hdr[hl += pad] = 0;
    uint8_t *f = malloc(8 + hl + st_n);
    for (int i = 0; i < 8; i++) f[i] = (uint8_t)((uint64_t)hl >> 8 * i);
    memcpy(f + 8, st_hdr, hl);
    memcpy(f + 8 + hl, st_buf, st_n);
    fuzz_put("model.safetensors", f, 8 + hl + st_n);
    free(f);
    sha_of("model.safetensors", model_sha);
    sha_of("tokenizer.json", tok_sha);
}

static const char *model_dir(void) {
    static char d[128];
    if (!d[0]) {
        write_model();
        snprintf(d, sizeof d, "%s", fuzz_dir);
    }
    return d;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const tp_lm_source src = {model_dir(), NULL};
    const char *out = getenv("TENPAK_FUZZ_TPZ_SEEDS");
    if (!out) return 0;
    static const char long_text[] = "abababab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab ab";
    static const char *const texts[] = {"ab ab ab!", "ab\n\xff\xfe raw bytes\nab ab", long_text};
    for (int c = 1; c <= 2; c++)
        for (int i = 0; i < 3; i++) {
            uint8_t *o;
            size_t on;
            tp_lmzip_stats st;
            tp_err e;
            if (tp_lmzip_compress(&src, (tp_lmzip_coder)c, (const uint8_t *)texts[i], strlen(texts[i]), &o, &on, &st, &e) != TP_OK) {
                fprintf(stderr, "seed: %s\n", e.msg);
                abort();
            }
            char p[512];
            snprintf(p, sizeof p, "%s/%s-%d", out, c == TP_LMZIP_AC ? "ac" : "rans", i);
            FILE *f = fopen(p, "wb");
            if (!f || fwrite(o, 1, on, f) != on) abort();
            fclose(f);
            free(o);
        }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const tp_lm_source src = {model_dir(), NULL};
    uint8_t *in = malloc(size ? size : 1);
    if (size) memcpy(in, data, size);
    if (size >= 120 && !(in[6] & 1)) {
        memcpy(in + 8, model_sha, 32);
        memcpy(in + 40, tok_sha, 32);
    }
    if (size >= 120 && !(in[7] & 1)) {
        uint64_t h = XXH64(in, size - 8, 0);
        for (int i = 0; i < 8; i++) in[size - 8 + i] = (uint8_t)(h >> 8 * i);
    }
    uint8_t *out = NULL;
    size_t on = 0;
    tp_lmzip_stats st;
    tp_err e;
    if (tp_lmzip_decompress(&src, in, size, &out, &on, &st, &e) == TP_OK) {
        uint64_t olen = 0;
        for (int i = 0; i < 8; i++) olen |= (uint64_t)in[72 + i] << 8 * i;
        if (on != olen) abort();
        free(out);
    }
    free(in);
    return 0;
}
