/* cpu backend of the entropy coders: the 32-lane interleaved rANS (the format of
 * include/tenpak/entropy.h with lanes = 32), encoder without divisions (exact reciprocals) and a
 * decoder with a packed table, dispatched to AVX2 or the portable path by tp_cpu_isa(); the range
 * coder with a slot table (kernels/cpu/ac_cpu.c). Streams are byte-identical to the reference's
 * for the same parameters; other lane counts go through the reference. scale_bits 13..15 decode
 * in two levels, a byte table of symbols (2^s entries, at most 32 KB, built per block) and a
 * per-symbol freq | cum << 16, on AVX-512, AVX2 or the portable path; with AVX-512 by gathers
 * instead where tp_rans_lookup_at says so (on Intel CPUs at scale <= 13; TENPAK_RANS_LOOKUP). The
 * SIMD decoders hash the bytes they write (kernels/cpu/rans_cpu.h), so the checksum needs no second
 * pass. */
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "kernels/cpu/rans_cpu.h"
#include "reference/ent_ref.h"

int tp_ac_payload_enc_cpu(const uint8_t *src, size_t n, const tp_ent_header *h, uint8_t *dst,
                          size_t cap, size_t *len);
tp_status tp_ac_payload_dec_cpu(const tp_ent_header *h, const uint8_t *payload, uint8_t *dst,
                                tp_err *e);

/* Four histograms break the store-to-load dependency of repeated bytes. */
static void count_cpu(const uint8_t *src, size_t n, int sym_bits, uint64_t *count) {
    uint32_t c[4][256];
    memset(c, 0, sizeof c);
    memset(count, 0, (size_t)(1 << sym_bits) * sizeof *count);
    size_t i = 0;
    while (i < n) {
        /* flush before a uint32 could overflow */
        size_t stop = n - i > (1u << 30) ? i + (1u << 30) : n, i4 = i + ((stop - i) & ~(size_t)3);
        for (; i < i4; i += 4) {
            c[0][src[i]]++;
            c[1][src[i + 1]]++;
            c[2][src[i + 2]]++;
            c[3][src[i + 3]]++;
        }
        for (; i < stop; i++) c[0][src[i]]++;
        for (int b = 0; b < 256; b++) {
            uint64_t t = (uint64_t)c[0][b] + c[1][b] + c[2][b] + c[3][b];
            if (sym_bits == 8) count[b] += t;
            else {
                count[b & 15] += t;
                count[b >> 4] += t;
            }
        }
        memset(c, 0, sizeof c);
    }
}

/* ---- rANS encoder, 32 lanes ----
 * Division by f without dividing: with l = ceil(log2 f) and rcp = ceil(2^(31+l) / f) (< 2^32),
 * floor(x / f) = (x * rcp) >> (31 + l) for every x < 2^31 (Granlund-Montgomery: rcp * f - 2^(31+l)
 * < f <= 2^l). Then C(x) = x + cum + q (2^s - f). */
static void esym_init(tp_rans_esym *t, uint32_t cum, uint32_t f, int s) {
    memset(t, 0, sizeof *t);
    if (!f) return;
    int l = 0;
    while ((1u << l) < f) l++;
    t->x_max_m1 = (f << (31 - s)) - 1;
    t->shift = 31u + (uint32_t)l;
    t->rcp = (uint32_t)(((1ull << t->shift) + f - 1) / f);
    t->bc = cum | ((1u << s) - f) << 16;
}

/* one lane: C(x) after renormalisation, without dividing */
static inline uint32_t esym_put(const tp_rans_esym *E, uint32_t v) {
    const uint32_t q = (uint32_t)(((uint64_t)v * E->rcp) >> E->shift);
    return v + (E->bc & 0xffff) + q * (E->bc >> 16);
}

int32_t tp_rans_lut_expand[256][8] __attribute__((aligned(32)));
int32_t tp_rans_lut_compact[256][8] __attribute__((aligned(32)));

