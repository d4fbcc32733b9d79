/* The entropy block container (format in include/tenpak/entropy.h): header, frequency table,
 * payload, XXH64 of the decoded data. Shared by the reference and the cpu coder; the payload
 * coders plug in through tp_ent_impl. Also the order-0 model: counting, frequency quantisation,
 * entropy. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "common/ent_internal.h"

void tp_ent_params_default(tp_ent_params *p, tp_ent_coder coder) {
    p->coder = coder;
    p->lanes = coder == TP_ENT_RANS ? TP_ENT_LANES_CPU : 0;
    p->scale_bits = 0; /* auto: 12 unless quantisation costs > TP_ENT_SCALE_SLACK */
    p->sym_bits = 8;
}

const char *tp_ent_coder_name(tp_ent_coder c) {
    switch (c) {
    case TP_ENT_STORED: return "stored";
    case TP_ENT_RANS: return "rans";
    case TP_ENT_AC: return "ac";
    }
    return "?";
}

size_t tp_ent_bound(size_t n) { return TP_ENT_HEADER_FIXED + n + 8; }

static uint64_t rd64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}
static void wr64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* ---- order-0 model ---- */
void tp_ent_count(const uint8_t *src, size_t n, int sym_bits, uint64_t *count) {
    int nsym = 1 << sym_bits;
    memset(count, 0, (size_t)nsym * sizeof *count);
    for (size_t i = 0; i < n; i++) {
        if (sym_bits == 8) count[src[i]]++;
        else {
            count[src[i] & 15]++;
            count[src[i] >> 4]++;
        }
    }
}

tp_status tp_ent_quantize_freqs(const uint64_t *count, int nsym, int scale_bits, uint32_t *freq,
                                tp_err *e) {
    const uint32_t total = 1u << scale_bits;
    uint64_t N = 0;
    int present = 0;
    for (int s = 0; s < nsym; s++) {
        N += count[s];
        present += count[s] > 0;
    }
    memset(freq, 0, (size_t)nsym * sizeof *freq);
    if (N == 0) return TP_OK;
    if ((uint32_t)present > total)
        return tp_fail(e, TP_ERR_ARG, "%d symbols present but scale_bits %d allows only %u", present,
                       scale_bits, total);
    uint64_t sum = 0;
    for (int s = 0; s < nsym; s++) {
        if (!count[s]) continue;
        /* count * total < 2^41 * 2^15: no overflow for n < TP_ENT_MAX_N (x2 for nibbles) */
        uint64_t f = count[s] * total / N;
        freq[s] = f ? (uint32_t)f : 1;
        sum += freq[s];
    }
    /* Greedy repair: each step moves one unit where it changes the coded size the least
     * (adding where count * log2((f+1)/f) is largest; removing where count * log2(f/(f-1)) is
     * smallest). Ties go to the lowest symbol, so the result is deterministic. */
    while (sum < total) {
        int best = -1;
        double gain = -1;
        for (int s = 0; s < nsym; s++) {
            if (!count[s]) continue;
            double g = (double)count[s] * log2((freq[s] + 1.0) / freq[s]);
            if (g > gain) gain = g, best = s;
        }
        freq[best]++;
        sum++;
    }
    while (sum > total) {
        int best = -1;
        double loss = INFINITY;
        for (int s = 0; s < nsym; s++) {
            if (freq[s] <= 1) continue;
            double l = (double)count[s] * log2((double)freq[s] / (freq[s] - 1.0));
            if (l < loss) loss = l, best = s;
        }
        freq[best]--;
        sum--;
    }
    return TP_OK;
}

int tp_ent_auto_scale(const uint64_t *count, int nsym) {
    const double ideal = tp_ent_entropy_bits(count, nsym);
    double N = 0;
    int present = 0;
    for (int s = 0; s < nsym; s++) N += (double)count[s], present += count[s] > 0;
    uint32_t freq[256];
    for (int s = TP_ENT_SCALE_DEFAULT; s < TP_ENT_SCALE_MAX; s++) {
        if (present > (1 << s) || tp_ent_quantize_freqs(count, nsym, s, freq, NULL) != TP_OK) continue;
        if (tp_ent_coded_bits(count, freq, nsym, s) <= ideal * N * (1 + TP_ENT_SCALE_SLACK)) return s;
    }
    return TP_ENT_SCALE_MAX;
}

double tp_ent_entropy_bits(const uint64_t *count, int nsym) {
    double N = 0, h = 0;
    for (int s = 0; s < nsym; s++) N += (double)count[s];
    if (N == 0) return 0;
    for (int s = 0; s < nsym; s++)
        if (count[s]) h -= (double)count[s] / N * log2((double)count[s] / N);
    return h;
}

