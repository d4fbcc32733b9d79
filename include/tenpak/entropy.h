/* Entropy coding: static order-0 rANS and range (arithmetic) coding over bytes and small alphabets,
 * in a checksummed block format, plus adaptive coder interfaces where the caller supplies the model
 * symbol by symbol (an order-1 byte model in the tests; a language model in `tenpak zip` later).
 *
 * ---------------------------------------------------------------------------------------------
 * Block format, version 1 (every integer little-endian)
 *
 *   off  size  field
 *   0    4     magic "TPEC"
 *   4    1     version = 1
 *   5    1     coder: 0 stored (payload = the data), 1 rANS, 2 range coder (AC)
 *   6    1     lanes: rANS states interleaved, 1..64 (the cpu coder writes 32); 0 for other coders
 *   7    1     scale_bits s: frequencies sum to exactly 2^s, 1 <= s <= 15 (the encoder picks 12
 *              unless that costs > 0.35% over the order-0 entropy, then up to 15); 0 if stored
 *   8    1     sym_bits: 8 (one symbol per byte, alphabet 256) or 4 (two symbols per byte, low
 *              nibble first, alphabet 16)
 *   9    1     reserved, 0
 *   10   2     table_len: bytes of the frequency table (0 when stored or when n = 0)
 *   12   8     n: decoded length in bytes (< 2^40)
 *   20   8     payload_len
 *   28   table_len       frequency table, for symbols 0 .. 2^sym_bits - 1 in order:
 *                        LEB128 varint of freq; a zero freq is followed by one byte r = how many of
 *                        the following symbols are also zero (a run of 1 + r absent symbols).
 *                        Valid: covers exactly 2^sym_bits symbols, consumes exactly table_len bytes,
 *                        every freq <= 2^s, sum == 2^s.
 *   ..   payload_len     payload (below)
 *   ..   8     XXH64 (seed 0) of the decoded bytes
 *   The block ends there: 28 + table_len + payload_len + 8 == the block's length.
 *
 * The symbols: count = n (sym_bits 8) or 2n (sym_bits 4; symbol 2i is the low nibble of byte i).
 *
 * rANS payload (coder 1), lanes N, 32-bit states, L = 2^23, every state in [L, 256 L):
 *   N initial decoder states (4 bytes each, lane 0 first), then the renormalisation bytes.
 *   Symbol i is coded by lane i mod N. Symbols are decoded in groups of N consecutive symbols (the
 *   last group may be short: lanes 0..k-1 only). For a group the decoder
 *     1. decodes one symbol per active lane:  slot = x & (2^s - 1), sym = the symbol with
 *        cum[sym] <= slot < cum[sym] + freq[sym],  x = freq[sym] * (x >> s) + slot - cum[sym];
 *     2. renormalisation round 1: for each active lane in lane order, if x < L: x = (x << 8) | byte;
 *     3. round 2: the same again (two rounds always restore x >= L for s <= 15).
 *   After the last symbol every state equals L and every payload byte has been read.
 *   With N = 1 this is the classic single-state byte-wise rANS stream.
 *
 * AC payload (coder 2): a range coder with 64-bit low and range, byte-wise renormalisation keeping
 *   range in [2^56, 2^64), carries propagated into the bytes already written; see the adaptive
 *   interface below for the arithmetic. Decoding reads bytes past the end of the payload as 0.
 *
 * Errors: every decoder validates the header, never reads or writes out of bounds on any input,
 * and returns TP_ERR_FORMAT (malformed, truncated, inconsistent) or TP_ERR_CHECKSUM (decoded data
 * does not match its XXH64) with a one-line message.
 * --------------------------------------------------------------------------------------------- */
#ifndef TENPAK_ENTROPY_H
#define TENPAK_ENTROPY_H

#include "tenpak/tenpak.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tp_ent_coder { TP_ENT_STORED = 0, TP_ENT_RANS = 1, TP_ENT_AC = 2 } tp_ent_coder;

#define TP_ENT_MAGIC "TPEC"
#define TP_ENT_VERSION 1
#define TP_ENT_HEADER_FIXED 28
#define TP_ENT_TABLE_MAX 768 /* 256 symbols x 3-byte varints */
#define TP_ENT_MAX_LANES 64
#define TP_ENT_LANES_CPU 32 /* the interleave the cpu coder writes and decodes with AVX2 */
#define TP_ENT_SCALE_DEFAULT 12
#define TP_ENT_SCALE_MAX 15
/* The auto scale's allowance over the order-0 entropy: 0.35%. Smaller tables decode faster (the
 * per-slot table of scale 13 is 32 KB, inside an L1 of 48 KB, where the gather decoder pays on
 * Intel: kernels/cpu/rans_cpu.c), and wiki.test.raw at 13 is 0.28% over the bound, inside the
 * promise of 0.5% (verify/test_entropy.c order0_bound_wikitext); it was 0.1% (scale 15 for text). */