__attribute__((constructor)) static void luts_init(void) {
    for (int m = 0; m < 256; m++) {
        int cnt = __builtin_popcount((unsigned)m), r = 0;
        for (int i = 0; i < 8; i++) {
            tp_rans_lut_expand[m][i] = __builtin_popcount((unsigned)m & ((1u << i) - 1));
            tp_rans_lut_compact[m][i] = 0;
        }
        for (int i = 0; i < 8; i++)
            if (m >> i & 1) tp_rans_lut_compact[m][8 - cnt + r++] = i;
    }
}

static void enc_groups_portable(uint32_t x[32], uint8_t **pp, const tp_rans_esym *tab,
                                const uint8_t *syms, size_t ngroups) {
    uint8_t *p = *pp;
    for (size_t g = ngroups; g-- > 0;) {
        const uint8_t *sy = syms + 32 * g;
        uint8_t r1[32], r2[32];
        uint32_t n1[32], n2[32];
        for (int j = 0; j < 32; j++) {
            const tp_rans_esym *E = &tab[sy[j]];
            uint32_t v = x[j];
            n1[j] = v > E->x_max_m1;
            n2[j] = (v >> 8) > E->x_max_m1;
            r2[j] = (uint8_t)v;
            r1[j] = (uint8_t)(v >> (8 * n2[j]));
            v >>= 8 * (n1[j] + n2[j]);
            x[j] = esym_put(E, v);
        }
        for (int j = 31; j >= 0; j--) {
            p[-1] = r2[j];
            p -= n2[j];
        }
        for (int j = 31; j >= 0; j--) {
            p[-1] = r1[j];
            p -= n1[j];
        }
    }
    *pp = p;
}

static int rans_payload_enc_cpu(const uint8_t *src, size_t n, const tp_ent_header *h, uint8_t *dst,
                                size_t cap, size_t *len) {
    if (h->lanes != 32) return tp_rans_payload_enc_ref(src, n, h, dst, cap, len);
    const int s = h->scale_bits;
    const size_t count = h->sym_bits == 8 ? n : 2 * n, full = count / 32, tail = count % 32;
    uint32_t cum[257], x[32];
    tp_ent_cum(h->freq, h->nsym, cum);
    tp_rans_esym tab[256];
    for (int k = 0; k < h->nsym; k++) esym_init(&tab[k], cum[k], h->freq[k], s);
    for (int j = 0; j < 32; j++) x[j] = TP_RANS_L;
    uint8_t *p = dst + cap;
    uint8_t syms[32 * 64];

    /* the short last group first (the encoder runs backwards), as the reference does */
    if (tail) {
        uint8_t r1[32], r2[32];
        int nb[32], need = 0;
        for (size_t j = 0; j < tail; j++) {
            const unsigned sym = tp_ent_sym_at(src, h->sym_bits, full * 32 + j);
            const tp_rans_esym *E = &tab[sym];
            uint32_t v = x[j];
            nb[j] = (v > E->x_max_m1) + ((v >> 8) > E->x_max_m1);
            r2[j] = (uint8_t)v;
            r1[j] = (uint8_t)(nb[j] == 2 ? v >> 8 : v);
            v >>= 8 * nb[j];
            x[j] = esym_put(E, v);
            need += nb[j];
        }
        if (p - dst < need) return 1;
        for (int j = (int)tail - 1; j >= 0; j--)
            if (nb[j] == 2) *--p = r2[j];
        for (int j = (int)tail - 1; j >= 0; j--)
            if (nb[j] >= 1) *--p = r1[j];
    }
    const int avx2 = tp_cpu_isa() >= TP_ISA_AVX2;
    size_t g = full;
    while (g > 0) {
        /* a chunk of up to 64 groups, as long as it surely fits (<= 72 bytes a group) */
        size_t room = (size_t)(p - dst), fit = room / TP_RANS32_GROUP_BYTES;
        size_t ng = g < 64 ? g : 64;
        if (fit == 0) break;
        if (ng > fit) ng = fit;
        const uint8_t *sy;
        if (h->sym_bits == 8) sy = src + (g - ng) * 32;
        else {
            const uint8_t *b = src + (g - ng) * 16;
            for (size_t i = 0; i < ng * 16; i++) {
                syms[2 * i] = b[i] & 15;
                syms[2 * i + 1] = b[i] >> 4;
            }
            sy = syms;
        }
        if (avx2) tp_rans32_enc_groups_avx2(x, &p, tab, sy, ng);
        else enc_groups_portable(x, &p, tab, sy, ng);
        g -= ng;
    }
    /* close to the front of the buffer: group by group with exact room checks */
    for (; g > 0; g--) {
        uint8_t r1[32], r2[32];
        int nb[32], need = 0;
        for (int j = 0; j < 32; j++) {
            const unsigned sym = tp_ent_sym_at(src, h->sym_bits, (g - 1) * 32 + (size_t)j);
            const tp_rans_esym *E = &tab[sym];
            uint32_t v = x[j];
            nb[j] = (v > E->x_max_m1) + ((v >> 8) > E->x_max_m1);
            r2[j] = (uint8_t)v;
            r1[j] = (uint8_t)(nb[j] == 2 ? v >> 8 : v);
            v >>= 8 * nb[j];
            x[j] = esym_put(E, v);
            need += nb[j];
        }
        if (p - dst < need) return 1;
        for (int j = 31; j >= 0; j--)
            if (nb[j] == 2) *--p = r2[j];
        for (int j = 31; j >= 0; j--)
            if (nb[j] >= 1) *--p = r1[j];
    }
    if (p - dst < 4 * 32) return 1;
    for (int j = 31; j >= 0; j--) {
        p -= 4;
        tp_ent_wr32(p, x[j]);
    }
    *len = (size_t)(dst + cap - p);
    memmove(dst, p, *len);
    return 0;
}

