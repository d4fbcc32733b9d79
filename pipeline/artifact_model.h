/* A model rebuilt from a .tpk artifact and the checkpoint it was made from, ready to run:
 * what `tenpak eval`, and every command that takes --artifact, load.
 *
 *   TP_EXEC_PACKED   (default) each compressed tensor stays in its codec's format inside the
 *                    memory-mapped artifact and the forward pass multiplies by it with the codec
 *                    family's cpu kernels (pipeline/linear.h): no fp32 or fp16 copy of it.
 *   TP_EXEC_DEQUANT  each compressed tensor is decoded to fp32 once and the fp32 forward pass
 *                    runs on it: the reference for the packed path, and the path for codecs
 *                    without a packed kernel and for --device cuda.
 * Raw records must be the checkpoint's bytes; the checkpoint's sha256 must be the one recorded. */
#ifndef TENPAK_PIPELINE_ARTIFACT_MODEL_H
#define TENPAK_PIPELINE_ARTIFACT_MODEL_H

#include "pipeline/compress.h"
#include "pipeline/model.h"

typedef enum tp_exec { TP_EXEC_PACKED = 0, TP_EXEC_DEQUANT = 1 } tp_exec;
const char *tp_exec_name(tp_exec x);              /* "packed" / "dequant" */
int tp_exec_parse(const char *s, tp_exec *x);     /* 1 when s names one */

typedef struct tp_artifact_model {
    tp_compress_result size; /* sizes re-read from the artifact (plan unused) */
    char codec[256], model_sha256[65], model_type[32];
    char codec_given[256];   /* the spec as `tenpak compress --codec` was given it ("" in artifacts
                              * made before it was recorded); codec is its canonical form */
    char model_dir[4096];    /* the checkpoint folder used */
    size_t packed_bytes;     /* TP_EXEC_PACKED: memory the packed views hold beyond the map */
    size_t format_bytes;     /* TP_EXEC_PACKED: the packed records' bytes (what a forward reads) */
    int files_checked;       /* 1: config.json and tokenizer.json matched the recorded sha256; 0: the
                              * artifact predates those records (made before they were written) */
} tp_artifact_model;

/* The artifact records the sha256 of the source folder's config.json and tokenizer.json
 * (source.config_sha256, source.tokenizer_sha256; "absent" for a file that was not there) beside
 * the checkpoint's; loading refuses a folder whose files differ, since the tokenizer changes the
 * tokens scored and the config the forward pass. An artifact without these records (older tenpak)
 * loads with files_checked 0: its callers say so. */
#define TP_SOURCE_ABSENT "absent"
/* sha256 (hex) of dir/name, or TP_SOURCE_ABSENT when there is no such file */
tp_status tp_source_file_sha256(const char *dir, const char *name, char hex[65], tp_err *e);

/* model_dir NULL: the folder recorded in the artifact. mopts may be NULL. */
tp_status tp_model_load_artifact(const char *artifact, const char *model_dir, tp_exec exec, const tp_model_opts *mopts,
                                 tp_model **m, tp_artifact_model *info, tp_err *e);

/* The checkpoint folder an artifact was made from (as its header records it). */
tp_status tp_artifact_source_dir(const char *artifact, char *dir, size_t n, tp_err *e);

/* Peak resident memory of this process (bytes) since it started or since the last successful
 * tp_peak_rss_reset (Linux's VmHWM; getrusage's maximum where /proc/self/status is missing). */
uint64_t tp_peak_rss_bytes(void);
/* Lowers the peak to the current resident memory (Linux /proc/self/clear_refs); 0 where that is
 * not possible (the peak then counts from the process's start). */
int tp_peak_rss_reset(void);

#endif
