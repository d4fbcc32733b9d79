/* Shared by the Criterion suites: the run seed (fresh each run, printed, replayable with
 * TENPAK_SEED=N), a helper running the registry's verify driver over a filter, and the shared
 * models (../shared/models, TENPAK_SHARED_DIR). */
#ifndef TENPAK_VERIFY_TEST_COMMON_H
#define TENPAK_VERIFY_TEST_COMMON_H
#include <criterion/criterion.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pipeline/artifact.h"
#include "pipeline/model.h"
#include "tenpak/verify.h"

static inline uint64_t test_seed(void) {
    static uint64_t seed;
    static int have;
    if (!have) {
        const char *s = getenv("TENPAK_SEED");
        seed = s && *s ? strtoull(s, NULL, 10) : tp_seed_from_time();
        have = 1;
        /* each test runs in its own worker, so the seed line names the test it belongs to
         * (CI's log interleaves the workers' lines) */
        const struct criterion_test *t = criterion_current_test;
        fprintf(stderr, "seed %llu for %s::%s (replay: TENPAK_SEED=%llu)\n", (unsigned long long)seed,
                t ? t->category : "?", t ? t->name : "?", (unsigned long long)seed);
    }
    return seed;
}

/* fn(ctx, out) run in a forked child whose worker pool has `threads` threads (the pool is sized
 * from omp_get_max_threads() on its first run in a process, and a child starts its own), its nbytes
 * of out copied back: how a suite compares a kernel's bits at two thread counts. 0 on success. */
static inline int run_with_threads(int threads, void (*fn)(void *ctx, void *out), void *ctx, void *out, size_t nbytes) {
    void *shm = mmap(NULL, nbytes ? nbytes : 1, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shm == MAP_FAILED) return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) { munmap(shm, nbytes ? nbytes : 1); return -1; }
    if (pid == 0) {
        omp_set_num_threads(threads);
        fn(ctx, shm);
        _exit(tp_pool_threads() == threads ? 0 : 3);
    }
    int st = 0;
    int ok = waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    if (ok) memcpy(out, shm, nbytes);
    munmap(shm, nbytes ? nbytes : 1);
    return ok ? 0 : -1;
}

/* Every case matching the filter passes, and with self_test every corruption is rejected. */
static inline void verify_filter(const char *filter) {
    tp_verify_opts o = {.filter = filter, .seed = test_seed(), .self_test = 1, .out = NULL};
    if (getenv("TENPAK_TEST_VERBOSE")) o.out = stderr;
    tp_verify_result r;
    tp_err e;
    cr_assert_eq(tp_verify_run(&o, &r, &e), TP_OK, "%s", e.msg);
    if (r.failed) {
        o.out = stderr; /* print the cases again, with the failing ones marked */
        tp_verify_run(&o, &r, &e);
    }
    cr_expect_gt(r.passed, 0, "no case matched %s", filter);
    cr_expect_eq(r.failed, 0, "%d case(s) failed for %s (seed %llu)", r.failed, filter,
                 (unsigned long long)o.seed);
}

/* ../shared/models/NAME; four buffers in turn, so a few results can be in use at once */
static inline const char *shared_model_dir(const char *name) {
    static char p[4][1024];
    static int k;
    char *b = p[k++ & 3];
    snprintf(b, sizeof p[0], "%s/models/%s", tp_shared_dir(), name);
    return b;
}

/* A shared model's layer count, from its config.json: counts in the tests follow the model. */
static inline int shared_model_layers(const char *name) {
    char path[1100];
    tp_model_config c;
    tp_err e;
    snprintf(path, sizeof path, "%s/models/%s/config.json", tp_shared_dir(), name); /* no buffer of shared_model_dir's used */

    cr_assert_eq(tp_config_load(path, &c, &e), TP_OK, "%s", e.msg);
    return c.n_layer;
}

/* The first n token ids of WikiText-2 test by the model's tokenizer (its goldens/wiki.test.ids.u32,
 * little-endian uint32), malloc'd */