/* ---- rANS decoder, 32 lanes ---- */
/* The AVX-512 lookups (include/tenpak/entropy.h): -1 until the first decode chooses, then AUTO
 * unless TENPAK_RANS_LOOKUP says gather or scalar; tp_rans_lookup_at resolves AUTO by scale and CPU.
 * Scale 14..15: scalar loads on every CPU. vpgatherdd is slow on AMD cores (rans_lut.h: 0.54
 * against 0.93 GB/s on Zen 3; on Zen 4 the gather decoder runs at 0.74-0.79 GB/s against the scalar one's 1.05-1.08, kernels/cpu/avx512/rans_avx512.c), and on an
 * Intel Xeon with AVX-512 VBMI and AMX (the GPU machine's CPU, GDS "Not affected") the per-slot
 * table (128 KB at 15 bits, past L1) loses too: wiki.test.raw, one thread, scalar 580-658 MB/s,
 * gather 565-616 (reports/gpu/run17); 815-843 against 618-628 (run21).
 * Scale <= 12: the table is 16 KB (L1) and one gather per 16 lanes replaces 16 scalar loads and
 * inserts: on that Xeon (run21, wiki.test.raw at --scale-bits 12) 1024-1054 MB/s against 859-893
 * for the AVX2 decoder's scalar loads; on Zen 4 (here, alternating) 1037-1077 against 1144-1245.
 * Scale 13: the per-slot table is 32 KB, inside that Xeon's 48 KB L1: gathers 764-784 MB/s against
 * scalar loads' 293-643 (run22, a slower or busier machine than run21's: 12 with gathers 804-855
 * there); 14 (64 KB): 581-694 against 642-684, no gain. Ten alternating rounds of --repeat 15 on
 * the same kind of Xeon (run24): gathers at 13 904-1098 MB/s (median 968) against scalar loads at 13
 * 755-878 (789) and at 15, the old default for text, 729-819 (783). Hence AUTO: gather at <= 13
 * on Intel, scalar elsewhere (Zen 4 at 13, scalar: 857-880 MB/s against 801-871 at 15, alternating
 * here). (Scalar loads on two vectors of 16 with the AVX-512 renormalisation measured no faster on
 * either, Zen 4 1105-1163 MB/s, the Xeon 742-856 with TENPAK_RANS_NARROW512=1 at 59b5489, and was
 * removed.) */
