/* config.json (pipeline/config.c): any bytes give a config or one error, never a crash. A second
 * part (after "\n--8<--\n") is the model.safetensors.index.json beside it (layers agreement). */
#include <stdint.h>

#include "fuzz/fuzz_files_common.h"
#include "pipeline/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *idx;
    size_t ni, nc = fuzz_split(data, size, &idx, &ni);
    fuzz_put("config.json", data, nc);
    if (idx) fuzz_put("model.safetensors.index.json", idx, ni);
    else unlink(fuzz_path("model.safetensors.index.json"));
    tp_model_config c;
    tp_err e;
    if (tp_config_load(fuzz_path("config.json"), &c, &e) == TP_OK &&
        (c.n_layer <= 0 || c.d_model <= 0 || c.n_head <= 0 || !(c.norm_eps > 0)))
        abort(); /* accepted sizes the model loader cannot use */
    return 0;
}
