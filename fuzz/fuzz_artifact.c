/* The .tpk reader (pipeline/artifact.c): footer, checksums, header JSON, record bounds, overlaps
 * and names are checked on open; every record of an accepted file is read (its checksum, zstd). */
#include <stdint.h>

#include "fuzz/fuzz_files_common.h"
#include "pipeline/artifact.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_put("a.tpk", data, size);
    tp_artifact a;
    tp_err e;
    if (tp_artifact_open(fuzz_path("a.tpk"), &a, &e) != TP_OK) return 0;
    const cJSON *rec;
    cJSON_ArrayForEach(rec, a.tensors) {
        uint8_t *out;
        size_t len;
        if (tp_artifact_read_record(&a, rec, &out, &len, &e) == TP_OK) tp_free(out);
    }
    tp_artifact_close(&a);
    return 0;
}