double tp_ent_coded_bits(const uint64_t *count, const uint32_t *freq, int nsym, int scale_bits) {
    double bits = 0;
    for (int s = 0; s < nsym; s++)
        if (count[s]) bits += (double)count[s] * (scale_bits - log2((double)freq[s]));
    return bits;
}

uint32_t tp_ent_cdf_find(const uint32_t *cdf, uint32_t nsym, uint32_t target) {
    uint32_t lo = 0, hi = nsym; /* invariant: cdf[lo] <= target < cdf[hi] */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (cdf[mid] <= target) lo = mid;
        else hi = mid;
    }
    return lo;
}

void tp_ent_cum(const uint32_t *freq, int nsym, uint32_t *cum) {
    cum[0] = 0;
    for (int s = 0; s < nsym; s++) cum[s + 1] = cum[s] + freq[s];
}

void tp_ent_slot_table(const uint32_t *freq, int nsym, int scale_bits, uint8_t *slot2sym) {
    uint32_t k = 0;
    for (int s = 0; s < nsym; s++)
        for (uint32_t j = 0; j < freq[s] && k < (1u << scale_bits); j++) slot2sym[k++] = (uint8_t)s;
}

/* ---- frequency table: LEB128 varints, zero runs ---- */
static size_t table_write(const uint32_t *freq, int nsym, uint8_t *dst) {
    size_t o = 0;
    for (int s = 0; s < nsym;) {
        uint32_t f = freq[s];
        if (f == 0) {
            int r = 0;
            while (s + 1 + r < nsym && freq[s + 1 + r] == 0 && r < 255) r++;
            dst[o++] = 0;
            dst[o++] = (uint8_t)r;
            s += 1 + r;
            continue;
        }
        while (f >= 0x80) {
            dst[o++] = (uint8_t)(f | 0x80);
            f >>= 7;
        }
        dst[o++] = (uint8_t)f;
        s++;
    }
    return o;
}

static tp_status table_read(const uint8_t *src, size_t len, tp_ent_header *h, tp_err *e) {
    const uint32_t total = 1u << h->scale_bits;
    size_t o = 0;
    uint64_t sum = 0;
    int s = 0;
    while (s < h->nsym) {
        uint32_t f = 0;
        int shift = 0;
        for (;;) {
            if (o >= len) return tp_fail(e, TP_ERR_FORMAT, "frequency table truncated at symbol %d", s);
            uint8_t b = src[o++];
            if (shift > 14) return tp_fail(e, TP_ERR_FORMAT, "frequency of symbol %d: varint too long", s);
            f |= (uint32_t)(b & 0x7f) << shift;
            shift += 7;
            if (!(b & 0x80)) break;
        }
        if (f == 0) {
            if (o >= len) return tp_fail(e, TP_ERR_FORMAT, "frequency table truncated in a zero run");
            int r = src[o++];
            if (s + 1 + r > h->nsym)
                return tp_fail(e, TP_ERR_FORMAT, "zero run at symbol %d runs past the %d symbols", s, h->nsym);
            for (int k = 0; k <= r; k++) h->freq[s + k] = 0;
            s += 1 + r;
            continue;
        }
        if (f > total)
            return tp_fail(e, TP_ERR_FORMAT, "frequency %u of symbol %d exceeds the total 2^%d", f, s, h->scale_bits);
        h->freq[s++] = f;
        sum += f;
    }
    if (o != len)
        return tp_fail(e, TP_ERR_FORMAT, "frequency table is %zu bytes but the header says %zu", o, len);
    if (sum != total)
        return tp_fail(e, TP_ERR_FORMAT, "frequencies sum to %llu, not the declared 2^%d = %u",
                       (unsigned long long)sum, h->scale_bits, total);
    return TP_OK;
}