static int rans_lookup = -1;

static tp_rans_lookup lookup_default(void) {
    const char *v = getenv("TENPAK_RANS_LOOKUP");
    if (v && !strcmp(v, "gather")) return TP_RANS_LOOKUP_GATHER;
    if (v && !strcmp(v, "scalar")) return TP_RANS_LOOKUP_SCALAR;
    return TP_RANS_LOOKUP_AUTO;
}

tp_rans_lookup tp_ent_rans_lookup(void) {
    int l = __atomic_load_n(&rans_lookup, __ATOMIC_RELAXED);
    if (l < 0) {
        l = (int)lookup_default();
        __atomic_store_n(&rans_lookup, l, __ATOMIC_RELAXED);
    }
    return (tp_rans_lookup)l;
}
void tp_ent_set_rans_lookup(tp_rans_lookup l) {
    __atomic_store_n(&rans_lookup, l == TP_RANS_LOOKUP_GATHER ? 1 : l == TP_RANS_LOOKUP_AUTO ? 2 : 0, __ATOMIC_RELAXED);
}
const char *tp_rans_lookup_name(tp_rans_lookup l) {
    return l == TP_RANS_LOOKUP_GATHER ? "gather" : l == TP_RANS_LOOKUP_AUTO ? "auto" : "scalar";
}
tp_rans_lookup tp_rans_lookup_at(tp_rans_lookup l, int scale_bits) {
    if (l != TP_RANS_LOOKUP_AUTO) return l;
    return scale_bits <= 13 && tp_cpu_is_intel() ? TP_RANS_LOOKUP_GATHER : TP_RANS_LOOKUP_SCALAR;
}

static size_t dec_groups_portable(uint32_t x[32], const uint8_t **pp, const uint8_t *end,
                                  const uint32_t *tab, int s, int sym_bits, uint8_t *out,
                                  size_t ngroups) {
    const uint8_t *p = *pp;
    const uint32_t mask = (1u << s) - 1;
    size_t g = 0;
    for (; g < ngroups && end - p >= TP_RANS32_GROUP_BYTES; g++) {
        uint8_t sy[32];
        for (int j = 0; j < 32; j++) {
            const uint32_t e = tab[x[j] & mask];
            x[j] = ((e & 0xfff) + 1) * (x[j] >> s) + ((e >> 12) & 0xfff);
            sy[j] = (uint8_t)(e >> 24);
        }
        for (int round = 0; round < 2; round++)
            for (int j = 0; j < 32; j++) { /* arithmetic, not a select: the branch would mispredict */
                const uint32_t c = x[j] < TP_RANS_L;
                x[j] = x[j] << (8 * c) | (*p & (0u - c)); /* p < end: the group check above */
                p += c;
            }
        if (sym_bits == 8) memcpy(out + 32 * g, sy, 32);
        else
            for (int i = 0; i < 16; i++) out[16 * g + (size_t)i] = (uint8_t)(sy[2 * i] | sy[2 * i + 1] << 4);
    }
    *pp = p;
    return g;
}

/* scale_bits 13..15: sym[slot], then fc[sym] = freq | cum << 16 (both tables L1-sized) */
static size_t dec_groups_wide(uint32_t x[32], const uint8_t **pp, const uint8_t *end,
                              const uint8_t *sym, const uint32_t *fc, int s, int sym_bits, uint8_t *out,
                              size_t ngroups) {
    const uint8_t *p = *pp;
    const uint32_t mask = (1u << s) - 1;
    size_t g = 0;
    for (; g < ngroups && end - p >= TP_RANS32_GROUP_BYTES; g++) {
        uint8_t sy[32];
        for (int j = 0; j < 32; j++) {
            const uint32_t slot = x[j] & mask, e = fc[sym[slot]];
            x[j] = (e & 0xffff) * (x[j] >> s) + slot - (e >> 16);
            sy[j] = sym[slot];
        }
        for (int round = 0; round < 2; round++)
            for (int j = 0; j < 32; j++) {
                const uint32_t c = x[j] < TP_RANS_L;
                x[j] = x[j] << (8 * c) | (*p & (0u - c));
                p += c;
            }
        if (sym_bits == 8) memcpy(out + 32 * g, sy, 32);
        else
            for (int i = 0; i < 16; i++) out[16 * g + (size_t)i] = (uint8_t)(sy[2 * i] | sy[2 * i + 1] << 4);
    }
    *pp = p;
    return g;
}

