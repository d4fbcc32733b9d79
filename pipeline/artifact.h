/* The compressed-model artifact (.tpk).
 *
 * Layout (all integers little-endian):
 *   preamble  16 bytes: "TPAK" | u32 format version (1) | u64 0
 *   payload   the tensor records' bytes, one after the other (codec blobs or raw tensor bytes,
 *             each optionally zstd-compressed), at the offsets the header gives; the writer
 *             starts each record on a 64-byte offset (zero bytes between), readers accept any
 *   header    UTF-8 JSON: format, version, codec spec (canonical; codec_given: as compress was given
 *             it), selector, lossless stage, source model
 *             (folder, sha256, model_type), the model's config.json, and one record per tensor:
 *             name, shape, dtype, codec ("raw" = the source bytes unchanged), transposed,
 *             offset, length, decoded_length, lossless, xxh64 (of the stored bytes, hex)
 *   footer    40 bytes: u64 header offset | u64 header length | u64 XXH64 of the header |
 *             u64 XXH64 of every byte before the footer | "TPKFOOT1"
 *
 * A writer streams the payload to PATH.tmp.XXXXXX and renames it to PATH only when the footer is
 * written, so a failed run leaves nothing behind (the temporary file is registered with
 * tenpak/files.h, so SIGINT / SIGTERM remove it too; PATH must not be one of the run's inputs). A
 * reader validates the footer magic, both checksums, the JSON, and that every record lies inside
 * the payload without overlapping another and names a tensor no other record names, before any
 * tensor is used; tp_artifact_read_tensor re-checks the record's own checksum. */
#ifndef TENPAK_PIPELINE_ARTIFACT_H
#define TENPAK_PIPELINE_ARTIFACT_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "tenpak/tenpak.h"

typedef struct tp_art_writer tp_art_writer;

tp_status tp_artw_open(const char *path, tp_art_writer **w, tp_err *e);
/* The lossless stage's zstd level: "none" 0, "zstd" 19, "zstd:N" N (1..22); -1 for anything else. */
int tp_lossless_level(const char *spec);
/* Appends data as one record: lossless is "none", "zstd" or "zstd:N" (the record says "zstd"). Fills offset/length/decoded_length/
 * lossless/xxh64 into rec and adds rec (taken) to the header's tensor list. */
tp_status tp_artw_add(tp_art_writer *w, cJSON *rec, const void *data, size_t len, const char *lossless, tp_err *e);
uint64_t tp_artw_payload_bytes(const tp_art_writer *w);
/* Adds "tensors" to header (taken), writes header and footer, renames into place. The writer is
 * freed whatever happens; on failure the temporary file is removed. */
tp_status tp_artw_finish(tp_art_writer *w, cJSON *header, uint64_t *file_bytes, tp_err *e);
void tp_artw_abort(tp_art_writer *w);

typedef struct tp_artifact {
    char *path;
    uint8_t *data; /* the whole file, memory-mapped (private: writes never reach the file) */
    size_t size;
    cJSON *header;
    cJSON *tensors; /* array inside header */
} tp_artifact;

tp_status tp_artifact_open(const char *path, tp_artifact *a, tp_err *e);
void tp_artifact_close(tp_artifact *a);
/* The decoded bytes of record rec (tp_alloc'd into *out, *len: tp_free them), checksum verified. */
tp_status tp_artifact_read_record(const tp_artifact *a, const cJSON *rec, uint8_t **out, size_t *len, tp_err *e);
/* The same without a copy where the record is stored as is: *data points into the map (valid
 * until tp_artifact_close) and *owned is NULL; a zstd record is decoded into *owned (tp_free it),
 * which *data then points to. Records of files written by this tenpak start 64-byte aligned. */
tp_status tp_artifact_record_view(const tp_artifact *a, const cJSON *rec, const uint8_t **data, size_t *len,
                                  uint8_t **owned, tp_err *e);
const char *tp_json_str(const cJSON *o, const char *key); /* NULL if absent or not a string */
/* 1 when x is a number holding an integer in [lo, hi] (|lo|, |hi| <= 2^53), then *v; 0 otherwise.
 * The range is checked before converting: a double outside the target type is undefined behaviour. */
int tp_json_int(const cJSON *x, int64_t lo, int64_t hi, int64_t *v);

#endif