#define TP_ENT_SCALE_SLACK 0.0035
#define TP_ENT_MAX_N (1ull << 40)
#define TP_RANS_L (1u << 23)

typedef struct tp_ent_params {
    tp_ent_coder coder; /* TP_ENT_RANS or TP_ENT_AC (the encoder falls back to stored by itself) */
    int lanes;          /* rANS: 1..64 */
    int scale_bits;     /* 1..15, or 0: auto (the smallest of 12..15 whose quantised table costs at
                           most TP_ENT_SCALE_SLACK over the order-0 entropy; 15 otherwise) */
    int sym_bits;       /* 8 or 4 */
} tp_ent_params;

/* rANS: 32 lanes, scale auto, bytes. AC: scale auto, bytes. */
void tp_ent_params_default(tp_ent_params *p, tp_ent_coder coder);
const char *tp_ent_coder_name(tp_ent_coder c); /* "stored", "rans", "ac" */

/* Parsed, validated header. */
typedef struct tp_ent_header {
    tp_ent_coder coder;
    int lanes, scale_bits, sym_bits;
    uint64_t n;           /* decoded bytes */
    uint64_t payload_len;
    size_t table_len;
    size_t payload_off;   /* offset of the payload in the block */
    uint64_t checksum;    /* the stored XXH64 */
    int nsym;             /* 2^sym_bits */
    uint32_t freq[256];   /* validated: sum 2^scale_bits (all zero when n == 0 or stored) */
} tp_ent_header;

/* ---- the block container (common/ent_format.c) ---- */
/* Largest block the encoder can write for n input bytes (any params): when the chosen coder
 * would not beat storing, the block is stored. */
size_t tp_ent_bound(size_t n);
/* Validates the header and the block length; fills h. */
tp_status tp_ent_parse_header(const void *src, size_t len, tp_ent_header *h, tp_err *e);

/* Encode n bytes into dst (cap >= tp_ent_bound(n) always suffices); *len = block bytes.
 * _ref: the reference (reference/ent_ref.c with reference/rans_ref.c, reference/ac_ref.c), any lanes.
 * _cpu: the optimised coder (kernels/cpu), the same stream as the reference for the same params. */
tp_status tp_ent_encode_ref(const void *src, size_t n, const tp_ent_params *p, void *dst, size_t cap,
                            size_t *len, tp_err *e);
tp_status tp_ent_encode_cpu(const void *src, size_t n, const tp_ent_params *p, void *dst, size_t cap,
                            size_t *len, tp_err *e);
/* Decode a whole block into dst (cap >= header n); *n = decoded bytes. The checksum is verified. */
tp_status tp_ent_decode_ref(const void *src, size_t len, void *dst, size_t cap, size_t *n, tp_err *e);
tp_status tp_ent_decode_cpu(const void *src, size_t len, void *dst, size_t cap, size_t *n, tp_err *e);
/* How the cpu rANS decoder's AVX-512 path (32 lanes) looks its tables up; the same decoded bytes
 * every way. SCALAR: scalar loads (scale_bits <= 12: one table of (freq - 1, slot - cum, sym);
 * 13..15: the symbol, then its freq and cum). GATHER: vpgatherdd (<= 12: from the same table,
 * one per 16 lanes; 13..15: from a per-slot table of freq | (slot - cum) << 16 and the symbol
 * table). AUTO, the default: GATHER at scale_bits <= 13 on Intel CPUs, SCALAR otherwise
 * (gathers are slow on AMD cores, and at 14..15 the per-slot table leaves L1: measured in
 * kernels/cpu/rans_cpu.c). TENPAK_RANS_LOOKUP=gather|scalar|auto overrides it, and so does
 * tp_ent_set_rans_lookup (tests, benchmarks). Below AVX-512 the choice has no effect. */
typedef enum tp_rans_lookup { TP_RANS_LOOKUP_SCALAR = 0, TP_RANS_LOOKUP_GATHER = 1, TP_RANS_LOOKUP_AUTO = 2 } tp_rans_lookup;
tp_rans_lookup tp_ent_rans_lookup(void);
void tp_ent_set_rans_lookup(tp_rans_lookup l);
const char *tp_rans_lookup_name(tp_rans_lookup l); /* "scalar", "gather", "auto" */
/* What AUTO (or l itself) means at this scale on this CPU: SCALAR or GATHER. */
tp_rans_lookup tp_rans_lookup_at(tp_rans_lookup l, int scale_bits);

/* ---- models (common/ent_format.c) ---- */
/* Symbol counts of the stream (count[nsym]) as the format sees it (bytes or nibbles). */
void tp_ent_count(const uint8_t *src, size_t n, int sym_bits, uint64_t *count);
/* Quantise counts to frequencies summing to 2^scale_bits with every present symbol >= 1,
 * minimising the coded size (greedy on the marginal cost in bits). Deterministic.
 * Fails (TP_ERR_ARG) when more symbols are present than 2^scale_bits. */
