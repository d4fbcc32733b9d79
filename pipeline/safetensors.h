/* safetensors reader: one model.safetensors or a sharded set listed by
 * model.safetensors.index.json, memory-mapped read-only.
 *
 * Every header is validated against its file before any tensor is exposed: the 8-byte header
 * length fits the file and is at most 100 MB, the JSON is well formed, every entry has a known
 * dtype, a shape of non-negative integers and data_offsets [begin, end) with
 * end - begin == prod(shape) * dtype size, and the entries tile the data area exactly (sorted by
 * offset they do not overlap, leave no hole, and end at the end of the file), as the safetensors
 * format requires. So a truncated file or a header lying about offsets fails at open time with a
 * one-line message naming the file.
 *
 * Weights stay in their file dtype inside the mapping; tp_st_to_f32 / tp_st_rows_to_f32 convert
 * on demand (per tensor, or a block of rows), so resident memory is the mapping plus whatever the
 * caller chooses to convert. */
#ifndef TENPAK_PIPELINE_SAFETENSORS_H
#define TENPAK_PIPELINE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "tenpak/tenpak.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tp_st_dtype {
    TP_ST_F32 = 0, TP_ST_F16, TP_ST_BF16,
    /* accepted in headers (sizes are checked) but not convertible to f32 */
    TP_ST_F64, TP_ST_I64, TP_ST_U64, TP_ST_I32, TP_ST_U32, TP_ST_I16, TP_ST_U16,
    TP_ST_I8, TP_ST_U8, TP_ST_BOOL, TP_ST_F8_E4M3, TP_ST_F8_E5M2
} tp_st_dtype;

#define TP_ST_MAX_DIMS 8

typedef struct tp_st_tensor {
    const char *name;      /* owned by the set */
    tp_st_dtype dtype;
    int ndim;
    int64_t shape[TP_ST_MAX_DIMS];
    int64_t numel;         /* prod(shape); 1 for a 0-d tensor */
    size_t nbytes;
    const void *data;      /* inside the read-only mapping; may be unaligned for odd layouts */
    int file;              /* index into the set's files */
} tp_st_tensor;

typedef struct tp_st_set tp_st_set;

/* Opens a model folder: model.safetensors.index.json (sharded) if present, else model.safetensors.
 * With an index, every shard named in weight_map must exist and hold the tensors mapped to it. */
tp_status tp_model_files_open(const char *dir, tp_st_set **out, tp_err *e);
/* Opens one .safetensors file. */
tp_status tp_st_open_file(const char *path, tp_st_set **out, tp_err *e);
void tp_st_close(tp_st_set *s);
/* A set over tensors that lie elsewhere: the GGUF adapter (pipeline/gguf_model.c) presents a GGUF
 * file's tensors under Hugging Face names. path/map/size: the file the set stands for (hashed by
 * tp_st_sha256; not unmapped by the set). Names are copied; data must live as long as the set:
 * owner_free(owner) is called when the set is closed (also when this call fails). */
tp_status tp_st_set_wrap(const char *path, const void *map, size_t size, const tp_st_tensor *t, size_t n, void *owner,
                         void (*owner_free)(void *), tp_st_set **out, tp_err *e);
/* The owner of a wrapped set when it was given with owner_free, else NULL. */
void *tp_st_set_owner(const tp_st_set *s, void (*owner_free)(void *));

size_t tp_st_count(const tp_st_set *s);
const tp_st_tensor *tp_st_at(const tp_st_set *s, size_t i); /* sorted by name */
const tp_st_tensor *tp_st_find(const tp_st_set *s, const char *name); /* NULL if absent */
size_t tp_st_num_files(const tp_st_set *s);
const char *tp_st_file_path(const tp_st_set *s, size_t i); /* sorted by file name */
uint64_t tp_st_total_bytes(const tp_st_set *s);             /* sum of file sizes */

const char *tp_st_dtype_name(tp_st_dtype d);
size_t tp_st_dtype_size(tp_st_dtype d);
int tp_st_is_float(tp_st_dtype d); /* F32, F16 or BF16: convertible by tp_st_to_f32 */

/* Converts the whole tensor (numel floats) / rows [row0, row0+nrows) of a tensor seen as
 * [shape[0], numel/shape[0]] to f32. Caller checked tp_st_is_float (else dst is zero-filled). */
void tp_st_to_f32(const tp_st_tensor *t, float *dst);
void tp_st_rows_to_f32(const tp_st_tensor *t, int64_t row0, int64_t nrows, float *dst);

/* Model fingerprint: SHA-256 of the concatenated bytes of the set's files taken in byte-wise
 * order of their file names (so for a single model.safetensors it equals `sha256sum` of it). */
tp_status tp_st_sha256(const tp_st_set *s, uint8_t out[32], tp_err *e);

#ifdef __cplusplus
}
#endif
#endif