static inline int32_t *shared_golden_ids(const char *name, int n) {
    char path[1200];
    snprintf(path, sizeof path, "%s/goldens/wiki.test.ids.u32", shared_model_dir(name));
    tp_err e = {{0}};
    size_t len;
    uint8_t *g = tp_read_file(path, &len, &e);
    cr_assert(g && len >= (size_t)n * 4, "%s", e.msg);
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    for (int i = 0; i < n; i++)
        ids[i] = (int32_t)((uint32_t)g[4 * i] | (uint32_t)g[4 * i + 1] << 8 | (uint32_t)g[4 * i + 2] << 16 |
                           (uint32_t)g[4 * i + 3] << 24);
    free(g);
    return ids;
}

/* A shared model loaded with the default options (the test stops if it cannot be) */
static inline tp_model *load_shared_model(const char *name) {
    tp_err e = {{0}};
    tp_model *m = NULL;
    cr_assert_eq(tp_model_load(shared_model_dir(name), NULL, &m, &e), TP_OK, "%s", e.msg);
    return m;
}

/* Rewrites the artifact src as dst through the writer, so the file is well formed (record offsets
 * and every checksum recomputed) and only what the callbacks change lies: rec_fn sees each
 * record's header entry (without the fields the writer fills in), hdr_fn the header without its
 * tensor list; either may be NULL. */
static inline void rewrite_artifact(const char *src, const char *dst, void (*rec_fn)(cJSON *rec, void *u),
                                    void (*hdr_fn)(cJSON *h, void *u), void *u) {
    tp_artifact a;
    tp_err e;
    cr_assert_eq(tp_artifact_open(src, &a, &e), TP_OK, "%s", e.msg);
    tp_art_writer *w;
    cr_assert_eq(tp_artw_open(dst, &w, &e), TP_OK, "%s", e.msg);
    const cJSON *rec;
    cJSON_ArrayForEach(rec, a.tensors) {
        uint8_t *d;
        size_t n;
        cr_assert_eq(tp_artifact_read_record(&a, rec, &d, &n, &e), TP_OK, "%s", e.msg);
        cJSON *r = cJSON_Duplicate(rec, 1);
        static const char *const filled[] = {"offset", "length", "decoded_length", "lossless", "xxh64"};
        for (size_t k = 0; k < sizeof filled / sizeof filled[0]; k++) cJSON_DeleteItemFromObjectCaseSensitive(r, filled[k]);
        if (rec_fn) rec_fn(r, u);
        cr_assert_eq(tp_artw_add(w, r, d, n, "none", &e), TP_OK, "%s", e.msg);
        tp_free(d);
    }
    cJSON *h = cJSON_Duplicate(a.header, 1);
    cJSON_DeleteItemFromObjectCaseSensitive(h, "tensors");
    if (hdr_fn) hdr_fn(h, u);
    cr_assert_eq(tp_artw_finish(w, h, NULL, &e), TP_OK, "%s", e.msg);
    tp_artifact_close(&a);
}

/* A test's temporary directory: test_tmp_init makes a fresh /tmp/tenpak-test-XXXXXX (a suite's or a
 * test's .init), test_tmp_fini removes it with all it holds (.fini), test_tmp_path(NAME) is NAME
 * inside it (four paths live at a time), test_tmpdir() the directory itself. */
static inline char *test_tmpdir(void) {
    static char dir[256];
    return dir;
}
static inline void test_tmp_init(void) {
    snprintf(test_tmpdir(), 256, "/tmp/tenpak-test-XXXXXX");
    cr_assert_not_null(mkdtemp(test_tmpdir()), "mkdtemp");
}
static inline void test_tmp_fini(void) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", test_tmpdir());
    cr_expect_eq(system(cmd), 0, "%s", cmd);
}
static inline const char *test_tmp_path(const char *name) {
    static char p[4][512];
    static int k;
    char *s = p[k++ & 3];
    snprintf(s, 512, "%s/%s", test_tmpdir(), name);
    return s;
}

#endif
