/* GGUF (llama.cpp's model file), versions 2 and 3, little-endian: a memory-mapped reader and a
 * writer.
 *
 * Layout (every integer little-endian; a "string" is u64 byte length + bytes, no NUL):
 *   header        "GGUF" | u32 version (2 or 3) | u64 tensor count | u64 metadata count
 *   metadata      count x { string key | u32 value type | value }; an array value is
 *                 u32 element type | u64 element count | elements (arrays of arrays allowed)
 *   tensor infos  count x { string name | u32 n_dims (1..4) | u64 ne[n_dims] | u32 ggml type |
 *                 u64 offset }; ne[0] is the innermost (contiguous) dimension, so a [out, in]
 *                 matrix of a Hugging Face checkpoint has ne = {in, out}
 *   padding       up to the alignment (metadata general.alignment, u32, a power of two; 32
 *                 when absent)
 *   data          each tensor at data start + offset (a multiple of the alignment), rows of ne[0]
 *                 elements of ggml_row_bytes(type, ne[0]) bytes each
 *
 * Validation, all at open time, before any value or tensor is exposed: the magic, the version,
 * every length and count checked against the bytes left (so absurd counts fail without allocating),
 * value types known, keys and tensor names unique, general.alignment a u32 power of two, n_dims in
 * 1..4, every ne >= 1 with a product that fits in int64, the type id one the reader knows (F32,
 * F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K), ne[0] a multiple of the type's block,
 * every tensor aligned, inside the file and overlapping no other. A failure is one line naming the
 * file and the problem. Known keys with a wrong type are checked by tp_gguf_get_* (the caller says
 * what it expects). */
#ifndef TENPAK_PIPELINE_GGUF_H
#define TENPAK_PIPELINE_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "tenpak/tenpak.h"

