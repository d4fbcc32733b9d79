/* ggml's block formats against an independent implementation: the `gguf` Python package (PyPI,
 * the one llama.cpp's converters use). datasets/make_ggml_blocks.py writes random blocks of every
 * type into a GGUF file with the package, reads them back with it and dequantises them with
 * gguf.quants.dequantize; tenpak's reference and cpu dequantisation (every ISA level) must give
 * the same floats to the bit. Skipped, with the reason, when no python3 with numpy and gguf is
 * found (ci/install-deps.sh installs it: /usr/bin/python3 -m pip install --user gguf): the suite's
 * main then exits 77, which ctest reports as Skipped (SKIP_RETURN_CODE in CMakeLists.txt).
 * TENPAK_PYTHON names the interpreter; else /usr/bin/python3, then python3 on PATH. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tenpak/ggml.h"
#include "verify/test_common.h"

/* the checkout's root, from this file's path (CMake compiles it by its absolute path) */
static void source_root(char *buf, size_t n) {
    snprintf(buf, n, "%s", __FILE__);
    char *s = strstr(buf, "/verify/test_ggml_gguf.c");
    if (s) *s = 0;
    else snprintf(buf, n, ".");
}

static char py[512]; /* the interpreter found */

static const char *find_python(void) {
    const char *env = getenv("TENPAK_PYTHON");
    const char *cands[] = {env && *env ? env : NULL, "/usr/bin/python3", "python3"};
    for (size_t i = 0; i < 3; i++) {
        if (!cands[i]) continue;
        char cmd[700];
        snprintf(cmd, sizeof cmd, "'%s' -c 'import numpy, gguf.quants' >/dev/null 2>&1", cands[i]);
        if (system(cmd) == 0) {
            snprintf(py, sizeof py, "%s", cands[i]);
            return py;
        }
    }
    return NULL;
}

#define NO_GGUF                                                                                    \
    "no python3 with numpy and the gguf package (TENPAK_PYTHON, /usr/bin/python3, python3): install it with " \
    "/usr/bin/python3 -m pip install --user --break-system-packages gguf"

Test(ggml_gguf, dequant_matches_gguf_package) {
    if (!py[0] && !find_python()) cr_skip_test(NO_GGUF); /* the test runs in a fresh process */
    char root[1024], cmd[3000];
    source_root(root, sizeof root);
    test_tmp_init();
    const char *dir = test_tmpdir();
    const unsigned long long seed = (unsigned long long)(test_seed() % 1000000007ull);
    snprintf(cmd, sizeof cmd, "'%s' '%s/datasets/make_ggml_blocks.py' '%s' --seed %llu >&2", py, root, dir, seed);
    cr_assert_eq(system(cmd), 0, "%s failed", cmd);

    char path[1200];
    snprintf(path, sizeof path, "%s/manifest.txt", dir);
    FILE *man = fopen(path, "r");
    cr_assert_not_null(man, "%s", path);
    char name[32];
    int id, types = 0;
    long long n, nbytes;
    const tp_isa saved = tp_cpu_isa();
    while (fscanf(man, "%31s %d %lld %lld", name, &id, &n, &nbytes) == 4) {
        cr_assert(tp_ggml_type_known(id), "%s: type %d unknown to tenpak", name, id);
        cr_expect_str_eq(tp_ggml_type_name(id), name);
        cr_assert_eq((size_t)nbytes, tp_ggml_row_bytes(id, n), "%s: %lld bytes for %lld elements", name, nbytes, n);
        tp_err e = {{0}};
        size_t lb, lf;
        snprintf(path, sizeof path, "%s/%s.bin", dir, name);
        uint8_t *src = tp_read_file(path, &lb, &e);
        snprintf(path, sizeof path, "%s/%s.f32", dir, name);
        float *want = tp_read_file(path, &lf, &e);
        cr_assert(src && want && lb == (size_t)nbytes && lf == (size_t)n * 4, "%s: %s", name, e.msg);
        float *got = tp_alloc((size_t)n * 4);
        tp_poison_f32(got, (size_t)n);
        cr_assert_eq(tp_ggml_dequant_ref(id, src, n, got, &e), TP_OK, "%s", e.msg);
        cr_expect_eq(memcmp(got, want, (size_t)n * 4), 0, "%s: the reference differs from gguf.quants.dequantize", name);
        for (int isa = 0; isa <= (int)tp_cpu_best_isa(); isa++) {
            tp_cpu_set_isa((tp_isa)isa);
            tp_poison_f32(got, (size_t)n);
            tp_status st = tp_ggml_dequant_cpu(id, src, n, got, &e);
            tp_cpu_set_isa(saved);
            cr_assert_eq(st, TP_OK, "%s", e.msg);
            long long bad = -1;
            for (long long i = 0; i < n && bad < 0; i++)
                if (memcmp(&got[i], &want[i], 4)) bad = i;
            cr_expect_eq(bad, -1, "%s cpu (%s): element %lld is %a, gguf %a", name, tp_isa_name((tp_isa)isa), bad,
                         bad >= 0 ? got[bad] : 0.0, bad >= 0 ? want[bad] : 0.0);
        }
        free(src);
        free(want);
        tp_free(got);
        types++;
    }
    fclose(man);
    cr_expect_eq(types, 11, "manifest lists %d types, want 11", types);
    test_tmp_fini();
}

/* Criterion's own main, after the check: a visible skip (ctest: Skipped) when gguf is missing */
int main(int argc, char *argv[]) {
    if (!find_python()) {
        fprintf(stderr, "SKIP test_ggml_gguf: %s\n", NO_GGUF);
        return 77;
    }
    struct criterion_test_set *tests = criterion_initialize();
    int result = 0;
    if (criterion_handle_args(argc, argv, true)) result = !criterion_run_all_tests(tests);
    criterion_finalize(tests);
    return result;
}
