/* Benchmark matrix files (tenpak/bench.h): shape names, the cells, and the shard split: every
 * (kernel, shape) of a matrix in exactly one cell, the first whose regex matches, and so in
 * exactly one shard for any shard count; malformed files refused with the key named. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tenpak/bench.h"

static char *write_tmp(const char *text) {
    static char path[64];
    snprintf(path, sizeof path, "/tmp/tenpak-matrix-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

Test(bench_matrix, shape_names) {
    tp_shape s;
    cr_expect(tp_shape_parse("256x512", &s) && s.nd == 2 && s.d[0] == 256 && s.d[1] == 512);
    cr_expect(tp_shape_parse("65536", &s) && s.nd == 1 && s.d[0] == 65536);
    cr_expect(tp_shape_parse("4x5x6x7", &s) && s.nd == 4 && s.d[3] == 7);
    const char *bad[] = {"", "x4", "4x", "4xx5", "0x4", "4x5x6x7x8", "-4", "4 x5", "12a", "99999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) cr_expect(!tp_shape_parse(bad[i], &s), "'%s' accepted", bad[i]);
}

Test(bench_matrix, split_covers_every_case_once) {
    const char *path = write_tmp("{\"name\": \"t\", \"benchmarks\": [\"^gemv/\", \"^dequant/int4\", \"^gemv/int4_g128/\"],"
                                 " \"shapes\": [\"64x128\", \"128x256\", \"4096\"], \"backends\": [\"cpu\", \"openblas\"]}");
    tp_bench_matrix m;
    tp_err e;
    cr_assert_eq(tp_bench_matrix_load(path, &m, &e), TP_OK, "%s", e.msg);
    unlink(path);
    cr_expect_eq(tp_bench_matrix_cells(&m), 9);
    cr_expect_eq(m.repetitions, 3);
    cr_expect_eq(m.shards, 0);
    cr_expect_eq(strlen(m.sha256), 64u);
    char cn[256];
    tp_bench_matrix_cell_name(&m, 4, cn, sizeof cn);
    cr_expect_str_eq(cn, "^dequant/int4 @ 128x256");
    int in_matrix = 0, g128 = 0;
    for (size_t i = 0; i < tp_registry_count(); i++) {
        const tp_kernel *k = tp_registry_get(i);
        for (int t = 0; t < m.nshape; t++) {
            int c = tp_bench_matrix_cell_of(&m, k, &m.shapes[t]);
            int want = (!strcmp(k->backend, "cpu") || !strcmp(k->backend, "openblas")) &&
                       k->op->bench_shapes && k->op->bench_shapes->nd == m.shapes[t].nd &&
                       (!strcmp(k->op->name, "gemv") || (!strcmp(k->op->name, "dequant") && !strncmp(k->op->variant, "int4", 4)));
            cr_expect_eq(c >= 0, want, "%s/%s/%s at shape %d: cell %d", k->op->name, k->op->variant, k->backend, t, c);
            if (c < 0) continue;
            in_matrix++;
            cr_expect_eq(c % m.nshape, t, "a cell holds one shape");
            /* the first matching regex owns it: gemv/int4_g128 is in ^gemv/'s cells, never the third regex's */
            cr_expect_lt(c / m.nshape, 2);
            g128 += !strcmp(k->op->name, "gemv") && !strcmp(k->op->variant, "int4_g128");
            /* exactly one shard of N, for every N: c mod N */
            for (int n = 1; n <= 7; n++) {
                int owners = 0;
                for (int s = 0; s < n; s++) owners += c % n == s;
                cr_expect_eq(owners, 1);
            }
        }
    }
    cr_expect_gt(in_matrix, 10);
    cr_expect_gt(g128, 0);
    tp_bench_matrix_free(&m);
}