/* ---- header ---- */
tp_status tp_ent_parse_header(const void *src_, size_t len, tp_ent_header *h, tp_err *e) {
    const uint8_t *src = src_;
    memset(h, 0, sizeof *h);
    if (len < TP_ENT_HEADER_FIXED + 8)
        return tp_fail(e, TP_ERR_FORMAT, "%zu bytes: too short for a block (header and checksum need %d)",
                       len, TP_ENT_HEADER_FIXED + 8);
    if (memcmp(src, TP_ENT_MAGIC, 4) != 0) return tp_fail(e, TP_ERR_FORMAT, "bad magic (not a tenpak entropy block)");
    if (src[4] != TP_ENT_VERSION) return tp_fail(e, TP_ERR_FORMAT, "unsupported version %d", src[4]);
    if (src[5] > TP_ENT_AC) return tp_fail(e, TP_ERR_FORMAT, "unknown coder id %d", src[5]);
    h->coder = (tp_ent_coder)src[5];
    h->lanes = src[6];
    h->scale_bits = src[7];
    h->sym_bits = src[8];
    h->table_len = (size_t)src[10] | (size_t)src[11] << 8;
    h->n = rd64(src + 12);
    h->payload_len = rd64(src + 20);
    if (src[9] != 0) return tp_fail(e, TP_ERR_FORMAT, "reserved byte is %d, not 0", src[9]);
    if (h->sym_bits != 8 && h->sym_bits != 4) return tp_fail(e, TP_ERR_FORMAT, "sym_bits %d (must be 8 or 4)", h->sym_bits);
    h->nsym = 1 << h->sym_bits;
    if (h->n >= TP_ENT_MAX_N) return tp_fail(e, TP_ERR_FORMAT, "decoded length %llu is not below 2^40", (unsigned long long)h->n);
    if (h->table_len > TP_ENT_TABLE_MAX) return tp_fail(e, TP_ERR_FORMAT, "table_len %zu exceeds %d", h->table_len, TP_ENT_TABLE_MAX);
    uint64_t body = (uint64_t)len - TP_ENT_HEADER_FIXED - 8;
    if (h->payload_len > body || h->table_len + h->payload_len != body)
        return tp_fail(e, TP_ERR_FORMAT, "lengths do not add up: table %zu + payload %llu + 44 bytes of header and checksum != block %zu",
                       h->table_len, (unsigned long long)h->payload_len, len);
    h->payload_off = TP_ENT_HEADER_FIXED + h->table_len;
    h->checksum = rd64(src + len - 8);
    if (h->coder == TP_ENT_STORED) {
        if (h->lanes || h->scale_bits || h->table_len)
            return tp_fail(e, TP_ERR_FORMAT, "stored block with lanes/scale/table set");
        if (h->payload_len != h->n)
            return tp_fail(e, TP_ERR_FORMAT, "stored block: payload %llu bytes but n = %llu",
                           (unsigned long long)h->payload_len, (unsigned long long)h->n);
        return TP_OK;
    }
    if (h->scale_bits < 1 || h->scale_bits > TP_ENT_SCALE_MAX)
        return tp_fail(e, TP_ERR_FORMAT, "scale_bits %d outside 1..%d", h->scale_bits, TP_ENT_SCALE_MAX);
    if (h->coder == TP_ENT_RANS && (h->lanes < 1 || h->lanes > TP_ENT_MAX_LANES))
        return tp_fail(e, TP_ERR_FORMAT, "rANS lanes %d outside 1..%d", h->lanes, TP_ENT_MAX_LANES);
    if (h->coder == TP_ENT_AC && h->lanes != 0) return tp_fail(e, TP_ERR_FORMAT, "AC block with lanes %d", h->lanes);
    if (h->n == 0) {
        if (h->table_len || h->payload_len) return tp_fail(e, TP_ERR_FORMAT, "empty block with a table or payload");
        return TP_OK;
    }
    tp_status st = table_read(src + TP_ENT_HEADER_FIXED, h->table_len, h, e);
    if (st != TP_OK) return st;
    if (h->coder == TP_ENT_RANS && h->payload_len < 4u * (unsigned)h->lanes)
        return tp_fail(e, TP_ERR_FORMAT, "rANS payload of %llu bytes cannot hold %d states",
                       (unsigned long long)h->payload_len, h->lanes);
    return TP_OK;
}

static void header_write(uint8_t *dst, tp_ent_coder coder, int lanes, int scale_bits, int sym_bits,
                         size_t table_len, uint64_t n, uint64_t payload_len) {
    memcpy(dst, TP_ENT_MAGIC, 4);
    dst[4] = TP_ENT_VERSION;
    dst[5] = (uint8_t)coder;
    dst[6] = (uint8_t)lanes;
    dst[7] = (uint8_t)scale_bits;
    dst[8] = (uint8_t)sym_bits;
    dst[9] = 0;
    dst[10] = (uint8_t)table_len;
    dst[11] = (uint8_t)(table_len >> 8);
    wr64(dst + 12, n);
    wr64(dst + 20, payload_len);
}