#ifdef __cplusplus
extern "C" {
#endif

/* metadata value types */
typedef enum tp_gguf_vtype {
    TP_GGUF_U8 = 0, TP_GGUF_I8 = 1, TP_GGUF_U16 = 2, TP_GGUF_I16 = 3, TP_GGUF_U32 = 4, TP_GGUF_I32 = 5,
    TP_GGUF_F32 = 6, TP_GGUF_BOOL = 7, TP_GGUF_STRING = 8, TP_GGUF_ARRAY = 9, TP_GGUF_U64 = 10,
    TP_GGUF_I64 = 11, TP_GGUF_F64 = 12
} tp_gguf_vtype;
const char *tp_gguf_vtype_name(int t);

#define TP_GGUF_MAX_DIMS 4
#define TP_GGUF_DEFAULT_ALIGNMENT 32

typedef struct tp_gguf_str { const char *s; uint64_t len; } tp_gguf_str; /* inside the map, not NUL-terminated */

typedef struct tp_gguf_kv {
    const char *key;         /* owned, NUL-terminated */
    tp_gguf_vtype type;
    union { uint64_t u; int64_t i; double f; } num; /* scalars: ints, floats (f32 widened), bool */
    tp_gguf_str str;         /* TP_GGUF_STRING */
    /* TP_GGUF_ARRAY: element type and count; elems points at the first element in the map
     * (numbers: count x size, little-endian, maybe unaligned); strs: the strings of a string array */
    tp_gguf_vtype arr_type;
    uint64_t arr_n;
    const uint8_t *elems;
    tp_gguf_str *strs;       /* owned; string arrays only */
} tp_gguf_kv;

typedef struct tp_gguf_tensor {
    const char *name;        /* owned, NUL-terminated */
    int type;                /* ggml type id (TP_GGML_* of tenpak/ggml.h) */
    int ndim;
    int64_t ne[TP_GGUF_MAX_DIMS]; /* ne[0] innermost; unused dims 1 */
    int64_t nelem;
    uint64_t offset;         /* from the data start */
    size_t nbytes;
    const uint8_t *data;     /* inside the map */
} tp_gguf_tensor;

typedef struct tp_gguf tp_gguf;

tp_status tp_gguf_open(const char *path, tp_gguf **out, tp_err *e);
void tp_gguf_close(tp_gguf *g);

const char *tp_gguf_path(const tp_gguf *g);
uint32_t tp_gguf_version(const tp_gguf *g);
uint32_t tp_gguf_alignment(const tp_gguf *g);
uint64_t tp_gguf_data_offset(const tp_gguf *g);      /* file offset of the data section */
const uint8_t *tp_gguf_map(const tp_gguf *g, size_t *size); /* the whole file */

size_t tp_gguf_num_kv(const tp_gguf *g);
const tp_gguf_kv *tp_gguf_kv_at(const tp_gguf *g, size_t i); /* file order */
const tp_gguf_kv *tp_gguf_find_kv(const tp_gguf *g, const char *key);
size_t tp_gguf_num_tensors(const tp_gguf *g);
const tp_gguf_tensor *tp_gguf_tensor_at(const tp_gguf *g, size_t i); /* file order */
const tp_gguf_tensor *tp_gguf_find_tensor(const tp_gguf *g, const char *name);

/* Typed metadata. Absent key: *found = 0 and TP_OK (found may be NULL: then absence fails). A
 * present key of another type fails naming the file, the key, the type expected and the type
 * found. Integers: any integer type whose value fits; floats: F32 or F64. */
tp_status tp_gguf_get_u32(const tp_gguf *g, const char *key, uint32_t *v, int *found, tp_err *e);
tp_status tp_gguf_get_f64(const tp_gguf *g, const char *key, double *v, int *found, tp_err *e);
tp_status tp_gguf_get_bool(const tp_gguf *g, const char *key, int *v, int *found, tp_err *e);
/* a string as a NUL-terminated copy (malloc'd) */
tp_status tp_gguf_get_str(const tp_gguf *g, const char *key, char **v, int *found, tp_err *e);
/* an array whose elements are of type et (*kv the entry) */
tp_status tp_gguf_get_arr(const tp_gguf *g, const char *key, tp_gguf_vtype et, const tp_gguf_kv **kv, int *found,
                          tp_err *e);

/* element i of a numeric array as f64 / i64 (little-endian, unaligned-safe) */
double tp_gguf_arr_f64(const tp_gguf_kv *kv, uint64_t i);
int64_t tp_gguf_arr_i64(const tp_gguf_kv *kv, uint64_t i);

/* ggml tensor types the reader knows: block of elements and its bytes (0 / 0 for an unknown id) */
int tp_gguf_type_known(int type);
const char *tp_gguf_type_name(int type); /* "Q4_1", "type 99" for unknown ids (static buffer) */
int64_t tp_gguf_type_block(int type);
size_t tp_gguf_type_block_bytes(int type);

/* ---- writer ----
 * Metadata and tensors in the order added; the file is written to PATH.tmp.XXXXXX and renamed
 * (tenpak/files.h), so a failure leaves nothing. Tensor data is referenced, not copied: it must
 * stay alive until tp_gguf_w_write. ne as in the file (ne[0] innermost). */
typedef struct tp_gguf_w tp_gguf_w;
tp_gguf_w *tp_gguf_w_new(uint32_t alignment); /* 0: the default 32 */
void tp_gguf_w_free(tp_gguf_w *w);
void tp_gguf_w_str(tp_gguf_w *w, const char *key, const char *v);
void tp_gguf_w_u32(tp_gguf_w *w, const char *key, uint32_t v);
void tp_gguf_w_i32(tp_gguf_w *w, const char *key, int32_t v);
void tp_gguf_w_f32(tp_gguf_w *w, const char *key, float v);
void tp_gguf_w_bool(tp_gguf_w *w, const char *key, int v);
void tp_gguf_w_arr_str(tp_gguf_w *w, const char *key, const char *const *v, const size_t *lens, uint64_t n);
void tp_gguf_w_arr_f32(tp_gguf_w *w, const char *key, const float *v, uint64_t n);
void tp_gguf_w_arr_i32(tp_gguf_w *w, const char *key, const int32_t *v, uint64_t n);
/* any value: type, its raw little-endian bytes (the writer's own tests write lying files with it) */
void tp_gguf_w_raw(tp_gguf_w *w, const char *key, uint32_t type, const void *bytes, size_t n);
void tp_gguf_w_tensor(tp_gguf_w *w, const char *name, int type, int ndim, const int64_t *ne, const void *data,
                      size_t nbytes);
/* The file's bytes (after the writer's own checks: a failed add is reported here). */
tp_status tp_gguf_w_write(tp_gguf_w *w, const char *path, tp_err *e);

#ifdef __cplusplus
}
#endif
#endif