uint64_t tp_xxh64_finish(uint64_t v[4], const uint8_t *data, size_t done, size_t n) {
    for (; n - done >= 32; done += 32) tp_xxh64_stripe(v, data + done);
    uint64_t h;
    if (n >= 32) {
        h = tp_xxh_rotl(v[0], 1) + tp_xxh_rotl(v[1], 7) + tp_xxh_rotl(v[2], 12) + tp_xxh_rotl(v[3], 18);
        for (int i = 0; i < 4; i++) h = (h ^ tp_xxh_round(0, v[i])) * TP_XXH_P1 + TP_XXH_P4;
    } else
        h = TP_XXH_P5;
    h += n;
    const uint8_t *p = data + done;
    size_t left = n - done;
    for (; left >= 8; left -= 8, p += 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = tp_xxh_rotl(h ^ tp_xxh_round(0, w), 27) * TP_XXH_P1 + TP_XXH_P4;
    }
    if (left >= 4) {
        uint32_t w;
        memcpy(&w, p, 4);
        h = tp_xxh_rotl(h ^ (uint64_t)w * TP_XXH_P1, 23) * TP_XXH_P2 + TP_XXH_P3;
        left -= 4, p += 4;
    }
    for (; left; left--, p++) h = tp_xxh_rotl(h ^ *p * TP_XXH_P5, 11) * TP_XXH_P1;
    h ^= h >> 33, h *= TP_XXH_P2, h ^= h >> 29, h *= TP_XXH_P3, h ^= h >> 32;
    return h;
}