tp_status tp_ent_quantize_freqs(const uint64_t *count, int nsym, int scale_bits, uint32_t *freq,
                                tp_err *e);
/* Order-0 entropy of the counts in bits per symbol, and the ideal coded size in bits of the stream
 * with the quantised freqs (sum of -log2(freq/2^s)). */
double tp_ent_entropy_bits(const uint64_t *count, int nsym);
int tp_ent_auto_scale(const uint64_t *count, int nsym);
double tp_ent_coded_bits(const uint64_t *count, const uint32_t *freq, int nsym, int scale_bits);

/* Binary search in a cumulative table cdf[0..nsym] (cdf[0] = 0, strictly increasing where
 * freq >= 1, cdf[nsym] = total): the s with cdf[s] <= target < cdf[s+1]. For large alphabets
 * (a language model's vocabulary). */
uint32_t tp_ent_cdf_find(const uint32_t *cdf, uint32_t nsym, uint32_t target);
/* cdf from frequencies: cum[0] = 0, cum[s + 1] = cum[s] + freq[s] (nsym + 1 entries). */
void tp_ent_cum(const uint32_t *freq, int nsym, uint32_t *cum);

/* ---- adaptive coding: the caller supplies (cum, freq) per symbol, total = 2^total_bits ----
 * (common/adaptive.c; pipeline/lmzip.c codes with it). Every call checks 1 <= total_bits <= TP_ENT_ADAPT_MAX_BITS, freq >= 1, cum + freq <= total;
 * a violation or a short buffer sets a sticky error reported by _finish. */
#define TP_ENT_ADAPT_MAX_BITS 24

/* Range coder (AC), 64-bit low and range. Encoding:
 *   r = range >> total_bits; low += r * cum (carry into the written bytes); range = r * freq;
 *   while range < 2^56: write low >> 56; low <<= 8; range <<= 8.
 * Finish writes the one byte that makes the code value the smallest multiple of 2^56 >= low (inside
 * [low, low + range)); the decoder reads past the end as zeros and rejects any other final byte. */
typedef struct tp_ac_enc {
    uint64_t low, range;
    uint8_t *buf;
    size_t cap, pos;
    int err;
} tp_ac_enc;
void tp_ac_enc_init(tp_ac_enc *enc, void *dst, size_t cap);
void tp_ac_encode_sym(tp_ac_enc *enc, uint32_t cum, uint32_t freq, int total_bits);
tp_status tp_ac_enc_finish(tp_ac_enc *enc, size_t *len, tp_err *e);

typedef struct tp_ac_dec {
    uint64_t code, range; /* code = value - low */
    const uint8_t *buf;
    size_t len, pos;
    uint32_t target;
    int err;
} tp_ac_dec;
void tp_ac_dec_init(tp_ac_dec *dec, const void *src, size_t len);
/* The slot in [0, 2^total_bits) of the next symbol: find the symbol with cum <= slot < cum + freq
 * (e.g. tp_ent_cdf_find), then advance with it. */
uint32_t tp_ac_decode_target(tp_ac_dec *dec, int total_bits);
void tp_ac_decode_advance(tp_ac_dec *dec, uint32_t cum, uint32_t freq, int total_bits);
/* TP_ERR_FORMAT if the stream was inconsistent with the model at any point. */
tp_status tp_ac_dec_finish(tp_ac_dec *dec, tp_err *e);

/* Adaptive rANS: 64-bit state in [2^31, 2^63), 32-bit word renormalisation (little-endian words).
 * rANS is last-in first-out: push the symbols in REVERSE order (the caller keeps the whole sequence
 * of (cum, freq)); the decoder then pops them in forward order. The encoder writes backwards from
 * the end of dst; finish moves the stream to the front of dst. */
typedef struct tp_rans_enc {
    uint64_t x;
    uint8_t *buf, *p; /* p: first written byte (writing downwards) */
    size_t cap;
    int err;
} tp_rans_enc;
void tp_rans_enc_init(tp_rans_enc *enc, void *dst, size_t cap);
void tp_rans_encode_sym(tp_rans_enc *enc, uint32_t cum, uint32_t freq, int total_bits);
tp_status tp_rans_enc_finish(tp_rans_enc *enc, size_t *len, tp_err *e);

typedef struct tp_rans_dec {
    uint64_t x;
    const uint8_t *buf;
    size_t len, pos;
    int err;
} tp_rans_dec;
void tp_rans_dec_init(tp_rans_dec *dec, const void *src, size_t len);
uint32_t tp_rans_decode_target(tp_rans_dec *dec, int total_bits);
void tp_rans_decode_advance(tp_rans_dec *dec, uint32_t cum, uint32_t freq, int total_bits);
/* TP_ERR_FORMAT unless the final state is the initial one and the whole stream was read. */
tp_status tp_rans_dec_finish(tp_rans_dec *dec, tp_err *e);

#ifdef __cplusplus
}
#endif
#endif