Test(bench_matrix, without_shapes_uses_bench_shapes) {
    const char *path = write_tmp("{\"benchmarks\": [\"^copy/f32/\"], \"shards\": 2, \"repetitions\": 1, \"min_time\": 0.01,"
                                 " \"report\": {\"rows\": [\"^copy/\"]}}");
    tp_bench_matrix m;
    tp_err e;
    cr_assert_eq(tp_bench_matrix_load(path, &m, &e), TP_OK, "%s", e.msg);
    unlink(path);
    cr_expect_eq(tp_bench_matrix_cells(&m), 1);
    cr_expect_eq(m.shards, 2);
    cr_expect_eq(m.nrow, 1);
    int found = 0;
    for (size_t i = 0; i < tp_registry_count(); i++) {
        const tp_kernel *k = tp_registry_get(i);
        if (strcmp(k->op->name, "copy") || strcmp(k->op->variant, "f32")) continue; /* the matrix's one filter */
        const tp_shape *s = k->op->bench_shapes;
        int c = tp_bench_matrix_cell_of(&m, k, s);
        /* every backend but ref, when the matrix names none */
        cr_expect_eq(c, strcmp(k->backend, "ref") ? 0 : -1, "copy/%s", k->backend);
        found += c == 0;
        tp_shape other = TP_SHAPE1(12345);
        cr_expect_eq(tp_bench_matrix_cell_of(&m, k, &other), -1, "a shape outside the bench shapes");
    }
    cr_expect_gt(found, 0);
    tp_bench_matrix_free(&m);
}

Test(bench_matrix, malformed_files_name_the_key) {
    struct { const char *json, *word; } cases[] = {
        {"[1]", "object"},
        {"{\"name\": \"x\"}", "benchmarks"},
        {"{\"benchmarks\": []}", "benchmarks"},
        {"{\"benchmarks\": [\"(\"]}", "regex"},
        {"{\"benchmarks\": [\"a\"], \"shapes\": [\"4xx\"]}", "shape"},
        {"{\"benchmarks\": [\"a\"], \"repetitions\": 0}", "repetitions"},
        {"{\"benchmarks\": [\"a\"], \"min_time\": -1}", "min_time"},
        {"{\"benchmarks\": [\"a\"], \"shards\": 1.5}", "shards"},
        /* past int's range: refused before any conversion (which would be undefined behaviour) */
        {"{\"benchmarks\": [\"a\"], \"repetitions\": 1e30}", "repetitions"},
        {"{\"benchmarks\": [\"a\"], \"shards\": -5e20}", "shards"},
        {"{\"benchmarks\": [\"a\"], \"backends\": [3]}", "backends"},
        {"{\"benchmarks\": [\"a\"], \"report\": {\"rows\": [\"[\"]}}", "row"},
        {"{not json", "JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *path = write_tmp(cases[i].json);
        tp_bench_matrix m;
        tp_err e;
        cr_expect_neq(tp_bench_matrix_load(path, &m, &e), TP_OK, "%s accepted", cases[i].json);
        cr_expect(strstr(e.msg, cases[i].word) != NULL, "%s: message '%s' lacks '%s'", cases[i].json, e.msg, cases[i].word);
        unlink(path);
    }
}

Test(bench_matrix, identity_ignores_formatting) {
    const char *a = "{\"benchmarks\": [\"^gemv/\"], \"shards\": 2}", *b = "{\n  \"benchmarks\" : [ \"^gemv/\" ],\n  \"shards\": 2\n}\n";
    tp_bench_matrix ma, mb, mc;
    tp_err e;
    const char *p = write_tmp(a);
    cr_assert_eq(tp_bench_matrix_load(p, &ma, &e), TP_OK);
    unlink(p);
    p = write_tmp(b);
    cr_assert_eq(tp_bench_matrix_load(p, &mb, &e), TP_OK);
    unlink(p);
    p = write_tmp("{\"benchmarks\": [\"^gemv/\"], \"shards\": 3}");
    cr_assert_eq(tp_bench_matrix_load(p, &mc, &e), TP_OK);
    unlink(p);
    cr_expect_str_eq(ma.sha256, mb.sha256);
    cr_expect_str_neq(ma.sha256, mc.sha256);
    tp_bench_matrix_free(&ma);
    tp_bench_matrix_free(&mb);
    tp_bench_matrix_free(&mc);
}