/* sum: NULL, or the XXH64 of the decoded bytes, hashed by the SIMD decoders as they write them */
static tp_status rans_dec_cpu(const tp_ent_header *h, const uint8_t *payload, uint8_t *dst, uint64_t *sum,
                              tp_err *e) {
    if (h->lanes != 32) {
        tp_status st = tp_rans_payload_dec_ref(h, payload, dst, e);
        if (st == TP_OK && sum) *sum = XXH64(dst, h->n, 0);
        return st;
    }
    const int s = h->scale_bits, wide = s > 12;
    const size_t count = h->sym_bits == 8 ? h->n : 2 * h->n, full = count / 32;
    uint32_t cum[257], x[32];
    static _Thread_local uint32_t tab[1 << 12];
    static _Thread_local uint8_t symtab[(1 << TP_ENT_SCALE_MAX) + 3]; /* + 3: the gathers read 4 bytes */
    uint32_t fc[256];
    tp_ent_cum(h->freq, h->nsym, cum);
    for (int k = 0; k < h->nsym; k++) {
        memset(symtab + cum[k], k, h->freq[k]);
        fc[k] = h->freq[k] | cum[k] << 16;
        if (!wide)
            for (uint32_t slot = cum[k]; slot < cum[k + 1]; slot++)
                tab[slot] = (h->freq[k] - 1) | (slot - cum[k]) << 12 | (uint32_t)k << 24;
    }
    const uint8_t *p = payload, *end = payload + h->payload_len;
    for (int j = 0; j < 32; j++, p += 4) {
        x[j] = tp_ent_rd32(p);
        if (x[j] < TP_RANS_L || x[j] >= 256u * TP_RANS_L)
            return tp_fail(e, TP_ERR_FORMAT, "rANS state %d is 0x%08x, outside [2^23, 2^31)", j, x[j]);
    }
    const tp_isa isa = tp_cpu_isa();
    size_t g;
    uint64_t hv4[4], *hv = sum && isa >= TP_ISA_AVX2 ? hv4 : NULL; /* below AVX2: one pass after */
    tp_xxh64_init(hv4);
    uint32_t *fb = NULL; /* the gathers' per-slot freq | (slot - cum) << 16, 2^s entries */
    const int gather = tp_rans_lookup_at(tp_ent_rans_lookup(), s) == TP_RANS_LOOKUP_GATHER;
    if (wide && isa >= TP_ISA_AVX512 && gather &&
        (fb = malloc(sizeof *fb << s)) != NULL) {
        for (int k = 0; k < h->nsym; k++)
            for (uint32_t j = 0, f = h->freq[k]; j < f; j++) fb[cum[k] + j] = f | j << 16;
        g = isa >= TP_ISA_AVX512VBMI
                ? tp_rans32_dec_groups_wide_gather_avx512vbmi(x, &p, end, fb, symtab, s, h->sym_bits, dst, full, hv)
                : tp_rans32_dec_groups_wide_gather_avx512(x, &p, end, fb, symtab, s, h->sym_bits, dst, full, hv);
        free(fb);
    } else if (wide) /* (also where the gather table could not be allocated) */
        g = isa >= TP_ISA_AVX512 ? tp_rans32_dec_groups_wide_avx512(x, &p, end, symtab, fc, s, h->sym_bits, dst, full, hv)
            : isa >= TP_ISA_AVX2 ? tp_rans32_dec_groups_wide_avx2(x, &p, end, symtab, fc, s, h->sym_bits, dst, full, hv)
                                 : dec_groups_wide(x, &p, end, symtab, fc, s, h->sym_bits, dst, full);
    else if (isa >= TP_ISA_AVX512 && gather)
        g = isa >= TP_ISA_AVX512VBMI ? tp_rans32_dec_groups_gather_avx512vbmi(x, &p, end, tab, s, h->sym_bits, dst, full, hv)
                                     : tp_rans32_dec_groups_gather_avx512(x, &p, end, tab, s, h->sym_bits, dst, full, hv);
    else
        g = isa >= TP_ISA_AVX2 ? tp_rans32_dec_groups_avx2(x, &p, end, tab, s, h->sym_bits, dst, full, hv)
                               : dec_groups_portable(x, &p, end, tab, s, h->sym_bits, dst, full);
    /* the rest (near the end of the payload, and the short last group): the reference's checked steps */
    tp_status st = tp_rans_dec_rest_ref(h, x, p, end, symtab, cum, g * 32, dst, e);
    if (st == TP_OK && sum) *sum = tp_xxh64_finish(hv4, dst, hv ? tp_xxh64_hashed(g, h->sym_bits) : 0, h->n);
    return st;
}
static tp_status rans_payload_dec_cpu(const tp_ent_header *h, const uint8_t *payload, uint8_t *dst,
                                      tp_err *e) {
    return rans_dec_cpu(h, payload, dst, NULL, e);
}
static tp_status rans_payload_dec_sum_cpu(const tp_ent_header *h, const uint8_t *payload, uint8_t *dst,
                                          uint64_t *sum, tp_err *e) {
    return rans_dec_cpu(h, payload, dst, sum, e);
}

static const tp_ent_impl cpu_impl = {rans_payload_enc_cpu, tp_ac_payload_enc_cpu, rans_payload_dec_cpu,
                                     tp_ac_payload_dec_cpu, count_cpu, rans_payload_dec_sum_cpu};

tp_status tp_ent_encode_cpu(const void *src, size_t n, const tp_ent_params *p, void *dst, size_t cap,
                            size_t *len, tp_err *e) {
    return tp_ent_encode_with(&cpu_impl, src, n, p, dst, cap, len, e);
}
tp_status tp_ent_decode_cpu(const void *src, size_t len, void *dst, size_t cap, size_t *n, tp_err *e) {
    return tp_ent_decode_with(&cpu_impl, src, len, dst, cap, n, e);
}