tp_status tp_ent_encode_with(const tp_ent_impl *im, const void *src_, size_t n, const tp_ent_params *p,
                             void *dst_, size_t cap, size_t *len, tp_err *e) {
    const uint8_t *src = src_;
    uint8_t *dst = dst_;
    *len = 0;
    if (p->coder != TP_ENT_RANS && p->coder != TP_ENT_AC) return tp_fail(e, TP_ERR_ARG, "coder must be rans or ac");
    if (p->sym_bits != 8 && p->sym_bits != 4) return tp_fail(e, TP_ERR_ARG, "sym_bits %d (must be 8 or 4)", p->sym_bits);
    if (p->scale_bits < 0 || p->scale_bits > TP_ENT_SCALE_MAX) return tp_fail(e, TP_ERR_ARG, "scale_bits %d outside 0 (auto), 1..15", p->scale_bits);
    if (p->coder == TP_ENT_RANS && (p->lanes < 1 || p->lanes > TP_ENT_MAX_LANES)) return tp_fail(e, TP_ERR_ARG, "lanes %d outside 1..64", p->lanes);
    if ((uint64_t)n >= TP_ENT_MAX_N) return tp_fail(e, TP_ERR_ARG, "input of %zu bytes is too large", n);
    if (cap < tp_ent_bound(n)) return tp_fail(e, TP_ERR_ARG, "output buffer %zu < bound %zu", cap, tp_ent_bound(n));

    tp_ent_header h;
    memset(&h, 0, sizeof h);
    h.coder = p->coder;
    h.lanes = p->coder == TP_ENT_RANS ? p->lanes : 0;
    h.scale_bits = p->scale_bits ? p->scale_bits : TP_ENT_SCALE_DEFAULT;
    h.sym_bits = p->sym_bits;
    h.nsym = 1 << p->sym_bits;
    h.n = n;
    size_t table_len = 0, payload_len = 0;
    int stored = 1;
    if (n > 0) {
        uint64_t count[256];
        im->count(src, n, p->sym_bits, count);
        if (p->scale_bits == 0) h.scale_bits = tp_ent_auto_scale(count, h.nsym);
        tp_status st = tp_ent_quantize_freqs(count, h.nsym, h.scale_bits, h.freq, e);
        if (st != TP_OK) return st;
        uint8_t table[TP_ENT_TABLE_MAX];
        table_len = table_write(h.freq, h.nsym, table);
        h.table_len = table_len;
        h.payload_off = TP_ENT_HEADER_FIXED + table_len;
        /* worth coding only if table + payload < n (and then the table fits in dst) */
        if (table_len < n) {
            memcpy(dst + TP_ENT_HEADER_FIXED, table, table_len);
            tp_ent_penc_fn fn = p->coder == TP_ENT_RANS ? im->rans_enc : im->ac_enc;
            stored = fn(src, n, &h, dst + h.payload_off, n - table_len, &payload_len) != 0;
        }
    } else {
        stored = 0; /* an empty block of the requested coder: no table, no payload */
    }
    if (stored) {
        header_write(dst, TP_ENT_STORED, 0, 0, p->sym_bits, 0, n, n);
        memcpy(dst + TP_ENT_HEADER_FIXED, src, n);
        table_len = 0;
        payload_len = n;
    } else {
        header_write(dst, h.coder, h.lanes, h.scale_bits, h.sym_bits, table_len, n, payload_len);
    }
    size_t end = TP_ENT_HEADER_FIXED + table_len + payload_len;
    wr64(dst + end, XXH64(src, n, 0));
    *len = end + 8;
    return TP_OK;
}

tp_status tp_ent_decode_with(const tp_ent_impl *im, const void *src_, size_t len, void *dst, size_t cap,
                             size_t *n, tp_err *e) {
    const uint8_t *src = src_;
    tp_ent_header h;
    *n = 0;
    tp_status st = tp_ent_parse_header(src, len, &h, e);
    if (st != TP_OK) return st;
    if (h.n > cap)
        return tp_fail(e, TP_ERR_ARG, "output buffer of %zu bytes is smaller than the decoded length %llu", cap,
                       (unsigned long long)h.n);
    uint64_t sum = 0;
    int summed = 0; /* the decoder hashed what it wrote (tp_ent_impl.rans_dec_sum) */
    if (h.coder == TP_ENT_STORED) memcpy(dst, src + TP_ENT_HEADER_FIXED, h.n);
    else if (h.n > 0) {
        if (h.coder == TP_ENT_RANS && im->rans_dec_sum)
            st = im->rans_dec_sum(&h, src + h.payload_off, dst, &sum, e), summed = 1;
        else st = (h.coder == TP_ENT_RANS ? im->rans_dec : im->ac_dec)(&h, src + h.payload_off, dst, e);
        if (st != TP_OK) return st;
    }
    if (!summed) sum = XXH64(dst, h.n, 0);
    if (sum != h.checksum)
        return tp_fail(e, TP_ERR_CHECKSUM, "decoded data does not match its checksum (xxh64 %016llx, stored %016llx)",
                       (unsigned long long)sum, (unsigned long long)h.checksum);
    *n = h.n;
    return TP_OK;
}
